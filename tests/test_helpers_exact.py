"""Smaller helpers of the statistical core, asserted by value or exact message: row lists in messages, regional fit
labels and bounds, the weighted permutation statistic, the bias-reduced GEE with an offset and its refusals, the
study's bootstrap row and result frame, and the per-region turnout summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import design, fastfit, forensics, regional, resampling
from akim_turnout.models.inference import mancl_derouen_cov
from akim_turnout.study import replications as study
from akim_turnout.study import simulate


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=3
    )


# --------------------------------------------------------------------------------------------------------------
# Row lists in messages: at most ten labels
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (10, "10 row(s), index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"),
        (11, "11 row(s), index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (+1 more)]"),
    ],
)
def test_turnout_row_messages_show_ten_labels(bad: int, shown: str) -> None:
    df = pd.DataFrame({"voted": [5.0] * 12, "registered": [10.0] * 12})
    df.loc[: bad - 1, "voted"] = 11.0
    with pytest.raises(ValueError) as error:
        design.validate_turnout_rows(df)
    assert str(error.value) == f"races: invalid turnout rows: voted > registered in {shown}"


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


# --------------------------------------------------------------------------------------------------------------
# Regional fractional logit: labels, bounds, weights
# --------------------------------------------------------------------------------------------------------------


def regional_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "turnout_pct": [60.0, 0.0, 71.0, 100.0, 69.0],
            "w": [100.0, 300.0, 200.0, 400.0, 500.0],
        }
    )


def test_regional_fit_labels_and_shares_at_0_and_100_percent() -> None:
    fit = regional.fit_regional_fractional_logit(regional_frame(), "x", weight="w")
    assert (fit.name, fit.family, fit.formula) == (
        "regional_fractional_logit",
        "binomial (fractional logit)",
        "turnout_pct/100 ~ x",
    )
    assert fit.notes == ("var_weights = w / mean(w)",) and fit.extra["weight"] == "w"
    assert fit.extra["regions"] == list("ABCDE") and fit.extra["dropped"] == []
    direct = sm.GLM(
        regional_frame()["turnout_pct"] / 100,
        sm.add_constant(regional_frame()["x"]),
        family=sm.families.Binomial(),
        var_weights=regional_frame()["w"] / 300,
    ).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), rtol=1e-9)
    named = regional.fit_regional_fractional_logit(regional_frame(), ["x"], name="mine")
    assert named.name == "mine" and named.notes == () and named.extra["weight"] is None
    with pytest.raises(ValueError, match=r"^mine: turnout_pct outside \[0, 100\] for \['B'\]$"):
        regional.fit_regional_fractional_logit(
            regional_frame().assign(turnout_pct=[60, -1, 70, 80, 90]), ["x"], name="mine"
        )
    with pytest.raises(ValueError, match=r"^mine: 2 observations for 2 parameters; cannot fit$"):
        regional.fit_regional_fractional_logit(regional_frame().iloc[:2], ["x"], name="mine")
    with pytest.raises(ValueError, match=r"^mine: design columns are collinear: \['Intercept', 'x', 'w'\]$"):
        regional.fit_regional_fractional_logit(
            regional_frame().assign(w=2 * regional_frame()["x"]), ["x", "w"], name="mine"
        )


def test_weighted_permutation_statistics_are_those_of_the_weighted_fit() -> None:
    frame = regional_frame()
    fit = regional.fit_regional_fractional_logit(frame, ["x"], weight="w")
    coef = resampling.permutation_test(frame, "x", weight="w", statistic="coef", permutations=[(1, 0, 2, 3, 4)])
    t = resampling.permutation_test(frame, "x", weight="w", permutations=[(1, 0, 2, 3, 4)])
    assert coef.observed == pytest.approx(fit.params["x"], rel=1e-9)
    assert t.observed == pytest.approx(fit.params["x"] / fit.bse["x"], rel=1e-9)
    swapped = regional.fit_regional_fractional_logit(frame.assign(x=[2.0, 1.0, 3.0, 4.0, 5.0]), ["x"], weight="w")
    assert coef.null_distribution[0] == pytest.approx(swapped.params["x"], rel=1e-9)
    assert t.null_distribution[0] == pytest.approx(swapped.params["x"] / swapped.bse["x"], rel=1e-9)
    hc1 = resampling.permutation_test(frame, "x", weight="w", cov_type="HC1", permutations=[(1, 0, 2, 3, 4)])
    hc1_fit = regional.fit_regional_fractional_logit(frame, ["x"], weight="w", cov_type="HC1")
    assert hc1.observed == pytest.approx(hc1_fit.params["x"] / hc1_fit.bse["x"], rel=1e-9)


def test_permutation_with_a_failing_fit_counts_it() -> None:
    """Permuting x onto the covariate z makes the design collinear: that order's fit fails, is NaN, is counted in
    n_failed and is left out of the p-value ((0 + 1) / (1 + 1) with the one valid order below the observed)."""
    frame = pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [0.0, 1.0, 0.0, 1.0, 0.0],
            "z": [1.0, 1.0, 0.0, 0.0, 0.0],
            "turnout_pct": [60.0, 65.0, 70.0, 75.0, 66.0],
        }
    )
    result = resampling.permutation_test(frame, "x", covariates=["z"], permutations=[(0, 1, 2, 4, 3), (1, 3, 2, 0, 4)])
    assert result.n_failed == 1 and math.isnan(result.null_distribution[1]) and result.n_permutations == 2
    assert abs(result.null_distribution[0]) < abs(result.observed)
    assert result.p_value == 0.5
    assert result.to_dict()["null_quantiles"]["q50"] == pytest.approx(result.null_distribution[0], rel=1e-5)


# --------------------------------------------------------------------------------------------------------------
# Bias-reduced GEE covariance
# --------------------------------------------------------------------------------------------------------------


def _gee_data(races: pd.DataFrame):
    return fastfit.prepare_races(races, "np.log(n_candidates) + self_share", "region", "voted", "registered", "t")


def test_mancl_derouen_with_an_offset_equals_statsmodels(races: pd.DataFrame) -> None:
    d = _gee_data(races)
    model = sm.GEE(
        d.voted / d.registered,
        d.exog,
        groups=d.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        offset=0.1 * np.log(d.registered),
    )
    result = model.fit(cov_type="bias_reduced")
    np.testing.assert_allclose(mancl_derouen_cov(result), np.asarray(result.cov_params()), rtol=1e-10)


def test_mancl_derouen_refusals(races: pd.DataFrame) -> None:
    d = _gee_data(races)
    share = d.voted / d.registered
    gaussian = sm.GEE(share, d.exog, groups=d.clusters, cov_struct=sm.cov_struct.Exchangeable()).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs a binomial GEE with logit link$"):
        mancl_derouen_cov(gaussian)
    probit = sm.GEE(
        share,
        d.exog,
        groups=d.clusters,
        cov_struct=sm.cov_struct.Exchangeable(),
        family=sm.families.Binomial(link=sm.families.links.Probit()),
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs a binomial GEE with logit link$"):
        mancl_derouen_cov(probit)
    independent = sm.GEE(
        share, d.exog, groups=d.clusters, family=sm.families.Binomial(), cov_struct=sm.cov_struct.Independence()
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs an exchangeable working correlation$"):
        mancl_derouen_cov(independent)
    weighted = sm.GEE(
        share,
        d.exog,
        groups=d.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        weights=d.registered / d.registered.mean(),
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov does not handle GEE weights$"):
        mancl_derouen_cov(weighted)


# --------------------------------------------------------------------------------------------------------------
# The study's bootstrap row and result frame
# --------------------------------------------------------------------------------------------------------------


def _task(effect: float, **kwargs) -> study.ReplicationTask:
    margins = simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)
    settings = simulate.SimulationSettings.from_params(beta_self_share=effect)
    return study.ReplicationTask(0, 14, 730, 1, effect, 0, margins, settings, ("wild_bootstrap",), seed=3, **kwargs)


@pytest.mark.parametrize("weights", ["webb", "rademacher"])
def test_fit_wild_row_equals_direct_bootstrap_calls(races: pd.DataFrame, weights: str) -> None:
    task = _task(-0.3, n_boot=39, alpha=0.1, wild_weights=weights)
    rhs = simulate.true_formula_rhs(task.settings)
    common = {"n_boot": 39, "seed": 17, "weights": weights, "alpha": 0.1}
    at_zero = resampling.wild_cluster_bootstrap(races, rhs, "self_share", null_value=0.0, ci=False, **common)
    for target in (-0.05, -0.3):
        row = study._fit_wild(races, task, target, boot_seed=17)
        at_target = resampling.wild_cluster_bootstrap(races, rhs, "self_share", null_value=target, ci=False, **common)
        assert row["covered"] is (at_target.p_value >= 0.1)
        assert row["p_value"] == at_zero.p_value and row["estimate"] == at_zero.estimate
        assert math.isnan(row["se"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
        assert row["converged"] is True and row["n_warnings"] == 0
    at_zero_row = study._fit_wild(races, task, 0.0, boot_seed=17)
    assert at_zero_row["covered"] is (at_zero.p_value >= 0.1)


def test_fit_wild_with_the_inverted_interval(races: pd.DataFrame) -> None:
    task = _task(-0.3, n_boot=39, alpha=0.1, wild_ci=True)
    rhs = simulate.true_formula_rhs(task.settings)
    full = resampling.wild_cluster_bootstrap(races, rhs, "self_share", n_boot=39, seed=17, alpha=0.1)
    row = study._fit_wild(races, task, -0.2, boot_seed=17)
    assert (row["ci_low"], row["ci_high"]) == (full.ci_lower, full.ci_upper)
    assert row["covered"] is (full.ci_lower <= -0.2 <= full.ci_upper)
    assert study._fit_wild(races, task, full.ci_upper, boot_seed=17)["covered"] is True
    assert study._fit_wild(races, task, full.ci_lower, boot_seed=17)["covered"] is True


def test_results_frame_is_sorted_and_stated() -> None:
    base = dict.fromkeys(study.RESULT_COLUMNS, 0)
    rows = [
        {**base, "replication": 1, "method": "mixedlm", "estimate": 1.0, "p_value": 0.123456789, "error": ""},
        {**base, "replication": 1, "method": "cluster_t", "estimate": 2.5, "p_value": 0.5, "error": ""},
        {**base, "replication": 0, "method": "naive_binomial", "estimate": 3.0, "p_value": 1e-12, "error": "x"},
    ]
    frame = study.results_frame(rows)
    assert frame.columns.tolist() == list(study.RESULT_COLUMNS)
    assert frame[["replication", "method"]].values.tolist() == [[0, "naive_binomial"], [1, "cluster_t"], [1, "mixedlm"]]
    assert frame["p_value"].tolist() == [0.0, 0.5, 0.123457]
    assert frame["estimate"].dtype == float and frame["estimate"].tolist() == [3.0, 2.5, 1.0]


# --------------------------------------------------------------------------------------------------------------
# Per-region turnout summary
# --------------------------------------------------------------------------------------------------------------


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
