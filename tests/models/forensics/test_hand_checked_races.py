"""Forensic diagnostics on three hand-checkable races: every headline number computed here by hand, every refusal
asserted by its exact message."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout.models import forensics

# Turnouts: a 160/200 = 80 %, b 1199/1499 = 79.98666 %, c 400/400 = 100 %.
RACES = pd.DataFrame(
    {
        "race_id": ["a", "b", "c"],
        "region": ["X", "X", "Y"],
        "registered": [200, 1499, 400],
        "voted": [160, 1199, 400],
        "winner_votes": [100, np.nan, 300],
        "valid_votes": [150, np.nan, 390],
    }
)
TURNOUT_B = 100 * 1199 / 1499


def hand_benford() -> np.ndarray:
    return np.array([sum(math.log10(1 + 1 / (10 * k + d)) for k in range(1, 10)) for d in range(10)])


def test_benford_table_by_hand() -> None:
    np.testing.assert_allclose(forensics._benford_second_digit(), hand_benford(), rtol=1e-14)
    np.testing.assert_allclose(forensics.BENFORD_SECOND_DIGIT, hand_benford(), rtol=1e-14)
    assert float(np.dot(np.arange(10), hand_benford())) == pytest.approx(4.187, abs=5e-4)


def test_second_digits_and_their_refusal() -> None:
    np.testing.assert_array_equal(forensics.second_digits(np.array([10, 99, 100, 1234, 90817])), [0, 9, 0, 2, 0])
    with pytest.raises(ValueError, match=r"^second digits are defined only for integers >= 10$"):
        forensics.second_digits(np.array([10, 9]))


def test_turnout_percent_by_hand() -> None:
    np.testing.assert_allclose(forensics.turnout_percent(RACES), [80.0, TURNOUT_B, 100.0], rtol=1e-15)


def test_second_digit_test_by_hand() -> None:
    result = forensics.second_digit_test(RACES)
    observed = np.zeros(10)
    observed[[6, 1, 0]] = 1  # 160, 1199, 400
    expected = 3 * hand_benford()
    assert result.table.columns.tolist() == ["digit", "observed", "observed_freq", "expected_freq", "expected"]
    np.testing.assert_array_equal(result.table["observed"], observed)
    np.testing.assert_allclose(result.table["observed_freq"], observed / 3, rtol=1e-15)
    np.testing.assert_allclose(result.table["expected"], expected, rtol=1e-14)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    assert result.chi2 == pytest.approx(chi2, rel=1e-12) and result.dof == 9
    from scipy import stats

    assert result.p_value == pytest.approx(stats.chi2.sf(chi2, 9), rel=1e-10)
    assert result.mean_observed == pytest.approx(7 / 3, rel=1e-15)
    assert result.mean_expected == pytest.approx(float(np.dot(np.arange(10), hand_benford())), rel=1e-14)
    assert (result.n_used, result.n_missing, result.n_below_10, result.column) == (3, 0, 0, "voted")


def test_second_digit_test_on_another_column() -> None:
    races = RACES.assign(ballots=[np.nan, 5.0, 123.0])
    result = forensics.second_digit_test(races, column="ballots")
    assert (result.n_used, result.n_missing, result.n_below_10, result.column) == (1, 1, 1, "ballots")
    assert result.table["observed"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(
        ValueError,
        match=r"^column 'ballots' must hold non-negative whole numbers; bad values in "
        r"2 row\(s\), race_id \['a', 'c'\]$",
    ):
        forensics.second_digit_test(races.assign(ballots=[-1.0, 5.0, 12.5]), column="ballots")
    with pytest.raises(ValueError, match=r"^column 'ballots' must be numeric \(counts\), got dtype (object|str)$"):
        forensics.second_digit_test(races.assign(ballots=["x", "y", "z"]), column="ballots")
    with pytest.raises(ValueError, match=r"^column 'ballots' has no values >= 10, so no second digits to test$"):
        forensics.second_digit_test(races.assign(ballots=[1.0, 2.0, np.nan]), column="ballots")
    with pytest.raises(ValueError, match=r"^missing required column\(s\) \['turnout'\]; the table has columns "):
        forensics.second_digit_test(races, column="turnout")


def test_klimek_points_and_weights_by_hand() -> None:
    result = forensics.klimek_fingerprint(RACES, bins=10)
    assert result.points.to_dict("list") == {
        "race_id": ["a", "c"],
        "region": ["X", "Y"],
        "turnout_pct": [80.0, 100.0],
        "winner_share_pct": [pytest.approx(200 / 3, rel=1e-15), pytest.approx(30000 / 390, rel=1e-15)],
        "weight": [200.0, 400.0],
    }
    assert result.weight == "registered" and result.total_weight == 600.0
    np.testing.assert_allclose(result.turnout_edges, np.linspace(0, 100, 11), rtol=0, atol=1e-12)
    custom = forensics.klimek_fingerprint(RACES.assign(w=[1.5, 2.0, 0.5]), bins=10, weight="w")
    assert custom.points["weight"].tolist() == [1.5, 0.5] and custom.total_weight == 2.0
    assert custom.counts[8, 6] == 1.5 and custom.counts[9, 7] == 0.5
    with pytest.raises(
        ValueError,
        match=r"^weight column 'w' must be finite and >= 0; bad values in 1 row\(s\), "
        r"race_id \['b'\]$",
    ):
        forensics.klimek_fingerprint(RACES.assign(w=[1.0, -1.0, 2.0]), weight="w")
    with pytest.raises(ValueError, match=r"^weight column 'w' must be numeric, got dtype (object|str)$"):
        forensics.klimek_fingerprint(RACES.assign(w=["1", "2", "3"]), weight="w")


def test_summary_by_hand() -> None:
    summary = forensics.forensics_summary(RACES, n_sim=50, seed=3)
    integer = forensics.integer_percent_test(RACES, n_sim=50, seed=3, quantiles=(0.975,))
    assert summary == {
        "n_races": 3,
        "n_regions": 2,
        "turnout_weighted_pct": pytest.approx(100 * 1759 / 2099, rel=1e-5),
        "turnout_median_pct": 80,
        "turnout_iqr_pp": pytest.approx(90 - (TURNOUT_B + 80) / 2, rel=1e-5),
        "share_races_above_95": pytest.approx(1 / 3, rel=1e-5),
        "share_races_exactly_100": pytest.approx(1 / 3, rel=1e-5),
        "klimek_n_kept": 2,
        "klimek_n_dropped": 1,
        "klimek_winner_share_weighted_pct": pytest.approx((200 * 200 / 3 + 400 * 30000 / 390) / 600, rel=1e-5),
        "integer_observed": 3,
        "integer_null_mean": pytest.approx(integer.null_mean, rel=1e-5),
        "integer_null_sd": pytest.approx(integer.null_sd, rel=1e-5),
        "integer_null_q975": pytest.approx(integer.null_quantiles[0.975], rel=1e-5),
        "integer_excess": pytest.approx(3 - integer.null_mean, rel=1e-5),
        "integer_p_value": pytest.approx(integer.p_value, rel=1e-5),
        "integer_n_sim": 50,
        "integer_tolerance_pp": 0.05,
        "integer_smooth_pp": 1,
        "second_digit_n": 3,
        "second_digit_chi2": pytest.approx(forensics.second_digit_test(RACES).chi2, rel=1e-5),
        "second_digit_p_value": pytest.approx(forensics.second_digit_test(RACES).p_value, rel=1e-5),
        "second_digit_mean": pytest.approx(7 / 3, rel=1e-5),
    }
    narrow = forensics.forensics_summary(
        RACES, n_sim=20, seed=1, tolerance=0.01, smooth_pp=0.0, bins=5, digit_column="registered"
    )
    assert narrow["integer_observed"] == 2 and narrow["integer_tolerance_pp"] == 0.01
    assert narrow["integer_smooth_pp"] == 0 and narrow["second_digit_mean"] == pytest.approx(
        4 / 3, rel=1e-5
    )  # 200, 1499, 400
    unpublished = RACES.assign(winner_votes=np.nan, valid_votes=np.nan)
    assert forensics.forensics_summary(unpublished, n_sim=10)["klimek_winner_share_weighted_pct"] is None


def test_integer_test_fields_by_hand() -> None:
    result = forensics.integer_percent_test(RACES, n_sim=40, seed=9, quantiles=(0.1, 0.9))
    counts = result.null_counts
    assert result.null_mean == pytest.approx(counts.mean(), rel=1e-15)
    assert result.null_sd == pytest.approx(counts.std(ddof=1), rel=1e-15)
    assert result.z == pytest.approx((3 - counts.mean()) / counts.std(ddof=1), rel=1e-12)
    assert result.null_quantiles == {0.1: np.quantile(counts, 0.1), 0.9: np.quantile(counts, 0.9)}
    assert result.p_value == (np.sum(counts >= 3) + 1) / 41
    assert (result.n_races, result.n_sim, result.seed, result.tolerance_pp, result.smooth_pp) == (3, 40, 9, 0.05, 1.0)
    per_race = result.races
    assert per_race.columns.tolist() == [
        "race_id",
        "region",
        "registered",
        "voted",
        "turnout_pct",
        "distance_pp",
        "is_integer",
        "null_hit_prob",
    ]
    np.testing.assert_allclose(per_race["distance_pp"], [0.0, 20 / 1499, 0.0], rtol=1e-15, atol=0)
    assert per_race["is_integer"].tolist() == [True, True, True]
    assert per_race["null_hit_prob"].sum() == pytest.approx(result.null_mean, rel=1e-12)  # sum of per-race shares
    single = forensics.integer_percent_test(RACES, n_sim=1, seed=0)
    assert single.null_sd == 0.0 and math.isnan(single.z)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_sim": 0}, r"^n_sim must be a positive integer, got 0$"),
        ({"n_sim": 2.0}, r"^n_sim must be a positive integer, got 2.0$"),
        ({"n_sim": True}, r"^n_sim must be a positive integer, got True$"),
        ({"smooth_pp": 10.5}, r"^smooth_pp must be in \[0, 10\] percentage points, got 10.5$"),
        ({"smooth_pp": -0.1}, r"^smooth_pp must be in \[0, 10\] percentage points, got -0.1$"),
        ({"tolerance": 0.5}, r"^tolerance must be in \[0, 0.5\) percentage points, got 0.5$"),
        ({"tolerance": -0.01}, r"^tolerance must be in \[0, 0.5\) percentage points, got -0.01$"),
    ],
)
def test_integer_test_refuses_bad_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        forensics.integer_percent_test(RACES, **kwargs)


def test_integer_test_accepts_the_edges_of_its_settings() -> None:
    assert forensics.integer_percent_test(RACES, n_sim=1, smooth_pp=10.0, tolerance=0.0).observed == 2
    assert forensics.integer_percent_test(RACES, n_sim=np.int64(2), smooth_pp=0.0).n_sim == 2


def test_planting_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"^target must be one of \['integer', 'multiple_of_5'\], got 'even'$"):
        forensics.plant_round_turnout_anomaly(RACES, 0.5, target="even")
    with pytest.raises(ValueError, match=r"^fraction must be in \[0, 1\], got 1.5$"):
        forensics.plant_round_turnout_anomaly(RACES, 1.5)
    with pytest.raises(ValueError, match=r"^max_shift must be finite and >= 0, got -1$"):
        forensics.plant_round_turnout_anomaly(RACES, 0.5, max_shift=-1)
    for value, shown in ((math.inf, "inf"), (math.nan, "nan")):
        with pytest.raises(ValueError, match=rf"^max_shift must be finite and >= 0, got {shown}$"):
            forensics.plant_round_turnout_anomaly(RACES, 0.5, max_shift=value)


def test_a_winner_above_the_votes_cast_is_refused_where_valid_votes_are_unpublished() -> None:
    """Race b publishes no valid votes; 1,200 votes for its winner exceed its 1,199 votes cast."""
    races = RACES.assign(winner_votes=[100.0, 1200.0, 300.0])
    with pytest.raises(ValueError, match=r"^'winner_votes' exceeds 'voted' in 1 row\(s\), race_id \['b'\]$"):
        forensics.validate_races(races, ["registered", "voted", "winner_votes", "valid_votes"])
    counts = forensics.validate_races(races.assign(winner_votes=[100.0, 1199.0, 300.0]), ["voted", "winner_votes"])
    assert counts["winner_votes"].tolist() == [100.0, 1199.0, 300.0], "a winner with every vote cast is allowed"


def test_planting_by_hand() -> None:
    """The candidate targets are the integers within 3 pp of the nearest one; the winner is the one whose rounded
    vote count lands closest to it. Race b (1199 of 1499, 79.99 %): k % of 1499 rounds with an error of
    |100 round(14.99 k) - 1499 k| = 23, 22, ..., 17 for k = 77 .. 83, so 83 % (1244 votes) wins. Races a (80 %) and
    c (100 %) are exact already."""
    planted = forensics.plant_round_turnout_anomaly(RACES, fraction=1.0, seed=0)
    assert planted["voted"].tolist() == [160, 1244, 400] and planted["planted"].all()
    shifted = RACES.assign(voted=[150, 1100, 399], valid_votes=[140, np.nan, 390], winner_votes=[100, np.nan, 300])
    out = forensics.plant_round_turnout_anomaly(shifted, fraction=1.0, seed=0, max_shift=3.0)
    # a: 75 % exactly stays; b: 73.38 %, errors 30, 29, ..., 24 for k = 70 .. 76 -> 76 % = 1139; c: 99.75 % -> 400
    assert out["voted"].tolist() == [150, 1139, 400]
    assert out["valid_votes"].iloc[2] == 391 and out["winner_votes"].iloc[2] == 301  # the added ballot: the winner's
    five = forensics.plant_round_turnout_anomaly(shifted, fraction=1.0, seed=0, target="multiple_of_5")
    assert five["voted"].tolist() == [150, 1124, 400]  # 75 %; 75 % of 1499 = 1124.25; 100 %


def test_fingerprint_defaults_zero_weights_and_single_valid_votes() -> None:
    races = RACES.assign(winner_votes=[1, np.nan, 300], valid_votes=[1, np.nan, 390], w=[0.0, 1.0, 2.0])
    default = forensics.klimek_fingerprint(races)
    assert default.counts.shape == (50, 50) and default.n_kept == 2  # a race with 1 valid vote is kept
    assert default.points["winner_share_pct"].tolist()[0] == 100.0
    zero = forensics.klimek_fingerprint(races, weight="w")  # a zero weight is allowed
    assert zero.points["weight"].tolist() == [0.0, 2.0] and zero.total_weight == 2.0


def test_second_digit_test_validates_count_columns_and_accepts_zero_elsewhere() -> None:
    with pytest.raises(ValueError, match=r"^column 'voted' has missing values in 1 row\(s\), race_id \['b'\]$"):
        forensics.second_digit_test(RACES.assign(voted=[160, np.nan, 400]))
    zeros = forensics.second_digit_test(RACES.assign(ballots=[0.0, 20.0, 0.0]), column="ballots")
    assert (zeros.n_used, zeros.n_below_10) == (1, 2)


def test_summary_defaults_and_a_one_voter_race() -> None:
    assert forensics.forensics_summary(RACES) == forensics.forensics_summary(RACES, n_sim=1000, seed=0, bins=50)
    assert forensics.forensics_summary(RACES) != forensics.forensics_summary(RACES, n_sim=1001, seed=1)
    one = pd.DataFrame(
        {
            "race_id": ["x", "y"],
            "region": ["X", "X"],
            "registered": [1, 20],
            "voted": [1, 15],
            "winner_votes": [1, np.nan],
            "valid_votes": [1, np.nan],
        }
    )
    assert forensics.forensics_summary(one, n_sim=10)["klimek_winner_share_weighted_pct"] == 100


def test_planting_edges_by_hand() -> None:
    """1499 voters: k % rounds to round(14.99 k) votes with an error of k (in 1/100 vote) for k <= 50, so the lowest
    candidate wins; 149 voters at 1 %: round half up gives (149 + 50) // 100 = 1 vote."""
    races = pd.DataFrame(
        {
            "race_id": list("pqrs"),
            "registered": [1499, 1499, 149, 1499],
            "voted": [600, 15, 2, 1485],
            "valid_votes": [30, 10, 2, 1400],
            "winner_votes": [20, 5, 1, 900],
        }
    )
    out = forensics.plant_round_turnout_anomaly(races, fraction=1.0, seed=0)
    # p: 40.03 % -> 37 % (error 37 is the smallest of 37..43) = 554.63 -> 555; valid 30 - 45 < 0 -> 0, winner 0
    # q: 1.0 % -> 0 % exactly (0 votes; k below 0 is not allowed); r: 1.34 % -> 0 %; s: 99.07 % -> 100 % = 1499
    assert out["voted"].tolist() == [555, 0, 0, 1499]
    assert out["valid_votes"].tolist() == [0, 0, 0, 1414] and out["winner_votes"].tolist() == [0, 0, 0, 914]
    nearest_only = forensics.plant_round_turnout_anomaly(races, fraction=1.0, seed=0, max_shift=0)
    assert nearest_only["voted"].tolist() == [600, 15, 1, 1484]  # 40 %, 1 %, 1 % of 149 = 1.49 -> 1, 99 %
    five = forensics.plant_round_turnout_anomaly(
        races.iloc[:1], fraction=1.0, seed=0, target="multiple_of_5", max_shift=5
    )
    assert five["voted"].tolist() == [525]  # 35, 40, 45 %: 35 % of 1499 = 524.65 -> 525 (error 35) wins
    none = forensics.plant_round_turnout_anomaly(races, fraction=0.0)
    assert not none["planted"].any() and none["voted"].tolist() == races["voted"].tolist()


def test_planting_draws_races_from_the_seed() -> None:
    many = pd.DataFrame({"registered": [1499] * 20, "voted": [600 + i for i in range(20)]})
    default = forensics.plant_round_turnout_anomaly(many, fraction=0.25)
    assert default["planted"].tolist() == forensics.plant_round_turnout_anomaly(many, 0.25, seed=0)["planted"].tolist()
    assert default["planted"].tolist() != forensics.plant_round_turnout_anomaly(many, 0.25, seed=1)["planted"].tolist()
    chosen = np.sort(np.random.default_rng(0).choice(20, size=5, replace=False))
    assert np.flatnonzero(default["planted"]).tolist() == chosen.tolist()


def test_integer_test_per_race_counts_and_turnout() -> None:
    result = forensics.integer_percent_test(RACES, n_sim=5, seed=1)
    per_race = result.races
    assert per_race["registered"].tolist() == RACES["registered"].tolist()
    assert per_race["voted"].tolist() == RACES["voted"].tolist()
    np.testing.assert_allclose(per_race["turnout_pct"], 100 * RACES["voted"] / RACES["registered"], rtol=1e-15)
    assert per_race["race_id"].tolist() == RACES["race_id"].tolist()


def test_integer_test_in_chunks_tallies_every_draw() -> None:
    """500,000 races of 50 votes out of 100 registered: every draw of Binomial(100, q) is a whole percentage, so
    every race is hit in all 20 draws; 4,000,000 // 500,000 = 8 draws per chunk, three chunks."""
    races = pd.DataFrame({"registered": np.full(500_000, 100), "voted": np.full(500_000, 50)})
    result = forensics.integer_percent_test(races, n_sim=20, seed=0, smooth_pp=0.0)
    assert result.null_counts.tolist() == [500_000] * 20
    assert (result.races["null_hit_prob"] == 1.0).all()
    assert result.observed == 500_000 and result.p_value == 1.0


BAD_RACE_TABLES = {
    "missing region": (
        RACES.assign(region=["X", None, "Y"]),
        ("registered", "region"),
        "column 'region' has missing values in 1 row(s), race_id ['b']",
    ),
    "missing count": (
        RACES.assign(voted=[160.0, np.nan, 400.0]),
        ("registered", "voted"),
        "column 'voted' has missing values in 1 row(s), race_id ['b']",
    ),
    "infinite": (
        RACES.assign(registered=[200.0, np.inf, np.inf]),
        ("registered",),
        "column 'registered' has infinite values in 2 row(s), race_id ['b', 'c']",
    ),
    "infinite where missing is allowed": (
        RACES.assign(valid_votes=[150.0, -np.inf, 390.0]),
        ("valid_votes",),
        "column 'valid_votes' has infinite values in 1 row(s), race_id ['b']",
    ),
    "boolean": (
        RACES.assign(voted=[True, False, True]),
        ("voted",),
        "column 'voted' must be numeric (counts), got dtype bool",
    ),
    "empty": (RACES.iloc[:0], ("registered",), "the race table has no rows"),
    "fraction, no race_id": (
        RACES.drop(columns="race_id").assign(voted=[160.5, 1199, 400]),
        ("voted",),
        "column 'voted' must hold whole numbers; non-integers in 1 row(s), index [0]",
    ),
}


@pytest.mark.parametrize(("races", "required", "message"), BAD_RACE_TABLES.values(), ids=BAD_RACE_TABLES.keys())
def test_race_table_errors_name_the_column_and_rows(races, required, message) -> None:
    with pytest.raises(ValueError) as error:
        forensics.validate_races(races, required)
    assert str(error.value) == message


def test_race_table_must_be_a_data_frame_and_unpublished_counts_stay_missing() -> None:
    with pytest.raises(TypeError) as error:
        forensics.validate_races(RACES.to_dict())
    assert str(error.value) == "races must be a pandas DataFrame, got dict"
    arrays = forensics.validate_races(RACES, ("registered", "valid_votes"))
    assert arrays["valid_votes"].dtype == np.float64 and np.isnan(arrays["valid_votes"][1])
    assert arrays["registered"].tolist() == [200.0, 1499.0, 400.0]
