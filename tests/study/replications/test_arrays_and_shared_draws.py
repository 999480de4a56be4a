"""The study's array path and its common bootstrap draws, pinned to the table path they replace.

Pinned here: a replication drawn as arrays (``draw_replication``) is the data set ``simulate_replication`` tabulates;
its design arrays (``draw_arrays``) are those ``fastfit.race_arrays`` builds from that table, for the stage's formula,
the data-generating one and one with the raw candidate count; the study's tasks carry the design's bootstrap seed, so
every replication's bootstrap p-value is the one ``resampling.wild_cluster_bootstrap`` gives on its table with the
headline's seed; the batched score bootstrap with one weight matrix for many tests equals the single test; and the
sensitivity table's base scenario taken from the study's own results equals the one fitted again.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import fastfit, resampling
from akim_turnout.study import replications as study
from akim_turnout.study.simulate import SimulationSettings

SETTINGS = SimulationSettings.from_params()
RHS = "C(region) + np.log(n_candidates) + self_share + any_woman"


def _task(margins: pd.DataFrame, effect: float, replication: int, **kwargs) -> study.ReplicationTask:
    settings = replace(SETTINGS, beta_self_share=effect)
    return study.ReplicationTask(
        0, 14, 730, 1, effect, replication, margins, settings, ("cluster_t",), seed=3, **kwargs
    )


@pytest.mark.parametrize("replication", [0, 1, 2])
@pytest.mark.parametrize(
    "rhs",
    [
        RHS,
        "C(region) + n_candidates + self_share",
        "C(region) + self_share + any_woman",
        "C(region) + C(any_woman) + self_share",  # a numeric column as a category: the table's general path
    ],
)
def test_array_draw_is_the_tabulated_data_set_and_its_design(base_margins, replication, rhs) -> None:
    task = _task(base_margins, -0.3, replication)
    draw, sim_seed, boot_seed = study.draw_replication(task)
    table, table_sim_seed, table_boot_seed = study.simulate_replication(task)
    assert (sim_seed, boot_seed) == (table_sim_seed, table_boot_seed)
    # the study's draw skips the winner votes (the last draw), so every other column is the table's
    without_winners = table.drop(columns="winner_votes")
    pd.testing.assert_frame_equal(pd.DataFrame(draw.columns())[list(without_winners.columns)], without_winners)
    with pytest.raises(ValueError, match=r"^this draw has no winner votes \(draw_races\(winners=False\)\)"):
        draw.frame()
    direct, reference = study.draw_arrays(draw, rhs), fastfit.race_arrays(table, rhs)
    assert direct.names == reference.names and direct.n_clusters == reference.n_clusters == 14
    for field in ("exog", "voted", "registered", "clusters"):
        np.testing.assert_array_equal(getattr(direct, field), getattr(reference, field))


def test_checked_margins_give_the_same_draw_as_checking_each_time(base_margins) -> None:
    from akim_turnout.study import simulate

    plain = _task(base_margins, -0.6, 4)
    checked = replace(plain, margin_arrays=simulate.check_margins(base_margins, SETTINGS))
    pd.testing.assert_frame_equal(study.simulate_replication(plain)[0], study.simulate_replication(checked)[0])


def test_every_task_of_the_study_uses_the_designs_bootstrap_seed(regions) -> None:
    design = study.StudyDesign.from_params(
        n_replications=2, n_replications_null=2, effect_grid=(0.0, -0.3), boot_seed=123, n_boot=99
    )
    tasks = study.build_tasks(design, SETTINGS, regions, NATIONAL_2021)
    assert len(tasks) == 4 and {task.boot_seed for task in tasks} == {123}
    seeds = {study.draw_replication(task)[1:] for task in tasks}
    assert len({sim for sim, _ in seeds}) == 4 and {boot for _, boot in seeds} == {123}  # data sets differ, draws not


@pytest.mark.parametrize("effect", [0.0, -0.3])
def test_the_studys_bootstrap_p_value_is_the_headline_procedure_on_each_data_set(base_margins, effect) -> None:
    tasks = [
        replace(_task(base_margins, effect, r, boot_seed=7), methods=("wild_bootstrap",), n_boot=199) for r in range(3)
    ]
    rows = study.run_batch(tasks)
    for task, row in zip(tasks, rows, strict=True):
        table = study.simulate_replication(task)[0]
        reference = resampling.wild_cluster_bootstrap(table, RHS, "self_share", n_boot=199, seed=7, ci=False)
        assert row["method"] == "wild_bootstrap" and row["p_value"] == pytest.approx(reference.p_value, abs=1e-12)


def test_one_weight_matrix_for_many_tests_gives_each_tests_own_result(base_margins) -> None:
    draws = fastfit.wild_weight_draws(5, 299, 14)
    arrays = [study.draw_arrays(study.draw_replication(_task(base_margins, -0.3, r))[0], RHS) for r in range(4)]
    k = arrays[0].names.index("self_share")
    fits = fastfit.fit_counts_glm_batch(arrays)
    nulls = [0.0, -0.2, 0.0, 0.1]
    batch = fastfit.score_bootstrap_batch(arrays, k, nulls, [draws] * 4, np.stack([f.params for f in fits]))
    for a, null, fit, (statistic, p_value) in zip(arrays, nulls, fits, batch, strict=True):
        alone_statistic, alone_p = fastfit.score_bootstrap(a, k, null, draws, fit.params)
        assert statistic == pytest.approx(alone_statistic, rel=1e-12) and p_value == alone_p


def test_base_scenario_from_the_studys_results_equals_fitting_it_again(regions) -> None:
    design = study.StudyDesign.from_params(
        n_replications=6,
        n_replications_null=8,
        effect_grid=(0.0, -0.6),
        n_boot=99,
        methods=("cluster_t", "wild_bootstrap", "mixedlm"),
    )
    results = study.run_study(design, SETTINGS, regions, NATIONAL_2021)
    grid = {"overdispersion_sd": [SETTINGS.overdispersion_sd]}  # the base scenario only
    methods = ["cluster_t", "wild_bootstrap"]
    again = study.sensitivity(design, SETTINGS, regions, NATIONAL_2021, grid, methods, 4)
    reused = study.sensitivity(design, SETTINGS, regions, NATIONAL_2021, grid, methods, 4, base_results=results)
    pd.testing.assert_frame_equal(again, reused)
    assert study._base_rows(results, replace(design, n_replications=9, n_replications_null=9)) is None  # too few
