"""Exact checks of the race-level fits and of the resampling tests, on tiny hand-made tables.

Race fits (:mod:`akim_turnout.models.race`):

* the binomial GLM against a Newton solve of its score equations written out here, under custom column names, with
  its default and given names, and the exact note when Newton gives way to IRLS;
* beta regression against the root of the beta log-likelihood's score written out here, with t inference in the
  statsmodels result too, and the note on a non-converged optimiser;
* the label every fit puts in front of a too-small design, the refusals and failure messages of GEE, and the
  note on a non-converged mixed model.

Resampling (:mod:`akim_turnout.models.resampling`):

* permutation test: its defaults, weighted and covariate-adjusted statistics against a hand-written weighted
  fractional logit, designs that are collinear after permutation (refitted by statsmodels, or failed), and the
  covariance type reaching the fast engine;
* wild cluster bootstrap: its defaults, custom column names, the null value it reports, and the note when the
  number of draws reaches the number of distinct Rademacher vectors.
"""

from __future__ import annotations

import itertools
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import root
from scipy.special import digamma, expit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.models import race, resampling

# --------------------------------------------------------------------------------------------------------------
# Race tables
# --------------------------------------------------------------------------------------------------------------


def nine_races() -> pd.DataFrame:
    """Nine races in three regions with turnout rising in x."""
    return pd.DataFrame(
        {
            "region": list("aaabbbccc"),
            "x": [-1.0, 0.5, 1.2, 0.0, 1.5, -0.7, -0.5, 2.0, 0.9],
            "registered": [100, 80, 140, 120, 90, 70, 60, 150, 110],
            "voted": [40, 50, 95, 60, 70, 30, 30, 130, 75],
        }
    )


def binomial_mle(df: pd.DataFrame) -> np.ndarray:
    """Intercept and slope of the binomial logit on counts, by Newton on the score (independent code)."""
    design = np.column_stack([np.ones(len(df)), df["x"].to_numpy(float)])
    voted, registered = df["voted"].to_numpy(float), df["registered"].to_numpy(float)
    beta = np.zeros(2)
    for _ in range(100):
        mu = expit(design @ beta)
        step = np.linalg.solve(
            design.T @ (design * (registered * mu * (1 - mu))[:, None]), design.T @ (voted - registered * mu)
        )
        beta = beta + step
        if np.max(np.abs(step)) < 1e-15:
            break
    return beta


def test_glm_estimates_solve_the_score_equations() -> None:
    fit = race.fit_race_glm(nine_races(), "x")
    np.testing.assert_allclose(fit.params.to_numpy(), binomial_mle(nine_races()), rtol=0, atol=1e-10)


def test_fits_accept_custom_count_column_names() -> None:
    renamed = nine_races().rename(columns={"voted": "ballots", "registered": "electorate"})
    names = {"voted": "ballots", "registered": "electorate"}
    expected = binomial_mle(nine_races())
    cluster = race.fit_race_glm(renamed, "x", **names)
    naive = race.fit_race_naive_binomial(renamed, "x", **names)
    for fit in (cluster, naive):
        np.testing.assert_allclose(fit.params.to_numpy(), expected, rtol=0, atol=1e-10)
    assert naive.cov_type == "nonrobust" and naive.n_clusters is None
    assert naive.df_resid is None and not naive.use_t


def test_glm_fit_names() -> None:
    df = nine_races()
    assert race.fit_race_glm(df, "x").name == "race_glm_cluster"
    assert race.fit_race_glm(df, "x", robust=False).name == "race_glm_naive"
    assert race.fit_race_naive_binomial(df, "x").name == "race_glm_naive"
    assert race.fit_race_glm(df, "x", name="turnout_glm").name == "turnout_glm"


def test_newton_giving_way_to_irls_is_noted_exactly() -> None:
    separated = pd.DataFrame(
        {
            "region": list("aabbcc"),
            "x": [-2, -1, -0.5, 0.5, 1, 2.0],
            "registered": [10] * 6,
            "voted": [0, 0, 0, 10, 10, 10],
        }
    )
    fit = race.fit_race_glm(separated, "x")
    assert list(fit.notes) == ["Newton did not converge to finite estimates; refitted by IRLS"]


@pytest.mark.parametrize(
    ("fitter", "label"),
    [
        (race.fit_race_glm, "fit_race_glm"),
        (race.fit_race_naive_binomial, "fit_race_glm"),
        (race.fit_race_beta, "fit_race_beta"),
        (race.fit_race_gee, "fit_race_gee"),
        (race.fit_race_mixedlm, "fit_race_mixedlm"),
    ],
)
def test_a_design_with_no_residual_degrees_of_freedom_is_refused(fitter, label: str) -> None:
    two = nine_races().iloc[[0, 3]].assign(z=[1.0, 3.0])
    with pytest.raises(ValueError, match=rf"^{label}: 2 rows for 2 parameters$"):
        fitter(two, "x")
    with pytest.raises(ValueError, match=rf"^{label}: 2 rows for 3 parameters$"):
        fitter(two, "x + z")


# --------------------------------------------------------------------------------------------------------------
# Beta regression
# --------------------------------------------------------------------------------------------------------------


def beta_score(params: np.ndarray, y: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Score of the beta log-likelihood, logit mean and log precision (Ferrari & Cribari-Neto 2004)."""
    mu = expit(design @ params[:-1])
    phi = np.exp(params[-1])
    y_star = np.log(y / (1 - y))
    mu_star = digamma(mu * phi) - digamma((1 - mu) * phi)
    d_mean = design.T @ (phi * (y_star - mu_star) * mu * (1 - mu))
    d_precision = np.sum(phi * (mu * (y_star - mu_star) + np.log(1 - y) - digamma((1 - mu) * phi) + digamma(phi)))
    return np.append(d_mean, d_precision)


def test_beta_estimates_are_the_root_of_the_score() -> None:
    # Newton steps after BFGS reach the root to rounding error (BFGS alone stops about 1e-4 away).
    df = six_clusters()
    share = df["voted"].to_numpy(float) / df["registered"].to_numpy(float)
    y = (share * 17 + 0.5) / 18  # Smithson-Verkuilen squeeze with n = 18
    design = np.column_stack([np.ones(18), df["x"].to_numpy(float)])
    solution = root(beta_score, np.array([0.0, 0.0, 2.0]), args=(y, design), tol=1e-12)
    assert np.max(np.abs(beta_score(solution.x, y, design))) < 1e-9
    fit = race.fit_race_beta(df, "x")
    assert list(fit.params.index) == ["Intercept", "x", "precision"]
    np.testing.assert_allclose(fit.params.to_numpy(), solution.x, rtol=0, atol=1e-12)
    assert fit.df_resid == 5 and fit.use_t and fit.raw.use_t
    assert list(fit.notes) == ["Smithson-Verkuilen squeeze applied to all 18 shares; 0 were exactly 0 or 1"]


def test_a_beta_optimiser_that_does_not_converge_is_noted() -> None:
    original = race.BetaModel.fit

    def unconverged(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if kwargs.get("method") == "newton":
            result.mle_retvals["converged"] = False
        return result

    with mock.patch.object(race.BetaModel, "fit", unconverged):
        fit = race.fit_race_beta(nine_races(), "x")
    assert fit.notes[-1] == "BetaModel optimiser did not converge"


# --------------------------------------------------------------------------------------------------------------
# GEE and mixed model
# --------------------------------------------------------------------------------------------------------------


def test_gee_notes_and_t_inference() -> None:
    fit = race.fit_race_gee(nine_races(), "x")
    assert fit.name == "race_gee" and fit.df_resid == 2 and fit.n_obs == 9 and fit.n_clusters == 3
    assert list(fit.notes) == [
        "t inference with 2 df (statsmodels GEE uses normal)",
        "Mancl-DeRouen covariance with a generalized inverse of I - H_gg (akim_turnout.models.inference)",
    ]


def test_weighted_gee_with_the_bias_reduced_covariance_is_refused_exactly() -> None:
    with pytest.raises(ValueError) as caught:
        race.fit_race_gee(nine_races(), "x", weighted=True)
    assert str(caught.value) == (
        "the bias-reduced GEE covariance is unweighted; use weighted=False or cov_type='robust'"
    )


def test_a_gee_fit_that_fails_raises_a_runtime_error() -> None:
    with (
        mock.patch.object(race.GEE, "fit", return_value=None),
        pytest.raises(RuntimeError, match=r"^GEE failed to converge: \[\]$"),
    ):
        race.fit_race_gee(nine_races(), "x")


def test_a_mixed_model_that_does_not_converge_is_noted() -> None:
    original = race.MixedLM.fit

    def unconverged(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        result.converged = False
        return result

    with mock.patch.object(race.MixedLM, "fit", unconverged):
        fit = race.fit_race_mixedlm(nine_races(), "x")
    assert fit.notes[-1] == "MixedLM did not converge"
    assert fit.extra["converged"] is False


# --------------------------------------------------------------------------------------------------------------
# Permutation test
# --------------------------------------------------------------------------------------------------------------


def five_regions() -> pd.DataFrame:
    """x is not linear in z, but reversing x gives z exactly (a collinear permuted design)."""
    return pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [5.0, 3.0, 2.0, 1.0, 0.0],
            "z": [0.0, 1.0, 2.0, 3.0, 5.0],
            "w": [1.0, 2.0, 1.0, 3.0, 2.0],
            "turnout_pct": [66.0, 72.5, 61.0, 70.0, 71.5],
        }
    )


def weighted_fractional_logit_coef(share: np.ndarray, design: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Newton on the weighted Bernoulli quasi-likelihood (independent code)."""
    beta = np.zeros(design.shape[1])
    for _ in range(100):
        mu = expit(design @ beta)
        step = np.linalg.solve(
            design.T @ (design * (weights * mu * (1 - mu))[:, None]), design.T @ (weights * (share - mu))
        )
        beta = beta + step
        if np.max(np.abs(step)) < 1e-15:
            break
    return beta


ORDERS = [(1, 0, 2, 3, 4), (0, 2, 1, 3, 4), (4, 3, 2, 1, 0)]  # the last one makes x equal to z


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_weighted_coefficients_of_permuted_designs_by_hand(engine: str) -> None:
    regions = five_regions()
    share, w = regions["turnout_pct"].to_numpy() / 100, regions["w"].to_numpy()
    x, z = regions["x"].to_numpy(), regions["z"].to_numpy()
    result = resampling.permutation_test(
        regions, "x", covariates=["z"], weight="w", statistic="coef", permutations=ORDERS, engine=engine
    )
    for value, order in zip(result.null_distribution[:2], ORDERS[:2], strict=True):
        design = np.column_stack([np.ones(5), x[list(order)], z])
        assert value == pytest.approx(weighted_fractional_logit_coef(share, design, w)[1], abs=1e-7)
    # The collinear design has no unique coefficients: statsmodels' pseudo-inverse answer, whatever the engine.
    collinear = np.column_stack([np.ones(5), z, z])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns that the design is rank-deficient
        reference = GLM(share, collinear, family=families.Binomial(), var_weights=w / w.mean()).fit().params[1]
    assert np.isfinite(reference)
    assert result.null_distribution[2] == pytest.approx(reference, rel=1e-9)
    assert result.n_failed == 0


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_a_permuted_design_whose_robust_t_fails_is_counted_as_failed(engine: str) -> None:
    result = resampling.permutation_test(five_regions(), "x", covariates=["z"], permutations=ORDERS, engine=engine)
    assert np.isnan(result.null_distribution[2]) and np.isfinite(result.null_distribution[:2]).all()
    assert result.n_failed == 1 and result.n_permutations == 3


def test_fast_engine_uses_the_requested_covariance() -> None:
    regions = five_regions()
    orders = list(itertools.permutations(range(5)))[1:30]
    fast = resampling.permutation_test(regions, "x", cov_type="HC1", permutations=orders)
    slow = resampling.permutation_test(regions, "x", cov_type="HC1", permutations=orders, engine="statsmodels")
    hc3 = resampling.permutation_test(regions, "x", permutations=orders, engine="statsmodels")
    np.testing.assert_allclose(fast.null_distribution, slow.null_distribution, rtol=1e-7)
    assert np.max(np.abs(fast.null_distribution - hc3.null_distribution)) > 1e-3


def test_permutation_defaults_are_999_draws_from_seed_zero() -> None:
    regions = five_regions()
    default = resampling.permutation_test(regions, "x")
    explicit = resampling.permutation_test(regions, "x", n_permutations=999, seed=0)
    assert default.n_permutations == 999 and len(default.null_distribution) == 999
    np.testing.assert_array_equal(default.null_distribution, explicit.null_distribution)


def test_permutation_test_drops_regions_missing_the_weight() -> None:
    regions = five_regions().assign(w=[1.0, 2.0, np.nan, 3.0, 2.0], extra=[1.0, 2.0, 4.0, 3.0, 5.0])
    orders = [(1, 0, 2, 3), (0, 1, 3, 2)]
    result = resampling.permutation_test(regions, "extra", weight="w", statistic="coef", permutations=orders)
    assert result.n_obs == 4
    kept = regions.drop(index=2)
    share, w, x = kept["turnout_pct"].to_numpy() / 100, kept["w"].to_numpy(), kept["extra"].to_numpy()
    design = np.column_stack([np.ones(4), x[[1, 0, 2, 3]]])
    assert result.null_distribution[0] == pytest.approx(weighted_fractional_logit_coef(share, design, w)[1], abs=1e-7)


def test_permutation_test_names_itself_when_the_design_is_collinear() -> None:
    regions = five_regions().assign(x2=lambda d: 2 * d["x"])
    with pytest.raises(ValueError) as caught:
        resampling.permutation_test(regions, "x", covariates=["x2"])
    assert str(caught.value) == "permutation_test: design columns are collinear: ['Intercept', 'x', 'x2']"


# --------------------------------------------------------------------------------------------------------------
# Wild cluster bootstrap
# --------------------------------------------------------------------------------------------------------------


def six_clusters() -> pd.DataFrame:
    """18 races in six regions."""
    x = np.array([-1.3, -1.0, -0.6, -0.4, 0.0, 0.3, 0.1, 0.4, 0.8, 0.5, 0.9, 1.2, 0.9, 1.3, 1.7, 1.6, 2.0, 2.4])
    registered = np.array([120, 95, 210, 80, 150, 60, 300, 110, 90, 70, 180, 140, 100, 250, 65, 130, 85, 160])
    noise = np.array(
        [0.3, -0.2, 0.1, -0.4, 0.25, 0.0, 0.2, -0.1, -0.3, 0.15, 0.35, -0.25, -0.05, 0.1, 0.3, -0.35, 0.05, 0.2]
    )
    return pd.DataFrame(
        {
            "region": np.repeat(list("abcdef"), 3),
            "x": x,
            "registered": registered,
            "voted": np.round(expit(0.4 + 0.35 * x + noise) * registered).astype(int),
        }
    )


def test_wild_bootstrap_defaults_are_999_draws_from_seed_zero() -> None:
    df = six_clusters()
    default = resampling.wild_cluster_bootstrap(df, "x", "x", ci=False)
    explicit = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=999, seed=0, ci=False)
    assert default.n_boot == 999 and default.seed == 0
    assert default.p_value == explicit.p_value and default.statistic == explicit.statistic


def test_wild_bootstrap_with_custom_column_names_and_a_null_value() -> None:
    df = six_clusters()
    renamed = df.rename(columns={"voted": "ballots", "registered": "electorate"})
    given = resampling.wild_cluster_bootstrap(
        renamed, "x", "x", n_boot=99, null_value=0.2, ci=False, voted="ballots", registered="electorate"
    )
    plain = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=99, null_value=0.2, ci=False)
    assert given.null_value == 0.2 and plain.null_value == 0.2
    assert given.p_value == plain.p_value and given.statistic == plain.statistic
    assert given.estimate == pytest.approx(binomial_mle(df)[1], abs=1e-10)


def test_rademacher_note_when_the_draws_reach_every_sign_vector() -> None:
    df = six_clusters()
    exact = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=64, weights="rademacher", ci=False)
    fewer = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=63, weights="rademacher", ci=False)
    assert exact.notes == ("only 64 distinct Rademacher draws exist for 6 clusters",)
    assert fewer.notes == ()


def test_wild_bootstrap_interval_ends_where_p_drops_below_alpha() -> None:
    # 20 sign vectors (none constant), so p-values are multiples of 1/20 and p = alpha = 0.05 occurs:
    # a null with p exactly alpha is not rejected and belongs to the interval.
    df = six_clusters()
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=(60, 6))
    draws = signs[np.abs(signs.sum(axis=1)) < 6][:20]
    result = resampling.wild_cluster_bootstrap(df, "x", "x", draws=draws)

    def p_at(null_value: float) -> float:
        return resampling.wild_cluster_bootstrap(df, "x", "x", draws=draws, null_value=null_value, ci=False).p_value

    delta = 1e-4
    assert p_at(result.ci_lower - delta) < 0.05 and p_at(result.ci_lower + delta) == 0.05
    assert p_at(result.ci_upper - delta) >= 0.05 and p_at(result.ci_upper + delta) < 0.05
