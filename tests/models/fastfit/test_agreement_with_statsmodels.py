"""The fast numpy paths (akim_turnout.models.fastfit) give statsmodels' numbers on the same data.

Every published number is rounded to 6 significant digits; the fast paths are pinned here to 1e-8 (relative, or
relative to the scale of the quantity where it can be near zero), and to exact equality for bootstrap p-values,
whose draws are the same.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy import stats

from akim_turnout.models import fastfit, race, resampling
from akim_turnout.models.inference import mancl_derouen_cov
from akim_turnout.models.regional import regional_arrays
from akim_turnout.study import montecarlo, simulate
from akim_turnout.study import replications as study

RTOL = 1e-8
REGIONAL_CSV = Path(__file__).parents[2] / "reference" / "inputs" / "regional_2021.csv"
TRUE_RHS = simulate.true_formula_rhs(simulate.SimulationSettings.from_params())
MIX_RHS = "np.log(n_candidates) + self_share + any_woman"
CASES = [  # (seed, settings): several seeds, effects and noise levels of the real design
    (0, simulate.SimulationSettings.from_params(beta_self_share=0.0)),
    (1, simulate.SimulationSettings.from_params(beta_self_share=-0.3)),
    (2, simulate.SimulationSettings.from_params(beta_self_share=-0.1, overdispersion_sd=0.1)),
    (3, simulate.SimulationSettings.from_params(beta_self_share=-0.2, overdispersion_sd=0.8, beta_women=0.5)),
]


@pytest.fixture(scope="module", params=range(len(CASES)), ids=[f"seed{s}" for s, _ in CASES])
def races(request: pytest.FixtureRequest, regions: pd.DataFrame) -> pd.DataFrame:
    seed, settings = CASES[request.param]
    return simulate.simulate_races(regions, NATIONAL_2021, settings, seed=seed)


@pytest.fixture(scope="module")
def near_separated(regions: pd.DataFrame) -> pd.DataFrame:
    """Every race of Mangystau at 100 % turnout but one vote: its dummy is about 8.4 on the logit scale."""
    races = simulate.simulate_races(regions, NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=4)
    region = races["region"] == "Mangystau"
    races.loc[region, "voted"] = races.loc[region, "registered"]
    races.loc[races.index[region][0], "voted"] -= 1
    return races


def assert_scaled_close(
    actual: np.ndarray, expected: np.ndarray, scale: float | np.ndarray, rtol: float = RTOL
) -> None:
    """|actual - expected| <= rtol * scale elementwise (scale: the quantity's size where entries can be near zero)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    difference = np.abs(actual - expected)
    assert np.all(difference <= rtol * np.asarray(scale)), f"max difference {np.max(difference):.3g}"


def assert_cov_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> None:
    """Covariances agree relative to sqrt(c_ii c_jj) (the correlation scale)."""
    expected = np.asarray(expected, float)
    diag = np.sqrt(np.diag(expected))
    assert_scaled_close(actual, expected, np.outer(diag, diag), rtol)


def _arrays(races: pd.DataFrame, rhs: str = TRUE_RHS) -> fastfit.RaceArrays:
    return fastfit.race_arrays(races, rhs)


# --------------------------------------------------------------------------
# Race data as arrays
# --------------------------------------------------------------------------


@pytest.mark.parametrize("rhs", [TRUE_RHS, MIX_RHS, "C(region) + self_share", "np.log(n_candidates) + C(any_woman)"])
def test_race_arrays_equal_prepare_races(races: pd.DataFrame, rhs: str) -> None:
    for frame in (races, races.sample(frac=1.0, random_state=1)):  # rows in any order
        arrays = fastfit.race_arrays(frame, rhs)
        data = fastfit.prepare_races(frame, rhs, "region", "voted", "registered", "test")
        np.testing.assert_array_equal(arrays.exog, data.exog)
        assert arrays.names == data.names
        np.testing.assert_array_equal(arrays.clusters, data.clusters)
        np.testing.assert_array_equal(arrays.voted, data.voted)
        np.testing.assert_array_equal(arrays.registered, data.registered)
        assert arrays.n_clusters == data.n_clusters


def test_race_arrays_hand_irregular_data_to_prepare_races(races: pd.DataFrame) -> None:
    gaps = races.copy()
    gaps.loc[gaps.index[:3], "self_share"] = np.nan
    arrays = fastfit.race_arrays(gaps, MIX_RHS)  # (C(region) with missing values trips design.drop_incomplete)
    assert len(arrays.voted) == len(races) - 3
    data = fastfit.prepare_races(gaps, MIX_RHS, "region", "voted", "registered", "test")
    np.testing.assert_array_equal(arrays.exog, data.exog)
    broken = races.assign(voted=races["registered"] + 1)
    with pytest.raises(ValueError, match="voted > registered"):
        fastfit.race_arrays(broken, TRUE_RHS)


def test_cluster_sums_follow_cluster_codes(races: pd.DataFrame) -> None:
    arrays = _arrays(races.sample(frac=1.0, random_state=2))
    values = np.arange(len(arrays.voted), dtype=float)
    np.testing.assert_allclose(
        arrays.cluster_sums(values), np.bincount(arrays.clusters, weights=values, minlength=arrays.n_clusters)
    )


# --------------------------------------------------------------------------
# Binomial GLM on counts
# --------------------------------------------------------------------------


def _check_glm(races: pd.DataFrame, rhs: str = TRUE_RHS) -> fastfit.CountsGLM:
    arrays = _arrays(races, rhs)
    fit = fastfit.fit_counts_glm(arrays)
    clustered = race.fit_race_glm(races, rhs)
    naive = race.fit_race_naive_binomial(races, rhs)
    assert_scaled_close(fit.params, clustered.params, clustered.bse.to_numpy())
    assert_scaled_close(fit.params, clustered.params, np.abs(clustered.params.to_numpy()))
    assert_cov_close(fit.cov_cluster, clustered.cov_params)
    assert_cov_close(fit.cov_naive, naive.cov_params)
    assert fit.df_resid_inference == clustered.df_resid == arrays.n_clusters - 1
    p, low, high = fastfit.t_inference(fit.params, fit.bse_cluster, fit.df_resid_inference)
    np.testing.assert_allclose(fit.bse_cluster, clustered.bse, rtol=RTOL)
    np.testing.assert_allclose(p, clustered.pvalues, rtol=RTOL)
    assert_scaled_close(low, clustered.conf_int["lower"], clustered.bse.to_numpy())
    assert_scaled_close(high, clustered.conf_int["upper"], clustered.bse.to_numpy())
    p, low, high = fastfit.normal_inference(fit.params, fit.bse_naive)
    np.testing.assert_allclose(p, naive.pvalues, rtol=RTOL)
    assert_scaled_close(low, naive.conf_int["lower"], naive.bse.to_numpy())
    return fit


def test_counts_glm_matches_fit_race_glm(races: pd.DataFrame) -> None:
    _check_glm(races)
    _check_glm(races, MIX_RHS)


def test_counts_glm_matches_statsmodels_cluster_covariance_directly(races: pd.DataFrame) -> None:
    arrays = _arrays(races)
    endog = np.column_stack([arrays.voted, arrays.registered - arrays.voted])
    raw = sm.GLM(endog, arrays.exog, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": arrays.clusters}, use_t=True
    )
    fit = fastfit.fit_counts_glm(arrays)
    assert_cov_close(fit.cov_cluster, raw.cov_params())
    np.testing.assert_allclose(
        fastfit.t_inference(fit.params, fit.bse_cluster, fit.df_resid_inference)[0], raw.pvalues, rtol=RTOL
    )


def test_counts_glm_near_separation(near_separated: pd.DataFrame) -> None:
    fit = _check_glm(near_separated)
    arrays = _arrays(near_separated)
    assert fit.params[arrays.names.index("C(region)[T.Mangystau]")] > 8
    assert fit.n_steps > 8


def test_counts_glm_declines_separation(near_separated: pd.DataFrame) -> None:
    separated = near_separated.assign(
        voted=np.where(near_separated["region"] == "Mangystau", near_separated["registered"], near_separated["voted"])
    )
    with pytest.raises(fastfit.FastPathDeclined, match=r"^linear predictor beyond \+-30 \(near-separation\)$"):
        fastfit.fit_counts_glm(_arrays(separated))
    with pytest.raises(fastfit.FastPathDeclined, match=r"^linear predictor beyond \+-30 \(near-separation\)$"):
        fastfit.fit_gee_exchangeable(_arrays(separated))
    # statsmodels does not converge either: Newton gives up and IRLS drifts off
    assert race.fit_race_glm(separated, TRUE_RHS).warnings


def test_inference_helpers_match_scipy() -> None:
    estimate, se = np.array([0.3, -1.2, 2.5e-3]), np.array([0.2, 0.4, 1e-3])
    p, low, high = fastfit.t_inference(estimate, se, 13, alpha=0.1)
    np.testing.assert_allclose(p, 2 * stats.t(13).sf(np.abs(estimate / se)), rtol=1e-14)
    np.testing.assert_allclose(high - estimate, stats.t(13).ppf(0.95) * se, rtol=1e-14)
    p, low, high = fastfit.normal_inference(estimate, se)
    np.testing.assert_allclose(p, 2 * stats.norm.sf(np.abs(estimate / se)), rtol=1e-14)
    np.testing.assert_allclose(estimate - low, stats.norm.ppf(0.975) * se, rtol=1e-14)


# --------------------------------------------------------------------------
# Wild cluster bootstrap
# --------------------------------------------------------------------------


def test_wild_weights_are_the_models_weights() -> None:
    assert set(fastfit.WILD_WEIGHTS) == set(resampling.WILD_WEIGHTS)
    for name, support in resampling.WILD_WEIGHTS.items():
        np.testing.assert_array_equal(fastfit.WILD_WEIGHTS[name], support)


@pytest.mark.parametrize(
    "term, null_value, weights, seed",
    [
        ("self_share", 0.0, "webb", 3),
        ("self_share", -0.25, "webb", 4),
        ("any_woman", 0.0, "rademacher", 5),
        ("np.log(n_candidates)", 0.3, "webb", 6),
    ],
)
def test_score_bootstrap_matches_wild_cluster_bootstrap(
    races: pd.DataFrame, term: str, null_value: float, weights: str, seed: int
) -> None:
    reference = resampling.wild_cluster_bootstrap(
        races, TRUE_RHS, term, n_boot=199, seed=seed, weights=weights, null_value=null_value, ci=False
    )
    arrays = _arrays(races)
    draws = fastfit.wild_weight_draws(seed, 199, arrays.n_clusters, weights)
    fit = fastfit.fit_counts_glm(arrays)
    statistic, p_value = fastfit.score_bootstrap(arrays, arrays.names.index(term), null_value, draws, fit.params)
    assert p_value == reference.p_value
    np.testing.assert_allclose(statistic, reference.statistic, rtol=RTOL)
    np.testing.assert_allclose(fit.params[arrays.names.index(term)], reference.estimate, rtol=RTOL)


def test_score_bootstrap_influence_matches(races: pd.DataFrame) -> None:
    arrays = _arrays(races)
    k = arrays.names.index("self_share")
    fit = race.fit_race_glm(races, TRUE_RHS)
    boot = resampling._ScoreBootstrap(
        np.column_stack([arrays.voted, arrays.registered - arrays.voted]),
        arrays.exog,
        arrays.clusters,
        arrays.n_clusters,
        k,
        np.ones((1, arrays.n_clusters)),
        "newton",
    )
    expected = resampling._restricted_cluster_influence(boot, -0.1, fit.params.to_numpy())
    actual = fastfit.restricted_cluster_influence(arrays, k, -0.1, fit.params.to_numpy())
    assert_scaled_close(actual, expected, np.max(np.abs(expected)))


def test_score_bootstrap_near_separation(near_separated: pd.DataFrame) -> None:
    reference = resampling.wild_cluster_bootstrap(near_separated, TRUE_RHS, "self_share", n_boot=99, seed=1, ci=False)
    arrays = _arrays(near_separated)
    draws = fastfit.wild_weight_draws(1, 99, arrays.n_clusters)
    statistic, p_value = fastfit.score_bootstrap(
        arrays, arrays.names.index("self_share"), 0.0, draws, fastfit.fit_counts_glm(arrays).params
    )
    assert p_value == reference.p_value
    np.testing.assert_allclose(statistic, reference.statistic, rtol=RTOL)


# --------------------------------------------------------------------------
# GEE and its bias-reduced covariance
# --------------------------------------------------------------------------


def _statsmodels_gee(arrays: fastfit.RaceArrays, cov_type: str = "robust"):
    model = sm.GEE(
        arrays.voted / arrays.registered,
        arrays.exog,
        groups=arrays.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    return model.fit(cov_type=cov_type)


def test_gee_matches_fit_race_gee(races: pd.DataFrame) -> None:
    reference = race.fit_race_gee(races, TRUE_RHS)
    arrays = _arrays(races)
    fit = fastfit.fit_gee_exchangeable(arrays)
    assert_scaled_close(fit.params, reference.params, reference.bse.to_numpy())
    assert_scaled_close(fit.params, reference.params, np.abs(reference.params.to_numpy()))
    np.testing.assert_allclose(fit.dep_param, reference.extra["exchangeable_correlation"], rtol=RTOL)
    assert fit.n_steps == len(reference.raw.fit_history["params"])
    assert_cov_close(fit.cov_bias_reduced, reference.cov_params)
    p, low, high = fastfit.t_inference(fit.params, np.sqrt(np.diag(fit.cov_bias_reduced)), arrays.n_clusters - 1)
    np.testing.assert_allclose(p, reference.pvalues, rtol=RTOL)
    assert_scaled_close(low, reference.conf_int["lower"], reference.bse.to_numpy())


def test_mancl_derouen_on_statsmodels_estimates(races: pd.DataFrame) -> None:
    """Same estimates and correlation in, same covariance out: isolates the covariance from the fit."""
    arrays = _arrays(races)
    raw = _statsmodels_gee(arrays)
    dep = float(np.ravel(raw.cov_struct.dep_params)[0])
    assert_cov_close(fastfit.mancl_derouen(arrays, np.asarray(raw.params), dep), mancl_derouen_cov(raw))


@pytest.mark.parametrize("seed", [3, 7])
def test_mancl_derouen_without_region_dummies_is_statsmodels_bias_reduced(regions: pd.DataFrame, seed: int) -> None:
    """Without a dummy per cluster I - H_gg is invertible and statsmodels' own bias-reduced covariance applies."""
    races = simulate.simulate_races(regions, NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=seed)
    arrays = _arrays(races, MIX_RHS)
    fit = fastfit.fit_gee_exchangeable(arrays)
    raw = _statsmodels_gee(arrays, cov_type="bias_reduced")
    assert_scaled_close(fit.params, raw.params, raw.bse)
    assert_cov_close(fit.cov_bias_reduced, raw.cov_params())


def test_gee_declines_where_statsmodels_does_not_converge(regions: pd.DataFrame) -> None:
    """Without region dummies and with little race noise the working correlation is estimated near 1 and above:
    statsmodels iterates on (and ends in NaN, overflowing); the fast path declines at its first correlation update.

    Seed 10 of these settings is such a data set (found once; most seeds give a correlation just above 1 with which
    statsmodels still converges, and the fast path declines those too)."""
    settings = simulate.SimulationSettings.from_params(beta_self_share=-0.1, overdispersion_sd=0.1)
    races = simulate.simulate_races(regions, NATIONAL_2021, settings, seed=10)
    arrays = _arrays(races, MIX_RHS)
    with pytest.warns(RuntimeWarning):  # overflow in exp, then invalid values
        raw = _statsmodels_gee(arrays)
    assert not raw.converged
    assert np.all(np.isnan(np.asarray(raw.params)))
    with pytest.raises(fastfit.FastPathDeclined, match=r"^working correlation 1\.00635\d+ outside \(-1, 1\)$"):
        fastfit.fit_gee_exchangeable(arrays)


@pytest.fixture(scope="module")
def small_clusters(regions: pd.DataFrame) -> pd.DataFrame:
    """50 races in 14 regions, one to six per region: Atyrau and Mangystau hold one race each."""
    base = simulate.allocate_region_margins(regions, NATIONAL_2021)
    return simulate.simulate_from_margins(
        study.design_margins(base, 14, 50), simulate.SimulationSettings.from_params(party_placement="random"), 2
    )


def test_mancl_derouen_small_clusters_use_the_direct_path(small_clusters: pd.DataFrame) -> None:
    """One to six races per region: every cluster is no larger than its basis and is computed directly."""
    arrays = _arrays(small_clusters)
    sizes = arrays.cluster_sizes
    assert sizes.min() == 1 and sizes.max() <= 6  # within the basis of 2 (1 + 3 varying columns) + 1 = 9 or less
    raw = _statsmodels_gee(arrays)
    dep = float(np.ravel(raw.cov_struct.dep_params)[0])
    assert_cov_close(fastfit.mancl_derouen(arrays, np.asarray(raw.params), dep), mancl_derouen_cov(raw))


def test_mancl_derouen_one_race_clusters_add_nothing(small_clusters: pd.DataFrame) -> None:
    """A region with one race and its own dummy: H_gg = 1, so I - H_gg and the residual are both rounding noise
    (about 4e-16 and 1e-16 here). Their ratio once made the fast and the reference covariances differ by 1.29 times
    sqrt(c_ii c_jj) (Atyrau's dummy); with singular values cut relative to max(1, largest) both drop the cluster,
    which is the exact value: the covariance built from the other clusters' adjusted scores alone (each by
    least squares, minimum-norm)."""
    arrays = _arrays(small_clusters)
    singles = np.flatnonzero(arrays.cluster_sizes == 1)
    assert [arrays.names[g] for g in singles] == ["C(region)[T.Atyrau]", "C(region)[T.Mangystau]"]
    raw = _statsmodels_gee(arrays)
    dep = float(np.ravel(raw.cov_struct.dep_params)[0])
    params = np.asarray(raw.params)
    mu = 1 / (1 + np.exp(-arrays.exog @ params))
    bread_parts, blocks = [], []
    for g in range(arrays.n_clusters):
        rows = arrays.clusters == g
        v = mu[rows] * (1 - mu[rows])
        deriv = arrays.exog[rows] * v[:, None]
        working = np.full((rows.sum(), rows.sum()), dep)
        np.fill_diagonal(working, 1.0)
        vinv_deriv = np.linalg.solve(working * np.sqrt(np.outer(v, v)), deriv)
        bread_parts.append(deriv.T @ vinv_deriv)
        blocks.append((deriv, vinv_deriv, arrays.share[rows] - mu[rows]))
    bread = np.linalg.inv(sum(bread_parts))
    meat = np.zeros_like(bread)
    for g, (deriv, vinv_deriv, resid) in enumerate(blocks):
        if g in singles:
            assert abs(1 - (deriv @ bread @ vinv_deriv.T)[0, 0]) < 1e-14 and abs(resid[0]) < 1e-14
            continue
        adjusted = np.linalg.lstsq(np.eye(len(resid)) - deriv @ bread @ vinv_deriv.T, resid, rcond=1e-10)[0]
        score = vinv_deriv.T @ adjusted
        meat += np.outer(score, score)
    expected = bread @ meat @ bread
    assert_cov_close(mancl_derouen_cov(raw), expected)
    assert_cov_close(fastfit.mancl_derouen(arrays, params, dep), expected)


def test_mancl_derouen_larger_design(regions: pd.DataFrame) -> None:
    base = simulate.allocate_region_margins(regions, NATIONAL_2021)
    races = simulate.simulate_from_margins(
        study.design_margins(base, 28, 1460), simulate.SimulationSettings.from_params(), 5
    )
    reference = race.fit_race_gee(races, TRUE_RHS)
    fit = fastfit.fit_gee_exchangeable(_arrays(races))
    assert_scaled_close(fit.params, reference.params, reference.bse.to_numpy())
    assert_cov_close(fit.cov_bias_reduced, reference.cov_params)


def test_gee_near_separation(near_separated: pd.DataFrame) -> None:
    reference = race.fit_race_gee(near_separated, TRUE_RHS)
    fit = fastfit.fit_gee_exchangeable(_arrays(near_separated))
    assert_scaled_close(fit.params, reference.params, reference.bse.to_numpy())
    assert_cov_close(fit.cov_bias_reduced, reference.cov_params)


# --------------------------------------------------------------------------
# Linear mixed model (REML, random region intercepts)
# --------------------------------------------------------------------------


def test_random_intercept_reml_matches_fit_race_mixedlm(races: pd.DataFrame) -> None:
    reference = race.fit_race_mixedlm(races, MIX_RHS)
    assert not reference.warnings
    arrays = _arrays(races, MIX_RHS)
    fit = fastfit.fit_random_intercept_reml(arrays, fastfit.empirical_logit(arrays.voted, arrays.registered))
    np.testing.assert_array_equal(
        fastfit.empirical_logit(arrays.voted, arrays.registered), race.empirical_logit(arrays.voted, arrays.registered)
    )
    assert_scaled_close(fit.params, reference.params, np.abs(reference.params.to_numpy()))
    assert_cov_close(fit.cov_params, reference.cov_params)
    np.testing.assert_allclose(fit.group_variance, reference.extra["group_variance"], rtol=RTOL)
    np.testing.assert_allclose(fit.residual_variance, reference.extra["residual_variance"], rtol=RTOL)
    p, low, _ = fastfit.normal_inference(fit.params, np.sqrt(np.diag(fit.cov_params)))
    np.testing.assert_allclose(p, reference.pvalues, rtol=RTOL)
    assert_scaled_close(low, reference.conf_int["lower"], reference.bse.to_numpy())


def test_random_intercept_reml_stops_where_statsmodels_stops(races: pd.DataFrame) -> None:
    """statsmodels' BFGS stops short of the exact REML maximum; the replay stops at the same point."""
    arrays = _arrays(races, MIX_RHS)
    y = fastfit.empirical_logit(arrays.voted, arrays.registered)
    raw = sm.MixedLM(y, arrays.exog, groups=arrays.clusters).fit(reml=True)
    fit = fastfit.fit_random_intercept_reml(arrays, y)
    gamma = fit.group_variance / fit.residual_variance
    np.testing.assert_allclose(gamma, np.asarray(raw.cov_re_unscaled)[0, 0], rtol=1e-10)


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # statsmodels' fit, outside
def test_random_intercept_reml_declines_at_the_boundary(regions: pd.DataFrame) -> None:
    """Equal regional turnouts: no variance between regions; statsmodels warns and changes optimiser."""
    races = simulate.simulate_races(
        regions.assign(turnout_pct=80.0), NATIONAL_2021, simulate.SimulationSettings.from_params(), 1
    )
    assert race.fit_race_mixedlm(races, MIX_RHS).warnings
    arrays = _arrays(races, MIX_RHS)
    with pytest.raises(  # which check stops it depends on the draw; both are the boundary
        fastfit.FastPathDeclined,
        match="^(group variance near the boundary or Hessian not negative definite"
        "|BFGS did not converge or reached a singular random-effects variance)$",
    ):
        fastfit.fit_random_intercept_reml(arrays, fastfit.empirical_logit(arrays.voted, arrays.registered))


# --------------------------------------------------------------------------
# Regional fractional logit under permutation
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regional() -> pd.DataFrame:
    return pd.read_csv(REGIONAL_CSV)


def _regional(regional: pd.DataFrame, predictors: list[str], weight: str | None):
    kept, _, exog, _ = regional_arrays(regional, predictors, weight, "turnout_pct", "region")
    share = kept["turnout_pct"].to_numpy(dtype=float) / 100
    weights = None if weight is None else kept[weight].to_numpy(dtype=float)
    return share, exog, None if weights is None else weights / weights.mean()


@pytest.mark.parametrize(
    "predictors, weight",
    [
        (["cands_per_seat"], None),
        (["cands_per_seat"], "posts"),
        (["posts"], None),
        (["cands_per_seat", "posts"], None),
    ],
)
@pytest.mark.parametrize("statistic, cov_type", [("t", "HC3"), ("t", "HC1"), ("t", "HC0"), ("coef", "HC3")])
def test_permutation_statistics_match_regional_statistic(
    regional: pd.DataFrame, predictors: list[str], weight: str | None, statistic: str, cov_type: str
) -> None:
    share, exog, weights = _regional(regional, predictors, weight)
    rng = np.random.default_rng(9)
    columns = [exog[:, 1], *(rng.permutation(exog[:, 1]) for _ in range(60))]
    values, declined = fastfit.permutation_statistics(share, exog, weights, 1, columns, statistic, cov_type)
    assert not declined.any()
    expected = []
    for column in columns:
        design = exog.copy()
        design[:, 1] = column
        expected.append(resampling._regional_statistic(share, design, weights, 1, statistic, cov_type))
    assert_scaled_close(values, expected, np.abs(expected))


def test_irls_replays_statsmodels_iterations(regional: pd.DataFrame) -> None:
    share, exog, weights = _regional(regional, ["cands_per_seat"], "posts")
    rng = np.random.default_rng(1)
    designs = np.repeat(exog[None], 20, axis=0)
    designs[:, :, 1] = [rng.permutation(exog[:, 1]) for _ in range(20)]
    params, iterations = fastfit.fractional_logit_irls(share, designs, weights)
    for design, estimate, n in zip(designs, params, iterations, strict=True):
        raw = sm.GLM(share, design, family=sm.families.Binomial(), var_weights=weights).fit()
        assert n == raw.fit_history["iteration"]
        assert_scaled_close(estimate, raw.params, raw.bse, rtol=1e-10)


def test_hc3_leverage_one_gives_nan_as_statsmodels() -> None:
    """A design whose permuted column isolates one row: leverage 1 there, HC3 undefined."""
    share = np.array([0.6, 0.7, 0.65, 0.8, 0.75, 0.7])
    exog = np.column_stack([np.ones(6), np.arange(6.0)])
    column = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    values, declined = fastfit.permutation_statistics(share, exog, None, 1, [column], "t", "HC3")
    with pytest.raises(ValueError, match="leverage"):
        design = exog.copy()
        design[:, 1] = column
        resampling._regional_statistic(share, design, None, 1, "t", "HC3")
    assert np.isnan(values[0])


@pytest.mark.parametrize("statistic", ["t", "coef"])
def test_permutation_test_engines_agree(regional: pd.DataFrame, statistic: str) -> None:
    fast = resampling.permutation_test(regional, "cands_per_seat", n_permutations=199, seed=3, statistic=statistic)
    slow = resampling.permutation_test(
        regional, "cands_per_seat", n_permutations=199, seed=3, statistic=statistic, engine="statsmodels"
    )
    assert fast.observed == slow.observed
    assert fast.p_value == slow.p_value and fast.n_failed == slow.n_failed
    assert_scaled_close(fast.null_distribution, slow.null_distribution, np.abs(slow.null_distribution))


def test_permutation_test_refits_declined_permutations(regional: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = resampling.permutation_test(regional, "cands_per_seat", n_permutations=49, seed=5, engine="statsmodels")
    real = fastfit.permutation_statistics

    def declining(*args, **kwargs):
        values, declined = real(*args, **kwargs)
        declined[::2] = True
        values[declined] = np.nan
        return values, declined

    monkeypatch.setattr(fastfit, "permutation_statistics", declining)
    fast = resampling.permutation_test(regional, "cands_per_seat", n_permutations=49, seed=5)
    assert fast.p_value == slow.p_value
    np.testing.assert_array_equal(fast.null_distribution[1::2], slow.null_distribution[1::2])  # refitted: identical
    assert_scaled_close(fast.null_distribution, slow.null_distribution, np.abs(slow.null_distribution))


def test_permutation_test_refuses_unknown_engine(regional: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="engine"):
        resampling.permutation_test(regional, "cands_per_seat", n_permutations=99, engine="numba")


# --------------------------------------------------------------------------
# The study with either engine
# --------------------------------------------------------------------------


NUMERIC = ["estimate", "se", "ci_low", "ci_high", "p_value", "target", "mean_pq"]
EXACT = ["method", "ok", "covered", "rejected", "converged", "n_warnings", "error", "sim_seed"]


def _study_rows(regions: pd.DataFrame, engine: str, design: study.StudyDesign) -> pd.DataFrame:
    tasks = study.build_tasks(design, simulate.SimulationSettings.from_params(), regions, NATIONAL_2021, engine)
    return pd.DataFrame(study.run_chunk(tasks))


def _assert_rows_agree(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast[EXACT], slow[EXACT])
    for column in NUMERIC:
        a, b = fast[column].to_numpy(float), slow[column].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = ~np.isnan(b)
        # relative, or relative to the SE where a bound or estimate can be near zero
        scale = np.maximum(np.abs(b[finite]), np.nan_to_num(slow["se"].to_numpy(float)[finite], nan=0.0))
        assert_scaled_close(a[finite], b[finite], scale)
    wild = slow["method"] == "wild_bootstrap"
    np.testing.assert_array_equal(fast.loc[wild, "p_value"], slow.loc[wild, "p_value"])


def test_study_results_do_not_depend_on_the_engine(regions: pd.DataFrame) -> None:
    """36 replications (12 at effect 0, 6 at each of the four other effects), every method."""
    design = study.StudyDesign.from_mapping(
        {
            "n_replications": 6,
            "n_replications_null": 12,
            "seed": 11,
            "method_replications": {"mixedlm": 4, "naive_binomial": 6},
        }
    )
    fast, slow = _study_rows(regions, "fast", design), _study_rows(regions, "statsmodels", design)
    assert len(fast) == (12 + 4 * 6) * 3 + 5 * 4 + (6 + 4 * 6)
    assert set(fast["method"]) == set(montecarlo.METHODS)
    _assert_rows_agree(fast, slow)
    # the published frame, at 6 significant digits
    pd.testing.assert_frame_equal(
        study.results_frame(fast.to_dict("records")),
        study.results_frame(slow.to_dict("records")),
        rtol=1e-5,
        atol=0,
        check_exact=False,
    )
    assert (
        fast["estimate"][fast["method"] == "wild_bootstrap"].to_numpy()
        == fast["estimate"][fast["method"] == "cluster_t"].to_numpy()
    ).all()


def test_study_falls_back_to_statsmodels_where_the_fast_path_declines(
    regions: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    design = study.StudyDesign.from_mapping(
        {
            "n_replications": 2,
            "n_replications_null": None,
            "effect_grid": [0.0, -0.3],
            "seed": 2,
            "methods": list(montecarlo.METHODS),
            "method_replications": {},
        }
    )
    slow = _study_rows(regions, "statsmodels", design)

    def decline(*args, **kwargs):
        raise fastfit.FastPathDeclined("test")

    for name in ("fit_counts_glm", "fit_gee_exchangeable", "fit_random_intercept_reml"):
        monkeypatch.setattr(fastfit, name, decline)
    # the batched GLM and GEE of the replications (study._fit_batch) decline each data set the same way
    for name in ("fit_counts_glm_batch", "fit_gee_exchangeable_batch"):
        monkeypatch.setattr(fastfit, name, lambda arrays: [fastfit.FastPathDeclined("test")] * len(arrays))
    declined = _study_rows(regions, "fast", design)
    pd.testing.assert_frame_equal(declined, slow, check_exact=True)


def test_study_records_a_failed_fast_fit(regions: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error other than FastPathDeclined is a failed fit, recorded as with statsmodels."""

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    # the batch's error leaves each replication to its own fit, which records it
    for name in ("fit_gee_exchangeable", "fit_gee_exchangeable_batch"):
        monkeypatch.setattr(fastfit, name, broken)
    design = study.StudyDesign.from_mapping(
        {
            "n_replications": 2,
            "n_replications_null": None,
            "effect_grid": [0.0, -0.3],
            "seed": 3,
            "methods": ["cluster_t", "gee_bias_reduced"],
            "method_replications": {},
        }
    )
    rows = _study_rows(regions, "fast", design)
    gee = rows[rows["method"] == "gee_bias_reduced"]
    assert not gee["ok"].any() and (gee["error"] == "LinAlgError: Singular matrix").all()
    assert rows[rows["method"] == "cluster_t"]["ok"].all()


def test_study_wild_bootstrap_ci_stays_on_statsmodels(regions: pd.DataFrame) -> None:
    base = simulate.allocate_region_margins(regions, NATIONAL_2021)
    settings = simulate.SimulationSettings.from_params(beta_self_share=-0.3)
    rows = [
        study.run_replication(
            study.ReplicationTask(
                0, 14, 730, 1, -0.3, 0, base, settings, ("wild_bootstrap",), seed=4, wild_ci=True, engine=engine
            )
        )[0]
        for engine in study.ENGINES
    ]
    assert rows[0] == rows[1]
    assert rows[0]["ci_low"] < rows[0]["estimate"] < rows[0]["ci_high"]


def test_study_refuses_unknown_engine(regions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="engine"):
        study.build_tasks(
            study.StudyDesign.from_params(), simulate.SimulationSettings.from_params(), regions, NATIONAL_2021, "numba"
        )
    assert (
        replace(
            study.build_tasks(
                study.StudyDesign.from_params(n_replications=2, n_replications_null=2),
                simulate.SimulationSettings.from_params(),
                regions,
                NATIONAL_2021,
            )[0]
        ).engine
        == "fast"
    )


def test_permutation_statistics_batch_with_regular_undefined_and_declined_designs() -> None:
    """One batch: a regular column (the statsmodels statistic), a column isolating one row (leverage 1 up to
    rounding, so within 1e-6 of HC3's cut-off: declined, for statsmodels to decide; with other covariances a number),
    a constant column collinear with the intercept (declined)."""
    share = np.array([0.6, 0.7, 0.65, 0.8, 0.75, 0.7])
    exog = np.column_stack([np.ones(6), np.arange(6.0)])
    regular, isolating, constant = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0]), np.eye(6)[5], np.full(6, 2.0)
    columns = np.vstack([regular, isolating, constant])

    def reference(column: np.ndarray, statistic: str, cov_type: str) -> float:
        design = exog.copy()
        design[:, 1] = column
        return resampling._regional_statistic(share, design, None, 1, statistic, cov_type)

    values, declined = fastfit.permutation_statistics(share, exog, None, 1, columns)  # defaults: t with HC3
    assert declined.tolist() == [False, True, True]
    assert values[0] == pytest.approx(reference(regular, "t", "HC3"), rel=1e-9) and np.isnan(values[1:]).all()
    for statistic, cov_type in (("coef", "HC3"), ("t", "HC0"), ("t", "HC1")):  # leverage does not matter
        values, declined = fastfit.permutation_statistics(share, exog, None, 1, columns, statistic, cov_type)
        assert declined.tolist() == [False, False, True], (statistic, cov_type)
        for value, column in zip(values[:2], (regular, isolating), strict=True):
            assert value == pytest.approx(reference(column, statistic, cov_type), rel=1e-8), (statistic, cov_type)
        assert np.isnan(values[2])
    values, declined = fastfit.permutation_statistics(share, exog, None, 1, np.vstack([constant, 2 * constant]))
    assert declined.tolist() == [True, True] and np.isnan(values).all()
    with pytest.raises(ValueError, match=r"^statistic must be 't' or 'coef'$"):
        fastfit.permutation_statistics(share, exog, None, 1, columns, "z")


def test_permutation_test_engines_agree_with_weights(regional: pd.DataFrame) -> None:
    """Weighted by posts: both engines use the weights (an unweighted null differs from either)."""
    kept = regional.dropna(subset=["cands_per_seat", "posts"])
    options = {"weight": "posts", "n_permutations": 49, "seed": 2}
    fast = resampling.permutation_test(kept, "cands_per_seat", **options)
    slow = resampling.permutation_test(kept, "cands_per_seat", engine="statsmodels", **options)
    unweighted = resampling.permutation_test(kept, "cands_per_seat", n_permutations=49, seed=2, engine="statsmodels")
    assert_scaled_close(fast.null_distribution, slow.null_distribution, np.abs(slow.null_distribution))
    assert fast.observed == pytest.approx(slow.observed, rel=1e-9) and fast.p_value == slow.p_value
    assert np.max(np.abs(unweighted.null_distribution - slow.null_distribution)) > 0.05


def test_fast_study_fit_declines_the_bootstrap_interval_and_caches_the_glm(regions: pd.DataFrame) -> None:
    base = simulate.allocate_region_margins(regions, NATIONAL_2021)
    settings = simulate.SimulationSettings.from_params(beta_self_share=-0.3)
    task = study.ReplicationTask(0, 14, 730, 1, -0.3, 0, base, settings, ("wild_bootstrap",), seed=4, wild_ci=True)
    races, _, boot_seed = study.simulate_replication(task)
    with pytest.raises(fastfit.FastPathDeclined) as declined:
        study._fit_fast("wild_bootstrap", races, task, -0.29, boot_seed, {})
    assert str(declined.value) == "bootstrap CI by test inversion is computed by resampling.wild_cluster_bootstrap"
    cache: dict = {}
    glm = study._fit_fast("cluster_t", races, replace(task, wild_ci=False), -0.29, boot_seed, cache)
    assert set(cache) == {"arrays", "glm"}
    cache["glm"] = replace(cache["glm"], params=cache["glm"].params + 1.0)  # a reused fit shows in the next method
    naive = study._fit_fast("naive_binomial", races, replace(task, wild_ci=False), -0.29, boot_seed, cache)
    assert naive["estimate"] == pytest.approx(glm["estimate"] + 1.0, rel=1e-12)


def _tiny_races() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "voted": [50, 60, 0, 80, 90, 100],
            "registered": [100, 100, 100, 100, 100, 100],
            "region": pd.array(["A", "A", "B", "B", "C", "C"], dtype="string"),
            "n_candidates": [2, 3, 1, 4, 2, 3],
            "self_share": [0.5, 0.0, 1.0, 0.25, 0.5, 1.0],
        }
    )


BAD_DIRECT = {
    "missing column": (lambda d: d.drop(columns="self_share"), "missing columns"),
    "registered 0": (lambda d: d.assign(registered=[100, 0] + [100] * 4, voted=[5, 0] * 3), "invalid counts"),
    "voted negative": (lambda d: d.assign(voted=[50, -1, 0, 80, 90, 100]), "invalid counts"),
    "voted above registered": (lambda d: d.assign(voted=[50, 101, 0, 80, 90, 100]), "invalid counts"),
    "voted text": (lambda d: d.assign(voted=d["voted"].astype(str)), "voted is not numeric"),
    "registered missing": (lambda d: d.assign(registered=[100, np.nan] + [100] * 4), "registered has missing values"),
    "log of 0": (lambda d: d.assign(n_candidates=[2, 0, 1, 4, 2, 3]), "n_candidates not positive"),
    "region not text": (lambda d: d.assign(region=d["region"].astype(object)), "region is not complete text"),
    "region missing": (lambda d: d.assign(region=d["region"].mask(d.index == 1)), "region is not complete text"),
    "as many rows as columns": (lambda d: d.iloc[:5], "too few rows"),
}  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BAD_DIRECT.values(), ids=BAD_DIRECT.keys())
def test_direct_race_arrays_decline_naming_the_reason(change, message: str) -> None:
    """C(region) + np.log(n_candidates) + self_share: 5 columns. Each frame the direct path cannot take whole."""
    from akim_turnout.models import design

    with pytest.raises(fastfit.FastPathDeclined) as declined:
        fastfit._direct_race_arrays(
            change(_tiny_races()), "C(region) + np.log(n_candidates) + self_share", "region", "voted", "registered",
            design.parse_terms,
        )  # fmt: skip
    assert str(declined.value) == message


def test_direct_race_arrays_take_the_edges_of_valid_counts() -> None:
    """0 votes, all registered voting, one candidate (log 1 = 0), six rows for five columns: all accepted."""
    from akim_turnout.models import design

    arrays = fastfit._direct_race_arrays(
        _tiny_races(), "C(region) + np.log(n_candidates) + self_share", "region", "voted", "registered",
        design.parse_terms,
    )  # fmt: skip
    assert arrays.names == ["Intercept", "C(region)[T.B]", "C(region)[T.C]", "np.log(n_candidates)", "self_share"]
    assert arrays.exog.shape == (6, 5) and arrays.n_clusters == 3 and arrays.clusters.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(arrays.exog[:, 3], np.log([2, 3, 1, 4, 2, 3]))
    np.testing.assert_array_equal(arrays.exog[:, 1], [0, 0, 1, 1, 0, 0])
    assert arrays.voted.tolist() == [50, 60, 0, 80, 90, 100] and arrays.registered.tolist() == [100] * 6
