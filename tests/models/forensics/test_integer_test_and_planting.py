"""The forensic diagnostics of akim_turnout.models.forensics on tiny inputs: the integer-percentage test (its
defaults, its null, its per-race table), planting a race, counts held as integers, floats or objects, row messages
and the per-region turnout summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout.models import design, forensics


def test_integer_percent_of_int32_counts_does_not_overflow() -> None:
    """30,000,000 of 40,000,000 is exactly 75 %; 100 * 30,000,000 does not fit in 32 bits, so the counts must be
    widened before multiplying (in int32 the product wraps round to -1,294,967,296 and the distance is not 0)."""
    voted = np.array([30_000_000, 30_000_001], dtype=np.int32)
    registered = np.array([40_000_000, 40_000_000], dtype=np.int32)
    distance = forensics.distance_to_integer_percent(voted, registered)
    # 100 * 30,000,001 = 75 * 40,000,000 + 100: the percentage is 75 + 100 / 40,000,000, 2.5e-6 pp from 75
    np.testing.assert_array_equal(distance, [0.0, 100 / 40_000_000])


def test_integer_percent_null_counts_are_whole_numbers() -> None:
    """Races at exactly 0 % and 100 % turnout are integer percentages in every simulation without smoothing, so each
    simulated count is the number of races (3), held as integers (the documented "simulated counts")."""
    races = pd.DataFrame({"registered": [250, 400, 1000], "voted": [250, 0, 1000]})
    result = forensics.integer_percent_test(races, n_sim=5, seed=1, smooth_pp=0.0)
    assert np.issubdtype(result.null_counts.dtype, np.integer)
    np.testing.assert_array_equal(result.null_counts, [3, 3, 3, 3, 3])


def test_planting_with_valid_votes_unpublished_keeps_the_winner_within_the_votes_cast() -> None:
    """801 of 1000 voted: the nearest integer turnout, 80 %, is exactly 800 votes, so one ballot is removed. A winner
    with all 801 votes (valid votes unpublished, so only the votes cast bound them) loses that ballot: 800, the new
    votes cast. A winner above the votes cast (850 of 801) is refused before anything is planted."""
    races = pd.DataFrame({"registered": [1000], "voted": [801], "valid_votes": [np.nan], "winner_votes": [801.0]})
    planted = forensics.plant_round_turnout_anomaly(races, fraction=1.0, seed=0)
    assert planted["voted"].tolist() == [800]
    assert math.isnan(planted["valid_votes"].iloc[0])
    assert planted["winner_votes"].tolist() == [800.0]
    with pytest.raises(ValueError, match=r"^'winner_votes' exceeds 'voted' in 1 row\(s\), index \[0\]$"):
        forensics.plant_round_turnout_anomaly(races.assign(winner_votes=[850.0]), fraction=1.0, seed=0)


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


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (10, "10 row(s), race_id ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9']"),
        (12, "12 row(s), race_id ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', ... (+2 more)]"),
    ],
)
def test_race_row_messages_show_ten_labels(bad: int, shown: str) -> None:
    df = pd.DataFrame({"race_id": [f"r{i}" for i in range(12)], "voted": [5] * 12, "registered": [10] * 12})
    df.loc[: bad - 1, "voted"] = 11
    with pytest.raises(ValueError) as error:
        forensics.validate_races(df)
    assert str(error.value) == f"invalid turnout rows: voted > registered in {shown}"
    with pytest.raises(ValueError) as error:
        design.validate_turnout_rows(df, source="forensics")  # the same rule, the same labels
    assert str(error.value) == f"forensics: invalid turnout rows: voted > registered in {shown}"


def test_turnout_summary_quartiles_and_thresholds_by_hand() -> None:
    df = pd.DataFrame(
        {
            "race_id": [1, 2, 3, 4, 5],
            "region": ["B", "A", "B", "B", "B"],
            "registered": [100, 200, 100, 100, 100],
            "voted": [95, 150, 50, 100, 70],
        }
    )
    result = forensics.turnout_distribution_by_region(df)
    assert result.races["race_id"].tolist() == [2, 1, 3, 4, 5]  # by region, input order kept within a region
    assert result.races["turnout_pct"].tolist() == [75.0, 95.0, 50.0, 100.0, 70.0]
    b = result.summary.set_index("region").loc["B"]
    # B: 50, 70, 95, 100 -> linear quartiles 65 and 96.25; exactly 95 is not above 95
    assert (b["n_races"], b["registered"], b["voted"]) == (4, 400, 315)
    assert (b["turnout_q25_pct"], b["turnout_median_pct"], b["turnout_q75_pct"]) == (65.0, 82.5, 96.25)
    assert b["turnout_iqr_pp"] == 31.25 and b["share_above_95"] == 0.25 and b["share_exactly_100"] == 0.25
    assert b["turnout_weighted_pct"] == 78.75
    assert result.summary["region"].tolist() == ["A", "B", "All"]
