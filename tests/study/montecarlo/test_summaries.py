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


def probit_params() -> tuple[float, float]:
    """statsmodels' probit GLM on cluster_t's counts (6, 50, 90 of 100 at |effect| 0, 0.2, 0.4)."""
    import numpy as np
    import statsmodels.api as sm

    k, n = np.array([6.0, 50.0, 90.0]), 100.0
    link = sm.families.links.Probit()
    exog = sm.add_constant(np.array([0.0, 0.2, 0.4]))
    a, b = sm.GLM(np.column_stack([k, n - k]), exog, family=sm.families.Binomial(link=link)).fit(tol=1e-14).params
    return float(a), float(b)


def probit_mde(power: float = 0.8) -> float:
    from statistics import NormalDist

    a, b = probit_params()
    return (NormalDist().inv_cdf(power) - a) / b


def _check_interval(mde: dict) -> None:
    """The MDE's interval holds the probit and the linear MDE and is the bootstrap interval widened to them."""
    assert mde["mde_logit_low"] <= min(mde["mde_logit"], mde["mde_logit_linear"])
    assert mde["mde_logit_high"] >= max(mde["mde_logit"], mde["mde_logit_linear"])
    assert mde["mde_logit_low"] == pytest.approx(min(mde["mde_logit_boot_low"], mde["mde_logit_linear"]), rel=1e-5)
    assert mde["mde_logit_high"] == pytest.approx(max(mde["mde_logit_boot_high"], mde["mde_logit_linear"]), rel=1e-5)


def test_power_curve_and_minimum_detectable_effect(summary: pd.DataFrame) -> None:
    curve = montecarlo.power_curve(summary, "cluster_t")
    assert curve.columns.tolist() == ["effect", "abs_effect", "power", "power_low", "power_high", "n_ok"]
    assert curve["abs_effect"].tolist() == [0.0, 0.2, 0.4] and curve["power"].tolist() == [0.06, 0.5, 0.9]
    assert curve["n_ok"].tolist() == [100, 100, 100]
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t")
    _check_interval(mde)
    size_low, size_high = hand_interval(6, 100)
    bounds = {key: mde[key] for key in mde if key.endswith(("_low", "_high")) and key.startswith("mde")}
    assert bounds["mde_pp_low"] == pytest.approx(bounds["mde_logit_low"] * 16, rel=1e-12)
    assert bounds["mde_pp_high"] == pytest.approx(bounds["mde_logit_high"] * 16, rel=1e-12)
    assert {key: value for key, value in mde.items() if key not in bounds} == {
        "method": "cluster_t",
        "power": 0.8,
        "mde_logit": pytest.approx(probit_mde(), rel=1e-8),
        "mde_logit_linear": pytest.approx(0.35, abs=1e-12),
        "mde_pp": pytest.approx(probit_mde() * 16, rel=1e-8),
        "mde_pp_linear": pytest.approx(0.35 * 0.16 * 100, rel=1e-12),
        "probit_intercept": pytest.approx(probit_params()[0], rel=1e-8),
        "probit_slope": pytest.approx(probit_params()[1], rel=1e-8),
        "mde_curve": "probit (maximum likelihood on the replication counts)",
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
    half = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.5)
    assert half["mde_logit_linear"] == pytest.approx(0.2) and half["mde_logit"] == pytest.approx(probit_mde(0.5))
    low = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.05)
    assert low["mde_logit"] == 0.0 and low["mde_logit_linear"] == 0.0 and low["reached"]
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
    # ceiling and floor for 100 data sets: the upper exact bound of 9 of 100 (the 95 % quantile of Bin(100, 5 %)) and
    # the lower exact bound of 91 of 100 (the 5 % quantile of Bin(100, 95 %))
    ceiling, floor = hand_interval(9, 100)[1], hand_interval(91, 100)[0]
    # cluster_t: size 6/100 in [2.2 %, 12.6 %], below the ceiling; lowest coverage 93/100 from 86.1 %, above the floor.
    # mixedlm: size 12/100 up to 20.0 % and coverage 90/100 from 82.4 %: neither.
    assert hand_interval(6, 100)[1] <= ceiling < hand_interval(12, 100)[1]
    assert hand_interval(90, 100)[0] < floor <= hand_interval(93, 100)[0]
    chosen = montecarlo.recommend(summary, hand_results())
    assert chosen["criteria"]["size_ceiling"] == pytest.approx(ceiling, rel=1e-5)
    assert chosen["criteria"]["coverage_floor"] == pytest.approx(floor, rel=1e-5)
    assert chosen["method"] == "cluster_t" and chosen["tied"] == []
    assert chosen["reason"] == (
        "A method was acceptable when the exact 95 % interval of its size with no true effect ended at or below "
        "16.4 % and that of its coverage at every non-zero true effect began at or above 83.6 %: the bounds a method "
        "of exactly 5 % size and 95 % coverage clears with 95 % probability in 100 data sets with no true effect and "
        "100 at each non-zero effect, the numbers this study ran (the real design: 14 regions, 730 races). Per "
        "method: cluster-robust GLM with t(G-1): size 6 % (2.2 % to 12.6 %), lowest coverage 93 % (86.1 % to "
        "97.1 %), power 70 %, acceptable; mixed model on the empirical logit: size 12 % (6.4 % to 20 %), lowest "
        "coverage 90 % (82.4 % to 95.1 %), power 72.5 %, not acceptable (size interval above 16.4 % and coverage "
        "interval below 83.6 %). 1 of 2 methods were acceptable; among the cluster-robust ones (they assume nothing "
        "about the correlation within a region) the cluster-robust GLM with t(G-1) had the highest power, pooled "
        "over the non-zero true effects (70 % of 200 data sets; 1 of 101 of its fits failed at no true effect)."
    )
    assert montecarlo.recommend_method(summary, results=hand_results()) == ("cluster_t", chosen["reason"])
    with pytest.raises(ValueError, match=r"^no effect-0 rows in design 3$"):
        montecarlo.recommend_method(summary, design_index=3)


def test_recommendation_of_a_non_robust_method_and_fallback(summary: pd.DataFrame) -> None:
    mixed = summary[summary["method"] == "mixedlm"]
    # acceptability is judged on the counts behind the rates (rate x usable fits): 5 % size, 95 % coverage
    calibrated = mixed.assign(
        rejection=[0.05, 0.6, 0.85],
        rejection_low=0.02,
        rejection_high=0.11,
        coverage=0.95,
        coverage_low=0.9,
        coverage_high=0.99,
    )
    chosen = montecarlo.recommend(calibrated)
    assert chosen["method"] == "mixedlm"
    assert (
        "1 of 1 methods were acceptable; among them (no cluster-robust method was acceptable) the mixed model"
        in (chosen["reason"])
    )
    # at alpha 0.2 the ceiling for 100 data sets is far above both sizes but the coverage floor (for 80 %) is
    # the lower bound of 72 of 100 (65.0 %): mixedlm's coverage begins at 82.4 %, cluster_t's at 86.1 %: both pass,
    # cluster_t is the cluster-robust one
    assert montecarlo.recommend(summary, alpha=0.2)["method"] == "cluster_t"
    # nothing acceptable: the cluster-robust method whose size is closest to alpha
    fallback = montecarlo.recommend(summary.assign(rejection=0.5, rejection_high=0.6))
    assert fallback["method"] == "cluster_t"
    assert fallback["reason"].endswith(
        "No method was acceptable; the cluster-robust GLM with t(G-1) is reported because its size came closest to "
        "5 % among the cluster-robust methods; 1 of 101 of its fits failed at no true effect."
    )


def _ranking_rows(spec: dict[str, tuple[float, float, int]]) -> pd.DataFrame:
    """Calibrated summary rows (effect 0 and -0.3) per method: (size at 0, power at -0.3, data sets per effect)."""
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
                "rejection": size if e == 0 else power,
                "rejection_low": 0.02,
                "rejection_high": 0.1,
                "coverage": 0.95,
                "coverage_low": 0.92,
                "coverage_high": 0.99,
                "mean_pq": 0.16,
            }
            for m, (size, power, n) in spec.items()
            for e, effect in enumerate((0.0, -0.3))
        ]
    )


def test_recommendation_ranks_by_robustness_then_power_then_order() -> None:
    rows = _ranking_rows(
        {
            "cluster_t": (0.05, 0.70, 200),
            "wild_bootstrap": (0.04, 0.61, 200),
            "gee_bias_reduced": (0.034, 0.73, 200),
            "mixedlm": (0.05, 0.84, 200),
        }
    )
    # the mixed model is the most powerful but not cluster-robust; the size closest to 5 % no longer decides
    assert montecarlo.recommend_method(rows)[0] == "gee_bias_reduced"
    equal = _ranking_rows({"cluster_t": (0.05, 0.7, 200), "wild_bootstrap": (0.05, 0.7, 200)})
    assert montecarlo.recommend_method(equal)[0] == "cluster_t"  # equal power: METHODS order
    few = _ranking_rows(
        {"cluster_t": (0.03, 0.5, 200), "wild_bootstrap": (0.06, 0.9, 99), "gee_bias_reduced": (0.06, 0.9, 99)}
    )
    assert montecarlo.recommend_method(few)[0] == "cluster_t"  # the others have fewer than 100 data sets at 0
    none_enough = _ranking_rows({"cluster_t": (0.03, 0.5, 99), "wild_bootstrap": (0.06, 0.9, 99)})
    assert montecarlo.recommend_method(none_enough)[0] == "wild_bootstrap"  # then every method is considered


def test_study_metrics_by_hand(summary: pd.DataFrame) -> None:
    metrics = montecarlo.study_metrics(summary)
    cluster_sd = 0.1 * math.sqrt(100 / 99)
    mixed_sd = 0.2 * math.sqrt(100 / 99)
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t")
    mde_low, mde_high = mde["mde_logit_low"], mde["mde_logit_high"]

    def power_rows(counts: tuple[int, ...]) -> list[dict]:
        return [
            {"effect": effect, "power": k / 100, "power_low": interval(k)[0], "power_high": interval(k)[1], "n": 100}
            for effect, k in zip(EFFECTS[1:], counts[1:], strict=True)
        ]

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
            "mde_curve": "probit (maximum likelihood on the replication counts)",
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
                    "power_by_effect": power_rows(PLAN["cluster_t"]["rejected"]),
                    "bias_at_zero": 0.02,
                    "se_ratio_at_zero": pytest.approx(0.1 / cluster_sd, rel=1e-5),
                    "mde_logit": pytest.approx(probit_mde(), rel=1e-5),
                    "mde_logit_low": pytest.approx(mde_low, rel=1e-5),
                    "mde_logit_high": pytest.approx(mde_high, rel=1e-5),
                    "mde_pp": pytest.approx(probit_mde() * 16, rel=1e-5),
                    "mde_pp_low": pytest.approx(mde_low * 16, rel=1e-5),
                    "mde_pp_high": pytest.approx(mde_high * 16, rel=1e-5),
                    "mde_logit_linear": 0.35,
                    "mde_pp_linear": 5.6,
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
                    "power_by_effect": power_rows(PLAN["mixedlm"]["rejected"]),
                    "bias_at_zero": 0.05,
                    "se_ratio_at_zero": pytest.approx(0.15 / mixed_sd, rel=1e-5),
                    "mde_logit": None,
                    "mde_logit_low": None,
                    "mde_logit_high": None,
                    "mde_pp": None,
                    "mde_pp_low": None,
                    "mde_pp_high": None,
                    "mde_logit_linear": None,
                    "mde_pp_linear": None,
                    "size_ok": False,
                },
            },
        },
        "designs": [{"n_regions": 14, "n_races": 730, "size": {"cluster_t": 0.06, "mixedlm": 0.12}}],
        "recommended_method": "cluster_t",
        "tied_methods": [],
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
