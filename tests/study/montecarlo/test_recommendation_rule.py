"""The recommendation rule (akim_turnout.study.montecarlo.recommend) and the probit MDE, on constructed per-replication
results whose every count is chosen by hand: which replications each method rejects decides both its power and the
discordant pairs of the paired (McNemar) comparison.

Binomial quantiles, exact intervals and McNemar p-values are recomputed here by summing binomial terms one by one,
not with scipy; the probit power curve is checked against statsmodels' binomial GLM with a probit link."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout.study import montecarlo

EFFECTS = (0.0, -0.15, -0.3)
N_NULL, N_EFFECT = 200, 200


def _term(i: int, n: int, p: float) -> float:
    """P(X = i) for X ~ Bin(n, p), through log-gamma (exact binomial coefficients overflow a float at n = 2000)."""
    if p in (0.0, 1.0):
        return float(i == (n if p == 1.0 else 0))
    log = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
    return math.exp(log)


def _cdf(k: int, n: int, p: float) -> float:
    return sum(_term(i, n, p) for i in range(k + 1))


def _quantile(q: float, n: int, p: float) -> int:
    """Smallest k with P(X <= k) >= q, by enumeration."""
    total = 0.0
    for k in range(n + 1):
        total += _term(k, n, p)
        if total >= q - 1e-12:
            return k
    return n


def _bisect(f, target: float, increasing: bool) -> float:
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if (f(middle) < target) == increasing:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _cp(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % from binomial tails summed term by term."""
    low = 0.0 if k == 0 else _bisect(lambda p: 1 - _cdf(k - 1, n, p), 0.025, increasing=True)
    high = 1.0 if k == n else _bisect(lambda p: 1 - _cdf(k, n, p), 0.975, increasing=True)
    return low, high


def results_frame(plan: dict[str, dict[str, object]]) -> pd.DataFrame:
    """Per-replication rows: ``plan[method]`` gives, per effect index, the set of replications rejected
    (``rejects``) and the number covered (the first ones)."""
    rows = []
    for method, spec in plan.items():
        for e, effect in enumerate(EFFECTS):
            n = N_NULL if effect == 0 else N_EFFECT
            rejects, covered = spec["rejects"][e], spec["covered"][e]
            for r in range(n):
                rows.append(
                    {
                        "design_index": 0,
                        "n_regions": 14,
                        "n_races": 730,
                        "effect_index": e,
                        "effect": effect,
                        "replication": r,
                        "method": method,
                        "target": effect,
                        "estimate": effect,
                        "se": 0.1,
                        "ci_low": effect - 0.2,
                        "ci_high": effect + 0.2,
                        "p_value": 0.01 if r in rejects else 0.5,
                        "covered": r < covered,
                        "rejected": r in rejects,
                        "ok": True,
                        "converged": True,
                        "n_warnings": 0,
                        "mean_pq": 0.2,
                    }
                )
    return pd.DataFrame(rows)


def span(start: int, stop: int) -> set[int]:
    return set(range(start, stop))


def calibrated(rejects_at_effects: tuple[set[int], set[int]], size: int = 10) -> dict[str, object]:
    """A method of size ``size``/200 and coverage 190/200 at each effect."""
    return {"rejects": (span(0, size), *rejects_at_effects), "covered": (200 - size, 190, 190)}


def test_mcnemar_exact_by_hand() -> None:
    # 15 against 12 discordant rejections: 2 P(X <= 12), X ~ Bin(27, 1/2)
    assert montecarlo.mcnemar_exact(15, 12) == pytest.approx(2 * _cdf(12, 27, 0.5), rel=1e-12)
    assert montecarlo.mcnemar_exact(15, 12) == pytest.approx(0.70111, abs=1e-5)
    assert montecarlo.mcnemar_exact(30, 5) == pytest.approx(2 * _cdf(5, 35, 0.5), rel=1e-12)
    assert montecarlo.mcnemar_exact(0, 0) == 1.0
    assert montecarlo.mcnemar_exact(3, 3) == 1.0  # 2 P(X <= 3) > 1 for Bin(6, 1/2): capped
    with pytest.raises(ValueError, match="non-negative"):
        montecarlo.mcnemar_exact(-1, 2)


@pytest.mark.parametrize("n", [100, 200, 500, 2000])
def test_resolvable_bounds_by_enumeration(n: int) -> None:
    upper = _cp(_quantile(0.95, n, 0.05), n)[1]
    lower = _cp(_quantile(0.05, n, 0.95), n)[0]
    assert montecarlo.resolvable_bound(n, 0.05, "upper") == pytest.approx(upper, abs=1e-9)
    assert montecarlo.resolvable_bound(n, 0.95, "lower") == pytest.approx(lower, abs=1e-9)
    # a nominal method clears them with at least 95 % probability
    assert 1 - _cdf(_quantile(0.95, n, 0.05), n, 0.05) <= 0.05
    assert _cdf(_quantile(0.05, n, 0.95) - 1, n, 0.95) <= 0.05


def test_resolvable_bounds_tighten_with_more_data_sets_and_refuse_bad_input() -> None:
    assert montecarlo.resolvable_bound(2000, 0.05, "upper") < montecarlo.resolvable_bound(500, 0.05, "upper")
    assert montecarlo.resolvable_bound(2000, 0.95, "lower") > montecarlo.resolvable_bound(500, 0.95, "lower")
    with pytest.raises(ValueError, match="side must be"):
        montecarlo.resolvable_bound(100, 0.05, "both")
    with pytest.raises(ValueError, match="rate must be"):
        montecarlo.resolvable_bound(100, 1.0, "upper")
    with pytest.raises(ValueError, match="n must be"):
        montecarlo.resolvable_bound(0, 0.05, "upper")


def test_paired_rejections_count_the_discordant_data_sets() -> None:
    results = results_frame(
        {
            "cluster_t": calibrated((span(0, 50), span(0, 140))),
            "gee_bias_reduced": calibrated((span(10, 70), span(5, 147))),
        }
    )
    pair = montecarlo.paired_rejections(results, "cluster_t", "gee_bias_reduced")
    # effect 1: cluster_t alone 0..9 (10), gee alone 50..69 (20), both 10..49 (40); effect 2: 0..4 (5), 140..146 (7)
    assert pair == {"pairs": 400, "both": 40 + 135, "only_first": 15, "only_second": 27, "neither": 400 - 175 - 42}
    # a failed fit removes its data set from the pairs
    failed = results.copy()
    failed.loc[
        (failed["method"] == "cluster_t") & (failed["effect_index"] == 1) & (failed["replication"] == 0), "ok"
    ] = False
    assert montecarlo.paired_rejections(failed, "cluster_t", "gee_bias_reduced")["pairs"] == 399
    assert montecarlo.paired_rejections(failed, "cluster_t", "gee_bias_reduced")["only_first"] == 14
    with pytest.raises(ValueError, match="missing column"):
        montecarlo.paired_rejections(results.drop(columns="replication"), "cluster_t", "gee_bias_reduced")


def _recommend(plan: dict[str, dict[str, object]]) -> dict[str, object]:
    results = results_frame(plan)
    return montecarlo.recommend(montecarlo.summarise(results), results)


def test_the_most_powerful_acceptable_method_is_chosen_and_a_change_in_power_changes_it() -> None:
    weak = calibrated((span(0, 40), span(0, 100)))
    strong = calibrated((span(0, 80), span(0, 170)))
    first = _recommend({"cluster_t": weak, "wild_bootstrap": weak, "gee_bias_reduced": strong})
    assert first["method"] == "gee_bias_reduced"
    assert first["tied"] == []
    # gee rejects every data set cluster_t rejects and 110 more: McNemar 0 against 110
    gee_vs_t = {c["method"]: c for c in first["candidates"]}["cluster_t"]
    assert (gee_vs_t["only_first"], gee_vs_t["only_second"]) == (110, 0)
    assert gee_vs_t["mcnemar_p"] == pytest.approx(2 * 0.5**110, rel=1e-6)
    assert "the GEE with bias-reduced covariance had the highest power" in first["reason"]
    assert [c["verdict"] for c in first["candidates"]] == ["acceptable, less powerful"] * 2 + ["chosen"]
    # the same sizes and coverages, the power moved to the wild bootstrap: the recommendation follows it
    second = _recommend({"cluster_t": weak, "wild_bootstrap": strong, "gee_bias_reduced": weak})
    assert second["method"] == "wild_bootstrap"
    assert second["tied"] == []
    assert second["methods"] == ["wild_bootstrap"]


def test_a_tie_is_reported_as_a_tie() -> None:
    # effect 1 identical; effect 2: cluster_t rejects 0..139 (140), gee 5..146 (142): 5 against 7 discordant
    plan = {
        "cluster_t": calibrated((span(0, 60), span(0, 140))),
        "gee_bias_reduced": calibrated((span(0, 60), span(5, 147))),
    }
    chosen = _recommend(plan)
    assert chosen["method"] == "gee_bias_reduced"  # 202 of 400 against 200
    assert chosen["tied"] == ["cluster_t"]
    assert chosen["methods"] == ["gee_bias_reduced", "cluster_t"]
    row = {c["method"]: c for c in chosen["candidates"]}["cluster_t"]
    assert (row["pairs"], row["only_first"], row["only_second"]) == (400, 7, 5)
    assert row["mcnemar_p"] == pytest.approx(2 * _cdf(5, 12, 0.5), rel=1e-5)  # 0.774
    assert row["tied"] is True
    assert row["verdict"] == "cannot be told apart from the chosen method"
    assert (
        "The study therefore does not choose between the GEE with bias-reduced covariance and the cluster-robust GLM "
        "with t(G-1): the headline is reported under each." in chosen["reason"]
    )
    assert "p = 0.77" in chosen["reason"]
    # without the per-replication results there is no paired test and so no tie
    alone = montecarlo.recommend(montecarlo.summarise(results_frame(plan)))
    assert alone["method"] == "gee_bias_reduced" and alone["tied"] == []
    assert "no paired comparison" in alone["reason"]


def test_a_powerful_method_that_over_rejects_or_under_covers_is_not_acceptable() -> None:
    ceiling = _cp(_quantile(0.95, 200, 0.05), 200)[1]
    floor = _cp(_quantile(0.05, 200, 0.95), 200)[0]
    ok = calibrated((span(0, 40), span(0, 100)))
    liberal = {**calibrated((span(0, 90), span(0, 190))), "rejects": (span(0, 20), span(0, 90), span(0, 190))}
    # 20 of 200 at no effect: the interval's upper end is above the ceiling
    assert _cp(20, 200)[1] > ceiling
    chosen = _recommend({"cluster_t": ok, "wild_bootstrap": liberal})
    assert chosen["method"] == "cluster_t"
    standing = {c["method"]: c for c in chosen["candidates"]}
    assert standing["wild_bootstrap"]["size_ok"] is False and standing["wild_bootstrap"]["acceptable"] is False
    assert chosen["criteria"]["size_ceiling"] == pytest.approx(ceiling, rel=1e-5)
    assert chosen["criteria"]["coverage_floor"] == pytest.approx(floor, rel=1e-5)
    # coverage 184 of 200 at one effect: its interval begins below the floor
    assert _cp(184, 200)[0] < floor <= _cp(185, 200)[0]
    short = {**calibrated((span(0, 90), span(0, 190))), "covered": (190, 184, 190)}
    chosen = _recommend({"cluster_t": ok, "wild_bootstrap": short})
    assert chosen["method"] == "cluster_t"
    assert {c["method"]: c for c in chosen["candidates"]}["wild_bootstrap"]["coverage_ok"] is False
    assert "coverage interval below" in chosen["reason"]
    enough = {**short, "covered": (190, 185, 190)}
    assert _recommend({"cluster_t": ok, "wild_bootstrap": enough})["method"] == "wild_bootstrap"


def test_cluster_robust_methods_come_first_and_the_fallback() -> None:
    ok = calibrated((span(0, 40), span(0, 100)))
    strong = calibrated((span(0, 90), span(0, 190)))
    chosen = _recommend({"cluster_t": ok, "mixedlm": strong})
    assert chosen["method"] == "cluster_t"  # the mixed model is more powerful but not cluster-robust
    assert chosen["tied"] == []  # and it is not compared
    assert [c["verdict"] for c in chosen["candidates"]] == ["chosen", "acceptable, not cluster-robust"]
    only_mixed = _recommend({"cluster_t": {**ok, "rejects": (span(0, 30), *ok["rejects"][1:])}, "mixedlm": strong})
    assert only_mixed["method"] == "mixedlm"
    assert "no cluster-robust method was acceptable" in only_mixed["reason"]
    # nothing acceptable: the cluster-robust method with the size closest to 5 %
    liberal = lambda k: {**ok, "rejects": (span(0, k), *ok["rejects"][1:])}  # noqa: E731
    fallback = _recommend({"cluster_t": liberal(30), "wild_bootstrap": liberal(25), "mixedlm": liberal(28)})
    assert fallback["method"] == "wild_bootstrap"
    assert fallback["tied"] == []
    assert "No method was acceptable; the wild cluster bootstrap is reported" in fallback["reason"]
    name, reason = montecarlo.recommend_method(montecarlo.summarise(results_frame({"cluster_t": ok})))
    assert name == "cluster_t" and reason.startswith("A method was acceptable when")


def test_probit_power_curve_matches_statsmodels() -> None:
    import statsmodels.api as sm

    x = np.array([0.0, 0.15, 0.3, 0.6])
    n = np.array([2000.0, 500.0, 500.0, 500.0])
    k = np.array([92.0, 151.0, 331.0, 492.0])
    a, b = montecarlo.fit_probit_power(x, k, n)
    link = sm.families.links.Probit()
    fit = sm.GLM(np.column_stack([k, n - k]), sm.add_constant(x), family=sm.families.Binomial(link=link)).fit(tol=1e-14)
    assert (float(a), float(b)) == pytest.approx(tuple(fit.params), rel=1e-8)
    # many curves at once give each curve's own fit
    stacked = np.stack([k, np.array([100.0, 120.0, 300.0, 480.0])])
    a2, b2 = montecarlo.fit_probit_power(x, stacked, n)
    assert (a2[0], b2[0]) == pytest.approx((float(a), float(b)), rel=1e-10)
    with pytest.raises(ValueError, match="0 <= rejected <= n"):
        montecarlo.fit_probit_power(x, n + 1, n)
    with pytest.raises(ValueError, match="two distinct effects"):
        montecarlo.fit_probit_power(np.zeros(4), k, n)


def test_mde_from_the_probit_curve_with_an_interval_that_includes_the_linear_one() -> None:
    rows = []
    counts = {0.0: (100, 2000), -0.15: (151, 500), -0.3: (331, 500), -0.6: (492, 500)}
    for e, (effect, (k, n)) in enumerate(counts.items()):
        low, high = montecarlo.clopper_pearson(k, n)
        rows.append(
            {
                "design_index": 0,
                "effect_index": e,
                "effect": effect,
                "method": "cluster_t",
                "n_ok": n,
                "n": n,
                "rejection": k / n,
                "rejection_low": low,
                "rejection_high": high,
                "mean_pq": 0.2,
            }
        )
    summary = pd.DataFrame(rows)
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8)
    a, b = montecarlo.fit_probit_power(
        np.array([0, 0.15, 0.3, 0.6]), np.array([100, 151, 331, 492]), np.array([2000, 500, 500, 500])
    )
    from statistics import NormalDist

    fitted = (NormalDist().inv_cdf(0.8) - float(a)) / float(b)
    linear = 0.3 + (0.8 - 331 / 500) * 0.3 / (492 / 500 - 331 / 500)
    assert mde["mde_logit"] == pytest.approx(fitted, rel=1e-9)
    assert mde["mde_logit_linear"] == pytest.approx(linear, rel=1e-12)
    assert mde["mde_pp"] == pytest.approx(fitted * 0.2 * 100, rel=1e-9)
    assert mde["mde_logit_low"] <= min(fitted, linear) and mde["mde_logit_high"] >= max(fitted, linear)
    assert mde["mde_logit_low"] == pytest.approx(min(mde["mde_logit_boot_low"], linear))
    assert mde["mde_logit_high"] == pytest.approx(max(mde["mde_logit_boot_high"], linear))
    assert mde["mde_logit_boot_low"] < fitted < mde["mde_logit_boot_high"]
    assert mde["mde_curve"].startswith("probit")
    # deterministic: a function of the summary
    assert montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8) == mde
    # not reached within the grid: no extrapolation
    beyond = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.999)
    assert math.isnan(beyond["mde_logit"]) and beyond["reached"] is False
    # a conservative test (size interval below 5 %) still has an MDE; a liberal one has none
    conservative = summary.assign(
        rejection_low=np.where(summary["effect"] == 0, 0.03, summary["rejection_low"]),
        rejection_high=np.where(summary["effect"] == 0, 0.045, summary["rejection_high"]),
    )
    assert montecarlo.minimum_detectable_effect(conservative, "cluster_t")["size_ok"] is True
    liberal = summary.assign(rejection_low=np.where(summary["effect"] == 0, 0.06, summary["rejection_low"]))
    assert math.isnan(montecarlo.minimum_detectable_effect(liberal, "cluster_t")["mde_logit"])
