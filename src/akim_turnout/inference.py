"""Inference shared by the race-level models: the bias-reduced (Mancl-DeRouen) covariance of a GEE fit.

statsmodels' ``GEE.fit(cov_type="bias_reduced")`` corrects each cluster's residuals by ``(I - H_gg)^-1`` with
``H_gg = D_g A^-1 D_g' V_g^-1`` (Mancl & DeRouen 2001; ``A`` the naive information, ``D_g`` the mean derivatives and
``V_g`` the working covariance of cluster ``g``), solving with ``numpy.linalg.solve``. When the mean model has a
dummy for each region (``C(region)``) and clusters are regions, ``I - H_gg`` is singular in exact arithmetic: the
region's own dummy column ``D_g e_k`` is an eigenvector of ``H_gg`` with eigenvalue 1, because that column is zero
outside the region. In floating point the matrix is then *nearly* singular, so whether ``solve`` raises ("Singular
matrix") or returns a huge, noise-driven correction depends on the last bits of the fit, which differ between CPUs.

:func:`mancl_derouen_cov` uses the Moore-Penrose generalized inverse instead (as Pustejovsky & Tipton 2018 do for
small-sample corrections with absorbed fixed effects): singular values below ``rcond`` times the largest are set to
zero. The residuals have no component along the null direction (it is the region dummy's score equation, zero at
the estimate), so nothing is lost, and the result is the ordinary Mancl-DeRouen covariance wherever ``I - H_gg`` is
invertible. The outcome no longer depends on rounding noise: no fit fails for this reason on any machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_RCOND = 1e-10


def mancl_derouen_cov(result: Any, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Bias-reduced (Mancl-DeRouen) covariance of a fitted statsmodels GEE, with a generalized inverse.

    ``result`` is a ``GEEResults`` of an unweighted GEE (any ``cov_type``; its naive covariance and final
    estimates are used). ``rcond``: relative cut-off for the singular values of each ``I - H_gg``.
    """
    model = result.model
    if model.weights is not None:
        raise ValueError("mancl_derouen_cov: weighted GEE is not supported")
    model.update_cached_means(np.asarray(result.params))
    cov_naive = np.asarray(result.cov_naive) / model.scaling_factor
    scale = model.estimate_scale()
    meat = np.zeros_like(cov_naive)
    for group in range(model.num_group):
        expected, linear = model.cached_means[group]
        resid = model.endog_li[group] - expected
        deriv = model.mean_deriv(model.exog_li[group], linear)
        sdev = np.sqrt(model.family.variance(expected))
        vinv_deriv = model.cov_struct.covariance_matrix_solve(expected, group, sdev, (deriv,))[0] / scale
        hat = deriv @ cov_naive @ vinv_deriv.T
        adjusted = np.linalg.pinv(np.eye(len(resid)) - hat, rcond=rcond) @ resid
        vinv_adjusted = model.cov_struct.covariance_matrix_solve(expected, group, sdev, (adjusted,))[0]
        score = deriv.T @ vinv_adjusted / scale
        meat += np.outer(score, score)
    return cov_naive @ meat @ cov_naive * model.scaling_factor
