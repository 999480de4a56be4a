"""Tests of the Monte Carlo study of the race-level estimators (akim_turnout.study.replications)."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy import stats

from akim_turnout.models import race
from akim_turnout.study import montecarlo
from akim_turnout.study import replications as study
from akim_turnout.study.simulate import (
    SimulationSettings,
    population_averaged_coefficients,
    simulate_from_margins,
    true_coefficients,
)

SETTINGS = SimulationSettings.from_params()
TINY = {
    "n_replications": 4,
    "n_replications_null": None,
    "effect_grid": [0.0, -0.3],
    "designs": [{"n_regions": 14, "n_races": 730}],
    "methods": ["cluster_t", "naive_binomial"],
    "method_replications": {},
    "seed": 7,
}


@pytest.fixture(scope="module")
def tiny_design() -> study.StudyDesign:
    return study.StudyDesign.from_mapping(TINY)


@pytest.fixture(scope="module")
def tiny_results(tiny_design: study.StudyDesign, regions: pd.DataFrame) -> pd.DataFrame:
    return study.run_study(tiny_design, SETTINGS, regions, NATIONAL_2021, n_jobs=1)


# --------------------------------------------------------------------------
# Study design
# --------------------------------------------------------------------------


def test_study_design_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter 'design.n_replication' \(known: n_replications, "):
        study.StudyDesign.from_mapping({"n_replication": 10})
    with pytest.raises(ValueError, match=r"unknown parameter 'design.designs\[0\].n_race'"):
        study.StudyDesign.from_mapping({"designs": [{"n_regions": 14, "n_races": 730, "n_race": 1}]})


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"effect_grid": [-0.1, -0.2]}, "effect_grid must contain 0"),
        ({"effect_grid": [0.0, -0.1, 0.1]}, "effect_grid must lie on one side of 0"),
        ({"methods": ["cluster_t", "ols"]}, r"parameter 'design.methods\[1\]' must be one of cluster_t, .*, got 'ols'"),
        ({"method_replications": {"ols": 5}}, r"unknown parameter 'design.method_replications.ols'"),
        ({"alpha": 0.7}, r"parameter 'design.alpha' must be a number above 0 and at most 0.5, got 0.7"),
        ({"designs": []}, r"parameter 'design.designs' needs at least 1 item\(s\), got 0"),
        ({"n_boot": 5}, r"parameter 'design.n_boot' must be an integer from 19 to 100000, got 5"),
        ({"designs": [{"n_regions": 14, "n_races": 20}]}, "each design needs n_races >= 2 \\* n_regions"),
    ],
)
def test_study_design_refuses_invalid_values(mapping: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        study.StudyDesign.from_mapping(mapping)


def test_study_design_problems_are_all_named_at_once_and_the_bounds_are_inclusive() -> None:
    with pytest.raises(ValueError) as error:
        study.StudyDesign.from_mapping({"effect_grid": [-0.1, 0.1]})
    assert str(error.value) == (
        "Invalid study design: effect_grid must contain 0 (size of the tests); effect_grid must lie on one side of 0"
    )
    with pytest.raises(ValueError) as error:
        study.StudyDesign.from_mapping(
            {"designs": [{"n_regions": 14, "n_races": 730}, {"n_regions": 14, "n_races": 27}]}
        )
    assert str(error.value) == "Invalid study design: each design needs n_races >= 2 * n_regions"
    # 28 races in 14 regions is allowed, as is a grid of positive effects
    assert study.StudyDesign.from_mapping({"designs": [{"n_regions": 14, "n_races": 28}]}).designs[0].n_races == 28
    assert study.StudyDesign.from_mapping({"effect_grid": [0.0, 0.2]}).effect_grid == (0.0, 0.2)


def test_study_design_refuses_wrong_types() -> None:
    with pytest.raises(
        ValueError, match=r"parameter 'design.n_replications' must be an integer from 2 to 100000, got 10.5"
    ):
        study.StudyDesign.from_mapping({"n_replications": 10.5})
    with pytest.raises(ValueError, match=r"parameter 'design.wild_bootstrap_ci' must be true or false, got 'yes'"):
        study.StudyDesign.from_mapping({"wild_bootstrap_ci": "yes"})
    with pytest.raises(ValueError, match=r"parameter 'design.methods' must be a list, got 'cluster_t'"):
        study.StudyDesign.from_mapping({"methods": "cluster_t"})
    with pytest.raises(ValueError, match=r"parameter 'design.n_boot' must be an integer from 19 to 100000, got 5"):
        study.StudyDesign.from_params(n_boot=5)  # direct construction is checked by the same rules


def test_study_design_from_yaml_like_mapping() -> None:
    design = study.StudyDesign.from_mapping(
        {
            "n_replications": 80,
            "n_replications_null": 200,
            "effect_grid": [0, -0.1],
            "designs": [{"n_regions": 14, "n_races": 730}, {"n_regions": 28, "n_races": 1460, "n_replications": 50}],
            "method_replications": {"mixedlm": 25},
            "seed": 1,
        }
    )
    assert design.effect_grid == (0.0, -0.1)
    assert design.replications(0, 0.0) == 200 and design.replications(0, -0.1) == 80
    assert design.replications(1, 0.0) == 50 and design.replications(1, -0.1) == 50
    assert "mixedlm" in design.methods_for(24) and "mixedlm" not in design.methods_for(25)
    assert "cluster_t" in design.methods_for(10_000)


# --------------------------------------------------------------------------
# Designs and seeds
# --------------------------------------------------------------------------


def test_design_margins_real_design_is_unchanged(base_margins: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(study.design_margins(base_margins, 14, 730), base_margins)


def test_design_margins_duplicates_regions_with_other_turnouts(base_margins: pd.DataFrame) -> None:
    margins = study.design_margins(base_margins, 28, 1460)
    assert len(margins) == 28 and margins["region"].is_unique
    assert margins["region"].iloc[14] == f"{base_margins['region'].iloc[0]} #2"
    for column in ("posts", "cands", "cands_party", "cands_women", "voters_on_rolls"):
        assert margins[column].sum() == 2 * base_margins[column].sum(), column
    # copies take the published turnout of the next region: same turnouts, permuted
    assert margins["turnout_pct"].iloc[14] == base_margins["turnout_pct"].iloc[1]
    assert sorted(margins["turnout_pct"].iloc[14:]) == sorted(base_margins["turnout_pct"])
    races = simulate_from_margins(margins, SETTINGS, seed=1)
    assert len(races) == 1460 and races["region"].nunique() == 28


def test_design_margins_scales_races_within_regions(base_margins: pd.DataFrame) -> None:
    margins = study.design_margins(base_margins, 14, 2920)
    assert margins["posts"].sum() == 2920
    np.testing.assert_array_equal(margins["posts"], 4 * base_margins["posts"])
    assert len(simulate_from_margins(margins, SETTINGS, seed=1)) == 2920


def test_replication_seeds_are_deterministic_and_distinct() -> None:
    seeds = {study.replication_seeds(1, d, e, r) for d in range(2) for e in range(3) for r in range(50)}
    assert len(seeds) == 300
    assert study.replication_seeds(1, 0, 2, 5) == study.replication_seeds(1, 0, 2, 5)
    assert study.replication_seeds(1, 0, 2, 5) != study.replication_seeds(2, 0, 2, 5)


# --------------------------------------------------------------------------
# One replication
# --------------------------------------------------------------------------


def _task(base_margins: pd.DataFrame, effect: float, methods: tuple[str, ...], **kwargs) -> study.ReplicationTask:
    settings = replace(SETTINGS, beta_self_share=effect)
    return study.ReplicationTask(0, 14, 730, 1, effect, 0, base_margins, settings, methods, seed=3, **kwargs)


def test_run_replication_rows_and_targets(base_margins: pd.DataFrame) -> None:
    task = _task(base_margins, -0.3, montecarlo.METHODS)
    rows = pd.DataFrame(study.run_replication(task))
    assert list(rows.columns) == list(montecarlo.RESULT_COLUMNS)
    assert rows["method"].tolist() == list(montecarlo.METHODS)
    assert rows["sim_seed"].nunique() == 1 and rows["mean_pq"].nunique() == 1
    settings = task.settings
    targets = rows.set_index("method")["target"]
    assert targets["mixedlm"] == pytest.approx(true_coefficients(settings)["self_share"])
    for method in ("cluster_t", "wild_bootstrap", "gee_bias_reduced", "naive_binomial"):
        assert targets[method] == pytest.approx(population_averaged_coefficients(settings)["self_share"])
    # on the real design every method fits: a fit recorded as failed here is a broken call, not a simulation outcome
    assert rows["ok"].all() and (rows["error"] == "").all() and rows["converged"].all()
    races, sim_seed, _ = study.simulate_replication(task)
    share = races["voted"] / races["registered"]
    assert rows["sim_seed"].iloc[0] == sim_seed
    assert rows["mean_pq"].iloc[0] == pytest.approx(float(np.mean(share * (1 - share))), rel=1e-12)
    direct = {
        "cluster_t": race.fit_race_glm(races, study.simulate.true_formula_rhs(settings)),
        "gee_bias_reduced": race.fit_race_gee(races, study.simulate.true_formula_rhs(settings)),
        "mixedlm": race.fit_race_mixedlm(races, "np.log(n_candidates) + self_share + any_woman"),
        "naive_binomial": race.fit_race_naive_binomial(races, study.simulate.true_formula_rhs(settings)),
    }
    for method, fit in direct.items():
        row = rows.set_index("method").loc[method]
        expected = study._wald(fit, targets[method], 0.05)
        # the study's default fast engine agrees with the statsmodels fit to rounding
        # (see tests/models/fastfit/test_agreement_with_statsmodels.py)
        assert (row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
            (expected["estimate"], expected["se"], expected["ci_low"], expected["ci_high"], expected["p_value"]),
            rel=1e-9,
            abs=1e-12,
        ), method
        assert row["covered"] == expected["covered"] and row["n_warnings"] == expected["n_warnings"]
    ok = rows[rows["ok"]]
    assert (ok["rejected"] == (ok["p_value"] < 0.05)).all()
    wald = ok[ok["method"] != "wild_bootstrap"]
    assert (wald["covered"] == ((wald["ci_low"] <= wald["target"]) & (wald["target"] <= wald["ci_high"]))).all()
    # cluster-robust GLM and the bootstrap share the GLM estimate; the bootstrap has no SE
    assert targets.index.is_unique
    est = rows.set_index("method")["estimate"]
    assert est["wild_bootstrap"] == est["cluster_t"] == est["naive_binomial"]
    assert math.isnan(rows.set_index("method").at["wild_bootstrap", "se"])


def test_wild_coverage_by_test_matches_inverted_ci(base_margins: pd.DataFrame) -> None:
    by_test = study.run_replication(_task(base_margins, -0.3, ("wild_bootstrap",), n_boot=99))[0]
    by_ci = study.run_replication(_task(base_margins, -0.3, ("wild_bootstrap",), n_boot=99, wild_ci=True))[0]
    assert by_ci["ci_low"] < by_ci["estimate"] < by_ci["ci_high"]
    assert by_test["covered"] == by_ci["covered"]
    assert by_test["p_value"] == by_ci["p_value"]


def test_failed_fit_is_recorded_not_raised(base_margins: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(race, "fit_race_gee", broken)
    rows = study.run_replication(_task(base_margins, 0.0, ("cluster_t", "gee_bias_reduced"), engine="statsmodels"))
    assert rows[0]["ok"] and rows[0]["error"] == ""
    assert not rows[1]["ok"] and rows[1]["error"] == "LinAlgError: Singular matrix"
    assert math.isnan(rows[1]["estimate"]) and not rows[1]["rejected"]


def test_run_replication_counts_warnings_and_flags_unusable_fits(
    base_margins: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What run_replication adds to each method's fit, on fits made up by hand: warnings raised around the fit are
    added to the fit's own count (a ConvergenceWarning marks it not converged), a non-finite p-value makes the row
    unusable with its reason, p = alpha is not a rejection, and every method of the data set shares one cache."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    caches = []

    def made_up(method, races, task, target, boot_seed, cache):
        caches.append(cache)
        out = {"estimate": -0.3, "se": 0.1, "ci_low": -0.5, "ci_high": -0.1, "covered": True, "converged": True}
        if method == "cluster_t":
            warnings.warn("a note", UserWarning, stacklevel=1)
            warnings.warn("a note", UserWarning, stacklevel=1)  # counted once
            return {**out, "p_value": 0.05, "n_warnings": 2}
        if method == "gee_bias_reduced":
            warnings.warn("iteration limit reached", ConvergenceWarning, stacklevel=1)
            return {**out, "p_value": 0.049, "n_warnings": 0}
        return {**out, "p_value": math.nan, "n_warnings": 0}

    monkeypatch.setattr(study, "_fit_method", made_up)
    rows = study.run_replication(_task(base_margins, 0.0, ("cluster_t", "gee_bias_reduced", "mixedlm")))
    glm, gee, mixed = rows
    assert (glm["n_warnings"], glm["converged"], glm["rejected"], glm["ok"], glm["error"]) == (3, True, False, True, "")
    assert (gee["n_warnings"], gee["converged"], gee["rejected"], gee["ok"]) == (1, False, True, True)
    assert not mixed["ok"] and mixed["error"] == "non-finite estimate or p-value" and not mixed["rejected"]
    assert len(caches) == 3 and caches[0] is caches[1] is caches[2] and isinstance(caches[0], dict)


def test_failed_fit_row_has_no_numbers_and_no_verdicts(
    base_margins: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise FloatingPointError("overflow")

    monkeypatch.setattr(study, "_fit_method", broken)
    (row,) = study.run_replication(_task(base_margins, -0.3, ("cluster_t",)))
    assert row["error"] == "FloatingPointError: overflow" and row["ok"] is False
    assert [math.isnan(row[key]) for key in ("estimate", "se", "ci_low", "ci_high", "p_value")] == [True] * 5
    assert (row["covered"], row["converged"], row["n_warnings"], row["rejected"]) == (False, False, 0, False)
    # the target is still recorded: the failed fit counts against the method, not against the data set
    expected = population_averaged_coefficients(replace(SETTINGS, beta_self_share=-0.3))["self_share"]
    assert row["target"] == pytest.approx(expected, rel=1e-12) and row["target"] < -0.28


# --------------------------------------------------------------------------
# Reproducibility across workers and backends
# --------------------------------------------------------------------------


def test_results_identical_with_one_and_two_workers(
    tiny_design: study.StudyDesign, tiny_results: pd.DataFrame, regions: pd.DataFrame
) -> None:
    parallel = study.run_study(tiny_design, SETTINGS, regions, NATIONAL_2021, n_jobs=2, chunks_per_worker=3)
    assert len(tiny_results) == 2 * 4 * 2
    pd.testing.assert_frame_equal(tiny_results, parallel, check_exact=True)


def test_results_do_not_depend_on_chunking_or_progress_bar(
    tiny_design: study.StudyDesign, tiny_results: pd.DataFrame, regions: pd.DataFrame
) -> None:
    one_chunk = study.run_study(tiny_design, SETTINGS, regions, NATIONAL_2021, chunks_per_worker=1, progress=True)
    pd.testing.assert_frame_equal(tiny_results, one_chunk, check_exact=True)


def test_dask_backend_matches_joblib(
    tiny_design: study.StudyDesign, tiny_results: pd.DataFrame, regions: pd.DataFrame
) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = study.run_study(tiny_design, SETTINGS, regions, NATIONAL_2021, backend="dask", client=client)
    pd.testing.assert_frame_equal(tiny_results, on_dask, check_exact=True)


def test_replications_differ_and_seed_matters(
    tiny_design: study.StudyDesign, tiny_results: pd.DataFrame, regions: pd.DataFrame
) -> None:
    glm = tiny_results[tiny_results["method"] == "cluster_t"]
    assert glm["estimate"].is_unique and glm["sim_seed"].is_unique
    reseeded = study.run_study(replace(tiny_design, seed=8), SETTINGS, regions, NATIONAL_2021)
    assert not np.isin(reseeded["estimate"], tiny_results["estimate"]).any()


def test_run_study_refuses_unknown_backend(tiny_design: study.StudyDesign, regions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="backend"):
        study.run_study(tiny_design, SETTINGS, regions, NATIONAL_2021, backend="ray")


# --------------------------------------------------------------------------
# Summaries on hand-made results
# --------------------------------------------------------------------------


def _hand_results() -> pd.DataFrame:
    """Ten replications of one method at effect 0 plus one failed fit; numbers chosen by hand."""
    estimates = [0.1, -0.1, 0.2, -0.2, 0.0, 0.3, -0.3, 0.1, 0.1, -0.2]
    covered = [True] * 9 + [False]
    rejected = [True, True] + [False] * 8
    rows = [
        {
            "design_index": 0,
            "n_regions": 14,
            "n_races": 730,
            "effect_index": 0,
            "effect": 0.0,
            "replication": r,
            "sim_seed": r,
            "method": "cluster_t",
            "term": "self_share",
            "target": 0.0,
            "estimate": est,
            "se": 0.1,
            "ci_low": est - 0.2,
            "ci_high": est + 0.2,
            "p_value": 0.01 if rej else 0.5,
            "covered": cov,
            "rejected": rej,
            "ok": True,
            "converged": True,
            "n_warnings": 1,
            "mean_pq": 0.15,
            "error": "",
        }
        for r, (est, cov, rej) in enumerate(zip(estimates, covered, rejected, strict=True))
    ]
    failed = {
        **rows[0],
        "replication": 10,
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


def test_summarise_known_numbers() -> None:
    summary = montecarlo.summarise(_hand_results())
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["n"] == 11 and row["n_ok"] == 10
    assert row["coverage"] == pytest.approx(0.9)
    # exact (Clopper-Pearson) interval of 9 of 10: beta quantiles, by hand from scipy's beta distribution
    assert row["coverage_low"] == pytest.approx(stats.beta.ppf(0.025, 9, 2), rel=1e-12)
    assert row["coverage_high"] == pytest.approx(stats.beta.ppf(0.975, 10, 1), rel=1e-12)
    assert row["rejection"] == pytest.approx(0.2)
    assert (row["rejection_low"], row["rejection_high"]) == pytest.approx(
        (stats.beta.ppf(0.025, 2, 9), stats.beta.ppf(0.975, 3, 8)), rel=1e-12
    )
    assert row["bias"] == pytest.approx(0.0)
    assert row["rmse"] == pytest.approx(math.sqrt(0.34 / 10))
    assert row["sd_estimate"] == pytest.approx(np.std([0.1, -0.1, 0.2, -0.2, 0.0, 0.3, -0.3, 0.1, 0.1, -0.2], ddof=1))
    assert row["mean_se"] == pytest.approx(0.1)
    assert row["se_ratio"] == pytest.approx(0.1 / row["sd_estimate"])
    assert row["n_warnings"] == 10 and row["n_not_converged"] == 0


def test_clopper_pearson_known_values_and_never_zero_width() -> None:
    # 0 of 25: [0, 1 - 0.025^(1/25)]; 25 of 25: [0.025^(1/25), 1] (closed forms of the beta quantiles)
    assert montecarlo.clopper_pearson(0, 25) == pytest.approx((0.0, 1 - 0.025 ** (1 / 25)), rel=1e-12)
    assert montecarlo.clopper_pearson(25, 25) == pytest.approx((0.025 ** (1 / 25), 1.0), rel=1e-12)
    assert montecarlo.clopper_pearson(0, 25)[1] == pytest.approx(0.13718, abs=1e-5)  # as tabulated
    low, high = montecarlo.clopper_pearson(np.array([0, 5, 25]), np.array([25, 25, 25]))
    assert np.all(high - low > 0.1)
    assert montecarlo.clopper_pearson(95, 100) == pytest.approx(
        (0.8871651, 0.9835681), abs=1e-7
    )  # R: binom.test(95, 100)


def test_summarise_bias_rmse_order_and_convergence_by_hand() -> None:
    """A non-zero target, two effects and two methods given in the opposite of the reporting order; one fit that
    is usable but did not converge, one without a standard error."""
    base = _hand_results().iloc[0].to_dict()
    rows = []
    for effect_index, (effect, target) in enumerate(((0.0, 0.0), (-0.3, -0.25))):
        for method in ("naive_binomial", "cluster_t"):  # METHODS lists cluster_t first
            for replication, estimate in enumerate((-0.2, -0.1, -0.45)):
                rows.append(
                    {
                        **base,
                        "effect_index": effect_index,
                        "effect": effect,
                        "method": method,
                        "replication": replication,
                        "target": target,
                        "estimate": estimate,
                        "se": math.nan if replication == 2 else 0.1 * (replication + 1),
                        "converged": replication != 1,
                        "n_warnings": replication,
                    }
                )
    summary = montecarlo.summarise(pd.DataFrame(rows))
    assert summary[["effect", "method"]].values.tolist() == [
        [0.0, "cluster_t"], [0.0, "naive_binomial"], [-0.3, "cluster_t"], [-0.3, "naive_binomial"]
    ]  # fmt: skip
    row = summary.iloc[2].to_dict()
    # errors: 0.05, 0.15, -0.2 -> bias 0, rmse sqrt((0.0025 + 0.0225 + 0.04) / 3)
    assert row["mean_estimate"] == pytest.approx(-0.25, abs=1e-15) and row["bias"] == pytest.approx(0.0, abs=1e-15)
    assert row["rmse"] == pytest.approx(math.sqrt(0.065 / 3), rel=1e-14)
    assert row["target"] == -0.25
    null = summary.iloc[0].to_dict()  # errors -0.2, -0.1, -0.45 against 0
    assert null["bias"] == pytest.approx(-0.25, rel=1e-14) and null["rmse"] == pytest.approx(math.sqrt(0.2525 / 3))
    assert row["mean_se"] == pytest.approx(0.15, rel=1e-14)  # the missing standard error is left out
    assert row["sd_estimate"] == pytest.approx(math.sqrt(0.0325), rel=1e-14)  # deviations 0.05, 0.15, -0.2; ddof 1
    assert row["se_ratio"] == pytest.approx(0.15 / math.sqrt(0.0325), rel=1e-14)
    assert row["n_warnings"] == 3 and row["n_not_converged"] == 1 and row["n_ok"] == 3


def test_summarise_with_one_usable_fit_or_none() -> None:
    results = _hand_results()
    one = montecarlo.summarise(results.iloc[[0, 10]]).iloc[0]  # one usable fit, one failed
    assert one["n"] == 2 and one["n_ok"] == 1 and math.isnan(one["sd_estimate"]) and math.isnan(one["se_ratio"])
    assert one["coverage"] == 1.0 and one["bias"] == pytest.approx(0.1)
    none = montecarlo.summarise(results.iloc[[10]]).iloc[0]
    assert none["n_ok"] == 0 and math.isnan(none["coverage"]) and math.isnan(none["rejection"])
    assert math.isnan(none["coverage_low"]) and math.isnan(none["coverage_high"])
    no_se = montecarlo.summarise(results.assign(se=math.nan)).iloc[0]
    assert math.isnan(no_se["mean_se"]) and math.isnan(no_se["se_ratio"])


def test_summarise_needs_no_error_seed_or_term_column() -> None:
    full = montecarlo.summarise(_hand_results())
    pd.testing.assert_frame_equal(
        montecarlo.summarise(_hand_results().drop(columns=["error", "sim_seed", "term"])), full
    )
    with pytest.raises(ValueError, match=r"^results is missing column\(s\): \['target', 'covered'\]$"):
        montecarlo.summarise(_hand_results().drop(columns=["target", "covered"]))


def test_summarise_refuses_missing_columns() -> None:
    with pytest.raises(ValueError, match="covered"):
        montecarlo.summarise(_hand_results().drop(columns="covered"))


def _hand_summary(
    power: list[float],
    effects=(0.0, -0.1, -0.2, -0.3),
    method="cluster_t",
    n_ok=100,
    coverage: list[float] | None = None,
) -> pd.DataFrame:
    power = np.array(power)
    coverage = np.array(coverage if coverage is not None else [0.95] * len(effects))
    power_low, power_high = montecarlo.clopper_pearson(np.round(power * n_ok), n_ok)
    coverage_low, coverage_high = montecarlo.clopper_pearson(np.round(coverage * n_ok), n_ok)
    return pd.DataFrame(
        {
            "design_index": 0,
            "n_regions": 14,
            "n_races": 730,
            "effect_index": range(len(effects)),
            "effect": effects,
            "method": method,
            "n": n_ok,
            "n_ok": n_ok,
            "rejection": power,
            "rejection_low": power_low,
            "rejection_high": power_high,
            "coverage": coverage,
            "coverage_low": coverage_low,
            "coverage_high": coverage_high,
            "mean_pq": 0.15,
        }
    )


def test_power_curve_sorted_by_absolute_effect() -> None:
    curve = montecarlo.power_curve(_hand_summary([0.05, 0.3, 0.7, 0.9], effects=(0.0, -0.2, -0.1, -0.3)), "cluster_t")
    assert curve["abs_effect"].tolist() == [0.0, 0.1, 0.2, 0.3]
    assert curve["power"].tolist() == [0.05, 0.7, 0.3, 0.9]


def test_minimum_detectable_effect_interpolates_with_its_monte_carlo_interval() -> None:
    summary = _hand_summary([0.05, 0.3, 0.7, 0.9])
    mde = montecarlo.minimum_detectable_effect(summary, "cluster_t", power=0.8)
    assert mde["mde_logit_linear"] == pytest.approx(0.25, rel=1e-12)  # 0.2 + (0.8 - 0.7) / (0.9 - 0.7) * 0.1
    assert mde["mde_pp_linear"] == pytest.approx(0.25 * 0.15 * 100, rel=1e-12)
    assert mde["mde_pp"] == pytest.approx(mde["mde_logit"] * 0.15 * 100, rel=1e-12)
    assert mde["reached"] and mde["size"] == 0.05 and mde["size_ok"] and mde["enough_replications"]
    # the interval holds the probit fit's and the linear MDE
    assert mde["mde_logit_low"] <= min(mde["mde_logit"], mde["mde_logit_linear"])
    assert max(mde["mde_logit"], mde["mde_logit_linear"]) <= mde["mde_logit_high"]
    exact = montecarlo.minimum_detectable_effect(_hand_summary([0.05, 0.5, 0.8, 0.9]), "cluster_t", power=0.8)
    assert exact["mde_logit_linear"] == pytest.approx(0.2)


def test_minimum_detectable_effect_not_reached_invalid_size_or_too_few_replications() -> None:
    low = montecarlo.minimum_detectable_effect(_hand_summary([0.05, 0.2, 0.4, 0.6]), "cluster_t")
    assert not low["reached"] and math.isnan(low["mde_logit"]) and math.isnan(low["mde_pp"])
    liberal = montecarlo.minimum_detectable_effect(_hand_summary([0.5, 0.9, 1.0, 1.0]), "cluster_t")
    assert not liberal["size_ok"] and math.isnan(liberal["mde_pp"])
    few = montecarlo.minimum_detectable_effect(_hand_summary([0.05, 0.3, 0.7, 0.9], n_ok=25), "cluster_t")
    assert not few["enough_replications"] and math.isnan(few["mde_pp"]) and math.isnan(few["mde_pp_low"])


def _methods_summary(spec: dict[str, tuple[float, float, int]]) -> pd.DataFrame:
    """Summary rows per method: (size at 0, coverage at the non-zero effects, data sets per effect)."""
    return pd.concat(
        [
            _hand_summary([size, 0.5, 0.8, 0.95], method=m, n_ok=n, coverage=[1 - size] + [cov] * 3)
            for m, (size, cov, n) in spec.items()
        ],
        ignore_index=True,
    )


def test_recommend_method_prefers_calibrated_cluster_robust() -> None:
    summary = _methods_summary(
        {
            "cluster_t": (0.09, 0.91, 200),
            "wild_bootstrap": (0.06, 0.94, 200),
            "gee_bias_reduced": (0.05, 0.88, 200),
            "mixedlm": (0.05, 0.95, 200),
            "naive_binomial": (0.7, 0.3, 200),
        }
    )
    name, reason = montecarlo.recommend_method(summary)
    # cluster_t's size interval ends above the ceiling; gee's coverage interval begins below the floor; mixedlm is
    # not cluster-robust
    assert name == "wild_bootstrap"
    assert "2 of 5 methods were acceptable; among the cluster-robust ones" in reason
    assert "cluster-robust GLM with t(G-1): size 9 % (5.4 % to 13.9 %)" in reason


def test_recommend_method_ignores_methods_with_few_replications_and_falls_back() -> None:
    few = _methods_summary({"cluster_t": (0.12, 0.88, 200), "gee_bias_reduced": (0.05, 0.95, 25)})
    name, reason = montecarlo.recommend_method(few)
    assert name == "cluster_t" and "No method was acceptable; the cluster-robust GLM with t(G-1) is reported" in reason


def test_study_metrics_is_json_ready(tiny_results: pd.DataFrame) -> None:
    metrics = montecarlo.study_metrics(montecarlo.summarise(tiny_results))
    text = json.dumps(metrics, allow_nan=False)
    assert metrics["real_design"]["n_regions"] == 14
    assert set(metrics["real_design"]["methods"]) == {"cluster_t", "naive_binomial"}
    assert metrics["recommended_method"] in {"cluster_t", "naive_binomial"}
    assert "NaN" not in text


def test_study_metrics_by_hand() -> None:
    """Per method: fits used and failed, the worst coverage over the non-zero effects with the effect where it
    occurs, the MDE at the requested power; the sizes of every design, in design order."""

    def method_rows(method: str, size: float, coverage: list[float], design: tuple[int, int, int] = (0, 14, 730)):
        rows = _hand_summary([size, 0.5, 0.8, 0.95], method=method, n_ok=200, coverage=coverage)
        return rows.assign(
            design_index=design[0], n_regions=design[1], n_races=design[2], n=203, bias=0.01, se_ratio=0.9
        )

    summary = pd.concat(
        [
            method_rows("cluster_t", 0.07, [0.93, 0.94, 0.91, 0.92], (1, 28, 1460)),  # a second design, listed first
            method_rows("mixedlm", 0.05, [0.95, 0.95, 0.95, 0.96]),
            method_rows("cluster_t", 0.06, [0.94, 0.93, 0.90, 0.92]),
        ],
        ignore_index=True,
    )
    summary.loc[(summary["method"] == "mixedlm") & (summary["effect_index"] == 3), "n_ok"] = 150
    metrics = montecarlo.study_metrics(summary, power=0.5)
    real = metrics["real_design"]
    assert (real["n_regions"], real["n_races"], real["alpha"], real["mde_power"]) == (14, 730, 0.05, 0.5)
    assert list(real["methods"]) == ["cluster_t", "mixedlm"]  # reporting order
    glm, mixed = real["methods"]["cluster_t"], real["methods"]["mixedlm"]
    assert (glm["n_replications"], glm["n_failed"], glm["n_replications_per_effect"]) == (200, 3, 200)
    assert mixed["n_replications_per_effect"] == 150
    assert (glm["size"], glm["coverage_min"], glm["coverage_min_effect"]) == (0.06, 0.9, -0.2)
    low, high = montecarlo.clopper_pearson(180, 200)
    assert glm["coverage_min_low"] == pytest.approx(low, abs=5e-7) and glm["coverage_min_high"] == pytest.approx(
        high, abs=5e-7
    )
    assert (mixed["coverage_min"], mixed["coverage_min_effect"]) == (0.95, -0.1)  # the first of equal coverages
    assert (glm["bias_at_zero"], glm["se_ratio_at_zero"]) == (0.01, 0.9)
    assert glm["mde_logit_linear"] == pytest.approx(0.1) and glm["size_ok"] and glm["enough_replications"]
    assert metrics["designs"] == [
        {"n_regions": 14, "n_races": 730, "size": {"mixedlm": 0.05, "cluster_t": 0.06}},
        {"n_regions": 28, "n_races": 1460, "size": {"cluster_t": 0.07}},
    ]
    # at 5 %: the GLM's worst coverage (180 of 200, exact interval from 0.849) begins below the floor for 200 data
    # sets (0.879), the mixed model is acceptable; at 10 % the floor (for 90 % coverage) is lower and the GLM, the
    # cluster-robust method, is acceptable
    assert metrics["recommended_method"] == montecarlo.recommend_method(summary)[0] == "mixedlm"
    assert montecarlo.study_metrics(summary, alpha=0.10)["recommended_method"] == "cluster_t"
    assert montecarlo.study_metrics(summary)["real_design"]["methods"]["cluster_t"][
        "mde_logit_linear"
    ] == pytest.approx(0.2)


def test_sensitivity_is_the_study_rerun_per_setting(regions: pd.DataFrame) -> None:
    """One row per scenario (the base settings, then each grid value other than the base, one setting at a time)
    and method, each from a study rerun on the first design with those settings, those methods alone and n data
    sets per effect (at effect 0 as well)."""
    base = study.StudyDesign.from_mapping({**TINY, "effect_grid": [0.0, -0.6], "methods": ["cluster_t", "mixedlm"]})
    grid = {"overdispersion_sd": [0.2, SETTINGS.overdispersion_sd], "beta_women": [SETTINGS.beta_women]}
    table = study.sensitivity(base, SETTINGS, regions, NATIONAL_2021, grid, ["mixedlm"], 100, power=0.5)
    assert table.columns.tolist() == [
        "dimension", "value", "method", "n_replications", "size", "size_low", "size_high", "size_ok",
        "coverage_min", "coverage_min_low", "coverage_min_high", "acceptable",
        "mde_logit", "mde_logit_low", "mde_logit_high", "mde_pp", "mde_pp_low", "mde_pp_high",
    ]  # fmt: skip
    assert table["dimension"].tolist() == ["base", "overdispersion_sd"] and table["value"].tolist() == ["", "0.2"]
    assert table["method"].tolist() == ["mixedlm"] * 2 and table["n_replications"].tolist() == [100, 100]
    design = replace(base, methods=("mixedlm",), n_replications=100, n_replications_null=100, method_replications=())
    for row, sd in zip(table.to_dict("records"), (SETTINGS.overdispersion_sd, 0.2), strict=True):
        results = study.run_study(design, replace(SETTINGS, overdispersion_sd=sd), regions, NATIONAL_2021)
        assert len(results) == 100 * 2 and set(results["method"]) == {"mixedlm"}
        summary = montecarlo.summarise(results)
        expected = montecarlo.minimum_detectable_effect(summary, "mixedlm", power=0.5)
        assert expected["reached"] and expected["size_ok"] and math.isfinite(expected["mde_pp_high"])
        for key in ("size", "size_low", "size_high", "mde_logit", "mde_pp", "mde_pp_high"):
            assert row[key] == expected[key], key
        standing = montecarlo.method_standing(summary[summary["method"] == "mixedlm"], base.alpha)
        assert (row["size_ok"], row["acceptable"]) == (standing["size_ok"], standing["acceptable"])
        at_effect = summary[summary["effect"] != 0].iloc[0]  # one non-zero effect: the lowest coverage is its own
        assert row["coverage_min"] == at_effect["coverage"] and row["coverage_min_low"] == at_effect["coverage_low"]
    # the settings matter: each row is its own rerun (with two effects the probit passes through both rates, so the
    # MDE's direction follows the size at effect 0 as much as the power; each row is pinned to its rerun above)
    assert table.loc[1, "mde_logit"] != table.loc[0, "mde_logit"]


def test_progress_bar_names_the_chunks_and_counts_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(study._progress(iter("abc"), 3, True)) == ["a", "b", "c"]
    shown = capsys.readouterr().err
    assert "replication chunks" in shown and "3/3" in shown
    assert list(study._progress(iter("abc"), 3, False)) == ["a", "b", "c"]
    assert capsys.readouterr().err == ""


def test_sensitivity_reruns_the_cluster_robust_and_the_recommended_methods() -> None:
    methods = ("cluster_t", "wild_bootstrap", "gee_bias_reduced", "mixedlm", "naive_binomial")
    assert study.sensitivity_methods(methods, ["mixedlm"]) == [
        "cluster_t",
        "wild_bootstrap",
        "gee_bias_reduced",
        "mixedlm",
    ]
    assert study.sensitivity_methods(methods, ["gee_bias_reduced"]) == [
        "cluster_t",
        "wild_bootstrap",
        "gee_bias_reduced",
    ]


def test_sensitivity_summary_of_the_recommended_method() -> None:
    table = pd.DataFrame(
        {
            "dimension": ["base", "base", "slope_sd", "slope_sd"],
            "value": ["", "", "0.3", "0.3"],
            "method": ["gee_bias_reduced", "mixedlm"] * 2,
            "size": [0.05, 0.04, 0.06, 0.2],
            "size_low": [0.04, 0.03, 0.05, 0.15],
            "size_high": [0.06, 0.05, 0.07, 0.25],
            "coverage_min": [0.95, 0.96, 0.94, 0.7],
            "coverage_min_low": [0.93, 0.94, 0.92, 0.65],
            "mde_pp": [5.0, 4.0, 6.5, 3.0],
            "acceptable": [True, True, True, False],
        }
    )
    summary = study.sensitivity_summary(table, "mixedlm", 100)
    assert summary["holds"] == ["base"] and summary["fails"] == ["slope_sd=0.3"]
    assert (summary["mde_pp_min"], summary["mde_pp_max"], summary["mde_pp_chosen"]) == (3.0, 4.0, 4.0)
    assert summary["settings"] == 2 and summary["methods"] == ["gee_bias_reduced", "mixedlm"]
    assert [row["mde_pp"] for row in summary["recommended"]] == [4.0, 3.0]
    with pytest.raises(ValueError, match="no rows of the recommended method 'cluster_t'"):
        study.sensitivity_summary(table, "cluster_t", 100)
