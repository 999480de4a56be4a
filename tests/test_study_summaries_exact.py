"""The Monte Carlo study's summaries, headline metrics and recommendation on hand-made results whose every number is
known: each published figure is asserted as a value (at the stated 6 significant digits) or an exact sentence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout import study

EFFECTS = (0.0, -0.2, -0.4)
# method -> per effect (number rejected of 100, number covered of 100); estimates: centre +- spread alternating
PLAN = {
    "cluster_t": {"rejected": (6, 50, 90), "covered": (94, 95, 93), "centre": 0.02, "spread": 0.1, "se": 0.1},
    "mixedlm": {"rejected": (12, 60, 85), "covered": (88, 90, 91), "centre": 0.05, "spread": 0.2, "se": 0.15},
}


def hand_results() -> pd.DataFrame:
    """100 replications per method and effect (plus one failed cluster_t fit at effect 0), design 14 x 730."""
    rows = []
    for method, plan in PLAN.items():
        for e, effect in enumerate(EFFECTS):
            for r in range(100):
                estimate = effect + plan["centre"] + (plan["spread"] if r % 2 == 0 else -plan["spread"])
                rows.append({
                    "design_index": 0, "n_regions": 14, "n_races": 730, "effect_index": e, "effect": effect,
                    "replication": r, "sim_seed": r, "method": method, "term": "self_share", "target": effect,
                    "estimate": estimate, "se": plan["se"], "ci_low": estimate - 0.2, "ci_high": estimate + 0.2,
                    "p_value": 0.01 if r < plan["rejected"][e] else 0.5, "covered": r < plan["covered"][e],
                    "rejected": r < plan["rejected"][e], "ok": True, "converged": r != 3, "n_warnings": r % 3,
                    "mean_pq": 0.16, "error": "",
                })
    failed = {**rows[0], "replication": 100, "estimate": math.nan, "se": math.nan, "covered": False,
              "rejected": False, "ok": False, "converged": False, "n_warnings": 0, "error": "LinAlgError"}
    return pd.DataFrame([*rows, failed])


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return study.summarise(hand_results())


def test_summarise_every_column(summary: pd.DataFrame) -> None:
    assert summary.columns.tolist() == [
        "design_index", "n_regions", "n_races", "effect_index", "effect", "method", "n", "n_ok", "target",
        "mean_estimate", "bias", "rmse", "coverage", "coverage_mcse", "rejection", "rejection_mcse", "mean_se",
        "sd_estimate", "se_ratio", "mean_pq", "n_warnings", "n_not_converged",
    ]
    assert summary[["effect_index", "method"]].values.tolist() == [
        [0, "cluster_t"], [0, "mixedlm"], [1, "cluster_t"], [1, "mixedlm"], [2, "cluster_t"], [2, "mixedlm"]]
    first = summary.iloc[0]
    sd = 0.1 * math.sqrt(100 / 99)
    assert (first["n"], first["n_ok"]) == (101, 100)
    assert first["target"] == 0.0 and first["mean_estimate"] == pytest.approx(0.02, abs=1e-15)
    assert first["bias"] == pytest.approx(0.02, abs=1e-15)
    assert first["rmse"] == pytest.approx(math.sqrt(0.02 ** 2 + 0.1 ** 2), rel=1e-12)
    assert first["coverage"] == 0.94 and first["coverage_mcse"] == pytest.approx(math.sqrt(0.94 * 0.06 / 100))
    assert first["rejection"] == 0.06 and first["rejection_mcse"] == pytest.approx(math.sqrt(0.06 * 0.94 / 100))
    assert first["mean_se"] == pytest.approx(0.1) and first["sd_estimate"] == pytest.approx(sd, rel=1e-12)
    assert first["se_ratio"] == pytest.approx(0.1 / sd, rel=1e-12)
    assert first["mean_pq"] == pytest.approx(0.16)
    assert first["n_warnings"] == sum(r % 3 for r in range(100)) and first["n_not_converged"] == 1
    last = summary.iloc[-1]
    assert last["method"] == "mixedlm" and last["effect"] == -0.4 and last["target"] == pytest.approx(-0.4, abs=1e-15)
    assert last["mean_estimate"] == pytest.approx(-0.35, abs=1e-12) and last["rejection"] == 0.85
    assert last["coverage"] == 0.91 and last["n"] == 100


def test_summarise_with_no_or_one_usable_fit() -> None:
    results = hand_results()
    one = results[(results["method"] == "cluster_t") & (results["effect_index"] == 1)].iloc[:1]
    none = results[(results["method"] == "mixedlm") & (results["effect_index"] == 1)].iloc[:2].assign(ok=False)
    summary = study.summarise(pd.concat([one, none]))
    single, empty = summary.iloc[0], summary.iloc[1]
    assert single["n_ok"] == 1 and math.isnan(single["sd_estimate"]) and math.isnan(single["se_ratio"])
    assert single["coverage"] == 1.0 and single["coverage_mcse"] == 0.0
    assert empty["n"] == 2 and empty["n_ok"] == 0
    assert math.isnan(empty["coverage"]) and math.isnan(empty["rejection"]) and math.isnan(empty["mean_se"])
    assert empty["n_not_converged"] == 0


def test_summarise_se_ratio_nan_without_se() -> None:
    rows = hand_results()
    rows = rows[rows["method"] == "cluster_t"].assign(se=math.nan)
    summary = study.summarise(rows)
    assert summary["mean_se"].isna().all() and summary["se_ratio"].isna().all()


def test_power_curve_and_minimum_detectable_effect(summary: pd.DataFrame) -> None:
    curve = study.power_curve(summary, "cluster_t")
    assert curve.columns.tolist() == ["effect", "abs_effect", "power", "power_mcse", "n_ok"]
    assert curve["abs_effect"].tolist() == [0.0, 0.2, 0.4] and curve["power"].tolist() == [0.06, 0.5, 0.9]
    assert curve["n_ok"].tolist() == [100, 100, 100]
    mde = study.minimum_detectable_effect(summary, "cluster_t")
    assert mde == {
        "method": "cluster_t", "power": 0.8, "mde_logit": pytest.approx(0.35, abs=1e-12),
        "mde_pp": pytest.approx(0.35 * 0.16 * 100, rel=1e-12), "mean_pq": pytest.approx(0.16, rel=1e-12),
        "reached": True, "size": 0.06, "size_ok": True,
    }
    # size 0.06 is within alpha + 1.96 MC SEs (0.0927) at alpha 0.05, not at alpha 0.01 (0.0295)
    assert not study.minimum_detectable_effect(summary, "cluster_t", alpha=0.01)["size_ok"]
    assert study.minimum_detectable_effect(summary, "cluster_t", power=0.5)["mde_logit"] == pytest.approx(0.2)
    low = study.minimum_detectable_effect(summary, "cluster_t", power=0.05)
    assert low["mde_logit"] == 0.0 and low["reached"]
    with pytest.raises(ValueError, match=r"^no summary rows for method 'gee_bias_reduced' in design 0$"):
        study.power_curve(summary, "gee_bias_reduced")
    with pytest.raises(ValueError, match=r"^no summary rows for method 'cluster_t' in design 1$"):
        study.power_curve(summary, "cluster_t", design_index=1)


def test_recommendation_sentence(summary: pd.DataFrame) -> None:
    name, reason = study.recommend_method(summary)
    assert name == "cluster_t"
    assert reason == (
        "With 14 regions and 730 races, the cluster-robust GLM with t(G-1) rejected a true null in 6.0% of 100 "
        "replications (MC SE 2.4%) and its 95% CI covered the target in 94.0% (MC SE 2.4%), 1 of 101 fits having "
        "failed: the size closest to 5% among the cluster-robust methods whose coverage was within 1.96 Monte Carlo "
        "SEs of 95%.")


def test_recommendation_of_a_non_robust_method_and_fallback(summary: pd.DataFrame) -> None:
    mixed = summary[summary["method"] == "mixedlm"].assign(coverage=0.95)
    name, reason = study.recommend_method(mixed)
    assert name == "mixedlm"
    assert reason == (
        "With 14 regions and 730 races, the mixed model on the empirical logit rejected a true null in 12.0% of 100 "
        "replications (MC SE 3.2%) and its 95% CI covered the target in 95.0% (MC SE 3.2%): the size closest to 5% "
        "among the methods whose coverage was within 1.96 Monte Carlo SEs of 95%.")
    name, reason = study.recommend_method(summary, z=0.1)
    assert name == "cluster_t"
    assert reason.endswith(": no method's coverage was within 0.1 Monte Carlo SEs of 95%, and this one came "
                           "closest among the cluster-robust methods.")
    with pytest.raises(ValueError, match=r"^no effect-0 rows in design 3$"):
        study.recommend_method(summary, design_index=3)


def test_recommendation_ranks_by_size_then_order() -> None:
    rows = pd.DataFrame([
        {"design_index": 0, "n_regions": 14, "n_races": 730, "effect_index": 0, "effect": 0.0, "method": m,
         "n": 200, "n_ok": 200, "rejection": size, "rejection_mcse": 0.01, "coverage": 0.95, "coverage_mcse": 0.01}
        for m, size in (("cluster_t", 0.03), ("wild_bootstrap", 0.06), ("gee_bias_reduced", 0.06),
                        ("mixedlm", 0.05))
    ])
    assert study.recommend_method(rows)[0] == "wild_bootstrap"  # |0.06 - 0.05| < |0.03 - 0.05|; first in order
    assert study.recommend_method(rows, alpha=0.03)[0] == "cluster_t"
    few = rows.assign(n_ok=[200, 50, 50, 50], n=[200, 50, 50, 50])
    assert study.recommend_method(few)[0] == "cluster_t"  # the others have fewer than 100 usable fits
    assert study.recommend_method(few, min_replications=50)[0] == "wild_bootstrap"


def test_study_metrics_by_hand(summary: pd.DataFrame) -> None:
    metrics = study.study_metrics(summary)
    cluster_sd = 0.1 * math.sqrt(100 / 99)
    mixed_sd = 0.2 * math.sqrt(100 / 99)
    assert metrics == {
        "real_design": {
            "n_regions": 14, "n_races": 730, "alpha": 0.05, "mde_power": 0.8,
            "methods": {
                "cluster_t": {
                    "n_replications": 100, "n_failed": 1, "size": 0.06, "size_mcse": 0.0237487, "coverage": 0.94,
                    "coverage_mcse": 0.0237487, "bias_at_zero": 0.02,
                    "se_ratio_at_zero": pytest.approx(0.1 / cluster_sd, rel=1e-6),
                    "mde_logit": 0.35, "mde_pp": 5.6, "mde_reached": True, "size_ok": True,
                },
                "mixedlm": {
                    "n_replications": 100, "n_failed": 0, "size": 0.12, "size_mcse": 0.0324962, "coverage": 0.88,
                    "coverage_mcse": 0.0324962, "bias_at_zero": 0.05,
                    "se_ratio_at_zero": pytest.approx(0.15 / mixed_sd, rel=1e-6),
                    "mde_logit": None, "mde_pp": None, "mde_reached": True, "size_ok": False,
                },
            },
        },
        "designs": [{"n_regions": 14, "n_races": 730, "size": {"cluster_t": 0.06, "mixedlm": 0.12},
                     "coverage": {"cluster_t": 0.94, "mixedlm": 0.88}}],
        "recommended_method": "cluster_t",
        "recommendation": study.recommend_method(summary)[1],
    }
    strict = study.study_metrics(summary, alpha=0.01, power=0.9, min_replications=101)
    assert strict["real_design"]["alpha"] == 0.01 and strict["real_design"]["mde_power"] == 0.9
    assert strict["real_design"]["methods"]["cluster_t"]["size_ok"] is False
    assert strict["real_design"]["methods"]["cluster_t"]["mde_logit"] is None


def test_study_metrics_lists_every_design() -> None:
    results = hand_results()
    second = results.assign(design_index=1, n_regions=28, n_races=1460)
    second = second.assign(rejected=second["replication"] < 3)
    metrics = study.study_metrics(study.summarise(pd.concat([results, second])))
    assert [d["n_regions"] for d in metrics["designs"]] == [14, 28]
    assert metrics["designs"][1]["size"] == {"cluster_t": 0.03, "mixedlm": 0.03}
    assert metrics["real_design"]["n_regions"] == 14


def test_mc_se_and_labels() -> None:
    assert study.mc_se(0.06, 100) == pytest.approx(0.02374868417, rel=1e-9)
    assert study.mc_se(0.5, 0) == math.inf  # no replications: no precision
    assert study.method_label("gee_bias_reduced") == "GEE with bias-reduced covariance"
    assert study.method_label("unknown") == "unknown"
