"""Exact behaviour of the Monte Carlo study's own code (study.replications), on one simulated data set or on fits,
bootstraps and study runs made up by hand.

Pinned here: the study design's messages word for word and the inclusive bound on races per region; the margins of
designs with one region or one race per region; Wald rows (normal and t at any level, closed intervals); the fast
engine's fits (equal to statsmodels, one data set's arrays and GLM computed once, refusal of a non-positive variance
or of a bootstrap CI with its reason, the requested bootstrap weights, a p-value equal to alpha at the target
counting as covered); the statsmodels bootstrap row (coverage from the test at the target with the same draws, or
from the CI); how run_replication records warnings, convergence, unusable and failed fits; the results frame's
columns, types and order; run_study's defaults (no progress bar, four chunks per worker), its engine and backends;
the tasks and seeds; and the sensitivity table as the MDE of the reduced study rerun per setting.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from akim_turnout.models import fastfit, inference, race, resampling
from akim_turnout.study import montecarlo, simulate
from akim_turnout.study import replications as study
from akim_turnout.study.simulate import SimulationSettings

SETTINGS = SimulationSettings.from_params()
EFFECT = -0.3


def make_task(
    margins: pd.DataFrame, methods: tuple[str, ...], effect: float = EFFECT, **kwargs
) -> study.ReplicationTask:
    settings = replace(SETTINGS, beta_self_share=effect)
    return study.ReplicationTask(0, 14, 730, 1, effect, 0, margins, settings, methods, seed=3, **kwargs)


@pytest.fixture(scope="module")
def replication(base_margins: pd.DataFrame) -> tuple[study.ReplicationTask, pd.DataFrame, int]:
    task = make_task(base_margins, ("cluster_t",))
    races, _, boot_seed = study.simulate_replication(task)
    return task, races, boot_seed


def counting(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list[int]:
    """Count the calls of ``module.name`` (still calling it)."""
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


# --------------------------------------------------------------------------
# Study design
# --------------------------------------------------------------------------


def test_direct_construction_names_every_problem_of_the_grid() -> None:
    with pytest.raises(ValueError) as error:
        study.StudyDesign.from_params(effect_grid=(-0.1, 0.1))
    assert str(error.value) == (
        "Invalid study design: effect_grid must contain 0 (size of the tests); effect_grid must lie on one side of 0"
    )


def test_races_per_region_bound_is_two_inclusive() -> None:
    assert (
        study.StudyDesign.from_params(designs=(study.DesignPoint(14, 28), study.DesignPoint(5, 14))).designs[1].n_races
        == 14
    )
    with pytest.raises(ValueError) as error:
        study.StudyDesign.from_params(designs=(study.DesignPoint(5, 9),))
    assert str(error.value) == "Invalid study design: each design needs n_races >= 2 * n_regions"


def test_from_mapping_names_every_problem_of_the_keys() -> None:
    with pytest.raises(ValueError) as error:
        study.StudyDesign.from_mapping({"n_boot": 5, "alpha": 0.7})
    assert str(error.value) == (
        "Invalid study design: parameter 'design.n_boot' must be an integer from 19 to 100000, got 5; "
        "parameter 'design.alpha' must be a number above 0 and at most 0.5, got 0.7"
    )


# --------------------------------------------------------------------------
# Margins, seeds, chunks and tasks
# --------------------------------------------------------------------------


def test_design_margins_with_one_region_or_one_race_per_region(base_margins: pd.DataFrame) -> None:
    one = study.design_margins(base_margins, 1, 3)
    assert one["region"].tolist() == [base_margins["region"].iloc[0]] and one["posts"].tolist() == [3]
    assert one["turnout_pct"].tolist() == [base_margins["turnout_pct"].iloc[0]]
    three = study.design_margins(base_margins, 3, 3)
    assert three["region"].tolist() == base_margins["region"].iloc[:3].tolist()
    assert three["posts"].sum() == 3
    with pytest.raises(ValueError) as error:
        study.design_margins(base_margins, 4, 3)
    assert str(error.value) == "need 1 <= n_regions <= n_races, got 4, 3"


def test_replication_seeds_are_the_first_two_words_of_the_seed_sequence() -> None:
    words = np.random.SeedSequence([20210725, 1, 2, 3]).generate_state(2)
    assert study.replication_seeds(20210725, 1, 2, 3) == (int(words[0]), int(words[1]))


def test_chunk_tasks_never_makes_empty_chunks() -> None:
    assert study.chunk_tasks(["a"], 1) == [["a"]]
    assert study.chunk_tasks(["a"], 0) == [["a"]]
    assert study.chunk_tasks(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]


def test_build_tasks_carries_effect_and_engine_and_checks_minimum_candidates(regions: pd.DataFrame) -> None:
    design = study.StudyDesign.from_params(n_replications=2, n_replications_null=None, effect_grid=(0.0, -0.25))
    tasks = study.build_tasks(design, SETTINGS, regions, NATIONAL_2021, engine="statsmodels")
    assert [t.effect for t in tasks] == [0.0, 0.0, -0.25, -0.25]
    assert {t.engine for t in tasks} == {"statsmodels"}
    # three regions have fewer than three candidates per post, so the rule allows at most two per race
    with pytest.raises(ValueError) as error:
        study.build_tasks(design, replace(SETTINGS, min_candidates=3), regions, NATIONAL_2021)
    assert str(error.value) == (
        "Invalid simulation settings: parameter 'settings.min_candidates' must be an integer from 1 to 2, got 3"
    )


# --------------------------------------------------------------------------
# Wald rows
# --------------------------------------------------------------------------


@pytest.mark.parametrize("df", [None, 5])
def test_fast_wald_at_any_level_with_closed_interval(df: int | None) -> None:
    estimate, variance, alpha = -0.4, 0.04, 0.1
    quantile = stats.norm.ppf(1 - alpha / 2) if df is None else stats.t.ppf(1 - alpha / 2, df)
    p_value = 2 * (stats.norm.sf(2.0) if df is None else stats.t.sf(2.0, df))
    row = study._fast_wald(estimate, variance, df, 0.0, alpha)
    assert row["se"] == pytest.approx(0.2, rel=1e-15)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.4 - quantile * 0.2, -0.4 + quantile * 0.2), rel=1e-12)
    assert row["p_value"] == pytest.approx(p_value, rel=1e-10)
    assert row["covered"] is (row["ci_high"] >= 0.0)
    for bound in (row["ci_low"], row["ci_high"]):
        assert study._fast_wald(estimate, variance, df, bound, alpha)["covered"] is True


def _fit(estimate: float, se: float) -> inference.FitResult:
    index = [study.EFFECT_TERM]
    return inference.FitResult(
        name="made up",
        family="binomial",
        formula="self_share",
        params=pd.Series([estimate], index=index),
        bse=pd.Series([se], index=index),
        conf_int=pd.DataFrame(),
        pvalues=pd.Series([0.2], index=index),
        n_obs=100,
        n_clusters=None,
        cov_type="nonrobust",
        use_t=False,
        df_resid=None,
    )


def test_wald_interval_is_closed() -> None:
    row = study._wald(_fit(0.5, 0.25), 0.0, 0.05)
    half = stats.norm.ppf(0.975) * 0.25
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12)
    for bound in (row["ci_low"], row["ci_high"]):
        assert study._wald(_fit(0.5, 0.25), bound, 0.05)["covered"] is True


# --------------------------------------------------------------------------
# Fast engine
# --------------------------------------------------------------------------


def test_fast_cluster_glm_is_the_statsmodels_wald_row(replication) -> None:
    task, races, boot_seed = replication
    target = study.method_target("cluster_t", task.settings)
    fast = study._fit_fast("cluster_t", races, task, target, boot_seed, {})
    expected = study._wald(race.fit_race_glm(races, simulate.true_formula_rhs(task.settings)), target, task.alpha)
    for key in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        assert fast[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    assert (fast["covered"], fast["converged"], fast["n_warnings"]) == (expected["covered"], True, 0)


def test_one_data_sets_arrays_and_glm_are_computed_once(replication, monkeypatch: pytest.MonkeyPatch) -> None:
    task, races, boot_seed = replication
    arrays_calls = counting(monkeypatch, fastfit, "race_arrays")
    glm_calls = counting(monkeypatch, fastfit, "fit_counts_glm")
    cache: dict = {}
    rows = [
        study._fit_method(m, races, task, study.method_target(m, task.settings), boot_seed, cache)
        for m in ("cluster_t", "naive_binomial", "wild_bootstrap")
    ]
    assert (len(arrays_calls), len(glm_calls)) == (1, 1)
    assert rows[0]["estimate"] == rows[1]["estimate"] == rows[2]["estimate"]
    alone = study._fit_method("cluster_t", races, task, study.method_target("cluster_t", task.settings), boot_seed)
    assert alone == rows[0]


def test_fast_engine_declines_a_non_positive_variance(replication, monkeypatch: pytest.MonkeyPatch) -> None:
    task, races, boot_seed = replication
    original = fastfit.fit_counts_glm

    def zero_intercept_variance(arrays, *args, **kwargs):
        glm = original(arrays, *args, **kwargs)
        cov = glm.cov_cluster.copy()
        cov[0, :] = cov[:, 0] = 0.0
        return dataclasses.replace(glm, cov_cluster=cov)

    monkeypatch.setattr(fastfit, "fit_counts_glm", zero_intercept_variance)
    with pytest.raises(fastfit.FastPathDeclined) as error:
        study._fit_fast("cluster_t", races, task, 0.0, boot_seed, {})
    assert str(error.value) == "non-positive or non-finite variance"


def test_fast_engine_declines_the_bootstrap_ci(replication) -> None:
    task, races, boot_seed = replication
    with pytest.raises(fastfit.FastPathDeclined) as error:
        study._fit_fast("wild_bootstrap", races, replace(task, wild_ci=True), 0.0, boot_seed, {})
    assert str(error.value) == "bootstrap CI by test inversion is computed by resampling.wild_cluster_bootstrap"


def test_fast_bootstrap_uses_the_requested_weights(base_margins: pd.DataFrame) -> None:
    task = make_task(base_margins, ("wild_bootstrap",), effect=0.0, n_boot=39, wild_weights="rademacher")
    races, _, boot_seed = study.simulate_replication(task)
    fast = study._fit_fast("wild_bootstrap", races, task, 0.0, boot_seed, {})
    rhs = simulate.true_formula_rhs(task.settings)
    common = {"n_boot": 39, "seed": boot_seed, "alpha": 0.05, "ci": False}
    expected = resampling.wild_cluster_bootstrap(races, rhs, "self_share", weights="rademacher", **common)
    other = resampling.wild_cluster_bootstrap(races, rhs, "self_share", weights="webb", **common)
    assert other.p_value != expected.p_value  # the weights matter on this data set
    assert fast["p_value"] == pytest.approx(expected.p_value, abs=1e-12)
    assert fast["covered"] is (expected.p_value >= 0.05)


def test_fast_bootstrap_p_value_equal_to_alpha_at_the_target_is_covered(
    replication, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, races, boot_seed = replication
    monkeypatch.setattr(fastfit, "score_bootstrap", lambda arrays, k, null_value, draws, start: (1.0, 0.05))
    row = study._fit_fast("wild_bootstrap", races, task, -0.29, boot_seed, {})
    assert (row["p_value"], row["covered"]) == (0.05, True)


def test_unknown_method_is_refused(replication) -> None:
    task, races, boot_seed = replication
    with pytest.raises(ValueError) as error:
        study._fit_method("ols", races, task, 0.0, boot_seed)
    assert str(error.value) == (
        "unknown method 'ols'; choose from ('cluster_t', 'wild_bootstrap', 'gee_bias_reduced', 'mixedlm', "
        "'naive_binomial')"
    )


# --------------------------------------------------------------------------
# Bootstrap on the statsmodels path
# --------------------------------------------------------------------------


def _made_up_bootstrap(
    calls: list[dict],
    p_at: dict[float, float],
    bounds: tuple[float, float] = (math.nan, math.nan),
    warn: str | None = None,
) -> Callable:
    """A bootstrap test with the given p-value at each null value and the given CI; records its arguments."""

    def bootstrap(df, formula_rhs, term, n_boot=999, seed=0, weights="webb", null_value=0.0, alpha=0.05, ci=True):
        if warn is not None:
            warnings.warn(warn, ConvergenceWarning, stacklevel=1)
        calls.append({"term": term, "null_value": null_value, "ci": ci, "n_boot": n_boot, "seed": seed, "w": weights})
        low, high = bounds if ci else (math.nan, math.nan)
        return resampling.WildBootstrapResult(
            term, -0.33, null_value, 1.0, p_at[null_value], low, high, n_boot, 14, weights, seed
        )

    return bootstrap


def test_statsmodels_bootstrap_covers_by_the_test_at_the_target(replication, monkeypatch) -> None:
    task, races, boot_seed = replication
    calls: list[dict] = []
    monkeypatch.setattr(resampling, "wild_cluster_bootstrap", _made_up_bootstrap(calls, {0.0: 0.01, -0.29: 0.05}))
    wild_task = replace(task, methods=("wild_bootstrap",), engine="statsmodels", n_boot=49, wild_weights="rademacher")
    row = study._fit_wild(races, wild_task, -0.29, boot_seed)
    assert sorted(row) == sorted(
        ["estimate", "se", "ci_low", "ci_high", "p_value", "covered", "converged", "n_warnings"]
    )
    assert (row["estimate"], row["p_value"], row["converged"], row["n_warnings"]) == (-0.33, 0.01, True, 0)
    assert row["covered"] is True  # p = alpha at the target is not a rejection
    assert math.isnan(row["se"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    common = {"term": "self_share", "ci": False, "n_boot": 49, "seed": boot_seed, "w": "rademacher"}
    assert calls == [{**common, "null_value": 0.0}, {**common, "null_value": -0.29}]
    monkeypatch.setattr(resampling, "wild_cluster_bootstrap", _made_up_bootstrap([], {0.0: 0.01, -0.29: 0.049}))
    assert study._fit_wild(races, wild_task, -0.29, boot_seed)["covered"] is False


def test_statsmodels_bootstrap_covers_by_the_ci_when_asked(replication, monkeypatch) -> None:
    task, races, boot_seed = replication
    wild_task = replace(task, engine="statsmodels", wild_ci=True)
    for bounds, covered in (((-0.5, -0.29), True), ((-0.29, 0.1), True), ((-0.28, 0.1), False)):
        calls: list[dict] = []
        monkeypatch.setattr(resampling, "wild_cluster_bootstrap", _made_up_bootstrap(calls, {0.0: 0.2}, bounds))
        row = study._fit_wild(races, wild_task, -0.29, boot_seed)
        assert row["covered"] is covered and (row["ci_low"], row["ci_high"]) == bounds
        assert [c["ci"] for c in calls] == [True]


def test_statsmodels_bootstrap_counts_its_convergence_warnings(replication, monkeypatch) -> None:
    task, races, boot_seed = replication
    made_up = _made_up_bootstrap([], {0.0: 0.2}, warn="restricted fit did not converge")
    monkeypatch.setattr(resampling, "wild_cluster_bootstrap", made_up)
    row = study._fit_wild(races, replace(task, engine="statsmodels"), 0.0, boot_seed)
    assert (row["converged"], row["n_warnings"], row["covered"]) == (False, 1, True)


# --------------------------------------------------------------------------
# What run_replication adds to a fit
# --------------------------------------------------------------------------


def _fits_by_method(outcomes: dict) -> Callable:
    def fit(method, races, task, target, boot_seed, cache):
        outcome = outcomes[method]
        if isinstance(outcome, Exception):
            raise outcome
        for category, message in outcome.get("warn", ()):
            warnings.warn(message, category, stacklevel=1)
        base = {"estimate": -0.3, "se": 0.1, "ci_low": -0.5, "ci_high": -0.1, "covered": True, "p_value": 0.2}
        return {**base, "converged": True, "n_warnings": 0, **{k: v for k, v in outcome.items() if k != "warn"}}

    return fit


def test_run_replication_adds_warnings_and_convergence(base_margins, monkeypatch) -> None:
    outcomes = {
        "cluster_t": {"n_warnings": 2, "warn": [(ConvergenceWarning, "no convergence")]},
        "wild_bootstrap": {"converged": False},
        "gee_bias_reduced": {"n_warnings": 1, "warn": [(UserWarning, "Convergence is slow")]},
        "mixedlm": {"p_value": 0.05},
        "naive_binomial": {"p_value": 0.0499},
    }
    monkeypatch.setattr(study, "_fit_method", _fits_by_method(outcomes))
    rows = {r["method"]: r for r in study.run_replication(make_task(base_margins, montecarlo.METHODS))}
    assert (rows["cluster_t"]["n_warnings"], rows["cluster_t"]["converged"]) == (3, False)
    assert (rows["wild_bootstrap"]["n_warnings"], rows["wild_bootstrap"]["converged"]) == (0, False)
    assert (rows["gee_bias_reduced"]["n_warnings"], rows["gee_bias_reduced"]["converged"]) == (2, True)
    assert (rows["mixedlm"]["rejected"], rows["naive_binomial"]["rejected"]) == (False, True)
    assert all(r["ok"] and r["error"] == "" for r in rows.values())


def test_run_replication_flags_unusable_and_failed_fits(base_margins, monkeypatch) -> None:
    outcomes = {
        "cluster_t": {"p_value": math.nan},
        "wild_bootstrap": {"estimate": math.nan},
        "gee_bias_reduced": np.linalg.LinAlgError("Singular matrix"),
        "mixedlm": {"estimate": math.inf, "p_value": 0.5},
        "naive_binomial": {},
    }
    monkeypatch.setattr(study, "_fit_method", _fits_by_method(outcomes))
    rows = {r["method"]: r for r in study.run_replication(make_task(base_margins, montecarlo.METHODS))}
    for method in ("cluster_t", "wild_bootstrap", "mixedlm"):
        assert (rows[method]["ok"], rows[method]["error"]) == (False, "non-finite estimate or p-value"), method
    failed = rows["gee_bias_reduced"]
    assert (failed["ok"], failed["error"]) == (False, "LinAlgError: Singular matrix")
    assert (failed["covered"], failed["converged"], failed["n_warnings"], failed["rejected"]) == (
        False,
        False,
        0,
        False,
    )
    assert (rows["naive_binomial"]["ok"], rows["naive_binomial"]["covered"]) == (True, True)


def test_run_replication_fits_the_glm_once_for_three_methods(base_margins, monkeypatch) -> None:
    glm_calls = counting(monkeypatch, fastfit, "fit_counts_glm")
    rows = study.run_replication(make_task(base_margins, ("cluster_t", "wild_bootstrap", "naive_binomial"), n_boot=19))
    assert len(glm_calls) == 1 and all(r["ok"] for r in rows)


# --------------------------------------------------------------------------
# Results frame and study runs
# --------------------------------------------------------------------------


def _row(replication: int, method: str, **extra) -> dict:
    row = dict.fromkeys(montecarlo.RESULT_COLUMNS, 0)
    return {
        **row,
        "n_regions": 14,
        "n_races": 730,
        "effect": 0.0,
        "replication": replication,
        "method": method,
        "term": "self_share",
        "target": 0.0,
        "estimate": 1.0,
        "se": 2.0,
        "p_value": 0.5,
        "mean_pq": 0.25,
        "ok": True,
        "error": "",
        **extra,
    }


def test_results_frame_keeps_float_columns_and_only_the_result_columns() -> None:
    rows = [_row(1, "cluster_t"), _row(0, "naive_binomial", extra_key=1), _row(0, "cluster_t", estimate=1.23456789)]
    frame = study.results_frame(rows)
    assert frame.columns.tolist() == list(montecarlo.RESULT_COLUMNS)
    assert [(r, m) for r, m in zip(frame["replication"], frame["method"], strict=True)] == [
        (0, "cluster_t"),
        (0, "naive_binomial"),
        (1, "cluster_t"),
    ]
    for column in ("effect", "target", "estimate", "se", "p_value", "mean_pq"):
        assert frame[column].dtype == np.float64, column
    assert frame["estimate"].tolist() == [1.23457, 1.0, 1.0]  # stated to 6 significant digits


def test_run_study_defaults_no_progress_bar_and_four_chunks_per_worker(
    regions: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    design = study.StudyDesign.from_params(
        n_replications=4, n_replications_null=None, effect_grid=(0.0, -0.3), methods=("cluster_t",), seed=5
    )
    quiet = study.run_study(design, SETTINGS, regions, NATIONAL_2021)
    assert capsys.readouterr().err == ""
    shown = study.run_study(design, SETTINGS, regions, NATIONAL_2021, progress=True)
    bar = capsys.readouterr().err
    assert "replication chunks: 100%" in bar and "4/4" in bar
    pd.testing.assert_frame_equal(quiet, shown)
    assert len(quiet) == 8


def test_run_study_statsmodels_engine_never_uses_the_fast_fits(regions, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("fast GLM called")

    monkeypatch.setattr(fastfit, "fit_counts_glm", refuse)
    design = study.StudyDesign.from_params(
        n_replications=2, n_replications_null=None, methods=("cluster_t",), effect_grid=(0, -1)
    )
    results = study.run_study(design, SETTINGS, regions, NATIONAL_2021, engine="statsmodels")
    assert results["ok"].all() and (results["error"] == "").all() and len(results) == 4


def test_run_study_dask_backend_gets_the_chunks(regions, monkeypatch) -> None:
    seen = []

    def local(chunks, n_workers, progress, client, batch_size):
        seen.append((len(chunks), n_workers, progress, client, batch_size))
        return [row for chunk in chunks for row in study.run_chunk(chunk, batch_size)]

    monkeypatch.setattr(study, "_run_dask", local)
    design = study.StudyDesign.from_params(
        n_replications=2, n_replications_null=None, methods=("cluster_t",), effect_grid=(0, -1)
    )
    by_dask = study.run_study(design, SETTINGS, regions, NATIONAL_2021, backend="dask", client="client", batch_size=3)
    assert seen == [(4, 1, False, "client", 3)]
    pd.testing.assert_frame_equal(by_dask, study.run_study(design, SETTINGS, regions, NATIONAL_2021))
    with pytest.raises(ValueError) as error:
        study.run_study(design, SETTINGS, regions, NATIONAL_2021, backend="ray")
    assert str(error.value) == "backend must be 'joblib' or 'dask'"


# --------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------


def _made_up_results(rejected: dict[float, int], n: int = 100) -> pd.DataFrame:
    rows = []
    for e, (effect, k) in enumerate(rejected.items()):
        for r in range(n):
            rows.append(
                {
                    **_row(r, "cluster_t"),
                    "effect_index": e,
                    "effect": effect,
                    "target": effect,
                    "estimate": effect,
                    "rejected": r < k,
                    "covered": True,
                    "converged": True,
                    "mean_pq": 0.2,
                }
            )
    return pd.DataFrame(rows)


def _probit_mde(counts: tuple[int, int, int], power: float = 0.8) -> float:
    """The MDE of a probit power curve fitted by statsmodels to rejections of 100 at |effect| 0, 0.2, 0.4."""
    import statsmodels.api as sm

    k = np.array(counts, dtype=float)
    link = sm.families.links.Probit()
    exog = sm.add_constant(np.array([0.0, 0.2, 0.4]))
    a, b = sm.GLM(np.column_stack([k, 100 - k]), exog, family=sm.families.Binomial(link=link)).fit(tol=1e-14).params
    return (stats.norm.ppf(power) - a) / b


def test_sensitivity_reruns_the_reduced_study_and_reports_its_mde(monkeypatch) -> None:
    calls = []

    def made_up_run(design, settings, regions, national, **options):
        calls.append((design, settings, regions, national, options))
        return _made_up_results({0.0: 5, -0.2: 50, -0.4: 90})

    monkeypatch.setattr(study, "run_study", made_up_run)
    design = study.StudyDesign.from_params(
        effect_grid=(0.0, -0.2, -0.4),
        designs=(study.DesignPoint(14, 730), study.DesignPoint(28, 1460)),
        methods=("cluster_t", "mixedlm"),
    )
    table = study.sensitivity(design, SETTINGS, "regions", "national", {"overdispersion_sd": [0.2]}, ["cluster_t"], 100)
    assert len(calls) == 2 and calls[0][1] == SETTINGS  # the defaults first, then the one setting moved
    (reduced, settings, regions, national, options) = calls[1]
    assert (regions, national, options) == ("regions", "national", {}) and calls[0][0] == reduced
    assert reduced == replace(
        design,
        designs=(study.DesignPoint(14, 730),),
        methods=("cluster_t",),
        n_replications=100,
        n_replications_null=100,
        method_replications=(),
    )
    assert settings == replace(SETTINGS, overdispersion_sd=0.2)
    assert table[["dimension", "value"]].values.tolist() == [["base", ""], ["overdispersion_sd", "0.2"]]
    row = table.iloc[1]
    low, high = stats.binomtest(5, 100).proportion_ci(method="exact")
    assert (row["size"], row["size_low"], row["size_high"]) == pytest.approx((0.05, low, high), rel=1e-9)
    mde = _probit_mde((5, 50, 90))  # the probit power curve at the default power of 80 %
    assert row["mde_logit"] == pytest.approx(mde, rel=1e-8)
    assert row["mde_pp"] == pytest.approx(mde * 0.2 * 100, rel=1e-8)
