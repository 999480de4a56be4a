"""Constants and formulas pinned to hand-computed values, so that a wrong constant fails at 1e-9, not 1e-2.

* The attenuation constant c = 16 sqrt(3) / (15 pi) of the population-averaged target and the target itself.
* The quantiles of every interval: t with the stated degrees of freedom (n - k for the regional model, G - 1 for
  clustered fits), normal where inference is normal; each compared with scipy's quantile at 1e-12 with the degrees
  of freedom asserted, and the quantile with a published table (to its 6 decimals).
* The sandwich covariances: HC0, HC1 = HC0 n / (n - k) and HC3 with each score divided by 1 - h_ii, against a short
  independent implementation at 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy import stats
from scipy.special import expit, logit

from akim_turnout.models import inference, race, regional
from akim_turnout.study import replications as study
from akim_turnout.study import simulate

# Published two-sided 95 % critical values (upper 2.5 % points), six decimals, as printed in t tables.
T_TABLE_975 = {3: 3.182446, 7: 2.364624, 10: 2.228139, 13: 2.160369}
Z_975 = 1.959964
# Zeger, Liang & Albert (1988): logit(p) with N(0, s^2) noise is about logit with slope / sqrt(1 + c^2 s^2).
ATTENUATION_C = 16 * math.sqrt(3) / (15 * math.pi)


# --------------------------------------------------------------------------------------------------------------
# Attenuation constant and the study's targets
# --------------------------------------------------------------------------------------------------------------


def test_attenuation_constant_by_hand() -> None:
    assert pytest.approx(0.5880842, abs=5e-8) == ATTENUATION_C
    assert pytest.approx(256 * 3 / (225 * math.pi**2), rel=1e-15) == ATTENUATION_C**2


@pytest.mark.parametrize("sd", [0.0, 0.35, 1.0, 3.0])
def test_population_averaged_coefficients_are_attenuated_by_the_constant(sd: float) -> None:
    settings = simulate.SimulationSettings.from_params(
        overdispersion_sd=sd, beta_cands=0.2, beta_self_share=-0.3, beta_women=0.1
    )
    factor = 1 / math.sqrt(1 + ATTENUATION_C**2 * sd**2)
    averaged = simulate.population_averaged_coefficients(settings)
    assert averaged.name == "population_averaged"
    assert list(averaged.index) == ["np.log(n_candidates)", "self_share", "any_woman"]
    np.testing.assert_allclose(averaged.to_numpy(), np.array([0.2, -0.3, 0.1]) * factor, rtol=1e-12, atol=0)


def test_study_targets_by_hand() -> None:
    """The default simulation (overdispersion SD 0.56, beta_self_share -0.3): the population-averaged target is
    -0.3 / sqrt(1 + c^2 0.56^2) = -0.284946...; MixedLM targets the conditional -0.3 itself."""
    settings = simulate.SimulationSettings.from_params()
    expected = -0.3 / math.sqrt(1 + (ATTENUATION_C * 0.56) ** 2)
    assert expected == pytest.approx(-0.2849456, abs=5e-8)
    for method in ("cluster_t", "wild_bootstrap", "gee_bias_reduced", "naive_binomial"):
        assert study.method_target(method, settings) == pytest.approx(expected, rel=1e-12)
    assert study.method_target("mixedlm", settings) == -0.3


# --------------------------------------------------------------------------------------------------------------
# Quantiles and their degrees of freedom
# --------------------------------------------------------------------------------------------------------------


def test_t_quantiles_match_the_published_table() -> None:
    for df, value in T_TABLE_975.items():
        assert stats.t.ppf(0.975, df) == pytest.approx(value, abs=5e-7)
    assert stats.norm.ppf(0.975) == pytest.approx(Z_975, abs=5e-7)


@pytest.fixture(scope="module")
def regional_fit(regions: pd.DataFrame) -> inference.FitResult:
    return regional.fit_regional_fractional_logit(regions, ["posts"])


def test_regional_fit_uses_t_with_n_minus_k_df(regional_fit: inference.FitResult) -> None:
    assert regional_fit.n_obs == 12 and regional_fit.df_resid == 10 and regional_fit.use_t
    half = (regional_fit.conf_int["upper"] - regional_fit.params) / regional_fit.bse
    lower = (regional_fit.params - regional_fit.conf_int["lower"]) / regional_fit.bse
    np.testing.assert_allclose(half, stats.t.ppf(0.975, 10), rtol=1e-12)
    np.testing.assert_allclose(lower, T_TABLE_975[10], atol=5e-7)
    np.testing.assert_allclose(
        regional_fit.pvalues, 2 * stats.t.sf(np.abs(regional_fit.params / regional_fit.bse), 10), rtol=1e-12
    )


def test_clustered_race_fit_uses_t_with_clusters_minus_one_df(regions: pd.DataFrame) -> None:
    races = simulate.simulate_races(regions, NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=1)
    fit = race.fit_race_glm(races, "np.log(n_candidates) + self_share + any_woman")
    assert fit.df_resid == 13 and fit.n_clusters == 14
    np.testing.assert_allclose((fit.conf_int["upper"] - fit.params) / fit.bse, stats.t.ppf(0.975, 13), rtol=1e-12)
    naive = race.fit_race_naive_binomial(races, "self_share")
    assert naive.df_resid is None and not naive.use_t
    np.testing.assert_allclose((naive.conf_int["upper"] - naive.params) / naive.bse, stats.norm.ppf(0.975), rtol=1e-12)
    np.testing.assert_allclose(naive.pvalues, 2 * stats.norm.sf(np.abs(naive.params / naive.bse)), rtol=1e-12)


def test_average_marginal_effect_by_hand_with_t_quantile(regional_fit: inference.FitResult) -> None:
    """AME = mean(mu (1 - mu)) b (percentage points); delta-method SE with gradient
    d/db_j [mean(mu (1 - mu)) b_k] = mean(mu (1 - mu) (1 - 2 mu) x_j) b_k + [j = k] mean(mu (1 - mu));
    CI with t(10), p-value from t(10)."""
    table = inference.average_marginal_effects(regional_fit).set_index("term")
    assert list(table.index) == ["posts"]
    exog = regional_fit.raw.model.exog
    b = regional_fit.params.to_numpy()
    mu = expit(exog @ b)
    density = mu * (1 - mu)
    ame = density.mean() * b[1]
    gradient = (density * (1 - 2 * mu)) @ exog / len(mu) * b[1] + np.array([0.0, density.mean()])
    se = math.sqrt(gradient @ regional_fit.cov_params.to_numpy() @ gradient)
    q = stats.t.ppf(0.975, 10)
    row = table.loc["posts"]
    assert row["ame_pp"] == pytest.approx(100 * ame, rel=1e-12)
    assert row["std_error_pp"] == pytest.approx(100 * se, rel=1e-10)
    assert row["ci_lower_pp"] == pytest.approx(100 * (ame - q * se), rel=1e-10)
    assert row["ci_upper_pp"] == pytest.approx(100 * (ame + q * se), rel=1e-10)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(ame / se), 10), rel=1e-9)
    assert row["model"] == "regional_fractional_logit" and row["averaging"] == "unweighted"
    at_90 = inference.average_marginal_effects(regional_fit, alpha=0.10).set_index("term").loc["posts"]
    assert (at_90["ci_upper_pp"] - at_90["ame_pp"]) / at_90["std_error_pp"] == pytest.approx(
        stats.t.ppf(0.95, 10), rel=1e-12
    )


def test_weighted_average_marginal_effect_by_hand(regional_fit: inference.FitResult) -> None:
    weights = np.arange(1.0, 13.0)
    table = inference.average_marginal_effects(regional_fit, averaging_weights=weights).set_index("term")
    mu = expit(regional_fit.raw.model.exog @ regional_fit.params.to_numpy())
    expected = np.average(mu * (1 - mu), weights=weights) * regional_fit.params["posts"]
    assert table.at["posts", "ame_pp"] == pytest.approx(100 * expected, rel=1e-12)
    assert table.at["posts", "averaging"] == "weighted"


def test_normal_fit_gives_normal_ame_intervals(regions: pd.DataFrame) -> None:
    races = simulate.simulate_races(regions, NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=1)
    naive = race.fit_race_naive_binomial(races, "self_share")
    row = inference.average_marginal_effects(naive).iloc[0]
    assert (row["ci_upper_pp"] - row["ame_pp"]) / row["std_error_pp"] == pytest.approx(stats.norm.ppf(0.975), rel=1e-12)


def test_prediction_curve_band_by_hand(regional_fit: inference.FitResult) -> None:
    """Band on the logit scale: x'b -+ t(0.975, 10) sqrt(x' V x), mapped back to percent."""
    grid = np.array([5.0, 40.0, 120.0])
    curve = regional.prediction_curve(regional_fit, "posts", grid)
    assert curve.columns.tolist() == ["x", "fit", "lower", "upper"]
    design = np.column_stack([np.ones(3), grid])
    linear = design @ regional_fit.params.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", design, regional_fit.cov_params.to_numpy(), design))
    q = stats.t.ppf(0.975, 10)
    np.testing.assert_allclose(curve["x"], grid, rtol=0, atol=0)
    np.testing.assert_allclose(curve["fit"], 100 * expit(linear), rtol=1e-12)
    np.testing.assert_allclose(logit(curve["upper"] / 100), linear + q * se, rtol=1e-9)
    np.testing.assert_allclose(logit(curve["lower"] / 100), linear - q * se, rtol=1e-9)
    at_80 = regional.prediction_curve(regional_fit, "posts", grid, alpha=0.2)
    np.testing.assert_allclose(logit(at_80["upper"] / 100), linear + stats.t.ppf(0.9, 10) * se, rtol=1e-9)


def test_prediction_curve_refuses_other_designs(regions: pd.DataFrame) -> None:
    two = regional.fit_regional_fractional_logit(regions, ["posts", "np.log(cands)"])
    with pytest.raises(
        ValueError,
        match=r"^prediction_curve needs a fit on exactly \['Intercept', 'posts'\], got "
        r"\['Intercept', 'posts', 'np.log\(cands\)'\]$",
    ):
        regional.prediction_curve(two, "posts", np.array([1.0]))


def _fit_with(df_resid: float | None, estimate: float = -0.2, se: float = 0.1) -> inference.FitResult:
    params = pd.Series({"Intercept": 0.5, "self_share": estimate})
    bse = pd.Series({"Intercept": 0.05, "self_share": se})
    return inference.FitResult(
        name="hand",
        family="binomial",
        formula="y ~ self_share",
        params=params,
        bse=bse,
        conf_int=pd.DataFrame({"lower": params - 1, "upper": params + 1}),
        pvalues=pd.Series({"Intercept": 0.1, "self_share": 0.042}),
        n_obs=100,
        n_clusters=8,
        cov_type="cluster",
        use_t=df_resid is not None,
        df_resid=df_resid,
        warnings=(),
        extra={},
    )


@pytest.mark.parametrize(("df", "quantile"), [(7, 2.364624), (13, 2.160369), (None, 1.959964)])
def test_study_wald_interval_uses_t_with_the_fit_df(df, quantile) -> None:
    """The study's coverage: estimate -+ q se with q = t(0.975, df) (t(7) = 2.365, not 1.96)."""
    q = stats.t.ppf(0.975, df) if df is not None else stats.norm.ppf(0.975)
    assert q == pytest.approx(quantile, abs=5e-7)
    out = study._wald(_fit_with(df), target=-0.25, alpha=0.05)
    assert out["estimate"] == -0.2 and out["se"] == 0.1
    assert out["ci_low"] == pytest.approx(-0.2 - q * 0.1, rel=1e-12)
    assert out["ci_high"] == pytest.approx(-0.2 + q * 0.1, rel=1e-12)
    assert out["p_value"] == 0.042 and out["covered"] is True
    assert out["converged"] is True and out["n_warnings"] == 0


def test_study_wald_coverage_at_the_interval_edge() -> None:
    """A target 2.2 SEs away is inside the t(7) interval (half-width 2.365 SE) but outside a normal one (1.96)."""
    assert study._wald(_fit_with(7), target=-0.2 + 2.2 * 0.1, alpha=0.05)["covered"] is True
    assert study._wald(_fit_with(None), target=-0.2 + 2.2 * 0.1, alpha=0.05)["covered"] is False
    assert study._wald(_fit_with(7), target=-0.2 - 2.2 * 0.1, alpha=0.05)["covered"] is True
    assert study._wald(_fit_with(7), target=-0.2 + 2.2 * 0.1, alpha=0.10)["covered"] is False  # t(0.95, 7) = 1.895
    at_90 = study._wald(_fit_with(7), target=0.0, alpha=0.10)
    assert at_90["ci_high"] == pytest.approx(-0.2 + stats.t.ppf(0.95, 7) * 0.1, rel=1e-12)


def test_study_wald_reads_convergence_from_warnings_and_flags() -> None:
    warned = _fit_with(7)
    object.__setattr__(warned, "warnings", ("ConvergenceWarning: did not converge", "UserWarning: x"))
    out = study._wald(warned, target=0.0, alpha=0.05)
    assert out["converged"] is False and out["n_warnings"] == 2
    flagged = _fit_with(7)
    object.__setattr__(flagged, "extra", {"converged": False})
    assert study._wald(flagged, target=0.0, alpha=0.05)["converged"] is False
    converged = _fit_with(7)
    object.__setattr__(converged, "extra", {"converged": True})
    assert study._wald(converged, target=0.0, alpha=0.05)["converged"] is True


# --------------------------------------------------------------------------------------------------------------
# Sandwich covariances and the leverage correction
# --------------------------------------------------------------------------------------------------------------


def hand_sandwiches(share: np.ndarray, design: np.ndarray, params: np.ndarray) -> dict[str, np.ndarray]:
    """HC0, HC1 and HC3 for a fractional logit, written out: H = X' W X, s_i = (y_i - mu_i) x_i,
    h_ii = w_i x_i' H^-1 x_i; HC1 = HC0 n / (n - k); HC3 divides each s_i by 1 - h_ii."""
    mu = expit(design @ params)
    w = mu * (1 - mu)
    bread = np.linalg.inv(design.T @ (design * w[:, None]))
    scores = design * (share - mu)[:, None]
    leverage = w * np.einsum("ij,jk,ik->i", design, bread, design)
    n, k = design.shape
    hc0 = bread @ scores.T @ scores @ bread
    corrected = scores / (1 - leverage)[:, None]
    return {"HC0": hc0, "HC1": hc0 * n / (n - k), "HC3": bread @ corrected.T @ corrected @ bread, "leverage": leverage}


@pytest.fixture(scope="module")
def small_glm():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 2))
    design = sm.add_constant(x)
    share = expit(0.3 + 0.8 * x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 0.4, 9))
    return share, design, sm.GLM(share, design, family=sm.families.Binomial()).fit(tol=1e-14)


@pytest.mark.parametrize("kind", ["HC0", "HC1", "HC3"])
def test_sandwich_covariances_by_hand(small_glm, kind: str) -> None:
    share, design, raw = small_glm
    expected = hand_sandwiches(share, design, np.asarray(raw.params))
    np.testing.assert_allclose(inference.glm_sandwich_cov(raw, kind), expected[kind], rtol=1e-10, atol=0)


def test_hc1_factor_and_hc3_leverage_by_hand(small_glm) -> None:
    share, design, raw = small_glm
    hc0, hc1 = inference.glm_sandwich_cov(raw, "HC0"), inference.glm_sandwich_cov(raw, "HC1")
    np.testing.assert_allclose(hc1, hc0 * 9 / 6, rtol=1e-14)
    leverage = hand_sandwiches(share, design, np.asarray(raw.params))["leverage"]
    assert leverage.sum() == pytest.approx(3.0, rel=1e-10)  # trace of the hat matrix = k
    np.testing.assert_allclose(raw.get_influence().hat_matrix_diag, leverage, rtol=1e-10)
    # HC3 is larger than HC0 by the leverage correction: SE ratio well above 1 with 9 observations and 3 columns
    ratio = np.sqrt(np.diag(inference.glm_sandwich_cov(raw, "HC3")) / np.diag(hc0))
    assert ratio.min() > 1.1


def test_sandwich_refuses_unknown_kind_and_leverage_one() -> None:
    design = np.column_stack([np.ones(4), [0.0, 0.0, 0.0, 1.0]])
    raw = sm.GLM(np.array([0.2, 0.4, 0.3, 0.7]), design, family=sm.families.Binomial()).fit()
    with pytest.raises(ValueError, match=r"^HC3 undefined: an observation has leverage 1$"):
        inference.glm_sandwich_cov(raw, "HC3")
    with pytest.raises(ValueError, match=r"^kind must be HC0, HC1 or HC3, got 'HC2'$"):
        inference.glm_sandwich_cov(raw, "HC2")


def test_regional_default_covariance_is_hc3_by_hand(regions: pd.DataFrame, regional_fit: inference.FitResult) -> None:
    """The regional model's default covariance is HC3 as labelled, not HC0 (about 45 % smaller SEs here)."""
    assert regional_fit.cov_type == "HC3"
    kept = regions.set_index("region").loc[regional_fit.extra["regions"]]
    design = np.column_stack([np.ones(len(kept)), kept["posts"]])
    expected = hand_sandwiches(kept["turnout_pct"].to_numpy() / 100, design, regional_fit.params.to_numpy())
    np.testing.assert_allclose(regional_fit.cov_params.to_numpy(), expected["HC3"], rtol=1e-8)
    np.testing.assert_allclose(regional_fit.bse.to_numpy(), np.sqrt(np.diag(expected["HC3"])), rtol=1e-8)
    assert regional_fit.extra["max_leverage"] == pytest.approx(expected["leverage"].max(), rel=1e-8)
    hc0 = regional.fit_regional_fractional_logit(regions, ["posts"], cov_type="HC0")
    assert hc0.cov_type == "HC0"
    np.testing.assert_allclose(hc0.cov_params.to_numpy(), expected["HC0"], rtol=1e-8)
    assert (hc0.bse["posts"] / regional_fit.bse["posts"]) < 0.8
