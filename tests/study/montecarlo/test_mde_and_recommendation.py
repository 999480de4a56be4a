"""Exact values of the Monte Carlo summaries (akim_turnout.study.montecarlo) on tiny hand-made inputs: exact
intervals of counts in object arrays, group summaries, the power curve, the minimum detectable effect, the
recommended method and the study metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from akim_turnout.pipeline import outputs
from akim_turnout.report.labels import method as label
from akim_turnout.study import montecarlo


def exact(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % interval of k successes in n trials, from scipy's exact binomial test."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def summary_rows(
    method: str,
    rejected: list[int],
    covered: list[int],
    n_ok: list[int] | int,
    effects: tuple[float, ...] = (0.0, -0.1, -0.2),
    design_point: tuple[int, int, int] = (0, 14, 730),
    mean_pq: list[float] | float = 0.15,
    n: list[int] | int | None = None,
) -> pd.DataFrame:
    """Summary rows of one method in one design, with rates and exact intervals computed from the counts."""
    n_ok = [n_ok] * len(effects) if isinstance(n_ok, int) else n_ok
    n = n_ok if n is None else ([n] * len(effects) if isinstance(n, int) else n)
    rows = []
    for e, effect in enumerate(effects):
        k_rej, k_cov, m = rejected[e], covered[e], n_ok[e]
        rej_low, rej_high = exact(k_rej, m) if m else (math.nan, math.nan)
        cov_low, cov_high = exact(k_cov, m) if m else (math.nan, math.nan)
        rows.append(
            {
                "design_index": design_point[0],
                "n_regions": design_point[1],
                "n_races": design_point[2],
                "effect_index": e,
                "effect": effect,
                "method": method,
                "n": n[e],
                "n_ok": m,
                "rejection": k_rej / m if m else math.nan,
                "rejection_low": rej_low,
                "rejection_high": rej_high,
                "coverage": k_cov / m if m else math.nan,
                "coverage_low": cov_low,
                "coverage_high": cov_high,
                "bias": 0.01,
                "se_ratio": 0.9,
                "mean_pq": mean_pq[e] if isinstance(mean_pq, list) else mean_pq,
            }
        )
    return pd.DataFrame(rows)


def test_clopper_pearson_of_counts_in_object_arrays_is_the_exact_interval() -> None:
    # counts read from a frame column of Python integers arrive as an object array
    low, high = montecarlo.clopper_pearson(np.array([3, 0, 10], dtype=object), np.array([10, 10, 10], dtype=object))
    expected = [exact(3, 10), exact(0, 10), exact(10, 10)]
    np.testing.assert_allclose(low, [e[0] for e in expected], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(high, [e[1] for e in expected], rtol=1e-10, atol=1e-14)
    assert (low[1], high[2]) == (0.0, 1.0)


def _result_rows(method: str, estimates: list[float], ok: list[bool], se: list[float]) -> list[dict]:
    return [
        {
            "design_index": 0,
            "n_regions": 14,
            "n_races": 730,
            "effect_index": 0,
            "effect": 0.0,
            "replication": r,
            "method": method,
            "target": 0.0,
            "estimate": estimate,
            "se": s,
            "ci_low": estimate - 0.5,
            "ci_high": estimate + 0.5,
            "p_value": 0.5,
            "covered": good,
            "rejected": False,
            "ok": good,
            "converged": True,
            "n_warnings": 0,
            "mean_pq": 0.2,
        }
        for r, (estimate, good, s) in enumerate(zip(estimates, ok, se, strict=True))
    ]


def test_summarise_group_with_two_usable_fits() -> None:
    summary = montecarlo.summarise(
        pd.DataFrame(_result_rows("cluster_t", [0.1, 0.3, math.nan], [True, True, False], [0.2, 0.4, math.nan]))
    )
    row = summary.iloc[0]
    sd = math.sqrt(((0.1 - 0.2) ** 2 + (0.3 - 0.2) ** 2) / 1)
    assert (row["n"], row["n_ok"]) == (3, 2)
    assert row["sd_estimate"] == pytest.approx(sd, rel=1e-12)
    assert row["mean_se"] == pytest.approx(0.3, rel=1e-12)
    assert row["se_ratio"] == pytest.approx(0.3 / sd, rel=1e-12)
    assert (row["coverage"], row["coverage_low"], row["coverage_high"]) == pytest.approx((1.0, *exact(2, 2)))


def test_summarise_keeps_methods_outside_the_reporting_order_in_order_of_appearance() -> None:
    rows = _result_rows("ols", [0.1, 0.2], [True, True], [0.1, 0.1])
    rows += _result_rows("cluster_t", [0.1, 0.2], [True, True], [0.1, 0.1])
    rows += _result_rows("beta", [0.1, 0.2], [True, True], [0.1, 0.1])
    summary = montecarlo.summarise(pd.DataFrame(rows))
    assert summary["method"].tolist() == ["cluster_t", "ols", "beta"]


def test_power_curve_keeps_the_order_of_equal_absolute_effects() -> None:
    effects = (0.2, -0.2, 0.1, -0.1, 0.0, 0.3, -0.3) * 3
    summary = pd.DataFrame(
        {
            "design_index": 0,
            "method": "cluster_t",
            "effect": effects,
            "rejection": np.arange(len(effects)) / 100,
            "rejection_low": 0.0,
            "rejection_high": 1.0,
            "n_ok": 100,
        }
    )
    curve = montecarlo.power_curve(summary, "cluster_t")
    order = sorted(range(len(effects)), key=lambda i: abs(effects[i]))  # Python's sort is stable
    assert curve["power"].tolist() == [i / 100 for i in order]


def test_mde_when_the_power_reaches_the_target_exactly_at_the_last_grid_effect() -> None:
    summary = summary_rows("cluster_t", [5, 50, 80], [95, 95, 95], 100)
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8)
    assert mde["reached"] is True
    assert mde["mde_logit_linear"] == pytest.approx(0.2, rel=1e-12)
    assert mde["mde_pp_linear"] == pytest.approx(0.2 * 0.15 * 100, rel=1e-12)
    # the probit curve through 5, 50 and 80 % reaches 80 % a little before the last effect
    assert 0.1 < mde["mde_logit"] < 0.2
    assert mde["mde_pp"] == pytest.approx(mde["mde_logit"] * 0.15 * 100, rel=1e-12)
    assert mde["mde_logit_low"] <= mde["mde_logit"]
    assert math.isnan(mde["mde_logit_high"])  # redrawn curves that reach 80 % only beyond the grid


def test_mde_of_a_design_other_than_the_first() -> None:
    first = summary_rows("cluster_t", [5, 24, 25], [24, 24, 24], 25, effects=(0.0, -0.5, -1.0), mean_pq=0.5)
    second = summary_rows(
        "cluster_t",
        [5, 30, 45],
        [95, 57, 48],
        [100, 60, 50],
        design_point=(1, 28, 1460),
        mean_pq=[0.1, 0.2, 0.3],
    )
    summary = pd.concat([first, second], ignore_index=True)
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8, design_index=1)
    mean_pq = (100 * 0.1 + 60 * 0.2 + 50 * 0.3) / 210  # weighted by usable fits
    assert mde["mean_pq"] == pytest.approx(mean_pq, rel=1e-12)
    assert mde["enough_replications"] is True and mde["size_ok"] is True
    assert mde["mde_logit_linear"] == pytest.approx(0.1 + (0.8 - 0.5) / (0.9 - 0.5) * 0.1, rel=1e-12)
    assert mde["mde_pp_linear"] == pytest.approx(0.175 * mean_pq * 100, rel=1e-12)
    assert mde["mde_pp"] == pytest.approx(mde["mde_logit"] * mean_pq * 100, rel=1e-12)
    assert mde["size"] == 0.05


def test_mde_without_usable_fits_is_nan() -> None:
    summary = summary_rows("cluster_t", [0, 0, 0], [0, 0, 0], 0, n=3)
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t")
    assert math.isnan(mde["mean_pq"]) and math.isnan(mde["size"]) and math.isnan(mde["mde_logit"])
    assert (mde["size_ok"], mde["enough_replications"], mde["reached"]) == (False, False, False)


def test_mde_without_effect_zero_has_no_size() -> None:
    summary = summary_rows("cluster_t", [50, 90], [95, 95], 100, effects=(-0.1, -0.2))
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t")
    assert math.isnan(mde["size"]) and math.isnan(mde["size_low"]) and math.isnan(mde["size_high"])
    assert mde["size_ok"] is False and mde["enough_replications"] is False
    assert math.isnan(mde["mde_logit"]) and mde["reached"] is True


@pytest.mark.parametrize(
    "bounds, size_ok", [((0.05, 0.2), True), ((0.0, 0.05), True), ((0.0, 0.04), True), ((0.0500001, 0.2), False)]
)
def test_mde_size_interval_ending_exactly_at_alpha_contains_it(bounds: tuple[float, float], size_ok: bool) -> None:
    summary = summary_rows("cluster_t", [5, 50, 90], [95, 95, 95], 100)
    summary.loc[0, ["rejection_low", "rejection_high"]] = bounds
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8)
    assert mde["size_ok"] is size_ok
    if size_ok:  # a conservative size (interval below alpha) keeps its MDE
        assert mde["mde_logit_linear"] == pytest.approx(0.1 + (0.8 - 0.5) / (0.9 - 0.5) * 0.1, rel=1e-12)
        assert 0.1 < mde["mde_logit"] < 0.2
    else:
        assert math.isnan(mde["mde_logit"])


# --------------------------------------------------------------------------
# Recommended method
# --------------------------------------------------------------------------


# The rule itself (acceptability, power, ties) is tested on per-replication results in test_recommendation_rule.py;
# here, on summary rows alone (no paired test, so nothing is tied), which methods it weighs and how it falls back.


def test_recommend_method_weighs_only_methods_with_usable_fits() -> None:
    summary = pd.concat(
        [
            summary_rows("cluster_t", [3, 30, 50], [57, 57, 57], 60),
            summary_rows("mixedlm", [0, 1, 1], [1, 1, 1], 1),
            summary_rows("naive_binomial", [0, 0, 0], [0, 0, 0], 0, n=2),
        ],
        ignore_index=True,
    )
    chosen = montecarlo.recommend(summary)
    assert chosen["method"] == "cluster_t" and chosen["tied"] == []
    # no method has 100 data sets at 0, so every method with usable fits is weighed, the naive one has none
    assert [c["method"] for c in chosen["candidates"]] == ["cluster_t", "mixedlm"]
    assert label("naive_binomial") not in chosen["reason"]
    # one data set resolves nothing: the ceiling for 1 data set is the upper end of 0 of 1 (97.5 %), so the mixed
    # model is acceptable and more powerful (2 of 2), but it is not cluster-robust
    assert montecarlo.resolvable_bound(1, 0.05, "upper") == pytest.approx(0.975, rel=1e-12)
    assert {c["method"]: c["acceptable"] for c in chosen["candidates"]} == {"cluster_t": True, "mixedlm": True}
    assert montecarlo.recommend_method(summary) == ("cluster_t", chosen["reason"])


def test_recommend_method_when_only_a_method_that_is_not_cluster_robust_qualifies() -> None:
    summary = pd.concat(
        [
            summary_rows("cluster_t", [20, 60, 90], [180, 90, 90], [200, 100, 100], n=[203, 100, 100]),
            summary_rows("mixedlm", [10, 60, 90], [190, 95, 95], [200, 100, 100]),
        ],
        ignore_index=True,
    )
    chosen = montecarlo.recommend(summary)
    # 20 of 200: the upper end of the size interval (15.0 %) is above the ceiling for 200 data sets (12.0 %)
    assert exact(20, 200)[1] > chosen["criteria"]["size_ceiling"] >= exact(10, 200)[1]
    assert chosen["method"] == "mixedlm"
    assert "1 of 2 methods were acceptable; among them (no cluster-robust method was acceptable)" in chosen["reason"]
    assert "(3 of 203 fits of the chosen method" not in chosen["reason"]


def test_recommend_method_falls_back_to_the_closest_cluster_robust_size() -> None:
    summary = pd.concat(
        [
            summary_rows("cluster_t", [24, 60, 90], [176, 90, 90], [200, 100, 100], n=[203, 100, 100]),
            summary_rows("wild_bootstrap", [20, 60, 90], [180, 80, 90], [200, 100, 100]),
            summary_rows("mixedlm", [40, 60, 90], [160, 95, 95], [200, 100, 100]),
        ],
        ignore_index=True,
    )
    chosen = montecarlo.recommend(summary)
    assert chosen["method"] == "wild_bootstrap" and chosen["tied"] == []
    assert chosen["reason"].endswith(
        f"No method was acceptable; the {label('wild_bootstrap')} is reported because its size came closest to 5 % "
        "among the cluster-robust methods."
    )


def test_recommend_method_needs_effect_zero_but_no_other_effect() -> None:
    only_null = summary_rows("cluster_t", [6], [114], 120, effects=(0.0,))
    chosen = montecarlo.recommend(only_null)
    assert chosen["method"] == "cluster_t" and "1 of 1 methods were acceptable" in chosen["reason"]
    assert chosen["candidates"][0]["power"] is None  # no non-zero effect: no power
    with pytest.raises(ValueError) as error:
        montecarlo.recommend_method(summary_rows("cluster_t", [50], [95], 100, effects=(-0.1,)))
    assert str(error.value) == "no effect-0 rows in design 0"


def test_recommend_method_counts_enough_data_sets_in_the_requested_design() -> None:
    summary = pd.concat(
        [
            summary_rows("cluster_t", [10, 60, 90], [190, 95, 95], [200, 100, 100]),
            summary_rows("gee_bias_reduced", [1, 15, 25], [29, 28, 28], 30),
            summary_rows("cluster_t", [1, 15, 25], [29, 28, 28], 30, design_point=(1, 28, 1460)),
            summary_rows("gee_bias_reduced", [12, 60, 90], [188, 95, 95], [200, 100, 100], design_point=(1, 28, 1460)),
        ],
        ignore_index=True,
    )
    chosen = montecarlo.recommend(summary, design_index=1)
    assert chosen["method"] == "gee_bias_reduced"
    assert [c["method"] for c in chosen["candidates"]] == ["gee_bias_reduced"]
    assert "(the real design: 28 regions, 1460 races)" in chosen["reason"]
    assert montecarlo.recommend(summary)["method"] == "cluster_t"


def test_recommend_method_checks_the_coverage_at_every_non_zero_effect() -> None:
    effects = (0.0, 0.5, 1.0)
    summary = pd.concat(
        [
            summary_rows("cluster_t", [10, 60, 95], [190, 95, 80], [200, 100, 100], effects=effects),
            summary_rows("wild_bootstrap", [14, 60, 90], [186, 95, 95], [200, 100, 100], effects=effects),
        ],
        ignore_index=True,
    )
    chosen = montecarlo.recommend(summary)
    # cluster_t is more powerful, but its coverage of 80 of 100 at the last effect begins at 70.8 % < floor
    assert chosen["method"] == "wild_bootstrap"
    assert {c["method"]: c["coverage_ok"] for c in chosen["candidates"]} == {"cluster_t": False, "wild_bootstrap": True}


@pytest.mark.parametrize("column", ["rejection", "coverage"])
def test_recommend_method_bounds_are_closed(column: str) -> None:
    """The bounds are closed and judged on whole counts: a count equal to the count behind a bound clears it, one
    rejection more (or one covering interval fewer) does not."""
    ceiling = montecarlo.resolvable_count(200, 0.05, "upper")
    floor = montecarlo.resolvable_count(100, 0.95, "lower")
    assert (ceiling, floor) == (int(stats.binom.ppf(0.95, 200, 0.05)), int(stats.binom.ppf(0.05, 100, 0.95)))
    at_bound = summary_rows("cluster_t", [ceiling, 60, 90], [190, floor, floor], [200, 100, 100])
    assert montecarlo.recommend(at_bound)["candidates"][0]["acceptable"] is True
    beyond = (
        summary_rows("cluster_t", [ceiling + 1, 60, 90], [190, floor, floor], [200, 100, 100])
        if column == "rejection"
        else summary_rows("cluster_t", [ceiling, 60, 90], [190, floor - 1, floor], [200, 100, 100])
    )
    assert montecarlo.recommend(beyond)["candidates"][0]["acceptable"] is False


def test_a_count_at_the_floor_is_acceptable_though_its_stated_interval_prints_like_the_bound() -> None:
    """467 of 500 intervals covering is exactly the floor's count at 500 data sets: acceptable, although the
    interval's lower end, stated to 6 significant digits (0.908557) as the summary holds it, lies a hair below the
    unrounded bound. Judging the rounded interval against the bound would flip this on the last digit."""
    floor = montecarlo.resolvable_count(500, 0.95, "lower")
    assert floor == 467
    rows = summary_rows("gee_bias_reduced", [100, 300, 400], [1900, floor, 480], [2000, 500, 500])
    rows["coverage_low"] = outputs.stated_array(rows["coverage_low"].to_numpy())
    assert rows.loc[1, "coverage_low"] < montecarlo.resolvable_bound(500, 0.95, "lower")
    standing = montecarlo.method_standing(rows, 0.05)
    assert standing["coverage_ok"] is True and standing["coverage_min"] == 0.934


def test_study_metrics_of_a_study_with_no_non_zero_effect() -> None:
    summary = summary_rows("cluster_t", [6], [114], 120, effects=(0.0,), mean_pq=0.2)
    metrics = montecarlo.study_metrics(summary)
    low, high = exact(6, 120)
    glm = metrics["real_design"]["methods"]["cluster_t"]
    assert (metrics["real_design"]["n_regions"], metrics["real_design"]["n_races"]) == (14, 730)
    assert (glm["n_replications"], glm["n_failed"], glm["n_replications_per_effect"]) == (120, 0, 0)
    assert glm["enough_replications"] is False and glm["size_ok"] is True
    assert glm["size"] == 0.05
    assert (glm["size_low"], glm["size_high"]) == pytest.approx((low, high), rel=1e-5)
    for key in ("coverage_min", "coverage_min_low", "coverage_min_high", "coverage_min_effect"):
        assert glm[key] is None, key
    for key in ("mde_logit", "mde_logit_low", "mde_logit_high", "mde_pp", "mde_pp_low", "mde_pp_high"):
        assert glm[key] is None, key
    assert metrics["designs"] == [{"n_regions": 14, "n_races": 730, "size": {"cluster_t": 0.05}}]
    assert metrics["recommended_method"] == "cluster_t"


def test_study_metrics_lists_designs_in_design_order() -> None:
    summary = pd.concat(
        [
            summary_rows("cluster_t", [20, 60, 90], [180, 95, 95], 200, design_point=(2, 7, 365)),
            summary_rows("cluster_t", [14, 60, 90], [186, 95, 95], 200, design_point=(1, 28, 1460)),
            summary_rows("cluster_t", [10, 60, 90], [190, 95, 95], 200),
        ],
        ignore_index=True,
    )
    metrics = montecarlo.study_metrics(summary)
    assert metrics["designs"] == [
        {"n_regions": 14, "n_races": 730, "size": {"cluster_t": 0.05}},
        {"n_regions": 28, "n_races": 1460, "size": {"cluster_t": 0.07}},
        {"n_regions": 7, "n_races": 365, "size": {"cluster_t": 0.1}},
    ]
