"""Exact checks of the simulator's building blocks and of the forensic diagnostics, on tiny inputs.

Simulator (:mod:`akim_turnout.study.simulate`):

* regional intercepts: the closed form ``logit(target) - offset`` when a region's races share one offset, the root
  of the weighted-mean equation (found here by ``brentq``) otherwise, and the refusal of an unreachable target;
* largest-remainder rounding by group: ties to the earlier quota in long groups, empty trailing groups, and the
  refusal of quotas that cannot reach their totals;
* the drawing helpers: candidate counts, slot marking, party spreading, votes at full turnout, the winner's votes of
  a one-candidate race, the candidate-mix predictor on the count scale, and the race table's integer columns;
* scaled margins, defaults of the public entry points, and the messages of refused settings and margins.

Forensics (:mod:`akim_turnout.models.forensics`):

* integer-percentage test: its defaults, the plain-binomial null drawn from the seed, the spread and z of the null
  with two simulations, and the per-race table;
* planting round turnouts: the nearest target wins even with a wide search, an exact half goes down, and the
  winner's votes are clipped at zero;
* dtypes the tables promise: float64 count arrays from validation, integer counts and a stable region order in the
  turnout table, integer second digits, and integer columns that gain a missing value becoming floats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py
from scipy.optimize import brentq
from scipy.special import expit, logit

from akim_turnout.models import forensics
from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings

# --------------------------------------------------------------------------------------------------------------
# Regional intercepts
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Largest-remainder rounding by group
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------------------------


def test_extra_candidates_are_spread_over_the_region_races() -> None:
    rng = np.random.default_rng(3)
    counts = simulate._draw_candidate_counts(np.array([3, 2]), np.array([36, 4]), 2, rng)
    assert counts.sum() == 40
    assert counts[3:].tolist() == [2, 2]
    assert (counts[:3] > 2).all()  # 30 extra candidates over 3 races: each race gets some


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
    frame = simulate._race_frame(
        np.array(["North", "South"]),
        np.array([0, 1]),
        np.array([100, 200]),
        np.array([60, 150]),
        np.array([2, 3]),
        np.array([2, 1]),
        np.array([0, 1]),
        np.array([40, 70]),
    )
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


# --------------------------------------------------------------------------------------------------------------
# Entry points and messages
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Integer-percentage test
# --------------------------------------------------------------------------------------------------------------


def three_races() -> pd.DataFrame:
    return pd.DataFrame(
        {"race_id": [1, 2, 3], "region": ["a", "a", "b"], "registered": [200, 150, 80], "voted": [150, 97, 52]}
    )


def integer_hits(votes: np.ndarray, registered: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Turnout within ``tolerance`` pp of an integer, by integer arithmetic."""
    remainder = (100 * votes) % registered
    return np.minimum(remainder, registered - remainder) <= tolerance * registered * (1 + 1e-12)


def test_integer_test_defaults_are_1000_simulations_from_seed_zero() -> None:
    default = forensics.integer_percent_test(three_races())
    explicit = forensics.integer_percent_test(three_races(), n_sim=1000, seed=0)
    assert default.n_sim == 1000 and len(default.null_counts) == 1000
    np.testing.assert_array_equal(default.null_counts, explicit.null_counts)


def test_unsmoothed_null_is_binomial_at_the_observed_turnout() -> None:
    races = three_races()
    registered, voted = races["registered"].to_numpy(), races["voted"].to_numpy()
    result = forensics.integer_percent_test(races, n_sim=50, seed=5, smooth_pp=0.0)
    rng = np.random.default_rng(5)
    draws = rng.binomial(registered, np.broadcast_to(voted / registered, (50, 3)))
    hits = integer_hits(draws, registered)
    np.testing.assert_array_equal(result.null_counts, hits.sum(axis=1))
    np.testing.assert_allclose(result.races["null_hit_prob"], hits.mean(axis=0), rtol=0, atol=1e-15)


def test_null_spread_and_z_with_two_simulations() -> None:
    result = forensics.integer_percent_test(three_races(), n_sim=2, seed=2)
    counts = result.null_counts.astype(float)
    assert counts[0] != counts[1]
    sd = abs(counts[0] - counts[1]) / np.sqrt(2)  # sample SD of two values
    assert result.null_sd == pytest.approx(sd, abs=1e-12)
    assert 0 < sd <= 1
    assert result.z == pytest.approx((result.observed - counts.mean()) / sd, abs=1e-12)


def test_integer_test_per_race_table_by_hand() -> None:
    races = three_races()
    table = forensics.integer_percent_test(races, n_sim=5).races
    registered, voted = races["registered"].to_numpy(), races["voted"].to_numpy()
    remainder = (100 * voted) % registered
    expected = pd.DataFrame(
        {
            "race_id": [1, 2, 3],
            "region": ["a", "a", "b"],
            "registered": registered.astype(np.int64),
            "voted": voted.astype(np.int64),
            "turnout_pct": 100.0 * voted / registered,
            "distance_pp": np.minimum(remainder, registered - remainder) / registered,
            "is_integer": integer_hits(voted, registered),
        }
    )
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_dtype=True)


# --------------------------------------------------------------------------------------------------------------
# Planting round turnouts
# --------------------------------------------------------------------------------------------------------------


def one_race(voted: int, valid: int, winner: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"race_id": [1], "registered": [1000], "voted": [voted], "valid_votes": [valid], "winner_votes": [winner]}
    )


def test_planting_picks_the_nearest_integer_even_with_a_wide_search() -> None:
    # 45.3 %: every integer from 0 to 100 is exact with 1000 voters, so closeness alone decides.
    planted = forensics.plant_round_turnout_anomaly(one_race(453, 453, 200), fraction=1.0, max_shift=60.0)
    assert planted["voted"].tolist() == [450]


def test_planting_an_exact_half_goes_to_the_lower_integer() -> None:
    planted = forensics.plant_round_turnout_anomaly(one_race(455, 455, 200), fraction=1.0)
    assert planted["voted"].tolist() == [450]
    assert planted["valid_votes"].tolist() == [450] and planted["winner_votes"].tolist() == [195]


def test_planting_clips_the_winner_votes_at_zero() -> None:
    planted = forensics.plant_round_turnout_anomaly(one_race(503, 503, 2), fraction=1.0)
    assert planted["voted"].tolist() == [500]
    assert planted["valid_votes"].tolist() == [500]
    assert planted["winner_votes"].tolist() == [0]


def test_winner_votes_without_published_valid_votes_are_kept_or_moved_with_voted() -> None:
    races = pd.DataFrame(
        {
            "race_id": [1, 2, 3],
            "registered": [1000, 1000, 1000],
            "voted": [453, 700, 503],
            "valid_votes": [np.nan, np.nan, 503],
            "winner_votes": [300, 452, 200],
        }
    )
    untouched = forensics.plant_round_turnout_anomaly(races, fraction=0.0)
    assert untouched["winner_votes"].tolist() == [300, 452, 200], "no race planted: nothing changes"
    # 45.3 % -> 45 %: three ballots fewer, taken from the winner although valid votes are not published
    planted = forensics.plant_round_turnout_anomaly(races.iloc[[0]], fraction=1.0)
    assert planted["voted"].tolist() == [450] and planted["winner_votes"].tolist() == [297]


def test_integer_column_that_gains_a_missing_value_becomes_float() -> None:
    out = forensics._like(pd.Series([3, 4]), np.array([5.0, np.nan]))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [5.0, np.nan])


# --------------------------------------------------------------------------------------------------------------
# Dtypes of validated counts, turnout tables and second digits
# --------------------------------------------------------------------------------------------------------------


def test_validated_counts_are_float64_arrays() -> None:
    arrays = forensics.validate_races(three_races())
    for column, values in (("registered", [200, 150, 80]), ("voted", [150, 97, 52])):
        assert arrays[column].dtype == np.float64
        assert arrays[column].tolist() == values


def test_turnout_table_keeps_integer_counts_and_the_race_order_within_each_region() -> None:
    region = np.tile([2, 1], 15)  # integer region codes, interleaved
    registered = np.arange(100, 130)
    races = pd.DataFrame({"race_id": np.arange(1, 31), "region": region, "registered": registered, "voted": 50})
    tidy = forensics.turnout_distribution_by_region(races).races
    assert tidy["race_id"].tolist() == list(range(2, 31, 2)) + list(range(1, 30, 2))
    assert tidy["registered"].dtype == np.int64 and tidy["voted"].dtype == np.int64
    assert tidy["registered"].tolist() == list(range(101, 130, 2)) + list(range(100, 129, 2))


def test_second_digits_of_whole_numbers_stored_as_floats_are_integers() -> None:
    digits = forensics.second_digits(np.array([10.0, 123.0, 9999.0, 47.0]))
    assert np.issubdtype(digits.dtype, np.integer)
    assert np.bincount(digits, minlength=10).tolist() == [1, 0, 1, 0, 0, 0, 0, 1, 0, 1]


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
