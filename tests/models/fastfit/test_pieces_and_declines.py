"""Exact checks of the fast numpy paths (akim_turnout.models.fastfit): pieces, edges and decline rules.

test_agreement_with_statsmodels.py (in this folder) pins each fast path to statsmodels on whole fits of simulated
data. This file checks what those fits leave open: the pieces the fits are built from (the REML likelihood, score
and Hessian at any variance ratio, statsmodels' binomial deviance at its guards, the optimiser's settings), the
iteration limits and stopping rules at any tolerance, and each rule for declining a case (FastPathDeclined, with its
message) on both sides of the value where it switches. Where a rule can only be reached through a failure that
regular data never produce (a warning from BFGS, a non-finite GEE step, a Hessian that is not negative definite),
the failure is planted with monkeypatch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py
from scipy import optimize
from statsmodels.regression.mixed_linear_model import MixedLMParams

from akim_turnout.models import fastfit
from akim_turnout.study import simulate

MIX_RHS = "np.log(n_candidates) + self_share + any_woman"
TRUE_RHS = simulate.true_formula_rhs(simulate.SimulationSettings.from_params())


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=0
    )


def _shuffled_arrays(races: pd.DataFrame, rhs: str, seed: int = 3) -> fastfit.RaceArrays:
    """Rows in random order, so cluster sums go through the sorting path."""
    return fastfit.race_arrays(races.sample(frac=1.0, random_state=seed), rhs)


def _relative_to_scale(actual, expected, rtol: float) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(actual - expected)) <= rtol * scale, np.max(np.abs(actual - expected)) / scale


# --------------------------------------------------------------------------
# REML random-intercept model: likelihood, score, Hessian, decline rules
# --------------------------------------------------------------------------


def _statsmodels_mixedlm(y: np.ndarray, exog: np.ndarray, groups: np.ndarray) -> sm.MixedLM:
    """A MixedLM set up as fit(reml=True) sets it up, so loglike/score/hessian can be called at any parameter."""
    model = sm.MixedLM(y, exog, groups=groups)
    model.reml, model.cov_pen, model.fe_pen, model._freepat = True, None, None, None
    return model


@pytest.fixture(scope="module")
def reml_data(races: pd.DataFrame):
    arrays = _shuffled_arrays(races, MIX_RHS)
    y = fastfit.empirical_logit(arrays.voted, arrays.registered)
    return arrays, y


@pytest.mark.parametrize("gamma", [0.02, 3.0])
def test_reml_pieces_equal_statsmodels_at_any_variance_ratio(reml_data, gamma: float) -> None:
    arrays, y = reml_data
    model = fastfit._RandomInterceptREML(y, arrays.exog, arrays)
    reference = _statsmodels_mixedlm(y, arrays.exog, arrays.clusters)
    assert model.nobs == len(y) and model.k == arrays.exog.shape[1] and model.fac == len(y) - model.k
    np.testing.assert_array_equal(model.n, np.bincount(arrays.clusters))
    at_gamma = MixedLMParams.from_components(fe_params=None, cov_re=np.array([[gamma]]))
    assert model.loglike(gamma) == pytest.approx(reference.loglike(at_gamma, profile_fe=True), rel=1e-12, abs=0)
    # statsmodels' score is in L = sqrt(gamma): d/dL = 2 L d/dgamma
    expected_score = reference.score(at_gamma, profile_fe=True)[0] / (2 * math.sqrt(gamma))
    assert model.score(gamma) == pytest.approx(expected_score, rel=1e-8, abs=1e-9 * abs(model.loglike(gamma)))
    _, _, beta, _, _ = model.parts(gamma)
    np.testing.assert_allclose(beta, reference.get_fe_params(np.array([[gamma]]), np.array([]))[0], rtol=1e-10)
    hessian, _ = reference.hessian(MixedLMParams.from_components(fe_params=beta, cov_re=np.array([[gamma]])))
    _relative_to_scale(model.hessian(gamma), hessian, 1e-10)
    np.testing.assert_allclose(np.diag(model.hessian(gamma)), np.diag(hessian), rtol=1e-9)


def test_reml_score_is_the_derivative_of_the_likelihood(reml_data) -> None:
    arrays, y = reml_data
    model = fastfit._RandomInterceptREML(y, arrays.exog, arrays)
    for gamma in (0.05, 0.7, 5.0):
        h = 1e-6 * gamma
        numeric = (model.loglike(gamma + h) - model.loglike(gamma - h)) / (2 * h)
        assert model.score(gamma) == pytest.approx(numeric, rel=1e-5)


def test_reml_remembers_the_smallest_variance_ratio_visited(reml_data) -> None:
    arrays, y = reml_data
    model = fastfit._RandomInterceptREML(y, arrays.exog, arrays)
    assert model.smallest_gamma == np.inf
    model.loglike(0.5)
    model.score(0.2)
    model.hessian(0.9)
    assert model.smallest_gamma == 0.2


def _reference_mixedlm(y: np.ndarray, exog: np.ndarray, clusters: np.ndarray):
    return sm.MixedLM(y, exog, groups=clusters).fit(reml=True)


@pytest.mark.parametrize("columns, factor", [(slice(0, 3), 1.0), (slice(None), 30.0)])
def test_reml_fit_with_its_own_design_and_scaled_outcome(reml_data, columns: slice, factor: float) -> None:
    """An explicit design (not the arrays' own) is the one fitted; rescaling the outcome rescales both variances
    (the variance ratio, and so the BFGS path, does not change)."""
    arrays, y = reml_data
    exog = arrays.exog[:, columns]
    endog = y * factor
    fit = fastfit.fit_random_intercept_reml(arrays, endog, exog)
    raw = _reference_mixedlm(endog, exog, arrays.clusters)
    k = exog.shape[1]
    assert fit.params.shape == (k,) and fit.cov_params.shape == (k, k)
    np.testing.assert_allclose(fit.params, raw.fe_params, rtol=1e-8)
    expected = np.asarray(raw.cov_params())[:k, :k]
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))  # covariances on the correlation scale
    np.testing.assert_allclose(fit.cov_params / scale, expected / scale, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.group_variance, np.asarray(raw.cov_re)[0, 0], rtol=1e-8)
    np.testing.assert_allclose(fit.residual_variance, raw.scale, rtol=1e-8)
    assert isinstance(fit.n_evaluations, int) and fit.n_evaluations >= 2


def test_reml_fit_prints_nothing(reml_data, capsys: pytest.CaptureFixture) -> None:
    arrays, y = reml_data
    fastfit.fit_random_intercept_reml(arrays, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def _wrapped_bfgs(monkeypatch: pytest.MonkeyPatch, before=None, result=None) -> list:
    """Replace scipy's fmin_bfgs by the real one wrapped: ``before(objective, gradient)`` runs first,
    ``result(output)`` may change the output."""
    real = optimize.fmin_bfgs
    calls: list = []

    def wrapped(objective, x0, gradient, **kwargs):
        calls.append(kwargs)
        if before is not None:
            before(objective, gradient)
        output = real(objective, x0, gradient, **kwargs)
        return output if result is None else result(output)

    monkeypatch.setattr(optimize, "fmin_bfgs", wrapped)
    return calls


def test_reml_optimiser_settings_are_statsmodels(reml_data, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scipy BFGS call as statsmodels' MixedLM.fit(reml=True) (start 1, gtol, norm, step limits, silent)."""
    arrays, y = reml_data
    calls = _wrapped_bfgs(monkeypatch)
    sm.MixedLM(y, arrays.exog, groups=arrays.clusters).fit(reml=True)
    assert len(calls) == 1
    statsmodels_call = {key: calls[0][key] for key in ("gtol", "norm", "epsilon", "maxiter", "full_output", "disp")}
    assert statsmodels_call == {
        "gtol": 1e-5, "norm": np.inf, "epsilon": 1.4901161193847656e-08, "maxiter": 100, "full_output": True,
        "disp": False,
    }  # fmt: skip
    calls.clear()
    fastfit.fit_random_intercept_reml(arrays, y)
    assert calls == [statsmodels_call]


def test_reml_declines_when_the_optimiser_warns(reml_data, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays, y = reml_data

    def warn(objective, gradient):
        warnings.warn("line search did not converge", RuntimeWarning, stacklevel=1)

    _wrapped_bfgs(monkeypatch, before=warn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape the fit
        with pytest.raises(fastfit.FastPathDeclined) as declined:
            fastfit.fit_random_intercept_reml(arrays, y)
    assert str(declined.value) == "warnings during the optimisation: line search did not converge"


@pytest.mark.parametrize("warnflag", [1, 2])
def test_reml_declines_when_bfgs_does_not_converge(reml_data, monkeypatch: pytest.MonkeyPatch, warnflag: int) -> None:
    arrays, y = reml_data
    _wrapped_bfgs(monkeypatch, result=lambda output: (*output[:6], warnflag))
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_random_intercept_reml(arrays, y)
    assert str(declined.value) == "BFGS did not converge or reached a singular random-effects variance"


@pytest.mark.parametrize("p, declines", [(1e-4, False), (0.99e-4, True)])
def test_reml_declines_once_the_variance_ratio_went_below_1e_8(
    reml_data, monkeypatch: pytest.MonkeyPatch, p: float, declines: bool
) -> None:
    """gamma = L^2 = 1e-8 exactly is still accepted; any smaller ratio on the way declines."""
    arrays, y = reml_data
    reference = fastfit.fit_random_intercept_reml(arrays, y)
    _wrapped_bfgs(monkeypatch, before=lambda objective, gradient: objective(np.array([p])))
    if declines:
        with pytest.raises(fastfit.FastPathDeclined, match="^BFGS did not converge or reached a singular"):
            fastfit.fit_random_intercept_reml(arrays, y)
    else:
        assert p * p == 1e-8
        fit = fastfit.fit_random_intercept_reml(arrays, y)
        np.testing.assert_array_equal(fit.params, reference.params)


def _patched_hessian(monkeypatch: pytest.MonkeyPatch, last: float, others: float) -> None:
    def hessian(self, gamma):
        return np.diag([others] * self.k + [last])

    monkeypatch.setattr(fastfit._RandomInterceptREML, "hessian", hessian)


@pytest.mark.parametrize(
    "last, others, declines",
    [
        (-2e-8, -2.0, False),  # exactly at -1e-8 times the largest |diagonal|: still negative enough
        (-1.9e-8, -2.0, True),
        (-1.9e-8, -1.0, False),
        (-1e-9, -1.0, True),
        (0.0, -1.0, True),
    ],
)
def test_reml_declines_a_hessian_diagonal_that_is_not_clearly_negative(
    reml_data, monkeypatch: pytest.MonkeyPatch, last: float, others: float, declines: bool
) -> None:
    arrays, y = reml_data
    _patched_hessian(monkeypatch, last, others)
    if declines:
        with pytest.raises(fastfit.FastPathDeclined) as declined:
            fastfit.fit_random_intercept_reml(arrays, y)
        assert str(declined.value) == "group variance near the boundary or Hessian not negative definite"
    else:
        fit = fastfit.fit_random_intercept_reml(arrays, y)
        np.testing.assert_array_equal(fit.cov_params, np.eye(arrays.exog.shape[1]) / -others)


def _tiny_reml_arrays(rows_per_cluster: int = 4, clusters: int = 3) -> fastfit.RaceArrays:
    n = rows_per_cluster * clusters
    x = np.tile(np.arange(rows_per_cluster, dtype=float), clusters)
    exog = np.column_stack([np.ones(n), x])
    codes = np.repeat(np.arange(clusters), rows_per_cluster)
    return fastfit.RaceArrays(exog, ["Intercept", "x"], np.full(n, 5.0), np.full(n, 10.0), codes, clusters)


def test_reml_declines_where_the_objective_fails() -> None:
    arrays = _tiny_reml_arrays()
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_random_intercept_reml(arrays, np.zeros(12))  # a perfect fit: log(0)
    assert str(declined.value) == "REML objective failed: divide by zero encountered in log"
    huge = 1e160 * np.array([1.0, -2, 3, 1, 2, -1, 4, 1, -3, 2, 2, 1])
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_random_intercept_reml(arrays, huge)
    assert str(declined.value).startswith("REML objective failed: overflow encountered")
    singular = np.column_stack([arrays.exog, arrays.exog[:, 1]])
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_random_intercept_reml(arrays, np.arange(12.0) % 5, singular)
    assert str(declined.value) == "REML objective failed: Singular matrix"


@pytest.mark.parametrize("group_variance, declines", [(0.0105, False), (0.0097, True)])
def test_reml_declines_a_group_variance_below_0_0101(reml_data, group_variance: float, declines: bool) -> None:
    """Rescaling the outcome by f rescales the group variance by f^2 (the variance ratio does not change), so the
    rescaled outcome puts the estimate on either side of the cut-off."""
    arrays, y = reml_data
    unscaled = fastfit.fit_random_intercept_reml(arrays, y).group_variance
    endog = y * math.sqrt(group_variance / unscaled)
    if declines:
        with pytest.raises(fastfit.FastPathDeclined) as declined:
            fastfit.fit_random_intercept_reml(arrays, endog)
        assert str(declined.value) == "group variance near the boundary or Hessian not negative definite"
    else:
        fit = fastfit.fit_random_intercept_reml(arrays, endog)
        assert fit.group_variance == pytest.approx(group_variance, rel=1e-3)
        raw = _reference_mixedlm(endog, arrays.exog, arrays.clusters)
        np.testing.assert_allclose(fit.group_variance, np.asarray(raw.cov_re)[0, 0], rtol=1e-8)
        np.testing.assert_allclose(fit.params, raw.fe_params, rtol=1e-8)


FLOATING_POINT_TROUBLE = {
    "overflow": (lambda: np.float64(1e308) * np.float64(10.0), "overflow encountered in scalar multiply"),
    "divide": (lambda: np.float64(1.0) / np.float64(0.0), "divide by zero encountered in scalar divide"),
    "invalid": (lambda: np.float64(0.0) / np.float64(0.0), "invalid value encountered in scalar divide"),
}


@pytest.mark.parametrize("method", ["loglike", "score"])
@pytest.mark.parametrize("trouble", FLOATING_POINT_TROUBLE, ids=FLOATING_POINT_TROUBLE)
def test_reml_floating_point_trouble_in_objective_or_gradient_declines(
    reml_data, monkeypatch: pytest.MonkeyPatch, method: str, trouble: str
) -> None:
    """Overflow, division by zero or an invalid operation anywhere in the objective or its gradient is an error
    there (not an inf or NaN handed to BFGS), and the fit declines naming it."""
    arrays, y = reml_data
    operation, message = FLOATING_POINT_TROUBLE[trouble]

    def troubled(self, gamma):
        return float(operation())

    monkeypatch.setattr(fastfit._RandomInterceptREML, method, troubled)
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_random_intercept_reml(arrays, y)
    assert str(declined.value) == f"REML objective failed: {message}"


# --------------------------------------------------------------------------
# Regional fractional logit: deviance, IRLS, sandwich SE, permutation statistics
# --------------------------------------------------------------------------

SHARE6 = np.array([0.6, 0.7, 0.65, 0.8, 0.75, 0.7])
EXOG6 = np.column_stack([np.ones(6), np.arange(6.0)])


@pytest.mark.parametrize("mu", [1e-19, 0.0, 1.0, 1 - 1e-16, 0.3])
def test_binomial_deviance_is_statsmodels_also_at_the_extremes(mu: float) -> None:
    """statsmodels' Binomial deviance, with its 1e-20 guards and clipping, where they decide the value."""
    share = np.array([0.0, 0.25, 0.5, 1.0, 0.9, 0.1])
    weights = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.5])
    mus = np.full(6, mu)
    expected = sm.families.Binomial().deviance(share, mus, var_weights=weights)
    assert fastfit._binomial_deviance(share, mus, weights) == pytest.approx(expected, rel=1e-14)
    batch = fastfit._binomial_deviance(share, np.vstack([mus, np.full(6, 0.5)]), weights)
    assert batch.shape == (2,) and batch[0] == pytest.approx(expected, rel=1e-14)


def test_irls_iteration_limit_and_counts(regional_like) -> None:
    """maxiter steps exactly (statsmodels' fit(maxiter=m) at its last step); counts are integers."""
    share, exog, weights = regional_like
    for maxiter in (1, 2, 3):
        params, iterations = fastfit.fractional_logit_irls(share, exog[None], weights, maxiter=maxiter, tol=-1.0)
        assert iterations.dtype.kind == "i" and iterations.tolist() == [maxiter]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' ConvergenceWarning at the limit
            raw = sm.GLM(share, exog, family=sm.families.Binomial(), var_weights=weights).fit(maxiter=maxiter)
        np.testing.assert_allclose(params[0], raw.params, rtol=1e-10)
    _, iterations = fastfit.fractional_logit_irls(share, exog[None], weights)
    assert iterations.dtype.kind == "i" and 2 < iterations[0] < 100


def test_irls_stops_when_the_deviance_change_reaches_the_tolerance() -> None:
    """A constant share of 0.5 is fitted exactly by the first step: the deviance change is exactly 0, which stops
    the iteration at tolerance 0 (a change <= tol stops)."""
    params, iterations = fastfit.fractional_logit_irls(np.full(6, 0.5), np.stack([EXOG6, EXOG6[:, ::-1]]), tol=0.0)
    assert iterations.tolist() == [1, 1]
    np.testing.assert_array_equal(params, 0.0)


@pytest.fixture(scope="module")
def regional_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourteen regions: turnout share, intercept and a covariate, unequal weights."""
    rng = np.random.default_rng(5)
    x = rng.uniform(1, 4, 14)
    share = 1 / (1 + np.exp(-(1.2 - 0.15 * x + rng.normal(0, 0.3, 14))))
    return share, np.column_stack([np.ones(14), x]), rng.uniform(0.3, 2.0, 14)


def test_sandwich_se_batch_defaults_to_hc3_and_names_a_wrong_kind(regional_like) -> None:
    share, exog, weights = regional_like
    designs = exog[None]
    params, _ = fastfit.fractional_logit_irls(share, designs, weights)
    default = fastfit.sandwich_se_batch(share, designs, params, weights, 1)
    hc3 = fastfit.sandwich_se_batch(share, designs, params, weights, 1, "HC3")
    hc0 = fastfit.sandwich_se_batch(share, designs, params, weights, 1, "HC0")
    np.testing.assert_array_equal(default[0], hc3[0])
    assert hc3[0][0] > hc0[0][0]
    raw = sm.GLM(share, exog, family=sm.families.Binomial(), var_weights=weights).fit()
    np.testing.assert_allclose(default[1], np.max(raw.get_influence().hat_matrix_diag), rtol=1e-8)
    two = np.stack([exog, np.column_stack([np.ones(14), exog[::-1, 1]])])
    params_two, _ = fastfit.fractional_logit_irls(share, two, weights)
    se_two, leverage_two = fastfit.sandwich_se_batch(share, two, params_two, weights, 1, "HC0")
    assert se_two.shape == leverage_two.shape == (2,)
    for design, se, leverage in zip(two, se_two, leverage_two, strict=True):
        raw = sm.GLM(share, design, family=sm.families.Binomial(), var_weights=weights).fit(cov_type="HC0")
        assert leverage == pytest.approx(np.max(raw.get_influence().hat_matrix_diag), rel=1e-8)
        assert se == pytest.approx(raw.bse[1], rel=1e-7)
    with pytest.raises(ValueError, match=r"^kind must be HC0, HC1 or HC3, got 'HC2'$"):
        fastfit.sandwich_se_batch(share, designs, params, weights, 1, "HC2")


def test_permutation_statistics_take_an_integer_design_as_floats() -> None:
    """An integer design and fractional permuted columns: the columns are not truncated."""
    columns = np.array([[0.5, 1.25, 2.0, 2.5, 3.75, 4.5], [4.5, 0.5, 3.75, 1.25, 2.5, 2.0]])
    integer, _ = fastfit.permutation_statistics(SHARE6, EXOG6.astype(np.int64), None, 1, columns, "coef")
    floats, _ = fastfit.permutation_statistics(SHARE6, EXOG6, None, 1, columns, "coef")
    np.testing.assert_array_equal(integer, floats)
    design = EXOG6.copy()
    design[:, 1] = columns[0]
    raw = sm.GLM(SHARE6, design, family=sm.families.Binomial()).fit()
    assert floats[0] == pytest.approx(raw.params[1], rel=1e-8)


def test_permutation_statistics_decline_the_whole_batch_on_a_singular_system() -> None:
    """Weight on one region only: X'WX is singular for every design; all are left to statsmodels."""
    weights = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    columns = np.array([np.arange(6.0), np.arange(6.0)[::-1], [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]])
    for statistic in ("t", "coef"):
        values, declined = fastfit.permutation_statistics(SHARE6, EXOG6, weights, 1, columns, statistic)
        assert declined.dtype == bool and declined.tolist() == [True, True, True]
        assert values.shape == (3,) and np.isnan(values).all()


def test_permutation_statistics_decline_a_non_finite_statistic_quietly() -> None:
    """A constant share of 0.5 is fitted exactly: every residual is 0, so the SE is 0 and t = 0 / 0. Declined,
    without a floating-point warning; the coefficient itself (0) is a regular statistic."""
    columns = np.array([np.arange(6.0), [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cov_type in ("HC0", "HC1", "HC3"):
            values, declined = fastfit.permutation_statistics(np.full(6, 0.5), EXOG6, None, 1, columns, "t", cov_type)
            assert declined.tolist() == [True, True] and np.isnan(values).all()
        values, declined = fastfit.permutation_statistics(np.full(6, 0.5), EXOG6, None, 1, columns, "coef")
    assert declined.tolist() == [False, False]
    np.testing.assert_array_equal(values, 0.0)


# --------------------------------------------------------------------------
# Wild cluster score bootstrap: ties and weights
# --------------------------------------------------------------------------


def test_score_bootstrap_counts_draws_that_reproduce_the_statistic(races: pd.DataFrame) -> None:
    """All-ones (or all minus-ones) weights reproduce the observed statistic up to rounding: a tie, counted."""
    arrays = fastfit.race_arrays(races, TRUE_RHS)
    k = arrays.names.index("self_share")
    start = fastfit.fit_counts_glm(arrays).params
    ties = np.vstack([np.ones(arrays.n_clusters), -np.ones(arrays.n_clusters)])
    statistic, p_value = fastfit.score_bootstrap(arrays, k, 0.0, ties, start)
    assert p_value == 1.0
    psi = fastfit.restricted_cluster_influence(arrays, k, 0.0, start)
    assert statistic == pytest.approx(psi.sum() / np.sqrt(psi @ psi), rel=1e-15)


def test_wild_weight_draws_name_the_known_weights() -> None:
    with pytest.raises(ValueError, match=r"^weights must be one of \['rademacher', 'webb'\]$"):
        fastfit.wild_weight_draws(1, 10, 5, "mammen")


# --------------------------------------------------------------------------
# GEE: iterations, stopping rule and decline rules
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gee_arrays(races: pd.DataFrame) -> fastfit.RaceArrays:
    return fastfit.race_arrays(races, TRUE_RHS)


def _statsmodels_gee_fit(arrays: fastfit.RaceArrays, **options):
    model = sm.GEE(
        arrays.share,
        arrays.exog,
        groups=arrays.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    return model.fit(**options)


@pytest.mark.parametrize("ctol", [1.0, 1e-3, fastfit.GEE_CTOL])
def test_gee_stops_where_statsmodels_stops_for_any_tolerance(gee_arrays: fastfit.RaceArrays, ctol: float) -> None:
    """A loose tolerance stops after the first step with an estimated correlation (the second step), never at
    the first, whose score is 0 at the GLM start."""
    fit = fastfit.fit_gee_exchangeable(gee_arrays, ctol=ctol)
    raw = _statsmodels_gee_fit(gee_arrays, ctol=ctol)
    assert fit.n_steps == len(raw.fit_history["params"]) >= 2
    assert fit.n_steps == {1.0: 2, 1e-3: 3, fastfit.GEE_CTOL: 4}[ctol]
    np.testing.assert_allclose(fit.params, raw.params, rtol=1e-9)
    assert fit.dep_param == pytest.approx(float(np.ravel(raw.cov_struct.dep_params)[0]), rel=1e-9)
    assert fit.dep_param != 0.0 and 0 < fit.score_norm < ctol
    assert fit.arrays is gee_arrays


@pytest.mark.parametrize("maxiter", [1, 3])
def test_gee_declines_at_the_iteration_limit(gee_arrays: fastfit.RaceArrays, maxiter: int) -> None:
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_gee_exchangeable(gee_arrays, maxiter=maxiter)
    assert str(declined.value) == "GEE iteration limit reached"
    assert fastfit.fit_gee_exchangeable(gee_arrays, maxiter=4).n_steps == 4


@pytest.mark.parametrize("dep", [1.0, -1.0, 1.5, float("nan"), float("inf")])
def test_gee_declines_a_working_correlation_outside_the_open_interval(
    gee_arrays: fastfit.RaceArrays, monkeypatch: pytest.MonkeyPatch, dep: float
) -> None:
    monkeypatch.setattr(fastfit, "_update_dep", lambda arrays, params: dep)
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_gee_exchangeable(gee_arrays)
    assert str(declined.value) == f"working correlation {dep} outside (-1, 1)"


def _near_singular_dep(size: int, distance: float) -> float:
    """The correlation that leaves 1 + a (n_g - 1) at ``distance`` from 0 for a cluster of ``size`` rows."""
    return (-1.0 + distance) / (size - 1)


@pytest.mark.parametrize("distance, declines", [(0.9e-4, True), (-0.9e-4, True), (1.2e-4, False)])
def test_gee_declines_a_nearly_singular_working_correlation(
    gee_arrays: fastfit.RaceArrays, monkeypatch: pytest.MonkeyPatch, distance: float, declines: bool
) -> None:
    """The smallest cluster has 10 rows: a = -1/9 makes its working correlation matrix singular."""
    sizes = gee_arrays.cluster_sizes
    assert sizes.min() == 10 and np.sum(sizes == 10) == 1
    dep = _near_singular_dep(10, distance)
    assert abs(1.0 + dep * 9) == pytest.approx(abs(distance), rel=1e-9)
    steps = []

    def fixed_dep(arrays, params):
        steps.append(params)
        return dep

    monkeypatch.setattr(fastfit, "_update_dep", fixed_dep)
    if declines:
        with pytest.raises(fastfit.FastPathDeclined) as declined:
            fastfit.fit_gee_exchangeable(gee_arrays)
        assert str(declined.value) == "exchangeable working correlation nearly singular for a cluster"
        assert len(steps) == 1
    else:
        try:
            fastfit.fit_gee_exchangeable(gee_arrays, maxiter=2)
        except fastfit.FastPathDeclined as error:
            assert str(error) == "GEE iteration limit reached"
        assert len(steps) == 2


def test_gee_declines_a_singular_or_non_finite_update(
    gee_arrays: fastfit.RaceArrays, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = gee_arrays.exog.shape[1]
    monkeypatch.setattr(fastfit, "_gee_system", lambda arrays, params, dep: (np.zeros((k, k)), np.ones(k)))
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_gee_exchangeable(gee_arrays)
    assert str(declined.value) == "singular GEE update: Singular matrix"
    for score in (np.full(k, np.nan), np.full(k, 1e200)):  # a NaN step; a finite step with an infinite norm
        monkeypatch.setattr(fastfit, "_gee_system", lambda arrays, params, dep, score=score: (np.eye(k) * 1e200, score))
        with pytest.raises(fastfit.FastPathDeclined) as declined, np.errstate(over="ignore"):
            fastfit.fit_gee_exchangeable(gee_arrays)
        assert str(declined.value) == "non-finite GEE step"


# --------------------------------------------------------------------------
# Bias-reduced covariance: decline rules, row order
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gee_fit(gee_arrays: fastfit.RaceArrays) -> fastfit.GEEFit:
    return fastfit.fit_gee_exchangeable(gee_arrays)


@pytest.mark.parametrize(
    "dep",
    [
        1.0,
        -1.0,
        1.5,
        float("nan"),
        _near_singular_dep(10, 0.9e-4),
        _near_singular_dep(10, -0.9e-4),
        _near_singular_dep(95, 0.5e-4),  # the largest cluster
    ],
)
def test_mancl_derouen_declines_a_singular_working_correlation(
    gee_arrays: fastfit.RaceArrays, gee_fit: fastfit.GEEFit, dep: float
) -> None:
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.mancl_derouen(gee_arrays, gee_fit.params, dep)
    assert str(declined.value) == "exchangeable working correlation nearly singular for a cluster"


@pytest.mark.parametrize("dep", [_near_singular_dep(10, 1.2e-4), 0.999, -0.01])
def test_mancl_derouen_takes_a_regular_working_correlation(
    gee_arrays: fastfit.RaceArrays, gee_fit: fastfit.GEEFit, dep: float
) -> None:
    cov = fastfit.mancl_derouen(gee_arrays, gee_fit.params, dep)
    k = len(gee_fit.params)
    assert cov.shape == (k, k) and np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)


def test_mancl_derouen_declines_a_singular_information(gee_arrays: fastfit.RaceArrays, gee_fit) -> None:
    """A repeated design column: B is singular. LU need not meet an exact zero pivot (on these data sets
    ``numpy.linalg.inv`` returns a matrix, and with it a covariance with zero variances), so the condition number
    decides: here 1e16 and more against about 3e3 without the repeated column."""
    assert np.linalg.cond(fastfit._gee_system(gee_arrays, gee_fit.params, gee_fit.dep_param)[0]) < 1e5
    doubled = fastfit.RaceArrays(
        np.column_stack([gee_arrays.exog, gee_arrays.exog[:, -1]]),
        [*gee_arrays.names, "again"],
        gee_arrays.voted,
        gee_arrays.registered,
        gee_arrays.clusters,
        gee_arrays.n_clusters,
    )
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.mancl_derouen(doubled, np.append(gee_fit.params, 0.0), gee_fit.dep_param)
    message = str(declined.value)
    assert message.startswith("singular GEE information: condition number ")
    assert float(message.rsplit(" ", 1)[1]) > 1e15


def test_mancl_derouen_rows_sorted_by_cluster_or_not(races: pd.DataFrame) -> None:
    """Rows already grouped by cluster (no reordering) and the same rows shuffled give the reference covariance."""
    from akim_turnout.models.inference import mancl_derouen_cov

    grouped = races.sort_values("region", kind="stable")
    arrays = fastfit.race_arrays(grouped, TRUE_RHS)
    assert np.all(np.diff(arrays.clusters) >= 0) and arrays._order[0] is None
    raw = _statsmodels_gee_fit(arrays)
    dep = float(np.ravel(raw.cov_struct.dep_params)[0])
    expected = mancl_derouen_cov(raw)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    _relative_to_scale(fastfit.mancl_derouen(arrays, np.asarray(raw.params), dep) / scale, expected / scale, 1e-8)
    shuffled = fastfit.race_arrays(grouped.sample(frac=1.0, random_state=4), TRUE_RHS)
    assert shuffled._order[0] is not None
    actual = fastfit.mancl_derouen(shuffled, np.asarray(raw.params), dep)
    _relative_to_scale(actual / scale, expected / scale, 1e-8)


# --------------------------------------------------------------------------
# Newton on counts, the counts GLM and its start
# --------------------------------------------------------------------------


def _counts_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    exog = np.column_stack([np.ones(8), x])
    voted = np.array([30.0, 41, 38, 55, 61, 58, 70, 77])
    return exog, voted, np.full(8, 100.0)


def test_newton_counts_counts_its_steps_and_stops_at_the_limit() -> None:
    exog, voted, trials = _counts_problem()
    start = fastfit.logit_start(voted, trials, 2)
    params, n_steps = fastfit.newton_counts(exog, voted, trials, start)
    raw = sm.GLM(np.column_stack([voted, trials - voted]), exog, family=sm.families.Binomial()).fit(
        method="newton", tol=1e-10
    )
    np.testing.assert_allclose(params, raw.params, rtol=1e-10)
    assert 2 < n_steps < 10
    again, steps_at_limit = fastfit.newton_counts(exog, voted, trials, start, max_steps=n_steps)
    assert steps_at_limit == n_steps
    np.testing.assert_array_equal(again, params)
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.newton_counts(exog, voted, trials, start, max_steps=n_steps - 1)
    assert str(declined.value) == f"Newton did not converge in {n_steps - 1} steps"


def test_newton_counts_stops_on_a_step_of_exactly_the_tolerance() -> None:
    """Half of every race voting and start 0: the first step is exactly 0, which meets tolerance 0."""
    exog = _counts_problem()[0]
    params, n_steps = fastfit.newton_counts(exog, np.full(8, 50.0), np.full(8, 100.0), np.zeros(2), tol=0.0)
    assert n_steps == 1
    np.testing.assert_array_equal(params, 0.0)


def test_newton_counts_declines_singular_or_non_finite_steps() -> None:
    exog, voted, trials = _counts_problem()
    doubled = np.column_stack([exog, exog[:, 1]])
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.newton_counts(doubled, voted, trials, np.zeros(3))
    assert str(declined.value) == "singular information: Singular matrix"
    gap = voted.copy()
    gap[3] = np.nan
    with pytest.raises(fastfit.FastPathDeclined) as declined, np.errstate(invalid="ignore"):
        fastfit.newton_counts(exog, gap, trials, np.zeros(2))
    assert str(declined.value) == "non-finite Newton step"


def test_counts_glm_declines_one_cluster() -> None:
    exog, voted, trials = _counts_problem()
    arrays = fastfit.RaceArrays(exog, ["Intercept", "x"], voted, trials, np.zeros(8, dtype=np.int64), 1)
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.fit_counts_glm(arrays)
    assert str(declined.value) == "one cluster"


@pytest.mark.parametrize("voted, expected", [(0.0, 1e-6), (100.0, 1 - 1e-6), (25.0, 0.25)])
def test_logit_start_clips_the_overall_share(voted: float, expected: float) -> None:
    start = fastfit.logit_start(np.full(4, voted), np.full(4, 100.0), 3)
    np.testing.assert_array_equal(start[1:], 0.0)
    assert start[0] == pytest.approx(math.log(expected / (1 - expected)), rel=1e-12)


# --------------------------------------------------------------------------
# Race data as arrays: the direct path, its columns and its checks
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [np.array([1, 2, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.uint8), np.array([1.5, 2.0, 3.0])],
    ids=["int", "uint", "float"],
)
def test_numeric_column_takes_integer_and_float_columns_as_floats(values: np.ndarray) -> None:
    result = fastfit._numeric_column(pd.Series(values), "x")
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, values.astype(float))


@pytest.mark.parametrize(
    "series, message",
    [
        (pd.Series([True, False, True]), "x is not numeric"),
        (pd.Series(["1", "2", "3"], dtype="string"), "x is not numeric"),
        (pd.Series([1.0, np.nan, 3.0]), "x has missing values"),
        (pd.Series([1.0, np.inf, 3.0]), "x has missing values"),
    ],
    ids=["bool", "text", "nan", "inf"],
)
def test_numeric_column_declines_naming_the_column(series: pd.Series, message: str) -> None:
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit._numeric_column(series, "x")
    assert str(declined.value) == message


def _tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "v": [50, 60, 1, 80, 90, 99, 40],
            "r": [100, 100, 100, 100, 100, 100, 80],
            "oblast": pd.array(["A", "A", "B", "B", "C", "C", "A"], dtype="string"),
            "n_candidates": [2, 3, 1, 4, 2, 3, 2],
            "self_share": [0.5, 0.0, 1.0, 0.25, 0.5, 1.0, 0.75],
        }
    )


def test_race_arrays_take_complete_frames_directly_with_any_column_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def general_path(*args, **kwargs):
        raise AssertionError("a complete frame goes the direct way")

    monkeypatch.setattr(fastfit, "prepare_races", general_path)
    arrays = fastfit.race_arrays(_tiny_frame(), "np.log(n_candidates) + self_share", "oblast", "v", "r")
    assert arrays.names == ["Intercept", "np.log(n_candidates)", "self_share"]
    assert arrays.clusters.tolist() == [0, 0, 1, 1, 2, 2, 0] and arrays.n_clusters == 3
    assert arrays.voted.dtype == np.float64 and arrays.voted.tolist() == [50, 60, 1, 80, 90, 99, 40]
    assert arrays.registered.tolist() == [100, 100, 100, 100, 100, 100, 80]


def test_race_arrays_errors_of_the_general_path_name_race_arrays() -> None:
    broken = _tiny_frame().assign(v=[50, 60, 1, 80, 90, 101, 40])
    with pytest.raises(ValueError, match=r"^race_arrays: invalid turnout rows: "):
        fastfit.race_arrays(broken, "self_share", "oblast", "v", "r")
    with pytest.raises(ValueError, match=r"^race_arrays: 3 rows for 3 parameters$"):
        fastfit.race_arrays(_tiny_frame().iloc[:3], "np.log(n_candidates) + self_share", "oblast", "v", "r")


def _direct(frame: pd.DataFrame, rhs: str) -> fastfit.RaceArrays:
    from akim_turnout.models import design

    return fastfit._direct_race_arrays(frame, rhs, "oblast", "v", "r", design.parse_terms)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.drop(columns="oblast"), "missing columns"),
        (lambda d: d.assign(r=[100, 1, 100, 100, 100, 100, 80], v=[50, 1, 1, 80, 90, 99, 40]), None),
        (lambda d: d.assign(r=[100, 0, 100, 100, 100, 100, 80], v=[50, 0, 1, 80, 90, 99, 40]), "invalid counts"),
        (lambda d: d.assign(v=[50, 60, 0, 80, 90, 99, 40]), None),
        (lambda d: d.assign(v=[50, 60, -1, 80, 90, 99, 40]), "invalid counts"),
        (lambda d: d.assign(v=[50, 60, 1, 80, 90, 100, 80]), None),
        (lambda d: d.assign(v=[50, 60, 1, 80, 90, 100, 81]), "invalid counts"),
        (lambda d: d.assign(v=d["v"] * 1.0, r=d["r"].astype(str)), "r is not numeric"),
        (lambda d: d.assign(v=d["v"].astype(str)), "v is not numeric"),
        (lambda d: d.assign(n_candidates=[2, 3, 1, 4, 2, 3, 1]), None),
        (lambda d: d.assign(n_candidates=[2, 3, 1, 4, 2, 3, 0.5]), None),
        (lambda d: d.assign(n_candidates=[2, 3, 1, 4, 0, 3, 1]), "n_candidates not positive"),
        (lambda d: d.assign(self_share=[0.5, 0.0, 1.0, 0.25, np.nan, 1.0, 0.75]), "self_share has missing values"),
        (lambda d: d.assign(oblast=d["oblast"].astype(object)), "oblast is not complete text"),
        (lambda d: d.iloc[:3], "too few rows"),
        (lambda d: d.iloc[:4], None),
    ],
)
def test_direct_race_arrays_check_each_rule_at_its_edge(change, message: str | None) -> None:
    """np.log(n_candidates) + self_share (3 columns): each rule just inside (accepted) and just outside."""
    frame = change(_tiny_frame())
    rhs = "np.log(n_candidates) + self_share"
    if message is None:
        arrays = _direct(frame, rhs)
        np.testing.assert_array_equal(arrays.exog[:, 1], np.log(frame["n_candidates"].to_numpy(float)))
        np.testing.assert_array_equal(arrays.voted, frame["v"].to_numpy(float))
    else:
        with pytest.raises(fastfit.FastPathDeclined) as declined:
            _direct(frame, rhs)
        assert str(declined.value) == message


def test_direct_race_arrays_dummies_and_a_plain_numeric_term() -> None:
    """A categorical term becomes treatment dummies of its sorted levels; a numeric term enters as it is; the
    cluster column's codes follow its sorted levels."""
    frame = _tiny_frame().assign(kind=pd.array(["y", "x", "z", "x", "y", "z", "x"], dtype="string"))
    arrays = _direct(frame, "C(kind) + self_share + C(oblast)")
    dummies = ["C(kind)[T.y]", "C(kind)[T.z]", "self_share", "C(oblast)[T.B]", "C(oblast)[T.C]"]
    assert arrays.names == ["Intercept", *dummies]
    np.testing.assert_array_equal(arrays.exog[:, 1], [1, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(arrays.exog[:, 2], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(arrays.exog[:, 3], frame["self_share"])
    np.testing.assert_array_equal(arrays.exog[:, 4], [0, 0, 1, 1, 0, 0, 0])
    assert arrays.clusters.tolist() == [0, 0, 1, 1, 2, 2, 0]


@pytest.mark.parametrize("grouped", [True, False])
def test_cluster_sums_of_rows_grouped_or_not(grouped: bool) -> None:
    clusters = np.array([0, 0, 1, 1, 1, 2]) if grouped else np.array([1, 0, 2, 1, 0, 1])
    values = np.arange(12.0).reshape(6, 2) ** 2
    arrays = fastfit.RaceArrays(np.ones((6, 1)), ["Intercept"], np.ones(6), np.ones(6) * 2, clusters, 3)
    assert (arrays._order[0] is None) == grouped
    expected = np.column_stack([np.bincount(clusters, weights=values[:, j], minlength=3) for j in range(2)])
    np.testing.assert_array_equal(arrays.cluster_sums(values), expected)
    np.testing.assert_array_equal(arrays.cluster_sums(values[:, 0]), expected[:, 0])
    np.testing.assert_array_equal(arrays.cluster_sizes, np.bincount(clusters))


@pytest.mark.parametrize(
    "intercept, message",
    [
        (29.5, "Newton did not converge in 1 steps"),  # checked and stepped from
        (30.0, "linear predictor beyond +-30 (near-separation)"),
        (30.5, "linear predictor beyond +-30 (near-separation)"),
        (-30.0, "linear predictor beyond +-30 (near-separation)"),
    ],
)
def test_newton_counts_declines_a_linear_predictor_from_30_on(intercept: float, message: str) -> None:
    exog, voted, trials = _counts_problem()
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit.newton_counts(exog, voted, trials, np.array([intercept, 0.0]), max_steps=1)
    assert str(declined.value) == message


def test_counts_glm_with_two_clusters() -> None:
    """Two clusters is the fewest the cluster-robust covariance takes (correction G / (G - 1) = 2)."""
    exog, voted, trials = _counts_problem()
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    fit = fastfit.fit_counts_glm(fastfit.RaceArrays(exog, ["Intercept", "x"], voted, trials, clusters, 2))
    raw = sm.GLM(np.column_stack([voted, trials - voted]), exog, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True
    )
    np.testing.assert_allclose(fit.params, raw.params, rtol=1e-10)
    np.testing.assert_allclose(fit.cov_cluster, raw.cov_params(), rtol=1e-8)
    assert fit.df_resid_inference == 1


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ([[4.4e-16]], [[0.0]]),  # a one-race cluster with its own dummy: I - H_gg is rounding noise
        ([[0.5]], [[2.0]]),
        ([[0.5, 0.0], [0.0, 1e-9]], [[2.0, 0.0], [0.0, 0.0]]),  # 1e-9 <= 1.5e-8 * max(1, 0.5): cut
        ([[0.5, 0.0], [0.0, 2e-8]], [[2.0, 0.0], [0.0, 5e7]]),  # 2e-8 > 1.5e-8 * max(1, 0.5): kept
        ([[4.0, 0.0], [0.0, 5e-8]], [[0.25, 0.0], [0.0, 0.0]]),  # 5e-8 <= 1.5e-8 * 4: cut
        ([[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]),
    ],
)
def test_generalized_inverse_cuts_relative_to_at_least_one(matrix: list, expected: list) -> None:
    """Singular values up to sqrt(eps) * max(1, largest) are cut, in the reference and in the fast path alike."""
    from akim_turnout.models.inference import DEFAULT_RCOND, generalized_inverse

    rotation = np.array([[0.6, -0.8], [0.8, 0.6]])[: len(matrix), : len(matrix)] if len(matrix) == 2 else np.eye(1)
    rotated = rotation @ np.asarray(matrix) @ rotation.T
    want = rotation @ np.asarray(expected) @ rotation.T
    for inverse in (generalized_inverse(rotated), fastfit._generalized_inverse(rotated, DEFAULT_RCOND)):
        # the rotated input carries rounding of 1e-16, which its condition number (up to 2.5e7) magnifies
        np.testing.assert_allclose(inverse, want, rtol=0, atol=1e-8 * np.abs(want).max(initial=1.0))
