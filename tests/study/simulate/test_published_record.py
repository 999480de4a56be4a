"""Tests of the race simulator against the published 2021 regional record."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from real_2021 import (  # noqa: E402  (tests/ is on sys.path, see tests/conftest.py)
    CANDS_2021,
    NATIONAL_2021,
    PARTY_2021,
    POSTS_2021,
    PUBLISHED_2021,
    SELF_2021,
    TURNOUT_2021,
    VOTERS_2021,
    WOMEN_2021,
    real_2021_regions,
)

from akim_turnout.study.simulate import (
    MARGIN_COLUMNS,
    RACE_COLUMNS,
    SimulationSettings,
    allocate_region_margins,
    grouped_largest_remainder,
    largest_remainder,
    simulate_races,
    simulate_scaled,
    true_coefficients,
    true_formula_rhs,
)


@pytest.fixture(scope="module")
def margins(regions: pd.DataFrame) -> pd.DataFrame:
    return allocate_region_margins(regions, NATIONAL_2021).set_index("region")


@pytest.fixture(scope="module")
def races(regions: pd.DataFrame) -> pd.DataFrame:
    return simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=20210725)


# --------------------------------------------------------------------------
# Allocation of regional margins
# --------------------------------------------------------------------------


def test_margins_keep_every_published_figure(margins: pd.DataFrame) -> None:
    for column, published in PUBLISHED_2021.items():
        for region, value in published.items():
            assert margins.at[region, column] == value, (column, region)
            assert margins.at[region, f"{column}_source"] == "published"


def test_margins_add_up_to_national_totals(margins: pd.DataFrame) -> None:
    for column in MARGIN_COLUMNS:
        assert margins[column].sum() == NATIONAL_2021[column], column
    assert (margins["cands_party"] + margins["cands_self"] == margins["cands"]).all()


def test_unknown_posts_split_equally(margins: pd.DataFrame) -> None:
    assert margins.loc[["Aktobe", "Zhambyl"], "posts"].tolist() == [37, 37]
    assert (margins.loc[["Aktobe", "Zhambyl"], "posts_source"] == "assumed").all()


def test_unknown_cands_proportional_to_posts(margins: pd.DataFrame) -> None:
    unknown = ["Aktobe", "Zhambyl", "West Kazakhstan", "Pavlodar"]
    remainder = NATIONAL_2021["cands"] - sum(CANDS_2021.values())
    quota = remainder * margins.loc[unknown, "posts"] / margins.loc[unknown, "posts"].sum()
    assert (np.abs(margins.loc[unknown, "cands"] - quota) < 1).all()
    assert (margins.loc[unknown, "cands_source"] == "assumed").all()


def test_party_split_from_national_remainder_share(margins: pd.DataFrame) -> None:
    no_split = [r for r in margins.index if r not in PARTY_2021]
    party_remainder = NATIONAL_2021["cands_party"] - sum(PARTY_2021.values())
    assert margins.loc[no_split, "cands_party"].sum() == party_remainder
    quota = party_remainder * margins.loc[no_split, "cands"] / margins.loc[no_split, "cands"].sum()
    assert (np.abs(margins.loc[no_split, "cands_party"] - quota) < 1).all()
    assert margins.at["Almaty", "cands_source"] == "published"
    assert margins.at["Almaty", "cands_party_source"] == "assumed"


def test_allocation_refuses_inconsistent_published_split(regions: pd.DataFrame) -> None:
    broken = regions.copy()
    broken.loc[broken["region"] == "Akmola", "cands_party"] = 94.0
    with pytest.raises(ValueError, match="cands_party \\+ cands_self must equal cands"):
        allocate_region_margins(broken, NATIONAL_2021)


def test_allocation_refuses_regional_sum_above_national(regions: pd.DataFrame) -> None:
    national = {**NATIONAL_2021, "posts": 600}
    with pytest.raises(ValueError, match="posts: published regional values exceed"):
        allocate_region_margins(regions, national)


def test_largest_remainder_is_exact_and_proportional() -> None:
    shares = largest_remainder(10, np.array([1.0, 1.0, 1.0]))
    assert shares.tolist() == [4, 3, 3]
    shares = largest_remainder(1_209_817, np.array([3.0, 5.0, 7.0, 11.0]))
    assert shares.sum() == 1_209_817
    assert np.all(np.abs(shares - 1_209_817 * np.array([3, 5, 7, 11]) / 26) < 1)


def test_grouped_largest_remainder_hits_group_totals() -> None:
    quotas = np.array([0.4, 0.6, 2.5, 1.5, 1.0])
    group = np.array([0, 0, 1, 1, 1])
    out = grouped_largest_remainder(quotas, group, np.array([1, 5]))
    assert out.tolist() == [0, 1, 3, 1, 1]  # tie at .5 goes to the earlier quota
    assert np.bincount(group, weights=out).tolist() == [1.0, 5.0]


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def test_settings_from_mapping_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter 'settings.beta_cand' \(known: beta_cands, "):
        SimulationSettings.from_mapping({"beta_cand": 0.2})


def test_settings_from_mapping_coerces_yaml_numbers() -> None:
    settings = SimulationSettings.from_mapping({"beta_cands": 1, "min_candidates": 1, "cands_scale": "count"})
    assert settings.beta_cands == 1.0 and isinstance(settings.beta_cands, float)
    assert settings.min_candidates == 1 and isinstance(settings.min_candidates, int)
    assert true_coefficients(settings).index[0] == "n_candidates"


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(
        ValueError, match=r"parameter 'settings.overdispersion_sd' must be a number from 0 to 5, got -1.0$"
    ):
        SimulationSettings.from_params(overdispersion_sd=-1.0)
    with pytest.raises(ValueError, match=r"parameter 'settings.binomial_sampling' must be true or false, got 'yes'$"):
        SimulationSettings.from_mapping({"binomial_sampling": "yes"})
    with pytest.raises(
        ValueError, match=r"parameter 'settings.unknown_posts_rule' must be one of equal, got 'by_voters'$"
    ):
        SimulationSettings.from_mapping({"unknown_posts_rule": "by_voters"})
    with pytest.raises(
        ValueError, match=r"parameter 'settings.min_candidates' must be an integer from 1 to 2, got 3.0$"
    ):
        SimulationSettings.from_mapping({"min_candidates": 3.0})


# --------------------------------------------------------------------------
# Simulated races
# --------------------------------------------------------------------------


def test_races_have_documented_columns_and_one_row_per_post(races: pd.DataFrame) -> None:
    assert list(races.columns) == list(RACE_COLUMNS)
    assert len(races) == NATIONAL_2021["posts"]
    assert races["race_id"].is_unique


def test_races_reproduce_regional_margins(races: pd.DataFrame, margins: pd.DataFrame) -> None:
    by_region = races.groupby("region").agg(
        posts=("race_id", "size"),
        cands=("n_candidates", "sum"),
        cands_party=("n_party", "sum"),
        cands_self=("n_self", "sum"),
        cands_women=("n_women", "sum"),
        voters_on_rolls=("registered", "sum"),
    )
    for column in MARGIN_COLUMNS:
        assert by_region[column].reindex(margins.index).tolist() == margins[column].tolist(), column


def test_races_reproduce_published_figures_and_national_totals(races: pd.DataFrame) -> None:
    by_region = races.groupby("region")
    assert by_region.size()[list(POSTS_2021)].tolist() == list(POSTS_2021.values())
    assert by_region["n_candidates"].sum()[list(CANDS_2021)].tolist() == list(CANDS_2021.values())
    assert by_region["n_party"].sum()[list(PARTY_2021)].tolist() == list(PARTY_2021.values())
    assert by_region["n_self"].sum()[list(SELF_2021)].tolist() == list(SELF_2021.values())
    assert by_region["n_women"].sum()[list(WOMEN_2021)].tolist() == list(WOMEN_2021.values())
    assert by_region["registered"].sum()[list(VOTERS_2021)].tolist() == list(VOTERS_2021.values())
    totals = races[["n_candidates", "n_party", "n_self", "n_women", "registered"]].sum().tolist()
    assert totals == [2297, 878, 1419, 458, 1209817]


def test_races_reproduce_published_turnout_to_rounding(races: pd.DataFrame) -> None:
    sums = races.groupby("region")[["voted", "registered"]].sum()
    gap = sums["voted"] / sums["registered"] - pd.Series(TURNOUT_2021)[sums.index] / 100
    assert (gap.abs() < 0.5 / sums["registered"]).all(), gap


def test_races_obey_count_constraints(races: pd.DataFrame) -> None:
    assert (races["n_candidates"] >= 2).all()
    assert (races["registered"] >= SimulationSettings.from_params().min_registered).all()
    assert ((races["voted"] >= 0) & (races["voted"] <= races["registered"])).all()
    assert (races["valid_votes"] == races["voted"]).all()
    assert (races["winner_votes"] <= races["valid_votes"]).all()
    # The top candidate has at least the average share of the vote.
    assert (races["winner_votes"] * races["n_candidates"] >= races["valid_votes"]).all()
    assert np.allclose(races["self_share"], races["n_self"] / races["n_candidates"])
    assert (races["any_woman"] == (races["n_women"] > 0)).all()


def test_same_seed_gives_identical_frame(regions: pd.DataFrame) -> None:
    first = simulate_races(regions, NATIONAL_2021, seed=7)
    second = simulate_races(regions, NATIONAL_2021, seed=7)
    other = simulate_races(regions, NATIONAL_2021, seed=8)
    pd.testing.assert_frame_equal(first, second)
    assert not first["voted"].equals(other["voted"])


def test_expected_votes_calibrate_without_binomial_noise(regions: pd.DataFrame) -> None:
    settings = SimulationSettings.from_params(binomial_sampling=False, overdispersion_sd=0.0)
    races = simulate_races(regions, NATIONAL_2021, settings, seed=1)
    alpha = races.attrs["alpha_region"]
    # Without noise, turnout differences within a region come only from the mix.
    mix = (
        races["region"].map(alpha)
        + true_coefficients(settings)
        @ pd.DataFrame(
            {
                "np.log(n_candidates)": np.log(races["n_candidates"]),
                "self_share": races["self_share"],
                "any_woman": races["any_woman"],
            }
        ).T
    )
    expected = races["registered"] / (1 + np.exp(-mix))
    assert (np.abs(races["voted"] - expected) <= 1.0 + 1e-9).all()


def test_true_formula_names_the_true_terms() -> None:
    settings = SimulationSettings.from_params()
    assert true_formula_rhs(settings) == "C(region) + np.log(n_candidates) + self_share + any_woman"
    assert true_coefficients(settings).to_dict() == {
        "np.log(n_candidates)": 0.20,
        "self_share": -0.30,
        "any_woman": 0.10,
    }


def test_simulation_is_fast(regions: pd.DataFrame) -> None:
    start = time.perf_counter()
    simulate_races(regions, NATIONAL_2021, seed=3)
    assert time.perf_counter() - start < 0.5


def test_scaled_simulation_of_a_million_races(regions: pd.DataFrame) -> None:
    start = time.perf_counter()
    races = simulate_scaled(regions, NATIONAL_2021, seed=5, n_races=1_000_000)
    elapsed = time.perf_counter() - start
    assert len(races) == 1_000_000
    assert elapsed < 10, elapsed  # about 1.5 s measured
    assert (races["n_candidates"] >= 2).all()
    sums = races.groupby("region")[["voted", "registered"]].sum()
    gap = sums["voted"] / sums["registered"] - pd.Series(TURNOUT_2021)[sums.index] / 100
    assert (gap.abs() < 0.5 / sums["registered"]).all()
    factor = 1_000_000 / 730
    assert races["n_candidates"].sum() == round(2297 * factor)
    assert races["registered"].sum() == round(1209817 * factor)


def test_spread_placement_puts_a_party_nominee_in_every_race_before_a_second_one() -> None:
    regions = real_2021_regions()
    spread = simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(party_placement="spread"), seed=5)
    random_ = simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(party_placement="random"), seed=5)
    for races in (spread, random_):
        assert (
            races["n_party"].sum() == NATIONAL_2021["cands_party"] and (races["n_party"] <= races["n_candidates"]).all()
        )
    margins = allocate_region_margins(regions, NATIONAL_2021, "equal", 2).set_index("region")
    for region, group in spread.groupby("region"):
        party, posts = int(margins.at[region, "cands_party"]), len(group)
        room = group["n_party"] < group["n_candidates"]  # a race can take another only while it has a self-nominee
        assert group["n_party"].max() - group.loc[room, "n_party"].min() <= 1 if room.any() else True
        if party >= posts:
            assert (group["n_party"] >= 1).all(), region
        else:
            assert (group["n_party"] <= 1).all() and group["n_party"].sum() == party, region
    assert (spread["n_party"] == 0).mean() < 0.05 < (random_["n_party"] == 0).mean()


def test_a_vanishing_dirichlet_concentration_gives_each_race_one_winner_with_every_vote(regions) -> None:
    """At concentration 0.001 about half the gamma draws underflow to 0; races whose draws all do give every vote to
    one candidate (the Dirichlet's limit), so the simulation still meets every total."""
    settings = SimulationSettings.from_params(dirichlet_concentration=0.001)
    races = simulate_races(regions, NATIONAL_2021, settings, seed=3)
    assert (races["winner_votes"] <= races["valid_votes"]).all()
    assert (races["winner_votes"] == races["valid_votes"]).mean() > 0.95
