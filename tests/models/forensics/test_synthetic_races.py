"""Tests of the election-forensics diagnostics on synthetic races generated here with numpy.

The generator mimics the 2021 rural akim races (730 races in 14 regions): registered voters lognormal with median
about 1500, clipped to [100, 15000]; turnout Beta-distributed around 0.8 with a regional mean; voted drawn binomially,
so the data are "clean" by construction. Statistical assertions use fixed seeds, so every run is deterministic; the
bounds are chosen from the operating characteristics measured over many more seeds (see the test docstrings).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from akim_turnout.models.forensics import (
    BENFORD_SECOND_DIGIT,
    DEFAULT_TOLERANCE_PP,
    distance_to_integer_percent,
    forensics_summary,
    integer_percent_test,
    klimek_fingerprint,
    plant_round_turnout_anomaly,
    second_digit_test,
    second_digits,
    turnout_distribution_by_region,
    validate_races,
)

REGIONS = [
    "Abai", "Akmola", "Aktobe", "Almaty", "Atyrau", "East Kazakhstan", "Jambyl",
    "Jetisu", "Karaganda", "Kostanay", "Kyzylorda", "Mangystau", "North Kazakhstan", "Pavlodar",
]  # fmt: skip


def make_clean_races(seed: int, n_races: int = 730) -> pd.DataFrame:
    """Clean synthetic races: no manipulation, binomial voting given a Beta-distributed race turnout."""
    rng = np.random.default_rng(seed)
    region = rng.integers(0, len(REGIONS), n_races)
    registered = np.clip(np.round(rng.lognormal(np.log(1500), 0.8, n_races)), 100, 15000).astype(np.int64)
    region_mean = rng.beta(40, 10, len(REGIONS))  # regional turnout around 0.8
    kappa = 30.0
    turnout = rng.beta(region_mean[region] * kappa, (1 - region_mean[region]) * kappa)
    voted = rng.binomial(registered, turnout)
    valid = voted - rng.binomial(voted, 0.02)
    winner = rng.binomial(valid, rng.beta(7, 3, n_races))
    return pd.DataFrame(
        {
            "race_id": [f"R{i:03d}" for i in range(n_races)],
            "region": np.array(REGIONS)[region],
            "registered": registered,
            "voted": voted,
            "winner_votes": winner,
            "valid_votes": valid,
        }
    )


def tiny_races() -> pd.DataFrame:
    """Three hand-checkable races."""
    return pd.DataFrame(
        {
            "race_id": ["a", "b", "c"],
            "region": ["X", "X", "Y"],
            "registered": [200, 1499, 400],
            "voted": [160, 1199, 400],  # 80 %, 79.9867 %, 100 %
            "winner_votes": [100, np.nan, 300],
            "valid_votes": [150, np.nan, 390],
        }
    )


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return make_clean_races(2021)


# ------------------------------------------------------------------ validation


def test_missing_column_raises_naming_it():
    races = tiny_races().drop(columns="voted")
    with pytest.raises(ValueError, match="'voted'"):
        integer_percent_test(races, n_sim=10)
    with pytest.raises(ValueError, match="'winner_votes'"):
        klimek_fingerprint(tiny_races().drop(columns="winner_votes"))
    with pytest.raises(ValueError, match="'region'"):
        turnout_distribution_by_region(tiny_races().drop(columns="region"))


def test_voted_above_registered_raises_naming_rows():
    races = tiny_races()
    races.loc[[0, 2], "voted"] = [201, 401]
    with pytest.raises(
        ValueError, match=r"^invalid turnout rows: voted > registered in 2 row\(s\), race_id \['a', 'c'\]$"
    ):
        integer_percent_test(races, n_sim=10)
    with pytest.raises(ValueError, match="voted > registered"):
        plant_round_turnout_anomaly(races, 0.5)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("registered", np.nan, "'registered' has missing values in 1 row.*'b'"),
        ("registered", 0, "registered <= 0 in 1 row.*'b'"),
        ("voted", -1, "'voted' must be >= 0.*'b'"),
        ("voted", 10.5, "'voted' must hold whole numbers.*'b'"),
        ("valid_votes", 1300, "'valid_votes' exceeds 'voted'.*'b'"),
        ("winner_votes", 1150, "'winner_votes' exceeds 'valid_votes'.*'b'"),
    ],
)
def test_bad_values_raise(column, value, message):
    races = tiny_races()
    races["valid_votes"] = races["valid_votes"].fillna(1100)
    races[column] = races[column].astype("float64")
    races.loc[1, column] = value
    with pytest.raises(ValueError, match=message):
        validate_races(races, ["registered", "voted", "winner_votes", "valid_votes"])


def test_non_numeric_and_empty_raise():
    races = tiny_races()
    races["voted"] = races["voted"].astype(str)
    with pytest.raises(ValueError, match="'voted' must be numeric"):
        integer_percent_test(races, n_sim=10)
    with pytest.raises(ValueError, match="no rows"):
        integer_percent_test(tiny_races().iloc[:0], n_sim=10)
    with pytest.raises(TypeError):
        integer_percent_test(tiny_races().to_dict(), n_sim=10)


def test_row_labels_fall_back_to_index():
    races = tiny_races().drop(columns="race_id")
    races.loc[1, "voted"] = 1500
    with pytest.raises(ValueError, match=r"index \[1\]"):
        validate_races(races)


# ------------------------------------------------------------------ 1. Klimek fingerprint


def test_fingerprint_weights_sum_to_registered_of_kept_rows(clean):
    races = clean.copy()
    unpublished = np.random.default_rng(1).choice(len(races), 50, replace=False)
    races["winner_votes"] = races["winner_votes"].astype("float64")
    races["valid_votes"] = races["valid_votes"].astype("float64")
    races.loc[unpublished, ["winner_votes", "valid_votes"]] = np.nan
    result = klimek_fingerprint(races, bins=20)
    kept = races.drop(index=unpublished)
    assert result.n_dropped == 50
    assert result.n_kept == len(races) - 50
    assert result.counts.shape == (20, 20)
    assert result.counts.sum() == pytest.approx(kept["registered"].sum())
    assert result.total_weight == pytest.approx(kept["registered"].sum())
    assert result.turnout_edges[0] == 0 and result.turnout_edges[-1] == 100
    assert result.share_edges[0] == 0 and result.share_edges[-1] == 100
    assert list(result.points.columns) == ["race_id", "region", "turnout_pct", "winner_share_pct", "weight"]
    assert set(result.points["race_id"]) == set(kept["race_id"])
    unweighted = klimek_fingerprint(races, bins=20, weight=None)
    assert unweighted.counts.sum() == len(races) - 50


def test_fingerprint_tiny_frame_bins_and_edges():
    result = klimek_fingerprint(tiny_races(), bins=10)
    # race b has no published winner votes; a: (80 %, 66.7 %), c: (100 %, 76.9 %) -- 100 % falls in the last bin.
    assert (result.n_kept, result.n_dropped) == (2, 1)
    assert result.counts[8, 6] == 200
    assert result.counts[9, 7] == 400
    assert result.counts.sum() == 600


def test_fingerprint_drops_zero_valid_votes():
    races = tiny_races()
    races.loc[0, ["winner_votes", "valid_votes"]] = [0, 0]
    assert klimek_fingerprint(races).n_dropped == 2


# ------------------------------------------------------------------ 2. Turnout distribution


def test_turnout_distribution_tiny_frame():
    result = turnout_distribution_by_region(tiny_races())
    assert list(result.races.columns) == ["race_id", "region", "registered", "voted", "turnout_pct"]
    summary = result.summary.set_index("region")
    assert list(summary.index) == ["X", "Y", "All"]
    assert summary.loc["All", "n_races"] == 3
    assert summary.loc["All", "turnout_weighted_pct"] == pytest.approx(100 * 1759 / 2099)
    assert summary.loc["All", "turnout_median_pct"] == pytest.approx(80.0)
    assert summary.loc["All", "share_above_95"] == pytest.approx(1 / 3)
    assert summary.loc["All", "share_exactly_100"] == pytest.approx(1 / 3)
    assert summary.loc["Y", "share_exactly_100"] == 1.0
    assert summary.loc["X", "turnout_weighted_pct"] == pytest.approx(100 * 1359 / 1699)
    assert summary.loc["X", "turnout_iqr_pp"] == pytest.approx(
        summary.loc["X", "turnout_q75_pct"] - summary.loc["X", "turnout_q25_pct"]
    )


def test_turnout_distribution_covers_all_regions(clean):
    result = turnout_distribution_by_region(clean)
    assert len(result.races) == len(clean)
    assert set(result.summary["region"]) == set(clean["region"]) | {"All"}
    assert result.summary["n_races"].iloc[:-1].sum() == len(clean)
    assert 60 < result.summary["turnout_weighted_pct"].iloc[-1] < 95


# ------------------------------------------------------------------ 3. Integer-percent test


def test_distance_to_integer_percent_is_exact():
    voted = np.array([160, 1199, 1190, 400, 1, 2999])
    registered = np.array([200, 1499, 1499, 400, 3, 3000])
    expected = np.array([0.0, 20 / 1499, 0.386, 0.0, 1 / 3, 0.0333])
    np.testing.assert_allclose(distance_to_integer_percent(voted, registered), expected, atol=5e-4)
    assert distance_to_integer_percent(160, 200) == 0.0  # exactly, not 1e-14


def test_integer_count_on_tiny_frame():
    result = integer_percent_test(tiny_races(), n_sim=50, seed=3)
    # a: 80 % exactly; b: 79.9867 % (0.0133 pp from 80); c: 100 %  -> all three within 0.05 pp.
    assert result.observed == 3
    assert result.races["is_integer"].tolist() == [True, True, True]
    assert result.n_degenerate == 1
    assert integer_percent_test(tiny_races(), n_sim=50, seed=3, tolerance=0.01).observed == 2


def test_p_value_range_determinism_and_fields(clean):
    first = integer_percent_test(clean, n_sim=300, seed=42)
    second = integer_percent_test(clean, n_sim=300, seed=42)
    other = integer_percent_test(clean, n_sim=300, seed=43)
    np.testing.assert_array_equal(first.null_counts, second.null_counts)
    assert first.p_value == second.p_value and first.null_mean == second.null_mean
    assert not np.array_equal(first.null_counts, other.null_counts)
    assert first.observed == other.observed  # the observed count does not depend on the seed
    assert len(first.null_counts) == 300
    assert first.excess == pytest.approx(first.observed - first.null_mean)
    q = first.null_quantiles
    assert q[0.025] <= q[0.5] <= q[0.975]
    assert first.p_value == (np.sum(first.null_counts >= first.observed) + 1) / 301
    assert first.races["null_hit_prob"].between(0, 1).all()
    assert first.races["null_hit_prob"].sum() == pytest.approx(first.null_mean)
    # Without smoothing the same machinery works.
    plain = integer_percent_test(clean, n_sim=50, seed=1, smooth_pp=0)
    assert plain.p_value == (np.sum(plain.null_counts >= plain.observed) + 1) / 51
    assert plain.observed == first.observed and plain.smooth_pp == 0.0


def exact_null_hit_prob(registered: int, voted: int, tolerance: float = DEFAULT_TOLERANCE_PP, smooth_pp=1.0) -> float:
    """P(integer percentage) under the null, by summing binomial pmfs over a fine grid of the smoothing window."""
    votes = np.arange(registered + 1)
    hit = distance_to_integer_percent(votes, registered) <= tolerance + 1e-12
    q = voted / registered + np.linspace(-smooth_pp / 200, smooth_pp / 200, 401)
    return float(np.mean([stats.binom.pmf(votes, registered, qj)[hit].sum() for qj in q]))


def test_null_depends_on_electorate_size_and_matches_exact_probability():
    """With 100 registered every turnout is an integer percentage, with 200 every other one; with 1499 (prime) only
    the vote counts just below each integer hit, about 1 in 15 near 79 %: the Monte Carlo matches the exact sum."""
    races = pd.DataFrame({"registered": [100, 200, 1499, 6000], "voted": [81, 161, 1190, 4321]})
    hit_prob = integer_percent_test(races, n_sim=4000, seed=0).races["null_hit_prob"].to_numpy()
    assert hit_prob[0] == 1.0
    assert hit_prob[1] == pytest.approx(0.5, abs=0.03)
    for i in (2, 3):
        exact = exact_null_hit_prob(int(races["registered"][i]), int(races["voted"][i]))
        assert hit_prob[i] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 4000))


def test_p_value_is_one_when_nothing_is_integer():
    races = pd.DataFrame({"registered": [1499, 1499], "voted": [1190, 1000]})
    result = integer_percent_test(races, n_sim=20, seed=0)
    assert result.observed == 0
    assert result.p_value == 1.0


def test_runtime_1000_simulations_of_730_races(clean):
    integer_percent_test(clean, n_sim=10, seed=0)  # warm-up
    start = time.perf_counter()
    integer_percent_test(clean, n_sim=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"took {elapsed:.3f} s"  # measured about 0.08 s


def test_clean_data_false_positive_rate():
    """Share of clean seeds with p < 0.05 stays <= 0.15 over 40 seeds.

    If the test were exactly calibrated, the number of rejections X ~ Binomial(40, 0.05) and P(X >= 7) = 0.014, so
    the bound 6/40 = 0.15 is consistent with 5 %. Measured over 1000 seeds (n_sim = 200): 3.7 % at 0.05, 0.8 % at 0.01.
    """
    p_values = np.array(
        [integer_percent_test(make_clean_races(seed), n_sim=200, seed=seed).p_value for seed in range(40)]
    )
    assert np.mean(p_values < 0.05) <= 0.15
    assert 0.3 < np.mean(p_values) < 0.7  # roughly uniform p-values, not piled at 1 either


def test_planted_integer_turnouts_are_flagged_across_seeds():
    """5 % of races pushed to integer turnouts: p < 0.01 in at least 16 of 20 seeds, p < 0.05 in at least 19.

    Measured over 300 seeds (n_sim = 1000): power 94 % at 0.01 and 99.3 % at 0.05; P(<= 15 of 20 | 0.94) is < 1 %.
    """
    results = []
    for seed in range(20):
        planted = plant_round_turnout_anomaly(make_clean_races(seed), fraction=0.05, seed=seed + 1000)
        results.append(integer_percent_test(planted, n_sim=500, seed=seed))
    p_values = np.array([r.p_value for r in results])
    assert np.sum(p_values < 0.01) >= 16, p_values
    assert np.sum(p_values < 0.05) >= 19, p_values
    assert np.median([r.excess for r in results]) > 20


# ------------------------------------------------------------------ 4. Second digit


def test_benford_second_digit_probabilities():
    assert BENFORD_SECOND_DIGIT.sum() == pytest.approx(1.0)
    assert BENFORD_SECOND_DIGIT[0] == pytest.approx(0.11968, abs=1e-5)
    assert BENFORD_SECOND_DIGIT[9] == pytest.approx(0.08500, abs=1e-5)
    assert np.all(np.diff(BENFORD_SECOND_DIGIT) < 0)
    np.testing.assert_array_equal(second_digits([10, 19, 123, 9999, 100000, 47]), [0, 9, 2, 9, 0, 7])


def test_second_digit_benford_sample_not_rejected_uniform_rejected():
    rng = np.random.default_rng(7)
    benford = np.floor(10 ** rng.uniform(2, 6, 5000)).astype(np.int64)  # log-uniform over whole decades
    uniform = rng.integers(100, 1000, 5000)  # second digit uniform on 0..9
    conforming = second_digit_test(pd.DataFrame({"voted": benford}))
    assert conforming.table["expected_freq"].sum() == pytest.approx(1.0)
    assert conforming.table["observed"].sum() == conforming.n_used == 5000
    assert conforming.p_value > 0.01
    assert conforming.mean_expected == pytest.approx(4.187, abs=1e-3)
    rejected = second_digit_test(pd.DataFrame({"voted": uniform}))
    assert rejected.p_value < 1e-6
    assert rejected.dof == 9


def test_second_digit_skips_missing_and_small_values():
    result = second_digit_test(tiny_races(), column="winner_votes")
    assert (result.n_used, result.n_missing, result.n_below_10) == (2, 1, 0)
    races = pd.DataFrame({"registered": [10, 10, 100], "voted": [5, 10, 23]})
    result = second_digit_test(races)
    assert (result.n_used, result.n_below_10) == (2, 1)
    with pytest.raises(ValueError, match="'turnout'"):
        second_digit_test(races, column="turnout")


# ------------------------------------------------------------------ 5. Planting


def test_plant_returns_consistent_copy(clean):
    original = clean.copy()
    planted = plant_round_turnout_anomaly(clean, fraction=0.05, seed=5)
    pd.testing.assert_frame_equal(clean, original)  # input untouched
    assert planted["planted"].dtype == bool
    assert planted["planted"].sum() == round(0.05 * len(clean))
    validate_races(planted, ["registered", "voted", "winner_votes", "valid_votes"])
    untouched = ~planted["planted"]
    pd.testing.assert_frame_equal(planted.loc[untouched, clean.columns], clean.loc[untouched])
    assert planted["voted"].dtype == clean["voted"].dtype
    rows = planted[planted["planted"]]
    distance = distance_to_integer_percent(rows["voted"], rows["registered"])
    assert np.all(distance[rows["registered"].to_numpy() >= 1000] <= DEFAULT_TOLERANCE_PP)
    assert np.mean(distance <= DEFAULT_TOLERANCE_PP) >= 0.9
    shift = 100 * (rows["voted"] - clean.loc[rows.index, "voted"]) / rows["registered"]
    assert shift.abs().max() <= 3.5 + 1e-9  # within max_shift of the nearest integer
    # Added ballots go to the winner.
    delta = rows["voted"] - clean.loc[rows.index, "voted"]
    added = delta > 0
    assert (rows.loc[added, "winner_votes"] - clean.loc[rows.index[added], "winner_votes"] == delta[added]).all()


def test_plant_is_deterministic_and_handles_missing_and_multiples_of_5():
    races = tiny_races()
    races["voted"] = races["voted"].astype("Int64")
    first = plant_round_turnout_anomaly(races, fraction=1.0, seed=0, target="multiple_of_5")
    second = plant_round_turnout_anomaly(races, fraction=1.0, seed=0, target="multiple_of_5")
    pd.testing.assert_frame_equal(first, second)
    assert first["planted"].all()
    assert str(first["voted"].dtype) == "Int64"
    assert first["winner_votes"].isna().tolist() == [False, True, False]
    pct = 100 * first["voted"].astype(float) / first["registered"]
    np.testing.assert_allclose(pct, [80.0, 80.0, 100.0], atol=0.05)
    with pytest.raises(ValueError, match="target"):
        plant_round_turnout_anomaly(races, 0.1, target="even")
    with pytest.raises(ValueError, match="fraction"):
        plant_round_turnout_anomaly(races, 1.5)


# ------------------------------------------------------------------ 6. Summary


def test_summary_is_json_ready(clean):
    summary = forensics_summary(clean, n_sim=200, seed=1)
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["n_races"] == 730 and summary["n_regions"] == 14
    assert summary["klimek_n_dropped"] == 0
    assert summary["integer_n_sim"] == 200
    assert summary["integer_p_value"] == pytest.approx(integer_percent_test(clean, n_sim=200, seed=1).p_value, rel=1e-6)
    assert all(isinstance(v, (int, float)) or v is None for v in summary.values())
    assert summary == forensics_summary(clean, n_sim=200, seed=1)
