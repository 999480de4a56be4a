"""The simulation study's batched fast paths: many data sets fitted at once give each data set's own fit.

Pinned to the single-data-set fast paths (which tests/test_fastfit.py pins to statsmodels), to statsmodels itself at
1e-8, and to a straightforward draw-by-draw bootstrap; a declined data set is declined alone, with the single path's
reason; and the study's results frame is the same whatever the batch size.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import fastfit, race, resampling
from akim_turnout.study import montecarlo, simulate
from akim_turnout.study import replications as study

RTOL = 1e-8
RHS = "C(region) + np.log(n_candidates) + self_share + any_woman"
SETTINGS = [
    simulate.SimulationSettings.from_params(beta_self_share=0.0),
    simulate.SimulationSettings.from_params(beta_self_share=-0.3),
    simulate.SimulationSettings.from_params(beta_self_share=-0.1, overdispersion_sd=0.1),
    simulate.SimulationSettings.from_params(beta_self_share=-0.6, overdispersion_sd=0.8, beta_women=0.5),
]


@pytest.fixture(scope="module")
def data_sets(regions: pd.DataFrame) -> list[pd.DataFrame]:
    """Four regular data sets of the real design, one near-separated (Mangystau at 100 % but one vote; Newton needs
    more steps) and one separated (Mangystau at 100 %: the fast path declines)."""
    sets = [simulate.simulate_races(regions, NATIONAL_2021, s, seed=seed) for seed, s in enumerate(SETTINGS)]
    near = simulate.simulate_races(regions, NATIONAL_2021, SETTINGS[0], seed=4)
    mangystau = near["region"] == "Mangystau"
    near.loc[mangystau, "voted"] = near.loc[mangystau, "registered"]
    separated = near.copy()
    near.loc[near.index[mangystau][0], "voted"] -= 1
    return [*sets[:2], separated, *sets[2:], near]


def _arrays(frames: list[pd.DataFrame]) -> list[fastfit.RaceArrays]:
    return [fastfit.race_arrays(frame, RHS) for frame in frames]


def _scaled_close(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray | float, rtol: float = RTOL) -> None:
    difference = np.abs(np.asarray(actual, float) - np.asarray(expected, float))
    assert np.all(difference <= rtol * np.asarray(scale)), f"max difference {np.max(difference):.3g}"


def _cov_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> None:
    diag = np.sqrt(np.diag(np.asarray(expected, float)))
    _scaled_close(actual, expected, np.outer(diag, diag), rtol)


def test_glm_batch_is_each_data_sets_own_fit(data_sets: list[pd.DataFrame]) -> None:
    arrays = _arrays(data_sets)
    batch = fastfit.fit_counts_glm_batch(arrays)
    assert [type(fit).__name__ for fit in batch] == ["CountsGLM"] * 2 + ["FastPathDeclined"] + ["CountsGLM"] * 3
    for frame, one, fit in zip(data_sets, arrays, batch, strict=True):
        try:
            single = fastfit.fit_counts_glm(one)
        except fastfit.FastPathDeclined as declined:  # declined alone, for the single path's reason
            assert isinstance(fit, fastfit.FastPathDeclined) and str(fit) == str(declined)
            assert str(fit) == "linear predictor beyond +-30 (near-separation)"
            continue
        assert fit.n_steps == single.n_steps
        _scaled_close(fit.params, single.params, np.abs(single.params), 1e-12)
        _cov_close(fit.cov_cluster, single.cov_cluster, 1e-12)
        _cov_close(fit.cov_naive, single.cov_naive, 1e-12)
        # and statsmodels (race.fit_race_glm: Newton, cluster-robust, t(G - 1))
        reference = race.fit_race_glm(frame, RHS)
        _scaled_close(fit.params, reference.params, reference.bse.to_numpy())
        _cov_close(fit.cov_cluster, reference.cov_params)
        np.testing.assert_allclose(fit.bse_cluster, reference.bse, rtol=RTOL)
    assert batch[-1].n_steps > 8  # the near-separated data set took its own, longer way in the same batch


def test_newton_batch_declines_a_singular_data_set_alone(data_sets: list[pd.DataFrame]) -> None:
    """A data set without any woman on the ballot has a zero column: its information is singular. The batch hands
    it back with the single path's reason and fits the others as alone."""
    frames = [data_sets[0], data_sets[1].assign(any_woman=0), data_sets[3]]
    arrays = _arrays(frames)
    with pytest.raises(fastfit.FastPathDeclined, match="^singular information"):
        fastfit.fit_counts_glm(arrays[1])
    batch = fastfit.fit_counts_glm_batch(arrays)
    assert isinstance(batch[1], fastfit.FastPathDeclined) and str(batch[1]).startswith("singular information")
    for j in (0, 2):
        single = fastfit.fit_counts_glm(arrays[j])
        _scaled_close(batch[j].params, single.params, np.abs(single.params), 1e-12)
    params, steps, reasons = fastfit.newton_counts_batch(
        np.stack([a.exog for a in arrays]),
        np.stack([a.voted for a in arrays]),
        np.stack([a.registered for a in arrays]),
        np.zeros((3, arrays[0].exog.shape[1])),
        max_steps=2,
    )
    assert reasons == [
        "Newton did not converge in 2 steps",
        "singular information",
        "Newton did not converge in 2 steps",
    ]
    assert np.isnan(params).all() and steps.tolist() == [2, 0, 2]
    with pytest.raises(ValueError, match="one design shape"):
        fastfit.fit_counts_glm_batch([arrays[0], fastfit.race_arrays(frames[0], "C(region) + self_share")])
    assert fastfit.fit_counts_glm_batch([]) == [] and fastfit.score_bootstrap_batch([], 0, [], [], np.empty(0)) == []


def _draw_by_draw_p(psi: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """The wild bootstrap p-value written out: one studentised statistic per draw, in a loop."""
    observed = sum(psi) / math.sqrt(sum(p * p for p in psi))
    exceed = 0
    for weights in draws:
        numerator = sum(w * p for w, p in zip(weights, psi, strict=True))
        denominator = math.sqrt(sum((w * p) ** 2 for w, p in zip(weights, psi, strict=True)))
        exceed += abs(numerator / denominator) >= abs(observed) * (1 - 1e-12)
    return observed, exceed / len(draws)


def test_score_bootstrap_batch_is_each_data_sets_own_test(data_sets: list[pd.DataFrame]) -> None:
    arrays = _arrays(data_sets)
    glms = fastfit.fit_counts_glm_batch(arrays)
    regular = [i for i, fit in enumerate(glms) if isinstance(fit, fastfit.CountsGLM)]
    k = arrays[0].names.index("self_share")
    nulls = [0.0, -0.3, 0.0, 0.1, -0.25][: len(regular)]
    seeds = [11, 12, 13, 14, 15][: len(regular)]
    weights = ["webb", "webb", "rademacher", "webb", "webb"][: len(regular)]
    draws = [fastfit.wild_weight_draws(s, 999, 14, w) for s, w in zip(seeds, weights, strict=True)]
    starts = np.stack([glms[i].params for i in regular])
    batch = fastfit.score_bootstrap_batch([arrays[i] for i in regular], k, nulls, draws, starts)
    for j, i in enumerate(regular):
        statistic, p_value = batch[j]
        single = fastfit.score_bootstrap(arrays[i], k, nulls[j], draws[j], glms[i].params)
        assert p_value == single[1]
        np.testing.assert_allclose(statistic, single[0], rtol=1e-12)
        psi = fastfit.restricted_cluster_influence(arrays[i], k, nulls[j], glms[i].params)
        by_hand = _draw_by_draw_p(psi, draws[j])
        assert p_value == by_hand[1]
        np.testing.assert_allclose(statistic, by_hand[0], rtol=1e-12)
        reference = resampling.wild_cluster_bootstrap(
            data_sets[i],
            RHS,
            "self_share",
            n_boot=999,
            seed=seeds[j],
            weights=weights[j],
            null_value=nulls[j],
            ci=False,
        )
        assert p_value == reference.p_value
        np.testing.assert_allclose(statistic, reference.statistic, rtol=RTOL)


def test_score_bootstrap_batch_declines_a_separated_restricted_fit(data_sets: list[pd.DataFrame]) -> None:
    """The restricted fit of the separated data set (started from a regular fit's estimate) declines alone."""
    arrays = _arrays([data_sets[0], data_sets[2]])
    k = arrays[0].names.index("self_share")
    start = fastfit.fit_counts_glm(arrays[0]).params
    draws = [fastfit.wild_weight_draws(1, 99, 14)] * 2
    batch = fastfit.score_bootstrap_batch(arrays, k, [0.0, 0.0], draws, np.stack([start, start]))
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.score_bootstrap(arrays[1], k, 0.0, draws[1], start)
    assert isinstance(batch[1], fastfit.FastPathDeclined) and str(batch[1]) == str(declined.value)
    statistic, p_value = fastfit.score_bootstrap(arrays[0], k, 0.0, draws[0], start)
    assert batch[0][0] == pytest.approx(statistic, rel=1e-12) and batch[0][1] == p_value


def test_mixed_model_design_is_the_design_without_region_columns(data_sets: list[pd.DataFrame]) -> None:
    task = study.ReplicationTask(0, 14, 730, 0, 0.0, 0, pd.DataFrame(), SETTINGS[0], ("mixedlm",), 1, formula_rhs=RHS)
    frame = data_sets[0]
    cache = {"arrays": fastfit.race_arrays(frame, RHS)}
    derived = study._fixed_arrays(frame, task, cache)
    direct = fastfit.race_arrays(frame, task.fixed_rhs)
    assert derived.names == direct.names == ["Intercept", "np.log(n_candidates)", "self_share", "any_woman"]
    np.testing.assert_array_equal(derived.exog, direct.exog)
    np.testing.assert_array_equal(derived.clusters, direct.clusters)
    assert study._fixed_arrays(frame, task, {}).names == direct.names  # without the arrays at hand


def _design(**overrides) -> study.StudyDesign:
    mapping = {
        "n_replications": 3,
        "n_replications_null": 4,
        "effect_grid": [0.0, -0.3],
        "seed": 5,
        "n_boot": 199,
        "methods": list(montecarlo.METHODS),
        "method_replications": {"mixedlm": 2},
        "designs": [{"n_regions": 14, "n_races": 730}, {"n_regions": 7, "n_races": 200, "n_replications": 2}],
    }
    return study.StudyDesign.from_mapping({**mapping, **overrides})


def test_study_results_do_not_depend_on_the_batch_size(regions: pd.DataFrame) -> None:
    """Two designs (batches mix shapes), both effects, every method: batch sizes 1, 4 and 50 give the same frame,
    and each replication's rows are those it gives alone."""
    design = _design()
    settings = simulate.SimulationSettings.from_params()
    frames = {
        size: study.run_study(design, settings, regions, NATIONAL_2021, formula_rhs=RHS, batch_size=size)
        for size in (1, 4, 50)
    }
    assert len(frames[1]) == (4 + 3) * 4 + 2 * 2 + 2 * 2 * 5  # mixedlm on the first 2 data sets of each effect
    pd.testing.assert_frame_equal(frames[1], frames[50], check_exact=True)
    pd.testing.assert_frame_equal(frames[4], frames[50], check_exact=True)
    tasks = study.build_tasks(design, settings, regions, NATIONAL_2021, formula_rhs=RHS)
    alone = study.results_frame(row for task in tasks for row in study.run_replication(task))
    pd.testing.assert_frame_equal(alone, frames[50], check_exact=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        study.run_study(design, settings, regions, NATIONAL_2021, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        study.run_chunk(tasks, 0)


def test_batched_study_equals_the_statsmodels_engine(regions: pd.DataFrame) -> None:
    """The batched fast engine against statsmodels on the same replications: identical flags and bootstrap p-values,
    numbers at 1e-8."""
    design = _design(designs=[{"n_regions": 14, "n_races": 730}], n_replications=2, n_replications_null=3)
    tasks = {
        engine: study.build_tasks(
            design, simulate.SimulationSettings.from_params(), regions, NATIONAL_2021, engine, RHS
        )
        for engine in study.ENGINES
    }
    fast = pd.DataFrame(study.run_chunk(tasks["fast"], batch_size=5))
    slow = pd.DataFrame(study.run_chunk(tasks["statsmodels"]))
    exact = ["method", "ok", "covered", "rejected", "converged", "n_warnings", "error", "sim_seed"]
    pd.testing.assert_frame_equal(fast[exact], slow[exact])
    wild = slow["method"] == "wild_bootstrap"
    np.testing.assert_array_equal(fast.loc[wild, "p_value"], slow.loc[wild, "p_value"])
    for column in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        a, b = fast[column].to_numpy(float), slow[column].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = ~np.isnan(b)
        scale = np.maximum(np.abs(b[finite]), np.nan_to_num(slow["se"].to_numpy(float)[finite], nan=0.0))
        _scaled_close(a[finite], b[finite], scale)


def test_study_coverage_is_the_headlines_inverted_interval(regions: pd.DataFrame) -> None:
    """The study counts the target as covered when the bootstrap test of it does not reject; the headline inverts
    the same test (same draws, weights and level) into an interval. Both say the same on these replications."""
    design = _design(designs=[{"n_regions": 14, "n_races": 730}], n_replications=3, effect_grid=[0.0, -0.3])
    settings = simulate.SimulationSettings.from_params()
    tasks = [t for t in study.build_tasks(design, settings, regions, NATIONAL_2021, formula_rhs=RHS) if t.effect != 0]
    rows = study.run_chunk([replace(t, methods=("wild_bootstrap",)) for t in tasks])
    for task, row in zip(tasks, rows, strict=True):
        races, _, boot_seed = study.simulate_replication(task)
        headline = resampling.wild_cluster_bootstrap(
            races, RHS, "self_share", n_boot=task.n_boot, seed=boot_seed, weights=task.wild_weights, alpha=task.alpha
        )
        assert row["p_value"] == headline.p_value and row["estimate"] == pytest.approx(headline.estimate, rel=RTOL)
        target = row["target"]
        assert min(abs(target - headline.ci_lower), abs(target - headline.ci_upper)) > 1e-4  # not on a bound
        assert row["covered"] is (headline.ci_lower <= target <= headline.ci_upper)


def test_gee_batch_is_each_data_sets_own_fit(data_sets: list[pd.DataFrame]) -> None:
    """The batched GEE takes each data set's own iteration (steps, correlation, estimates, bias-reduced covariance)
    and declines the separated one alone with the single path's reason; and statsmodels agrees."""
    arrays = _arrays(data_sets)
    batch = fastfit.fit_gee_exchangeable_batch(arrays)
    for frame, one, fit in zip(data_sets, arrays, batch, strict=True):
        try:
            single = fastfit.fit_gee_exchangeable(one)
        except fastfit.FastPathDeclined as declined:
            assert isinstance(fit, fastfit.FastPathDeclined) and str(fit) == str(declined)
            continue
        assert isinstance(fit, fastfit.GEEFit) and fit.n_steps == single.n_steps
        assert fit.dep_param == pytest.approx(single.dep_param, rel=1e-10)
        _scaled_close(fit.params, single.params, np.abs(single.params), 1e-10)
        _cov_close(fit.cov_bias_reduced, single.cov_bias_reduced, 1e-9)
        reference = race.fit_race_gee(frame, RHS, cov_type="bias_reduced")
        _scaled_close(fit.params, reference.params, reference.bse.to_numpy())
        _cov_close(fit.cov_bias_reduced, reference.cov_params)
    assert sum(isinstance(fit, fastfit.FastPathDeclined) for fit in batch) == 1  # the separated data set
    assert fastfit.fit_gee_exchangeable_batch([]) == []
    with pytest.raises(ValueError, match="same cluster codes"):
        other = fastfit.RaceArrays(
            arrays[0].exog,
            arrays[0].names,
            arrays[0].voted,
            arrays[0].registered,
            arrays[0].clusters[::-1].copy(),
            arrays[0].n_clusters,
        )
        fastfit.fit_gee_exchangeable_batch([arrays[0], other])


def test_gee_batch_declines_at_the_iteration_limit_as_the_single_path(data_sets: list[pd.DataFrame]) -> None:
    arrays = _arrays([data_sets[0], data_sets[1]])
    limited = fastfit.fit_gee_exchangeable_batch(arrays, maxiter=1)
    assert [str(fit) for fit in limited] == ["GEE iteration limit reached"] * 2
    for one in arrays:
        with pytest.raises(fastfit.FastPathDeclined, match="^GEE iteration limit reached$"):
            fastfit.fit_gee_exchangeable(one, maxiter=1)


def test_indicator_design_products_equal_the_dense_products(data_sets: list[pd.DataFrame]) -> None:
    """The region dummies are found as indicator columns (the intercept and any_woman are not: one is all ones, the
    other differs between data sets), and X b, X'WX and X'r through them equal the dense products."""
    arrays = _arrays([data_sets[0], data_sets[1], data_sets[3]])
    exog = np.stack([a.exog for a in arrays])
    design = fastfit.IndicatorDesign.of(exog)
    names = arrays[0].names
    assert [names[j] for j in design.dummies] == [n for n in names if n.startswith("C(region)")]
    rng = np.random.default_rng(2)
    params, weight, resid = rng.normal(size=(3, exog.shape[2])), rng.random((3, 730)), rng.normal(size=(3, 730))
    np.testing.assert_allclose(design.linear(params), (exog @ params[:, :, None])[:, :, 0], rtol=1e-13, atol=1e-13)
    gram, score = design.gram_and_score(weight, resid)
    xt = exog.transpose(0, 2, 1)
    np.testing.assert_allclose(gram, xt @ (exog * weight[:, :, None]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(score, (xt @ resid[:, :, None])[:, :, 0], rtol=1e-12, atol=1e-12)
    taken = design.take(np.array([2]))
    np.testing.assert_allclose(taken.linear(params[2:]), design.linear(params)[2:], rtol=0, atol=1e-15)
    # no indicator columns to exploit: the dense path
    assert fastfit.IndicatorDesign.of(exog[:, :, [0, -3, -2, -1]]) is None
    # two overlapping 0/1 columns: only the first is an indicator, and one indicator alone is not worth it
    overlap = np.ones((1, 4, 3))
    overlap[0, :, 1] = [1, 1, 0, 0]
    overlap[0, :, 2] = [0, 1, 1, 0]
    assert fastfit.IndicatorDesign.of(overlap) is None


def test_bias_reduced_covariance_batch_is_each_data_sets_own(
    data_sets: list[pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stacked Mancl-DeRouen covariances equal each data set's own (and statsmodels' through the single path's
    tests); a correlation that makes a cluster's working matrix singular is declined alone."""
    arrays = _arrays([data_sets[0], data_sets[1], data_sets[3], data_sets[4]])
    fits = [fastfit.fit_gee_exchangeable(a) for a in arrays]
    params = np.stack([f.params for f in fits])
    deps = np.array([f.dep_param for f in fits])
    deps_with_bad = deps.copy()
    deps_with_bad[1] = -1.0 / (arrays[1].cluster_sizes.max() - 1)  # 1 + a (n_g - 1) = 0 for the largest cluster
    batch = fastfit.mancl_derouen_batch(arrays, params, deps_with_bad)
    assert isinstance(batch[1], fastfit.FastPathDeclined)
    assert str(batch[1]) == "exchangeable working correlation nearly singular for a cluster"
    for j in (0, 2, 3):
        _cov_close(batch[j], fastfit.mancl_derouen(arrays[j], params[j], deps[j]), 1e-10)
    monkeypatch.setattr(fastfit, "MANCL_CHUNK", 3)  # taken in stacks of 3 and 1: the same covariances
    chunked = fastfit.mancl_derouen_batch(arrays, params, deps_with_bad)
    assert isinstance(chunked[1], fastfit.FastPathDeclined)
    for j in (0, 2, 3):
        _cov_close(chunked[j], batch[j], 1e-10)
    with pytest.raises(ValueError, match="same cluster codes"):
        fastfit.mancl_derouen_batch(
            [arrays[0], fastfit.race_arrays(data_sets[0], "C(region) + self_share")], params[:2], deps[:2]
        )
