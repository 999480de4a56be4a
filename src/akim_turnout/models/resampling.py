"""Resampling tests with few clusters: the restricted wild cluster bootstrap (race level) and the permutation test
(regional level), each with an exact check in the tests (every sign vector, every permutation of a small sample).
"""

from __future__ import annotations

import math
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
