"""Small hand-made tables and stand-ins shared by the tests of several modules of akim_turnout.models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy.special import expit


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


def regional_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "turnout_pct": [60.0, 0.0, 71.0, 100.0, 69.0],
            "w": [100.0, 300.0, 200.0, 400.0, 500.0],
        }
    )


def stub_glm(params, scores, hessian, hat=None) -> SimpleNamespace:
    """Just what glm_sandwich_cov and checked_sandwich read from a statsmodels GLM result."""
    model = SimpleNamespace(score_obs=lambda p: np.asarray(scores, float), hessian=lambda p: np.asarray(hessian, float))
    influence = SimpleNamespace(hat_matrix_diag=None if hat is None else np.asarray(hat, float))
    return SimpleNamespace(params=np.asarray(params, float), model=model, get_influence=lambda: influence)


def tiny_counts() -> pd.DataFrame:
    """Six races in three regions with turnout rising in x."""
    return pd.DataFrame(
        {
            "region": ["a", "a", "b", "b", "c", "c"],
            "x": [-1.0, 0.5, 0.0, 1.5, -0.5, 2.0],
            "registered": [100, 80, 120, 90, 60, 150],
            "voted": [40, 50, 60, 70, 30, 130],
        }
    )
