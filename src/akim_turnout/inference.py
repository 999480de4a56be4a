"""Bias-reduced (Mancl-DeRouen) covariance for a binomial GEE with exchangeable working correlation.

Mancl & DeRouen (2001, Biometrics 57:126) correct the GEE sandwich for few clusters by replacing each
cluster's residuals ``r_g`` with ``(I - H_gg)^-1 r_g``, where

    H_gg = D_g B^-1 D_g' V_g^-1,   B = sum_g D_g' V_g^-1 D_g,

``D_g`` the derivative of the cluster's means with respect to the parameters and ``V_g`` its working
covariance. The covariance is ``B^-1 (sum_g s_g s_g') B^-1`` with ``s_g = D_g' V_g^-1 (I - H_gg)^-1 r_g``.

Why a generalized inverse. ``H = D B^-1 D' V^-1`` is the (V^-1-orthogonal) projection onto the columns of
``D``. When the design holds a cluster's own dummy (region fixed effects with clusters = regions; for the
reference region, the intercept minus all dummies), the direction ``u_g = D delta_g`` that shifts only that
cluster's intercept lives on cluster ``g`` alone, so ``H_gg u_g = u_g``: ``I - H_gg`` has an exact null
direction. Inverting it directly (as statsmodels' ``cov_type="bias_reduced"`` does with ``numpy.linalg.solve``)
then divides by a singular value that is rounding noise (about 1e-16 relative), and the result depends on that
noise; in statsmodels 0.15 the standard errors of the intercept and the region dummies come out tens to
tens of thousands of times too large. The system is consistent (``r_g`` is orthogonal to the left null vector
because the cluster's own estimating equation is solved), so the Moore-Penrose inverse picks its
minimum-norm solution. Any other solution adds a multiple of ``u_g``, which moves only the intercept and dummy
entries: the covariance of the other coefficients (the slopes) is the same whichever solution is taken; the
intercept and dummy entries follow the minimum-norm convention (as R's ``MASS::ginv``). Without a cluster's
own dummy ``I - H_gg`` is invertible and the result equals the plain inverse (and statsmodels' own
``bias_reduced`` covariance).

The relative tolerance ``rcond`` cuts singular values below ``rcond`` times the largest one of each
``I - H_gg``; its default ``sqrt(machine epsilon)`` is that of ``MASS::ginv``. The null singular value sits near
1e-16 and the others near 1 (their values are in the reference results), so any cut between about 1e-12 and
1e-2 gives the same matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

DEFAULT_RCOND = float(np.sqrt(np.finfo(float).eps))


def mancl_derouen_cov(gee_result: Any, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Mancl-DeRouen bias-reduced covariance of a fitted statsmodels GEE (binomial, logit, exchangeable).

    ``gee_result`` is the results object of ``statsmodels.api.GEE(...).fit()`` (``FitResult.raw`` of
    :func:`akim_turnout.models.fit_race_gee`), fitted without weights. ``(I - H_gg)`` is inverted with
    ``numpy.linalg.pinv(..., rtol=rcond)`` (see the module docstring for why). The working covariance is
    taken with scale 1: the scale cancels between ``B^-1`` and ``s_g``. Returns a k x k array in the order of
    ``gee_result.params``.
    """
    import statsmodels.api as sm

    model = gee_result.model
    # statsmodels' Probit, Cauchy and CLogLog links subclass Logit: an isinstance check would let them through
    if not isinstance(model.family, sm.families.Binomial) or type(model.family.link) is not sm.families.links.Logit:
        raise ValueError("mancl_derouen_cov needs a binomial GEE with logit link")
    if not isinstance(model.cov_struct, sm.cov_struct.Exchangeable):
        raise ValueError("mancl_derouen_cov needs an exchangeable working correlation")
    if model.weights is not None:
        raise ValueError("mancl_derouen_cov does not handle GEE weights")
    alpha = float(np.ravel(model.cov_struct.dep_params)[0])
    params = np.asarray(gee_result.params, dtype=float)
    offsets = model.offset_li if model.offset_li is not None else [0.0] * len(model.exog_li)

    clusters = []  # per cluster: D_g, V_g^-1 D_g and the raw residuals r_g
    for endog, exog, offset in zip(model.endog_li, model.exog_li, offsets):
        mu = expit(exog @ params + offset)
        variance = mu * (1 - mu)
        deriv = exog * variance[:, None]
        correlation = np.full((len(mu), len(mu)), alpha)
        np.fill_diagonal(correlation, 1.0)
        sd = np.sqrt(variance)
        clusters.append((deriv, np.linalg.solve(correlation * np.outer(sd, sd), deriv), endog - mu))

    k = len(params)
    bread = np.linalg.inv(sum(deriv.T @ vinv_deriv for deriv, vinv_deriv, _ in clusters))
    meat = np.zeros((k, k))
    for deriv, vinv_deriv, resid in clusters:
        leverage = deriv @ bread @ vinv_deriv.T  # H_gg = D_g B^-1 D_g' V_g^-1 (V_g symmetric)
        adjusted = np.linalg.pinv(np.eye(len(resid)) - leverage, rtol=rcond) @ resid
        score = vinv_deriv.T @ adjusted  # s_g = D_g' V_g^-1 (I - H_gg)^+ r_g
        meat += np.outer(score, score)
    return bread @ meat @ bread
