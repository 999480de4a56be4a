"""The Monte Carlo study (akim_turnout.study.replications) on bootstraps and fits made up by hand: coverage by
the test at the target, the wild bootstrap row, the result frame, alpha read from a mapping, the sensitivity
run, and the dask backend mapped over chunks."""

from __future__ import annotations

import math
import sys
import types
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py
from scipy import stats

from akim_turnout.models import fastfit, resampling
from akim_turnout.study import replications as study
from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings

SETTINGS = SimulationSettings.from_params()


def _task(**kwargs) -> study.ReplicationTask:
    return study.ReplicationTask(0, 14, 730, 0, 0.0, 0, None, SETTINGS, ("wild_bootstrap",), seed=3, **kwargs)


def _made_up_bootstrap(calls: list[float], p_at: dict[float, float]):
    def bootstrap(df, formula_rhs, term, n_boot=999, seed=0, weights="webb", null_value=0.0, alpha=0.05, ci=True):
        calls.append(null_value)
        return resampling.WildBootstrapResult(
            term, -0.33, null_value, 1.0, p_at[null_value], math.nan, math.nan, n_boot, 14, weights, seed
        )

    return bootstrap


def test_statsmodels_bootstrap_p_value_equal_to_alpha_at_effect_0_is_covered(monkeypatch) -> None:
    """At effect 0 the test of 0 is the test at the target: p = alpha is not a rejection, so the target is covered
    (and no second bootstrap is run)."""
    calls: list[float] = []
    monkeypatch.setattr(resampling, "wild_cluster_bootstrap", _made_up_bootstrap(calls, {0.0: 0.05}))
    row = study._fit_wild("races", _task(engine="statsmodels"), 0.0, 11)
    assert (row["p_value"], row["covered"]) == (0.05, True)
    assert calls == [0.0]


def test_statsmodels_bootstrap_coverage_at_a_target_of_one_uses_the_test_at_one(monkeypatch) -> None:
    """A target of exactly 1 (effect 1 with ``overdispersion_sd = 0``) is judged by the test at 1 (p = 0.5: covered),
    not by the test of 0 (p = 0.01)."""
    calls: list[float] = []
    monkeypatch.setattr(resampling, "wild_cluster_bootstrap", _made_up_bootstrap(calls, {0.0: 0.01, 1.0: 0.5}))
    row = study._fit_wild("races", _task(engine="statsmodels"), 1.0, 11)
    assert (row["p_value"], row["covered"]) == (0.01, True)
    assert calls == [0.0, 1.0]


def test_fast_bootstrap_coverage_at_a_target_of_one_uses_the_test_at_one(base_margins, monkeypatch) -> None:
    """The fast engine's bootstrap likewise judges coverage at a target of 1 by the score test at 1."""
    task = replace(_task(), margins=base_margins)
    races, _, boot_seed = study.simulate_replication(task)
    nulls: list[float] = []

    def made_up(arrays, k, null_value, draws, start):
        nulls.append(null_value)
        return 1.0, {0.0: 0.01, 1.0: 0.5}[null_value]

    monkeypatch.setattr(fastfit, "score_bootstrap", made_up)
    row = study._fit_fast("wild_bootstrap", races, task, 1.0, boot_seed, {})
    assert (row["p_value"], row["covered"]) == (0.01, True)
    assert nulls == [0.0, 1.0]


def test_alpha_from_a_mapping_is_a_plain_float() -> None:
    """A numpy float passes the schema (it is a float); the design stores it as a plain float, as it does every
    value of the effect grid."""
    design = study.StudyDesign.from_mapping({"alpha": np.float64(0.1)})
    assert type(design.alpha) is float and design.alpha == 0.1


def test_sensitivity_passes_run_options_and_the_designs_alpha(monkeypatch) -> None:
    """15 rejections in 100 at effect 0: the exact 95 % interval (0.087 to 0.235) holds the design's alpha 0.1 but not
    0.05 (its lower end is above it), so the MDE exists only at alpha 0.1: the probit power curve's, 0.35 by linear
    interpolation."""
    options_seen = []

    def made_up_run(design, settings, regions, national, **options):
        options_seen.append(options)
        rows = []
        for e, (effect, k) in enumerate({0.0: 15, -0.2: 50, -0.4: 90}.items()):
            for r in range(100):
                rows.append(
                    {
                        "design_index": 0,
                        "n_regions": 14,
                        "n_races": 730,
                        "effect_index": e,
                        "effect": effect,
                        "replication": r,
                        "method": "cluster_t",
                        "target": effect,
                        "estimate": effect,
                        "se": 0.1,
                        "ci_low": effect - 0.2,
                        "ci_high": effect + 0.2,
                        "p_value": 0.5,
                        "covered": True,
                        "rejected": r < k,
                        "ok": True,
                        "converged": True,
                        "n_warnings": 0,
                        "mean_pq": 0.2,
                    }
                )
        return pd.DataFrame(rows)

    monkeypatch.setattr(study, "run_study", made_up_run)
    design = study.StudyDesign.from_params(effect_grid=(0.0, -0.2, -0.4), alpha=0.1, methods=("cluster_t",))
    table = study.sensitivity(
        design,
        SETTINGS,
        "regions",
        "national",
        {"overdispersion_sd": [SETTINGS.overdispersion_sd]},  # the base value only: one scenario
        ["cluster_t"],
        100,
        n_jobs=2,
        backend="dask",
    )
    assert options_seen == [{"n_jobs": 2, "backend": "dask"}]
    import statsmodels.api as sm

    k = np.array([15.0, 50.0, 90.0])
    link = sm.families.links.Probit()
    exog = sm.add_constant(np.array([0.0, 0.2, 0.4]))
    a, b = sm.GLM(np.column_stack([k, 100 - k]), exog, family=sm.families.Binomial(link=link)).fit(tol=1e-14).params
    assert table["mde_logit"].iloc[0] == pytest.approx((stats.norm.ppf(0.8) - a) / b, rel=1e-8)


class _Future:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Client:
    def __init__(self, cluster=None):
        self.cluster = cluster
        self.mapped = []

    def map(self, func, chunks, pure=True):
        self.mapped.append(list(chunks))
        return [_Future(func(chunk)) for chunk in chunks]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_distributed(made: dict) -> types.ModuleType:
    """A stand-in for ``distributed``: futures finish in reverse order; clients and clusters are recorded."""
    module = types.ModuleType("distributed")

    def client(cluster=None):
        made["client"] = _Client(cluster)
        return made["client"]

    class LocalCluster(_Client):
        def __init__(self, **kwargs):
            super().__init__()
            made["cluster"] = self
            made["cluster_kwargs"] = kwargs

    module.Client = client
    module.LocalCluster = LocalCluster
    module.as_completed = lambda futures: iter(list(futures)[::-1])
    return module


@pytest.mark.parametrize("own_cluster", [False, True])
def test_dask_backend_maps_every_chunk_and_shows_the_progress_asked_for(monkeypatch, own_cluster: bool) -> None:
    """Each chunk is mapped once on the client (given, or of a LocalCluster of ``n_workers`` single-threaded
    processes); rows come back chunk by chunk as the futures complete; the bar counts the chunks."""
    made: dict = {}
    monkeypatch.setitem(sys.modules, "distributed", _fake_distributed(made))
    monkeypatch.setattr(
        study, "run_chunk", lambda chunk, batch_size: [f"row of {task} in {batch_size}" for task in chunk]
    )
    bars = []

    def progress(iterable, total, enabled):
        bars.append((total, enabled))
        return iterable

    monkeypatch.setattr(study, "_progress", progress)
    chunks = [["t0", "t3"], ["t1"], ["t2"]]
    given = None if own_cluster else _Client()
    rows = study._run_dask(chunks, 3, True, given, 7)
    assert rows == ["row of t2 in 7", "row of t1 in 7", "row of t0 in 7", "row of t3 in 7"]
    assert bars == [(3, True)]
    client = made["client"] if own_cluster else given
    assert client.mapped == [chunks]
    if own_cluster:
        assert client.cluster is made["cluster"]
        assert made["cluster_kwargs"] == {
            "n_workers": 3,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
        }


@pytest.fixture(scope="module")
def races_seed_3() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=3
    )


def _task_on_simulated_margins(effect: float, **kwargs) -> study.ReplicationTask:
    margins = simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)
    settings = simulate.SimulationSettings.from_params(beta_self_share=effect)
    return study.ReplicationTask(0, 14, 730, 1, effect, 0, margins, settings, ("wild_bootstrap",), seed=3, **kwargs)


@pytest.mark.parametrize("weights", ["webb", "rademacher"])
def test_fit_wild_row_equals_direct_bootstrap_calls(races_seed_3: pd.DataFrame, weights: str) -> None:
    task = _task_on_simulated_margins(-0.3, n_boot=39, alpha=0.1, wild_weights=weights)
    rhs = simulate.true_formula_rhs(task.settings)
    common = {"n_boot": 39, "seed": 17, "weights": weights, "alpha": 0.1}
    at_zero = resampling.wild_cluster_bootstrap(races_seed_3, rhs, "self_share", null_value=0.0, ci=False, **common)
    for target in (-0.05, -0.3):
        row = study._fit_wild(races_seed_3, task, target, boot_seed=17)
        at_target = resampling.wild_cluster_bootstrap(
            races_seed_3, rhs, "self_share", null_value=target, ci=False, **common
        )
        assert row["covered"] is (at_target.p_value >= 0.1)
        assert row["p_value"] == at_zero.p_value and row["estimate"] == at_zero.estimate
        assert math.isnan(row["se"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
        assert row["converged"] is True and row["n_warnings"] == 0
    at_zero_row = study._fit_wild(races_seed_3, task, 0.0, boot_seed=17)
    assert at_zero_row["covered"] is (at_zero.p_value >= 0.1)


def test_fit_wild_with_the_inverted_interval(races_seed_3: pd.DataFrame) -> None:
    task = _task_on_simulated_margins(-0.3, n_boot=39, alpha=0.1, wild_ci=True)
    rhs = simulate.true_formula_rhs(task.settings)
    full = resampling.wild_cluster_bootstrap(races_seed_3, rhs, "self_share", n_boot=39, seed=17, alpha=0.1)
    row = study._fit_wild(races_seed_3, task, -0.2, boot_seed=17)
    assert (row["ci_low"], row["ci_high"]) == (full.ci_lower, full.ci_upper)
    assert row["covered"] is (full.ci_lower <= -0.2 <= full.ci_upper)
    assert study._fit_wild(races_seed_3, task, full.ci_upper, boot_seed=17)["covered"] is True
    assert study._fit_wild(races_seed_3, task, full.ci_lower, boot_seed=17)["covered"] is True


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


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=3
    )
