"""The race-level fits of akim_turnout.models.race on tiny hand-made tables: the GLM and beta estimates against
solves of their score equations written out here, custom column names, fit names, and the exact notes and refusals
of fits that do not converge or cannot be made."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import root
from scipy.special import digamma, expit

from akim_turnout.models import race
from models.tables import binomial_mle, six_clusters  # tests/ is on sys.path


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
