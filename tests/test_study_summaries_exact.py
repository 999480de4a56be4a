"""The Monte Carlo study's summaries, headline metrics and recommendation on hand-made results whose every number is
known: each published figure is asserted as a value (at the stated 6 significant digits) or an exact sentence.

The exact (Clopper-Pearson) intervals are recomputed here from their definition, by bisection on binomial tail sums
enumerated term by term (:func:`hand_interval`), not from beta quantiles as the package computes them."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from akim_turnout.study import montecarlo

EFFECTS = (0.0, -0.2, -0.4)
# method -> per effect (number rejected of 100, number covered of 100); estimates: centre +- spread alternating
PLAN = {
    "cluster_t": {"rejected": (6, 50, 90), "covered": (94, 95, 93), "centre": 0.02, "spread": 0.1, "se": 0.1},
    "mixedlm": {"rejected": (12, 60, 85), "covered": (88, 90, 91), "centre": 0.05, "spread": 0.2, "se": 0.15},
}


def _upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed term by term."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def _bisect(f, target: float, increasing: bool) -> float:
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if (f(middle) < target) == increasing:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def hand_interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 %: lower p with P(X >= k) = 2.5 %, upper p with P(X <= k) = 2.5 % (0 and 1 at the ends)."""
    low = 0.0 if k == 0 else _bisect(lambda p: _upper_tail(k, n, p), 0.025, increasing=True)
    high = 1.0 if k == n else _bisect(lambda p: 1 - _upper_tail(k + 1, n, p), 0.025, increasing=False)
    return low, high


def test_hand_interval_matches_published_binom_test() -> None:
    # R: binom.test(95, 100)$conf.int is 0.8871651 0.9835681; 0 of 25 and 25 of 25 have closed forms
    assert hand_interval(95, 100) == pytest.approx((0.8871651, 0.9835681), abs=1e-7)
    assert hand_interval(0, 25) == pytest.approx((0.0, 1 - 0.025 ** (1 / 25)), abs=1e-12)
    assert hand_interval(25, 25) == pytest.approx((0.025 ** (1 / 25), 1.0), abs=1e-12)


def hand_results() -> pd.DataFrame:
    """100 replications per method and effect (plus one failed cluster_t fit at effect 0), design 14 x 730."""
    rows = []
    for method, plan in PLAN.items():
        for e, effect in enumerate(EFFECTS):
            for r in range(100):
                estimate = effect + plan["centre"] + (plan["spread"] if r % 2 == 0 else -plan["spread"])
                rows.append(
                    {
                        "design_index": 0,
                        "n_regions": 14,
                        "n_races": 730,
                        "effect_index": e,
                        "effect": effect,
                        "replication": r,
                        "sim_seed": r,
                        "method": method,
                        "term": "self_share",
                        "target": effect,
                        "estimate": estimate,
                        "se": plan["se"],
                        "ci_low": estimate - 0.2,
                        "ci_high": estimate + 0.2,
                        "p_value": 0.01 if r < plan["rejected"][e] else 0.5,
                        "covered": r < plan["covered"][e],
                        "rejected": r < plan["rejected"][e],
                        "ok": True,
                        "converged": r != 3,
                        "n_warnings": r % 3,
                        "mean_pq": 0.16,
                        "error": "",
                    }
                )
    failed = {
        **rows[0],
        "replication": 100,
        "estimate": math.nan,
        "se": math.nan,
        "covered": False,
        "rejected": False,
        "ok": False,
        "converged": False,
        "n_warnings": 0,
        "error": "LinAlgError",
    }
    return pd.DataFrame([*rows, failed])


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return montecarlo.summarise(hand_results())


def test_summarise_every_column(summary: pd.DataFrame) -> None:
    assert summary.columns.tolist() == [
        "design_index",
        "n_regions",
        "n_races",
        "effect_index",
        "effect",
        "method",
        "n",
        "n_ok",
        "target",
        "mean_estimate",
        "bias",
        "rmse",
        "coverage",
        "coverage_low",
        "coverage_high",
        "rejection",
        "rejection_low",
        "rejection_high",
        "mean_se",
        "sd_estimate",
        "se_ratio",
        "mean_pq",
        "n_warnings",
        "n_not_converged",
    ]
    assert summary[["effect_index", "method"]].values.tolist() == [
        [0, "cluster_t"],
        [0, "mixedlm"],
        [1, "cluster_t"],
        [1, "mixedlm"],
        [2, "cluster_t"],
        [2, "mixedlm"],
    ]
    first = summary.iloc[0]
    sd = 0.1 * math.sqrt(100 / 99)
    assert (first["n"], first["n_ok"]) == (101, 100)
    assert first["target"] == 0.0 and first["mean_estimate"] == pytest.approx(0.02, abs=1e-15)
    assert first["bias"] == pytest.approx(0.02, abs=1e-15)
    assert first["rmse"] == pytest.approx(math.sqrt(0.02**2 + 0.1**2), rel=1e-12)
    assert first["coverage"] == 0.94
    assert (first["coverage_low"], first["coverage_high"]) == pytest.approx(hand_interval(94, 100), abs=1e-12)
    assert first["rejection"] == 0.06
    assert (first["rejection_low"], first["rejection_high"]) == pytest.approx(hand_interval(6, 100), abs=1e-12)
    assert first["mean_se"] == pytest.approx(0.1) and first["sd_estimate"] == pytest.approx(sd, rel=1e-12)
    assert first["se_ratio"] == pytest.approx(0.1 / sd, rel=1e-12)
    assert first["mean_pq"] == pytest.approx(0.16)
    assert first["n_warnings"] == sum(r % 3 for r in range(100)) and first["n_not_converged"] == 1
    last = summary.iloc[-1]
    assert last["method"] == "mixedlm" and last["effect"] == -0.4 and last["target"] == pytest.approx(-0.4, abs=1e-15)
    assert last["mean_estimate"] == pytest.approx(-0.35, abs=1e-12) and last["rejection"] == 0.85
    assert last["coverage"] == 0.91 and last["n"] == 100
    assert (last["coverage_low"], last["coverage_high"]) == pytest.approx(hand_interval(91, 100), abs=1e-12)


def test_summarise_with_no_or_one_usable_fit() -> None:
    results = hand_results()
    one = results[(results["method"] == "cluster_t") & (results["effect_index"] == 1)].iloc[:1]
    none = results[(results["method"] == "mixedlm") & (results["effect_index"] == 1)].iloc[:2].assign(ok=False)
    table = montecarlo.summarise(pd.concat([one, none]))
    single, empty = table.iloc[0], table.iloc[1]
    assert single["n_ok"] == 1 and math.isnan(single["sd_estimate"]) and math.isnan(single["se_ratio"])
    # 1 of 1 covered: the exact interval is [0.025, 1] (0.025 = p^1), not the zero-width [1, 1]
    assert single["coverage"] == 1.0
    assert (single["coverage_low"], single["coverage_high"]) == pytest.approx((0.025, 1.0), abs=1e-12)
    assert empty["n"] == 2 and empty["n_ok"] == 0
    assert math.isnan(empty["coverage"]) and math.isnan(empty["rejection"]) and math.isnan(empty["mean_se"])
    assert math.isnan(empty["coverage_low"]) and math.isnan(empty["rejection_high"])
    assert empty["n_not_converged"] == 0


def test_summarise_se_ratio_nan_without_se() -> None:
    rows = hand_results()
    rows = rows[rows["method"] == "cluster_t"].assign(se=math.nan)
    table = montecarlo.summarise(rows)
    assert table["mean_se"].isna().all() and table["se_ratio"].isna().all()


def _mde_bounds() -> tuple[float, float]:
    """Where the upper and the lower exact power bounds of cluster_t reach 80 %, between |effect| 0.2 and 0.4."""
    (low50, high50), (low90, high90) = hand_interval(50, 100), hand_interval(90, 100)
    return 0.2 + (0.8 - high50) * 0.2 / (high90 - high50), 0.2 + (0.8 - low50) * 0.2 / (low90 - low50)


def test_power_curve_and_minimum_detectable_effect(summary: pd.DataFrame) -> None:
    curve = montecarlo.power_curve(summary, "cluster_t")
    assert curve.columns.tolist() == ["effect", "abs_effect", "power", "power_low", "power_high", "n_ok"]
    assert curve["abs_effect"].tolist() == [0.0, 0.2, 0.4] and curve["power"].tolist() == [0.06, 0.5, 0.9]
    assert curve["n_ok"].tolist() == [100, 100, 100]
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t")
    mde_low, mde_high = _mde_bounds()
    size_low, size_high = hand_interval(6, 100)
    assert mde == {
        "method": "cluster_t",
        "power": 0.8,
        "mde_logit": pytest.approx(0.35, abs=1e-12),
        "mde_logit_low": pytest.approx(mde_low, rel=1e-10),
        "mde_logit_high": pytest.approx(mde_high, rel=1e-10),
        "mde_pp": pytest.approx(0.35 * 0.16 * 100, rel=1e-12),
        "mde_pp_low": pytest.approx(mde_low * 16, rel=1e-10),
        "mde_pp_high": pytest.approx(mde_high * 16, rel=1e-10),
        "mean_pq": pytest.approx(0.16, rel=1e-12),
        "reached": True,
        "size": 0.06,
        "size_low": pytest.approx(size_low, abs=1e-12),
        "size_high": pytest.approx(size_high, abs=1e-12),
        "size_ok": True,
        "enough_replications": True,
    }
    # 0.05 lies inside the exact size interval [0.0223, 0.1260]; 0.01 does not: no MDE then
    strict = montecarlo.minimum_detectable_effect(summary, "cluster_t", alpha=0.01)
    assert not strict["size_ok"] and math.isnan(strict["mde_logit"]) and math.isnan(strict["mde_pp_high"])
    assert montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.5)["mde_logit"] == pytest.approx(0.2)
    low = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.05)
    assert low["mde_logit"] == 0.0 and low["reached"]
    with pytest.raises(ValueError, match=r"^no summary rows for method 'gee_bias_reduced' in design 0$"):
        montecarlo.power_curve(summary, "gee_bias_reduced")
    with pytest.raises(ValueError, match=r"^no summary rows for method 'cluster_t' in design 1$"):
        montecarlo.power_curve(summary, "cluster_t", design_index=1)


def test_enough_replications_at_the_thresholds(summary: pd.DataFrame) -> None:
    assert (montecarlo.MIN_NULL_REPLICATIONS, montecarlo.MIN_EFFECT_REPLICATIONS) == (100, 50)
    assert montecarlo.enough_replications(summary, "cluster_t")
    null_short = summary.assign(
        n_ok=[99 if e == 0 else n for e, n in zip(summary["effect"], summary["n_ok"], strict=True)]
    )
    assert not montecarlo.enough_replications(null_short, "cluster_t")
    effect_50 = summary.assign(
        n_ok=[n if e == 0 else 50 for e, n in zip(summary["effect"], summary["n_ok"], strict=True)]
    )
    assert montecarlo.enough_replications(effect_50, "cluster_t")
    effect_49 = summary.assign(
        n_ok=[n if e == 0 else 49 for e, n in zip(summary["effect"], summary["n_ok"], strict=True)]
    )
    assert not montecarlo.enough_replications(effect_49, "cluster_t")
    assert not montecarlo.enough_replications(summary[summary["effect"] == 0], "cluster_t")  # no effect rows


def test_recommendation_sentence(summary: pd.DataFrame) -> None:
    # cluster_t: size 6/100 in [2.2 %, 12.6 %] contains 5 %; coverage 95/100 and 93/100 intervals contain 95 %.
    # mixedlm: size 12/100 in [6.4 %, 20.0 %] misses 5 %.
    name, reason = montecarlo.recommend_method(summary)
    assert name == "cluster_t"
    assert reason == (
        "In 100 simulated data sets of the real design (14 regions, 730 races) with no true effect, the "
        "cluster-robust GLM with t(G-1) rejected the true null in 6.0% (exact 95 % interval 2.2% to 12.6%); 1 of "
        "101 fits failed; 1 of 2 methods had an exact interval of their size containing 5% and of their coverage at "
        "every true effect containing 95% (sizes: cluster-robust GLM with t(G-1) 6.0%); cluster-robust methods (they "
        "assume nothing about the correlation within a region) come first, and among them this one's size was "
        "closest to 5%."
    )
    with pytest.raises(ValueError, match=r"^no effect-0 rows in design 3$"):
        montecarlo.recommend_method(summary, design_index=3)


def test_recommendation_of_a_non_robust_method_and_fallback(summary: pd.DataFrame) -> None:
    mixed = summary[summary["method"] == "mixedlm"]
    calibrated = mixed.assign(
        rejection=[0.05, 0.6, 0.85], rejection_low=0.02, rejection_high=0.11, coverage_low=0.9, coverage_high=0.99
    )
    name, reason = montecarlo.recommend_method(calibrated)
    assert name == "mixedlm"
    assert reason == (
        "In 100 simulated data sets of the real design (14 regions, 730 races) with no true effect, the mixed "
        "model on the empirical logit rejected the true null in 5.0% (exact 95 % interval 2.0% to 11.0%); 1 of 1 "
        "methods had an exact interval of their size containing 5% and of their coverage at every true effect "
        "containing 95% (sizes: mixed model on the empirical logit 5.0%); no cluster-robust method qualified, and "
        "among the others this one's size was closest to 5%."
    )
    # at alpha 0.2 neither size interval contains 20 % (cluster_t's ends at 12.6 %, mixedlm's at 20.02 % but its
    # coverage intervals then miss 80 %): the fallback is the cluster-robust method
    name, reason = montecarlo.recommend_method(summary, alpha=0.2)
    assert name == "cluster_t"
    assert reason.endswith(
        "; no method had an exact interval of its size containing 20% and of its coverage at every true effect "
        "containing 80%; this one's size came closest to 20% among the cluster-robust methods."
    )


def _ranking_rows(spec: dict[str, tuple[float, int]]) -> pd.DataFrame:
    """Calibrated summary rows (effect 0 and -0.3) per method: (size at 0, data sets per effect)."""
    return pd.DataFrame(
        [
            {
                "design_index": 0,
                "n_regions": 14,
                "n_races": 730,
                "effect_index": e,
                "effect": effect,
                "method": m,
                "n": n,
                "n_ok": n,
                "rejection": size if e == 0 else 0.9,
                "rejection_low": 0.02,
                "rejection_high": 0.1,
                "coverage": 0.95,
                "coverage_low": 0.9,
                "coverage_high": 0.99,
                "mean_pq": 0.16,
            }
            for m, (size, n) in spec.items()
            for e, effect in enumerate((0.0, -0.3))
        ]
    )


def test_recommendation_ranks_by_robustness_size_then_order() -> None:
    rows = _ranking_rows(
        {
            "cluster_t": (0.03, 200),
            "wild_bootstrap": (0.06, 200),
            "gee_bias_reduced": (0.06, 200),
            "mixedlm": (0.05, 200),
        }
    )
    # mixedlm's size is exactly 5 % but it is not cluster-robust; |0.06 - 0.05| < |0.03 - 0.05|; wild comes first
    assert montecarlo.recommend_method(rows)[0] == "wild_bootstrap"
    assert montecarlo.recommend_method(rows.assign(rejection_low=0.01), alpha=0.03)[0] == "cluster_t"
    few = _ranking_rows(
        {"cluster_t": (0.03, 200), "wild_bootstrap": (0.06, 99), "gee_bias_reduced": (0.06, 99), "mixedlm": (0.05, 99)}
    )
    assert montecarlo.recommend_method(few)[0] == "cluster_t"  # the others have fewer than 100 data sets at 0
    none_enough = _ranking_rows({"cluster_t": (0.03, 99), "wild_bootstrap": (0.06, 99)})
    assert montecarlo.recommend_method(none_enough)[0] == "wild_bootstrap"  # then every method is considered


def test_study_metrics_by_hand(summary: pd.DataFrame) -> None:
    metrics = montecarlo.study_metrics(summary)
    cluster_sd = 0.1 * math.sqrt(100 / 99)
    mixed_sd = 0.2 * math.sqrt(100 / 99)
    mde_low, mde_high = _mde_bounds()

    def interval(k: int) -> tuple:
        low, high = hand_interval(k, 100)
        return pytest.approx(low, rel=1e-5), pytest.approx(high, rel=1e-5)

    c_size, c_cov, m_size, m_cov = interval(6), interval(93), interval(12), interval(90)
    assert metrics == {
        "real_design": {
            "n_regions": 14,
            "n_races": 730,
            "alpha": 0.05,
            "mde_power": 0.8,
            "methods": {
                "cluster_t": {
                    "n_replications": 100,
                    "n_failed": 1,
                    "n_replications_per_effect": 100,
                    "enough_replications": True,
                    "size": 0.06,
                    "size_low": c_size[0],
                    "size_high": c_size[1],
                    "coverage_min": 0.93,
                    "coverage_min_low": c_cov[0],
                    "coverage_min_high": c_cov[1],
                    "coverage_min_effect": -0.4,
                    "bias_at_zero": 0.02,
                    "se_ratio_at_zero": pytest.approx(0.1 / cluster_sd, rel=1e-5),
                    "mde_logit": 0.35,
                    "mde_logit_low": pytest.approx(mde_low, rel=1e-5),
                    "mde_logit_high": pytest.approx(mde_high, rel=1e-5),
                    "mde_pp": 5.6,
                    "mde_pp_low": pytest.approx(mde_low * 16, rel=1e-5),
                    "mde_pp_high": pytest.approx(mde_high * 16, rel=1e-5),
                    "size_ok": True,
                },
                "mixedlm": {
                    "n_replications": 100,
                    "n_failed": 0,
                    "n_replications_per_effect": 100,
                    "enough_replications": True,
                    "size": 0.12,
                    "size_low": m_size[0],
                    "size_high": m_size[1],
                    "coverage_min": 0.9,
                    "coverage_min_low": m_cov[0],
                    "coverage_min_high": m_cov[1],
                    "coverage_min_effect": -0.2,
                    "bias_at_zero": 0.05,
                    "se_ratio_at_zero": pytest.approx(0.15 / mixed_sd, rel=1e-5),
                    "mde_logit": None,
                    "mde_logit_low": None,
                    "mde_logit_high": None,
                    "mde_pp": None,
                    "mde_pp_low": None,
                    "mde_pp_high": None,
                    "size_ok": False,
                },
            },
        },
        "designs": [{"n_regions": 14, "n_races": 730, "size": {"cluster_t": 0.06, "mixedlm": 0.12}}],
        "recommended_method": "cluster_t",
    }
    strict = montecarlo.study_metrics(summary, alpha=0.01, power=0.9)
    assert strict["real_design"]["alpha"] == 0.01 and strict["real_design"]["mde_power"] == 0.9
    assert strict["real_design"]["methods"]["cluster_t"]["size_ok"] is False
    assert strict["real_design"]["methods"]["cluster_t"]["mde_logit"] is None


def test_mde_note_names_the_reason(summary: pd.DataFrame) -> None:
    methods = montecarlo.study_metrics(summary)["real_design"]["methods"]
    assert montecarlo.mde_note(methods["cluster_t"], EFFECTS) == ""
    assert montecarlo.mde_note(methods["mixedlm"], EFFECTS) == "size not within Monte Carlo error of the nominal level"
    assert montecarlo.mde_note({**methods["cluster_t"], "enough_replications": False}, EFFECTS) == (
        "too few simulated data sets"
    )
    assert montecarlo.mde_note({**methods["cluster_t"], "mde_pp": None}, EFFECTS) == (
        "not reached within the simulated effects (up to 0.4 on the logit scale)"
    )
    assert montecarlo.mde_note({**methods["cluster_t"], "mde_pp_high": None}, EFFECTS) == (
        "upper Monte Carlo bound beyond the simulated effects"
    )


def test_study_metrics_lists_every_design() -> None:
    results = hand_results()
    second = results.assign(design_index=1, n_regions=28, n_races=1460)
    second = second.assign(rejected=second["replication"] < 3)
    metrics = montecarlo.study_metrics(montecarlo.summarise(pd.concat([results, second])))
    assert [d["n_regions"] for d in metrics["designs"]] == [14, 28]
    assert metrics["designs"][1]["size"] == {"cluster_t": 0.03, "mixedlm": 0.03}
    assert metrics["real_design"]["n_regions"] == 14


def test_method_labels() -> None:
    assert montecarlo.method_label("gee_bias_reduced") == "GEE with bias-reduced covariance"
    assert montecarlo.method_label("cluster_t") == "cluster-robust GLM with t(G-1)"


def test_an_effect_where_no_fit_succeeded_has_no_coverage_and_is_not_drawn() -> None:
    """Every mixedlm fit at the non-zero effects failed: its lowest coverage is None (not an error), cluster_t's is
    unchanged, and the size-and-coverage figure draws the rest (the frame as written, with nullable floats)."""
    from akim_turnout.report import figures

    results = hand_results()
    failed = (results["method"] == "mixedlm") & (results["effect"] != 0)
    results.loc[failed, "ok"] = False
    summary = montecarlo.summarise(results).convert_dtypes()  # as read back: a missing rate is pd.NA
    assert summary.loc[summary["method"].eq("mixedlm") & summary["effect"].ne(0), "coverage"].isna().all()
    methods = montecarlo.study_metrics(summary)["real_design"]["methods"]
    assert methods["mixedlm"]["coverage_min"] is None and methods["mixedlm"]["coverage_min_effect"] is None
    assert methods["cluster_t"]["coverage_min"] == 0.93 and methods["cluster_t"]["coverage_min_effect"] == -0.4
    figure = figures.plot_size_and_coverage(summary, labels={}, alpha=0.05)
    points = [[float(x) for x in line.get_xdata()] for line in figure.axes[1].lines if line.get_marker() == "o"]
    assert len(points) == 2  # one per non-zero effect: cluster_t drawn, mixedlm missing
    assert points[0][0] == pytest.approx(95) and points[1][0] == pytest.approx(93)
    assert all(math.isnan(x[1]) for x in points)
