"""Behaviour that surviving mutants of the forensics, race and study code changed without a test noticing.

Forensics (:mod:`models.forensics`): exact integer percentages of counts held as 32-bit integers; the simulated
null counts of the integer-percentage test are whole numbers; a planted race's winner votes stay within the votes
cast where valid votes are unpublished.

Race fits (:mod:`models.race`): counts held as Python objects are fitted like numbers; beta regression prints
nothing; the statsmodels results kept in a fit name the clustered covariance as requested.

Study (:mod:`study.replications`): a bootstrap p-value equal to alpha at effect 0 is not a rejection; coverage at a
target of 1 comes from the test at that target (fast and statsmodels paths); ``alpha`` read from a mapping is a
plain float; ``sensitivity`` passes its run options and the design's alpha on; the dask backend maps the chunks on
the given client, or on a client of its own cluster, with the progress bar asked for (checked with a stand-in for
the ``distributed`` package, since real dask threads do not survive mutmut's fork).
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.models import fastfit, forensics, race, resampling
from akim_turnout.study import replications as study
from akim_turnout.study.simulate import SimulationSettings

SETTINGS = SimulationSettings.from_params()

# --------------------------------------------------------------------------------------------------------------------
# Forensics
# --------------------------------------------------------------------------------------------------------------------


def test_integer_percent_of_int32_counts_does_not_overflow() -> None:
    """30,000,000 of 40,000,000 is exactly 75 %; 100 * 30,000,000 does not fit in 32 bits, so the counts must be
    widened before multiplying (in int32 the product wraps round to -1,294,967,296 and the distance is not 0)."""
    voted = np.array([30_000_000, 30_000_001], dtype=np.int32)
    registered = np.array([40_000_000, 40_000_000], dtype=np.int32)
    distance = forensics.distance_to_integer_percent(voted, registered)
    # 100 * 30,000,001 = 75 * 40,000,000 + 100: the percentage is 75 + 100 / 40,000,000, 2.5e-6 pp from 75
    np.testing.assert_array_equal(distance, [0.0, 100 / 40_000_000])


def test_integer_percent_null_counts_are_whole_numbers() -> None:
    """Races at exactly 0 % and 100 % turnout are integer percentages in every simulation without smoothing, so each
    simulated count is the number of races (3), held as integers (the documented "simulated counts")."""
    races = pd.DataFrame({"registered": [250, 400, 1000], "voted": [250, 0, 1000]})
    result = forensics.integer_percent_test(races, n_sim=5, seed=1, smooth_pp=0.0)
    assert np.issubdtype(result.null_counts.dtype, np.integer)
    np.testing.assert_array_equal(result.null_counts, [3, 3, 3, 3, 3])


def test_planting_with_valid_votes_unpublished_keeps_the_winner_within_the_votes_cast() -> None:
    """801 of 1000 voted: the nearest integer turnout, 80 %, is exactly 800 votes, so one ballot is removed. A winner
    with all 801 votes (valid votes unpublished, so only the votes cast bound them) loses that ballot: 800, the new
    votes cast. A winner above the votes cast (850 of 801) is refused before anything is planted."""
    races = pd.DataFrame({"registered": [1000], "voted": [801], "valid_votes": [np.nan], "winner_votes": [801.0]})
    planted = forensics.plant_round_turnout_anomaly(races, fraction=1.0, seed=0)
    assert planted["voted"].tolist() == [800]
    assert math.isnan(planted["valid_votes"].iloc[0])
    assert planted["winner_votes"].tolist() == [800.0]
    with pytest.raises(ValueError, match=r"^'winner_votes' exceeds 'voted' in 1 row\(s\), index \[0\]$"):
        forensics.plant_round_turnout_anomaly(races.assign(winner_votes=[850.0]), fraction=1.0, seed=0)


# --------------------------------------------------------------------------------------------------------------------
# Race fits
# --------------------------------------------------------------------------------------------------------------------


def twelve_races() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": list("aaabbbcccddd"),
            "x": [-1.0, 0.5, 1.2, 0.0, 1.5, -0.7, -0.5, 2.0, 0.9, 0.3, -1.2, 1.1],
            "registered": [100, 80, 140, 120, 90, 70, 60, 150, 110, 95, 130, 85],
            "voted": [40, 50, 95, 60, 70, 30, 30, 130, 75, 50, 45, 60],
        }
    )


def test_counts_held_as_python_objects_are_fitted_like_numbers() -> None:
    """An object column of Python ints passes the row checks (they convert with ``pd.to_numeric``); the fit must
    convert it too and give statsmodels' clustered binomial GLM on the same numbers."""
    df = twelve_races()
    as_objects = df.astype({"voted": object, "registered": object})
    fit = race.fit_race_glm(as_objects, "x")
    voted, registered = df["voted"].to_numpy(float), df["registered"].to_numpy(float)
    design = np.column_stack([np.ones(len(df)), df["x"].to_numpy(float)])
    expected = GLM(np.column_stack([voted, registered - voted]), design, family=families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(df["region"])[0]}, use_t=True
    )
    np.testing.assert_allclose(fit.params.to_numpy(), expected.params, rtol=1e-9)
    np.testing.assert_allclose(fit.bse.to_numpy(), expected.bse, rtol=1e-9)
    beta = race.fit_race_beta(as_objects, "x")
    assert beta.n_obs == 12 and np.all(np.isfinite(beta.params.to_numpy()))


def test_beta_regression_prints_nothing_and_its_results_name_the_cluster_covariance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both optimiser runs of the beta regression stay silent (a notebook or log shows no optimiser chatter), and
    the statsmodels results kept in ``raw`` say what was requested: ``cluster`` covariance for both race fits and
    the ``newton`` method for the GLM (the labels ``raw.summary()`` prints)."""
    df = twelve_races()
    beta = race.fit_race_beta(df, "x")
    glm = race.fit_race_glm(df, "x")
    assert capsys.readouterr() == ("", "")
    assert (beta.raw.cov_type, glm.raw.cov_type, glm.raw.method) == ("cluster", "cluster", "newton")


# --------------------------------------------------------------------------------------------------------------------
# Study: coverage of the bootstrap at the edges
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# Study: design, sensitivity and the dask backend
# --------------------------------------------------------------------------------------------------------------------


def test_alpha_from_a_mapping_is_a_plain_float() -> None:
    """A numpy float passes the schema (it is a float); the design stores it as a plain float, as it does every
    value of the effect grid."""
    design = study.StudyDesign.from_mapping({"alpha": np.float64(0.1)})
    assert type(design.alpha) is float and design.alpha == 0.1


def test_sensitivity_passes_run_options_and_the_designs_alpha(monkeypatch) -> None:
    """15 rejections in 100 at effect 0: the exact 95 % interval (0.087 to 0.235) holds the design's alpha 0.1 but not
    0.05, so the MDE exists only at alpha 0.1: 0.2 + (0.8 - 0.5) / (0.9 - 0.5) * 0.2 = 0.35 on the logit scale."""
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
        {"overdispersion_sd": [0.2]},
        "cluster_t",
        100,
        n_jobs=2,
        backend="dask",
    )
    assert options_seen == [{"n_jobs": 2, "backend": "dask"}]
    assert table["mde_logit"].iloc[0] == pytest.approx(0.35, rel=1e-12)


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
