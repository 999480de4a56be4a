"""Inference shared by the regional and race-level models: the fitted-model record (:class:`FitResult`) with its
t- or normal-based intervals, when a fit supports inference at all (:func:`estimability`), sandwich covariances
(HC0/HC1/HC3 for GLMs, :func:`glm_sandwich_cov`; bias-reduced for GEE, :func:`mancl_derouen_cov`), average
marginal effects by the delta method, and the capture of statsmodels' warnings into the results.

statsmodels (0.15) behaviour this works around: ``get_margeff()`` uses normal quantiles whatever ``use_t`` says,
takes its standard errors from the result's own covariance and ignores ``var_weights``, so average marginal
effects are computed here.

The bias-reduced (Mancl-DeRouen) covariance for a binomial GEE with exchangeable working correlation.

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

The tolerance ``rcond`` cuts singular values of each ``I - H_gg`` up to ``rcond`` times the larger of 1 and its
largest singular value (:func:`generalized_inverse`); its default ``sqrt(machine epsilon)`` is that of
``MASS::ginv``. The null singular value sits near 1e-16 and the others near 1 (their values are in the reference
results), so any cut between about 1e-12 and 1e-2 gives the same matrix. The floor 1 (the scale of the identity
``I - H_gg`` departs from) matters for a cluster whose rows its own parameters fit exactly, e.g. a region with one
race and its own dummy: there ``H_gg = I``, every singular value of ``I - H_gg`` is rounding noise, and a cut
relative to the largest one alone would keep them and divide a zero residual by a zero singular value (a
rounding-dependent result, about 1e-16 / 4e-16). With the floor the block is cut to zero and the cluster adds
nothing to the meat, its exact value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri, stdtr, stdtrit

from akim_turnout.pipeline.outputs import stated

DEFAULT_RCOND = float(np.sqrt(np.finfo(float).eps))

# A fit reports intervals, p-values and marginal effects only with enough residual degrees of freedom and no
# observation that fixes its own fitted value (leverage near 1, where HC3 divides its score by 1 - h).
MIN_DF_RESID = 4
MAX_LEVERAGE = 0.8


def estimability(df_resid: float | None, max_leverage: float | None) -> str:
    """'' if a fit with these residual degrees of freedom and largest leverage supports inference, else the reason."""
    reasons = []
    if df_resid is not None and df_resid < MIN_DF_RESID:
        reasons.append(f"{df_resid:g} residual degrees of freedom (fewer than {MIN_DF_RESID})")
    if max_leverage is not None and max_leverage > MAX_LEVERAGE:
        reasons.append(f"one observation has leverage {max_leverage:.2f} (above {MAX_LEVERAGE})")
    return "; ".join(reasons)


def mancl_derouen_cov(gee_result: Any, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Mancl-DeRouen bias-reduced covariance of a fitted statsmodels GEE (binomial, logit, exchangeable).

    ``gee_result`` is the results object of ``statsmodels.api.GEE(...).fit()`` (``FitResult.raw`` of
    :func:`akim_turnout.models.race.fit_race_gee`), fitted without weights. ``(I - H_gg)`` is inverted with
    :func:`generalized_inverse` (see the module docstring for why). The working covariance is
    taken with scale 1: the scale cancels between ``B^-1`` and ``s_g``. Returns a k x k array in the order of
    ``gee_result.params``.
    """
    from statsmodels.genmod import cov_struct, families

    model = gee_result.model
    # statsmodels' Probit, Cauchy and CLogLog links subclass Logit: an isinstance check would let them through
    if not isinstance(model.family, families.Binomial) or type(model.family.link) is not families.links.Logit:
        raise ValueError("mancl_derouen_cov needs a binomial GEE with logit link")
    if not isinstance(model.cov_struct, cov_struct.Exchangeable):
        raise ValueError("mancl_derouen_cov needs an exchangeable working correlation")
    if model.weights is not None:
        raise ValueError("mancl_derouen_cov does not handle GEE weights")
    alpha = float(np.ravel(model.cov_struct.dep_params)[0])
    params = np.asarray(gee_result.params, dtype=float)
    offsets = model.offset_li if model.offset_li is not None else [0.0] * len(model.exog_li)

    clusters = []  # per cluster: D_g, V_g^-1 D_g and the raw residuals r_g
    for endog, exog, offset in zip(model.endog_li, model.exog_li, offsets, strict=True):
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
        adjusted = generalized_inverse(np.eye(len(resid)) - leverage, rcond) @ resid
        score = vinv_deriv.T @ adjusted  # s_g = D_g' V_g^-1 (I - H_gg)^+ r_g
        meat += np.outer(score, score)
    return bread @ meat @ bread


def generalized_inverse(matrix: np.ndarray, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Moore-Penrose inverse of ``matrix`` cutting singular values ``<= rcond * max(1, largest singular value)``.

    For ``I - H_gg`` of :func:`mancl_derouen_cov`, whose scale is that of the identity: a block that is zero up to
    rounding (``H_gg = I``) is inverted to zero instead of to the inverse of its rounding noise.
    """
    u, singular, vt = np.linalg.svd(np.asarray(matrix, dtype=float))
    cut = rcond * max(1.0, float(singular[0])) if singular.size else 0.0
    inverse = np.divide(1.0, singular, out=np.zeros_like(singular), where=singular > cut)
    return (vt.T * inverse) @ u.T


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect warnings raised inside the block as 'Category: message' strings.

    The list is filled when the block exits; duplicates are dropped, order kept.
    Used around every fit so that ConvergenceWarning, PerfectSeparationWarning,
    SpecificationWarning and others are recorded in the result, not printed.
    """
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for item in caught:
        text = f"{item.category.__name__}: {item.message}"
        if text not in messages:
            messages.append(text)


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted model, reduced to what reports need.

    ``df_resid`` is the degrees of freedom used for t-based inference
    (clusters - 1 for clustered fits); ``None`` when inference is normal.
    ``cov_params`` and ``raw`` (the statsmodels results object) are kept for
    marginal effects and are left out of :meth:`to_dict`.
    """

    name: str
    family: str
    formula: str
    params: pd.Series
    bse: pd.Series
    conf_int: pd.DataFrame
    pvalues: pd.Series
    n_obs: int
    n_clusters: int | None
    cov_type: str
    use_t: bool
    df_resid: float | None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    cov_params: pd.DataFrame | None = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False)

    @property
    def not_estimable(self) -> str:
        """Why this fit cannot support inference ('' when it can): see :func:`estimability`; a fit that could not
        be computed at all carries its reason in ``extra["not_estimable"]``."""
        return self.extra.get("not_estimable") or estimability(self.df_resid, self.extra.get("max_leverage"))

    def to_frame(self) -> pd.DataFrame:
        """Tidy coefficient table, one row per term. For a fit that is not estimable (:attr:`not_estimable`) the
        estimates, standard errors, intervals and p-values are left empty and ``status`` gives the reason: too few
        residual degrees of freedom support no reported number (the fit itself keeps them in ``params``)."""
        frame = pd.DataFrame(
            {
                "model": self.name,
                "term": self.params.index,
                "estimate": self.params.to_numpy(),
                "std_error": self.bse.to_numpy(),
                "ci_lower": self.conf_int["lower"].to_numpy(),
                "ci_upper": self.conf_int["upper"].to_numpy(),
                "p_value": self.pvalues.to_numpy(),
                "status": f"not estimable: {self.not_estimable}" if self.not_estimable else "ok",
            }
        )
        if self.not_estimable:
            frame[["estimate", "std_error", "ci_lower", "ci_upper", "p_value"]] = np.nan
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, numbers at their stated precision (:func:`pipeline.outputs.stated`)."""
        table = self.to_frame().set_index("term")
        coefficients = {
            term: {col: row[col] for col in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value")}
            for term, row in table.iterrows()
        }
        summary = {
            "name": self.name,
            "family": self.family,
            "formula": self.formula,
            "n_obs": self.n_obs,
            "n_clusters": self.n_clusters,
            "cov_type": self.cov_type,
            "use_t": self.use_t,
            "df_resid": self.df_resid,
            "coefficients": coefficients,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "extra": _strip_private(self.extra),
        }
        return stated(summary)


def quantile(probability: float, df: float | None) -> float:
    """The ``probability`` quantile of t with ``df`` degrees of freedom, or of the standard normal (``df`` None)."""
    return float(stdtrit(df, probability)) if df is not None else float(ndtri(probability))


def two_sided_p(z: Any, df: float | None) -> Any:
    """Two-sided p-value of a t (``df``) or standard normal (``df`` None) statistic."""
    tail = stdtr(df, -np.abs(z)) if df is not None else ndtr(-np.abs(z))
    return 2 * tail


def _inference(
    params: pd.Series, cov: pd.DataFrame, df: float | None, alpha: float = 0.05
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Standard errors, two-sided p-values and CIs from a covariance matrix (t if df given)."""
    bse = pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=params.index)
    z = params / bse
    pvalues = pd.Series(two_sided_p(z.to_numpy(), df), index=params.index)
    q = quantile(1 - alpha / 2, df)
    conf = pd.DataFrame({"lower": params - q * bse, "upper": params + q * bse})
    return bse, pvalues, conf


def make_result(
    name: str,
    family: str,
    formula: str,
    params: pd.Series,
    cov: pd.DataFrame,
    df: float | None,
    **kwargs: Any,
) -> FitResult:
    """FitResult with inference computed uniformly from ``cov``."""
    bse, pvalues, conf = _inference(params, cov, df)
    return FitResult(
        name=name,
        family=family,
        formula=formula,
        params=params,
        bse=bse,
        conf_int=conf,
        pvalues=pvalues,
        use_t=df is not None,
        df_resid=None if df is None else float(df),
        cov_params=cov,
        **kwargs,
    )


def glm_sandwich_cov(raw: Any, kind: str = "HC3") -> np.ndarray:
    """HC0/HC1/HC3 sandwich covariance for a fitted statsmodels GLM.

    ``H^-1 (sum_i c_i s_i s_i') H^-1`` with per-observation scores ``s_i``
    (``model.score_obs``) and Hessian ``H``; HC3 divides each score by
    ``1 - h_ii`` (GLM leverage, ``get_influence().hat_matrix_diag``), as
    R's ``sandwich::vcovHC(type = "HC3")`` does for ``glm``; HC1 multiplies
    HC0 by ``n / (n - k)``. Needed because statsmodels' GLM returns HC0 for
    every HCx ``cov_type``.
    """
    model, params = raw.model, np.asarray(raw.params)
    scores = model.score_obs(params)
    bread = np.linalg.inv(-model.hessian(params))
    n, k = scores.shape
    if kind == "HC3":
        leverage = raw.get_influence().hat_matrix_diag
        if np.any(leverage >= 1 - 1e-10):
            raise ValueError("HC3 undefined: an observation has leverage 1")
        scores = scores / (1 - leverage)[:, None]
    elif kind not in ("HC0", "HC1"):
        raise ValueError(f"kind must be HC0, HC1 or HC3, got {kind!r}")
    cov = bread @ (scores.T @ scores) @ bread
    return cov * n / (n - k) if kind == "HC1" else cov


def _mean_model_parts(fit: FitResult) -> tuple[np.ndarray, pd.Series, pd.DataFrame]:
    """Exog, mean parameters and their covariance of a logit-mean fit."""
    if fit.raw is None or fit.cov_params is None or fit.extra.get("mean_link") != "logit":
        raise ValueError(f"{fit.name}: marginal effects need a logit-mean fit with its raw results")
    exog = np.asarray(fit.raw.model.exog)
    names = list(fit.extra["design_columns"])
    return exog, fit.params[names], fit.cov_params.loc[names, names]


def average_marginal_effects(
    fit: FitResult,
    terms: Sequence[str] | None = None,
    averaging_weights: np.ndarray | None = None,
    alpha: float = 0.05,
    keep_not_estimable: bool = False,
) -> pd.DataFrame:
    """Average marginal effects in percentage points, with delta-method CIs.

    For a logit mean ``mu = expit(x'b)``, ``dmu/dx_k = mu (1 - mu) b_k``;
    the AME averages it over the fitted rows (equally, or with
    ``averaging_weights``). Dummies are treated as continuous (as
    ``get_margeff(dummy=False)``); for ``np.log(x)`` the effect is per unit
    of ``log(x)``. Standard errors use the fit's own covariance (HC3,
    clustered, ...) and CIs use the t distribution with the fit's
    ``df_resid`` when the fit is t-based. ``status`` is "ok" or says why a row
    is not estimable (the fit fails :func:`estimability`, or the interval
    reaches beyond +-100 pp); such rows have no numbers unless
    ``keep_not_estimable`` (for checking the computation itself).
    """
    exog, params, cov = _mean_model_parts(fit)
    terms = list(terms) if terms is not None else _default_terms(params.index)
    weights = np.ones(len(exog)) if averaging_weights is None else np.asarray(averaging_weights, float)
    weights = weights / weights.sum()
    mu = expit(exog @ params.to_numpy())
    density = mu * (1 - mu)
    mean_density = weights @ density
    curvature = exog.T @ (weights * density * (1 - 2 * mu))
    rows = []
    for term in terms:
        k = params.index.get_loc(term)
        gradient = params.iloc[k] * curvature
        gradient[k] += mean_density
        se = math.sqrt(gradient @ cov.to_numpy() @ gradient)
        rows.append({"term": term, "ame": mean_density * params.iloc[k], "se": se})
    return _ame_table(pd.DataFrame(rows), fit, alpha, averaging_weights is not None, keep_not_estimable)


def _default_terms(names: pd.Index) -> list[str]:
    """Non-intercept, non-dummy terms."""
    return [n for n in names if n != "Intercept" and not n.startswith("C(")]


def _ame_table(
    raw_rows: pd.DataFrame, fit: FitResult, alpha: float, weighted: bool, keep_not_estimable: bool = False
) -> pd.DataFrame:
    """Scale AMEs to percentage points and add p-values and CIs."""
    df = fit.df_resid if fit.use_t and fit.df_resid else None
    q = quantile(1 - alpha / 2, df)
    out = pd.DataFrame({"model": fit.name, "term": raw_rows["term"]})
    out["ame_pp"] = 100 * raw_rows["ame"]
    out["std_error_pp"] = 100 * raw_rows["se"]
    out["ci_lower_pp"] = out["ame_pp"] - q * out["std_error_pp"]
    out["ci_upper_pp"] = out["ame_pp"] + q * out["std_error_pp"]
    out["p_value"] = two_sided_p((raw_rows["ame"] / raw_rows["se"]).to_numpy(), df)
    out["averaging"] = "weighted" if weighted else "unweighted"
    # An effect on turnout lies within +-100 pp; an interval reaching past that carries no information.
    too_wide = (out["ci_lower_pp"] < -100) | (out["ci_upper_pp"] > 100)
    reason = fit.not_estimable
    out["status"] = np.where(too_wide, "not estimable: interval wider than the turnout scale", "ok")
    if reason:
        out["status"] = f"not estimable: {reason}"
    hidden = (out["status"] != "ok") & (not keep_not_estimable)
    out.loc[hidden, ["ame_pp", "std_error_pp", "ci_lower_pp", "ci_upper_pp", "p_value"]] = np.nan
    return out


def _strip_private(extra: dict[str, Any]) -> dict[str, Any]:
    """Drop keys starting with '_' (large arrays kept for internal use)."""
    return {k: v for k, v in extra.items() if not k.startswith("_")}


def effective_clusters(
    exog: np.ndarray,
    clusters: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    rho: float = 0.0,
) -> dict[str, Any]:
    """The effective number of clusters G* of Carter, Schnepel & Steigerwald (2017) for coefficient ``k``.

    With ``a = (X' W X)^-1 e_k`` and, per cluster g, ``u_g = W_g^(1/2) X_g a``, the cluster's contribution to the
    variance of the coefficient is ``gamma_g = (1 - rho) u_g'u_g + rho (1'u_g)^2`` (errors with unit variance and an
    equicorrelation ``rho`` within a cluster; ``W``: the weights of the fit, e.g. a GLM's working weights, none for
    OLS). With ``Gamma = mean((gamma_g - mean gamma)^2) / mean(gamma)^2``, ``G* = G / (1 + Gamma)``: G for balanced
    clusters (every ``gamma_g`` equal), fewer the more one cluster dominates. With a fixed effect per cluster the
    ``rho`` part vanishes (``1'u_g = 0``: the dummies absorb what a cluster shares), so ``rho`` changes nothing.

    Returns ``g_star``, ``n_clusters``, ``gamma_dispersion`` (Gamma), ``rho`` and ``shares``: each cluster's share
    of ``sum(gamma_g)`` (in cluster-code order).
    """
    exog = np.asarray(exog, dtype=float)
    clusters = np.asarray(clusters)
    if exog.ndim != 2 or len(clusters) != exog.shape[0]:
        raise ValueError("exog must be 2-D with one cluster label per row")
    if not 0 <= k < exog.shape[1]:
        raise ValueError(f"k must index a column of exog (0 to {exog.shape[1] - 1}), got {k}")
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    w = np.ones(len(exog)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(exog),) or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite, non-negative and one per row")
    codes, inverse = np.unique(clusters, return_inverse=True)
    if len(codes) < 2:
        raise ValueError("at least two clusters are needed")
    a = np.linalg.solve(exog.T @ (exog * w[:, None]), np.eye(exog.shape[1])[k])
    u = np.sqrt(w) * (exog @ a)
    squares = np.bincount(inverse, weights=u * u, minlength=len(codes))
    sums = np.bincount(inverse, weights=u, minlength=len(codes))
    gamma = (1 - rho) * squares + rho * sums**2
    mean = gamma.mean()
    if not mean > 1e-14 * squares.mean():
        raise ValueError(
            "no cluster contributes to the coefficient's variance (rho = 1 with a fixed effect per cluster?)"
        )
    dispersion = float(((gamma - mean) ** 2).mean() / mean**2)
    return {
        "g_star": len(codes) / (1 + dispersion),
        "n_clusters": len(codes),
        "gamma_dispersion": dispersion,
        "rho": rho,
        "shares": gamma / gamma.sum(),
    }
