"""The project's estimators against reference results computed independently in R.

The references live in tests/reference/ (see its README.md): the input data (inputs/*.csv), the R script that
computed them (generate.R) and its output (results/*.json). These tests need no R: they read the committed
files. ``make reference`` recomputes the results from the frozen inputs (that needs R).

Tolerances (stated per test where they differ):

* Estimates, standard errors and p-values: relative 1e-6.
* Confidence-interval bounds: relative 1e-6 with an absolute floor of 1e-6 x the standard error (a bound near
  zero is judged on the scale of the interval's width).
* Covariance matrices: relative 1e-6 with an absolute floor of 1e-6 x the largest absolute entry.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from akim_turnout.models import inference, race
from akim_turnout.models.design import build_design
from akim_turnout.models.inference import DEFAULT_RCOND, mancl_derouen_cov
from akim_turnout.models.regional import fit_regional_fractional_logit, leave_one_out, prediction_curve

REFERENCE = Path(__file__).parent / "reference"
INPUTS = REFERENCE / "inputs"
RESULTS = ("inputs_as_read", "regional", "race_glm", "race_gee", "race_beta", "race_mixedlm")
RTOL = 1e-6
FE_RHS = "C(region) + np.log(n_candidates) + self_share + any_woman"
MIX_RHS = "np.log(n_candidates) + self_share + any_woman"
MIX_TERMS = ["np.log(n_candidates)", "self_share", "any_woman"]
REGIONAL_MODELS = {
    "main_unweighted": (["cands_per_seat"], None),
    "main_weighted": (["cands_per_seat"], "voters_on_rolls"),
    "mix_unweighted": (["cands_per_seat", "self_share"], None),
}


@cache
def reference(name: str) -> dict[str, Any]:
    """One results/*.json file (null -> None)."""
    return json.loads((REFERENCE / "results" / f"{name}.json").read_text())


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


@pytest.fixture(scope="module")
def regional() -> pd.DataFrame:
    return pd.read_csv(INPUTS / "regional_2021.csv")


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return pd.read_csv(INPUTS / "races_simulated.csv")


def assert_coefficients(fit: inference.FitResult, expected: dict[str, Any], rtol: float = RTOL) -> None:
    """Terms, estimates, SEs, CIs, p-values, df and covariance of a FitResult against an R table."""
    assert list(fit.params.index) == expected["terms"]
    se = _floats(expected["std_error"])
    np.testing.assert_allclose(fit.params, _floats(expected["estimate"]), rtol=rtol, atol=0)
    np.testing.assert_allclose(fit.bse, se, rtol=rtol, atol=0)
    np.testing.assert_allclose(fit.pvalues, _floats(expected["p_value"]), rtol=rtol, atol=0)
    for ours, theirs in (("lower", "ci_lower"), ("upper", "ci_upper")):
        np.testing.assert_array_less(
            np.abs(fit.conf_int[ours] - _floats(expected[theirs])),
            rtol * np.maximum(np.abs(_floats(expected[theirs])), se),
        )
    assert fit.df_resid == expected["df"]
    cov = np.array(expected["cov"], dtype=float)
    np.testing.assert_allclose(fit.cov_params, cov, rtol=rtol, atol=rtol * np.abs(cov).max())


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESULTS)
def test_references_were_computed_on_the_committed_inputs(name: str) -> None:
    recorded = reference(name)["meta"]["inputs_md5"]
    for file, md5 in recorded.items():
        assert hashlib.md5((INPUTS / file).read_bytes()).hexdigest() == md5, f"{name}.json is stale for {file}"


def test_python_reads_the_same_doubles_as_r(regional: pd.DataFrame, races: pd.DataFrame) -> None:
    """Exact equality: the CSVs hold repr() floats and R's parse, printed with 17 digits, reads back the same."""
    as_read = reference("inputs_as_read")
    for column, values in as_read["regional_2021"].items():
        np.testing.assert_array_equal(regional[column].to_numpy(float), _floats(values))
    for column, values in as_read["races_simulated"].items():
        np.testing.assert_array_equal(races[column].to_numpy(float), _floats(values))
    assert len(races) == 730 and races["region"].nunique() == 14


# --------------------------------------------------------------------------------------------------------------
# 1-4. Regional fractional logit (R: glm(quasibinomial) + sandwich::vcovHC), leave-one-out, AMEs, curve
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC3"])
@pytest.mark.parametrize("name", list(REGIONAL_MODELS))
def test_regional_fractional_logit_matches_r(regional: pd.DataFrame, name: str, cov_type: str) -> None:
    predictors, weight = REGIONAL_MODELS[name]
    expected = reference("regional")["fits"][name]
    fit = fit_regional_fractional_logit(regional, predictors, weight=weight, cov_type=cov_type)
    assert fit.extra["regions"] == expected["regions"]
    assert fit.n_obs == expected["n_obs"]
    assert_coefficients(fit, expected["cov_types"][cov_type])
    np.testing.assert_allclose(fit.extra["max_leverage"], expected["max_leverage"], rtol=RTOL)


def test_weighted_two_predictor_regional_model_is_refused_as_in_r(regional: pd.DataFrame) -> None:
    """Only one region publishes candidates per post, self-nominated share and electorate: R does not fit it."""
    expected = reference("regional")["fits"]["mix_weighted"]
    assert expected["identified"] is False and expected["n_obs"] == 1
    with pytest.raises(ValueError, match="1 observations for 3 parameters"):
        fit_regional_fractional_logit(regional, ["cands_per_seat", "self_share"], weight="voters_on_rolls")


@pytest.mark.parametrize("name", list(REGIONAL_MODELS))
def test_leave_one_out_matches_r(regional: pd.DataFrame, name: str) -> None:
    predictors, weight = REGIONAL_MODELS[name]
    expected = reference("regional")["leave_one_out"][name]
    loo = leave_one_out(regional, predictors, weight=weight, keep_not_estimable=True)
    assert loo["dropped_region"].tolist() == expected["dropped_region"]
    assert [status == "ok" or status.startswith("not estimable") for status in loo["status"]] == [
        status == "ok" for status in expected["status"]
    ]
    for column in ("estimate", "std_error", "p_value"):
        np.testing.assert_allclose(loo[column], _floats(expected[column]), rtol=RTOL, atol=0)
    se = _floats(expected["std_error"])
    for column in ("ci_lower", "ci_upper"):
        np.testing.assert_array_less(
            np.abs(loo[column] - _floats(expected[column])), RTOL * np.maximum(np.abs(_floats(expected[column])), se)
        )
    np.testing.assert_allclose(
        loo["change"],
        _floats(expected["estimate"]) - expected["full_estimate"],
        rtol=0,
        atol=RTOL * np.abs(expected["full_estimate"]),
    )


def _ame_check(table: pd.DataFrame, expected: dict[str, Any]) -> None:
    assert table["term"].tolist() == expected["terms"]
    assert table["averaging"].unique().tolist() == [expected["averaging"]]
    se = _floats(expected["std_error_pp"])
    np.testing.assert_allclose(table["ame_pp"], _floats(expected["ame_pp"]), rtol=RTOL, atol=0)
    np.testing.assert_allclose(table["std_error_pp"], se, rtol=RTOL, atol=0)
    np.testing.assert_allclose(table["p_value"], _floats(expected["p_value"]), rtol=RTOL, atol=0)
    for column in ("ci_lower_pp", "ci_upper_pp"):
        np.testing.assert_array_less(
            np.abs(table[column] - _floats(expected[column])), RTOL * np.maximum(np.abs(_floats(expected[column])), se)
        )


@pytest.mark.parametrize("key", list(reference("regional")["average_marginal_effects"]))
def test_regional_average_marginal_effects_match_r(regional: pd.DataFrame, key: str) -> None:
    """R: delta method with a numDeriv (Richardson) jacobian of the AME in the coefficients, HC3 covariance,
    t(n - k); averaging weights are posts (races) or the electorate of each fitted region."""
    expected = reference("regional")["average_marginal_effects"][key]
    predictors, weight = REGIONAL_MODELS[expected["model"]]
    fit = fit_regional_fractional_logit(regional, predictors, weight=weight)
    averaging = expected["averaging_weight"]
    weights = None
    if averaging is not None:
        weights = regional.set_index("region").loc[fit.extra["regions"], averaging].to_numpy(float)
    _ame_check(inference.average_marginal_effects(fit, averaging_weights=weights, keep_not_estimable=True), expected)


@pytest.mark.parametrize("name", ["main_unweighted", "main_weighted"])
def test_prediction_curve_matches_r(regional: pd.DataFrame, name: str) -> None:
    """Fitted turnout (%) and its HC3 t band on the 60-point grid the regional notebook uses."""
    expected = reference("regional")["prediction_curve"][name]
    predictors, weight = REGIONAL_MODELS[name]
    fit = fit_regional_fractional_logit(regional, predictors, weight=weight)
    grid = np.linspace(regional["cands_per_seat"].min(), regional["cands_per_seat"].max(), 60)
    np.testing.assert_allclose(grid, expected["x"], rtol=1e-14, atol=0)
    curve = prediction_curve(fit, "cands_per_seat", grid)
    for column in ("fit", "lower", "upper"):
        np.testing.assert_allclose(curve[column], expected[column], rtol=RTOL, atol=0)


# --------------------------------------------------------------------------------------------------------------
# 5. Race-level binomial GLM with region fixed effects (R: glm + sandwich::vcovCL)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def race_glm(races: pd.DataFrame) -> inference.FitResult:
    return race.fit_race_glm(races, FE_RHS)


def test_race_glm_clustered_matches_r(race_glm: inference.FitResult) -> None:
    """Clustered covariance with the small-sample factor G / (G - 1) * (N - 1) / (N - K) = 14/13 * 729/713
    (statsmodels' cov_type="cluster"; R: vcovCL(type = "HC1", cadjust = TRUE)); t inference with G - 1 = 13 df."""
    expected = reference("race_glm")
    n, g, k = 730, 14, 17
    assert expected["n_obs"] == n and expected["n_clusters"] == g
    assert math.isclose(expected["small_sample_factor"], g / (g - 1) * (n - 1) / (n - k), rel_tol=1e-15)
    assert race_glm.n_clusters == g
    assert_coefficients(race_glm, expected["cluster"])
    np.testing.assert_allclose(race_glm.extra["pearson_dispersion"], expected["pearson_dispersion"], rtol=RTOL)


def test_race_glm_naive_matches_r(races: pd.DataFrame) -> None:
    """Model-based binomial covariance (dispersion 1), normal inference."""
    expected = reference("race_glm")["naive"]
    assert expected["distribution"] == "normal"
    assert_coefficients(race.fit_race_naive_binomial(races, FE_RHS), expected)


@pytest.mark.parametrize(("key", "electorate_weighted"), [("unweighted", False), ("electorate_weighted", True)])
def test_race_average_marginal_effects_match_r(
    race_glm: inference.FitResult, key: str, electorate_weighted: bool
) -> None:
    expected = reference("race_glm")["average_marginal_effects"][key]
    table = race.race_average_marginal_effects(race_glm, MIX_TERMS, electorate_weighted=electorate_weighted)
    _ame_check(table, expected)


# --------------------------------------------------------------------------------------------------------------
# 6. GEE, binomial, exchangeable by region (R: geepack::geeglm; Mancl-DeRouen written out in R)
# --------------------------------------------------------------------------------------------------------------

GEE_FORMULAS = {"without_region_dummies": MIX_RHS, "with_region_dummies": FE_RHS}


def _pearson_sums(races: pd.DataFrame, params: np.ndarray, rhs: str) -> tuple[float, float, int]:
    """Sum of squared Pearson residuals, sum of within-region cross products over pairs, and N - p."""
    exog, _ = build_design(races, rhs)
    mu = 1 / (1 + np.exp(-exog @ params))
    resid = pd.Series((races["voted"] / races["registered"] - mu) / np.sqrt(mu * (1 - mu)))
    by_region = resid.groupby(races["region"])
    cross = float(((by_region.sum() ** 2 - (resid**2).groupby(races["region"]).sum()) / 2).sum())
    return float((resid**2).sum()), cross, len(races) - exog.shape[1]


@pytest.mark.parametrize("key", list(GEE_FORMULAS))
def test_gee_robust_matches_geepack_with_the_statsmodels_correlation(races: pd.DataFrame, key: str) -> None:
    """Estimates and robust (sandwich) SEs of ``fit_race_gee(cov_type="robust")`` against geepack at 1e-6.

    geepack and statsmodels estimate the exchangeable correlation with different moment estimators (Pearson
    residuals r, N races, p mean parameters, P = sum_g n_g (n_g - 1) / 2 within-region pairs):

    * geepack:     phi = sum r^2 / N,       alpha = sum_pairs r_j r_k / (phi P)
    * statsmodels: phi = sum r^2 / (N - p), alpha = sum_pairs r_j r_k / (phi (P - p))

    so statsmodels' alpha is P (N - p) / (N (P - p)) times geepack's at the same estimates (about 0.977 with
    region dummies, 0.995 without), and the two fits differ by about 1e-3 (relative) in estimates and SEs.
    What is comparable at 1e-6: the reference solves geepack's estimating equations with the correlation
    fixed (corstr = "fixed") at the statsmodels estimator, iterated to a joint fixed point. (The native geepack
    fit is checked in the next test.) CIs and p-values use t with 13 df in both.
    """
    expected = reference("race_gee")[key]["statsmodels_alpha"]
    fit = race.fit_race_gee(races, GEE_FORMULAS[key], cov_type="robust")
    np.testing.assert_allclose(fit.extra["exchangeable_correlation"], expected["alpha"], rtol=RTOL)
    assert_coefficients(fit, expected)
    ssr, cross, n_minus_p = _pearson_sums(races, fit.params.to_numpy(), GEE_FORMULAS[key])
    pairs = int(sum(n * (n - 1) // 2 for n in races.groupby("region").size()))
    p = len(races) - n_minus_p
    np.testing.assert_allclose(cross / (ssr / n_minus_p * (pairs - p)), expected["alpha"], rtol=RTOL)


@pytest.mark.parametrize("key", list(GEE_FORMULAS))
def test_native_geepack_fit_is_statsmodels_gee_at_geepack_correlation(races: pd.DataFrame, key: str) -> None:
    """geeglm's own fit, explained: its alpha is the geepack moment estimator at its estimates (1e-6), and
    statsmodels' GEE with the correlation held at that alpha (update_dep=False) reproduces geepack's estimates
    and robust SEs at 1e-6. The only difference between the two programs is thus the correlation estimator."""
    native = reference("race_gee")[key]["geepack"]
    rhs = GEE_FORMULAS[key]
    ssr, cross, _ = _pearson_sums(races, _floats(native["estimate"]), rhs)
    pairs = int(sum(n * (n - 1) // 2 for n in races.groupby("region").size()))
    np.testing.assert_allclose(cross / (ssr / len(races) * pairs), native["alpha"], rtol=RTOL)

    exog, names = build_design(races, rhs)
    groups = pd.factorize(races["region"], sort=True)[0]
    model = sm.GEE(
        races["voted"] / races["registered"],
        exog,
        groups=groups,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        update_dep=False,
    )
    model.cov_struct.dep_params = native["alpha"]
    result = model.fit(cov_type="robust", ctol=1e-10)
    assert names == native["terms"]
    np.testing.assert_allclose(result.params, _floats(native["estimate"]), rtol=RTOL, atol=0)
    np.testing.assert_allclose(result.bse, _floats(native["std_error"]), rtol=RTOL, atol=0)
    # and the two correlation estimators are indeed different
    assert abs(reference("race_gee")[key]["statsmodels_alpha"]["alpha"] / native["alpha"] - 1) > 1e-3


def test_mancl_derouen_without_region_dummies_matches_statsmodels_and_r(races: pd.DataFrame) -> None:
    """Case (a), no region dummies: I - H_gg is invertible (smallest relative singular value > 0.5 in every
    region). ``mancl_derouen_cov`` equals statsmodels' ``cov_type="bias_reduced"`` at 1e-8 and R's
    direct-inverse and generalized-inverse versions at 1e-6; so does the project's default GEE fit."""
    import statsmodels.api as sm

    expected = reference("race_gee")["without_region_dummies"]
    assert min(expected["mancl_derouen_ginv"]["smallest_relative_singular_value"]) > 0.5
    fit = race.fit_race_gee(races, MIX_RHS)  # cov_type="bias_reduced" is the default
    cov = mancl_derouen_cov(fit.raw)
    np.testing.assert_allclose(fit.cov_params.to_numpy(), cov, rtol=1e-12)
    model = fit.raw.model
    statsmodels_cov = np.asarray(
        sm.GEE(
            model.endog,
            model.exog,
            groups=model.groups,
            family=sm.families.Binomial(),
            cov_struct=sm.cov_struct.Exchangeable(),
        )
        .fit(cov_type="bias_reduced")
        .cov_params()
    )
    np.testing.assert_allclose(cov, statsmodels_cov, rtol=1e-8, atol=1e-8 * np.abs(statsmodels_cov).max())
    for version in ("mancl_derouen_solve", "mancl_derouen_ginv"):
        reference_cov = np.array(expected[version]["cov"])
        np.testing.assert_allclose(cov, reference_cov, rtol=RTOL, atol=RTOL * np.abs(reference_cov).max())
    assert_coefficients(fit, expected["mancl_derouen_ginv"])


def test_mancl_derouen_with_region_dummies_matches_r_generalized_inverse(races: pd.DataFrame) -> None:
    """Case (b), region dummies: each I - H_gg has one exact null direction (relative singular value about 1e-16;
    the next is above 0.5), so R inverts it with MASS::ginv (tolerance sqrt(eps)) and ``mancl_derouen_cov``
    with numpy.linalg.pinv at the same relative tolerance. Whole matrix at 1e-6; unchanged for any cut between
    1e-12 and 1e-2."""
    expected = reference("race_gee")["with_region_dummies"]["mancl_derouen_ginv"]
    assert max(expected["smallest_relative_singular_value"]) < 1e-12
    assert min(expected["second_smallest_relative_singular_value"]) > 0.5
    fit = race.fit_race_gee(races, FE_RHS)
    cov = mancl_derouen_cov(fit.raw)
    reference_cov = np.array(expected["cov"])
    np.testing.assert_allclose(cov, reference_cov, rtol=RTOL, atol=RTOL * np.abs(reference_cov).max())
    for rcond in (1e-12, 1e-2):
        np.testing.assert_allclose(mancl_derouen_cov(fit.raw, rcond=rcond), cov, rtol=1e-9, atol=0)
    assert pytest.approx(np.sqrt(np.finfo(float).eps)) == DEFAULT_RCOND


def test_project_bias_reduced_gee_with_region_dummies_matches_r(races: pd.DataFrame) -> None:
    """``fit_race_gee`` (bias-reduced by ``mancl_derouen_cov``) against R's ginv version: estimates, SEs, CIs and
    p-values of every term, dummies included, at 1e-6. (statsmodels' own ``bias_reduced`` solves the singular
    system directly: its intercept and dummy entries are rounding noise, 10 to 1e5 times too large.)"""
    expected = reference("race_gee")["with_region_dummies"]["mancl_derouen_ginv"]
    fit = race.fit_race_gee(races, FE_RHS)
    assert_coefficients(fit, expected)


# --------------------------------------------------------------------------------------------------------------
# 7. Beta regression (R: maximum likelihood written out, sandwich::vcovCL)
# --------------------------------------------------------------------------------------------------------------


def test_beta_regression_matches_r(races: pd.DataFrame) -> None:
    """Logit mean, log precision, Smithson-Verkuilen squeeze. Clustered covariance with statsmodels' factor
    G / (G - 1) * (N - 1) / (N - K), K = 18 (17 mean parameters and the precision): R's vcovCL(type = "HC1",
    cadjust = TRUE) on the same scores and Hessian. t inference with 13 df."""
    expected = reference("race_beta")
    n, g, k = 730, 14, 18
    assert math.isclose(expected["small_sample_factor"], g / (g - 1) * (n - 1) / (n - k), rel_tol=1e-15)
    fit = race.fit_race_beta(races, FE_RHS)
    assert fit.extra["n_boundary_squeezed"] == expected["n_boundary_squeezed"]
    assert_coefficients(fit, expected["cluster"])
    np.testing.assert_allclose(fit.raw.llf, expected["loglik"], rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# 8. Linear mixed model on the empirical logit (R: lme4::lmer, REML)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixedlm(races: pd.DataFrame) -> inference.FitResult:
    return race.fit_race_mixedlm(races, MIX_RHS)


def test_mixedlm_estimates_and_variance_components_match_lme4(mixedlm: inference.FitResult) -> None:
    """Fixed effects at relative 1e-6; variance components at relative 1e-4.

    The REML criterion is flat at its optimum: statsmodels' MixedLM stops about 1e-5 (relative) away from lme4
    in the between-region variance while the REML log-likelihoods agree to 1e-12 (checked here at 1e-10). lme4
    (bobyqa, rhoend 1e-12) and a direct 1-D optimize() of its REML criterion agree to 5e-8 in theta.
    """
    expected = reference("race_mixedlm")
    assert expected["reml"] is True
    assert list(mixedlm.params.index) == expected["fixed"]["terms"]
    np.testing.assert_allclose(mixedlm.params, _floats(expected["fixed"]["estimate"]), rtol=RTOL, atol=0)
    np.testing.assert_allclose(mixedlm.extra["group_variance"], expected["group_variance"], rtol=1e-4)
    np.testing.assert_allclose(mixedlm.extra["residual_variance"], expected["residual_variance"], rtol=1e-4)
    np.testing.assert_allclose(mixedlm.raw.llf, -expected["reml_criterion"] / 2, rtol=1e-10)
    np.testing.assert_allclose(expected["theta"], expected["theta_direct_optimize"], rtol=1e-6)


def test_mixedlm_standard_errors_are_observed_information_ones(mixedlm: inference.FitResult) -> None:
    """Which fixed-effect covariance each program reports, and what matches.

    lme4's vcov is sigma^2 (X' V~^-1 X)^-1, the GLS covariance with the variance components treated as known;
    statsmodels' MixedLM inverts the observed Hessian of the REML log-likelihood in (fixed effects, variance
    parameters), whose cross block X' V^-1 (dV/dtheta) V^-1 r is zero only in expectation. The two differ here
    by up to 3e-4 (relative). The reference also holds the observed-information version (numDeriv Hessian of the
    REML log-likelihood at lme4's estimates); the project's SEs and CIs match it at relative 1e-4 (the variance
    components differ by about 1e-5, see above), and its p-values on the log scale at 1e-4 (a relative SE error e
    moves log p by about z^2 e; z is up to 11 here).
    """
    observed = reference("race_mixedlm")["fixed_observed_information"]
    lme4 = reference("race_mixedlm")["fixed"]
    np.testing.assert_allclose(mixedlm.bse, _floats(observed["std_error"]), rtol=1e-4)
    for ours, theirs in (("lower", "ci_lower"), ("upper", "ci_upper")):
        np.testing.assert_allclose(mixedlm.conf_int[ours], _floats(observed[theirs]), rtol=1e-4)
    np.testing.assert_allclose(np.log(mixedlm.pvalues), np.log(_floats(observed["p_value"])), rtol=1e-4)
    assert mixedlm.df_resid is None and observed["distribution"] == "normal"
    # the GLS covariance lme4 reports is a different quantity: it differs from the project's by more than 1e-4
    assert np.max(np.abs(mixedlm.bse.to_numpy() / _floats(lme4["std_error"]) - 1)) > 1e-4


def test_lme4_covariance_is_gls_at_its_variance_components(races: pd.DataFrame, mixedlm: inference.FitResult) -> None:
    """lme4's fixed effects and their covariance are the GLS ones at lme4's variance components (1e-8)."""
    expected = reference("race_mixedlm")
    exog = mixedlm.raw.model.exog
    endog = np.log((races["voted"] + 0.5) / (races["registered"] - races["voted"] + 0.5)).to_numpy()
    xtvx, xtvy = 0.0, 0.0
    for _, rows in races.groupby("region").indices.items():
        n = len(rows)
        v = expected["residual_variance"] * np.eye(n) + expected["group_variance"] * np.ones((n, n))
        xtvx = xtvx + exog[rows].T @ np.linalg.solve(v, exog[rows])
        xtvy = xtvy + exog[rows].T @ np.linalg.solve(v, endog[rows])
    cov = np.linalg.inv(xtvx)
    np.testing.assert_allclose(cov @ xtvy, _floats(expected["fixed"]["estimate"]), rtol=1e-8)
    np.testing.assert_allclose(cov, np.array(expected["fixed"]["cov"]), rtol=1e-8)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        cov @ xtvy - z * np.sqrt(np.diag(cov)), _floats(expected["fixed"]["ci_lower"]), rtol=1e-8
    )
