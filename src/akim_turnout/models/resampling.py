"""Resampling tests with few clusters: the restricted wild cluster bootstrap (race level) and the permutation test
(regional level), each with an exact check in the tests (every sign vector, every permutation of a small sample).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from akim_turnout.models.design import check_identified
from akim_turnout.models.fastfit import prepare_races
from akim_turnout.models.inference import captured_warnings
from akim_turnout.models.race import fit_counts_glm, fit_race_glm
from akim_turnout.models.regional import (
    checked_sandwich,
    checked_share,
    fit_fractional_logit,
    main_term,
    regional_arrays,
)
from akim_turnout.pipeline.outputs import stated

WILD_WEIGHTS = {
    "rademacher": np.array([-1.0, 1.0]),
    # Webb (2014) six-point distribution, better with few clusters.
    "webb": np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]),
}


@dataclass(frozen=True, eq=False)
class PermutationResult:
    """Permutation test of one regional coefficient."""

    term: str
    statistic: str
    observed: float
    null_distribution: np.ndarray
    p_value: float
    n_permutations: int
    n_obs: int
    n_failed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (null distribution summarised by quantiles), at stated precision."""
        null = self.null_distribution[np.isfinite(self.null_distribution)]
        return stated(
            {
                "term": self.term,
                "statistic": self.statistic,
                "observed": self.observed,
                "p_value": self.p_value,
                "n_permutations": self.n_permutations,
                "n_obs": self.n_obs,
                "n_failed": self.n_failed,
                "null_quantiles": dict(
                    zip(["q025", "q50", "q975"], np.quantile(null, [0.025, 0.5, 0.975]), strict=True)
                ),
            }
        )


def _regional_statistic(
    share: np.ndarray, exog: np.ndarray, weights: np.ndarray | None, k: int, statistic: str, cov_type: str
) -> float:
    """Coefficient k, or its robust t-value, from one fractional-logit fit."""
    raw = fit_fractional_logit(share, exog, weights)
    if statistic == "coef":
        return float(raw.params[k])
    return float(raw.params[k] / math.sqrt(checked_sandwich(raw, cov_type, "permutation")[k, k]))


PERMUTATION_ENGINES = ("fast", "statsmodels")


def permutation_test(
    df: pd.DataFrame,
    predictor: str,
    covariates: Sequence[str] = (),
    weight: str | None = None,
    n_permutations: int = 999,
    seed: int = 0,
    statistic: str = "t",
    outcome: str = "turnout_pct",
    region: str = "region",
    cov_type: str = "HC3",
    engine: str = "fast",
    permutations: Sequence[Sequence[int]] | None = None,
) -> PermutationResult:
    """Permutation test for ``predictor`` in the regional fractional logit.

    The predictor's values are permuted across the complete regions (other
    columns fixed) ``n_permutations`` times with ``default_rng(seed)``. The
    statistic is the robust t-value (``"t"``, default) or the coefficient
    (``"coef"``); the two-sided p-value is ``(k + 1) / (n + 1)`` with ``k``
    the permutations whose absolute statistic reaches the observed one.
    Permutations whose fit fails are counted in ``n_failed`` and excluded.

    ``engine="fast"`` computes the permutation distribution for all permutations at once
    (:func:`models.fastfit.permutation_statistics`, same numbers as statsmodels to about 1e-12, permutations
    it declines refitted by statsmodels); ``"statsmodels"`` refits each permutation with statsmodels. The observed
    statistic is statsmodels' in both.

    ``permutations`` (for exact checks): orders of the complete regions, each a permutation of ``range(n)``, applied
    to the predictor instead of random ones; ``n_permutations`` is then their number and ``seed`` is unused. Passing
    all ``n! - 1`` non-identity orders gives the exact permutation p-value. Without it nothing changes.
    """
    if statistic not in ("t", "coef"):
        raise ValueError("statistic must be 't' or 'coef'")
    if engine not in PERMUTATION_ENGINES:
        raise ValueError(f"engine must be one of {PERMUTATION_ENGINES}, got {engine!r}")
    predictors = [predictor, *covariates]
    kept, _, exog, names = regional_arrays(df, predictors, weight, outcome, region)
    check_identified(exog, names, "permutation_test")
    k = names.index(main_term(predictors, None))
    share = checked_share(kept, outcome, region, "permutation_test")
    weights = kept[weight].to_numpy(dtype=float) if weight else None
    weights = None if weights is None else weights / weights.mean()
    rng = np.random.default_rng(seed)
    if permutations is None:
        columns = [rng.permutation(exog[:, k]) for _ in range(n_permutations)]
    else:
        orders = [np.asarray(order, dtype=np.int64) for order in permutations]
        if any(sorted(order.tolist()) != list(range(len(share))) for order in orders):
            raise ValueError(f"each permutation must be an order of range({len(share)}), the complete regions")
        columns = [exog[order, k] for order in orders]
        n_permutations = len(columns)
    with captured_warnings():
        observed = compared = _regional_statistic(share, exog, weights, k, statistic, cov_type)
        if engine == "fast":
            null, compared = _fast_permutation_null(share, exog, weights, k, statistic, cov_type, columns)
        else:
            null = np.array([_permuted_statistic(share, exog, weights, k, statistic, cov_type, c) for c in columns])
    valid = null[np.isfinite(null)]
    exceed = int(np.sum(np.abs(valid) >= abs(compared) * (1 - 1e-12)))
    return PermutationResult(
        term=names[k],
        statistic=statistic,
        observed=observed,
        null_distribution=null,
        p_value=(exceed + 1) / (len(valid) + 1),
        n_permutations=n_permutations,
        n_obs=len(share),
        n_failed=int(len(null) - len(valid)),
    )


def _permuted_statistic(
    share: np.ndarray,
    exog: np.ndarray,
    weights: np.ndarray | None,
    k: int,
    statistic: str,
    cov_type: str,
    column: np.ndarray,
) -> float:
    """Statistic with design column k replaced by its permuted ``column``; NaN if the fit fails."""
    permuted = exog.copy()
    permuted[:, k] = column
    try:
        return _regional_statistic(share, permuted, weights, k, statistic, cov_type)
    except (ValueError, np.linalg.LinAlgError):
        return float("nan")


def _fast_permutation_null(
    share: np.ndarray,
    exog: np.ndarray,
    weights: np.ndarray | None,
    k: int,
    statistic: str,
    cov_type: str,
    permuted_columns: list[np.ndarray],
) -> tuple[np.ndarray, float]:
    """Permutation distribution by :mod:`models.fastfit` (same draws as :func:`_permuted_statistic`), and the
    observed statistic computed the same way, so that a permutation reproducing the data ties with it exactly."""
    from akim_turnout.models import fastfit

    columns = [exog[:, k], *permuted_columns]
    values, declined = fastfit.permutation_statistics(share, exog, weights, k, columns, statistic, cov_type)
    for i in np.flatnonzero(declined):
        permuted = exog.copy()
        permuted[:, k] = columns[i]
        try:
            values[i] = _regional_statistic(share, permuted, weights, k, statistic, cov_type)
        except (ValueError, np.linalg.LinAlgError):
            values[i] = float("nan")
    return values[1:], float(values[0])


@dataclass(frozen=True, eq=False)
class WildBootstrapResult:
    """Restricted wild cluster score bootstrap for one coefficient."""

    term: str
    estimate: float
    null_value: float
    statistic: float
    p_value: float
    ci_lower: float
    ci_upper: float
    n_boot: int
    n_clusters: int
    weights: str
    seed: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary at stated precision."""
        return stated({f: getattr(self, f) for f in self.__dataclass_fields__})


@dataclass(frozen=True)
class _ScoreBootstrap:
    """Fixed pieces of a score bootstrap: data, term position and weight draws."""

    endog: np.ndarray
    exog: np.ndarray
    clusters: np.ndarray
    n_clusters: int
    k: int
    draws: np.ndarray
    solver: str


def _restricted_cluster_influence(boot: _ScoreBootstrap, null_value: float, start: np.ndarray) -> np.ndarray:
    """Per-cluster influence on the tested coefficient, at the estimate with it fixed to ``null_value``.

    Fits the model with the coefficient fixed (as an offset), then
    ``psi_g = e_k' H^-1 S_g`` with ``S_g`` the cluster score sums and ``H``
    the information, both at the restricted estimate.
    """
    others = np.delete(np.arange(boot.exog.shape[1]), boot.k)
    raw, _ = fit_counts_glm(
        boot.endog, boot.exog[:, others], boot.solver, start[others], offset=null_value * boot.exog[:, boot.k]
    )
    params = np.insert(np.asarray(raw.params), boot.k, null_value)
    mu = expit(boot.exog @ params)
    trials = boot.endog.sum(axis=1)
    resid = boot.endog[:, 0] - trials * mu
    info = boot.exog.T @ (boot.exog * (trials * mu * (1 - mu))[:, None])
    direction = np.linalg.solve(info, np.eye(len(params))[boot.k])
    return np.bincount(boot.clusters, weights=resid * (boot.exog @ direction), minlength=boot.n_clusters)


def _score_bootstrap_p(boot: _ScoreBootstrap, null_value: float, start: np.ndarray) -> tuple[float, float]:
    """Studentised score statistic and its symmetric bootstrap p-value under ``null_value``."""
    psi = _restricted_cluster_influence(boot, null_value, start)
    observed = psi.sum() / math.sqrt(psi @ psi)
    perturbed = boot.draws @ psi
    spread = np.sqrt((boot.draws**2) @ (psi**2))
    boot_stats = perturbed / spread
    return observed, float(np.mean(np.abs(boot_stats) >= abs(observed) * (1 - 1e-12)))


def _invert_bound(boot: _ScoreBootstrap, estimate: float, step: float, start: np.ndarray, alpha: float) -> float:
    """Bound of the CI on one side (sign of ``step``): the null where p first drops below alpha."""
    inside, outside = estimate, estimate + step
    for _ in range(12):
        if _score_bootstrap_p(boot, outside, start)[1] < alpha:
            break
        inside, outside = outside, outside + step
        step *= 2
    else:
        return float("nan")
    for _ in range(40):
        middle = (inside + outside) / 2
        if _score_bootstrap_p(boot, middle, start)[1] < alpha:
            outside = middle
        else:
            inside = middle
        if abs(outside - inside) < 1e-6 * abs(step):
            break
    return (inside + outside) / 2


def wild_cluster_bootstrap(
    df: pd.DataFrame,
    formula_rhs: str,
    term: str,
    n_boot: int = 999,
    seed: int = 0,
    weights: str = "webb",
    cluster: str = "region",
    null_value: float = 0.0,
    alpha: float = 0.05,
    ci: bool = True,
    voted: str = "voted",
    registered: str = "registered",
    solver: str = "newton",
    draws: np.ndarray | None = None,
) -> WildBootstrapResult:
    """Restricted (null-imposed) wild cluster bootstrap-t for one coefficient of the race GLM.

    Score-bootstrap form for a nonlinear model (Kline & Santos 2012; the
    WCR score bootstrap of Roodman et al. 2019): the binomial GLM is fitted
    with ``term`` fixed at the null; each cluster's influence on ``term``
    is ``psi_g = e_k' H^-1 S_g`` (cluster score sum ``S_g``, information
    ``H``, both at the restricted estimate). The statistic is
    ``sum(psi) / sqrt(sum(psi^2))`` and its bootstrap replicates multiply
    ``psi_g`` by cluster weights ``v_g`` (Webb six-point or Rademacher,
    ``default_rng(seed)``), restudentised. p-value: share of replicates with
    ``|t*| >= |t|``. The CI collects the nulls not rejected at ``alpha``
    (test inversion by bisection, same weight draws for every null).

    ``draws`` (for exact checks): an ``(n, G)`` array of cluster weights, one row per replicate, columns in sorted
    cluster order, used instead of random draws; ``n_boot`` is then its number of rows and ``seed`` is unused.
    Passing every sign vector (``2^G`` Rademacher, ``6^G`` Webb) gives the exact wild bootstrap p-value. Without it
    nothing changes.
    """
    if weights not in WILD_WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WILD_WEIGHTS)}")
    fit = fit_race_glm(df, formula_rhs, cluster, voted, registered, solver=solver)
    data = prepare_races(df, formula_rhs, cluster, voted, registered, "wild_cluster_bootstrap")
    if draws is None:
        rng = np.random.default_rng(seed)
        draws = rng.choice(WILD_WEIGHTS[weights], size=(n_boot, data.n_clusters))
    else:
        draws = np.asarray(draws, dtype=float)
        if draws.ndim != 2 or draws.shape[1] != data.n_clusters:
            raise ValueError(f"draws must have one column per cluster ({data.n_clusters}), got shape {draws.shape}")
        n_boot = draws.shape[0]
    boot = _ScoreBootstrap(
        np.column_stack([data.voted, data.registered - data.voted]),
        data.exog,
        data.clusters,
        data.n_clusters,
        data.names.index(term),
        draws,
        solver,
    )
    start = fit.params.to_numpy()
    statistic, p_value = _score_bootstrap_p(boot, null_value, start)
    estimate = float(fit.params[term])
    lower = upper = float("nan")
    if ci:
        step = float(fit.bse[term])
        lower = _invert_bound(boot, estimate, -step, start, alpha)
        upper = _invert_bound(boot, estimate, step, start, alpha)
    notes = []
    if weights == "rademacher" and 2**data.n_clusters <= n_boot:
        notes.append(f"only {2**data.n_clusters} distinct Rademacher draws exist for {data.n_clusters} clusters")
    return WildBootstrapResult(
        term,
        estimate,
        null_value,
        float(statistic),
        p_value,
        float(lower),
        float(upper),
        n_boot,
        data.n_clusters,
        weights,
        seed,
        tuple(notes),
    )


@dataclass(frozen=True, eq=False)
class JointTestResult:
    """Joint permutation test of a specification curve (Simonsohn, Simmons & Nelson 2020): the median slope and the
    share of specifications whose 95 % interval excludes zero, against their distributions under the null of no
    association."""

    n_specifications: int
    observed_median: float
    observed_excluding: int
    observed_share: float
    p_median: float
    p_share: float
    n_permutations: int
    n_failed: int
    seed: int | None
    null_median: np.ndarray
    null_share: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary at stated precision (null distributions by quantiles)."""

        def quantiles(values: np.ndarray) -> dict[str, float]:
            values = values[np.isfinite(values)]
            return dict(zip(["q025", "q50", "q975"], np.quantile(values, [0.025, 0.5, 0.975]), strict=True))

        return stated(
            {
                "n_specifications": self.n_specifications,
                "observed_median_pp": self.observed_median,
                "observed_excluding_zero": self.observed_excluding,
                "observed_share_excluding_zero": self.observed_share,
                "p_median": self.p_median,
                "p_share": self.p_share,
                "n_permutations": self.n_permutations,
                "n_failed": self.n_failed,
                "seed": self.seed,
                "null_median_quantiles_pp": quantiles(self.null_median),
                "null_share_quantiles": quantiles(self.null_share),
            }
        )


def _batch_fractional_logit(
    shares: np.ndarray, exog: np.ndarray, weights: np.ndarray, maxiter: int = 100, tol: float = 1e-11
) -> np.ndarray:
    """Maximum-likelihood estimates of the fractional logit (binomial GLM, ``var_weights``) of each row of
    ``shares`` (P x n) on one design ``exog`` (n x k): iteratively reweighted least squares from statsmodels' start
    (``mu = (y + 0.5) / 2``) until no estimate moves by more than ``tol``; NaN rows where it fails."""
    mu = (shares + 0.5) / 2
    eta = np.log(mu / (1 - mu))
    params = np.full((len(shares), exog.shape[1]), np.nan)
    with np.errstate(all="ignore"):
        for _ in range(maxiter):
            w = weights * mu * (1 - mu)
            working = eta + (shares - mu) / (mu * (1 - mu))
            info = np.einsum("ni,pn,nj->pij", exog, w, exog)
            try:
                new = np.linalg.solve(info, np.einsum("ni,pn->pi", exog, w * working)[..., None])[..., 0]
            except np.linalg.LinAlgError:
                return np.full_like(params, np.nan)
            moved = np.nanmax(np.abs(new - params), axis=1) if np.isfinite(params).all() else np.inf
            params = new
            eta = params @ exog.T
            mu = 1 / (1 + np.exp(-eta))
            if np.all(moved < tol):
                break
        else:
            params[:] = np.nan
    params[~np.all(np.isfinite(params), axis=1)] = np.nan
    return params


def _batch_influence(
    shares: np.ndarray, exog: np.ndarray, weights: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each fit: the mean ``mu`` (P x n), leverages (P x n) and the inverse information (P x k x k)."""
    mu = 1 / (1 + np.exp(-(params @ exog.T)))
    hw = weights * mu * (1 - mu)
    info_inv = np.linalg.inv(np.einsum("ni,pn,nj->pij", exog, hw, exog))
    leverage = hw * np.einsum("ni,pij,nj->pn", exog, info_inv, exog)
    return mu, leverage, info_inv


def _batch_ame(
    shares: np.ndarray,
    exog: np.ndarray,
    weights: np.ndarray | None,
    k: int,
    step: float,
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each row of ``shares``, as :func:`models.specification.fit_specification` computes it: the average
    marginal effect of ``step`` of column ``k`` (pp; averaged with ``weights``), its 95 % t interval (HC3 delta
    method, ``n - k`` df), whether it is estimable (:func:`models.inference.estimability`, the interval within
    the turnout scale), and Cook's distance of each region (up to a common factor)."""
    from akim_turnout.models import inference

    n, n_params = exog.shape
    fit_weights = np.ones(n) if weights is None else weights / weights.mean()
    params = _batch_fractional_logit(shares, exog, fit_weights)
    nan = np.full(len(shares), np.nan)
    bad = ~np.isfinite(params[:, 0])
    params = np.where(bad[:, None], 0.0, params)
    with np.errstate(all="ignore"):
        mu, leverage, info_inv = _batch_influence(shares, exog, fit_weights, params)
        scores = (fit_weights * (shares - mu))[:, :, None] * exog[None] / (1 - leverage)[:, :, None]
        cov = info_inv @ np.einsum("pni,pnj->pij", scores, scores) @ info_inv
        averaging = np.full(n, 1 / n) if weights is None else weights / weights.sum()
        density = mu * (1 - mu)
        mean_density = density @ averaging
        curvature = np.einsum("ni,pn->pi", exog, averaging * density * (1 - 2 * mu))
        gradient = params[:, k, None] * curvature
        gradient[:, k] += mean_density
        se = np.sqrt(np.einsum("pi,pij,pj->p", gradient, cov, gradient))
        ame = 100 * mean_density * params[:, k]
        q = inference.quantile(1 - alpha / 2, n - n_params)
        lower, upper = ame - q * 100 * se, ame + q * 100 * se
        pearson = np.sqrt(fit_weights) * (shares - mu) / np.sqrt(density)
        cooks = pearson**2 * leverage / (1 - leverage) ** 2
    estimable = (
        ~bad
        & (n - n_params >= inference.MIN_DF_RESID)
        & (leverage.max(axis=1) <= inference.MAX_LEVERAGE)
        & np.isfinite(se)
        & (lower >= -100)
        & (upper <= 100)
    )
    ame, lower, upper = (np.where(estimable, step * v, nan) for v in (ame, lower, upper))
    return ame, lower, upper, np.where(bad[:, None], np.nan, cooks)


def _joint_draws(turnout: np.ndarray, spec: Any, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One specification under every draw: the effect, interval bounds (NaN where not estimable in that draw)."""
    rows = spec.rows
    observed = turnout[rows] / 100
    # within the regions the specification uses, the region with the i-th smallest key gets the i-th turnout
    shares = np.empty((len(keys), len(rows)))
    np.put_along_axis(shares, np.argsort(keys[:, rows], axis=1, kind="stable"), observed[None], axis=1)
    ame, lower, upper, cooks = _batch_ame(shares, spec.exog, spec.weights, spec.k, spec.step)
    if not spec.drop_influential:
        return ame, lower, upper
    dropped = np.argmax(np.nan_to_num(cooks, nan=-1.0), axis=1)
    ame, lower, upper = (np.full(len(keys), np.nan) for _ in range(3))
    failed = ~np.isfinite(cooks).all(axis=1)
    for j in np.unique(dropped):
        draws = np.flatnonzero((dropped == j) & ~failed)
        keep = np.delete(np.arange(len(rows)), j)
        weights = None if spec.weights is None else spec.weights[keep]
        result = _batch_ame(shares[np.ix_(draws, keep)], spec.exog[keep], weights, spec.k, spec.step)
        ame[draws], lower[draws], upper[draws] = result[:3]
    return ame, lower, upper


def _curve_statistics(
    ame: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw (columns: specifications): the median effect, the count and the share of estimable specifications
    whose interval excludes zero (NaN where none is estimable)."""
    estimable = np.isfinite(ame)
    excluding = estimable & ((np.nan_to_num(lower) > 0) | (np.nan_to_num(upper) < 0))
    count = estimable.sum(axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(ame, axis=1)
        share = np.where(count > 0, excluding.sum(axis=1) / np.maximum(count, 1), np.nan)
    return median, excluding.sum(axis=1), share


def joint_curve_test(
    turnout_pct: np.ndarray,
    specifications: Sequence[Any],
    n_permutations: int = 999,
    seed: int = 0,
    permutations: Sequence[Sequence[int]] | None = None,
) -> JointTestResult:
    """Joint permutation test of a specification curve (Simonsohn, Simmons & Nelson 2020, inference across
    specifications) under the null of no association between turnout and the regions' characteristics.

    ``turnout_pct``: the turnout (%) of every region of the regional frame; ``specifications``: the estimable
    specifications (:func:`models.specification.joint_inputs`: the rows each uses, its design, weights, whether the
    most influential region is dropped, the step). Each draw is one order of all regions (``default_rng(seed)``):
    within the regions a specification uses, turnout is permuted by that order (the region placed i-th among them
    gets the i-th of their turnouts), so every specification sees a uniform permutation of its own regions and all
    see the same draw. In each draw every specification is refitted (the most influential region found and dropped
    again where it is one of the choices), by batched numpy (:func:`_batch_ame`, the fit and HC3 interval of
    :func:`models.specification.fit_specification`); a specification not estimable in a draw is left out of that
    draw. Statistics: the median effect of the estimable specifications (two-sided: ``|median|``) and the share of
    them whose 95 % interval excludes zero; p-values ``(k + 1) / (n + 1)`` with ``k`` the draws at least as extreme;
    draws with no estimable specification are counted in ``n_failed`` and left out.

    ``permutations`` (for exact checks): orders of ``range(len(turnout_pct))`` instead of random ones;
    ``n_permutations`` is then their number and ``seed`` unused. All ``N! - 1`` non-identity orders give the exact
    p-values.
    """
    turnout = np.asarray(turnout_pct, dtype=float)
    n = len(turnout)
    if not len(specifications):
        raise ValueError("the joint test needs at least one estimable specification")
    if not np.all(np.isfinite(turnout)) or np.any((turnout < 0) | (turnout > 100)):
        raise ValueError("turnout_pct must be finite percentages within [0, 100]")
    if permutations is None:
        if n_permutations < 1:
            raise ValueError("n_permutations must be at least 1")
        rng = np.random.default_rng(seed)
        orders = np.array([rng.permutation(n) for _ in range(n_permutations)], dtype=np.int64).reshape(-1, n)
    else:
        orders = np.asarray(permutations, dtype=np.int64).reshape(-1, n) if len(permutations) else np.zeros((0, n))
        if any(sorted(order.tolist()) != list(range(n)) for order in orders):
            raise ValueError(f"each permutation must be an order of range({n}), the regions")
        seed = None
    orders = np.vstack([np.arange(n)[None], orders]).astype(np.int64)  # the first 'draw' is the data itself
    keys = np.empty_like(orders)
    np.put_along_axis(keys, orders, np.arange(n)[None], axis=1)  # keys[d, r]: position of region r in order d
    columns = [_joint_draws(turnout, spec, keys) for spec in specifications]
    ame, lower, upper = (np.column_stack([c[i] for c in columns]) for i in range(3))
    median, excluding, share = _curve_statistics(ame, lower, upper)
    if not np.isfinite(median[0]):
        raise ValueError("no specification is estimable on the data themselves")
    null_median, null_share = median[1:], share[1:]
    valid = np.isfinite(null_median)
    tolerance = 1 - 1e-12
    k_median = int(np.sum(np.abs(null_median[valid]) >= abs(median[0]) * tolerance))
    k_share = int(np.sum(null_share[valid] >= share[0] * tolerance))
    return JointTestResult(
        n_specifications=len(specifications),
        observed_median=float(median[0]),
        observed_excluding=int(excluding[0]),
        observed_share=float(share[0]),
        p_median=(k_median + 1) / (int(valid.sum()) + 1),
        p_share=(k_share + 1) / (int(valid.sum()) + 1),
        n_permutations=len(orders) - 1,
        n_failed=int((~valid).sum()),
        seed=seed,
        null_median=null_median,
        null_share=null_share,
    )
