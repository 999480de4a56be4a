"""The Monte Carlo study design (akim_turnout.study.replications): its round trip through a mapping, refused
designs, chunks and workers, tasks carrying the design, and the dask backend run in this process."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.pipeline.paths import load_params
from akim_turnout.study import replications as study
from akim_turnout.study import simulate

SETTINGS = simulate.SimulationSettings.from_params()


@pytest.fixture(scope="module")
def margins() -> pd.DataFrame:
    return simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)


def test_study_design_round_trip_and_mapping() -> None:
    design = study.StudyDesign.from_params()
    # the class has no defaults of its own: params.yaml's design, key for key, and the headline's draws
    params = load_params()
    headline = {key: params["race_models"][key] for key in ("n_boot", "boot_seed")}
    assert design.as_mapping() == {**params["simulation_study"]["design"], **headline}
    assert study.StudyDesign.from_mapping(design.as_mapping()) == design
    custom = study.StudyDesign.from_mapping(
        {
            "alpha": 0.1,
            "effect_grid": [0, 0.2],
            "methods": ["cluster_t"],
            "method_replications": {"cluster_t": 3},
            "designs": [{"n_regions": 7, "n_races": 100, "n_replications": 5}],
            "wild_weights": "rademacher",
        }
    )
    assert custom.alpha == 0.1 and isinstance(custom.alpha, float) and custom.effect_grid == (0.0, 0.2)
    assert custom.methods == ("cluster_t",) and custom.method_replications == (("cluster_t", 3),)
    assert custom.designs == (study.DesignPoint(7, 100, 5),) and custom.designs[0].label() == "7 regions, 100 races"
    assert custom.methods_for(2) == ("cluster_t",) and custom.methods_for(3) == ()
    assert custom.replications(0, 0.0) == 5 and custom.as_mapping()["designs"] == [
        {"n_regions": 7, "n_races": 100, "n_replications": 5}
    ]


def test_design_margins_refuses_impossible_designs(margins: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"^need 1 <= n_regions <= n_races, got 0, 10$"):
        study.design_margins(margins, 0, 10)
    with pytest.raises(ValueError, match=r"^need 1 <= n_regions <= n_races, got 5, 4$"):
        study.design_margins(margins, 5, 4)
    small = study.design_margins(margins, 3, 30)
    assert small["region"].tolist() == margins["region"].iloc[:3].tolist() and small["posts"].sum() == 30


TINY = {
    "n_replications": 2,
    "n_replications_null": None,
    "effect_grid": [0.0, -0.3],
    "designs": [{"n_regions": 14, "n_races": 730}],
    "methods": ["cluster_t"],
    "method_replications": {},
    "seed": 3,
}


def test_dask_backend_in_this_process_matches_joblib() -> None:
    """A threaded dask client in this process (the study's dask path, without worker processes)."""
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("mutmut forks its workers from a process whose dask threads do not survive the fork")
    distributed = pytest.importorskip("distributed")
    design = study.StudyDesign.from_mapping(TINY)
    regions = real_2021_regions()
    expected = study.run_study(design, SETTINGS, regions, NATIONAL_2021)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        on_dask = study.run_study(
            design, SETTINGS, regions, NATIONAL_2021, backend="dask", client=client, progress=True
        )
    pd.testing.assert_frame_equal(expected, on_dask, check_exact=True)
    assert len(expected) == 4 and expected["replication"].tolist() == [0, 1, 0, 1]


def test_chunks_and_workers() -> None:
    assert study.chunk_tasks(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert study.chunk_tasks(list(range(2)), 5) == [[0], [1]]
    assert study._n_workers(2) == 2
    with pytest.raises(ValueError, match=r"^n_jobs must not be 0$"):
        study._n_workers(0)


def test_build_tasks_carries_the_design() -> None:
    design = study.StudyDesign.from_mapping(
        {**TINY, "n_boot": 49, "alpha": 0.1, "wild_bootstrap_ci": True, "wild_weights": "rademacher"}
    )
    tasks = study.build_tasks(design, SETTINGS, real_2021_regions(), NATIONAL_2021)
    assert [(t.effect_index, t.replication) for t in tasks] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    last = tasks[-1]
    assert (last.n_boot, last.alpha, last.wild_ci, last.wild_weights, last.seed) == (49, 0.1, True, "rademacher", 3)
    assert last.settings.beta_self_share == -0.3 and tasks[0].settings.beta_self_share == 0.0
    assert (last.n_regions, last.n_races, last.methods) == (14, 730, ("cluster_t",))
    races, sim_seed, boot_seed = study.simulate_replication(last)
    # the simulation seed is the replication's own, the bootstrap's the design's (the headline's)
    assert (sim_seed, boot_seed) == (study.replication_seeds(3, 0, 1, 1)[0], design.boot_seed) and len(races) == 730
    pd.testing.assert_frame_equal(races, simulate.simulate_from_margins(last.margins, last.settings, sim_seed))
