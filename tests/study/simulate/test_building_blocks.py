"""The building blocks of the race simulator (akim_turnout.study.simulate) on tiny inputs: regional intercepts,
integer allocation (largest remainder, grouped rounding, capped water filling), candidate slots and party
nominees, votes and winners, the race frame, scaled margins and the settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py
from scipy.optimize import brentq
from scipy.special import expit, logit

from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings


def weighted_turnout(alpha: float, registered: np.ndarray, offset: np.ndarray) -> float:
    """Electorate-weighted mean of expit(alpha + offset)."""
    return float(np.sum(registered * expit(alpha + offset)) / registered.sum())


def test_intercepts_are_the_closed_form_when_a_region_shares_one_offset() -> None:
    # Region 0 needs an intercept near 59, outside the search interval of the iteration; region 1 a usual one.
    race_region = np.array([0, 0, 1, 1, 1])
    registered = np.array([100.0, 300.0, 80.0, 120.0, 200.0])
    offset = np.array([-60.0, -60.0, 0.7, 0.7, 0.7])
    target = np.array([0.3, 0.8])
    alphas = simulate._calibrate_alphas(race_region, registered, offset, target)
    np.testing.assert_allclose(alphas, [logit(0.3) + 60.0, logit(0.8) - 0.7], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("offset", "target"),
    [
        (np.array([-1.0, 0.0, 1.5]), 0.01),  # a low target: the weighted mean is flat in alpha
        (np.array([20.0, -20.0, 0.0]), 0.9),  # widely spread offsets: plain Newton steps overshoot
        (np.array([0.3, -0.4, 1.1]), 0.75),
    ],
)
def test_intercept_is_the_root_of_the_weighted_mean_equation(offset: np.ndarray, target: float) -> None:
    registered = np.array([50.0, 100.0, 200.0])
    alpha = simulate._calibrate_alphas(np.zeros(3, dtype=np.int64), registered, offset, np.array([target]))
    root = brentq(lambda a: weighted_turnout(a, registered, offset) - target, -50, 50, xtol=1e-14, rtol=1e-15)
    assert abs(weighted_turnout(alpha[0], registered, offset) - target) < 1e-12
    assert alpha[0] == pytest.approx(root, abs=1e-8)


def test_an_intercept_beyond_fifty_is_found_when_the_offsets_reach_past_it() -> None:
    # The root is near 101.6: the interval searched, [-50, 50] widened by the largest |offset| (102), holds it
    # (a true model of -5 per candidate with 10 candidates gives offsets of -50 and beyond).
    registered, offset = np.array([100.0, 300.0]), np.array([-100.0, -102.0])
    alpha = simulate._calibrate_alphas(np.array([0, 0]), registered, offset, np.array([0.5]))
    root = brentq(lambda a: weighted_turnout(a, registered, offset) - 0.5, 50, 152, xtol=1e-14, rtol=1e-15)
    assert 101 < root < 102 and alpha[0] == pytest.approx(root, abs=1e-8)


def test_grouped_rounding_breaks_ties_towards_the_earlier_quota_in_long_groups() -> None:
    # Two interleaved groups of 30 quotas of 0.5: the 15 units of each group go to its first 15 quotas.
    quotas = np.full(60, 0.5)
    group = np.tile([0, 1], 30)
    out = simulate.grouped_largest_remainder(quotas, group, np.array([15, 15]))
    assert out.tolist() == [1] * 30 + [0] * 30
    assert out[group == 0].tolist() == simulate.largest_remainder(15, np.ones(30)).tolist()


def test_grouped_rounding_accepts_an_empty_last_group_with_total_zero() -> None:
    out = simulate.grouped_largest_remainder(np.array([0.5, 0.5, 2.0]), np.array([0, 0, 1]), np.array([1, 2, 0]))
    assert out.tolist() == [1, 0, 2]


def test_grouped_rounding_refuses_quotas_that_fall_short_of_their_total() -> None:
    with pytest.raises(RuntimeError, match=r"^Largest-remainder rounding failed: quotas do not match totals$"):
        simulate.grouped_largest_remainder(np.array([0.2, 0.3]), np.array([0, 0]), np.array([5]))


def test_extra_candidates_are_spread_over_the_region_races() -> None:
    posts, cands, unpublished = np.array([3, 2]), np.array([36, 4]), np.full((2, 5), np.nan)
    counts = simulate._draw_candidate_counts(posts, cands, unpublished, 2, 0.0, np.random.default_rng(3))
    assert counts.tolist() == [12, 12, 12, 2, 2]  # 30 extra candidates over 3 races, most even at spread 0
    counts = simulate._draw_candidate_counts(posts, cands, unpublished, 2, 3.0, np.random.default_rng(3))
    assert counts.sum() == 40 and counts[3:].tolist() == [2, 2] and counts.min() >= 2


def test_marked_slots_stay_inside_their_region() -> None:
    rng = np.random.default_rng(11)
    per_region, region_slots = np.array([1, 2, 3]), np.array([3, 4, 5])
    marked = simulate._mark_slots(per_region, region_slots, rng)
    blocks = np.split(marked, np.cumsum(region_slots)[:-1])
    assert [int(block.sum()) for block in blocks] == [1, 2, 3]


def test_party_nominees_fill_every_slot_when_they_match_the_candidates() -> None:
    rng = np.random.default_rng(0)
    out = simulate._spread_party(np.array([4, 5]), np.array([2, 2]), np.array([2, 2, 2, 3]), rng)
    assert out.tolist() == [2, 2, 2, 3]


def test_party_nominees_beyond_the_candidates_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^more party nominees than candidates in a region$"):
        simulate._spread_party(np.array([5]), np.array([2]), np.array([2, 2]), rng)


def test_votes_at_full_turnout_equal_the_electorates() -> None:
    rng = np.random.default_rng(0)
    settings = SimulationSettings.from_params(binomial_sampling=False)
    registered = np.array([10, 30, 25])
    voted = simulate._draw_voted(
        registered, np.array([1.0, 1.0, 0.5]), np.array([0, 0, 1]), np.array([40, 12]), settings, rng
    )
    assert voted.tolist() == [10, 30, 12]


def test_winner_of_a_one_candidate_race_takes_every_vote() -> None:
    rng = np.random.default_rng(4)
    winner = simulate._winner_votes(np.array([0, 1, 1, 2, 2, 2]), np.array([7, 10, 9]), 1.0, rng)
    assert winner[0] == 7
    assert 5 <= winner[1] <= 10 and 3 <= winner[2] <= 9


def test_mix_predictor_on_the_count_scale_by_hand() -> None:
    settings = SimulationSettings.from_params(cands_scale="count", beta_cands=0.2, beta_self_share=-0.3, beta_women=0.1)
    out = simulate._mix_predictor(np.array([2, 4]), np.array([0.0, 0.5]), np.array([1.0, 0.0]), settings)
    np.testing.assert_allclose(out, [0.2 * 2 + 0.1, 0.2 * 4 - 0.3 * 0.5], rtol=0, atol=1e-15)


def test_race_frame_by_hand() -> None:
    frame = simulate.RaceDraw(
        np.array(["North", "South"], dtype=object),
        np.array([0, 1]),
        np.array([100, 200]),
        np.array([60, 150]),
        np.array([2, 3]),
        np.array([2, 1]),
        np.array([0, 1]),
        np.array([40, 70]),
        np.array([0.25, -0.5]),
        np.array([-0.3, -0.3]),
        5,
    ).frame()
    expected = pd.DataFrame(
        {
            "race_id": [1, 2],
            "region": ["North", "South"],
            "registered": [100, 200],
            "voted": [60, 150],
            "n_candidates": [2, 3],
            "n_party": [2, 1],
            "n_self": [0, 2],
            "n_women": [0, 1],
            "self_share": [0.0, 2 / 3],
            "any_self": np.array([0, 1], dtype=np.int64),
            "women_share": [0.0, 1 / 3],
            "any_woman": np.array([0, 1], dtype=np.int64),
            "winner_votes": [40, 70],
            "valid_votes": [60, 150],
        }
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["any_self"].dtype == np.int64 and frame["any_woman"].dtype == np.int64
    assert frame.attrs == {
        "alpha_region": {"North": 0.25, "South": -0.5},
        "slope_region": {"North": -0.3, "South": -0.3},
        "seed": 5,
    }


def small_margins() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["North", "South"],
            "turnout_pct": [62.5, 81.0],
            "posts": [4, 3],
            "cands": [11, 8],
            "cands_party": [5, 4],
            "cands_self": [6, 4],
            "cands_women": [2, 1],
            "voters_on_rolls": [2400, 1500],
        }
    )


@pytest.mark.parametrize("placement", ["spread", "random"])
def test_simulated_counts_are_integers_that_add_up_to_the_margins(placement: str) -> None:
    margins = small_margins()
    races = simulate.simulate_from_margins(margins, SimulationSettings.from_params(party_placement=placement), seed=8)
    counts = ["registered", "voted", "n_candidates", "n_party", "n_self", "n_women", "winner_votes"]
    assert all(races[column].dtype == np.int64 for column in counts)
    sums = races.groupby("region", sort=False)[["n_candidates", "n_party", "n_women", "registered"]].sum()
    assert sums.to_numpy().tolist() == [[11, 5, 2, 2400], [8, 4, 1, 1500]]


def test_margins_stored_as_floats_give_the_same_races() -> None:
    margins = small_margins()
    as_floats = margins.astype(dict.fromkeys(simulate.MARGIN_COLUMNS, float))
    settings = SimulationSettings.from_params()
    pd.testing.assert_frame_equal(
        simulate.simulate_from_margins(as_floats, settings, seed=2),
        simulate.simulate_from_margins(margins, settings, seed=2),
    )


def test_scaled_margins_by_hand() -> None:
    scaled = simulate.scale_margins(small_margins(), 14)  # twice the 7 posts
    assert scaled["posts"].tolist() == [8, 6]
    assert scaled["cands"].tolist() == [22, 16]
    assert scaled["cands_party"].tolist() == [10, 8]
    assert scaled["cands_self"].tolist() == [12, 8]
    assert scaled["cands_women"].tolist() == [4, 2]
    assert scaled["voters_on_rolls"].tolist() == [4800, 3000]


def test_default_seed_is_zero() -> None:
    regions = real_2021_regions()
    pd.testing.assert_frame_equal(
        simulate.simulate_races(regions, NATIONAL_2021), simulate.simulate_races(regions, NATIONAL_2021, seed=0)
    )
    pd.testing.assert_frame_equal(
        simulate.simulate_scaled(regions, NATIONAL_2021, n_races=1000),
        simulate.simulate_scaled(regions, NATIONAL_2021, seed=0, n_races=1000),
    )


def test_allocation_uses_the_minimum_of_candidates_and_the_settings_allow_only_what_it_can_meet() -> None:
    # With at least 3 candidates per post the allocation itself refuses three regions (and nothing else) ...
    with pytest.raises(
        ValueError,
        match=r"^Infeasible regional margins: fewer candidates than min_candidates per post: "
        r"\['Atyrau', 'Kostanay', 'Mangystau'\]$",
    ):
        simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021, "equal", 3)
    # ... so the declared range stops at 2, which every region meets
    assert not simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021, "equal", 2).empty
    with pytest.raises(ValueError, match=r"parameter 'settings.min_candidates' must be an integer from 1 to 2, got 3$"):
        SimulationSettings.from_params(min_candidates=3)


def test_settings_mapping_lists_every_problem_in_one_message() -> None:
    with pytest.raises(ValueError) as caught:
        SimulationSettings.from_mapping({"beta_cand": 1, "min_candidates": 3.0})
    message = str(caught.value)
    assert message.startswith("Invalid simulation settings: unknown parameter 'settings.beta_cand' (known: ")
    assert message.endswith("); parameter 'settings.min_candidates' must be an integer from 1 to 2, got 3.0")


@pytest.mark.parametrize(("total", "basis"), [(-1, [1.0, 1.0]), (5, [0.0, 0.0]), (5, [2.0, -1.0])])
def test_largest_remainder_refuses_impossible_splits(total: int, basis: list[float]) -> None:
    with pytest.raises(ValueError, match=rf"^Cannot split {total} over basis \[{basis[0]}, {basis[1]}\]$"):
        simulate.largest_remainder(total, np.array(basis))


def test_largest_remainder_edges_by_hand() -> None:
    assert simulate.largest_remainder(0, np.array([1.0, 2.0])).tolist() == [0, 0]
    assert simulate.largest_remainder(3, np.array([0.0, 1.0])).tolist() == [0, 3]
    assert simulate.largest_remainder(1, np.array([0.5, 0.5])).tolist() == [1, 0]  # a tie goes to the first
    assert simulate.largest_remainder(7, np.array([1, 2, 4])).tolist() == [1, 2, 4]
    # quotas 2.4, 1.6, 1.0 (sum 5): floors 2, 1, 1, the unit left goes to the largest fraction (0.6)
    assert simulate.largest_remainder(5, np.array([2.4, 1.6, 1.0])).tolist() == [2, 2, 1]


def test_capped_water_filling_by_hand() -> None:
    caps = np.array([10, 10, 2])
    # proportional quotas 6, 6, 6 exceed the third cap: it is fixed at 2 and 16 is spread over the others
    np.testing.assert_allclose(scale_one_group(np.array([1.0, 1.0, 1.0]), caps, 18), [8.0, 8.0, 2.0], rtol=1e-15)
    # no weight at all: spread in proportion to the caps
    np.testing.assert_allclose(scale_one_group(np.zeros(3), caps, 11), [5.0, 5.0, 1.0], rtol=1e-15)
    # weights only where the cap is reached: the rest goes by caps
    np.testing.assert_allclose(scale_one_group(np.array([0.0, 0.0, 1.0]), caps, 12), [5.0, 5.0, 2.0], rtol=1e-15)
    # a quota exactly at its cap stays free and equal to it
    np.testing.assert_allclose(
        scale_one_group(np.array([1.0, 1.0, 1.0]), np.array([2, 2, 2]), 6),
        [2.0, 2.0, 2.0],
        rtol=1e-15,
    )
    np.testing.assert_allclose(scale_one_group(np.array([1.0, 1.0]), caps[:2], 20), [10.0, 10.0])
    with pytest.raises(ValueError, match=r"^Target exceeds the sum of caps$"):
        scale_one_group(np.ones(3), caps, 23)


def test_true_coefficients_series() -> None:
    truth = simulate.true_coefficients(simulate.SimulationSettings.from_params())
    assert truth.name == "true_value" and truth.to_dict() == {
        "np.log(n_candidates)": 0.2,
        "self_share": -0.3,
        "any_woman": 0.1,
    }


@pytest.fixture(scope="module")
def races_seed_5() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=5
    )


def test_simulated_race_columns_by_hand() -> None:
    """One simulation built inside the test (not from a shared fixture): every derived column recomputed."""
    margins = simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)
    races_seed_5 = simulate.simulate_from_margins(margins, simulate.SimulationSettings.from_params(), seed=12)
    assert races_seed_5.attrs["seed"] == 12 and set(races_seed_5.attrs["alpha_region"]) == set(margins["region"])
    assert all(round(a, 10) == a for a in races_seed_5.attrs["alpha_region"].values())
    assert (races_seed_5["n_self"] == races_seed_5["n_candidates"] - races_seed_5["n_party"]).all()
    np.testing.assert_allclose(
        races_seed_5["self_share"], races_seed_5["n_self"] / races_seed_5["n_candidates"], rtol=1e-15
    )
    np.testing.assert_allclose(
        races_seed_5["women_share"], races_seed_5["n_women"] / races_seed_5["n_candidates"], rtol=1e-15
    )
    assert (races_seed_5["any_self"] == (races_seed_5["n_self"] > 0).astype(int)).all()
    assert (races_seed_5["any_woman"] == (races_seed_5["n_women"] > 0).astype(int)).all()
    assert (races_seed_5["winner_votes"] <= races_seed_5["valid_votes"]).all() and (
        races_seed_5["valid_votes"] == races_seed_5["voted"]
    ).all()
    assert (
        races_seed_5["winner_votes"] * races_seed_5["n_candidates"] >= races_seed_5["voted"]
    ).all() and races_seed_5["winner_votes"].dtype.kind == "i"
    assert (races_seed_5["voted"] < races_seed_5["registered"]).all() and (races_seed_5["n_candidates"] >= 2).all()
    by_region = races_seed_5.groupby("region")
    assert by_region["n_party"].sum()[margins["region"]].tolist() == margins["cands_party"].tolist()
    assert by_region["n_women"].sum()[margins["region"]].tolist() == margins["cands_women"].tolist()
    assert by_region["n_candidates"].sum()[margins["region"]].tolist() == margins["cands"].tolist()
    assert by_region["registered"].sum()[margins["region"]].tolist() == margins["voters_on_rolls"].tolist()


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=5
    )


def test_the_largest_allowed_min_registered_fits_the_published_margins() -> None:
    """900 voters per race fit the margins; on the pipeline's own regional table (where built) the region with the
    fewest voters per post has 901.8 of them, so 902 would not."""
    from akim_turnout.data import processed as data
    from akim_turnout.pipeline.paths import project_root

    races = simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, SimulationSettings.from_params(min_registered=900), seed=0
    )
    assert races["registered"].min() >= 900
    with pytest.raises(ValueError, match=r"must be an integer from 1 to 900, got 902$"):
        SimulationSettings.from_params(min_registered=902)
    folder = project_root() / "data/processed/ingest"
    if folder.is_dir():
        regional = data.read_processed("regional_2021", folder)
        national = data.read_processed("national", folder).set_index("round_id").loc[data.ROUND_2021]
        margins = simulate.allocate_region_margins(*simulate.inputs_from_published(regional, national), "equal", 2)
        assert 900 < (margins["voters_on_rolls"] / margins["posts"]).min() < 902


def scale_one_group(weights: np.ndarray, caps: np.ndarray, total: int) -> np.ndarray:
    """The capped scaling of one group (every row in group 0)."""
    return simulate.scale_to_totals_with_caps(weights, caps, np.zeros(len(caps), dtype=np.int64), np.array([total]))


def test_capped_scaling_by_hand_in_two_groups_at_once() -> None:
    # group 0: weights 1, 1, 8 to 9 with caps 4, 4, 4: the third is capped, the rest 5 split 2.5 / 2.5;
    # group 1: weights sum to 0, so the total 3 follows the caps 1 and 2
    quotas = simulate.scale_to_totals_with_caps(
        np.array([1.0, 1.0, 8.0, 0.0, 0.0]), np.array([4, 4, 4, 1, 2]), np.array([0, 0, 0, 1, 1]), np.array([9, 3])
    )
    np.testing.assert_allclose(quotas, [2.5, 2.5, 4.0, 1.0, 2.0], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"^Target exceeds the sum of caps$"):
        simulate.scale_to_totals_with_caps(np.ones(2), np.array([1, 1]), np.array([0, 1]), np.array([1, 2]))


def test_capped_scaling_of_many_groups_equals_each_group_alone() -> None:
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 30, 40)
    group = np.repeat(np.arange(40), sizes)
    caps = rng.integers(1, 500, len(group))
    weights = rng.binomial(caps, rng.random(len(group)) ** 0.2).astype(float)  # many near their caps
    totals = np.array([int(caps[group == g].sum() * rng.uniform(0.5, 1.0)) for g in range(40)])
    together = simulate.scale_to_totals_with_caps(weights, caps, group, totals)
    for g in range(40):
        alone = scale_one_group(weights[group == g], caps[group == g], int(totals[g]))
        np.testing.assert_array_equal(together[group == g], alone)
        assert np.all(together[group == g] <= caps[group == g]) and together[group == g].sum() == pytest.approx(
            totals[g]
        )


def test_rule_counts_of_many_regions_equal_each_region_alone() -> None:
    rng = np.random.default_rng(5)
    posts = np.array([3, 40, 1, 17, 9])
    cands = posts * 2 + np.array([0, 55, 4, 3, 30])
    z = rng.standard_normal(posts.sum())
    together = simulate.candidate_counts_by_rule(posts, cands, 2, 0.48, z)
    starts = np.concatenate([[0], np.cumsum(posts)[:-1]])
    for p, c, start in zip(posts, cands, starts, strict=True):
        alone = simulate.candidate_counts_rule(int(p), int(c), 2, 0.48, z[start : start + p])
        np.testing.assert_array_equal(together[start : start + p], alone)
        assert together[start : start + p].sum() == c
