"""Fast numpy paths for the many small fits of the simulation study and the permutation test.

The simulation study (:mod:`akim_turnout.study.replications`) fits a 730-row, 17-parameter design a handful of times per
replication, and :func:`akim_turnout.models.resampling.permutation_test` refits a 10-14-row regional model 1,999 times.
Through statsmodels almost all of that time is spent in model set-up, wrappers and Python loops over clusters, not
in arithmetic. This module computes the same numbers with a few array operations each. It imports numpy and scipy;
pandas and :mod:`akim_turnout.models.race` (hence statsmodels) only inside :func:`race_arrays`, whose callers have them.

What each path matches, on the same data. ``tests/models/fastfit/test_agreement_with_statsmodels.py`` pins every
path to statsmodels or to the project's statsmodels-based function at 1e-8 (relative; covariances relative to
``sqrt(c_ii c_jj)``). Measured largest differences over 40 simulated data sets of the real design (four effects and
noise levels): estimates 4e-12 (relative) or 3e-13 standard errors, covariances 5e-12, p-values 2e-11 (relative),
bootstrap statistics 1e-12 and bootstrap p-values identical (80 of 80 tests); permutation statistics 2e-11 on the
regional data. The study's published results frame (6 significant digits) of the default design was identical with
either engine.

* :func:`fit_counts_glm`: the binomial-logit GLM on counts ``[voted, registered - voted]`` of
  :func:`race.fit_race_glm` (statsmodels ``GLM(...).fit(method="newton", tol=1e-10)``): Newton's method on the
  log-likelihood from the same start. Newton converges quadratically, so once a step is below ``tol`` the estimate is
  the maximum-likelihood estimate to rounding, whichever side of ``tol`` the last step fell (the stopping rule does
  not decide anything visible). Returns

  - the model-based (naive) covariance ``(X' W X)^-1``, ``W = diag(n_i mu_i (1 - mu_i))``;
  - the cluster-robust covariance exactly as ``fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)``
    computes it: ``c H^-1 (sum_g S_g S_g') H^-1`` with ``S_g`` the cluster sums of the observation scores
    ``x_i (y_i - n_i mu_i)``, ``H`` the Hessian and ``c = G / (G - 1) * (N - 1) / (N - K)``;
  - t(G - 1) p-values and CIs as :func:`inference._inference` computes them from that covariance
    (:func:`t_inference`; normal for the naive fit, :func:`normal_inference`).

* :func:`score_bootstrap`: the restricted wild cluster score bootstrap of :func:`resampling.wild_cluster_bootstrap`
  (statistic ``sum(psi) / sqrt(sum(psi^2))`` and its p-value with the same relative tie tolerance 1e-12), the
  restricted fit done by :func:`fit_counts_glm`'s Newton with the tested coefficient as an offset. The weight draws
  are those of :func:`wild_weight_draws`, identical to the function's for the same seed, so the p-values are equal.

* :func:`fit_gee_exchangeable`: statsmodels ``GEE(share, X, groups, Binomial(), Exchangeable()).fit()`` of
  :func:`race.fit_race_gee` (unweighted): the same iteration (a Fisher-scoring step with the current working
  correlation, then the moment update of the correlation, until the score norm *before* a step is below
  ``ctol = 1e-6`` after at least one correlation update; at most 60 steps), with the closed-form inverse of the
  exchangeable working covariance summed over clusters at once. Start: statsmodels starts from a binomial GLM on the
  shares fitted by IRLS (stopped at a deviance change of 1e-8); this module starts from the same GLM's exact
  maximum-likelihood estimate. The first GEE step uses correlation 0, i.e. it is a Newton step of that very GLM,
  which squares the start's error away: the two paths agree from the first step on.
  The bias-reduced covariance is :func:`models.inference.mancl_derouen_cov` (generalized inverse), with each
  cluster's ``n_g x n_g`` pseudo-inverse reduced to a 9 x 9 one (:func:`mancl_derouen`).

* :func:`permutation_statistics`: the regional fractional logit (binomial GLM on shares, optional ``var_weights``)
  with its HC0/HC1/HC3 covariance as :func:`inference.glm_sandwich_cov`, for a whole batch of designs that differ in one
  column. statsmodels fits it by IRLS and stops when the deviance changes by at most 1e-8, which leaves the estimate
  up to about 1e-8 (relative) from the exact maximum on the regional data; IRLS is therefore replayed step by step
  (same start ``mu = (y + 0.5) / 2``, same weighted least-squares steps, same deviance and stopping rule, each design
  of the batch stopping on its own).

A path that meets anything outside the regular case it was written for raises :class:`FastPathDeclined`, and the
caller falls back to statsmodels: a Newton fit that needs more than :data:`MAX_NEWTON_STEPS` steps or reaches a linear
predictor beyond 30 (separation, where statsmodels itself falls back to IRLS and warns), non-finite values, a GEE
that would hit statsmodels' iteration limit, a working correlation outside (-1, 1) or one that makes a cluster's
working correlation matrix nearly singular (``|1 + a (n_g - 1)| < 1e-4``), a singular system. In the regular case
statsmodels emits no warning (checked on 280 study replications), so the study's warning counts do not change either.

Decisions and rounding. Newton's stopping rule sits where the result no longer moves. The GEE and IRLS stopping
rules are statsmodels' own and are evaluated on the same quantities, so the same iteration is taken unless a
criterion lies within rounding of its threshold, where statsmodels itself would stop at another iteration on another
machine (a difference of about 1e-9 (GEE) or 1e-8 (IRLS) relative in the estimates, far below the stated 6
digits). The pseudo-inverse of the bias-reduced covariance cuts the same singular values by the same rule as the
reference (relative to the larger of 1 and the largest singular value); on the simulated designs checked they sit
near 1e-14 and near 0.8, far from the cut at 1.5e-8. Leverages
within 1e-6 of the HC3 cut-off and ill-conditioned regional designs are handed to statsmodels.

* :func:`fit_random_intercept_reml`: the linear mixed model with random region intercepts of
  :func:`race.fit_race_mixedlm` (statsmodels ``MixedLM(...).fit(reml=True)``): statsmodels' BFGS on the profile
  REML likelihood replayed with the same scipy optimiser on the same function, so it stops where statsmodels stops
  (which is up to 4e-4 from the exact maximum in the group variance), and statsmodels' Hessian for the covariance.
  Measured differences on the study's design: estimates 5e-13, covariance 4e-13, variances 4e-13 (relative).

What stays on statsmodels: every reported single fit (the notebooks' models), beta regression, the weighted GEE and
the bootstrap CI by test inversion.

Why one module of this size: each fast path mirrors a statsmodels routine step by step and they share the
array preparation and the rule for declining a case; kept together, the mirror is easy to check against
statsmodels.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy import special

if TYPE_CHECKING:
    import pandas as pd

NEWTON_TOL = 1e-10  # stop when every |step| <= tol (statsmodels' Newton in race.fit_counts_glm stops at 1e-8)
MAX_NEWTON_STEPS = 50  # statsmodels allows 100 before it falls back to IRLS; regular fits need 4-8
GEE_MAXITER = 60  # statsmodels GEE.fit defaults
GEE_CTOL = 1e-6
IRLS_MAXITER = 100  # statsmodels GLM.fit defaults (IRLS)
IRLS_TOL = 1e-8
MANCL_CHUNK = 5  # data sets per stack of mancl_derouen_batch
MAX_GEE_CONDITION = 1e10  # mancl_derouen declines a GEE information B less well conditioned (regular fits: about 3e3)
TIE_TOLERANCE = 1e-12  # relative tie tolerance of resampling._score_bootstrap_p and resampling.permutation_test
DEFAULT_RCOND = float(np.sqrt(np.finfo(float).eps))  # as akim_turnout.models.inference.DEFAULT_RCOND
WILD_WEIGHTS = {  # as resampling.WILD_WEIGHTS (a test checks they are equal)
    "rademacher": np.array([-1.0, 1.0]),
    "webb": np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]),
}
_FLOAT_EPS = np.finfo(float).eps


class FastPathDeclined(RuntimeError):
    """The fast path does not handle this case (irregular data or fit); use the statsmodels path."""


# --------------------------------------------------------------------------
# Race data as arrays
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RaceArrays:
    """Validated race rows as arrays: design (intercept first), counts and integer cluster codes.

    Built directly from a complete frame by :func:`race_arrays`, or by :func:`prepare_races` (the same arrays,
    checked by the tests); cached helpers for cluster sums.
    """

    exog: np.ndarray
    names: list[str]
    voted: np.ndarray
    registered: np.ndarray
    clusters: np.ndarray
    n_clusters: int

    @cached_property
    def share(self) -> np.ndarray:
        return self.voted / self.registered

    @cached_property
    def _order(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Row order that groups clusters, the start of each cluster in it, and cluster sizes."""
        sizes = np.bincount(self.clusters, minlength=self.n_clusters)
        if np.any(sizes == 0):
            raise FastPathDeclined("empty cluster code")
        order = None if np.all(np.diff(self.clusters) >= 0) else np.argsort(self.clusters, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return order, starts, sizes

    @property
    def cluster_sizes(self) -> np.ndarray:
        return self._order[2]

    def cluster_sums(self, values: np.ndarray) -> np.ndarray:
        """Sums of ``values`` (rows first, any trailing shape) within each cluster, in cluster-code order."""
        order, starts, _ = self._order
        return np.add.reduceat(values if order is None else values[order], starts, axis=0)


@dataclass(frozen=True, eq=False)
class PreparedRaces(RaceArrays):
    """:class:`RaceArrays` of validated race rows and the rows dropped for missing values (as
    :func:`akim_turnout.models.design.drop_incomplete` reports them), for the fits' notes."""

    dropped: list[dict[str, Any]]
    n_dropped: int


def prepare_races(
    df: pd.DataFrame, formula_rhs: str, cluster: str, voted: str, registered: str, label: str
) -> PreparedRaces:
    """Validate counts, drop rows missing predictors or cluster, build the design: the one preparation of race rows
    behind every race-level fit (:mod:`.race`, :mod:`.resampling`) and the general path of
    :func:`race_arrays`. Errors name ``label``."""
    from akim_turnout.models import design  # lazy: design imports pandas, which array-only callers do not need

    design.validate_turnout_rows(df, voted, registered, source=label)
    used = list(dict.fromkeys([*design.used_columns(formula_rhs), cluster]))
    kept, dropped, n_dropped = design.drop_incomplete(df, used)
    exog, names = design.build_design(kept, formula_rhs)
    if exog.shape[0] <= exog.shape[1]:
        raise ValueError(f"{label}: {exog.shape[0]} rows for {exog.shape[1]} parameters")
    clusters, n_clusters = design.cluster_codes(kept[cluster])
    return PreparedRaces(
        exog,
        names,
        kept[voted].to_numpy(dtype=float),
        kept[registered].to_numpy(dtype=float),
        clusters,
        n_clusters,
        dropped,
        n_dropped,
    )


def race_arrays(
    df: Any,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
) -> RaceArrays:
    """The race design of ``formula_rhs`` as :class:`RaceArrays`, as :func:`prepare_races` builds it.

    Complete, valid numeric data (the simulator's) is converted directly; anything else (missing values, rows to
    drop, invalid counts, non-numeric columns) goes through :func:`prepare_races`, which raises the usual errors.
    """
    from akim_turnout.models import design  # lazy: statsmodels is imported only by callers that already have it

    try:
        return _direct_race_arrays(df, formula_rhs, cluster, voted, registered, design.parse_terms)
    except FastPathDeclined:
        data = prepare_races(df, formula_rhs, cluster, voted, registered, "race_arrays")
        return RaceArrays(data.exog, list(data.names), data.voted, data.registered, data.clusters, data.n_clusters)


def _numeric_column(series: Any, column: str) -> np.ndarray:
    if series.dtype.kind not in "iuf":
        raise FastPathDeclined(f"{column} is not numeric")
    values = series.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise FastPathDeclined(f"{column} has missing values")
    return values


def _direct_race_arrays(
    df: Any, formula_rhs: str, cluster: str, voted: str, registered: str, parse_terms: Any
) -> RaceArrays:
    """RaceArrays from a complete frame, or FastPathDeclined if any row needs the general path."""
    import pandas as pd  # only here, where a frame is given anyway

    terms = parse_terms(formula_rhs)
    needed = list(dict.fromkeys([voted, registered, cluster, *(column for _, column, _ in terms)]))
    if any(c not in df.columns for c in needed):
        raise FastPathDeclined("missing columns")
    series = {c: df[c] for c in needed}  # each frame column access copies the frame's attrs: once per column

    def numeric(column: str) -> np.ndarray:
        return _numeric_column(series[column], column)

    def sorted_codes(column: str) -> tuple[np.ndarray, list[str]]:
        """Codes and sorted levels of a text column (as factorize(sort=True), and as sorted(astype(str)))."""
        if not isinstance(series[column].dtype, pd.StringDtype) or series[column].isna().any():
            raise FastPathDeclined(f"{column} is not complete text")
        codes, uniques = pd.factorize(series[column], sort=True)
        return codes.astype(np.int64), [str(u) for u in uniques]

    return _assemble(terms, numeric, sorted_codes, cluster, voted, registered)


def arrays_from_columns(
    numeric: dict[str, np.ndarray],
    text: dict[str, tuple[np.ndarray, list[str]]],
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
) -> RaceArrays:
    """:func:`race_arrays` of a table given as arrays: ``numeric`` columns, and ``text`` columns as integer codes
    into their sorted levels. The same arrays as :func:`race_arrays` builds from the frame of those columns (tested);
    raises :class:`FastPathDeclined` where that frame would need its general path (a missing or non-finite column,
    invalid counts, a log of a non-positive value)."""
    from akim_turnout.models.formula import parse_formula

    terms = [(term.kind, term.column, term.name) for term in parse_formula(formula_rhs).terms]

    def numeric_column(column: str) -> np.ndarray:
        if column not in numeric:
            raise FastPathDeclined(f"{column} is not a numeric column")
        values = np.asarray(numeric[column], dtype=float)
        if not np.all(np.isfinite(values)):
            raise FastPathDeclined(f"{column} has missing values")
        return values

    def codes(column: str) -> tuple[np.ndarray, list[str]]:
        if column not in text:
            raise FastPathDeclined(f"{column} is not a text column")
        return text[column]

    return _assemble(terms, numeric_column, codes, cluster, voted, registered)


def _assemble(
    terms: list[tuple[str, str, str]],
    numeric: Any,
    sorted_codes: Any,
    cluster: str,
    voted: str,
    registered: str,
) -> RaceArrays:
    """The design of ``terms`` (intercept first), counts and cluster codes, from column getters; declines
    (:class:`FastPathDeclined`) invalid counts and logs of non-positive values."""
    v, r = numeric(voted), numeric(registered)
    if np.any(r <= 0) or np.any(v < 0) or np.any(v > r):
        raise FastPathDeclined("invalid counts")
    factorized: dict[str, tuple[np.ndarray, list[str]]] = {}

    def codes_of(column: str) -> tuple[np.ndarray, list[str]]:
        if column not in factorized:
            factorized[column] = sorted_codes(column)
        return factorized[column]

    blocks, names = [np.ones((len(v), 1))], ["Intercept"]
    for kind, column, term in terms:
        if kind == "categorical":
            codes, levels = codes_of(column)
            block = np.zeros((len(v), len(levels) - 1))
            rows = np.flatnonzero(codes > 0)
            block[rows, codes[rows] - 1] = 1.0
            blocks.append(block)
            names.extend(f"C({column})[T.{level}]" for level in levels[1:])
            continue
        x = numeric(column)
        if kind == "log":
            if np.any(x <= 0):
                raise FastPathDeclined(f"{column} not positive")
            x = np.log(x)
        blocks.append(x[:, None])
        names.append(term)
    exog = np.hstack(blocks)
    if exog.shape[0] <= exog.shape[1]:
        raise FastPathDeclined("too few rows")
    codes, levels = codes_of(cluster)
    return RaceArrays(exog, names, v, r, codes, len(levels))


# --------------------------------------------------------------------------
# Inference from a covariance
# --------------------------------------------------------------------------


def t_inference(
    estimate: np.ndarray, se: np.ndarray, df: float, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided t(df) p-values and ``1 - alpha`` CI bounds, as ``inference._inference`` (scipy's t: stdtr, stdtrit)."""
    estimate, se = np.asarray(estimate, float), np.asarray(se, float)
    p = 2 * special.stdtr(df, -np.abs(estimate / se))
    half = special.stdtrit(df, 1 - alpha / 2) * se
    return p, estimate - half, estimate + half


def normal_inference(
    estimate: np.ndarray, se: np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided normal p-values and CI bounds, as ``inference._inference`` without df (scipy's norm: ndtr, ndtri)."""
    estimate, se = np.asarray(estimate, float), np.asarray(se, float)
    p = 2 * special.ndtr(-np.abs(estimate / se))
    half = special.ndtri(1 - alpha / 2) * se
    return p, estimate - half, estimate + half


# --------------------------------------------------------------------------
# Binomial GLM on counts
# --------------------------------------------------------------------------


def logit_start(voted: np.ndarray, registered: np.ndarray, k: int) -> np.ndarray:
    """Start values of the race-level binomial GLM: overall logit turnout for the intercept, zeros elsewhere."""
    share = min(max(voted.sum() / registered.sum(), 1e-6), 1 - 1e-6)
    start = np.zeros(k)
    start[0] = math.log(share / (1 - share))
    return start


def newton_counts(
    exog: np.ndarray,
    voted: np.ndarray,
    trials: np.ndarray,
    start: np.ndarray,
    offset: np.ndarray | None = None,
    tol: float = NEWTON_TOL,
    max_steps: int = MAX_NEWTON_STEPS,
) -> tuple[np.ndarray, int]:
    """Maximum-likelihood estimate of a binomial-logit GLM on counts by Newton's method, and the number of steps.

    Steps ``b += (X' W X)^-1 X' (y - n mu)`` until every ``|step| <= tol`` (statsmodels' rule). Raises
    :class:`FastPathDeclined` after ``max_steps`` steps or on non-finite values.
    """
    params = np.array(start, dtype=float)
    for step_number in range(1, max_steps + 1):
        eta = exog @ params if offset is None else exog @ params + offset
        if not np.all(np.abs(eta) < 30):
            raise FastPathDeclined("linear predictor beyond +-30 (near-separation)")
        mu = special.expit(eta)
        weight = trials * mu * (1 - mu)
        hessian = exog.T @ (exog * weight[:, None])
        try:
            step = np.linalg.solve(hessian, exog.T @ (voted - trials * mu))
        except np.linalg.LinAlgError as error:
            raise FastPathDeclined(f"singular information: {error}") from error
        params = params + step
        if not np.all(np.isfinite(params)):
            raise FastPathDeclined("non-finite Newton step")
        if np.all(np.abs(step) <= tol):
            return params, step_number
    raise FastPathDeclined(f"Newton did not converge in {max_steps} steps")


@dataclass(frozen=True, eq=False)
class CountsGLM:
    """A binomial-logit GLM on counts: estimates, covariances and the pieces the bootstrap reuses."""

    params: np.ndarray
    cov_naive: np.ndarray
    cov_cluster: np.ndarray
    n_clusters: int
    n_steps: int

    @property
    def df_resid_inference(self) -> int:
        return self.n_clusters - 1

    @property
    def bse_cluster(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov_cluster))

    @property
    def bse_naive(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov_naive))


def fit_counts_glm(arrays: RaceArrays, start: np.ndarray | None = None) -> CountsGLM:
    """Binomial GLM on ``[voted, registered - voted]`` with naive and region-clustered covariances.

    Matches ``race.fit_race_glm`` (``robust=True``: ``cov_cluster`` with t(G - 1); ``robust=False``:
    ``cov_naive`` with normal inference). See the module docstring for the formulas.
    """
    exog, trials = arrays.exog, arrays.registered
    if start is None:
        start = logit_start(arrays.voted, trials, exog.shape[1])
    params, n_steps = newton_counts(exog, arrays.voted, trials, start)
    mu = special.expit(exog @ params)
    information = exog.T @ (exog * (trials * mu * (1 - mu))[:, None])
    try:
        bread = np.linalg.inv(information)
    except np.linalg.LinAlgError as error:
        raise FastPathDeclined(f"singular information: {error}") from error
    scores = exog * (arrays.voted - trials * mu)[:, None]
    sums = arrays.cluster_sums(scores)
    n, k = exog.shape
    g = arrays.n_clusters
    if g < 2:
        raise FastPathDeclined("one cluster")
    correction = g / (g - 1.0) * ((n - 1.0) / float(n - k))
    cov_cluster = bread @ (sums.T @ sums) @ bread * correction
    return CountsGLM(params, bread, cov_cluster, g, n_steps)


# --------------------------------------------------------------------------
# Many data sets of one design at once (the simulation study's replications)
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class IndicatorDesign:
    """A stack of designs (R x n x k) whose indicator columns (``dummies``) are the same 0/1 columns in every data
    set with disjoint supports (a categorical's treatment dummies), kept as runs of rows: the products a Newton step
    needs (``X b``, ``X' W X``, ``X' r``) then cost O(n) per other (``dense``) column instead of O(n k)."""

    dense_x: np.ndarray  # R x n x (k - m): the other columns
    dense: np.ndarray  # their column indices
    dummies: np.ndarray  # the m indicator columns' indices
    run_starts: np.ndarray  # first row of each run of rows with the same indicator (or none)
    run_lengths: np.ndarray
    runs_to_dummies: np.ndarray  # m x runs: 1 where a run's rows have that indicator
    k: int

    @classmethod
    def of(cls, exog: np.ndarray) -> IndicatorDesign | None:
        """The structure of ``exog`` (R x n x k), or None where fewer than two indicator columns are found."""
        first = exog[0]
        n, k = first.shape
        same = np.all(exog == first, axis=(0, 1))
        binary = np.all((first == 0) | (first == 1), axis=0)
        chosen, used = [], np.zeros(n, dtype=bool)
        for j in np.flatnonzero(same & binary):
            support = first[:, j] == 1
            if 0 < support.sum() < n and not np.any(support & used):
                chosen.append(j)
                used |= support
        if len(chosen) < 2:
            return None
        code = np.full(n, -1)
        for position, j in enumerate(chosen):
            code[first[:, j] == 1] = position
        starts = np.flatnonzero(np.concatenate([[True], code[1:] != code[:-1]]))
        lengths = np.diff(np.concatenate([starts, [n]]))
        runs = np.zeros((len(chosen), len(starts)))
        inside = code[starts] >= 0
        runs[code[starts][inside], np.flatnonzero(inside)] = 1.0
        dense = np.array([j for j in range(k) if j not in chosen], dtype=np.int64)
        return cls(exog[:, :, dense], dense, np.array(chosen, dtype=np.int64), starts, lengths, runs, k)

    def take(self, rows: np.ndarray) -> IndicatorDesign:
        """The same structure for the data sets ``rows`` of the stack."""
        return IndicatorDesign(
            self.dense_x[rows],
            self.dense,
            self.dummies,
            self.run_starts,
            self.run_lengths,
            self.runs_to_dummies,
            self.k,
        )

    def _by_dummy(self, values: np.ndarray) -> np.ndarray:
        """Sums of ``values`` (R x n x ...) over each indicator's rows: R x m x ..."""
        runs = np.add.reduceat(values, self.run_starts, axis=1)
        return runs @ self.runs_to_dummies.T if runs.ndim == 2 else self.runs_to_dummies @ runs

    def linear(self, params: np.ndarray) -> np.ndarray:
        """``X b`` for each data set (``params`` R x k)."""
        eta = (self.dense_x @ params[:, self.dense, None])[:, :, 0]
        per_run = params[:, self.dummies] @ self.runs_to_dummies  # R x runs (0 for rows without an indicator)
        return eta + np.repeat(per_run, self.run_lengths, axis=1)

    def gram_and_score(self, weight: np.ndarray, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``X' W X`` (R x k x k) and ``X' r`` (R x k)."""
        n_sets = weight.shape[0]
        weighted = self.dense_x * weight[:, :, None]
        gram = np.zeros((n_sets, self.k, self.k))
        gram[:, self.dense[:, None], self.dense[None, :]] = self.dense_x.transpose(0, 2, 1) @ weighted
        cross = self._by_dummy(weighted)  # R x m x dense
        gram[:, self.dummies[:, None], self.dense[None, :]] = cross
        gram[:, self.dense[:, None], self.dummies[None, :]] = cross.transpose(0, 2, 1)
        gram[:, self.dummies, self.dummies] = self._by_dummy(weight)
        score = np.empty((n_sets, self.k))
        score[:, self.dense] = (self.dense_x.transpose(0, 2, 1) @ resid[:, :, None])[:, :, 0]
        score[:, self.dummies] = self._by_dummy(resid)
        return gram, score


def newton_counts_batch(
    exog: np.ndarray,
    voted: np.ndarray,
    trials: np.ndarray,
    start: np.ndarray,
    offset: np.ndarray | None = None,
    tol: float = NEWTON_TOL,
    max_steps: int = MAX_NEWTON_STEPS,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`newton_counts` for a stack of data sets (``exog`` R x n x k, ``voted``/``trials``/``offset`` R x n,
    ``start`` R x k) at once: the same steps with the same stopping rule, each data set stopping on its own.

    Each Newton step of the whole stack is one batched product ``X' W X`` (R x k x k) and one batched solve; where the
    design has indicator columns common to the stack (region dummies), the products go through
    :class:`IndicatorDesign` (the same numbers up to rounding, at a fraction of the cost). Returns
    the estimates (R x k; NaN where declined), the number of steps, and for each data set the reason
    :func:`newton_counts` would decline it ("" where it converged): those rows are the caller's to hand on.
    """
    exog = np.asarray(exog, dtype=float)
    n_sets = exog.shape[0]
    params = np.array(start, dtype=float, copy=True)
    steps = np.zeros(n_sets, dtype=int)
    reasons = [""] * n_sets
    active = np.arange(n_sets)

    def drop(mask: np.ndarray, reason: str) -> None:
        nonlocal active
        for i in active[mask]:
            reasons[i] = reason
            params[i] = np.nan
        active = active[~mask]

    design = IndicatorDesign.of(exog) if n_sets else None  # None: no indicator columns to exploit
    for step_number in range(1, max_steps + 1):
        everyone = len(active) == n_sets  # no copies of the stack while every data set is still iterating
        if design is None:
            x = exog if everyone else exog[active]
            eta = (x @ params[active][:, :, None])[:, :, 0]
        else:
            x = design if everyone else design.take(active)
            eta = x.linear(params[active])
        if offset is not None:
            eta = eta + (offset if everyone else offset[active])
        inside = np.all(np.abs(eta) < 30, axis=1)
        drop(~inside, "linear predictor beyond +-30 (near-separation)")
        if not len(active):
            break
        if not inside.all():
            x, eta = (x[inside] if design is None else x.take(np.flatnonzero(inside))), eta[inside]
        mu = special.expit(eta)
        n_trials = trials[active]
        weight = n_trials * mu * (1 - mu)
        resid = voted[active] - n_trials * mu
        if design is None:
            xt = x.transpose(0, 2, 1)
            hessian = xt @ (x * weight[:, :, None])
            gradient = xt @ resid[:, :, None]
        else:
            hessian, score = x.gram_and_score(weight, resid)
            gradient = score[:, :, None]
        step = np.full(params[active].shape, np.nan)
        try:
            step[:] = np.linalg.solve(hessian, gradient)[:, :, 0]
        except np.linalg.LinAlgError:  # somewhere in the stack: solve one by one, decline the singular ones
            singular = np.zeros(len(active), dtype=bool)
            for j in range(len(active)):
                try:
                    step[j] = np.linalg.solve(hessian[j], gradient[j, :, 0])
                except np.linalg.LinAlgError:
                    singular[j] = True
            step = step[~singular]
            drop(singular, "singular information")
        params[active] = params[active] + step
        steps[active] = step_number
        finite = np.all(np.isfinite(params[active]), axis=1)
        done = np.all(np.abs(step) <= tol, axis=1) & finite
        drop(~finite, "non-finite Newton step")
        active = active[~done[finite]]
        if not len(active):
            break
    for i in active:
        reasons[i] = f"Newton did not converge in {max_steps} steps"
        params[i] = np.nan
    return params, steps, reasons


def _stacked(arrays_list: Sequence[RaceArrays]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design, votes and electorates of data sets of one shape, stacked (R x n x k, R x n, R x n)."""
    shapes = {a.exog.shape for a in arrays_list}
    if len(shapes) != 1:
        raise ValueError(f"data sets of one design shape are needed, got shapes {sorted(shapes)}")
    return (
        np.stack([a.exog for a in arrays_list]),
        np.stack([a.voted for a in arrays_list]),
        np.stack([a.registered for a in arrays_list]),
    )


def fit_counts_glm_batch(arrays_list: Sequence[RaceArrays]) -> list[CountsGLM | FastPathDeclined]:
    """:func:`fit_counts_glm` of each data set (all of one shape): the Newton fits run as one batch
    (:func:`newton_counts_batch`), the covariances as batched products. A data set the single path would decline
    gets the :class:`FastPathDeclined` it would raise instead of a fit."""
    if not arrays_list:
        return []
    exog, voted, trials = _stacked(arrays_list)
    start = np.stack([logit_start(a.voted, a.registered, exog.shape[2]) for a in arrays_list])
    params, steps, reasons = newton_counts_batch(exog, voted, trials, start)
    out: list[CountsGLM | FastPathDeclined] = [FastPathDeclined(reason) for reason in reasons]
    fitted = [i for i, reason in enumerate(reasons) if not reason]
    if not fitted:
        return out
    x = exog[fitted]
    mu = special.expit((x @ params[fitted][:, :, None])[:, :, 0])
    information = x.transpose(0, 2, 1) @ (x * (trials[fitted] * mu * (1 - mu))[:, :, None])
    scores = x * (voted[fitted] - trials[fitted] * mu)[:, :, None]
    n, k = exog.shape[1:]
    for j, i in enumerate(fitted):
        arrays = arrays_list[i]
        g = arrays.n_clusters
        if g < 2:
            out[i] = FastPathDeclined("one cluster")
            continue
        try:
            bread = np.linalg.inv(information[j])
        except np.linalg.LinAlgError as error:
            out[i] = FastPathDeclined(f"singular information: {error}")
            continue
        sums = arrays.cluster_sums(scores[j])
        correction = g / (g - 1.0) * ((n - 1.0) / float(n - k))
        out[i] = CountsGLM(params[i], bread, bread @ (sums.T @ sums) @ bread * correction, g, int(steps[i]))
    return out


def score_bootstrap_batch(
    arrays_list: Sequence[RaceArrays],
    k: int,
    null_values: Sequence[float] | np.ndarray,
    draws: Sequence[np.ndarray],
    starts: np.ndarray,
) -> list[tuple[float, float] | FastPathDeclined]:
    """:func:`score_bootstrap` of each data set (all of one shape) under its own null value and weight draws.

    The restricted fits (coefficient ``k`` fixed at the null, as an offset) run as one Newton batch; then, per
    data set, the cluster influences ``psi_g = e_k' H^-1 S_g`` are computed once, and every bootstrap statistic is
    a row of one small product: the B x G weight matrix times ``psi`` (and its square times ``psi^2`` for the
    restudentisation), the "fast and wild" form of Roodman, MacKinnon, Nielsen & Webb (2019) for one coefficient
    (``psi`` is the G x k cluster score matrix already multiplied by ``H^-1 e_k``). Returns (statistic, p-value),
    or the :class:`FastPathDeclined` the single path would raise.
    """
    if not arrays_list:
        return []
    exog, voted, trials = _stacked(arrays_list)
    null_values = np.asarray(null_values, dtype=float)
    others = np.delete(np.arange(exog.shape[2]), k)
    restricted, _, reasons = newton_counts_batch(
        exog[:, :, others],
        voted,
        trials,
        np.asarray(starts, dtype=float)[:, others],
        null_values[:, None] * exog[:, :, k],
    )
    out: list[tuple[float, float] | FastPathDeclined] = [FastPathDeclined(reason) for reason in reasons]
    fitted = [i for i, reason in enumerate(reasons) if not reason]
    if not fitted:
        return out
    x = exog[fitted]
    params = np.insert(restricted[fitted], k, null_values[fitted], axis=1)
    mu = special.expit((x @ params[:, :, None])[:, :, 0])
    resid = voted[fitted] - trials[fitted] * mu
    info = x.transpose(0, 2, 1) @ (x * (trials[fitted] * mu * (1 - mu))[:, :, None])
    unit = np.broadcast_to(np.eye(exog.shape[2])[k], (len(fitted), exog.shape[2]))
    try:
        direction = np.linalg.solve(info, unit[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        direction = np.full(unit.shape, np.nan)
        for j in range(len(fitted)):
            with contextlib.suppress(np.linalg.LinAlgError):  # left NaN: declined below
                direction[j] = np.linalg.solve(info[j], unit[j])
    projected = resid * (x @ direction[:, :, None])[:, :, 0]
    shared: dict[int, list[tuple[int, np.ndarray]]] = {}  # tests by weight matrix: one product for each matrix
    for j, i in enumerate(fitted):
        if not np.all(np.isfinite(direction[j])):
            out[i] = FastPathDeclined("singular information at the restricted estimate")
            continue
        arrays = arrays_list[i]
        psi = np.bincount(arrays.clusters, weights=projected[j], minlength=arrays.n_clusters)
        shared.setdefault(id(draws[i]), []).append((i, psi))
    for members in shared.values():
        indices = [i for i, _ in members]
        results = _bootstrap_p_many(np.stack([psi for _, psi in members]), draws[indices[0]])
        for i, result in zip(indices, results, strict=True):
            out[i] = result
    return out


def _bootstrap_p_many(psi: np.ndarray, draws: np.ndarray) -> list[tuple[float, float]]:
    """:func:`_bootstrap_p` of each row of ``psi`` (R x G) with the same weight ``draws`` (B x G): two matrix
    products for all rows."""
    observed = psi.sum(axis=1) / np.sqrt(np.einsum("rg,rg->r", psi, psi))
    boot_stats = (psi @ draws.T) / np.sqrt((psi**2) @ (draws**2).T)
    exceed = np.mean(np.abs(boot_stats) >= (np.abs(observed) * (1 - TIE_TOLERANCE))[:, None], axis=1)
    return [(float(o), float(p)) for o, p in zip(observed, exceed, strict=True)]


def _bootstrap_p(psi: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """Studentised score statistic of the cluster influences ``psi`` and its symmetric bootstrap p-value with the
    weight ``draws`` (B x G), ties within a relative 1e-12 counted (``resampling._score_bootstrap_p``): one row of
    :func:`_bootstrap_p_many`."""
    return _bootstrap_p_many(np.asarray(psi, dtype=float)[None, :], draws)[0]


# --------------------------------------------------------------------------
# Restricted wild cluster score bootstrap
# --------------------------------------------------------------------------


def wild_weight_draws(seed: int, n_boot: int, n_clusters: int, weights: str = "webb") -> np.ndarray:
    """Cluster weights, ``default_rng(seed).choice(support, size=(n_boot, n_clusters))`` as the statsmodels path."""
    if weights not in WILD_WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WILD_WEIGHTS)}")
    return np.random.default_rng(seed).choice(WILD_WEIGHTS[weights], size=(n_boot, n_clusters))


def restricted_cluster_influence(arrays: RaceArrays, k: int, null_value: float, start: np.ndarray) -> np.ndarray:
    """Per-cluster influence ``psi_g = e_k' H^-1 S_g`` at the estimate with coefficient ``k`` fixed at ``null_value``.

    As ``resampling._restricted_cluster_influence``: the restricted fit (Newton, coefficient ``k`` as an offset, from
    ``start`` without entry ``k``), then cluster score sums ``S_g`` and information ``H`` at the restricted estimate.
    """
    exog, trials = arrays.exog, arrays.registered
    others = np.delete(np.arange(exog.shape[1]), k)
    restricted, _ = newton_counts(
        exog[:, others], arrays.voted, trials, np.asarray(start)[others], offset=null_value * exog[:, k]
    )
    params = np.insert(restricted, k, null_value)
    mu = special.expit(exog @ params)
    resid = arrays.voted - trials * mu
    info = exog.T @ (exog * (trials * mu * (1 - mu))[:, None])
    direction = np.linalg.solve(info, np.eye(len(params))[k])
    return np.bincount(arrays.clusters, weights=resid * (exog @ direction), minlength=arrays.n_clusters)


def score_bootstrap(
    arrays: RaceArrays,
    k: int,
    null_value: float,
    draws: np.ndarray,
    start: np.ndarray,
) -> tuple[float, float]:
    """Studentised score statistic and its symmetric bootstrap p-value (``resampling._score_bootstrap_p``)."""
    return _bootstrap_p(restricted_cluster_influence(arrays, k, null_value, start), draws)


# --------------------------------------------------------------------------
# GEE, binomial, exchangeable working correlation
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GEEFit:
    """A binomial GEE with exchangeable working correlation ``dep_param``."""

    params: np.ndarray
    dep_param: float
    n_steps: int
    score_norm: float
    arrays: RaceArrays

    @cached_property
    def cov_bias_reduced(self) -> np.ndarray:
        """Mancl-DeRouen covariance with a generalized inverse (:func:`mancl_derouen`)."""
        return mancl_derouen(self.arrays, self.params, self.dep_param)


def _newton_shares(arrays: RaceArrays) -> np.ndarray:
    """Exact maximum-likelihood estimate of the unweighted binomial GLM on the shares (GEE's start)."""
    exog, share = arrays.exog, arrays.share
    return newton_counts(exog, share, np.ones_like(share), logit_start(share, np.ones_like(share), exog.shape[1]))[0]


def _exchangeable_constants(dep: float, sizes: np.ndarray) -> tuple[float, np.ndarray]:
    """``1 / (1 - a)`` and per-cluster ``c_g = a / (1 - a) / (1 + a (n_g - 1))`` of the exchangeable inverse."""
    return 1.0 / (1.0 - dep), dep / (1.0 - dep) / (1.0 + dep * (sizes - 1))


def _gee_system(arrays: RaceArrays, params: np.ndarray, dep: float) -> tuple[np.ndarray, np.ndarray]:
    """``B = sum_g D_g' V_g^-1 D_g`` and the score ``sum_g D_g' V_g^-1 r_g`` (statsmodels' _update_mean_params).

    With ``v = mu (1 - mu)``, ``Z = X sqrt(v)`` and Pearson residuals ``e = r / sqrt(v)``, the exchangeable
    inverse gives ``D_g' V_g^-1 D_g = Z_g' Z_g / (1 - a) - c_g z_g z_g'`` with ``z_g`` the column sums of ``Z_g``.
    """
    mu = special.expit(arrays.exog @ params)
    sd = np.sqrt(mu * (1 - mu))
    z = arrays.exog * sd[:, None]
    e = (arrays.share - mu) / sd
    inv_one_minus, c = _exchangeable_constants(dep, arrays.cluster_sizes)
    z_sums = arrays.cluster_sums(z)
    e_sums = arrays.cluster_sums(e)
    bmat = (z.T @ z) * inv_one_minus - z_sums.T @ (z_sums * c[:, None])
    score = (z.T @ e) * inv_one_minus - z_sums.T @ (c * e_sums)
    return bmat, score


def _update_dep(arrays: RaceArrays, params: np.ndarray) -> float:
    """Moment estimate of the exchangeable correlation (statsmodels' Exchangeable.update, unweighted)."""
    mu = special.expit(arrays.exog @ params)
    e = (arrays.share - mu) / np.sqrt(mu * (1 - mu))
    nobs, ddof = len(e), arrays.exog.shape[1]
    sizes = arrays.cluster_sizes
    ssr_g = arrays.cluster_sums(e * e)
    sum_g = arrays.cluster_sums(e)
    scale = ssr_g.sum() / (nobs * (nobs - ddof) / float(nobs))
    residsq_sum = np.sum((sum_g**2 - ssr_g) / 2) / scale
    n_pairs = float(np.sum(0.5 * sizes * (sizes - 1)))
    return float(residsq_sum / (n_pairs * (n_pairs - ddof) / n_pairs))


def fit_gee_exchangeable(arrays: RaceArrays, maxiter: int = GEE_MAXITER, ctol: float = GEE_CTOL) -> GEEFit:
    """GEE (binomial, logit, exchangeable within clusters, unweighted) on ``voted / registered``.

    Replays statsmodels ``GEE.fit()`` (see the module docstring). Raises :class:`FastPathDeclined` where
    statsmodels would warn or fail: a singular update, the iteration limit, or non-finite values.
    """
    params = _newton_shares(arrays)
    dep = 0.0
    score_norm = -1.0
    for step in range(maxiter):
        bmat, score = _gee_system(arrays, params, dep)
        try:
            update = np.linalg.solve(bmat, score)
        except np.linalg.LinAlgError as error:
            raise FastPathDeclined(f"singular GEE update: {error}") from error
        params = params + update
        score_norm = float(np.sqrt(np.sum(score**2)))
        if not (np.all(np.isfinite(params)) and math.isfinite(score_norm)):
            raise FastPathDeclined("non-finite GEE step")
        if score_norm < ctol and step > 0:  # statsmodels updates the dependence at least once
            return GEEFit(params, dep, step + 1, score_norm, arrays)
        dep = _update_dep(arrays, params)
        if not math.isfinite(dep) or not -1.0 < dep < 1.0:
            raise FastPathDeclined(f"working correlation {dep} outside (-1, 1)")
        if np.any(np.abs(1.0 + dep * (arrays.cluster_sizes - 1)) < 1e-4):
            # a cluster's working correlation matrix is (nearly) singular: results would hang on rounding
            raise FastPathDeclined("exchangeable working correlation nearly singular for a cluster")
    raise FastPathDeclined("GEE iteration limit reached")


def fit_gee_exchangeable_batch(
    arrays_list: Sequence[RaceArrays], maxiter: int = GEE_MAXITER, ctol: float = GEE_CTOL
) -> list[GEEFit | FastPathDeclined]:
    """:func:`fit_gee_exchangeable` of each data set (all of one shape, with the same cluster codes) at once.

    The same iteration with the same stopping rule and declines, each data set stopping on its own: the starts are one
    Newton batch (:func:`newton_counts_batch`), each Fisher-scoring step and correlation update one set of batched
    products (cluster sums as a product with the clusters' indicator matrix). A data set the single path would
    decline gets the :class:`FastPathDeclined` it would raise instead of a fit.
    """
    if not arrays_list:
        return []
    first = arrays_list[0]
    if any(not np.array_equal(a.clusters, first.clusters) or a.n_clusters != first.n_clusters for a in arrays_list):
        raise ValueError("data sets with the same cluster codes are needed")
    exog = np.stack([a.exog for a in arrays_list])
    share = np.stack([a.share for a in arrays_list])
    n_sets, nobs, k = exog.shape
    ones = np.ones_like(share)
    start = np.stack([logit_start(row, ones[0], k) for row in share])
    params, _, reasons = newton_counts_batch(exog, share, ones, start)
    out: list[GEEFit | FastPathDeclined | None] = [FastPathDeclined(r) if r else None for r in reasons]
    sizes = first.cluster_sizes  # declines an empty cluster code as the single path does
    indicator = np.zeros((first.n_clusters, nobs))
    indicator[first.clusters, np.arange(nobs)] = 1.0
    n_pairs = float(np.sum(0.5 * sizes * (sizes - 1)))
    dep = np.zeros(n_sets)
    active = np.array([i for i in range(n_sets) if out[i] is None], dtype=np.int64)
    for step in range(maxiter):
        if not len(active):
            break
        x, y = exog[active], share[active]
        mu = special.expit((x @ params[active][:, :, None])[:, :, 0])
        sd = np.sqrt(mu * (1 - mu))
        z = x * sd[:, :, None]
        e = (y - mu) / sd
        inv_one_minus = 1.0 / (1.0 - dep[active])
        c = dep[active][:, None] / (1.0 - dep[active])[:, None] / (1.0 + dep[active][:, None] * (sizes - 1))
        z_sums = indicator @ z  # (R, G, k)
        e_sums = e @ indicator.T  # (R, G)
        zt = z.transpose(0, 2, 1)
        bmat = (zt @ z) * inv_one_minus[:, None, None] - z_sums.transpose(0, 2, 1) @ (z_sums * c[:, :, None])
        score = (zt @ e[:, :, None])[:, :, 0] * inv_one_minus[:, None] - (
            z_sums.transpose(0, 2, 1) @ (c * e_sums)[:, :, None]
        )[:, :, 0]
        update = np.full(score.shape, np.nan)
        try:
            update[:] = np.linalg.solve(bmat, score[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            for j in range(len(active)):
                try:
                    update[j] = np.linalg.solve(bmat[j], score[j])
                except np.linalg.LinAlgError as error:
                    out[active[j]] = FastPathDeclined(f"singular GEE update: {error}")
        params[active] = params[active] + update
        score_norm = np.sqrt(np.sum(score**2, axis=1))
        keep = np.ones(len(active), dtype=bool)
        for j, i in enumerate(active):
            if out[i] is not None:
                keep[j] = False
            elif not (np.all(np.isfinite(params[i])) and math.isfinite(score_norm[j])):
                out[i], keep[j] = FastPathDeclined("non-finite GEE step"), False
            elif score_norm[j] < ctol and step > 0:  # statsmodels updates the dependence at least once
                out[i], keep[j] = (
                    GEEFit(params[i].copy(), float(dep[i]), step + 1, float(score_norm[j]), arrays_list[i]),
                    False,
                )
        active = active[keep]
        if not len(active):
            break
        # the moment update of the correlation (_update_dep) for the data sets still iterating
        x, y = exog[active], share[active]
        mu = special.expit((x @ params[active][:, :, None])[:, :, 0])
        e = (y - mu) / np.sqrt(mu * (1 - mu))
        ssr_g = (e * e) @ indicator.T
        sum_g = e @ indicator.T
        scale = ssr_g.sum(axis=1) / (nobs * (nobs - k) / float(nobs))
        residsq_sum = np.sum((sum_g**2 - ssr_g) / 2, axis=1) / scale
        new_dep = residsq_sum / (n_pairs * (n_pairs - k) / n_pairs)
        keep = np.ones(len(active), dtype=bool)
        for j, i in enumerate(active):
            value = float(new_dep[j])
            dep[i] = value
            if not math.isfinite(value) or not -1.0 < value < 1.0:
                out[i], keep[j] = FastPathDeclined(f"working correlation {value} outside (-1, 1)"), False
            elif np.any(np.abs(1.0 + value * (sizes - 1)) < 1e-4):
                out[i] = FastPathDeclined("exchangeable working correlation nearly singular for a cluster")
                keep[j] = False
        active = active[keep]
    for i in active:
        out[i] = FastPathDeclined("GEE iteration limit reached")
    return cast("list[GEEFit | FastPathDeclined]", out)  # every data set has converged or been declined


def mancl_derouen(arrays: RaceArrays, params: np.ndarray, dep: float, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Mancl-DeRouen covariance of a binomial exchangeable GEE, as :func:`models.inference.mancl_derouen_cov`.

    The reference forms ``A_g = I - H_gg`` (``n_g x n_g``, ``H_gg = D_g B^-1 D_g' V_g^-1``) and applies its
    Moore-Penrose inverse, cutting singular values up to ``rcond`` times the largest. Here the same inverse is applied
    through a small matrix:

    * ``A_g = I - D_g M_g`` with ``M_g = B^-1 (V_g^-1 D_g)'``. On the orthogonal complement of any subspace ``S``
      that contains the columns of ``D_g`` and of ``V_g^-1 D_g``, ``A_g`` is the identity, and it maps ``S`` into
      itself. So with ``Q`` an orthonormal basis of ``S``, the singular values of ``A_g`` are those of
      ``T = Q' A_g Q`` and ones, and ``A_g^+ r = Q T^+ Q' r + (r - Q Q' r)``, with ``T^+`` cut at
      ``rcond * max(1, largest singular value of T)`` (``max(1, largest singular value of A_g)``: the
      reference's rule, :func:`models.inference.generalized_inverse`).
    * With the exchangeable inverse, ``V_g^-1 D_g = (X_g sd - c_g 1 z_g') / ((1 - a) sd)`` lies in the span of
      ``X_g`` and ``1 / sd``, and ``D_g = v X_g``. Columns of ``X_g`` that are constant within the cluster (other
      regions' dummies, the region's own dummy) are multiples of the intercept. ``S`` is spanned by
      ``[1, X_g*, 1 / sd, v, v X_g*]`` (``X_g*``: the non-constant columns), 9 columns on the study's design, so
      ``T`` is 9 x 9 instead of up to 95 x 95. ``Q`` comes from Householder QR (orthonormal whatever the rank).
    * All clusters are handled at once, rows padded with zeros to the largest cluster (padding rows carry zero
      residuals and derivatives, on which ``A_g`` acts as the identity). A cluster with no more rows than basis
      columns is computed as the reference does. A cluster its own parameters fit exactly (one race and its own
      dummy: ``A_g = 0`` up to rounding) is cut to zero by the floor 1 of that rule and adds nothing.
    * Declines (:class:`FastPathDeclined`) when ``B`` has a condition number above :data:`MAX_GEE_CONDITION`.

    Returns ``B^-1 (sum_g u_g u_g') B^-1`` with ``u_g = D_g' V_g^-1 A_g^+ r_g``, scale 1 as the reference.
    """
    result = mancl_derouen_batch([arrays], np.asarray(params, dtype=float)[None, :], np.array([dep]), rcond)[0]
    if isinstance(result, FastPathDeclined):
        raise result
    return result


def mancl_derouen_batch(
    arrays_list: Sequence[RaceArrays], params: np.ndarray, deps: np.ndarray, rcond: float = DEFAULT_RCOND
) -> list[np.ndarray | FastPathDeclined]:
    """:func:`mancl_derouen` of each data set (all of one shape, with the same cluster codes; ``params`` R x k,
    ``deps`` R), computed as one stack (R x G padded cluster blocks); a data set the single path would decline gets
    its :class:`FastPathDeclined` instead of a covariance. The single path is this batch of one. The stack is taken
    :data:`MANCL_CHUNK` data sets at a time (its padded blocks are large: 0.63 ms per data set in fives against 0.85
    alone and 1.04 in a stack of 50)."""
    if len(arrays_list) > MANCL_CHUNK:
        return [
            result
            for start in range(0, len(arrays_list), MANCL_CHUNK)
            for result in mancl_derouen_batch(
                arrays_list[start : start + MANCL_CHUNK],
                params[start : start + MANCL_CHUNK],
                deps[start : start + MANCL_CHUNK],
                rcond,
            )
        ]
    first = arrays_list[0]
    if any(not np.array_equal(a.clusters, first.clusters) or a.exog.shape != first.exog.shape for a in arrays_list):
        raise ValueError("data sets of one shape with the same cluster codes are needed")
    exog = np.stack([a.exog for a in arrays_list])
    n_sets, n, k = exog.shape
    mu = special.expit((exog @ params[:, :, None])[:, :, 0])
    var = mu * (1 - mu)
    sd = np.sqrt(var)
    resid = np.stack([a.share for a in arrays_list]) - mu
    order, starts, sizes = first._order
    out: list[np.ndarray | FastPathDeclined | None] = [None] * n_sets
    deps = np.asarray(deps, dtype=float)
    for i, dep in enumerate(deps):
        if np.any(np.abs(1.0 + dep * (sizes - 1)) < 1e-4) or not abs(dep) < 1.0:
            out[i] = FastPathDeclined("exchangeable working correlation nearly singular for a cluster")
    usable = np.array([result is None for result in out])
    safe_deps = np.where(usable, deps, 0.0)  # declined data sets are carried along at 0 and dropped
    inv_one_minus = 1.0 / (1.0 - safe_deps)
    c = safe_deps[:, None] / (1.0 - safe_deps)[:, None] / (1.0 + safe_deps[:, None] * (sizes - 1))  # R x G
    # padded cluster blocks: (R, G, n_max, ...), zeros outside each cluster
    sorted_rows = np.arange(n) if order is None else order
    position = np.arange(sizes.max())[None, :]
    inside = position < sizes[:, None]
    rows = sorted_rows[np.minimum(starts[:, None] + position, n - 1)]
    x = np.where(inside[None, :, :, None], exog[:, rows], 0.0)
    v = np.where(inside, var[:, rows], 0.0)
    s = np.where(inside, sd[:, rows], 1.0)
    r = np.where(inside, resid[:, rows], 0.0)
    d = x * v[..., None]  # D_g
    z = x * s[..., None]  # D_g / sd
    w = (z * inv_one_minus[:, None, None, None] - c[:, :, None, None] * z.sum(axis=2)[:, :, None, :]) / s[..., None]
    w = w * inside[None, :, :, None]
    bmat = d.reshape(n_sets, -1, k).transpose(0, 2, 1) @ w.reshape(n_sets, -1, k)  # sum_g D_g' V_g^-1 D_g
    condition = np.linalg.cond(bmat)
    for i in np.flatnonzero(usable & ~(condition < MAX_GEE_CONDITION)):
        # LU does not reliably raise on a singular matrix: its pivots are rounded
        out[i] = FastPathDeclined(f"singular GEE information: condition number {condition[i]:.3g}")
    usable = np.array([result is None for result in out])
    bread = np.linalg.inv(np.where(usable[:, None, None], bmat, np.eye(k)))
    basis, direct = _span_bases(sizes, x, v, s, inside)
    basis_t = basis.swapaxes(-1, -2)
    small = np.eye(basis.shape[-1]) - (basis_t @ d) @ (bread[:, None] @ (w.swapaxes(-1, -2) @ basis))  # T = Q'A_gQ
    u, sv, vt = np.linalg.svd(small)
    keep = sv > rcond * np.maximum(sv[..., :1], 1.0)
    inverse_sv = np.divide(1.0, sv, out=np.zeros_like(sv), where=keep)
    qr_ = (basis_t @ r[..., None])[..., 0]  # Q' r
    coefficients = vt.swapaxes(-1, -2) @ (inverse_sv * (u.swapaxes(-1, -2) @ qr_[..., None])[..., 0])[..., None]
    adjusted = r + (basis @ (coefficients[..., 0] - qr_)[..., None])[..., 0]  # Q T^+ Q'r + r - Q Q'r
    scores = (w.swapaxes(-1, -2) @ adjusted[..., None])[..., 0]  # R x G x k
    for i, g in zip(*np.nonzero(direct), strict=True):
        block = slice(0, sizes[g])
        leverage = d[i, g, block] @ bread[i] @ w[i, g, block].T
        exact = _generalized_inverse(np.eye(sizes[g]) - leverage, rcond) @ r[i, g, block]
        scores[i, g] = w[i, g, block].T @ exact
    covariances = bread @ (scores.swapaxes(-1, -2) @ scores) @ bread
    return [covariances[i] if result is None else result for i, result in enumerate(out)]


def _generalized_inverse(matrix: np.ndarray, rcond: float) -> np.ndarray:
    """Moore-Penrose inverse cutting singular values ``<= rcond * max(1, largest)``, as
    :func:`models.inference.generalized_inverse` (the rule of the reduced path above)."""
    u, singular, vt = np.linalg.svd(matrix)
    cut = rcond * max(1.0, float(singular[0])) if singular.size else 0.0
    inverse = np.divide(1.0, singular, out=np.zeros_like(singular), where=singular > cut)
    return (vt.T * inverse) @ u.T


def _span_bases(
    sizes: np.ndarray, x: np.ndarray, v: np.ndarray, s: np.ndarray, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases (R, G, n_max, m) of ``[1, X*, 1 / sd, v, v X*]`` per padded cluster block (``x`` R x G x
    n_max x k), and the blocks not larger than their basis (R x G, computed directly)."""
    varying = np.any(x != x[:, :, :1, :], axis=2, where=inside[None, :, :, None])  # (R, G, k): not constant in it
    n_varying = varying.sum(axis=2)
    # the columns varying in some block, zero in a block where they are constant (a zero column adds a spare
    # orthonormal direction to Q: any space containing the columns of D_g and V_g^-1 D_g serves, see mancl_derouen)
    used = varying.any(axis=(0, 1))
    columns = x[..., used] * varying[:, :, None, used]
    ones = np.broadcast_to(inside.astype(float)[None, :, :, None], x.shape[:3] + (1,))
    stacked = np.concatenate([ones, columns, ones / s[..., None], v[..., None], columns * v[..., None]], axis=3)
    basis = np.linalg.qr(stacked)[0]
    return basis, sizes[None, :] <= 2 * (1 + n_varying) + 1


# --------------------------------------------------------------------------
# Linear mixed model with random intercepts (REML)
# --------------------------------------------------------------------------


def empirical_logit(voted: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """``log((voted + 0.5) / (registered - voted + 0.5))`` (``race.empirical_logit``)."""
    return np.log((voted + 0.5) / (registered - voted + 0.5))


@dataclass(frozen=True, eq=False)
class MixedFit:
    """A random-intercept linear mixed model fitted by REML."""

    params: np.ndarray  # fixed effects
    cov_params: np.ndarray  # their covariance (fixed-effect block of statsmodels' cov_params)
    group_variance: float
    residual_variance: float
    n_evaluations: int


class _RandomInterceptREML:
    """Profile REML log-likelihood, score and Hessian of ``y = X b + u_g + e`` (statsmodels' MixedLM, one random
    intercept, no variance components), in terms of ``gamma = var(u) / var(e)``.

    With ``V_g = I + gamma 1 1'`` (scale profiled out), ``d_g = 1 / (1 + gamma n_g)``, ``V_g^-1 = I - gamma d_g 1 1'``
    and ``V_g^-1 1 = d_g 1``: every quantity is a sum over clusters of group sums of ``X``, ``y`` and residuals.
    """

    def __init__(self, y: np.ndarray, exog: np.ndarray, arrays: RaceArrays) -> None:
        self.y, self.exog = y, exog
        self.n = arrays.cluster_sizes.astype(float)
        self.x_sums = arrays.cluster_sums(exog)
        self.y_sums = arrays.cluster_sums(y)
        self.xtx, self.xty = exog.T @ exog, exog.T @ y
        self.nobs, self.k = exog.shape
        self.fac = self.nobs - self.k  # REML
        self.constant = -self.fac * np.log(2 * np.pi) / 2 + self.fac * np.log(self.fac) / 2 - self.fac / 2
        self.smallest_gamma = np.inf
        self._last: tuple[float, Any] | None = None

    def parts(self, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """``d``, ``X'V^-1X``, the GLS estimate, cluster sums of its residuals, ``r'V^-1r``.

        The last result is kept: the optimiser asks for the objective and its gradient at the same point."""
        self.smallest_gamma = min(self.smallest_gamma, gamma)
        if self._last is not None and self._last[0] == gamma:
            return self._last[1]
        self._last = (gamma, self._parts(gamma))
        return self._last[1]

    def _parts(self, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        d = 1.0 / (1.0 + gamma * self.n)
        w = gamma * d
        xtvix = self.xtx - self.x_sums.T @ (self.x_sums * w[:, None])
        beta = np.linalg.solve(xtvix, self.xty - self.x_sums.T @ (w * self.y_sums))
        resid = self.y - self.exog @ beta
        sums = self.y_sums - self.x_sums @ beta
        return d, xtvix, beta, sums, float(resid @ resid - np.sum(w * sums**2))

    def loglike(self, gamma: float) -> float:
        """statsmodels' ``MixedLM.loglike`` (REML, fixed effects and scale profiled out)."""
        _, xtvix, _, _, rvir = self.parts(gamma)
        return float(
            -np.sum(np.log1p(gamma * self.n)) / 2
            - self.fac * np.log(rvir) / 2
            - np.linalg.slogdet(xtvix)[1] / 2
            + self.constant
        )

    def score(self, gamma: float) -> float:
        """Its derivative in ``gamma`` (statsmodels' ``score_full``)."""
        d, xtvix, _, sums, rvir = self.parts(gamma)
        xv1 = self.x_sums * d[:, None]  # X_g' V_g^-1 1
        return float(
            -0.5 * np.sum(self.n * d)
            + 0.5 * self.fac * np.sum((sums * d) ** 2) / rvir
            + 0.5 * np.sum(np.linalg.inv(xtvix) * (xv1.T @ xv1))
        )

    def hessian(self, gamma: float) -> np.ndarray:
        """statsmodels' ``MixedLM.hessian`` in (fixed effects, gamma) at the GLS estimate for ``gamma``."""
        d, xtvix, _, sums, rvir = self.parts(gamma)
        n, xs, fac = self.n, self.x_sums, self.fac
        b = np.sum(d**2 * sums**2)
        dd = np.sum(2 * n * d**3 * sums**2)
        hess_re = np.sum(n**2 * d**2 / 2) - 0.5 * fac * (dd / rvir - b**2 / rvir**2)
        ql = np.linalg.solve(xtvix, xs.T @ (xs * (d**2)[:, None]))
        f = 2 * xs.T @ (xs * (n * d**3)[:, None])
        hess_re += 0.5 * (np.sum(ql.T * ql) - np.trace(np.linalg.solve(xtvix, f)))
        hess = np.empty((self.k + 1, self.k + 1))
        hess[: self.k, : self.k] = -fac * xtvix / rvir
        hess[: self.k, self.k] = hess[self.k, : self.k] = -fac * (xs * (d**2 * sums)[:, None]).sum(axis=0) / rvir
        hess[self.k, self.k] = hess_re
        return hess


def fit_random_intercept_reml(arrays: RaceArrays, endog: np.ndarray, exog: np.ndarray | None = None) -> MixedFit:
    """Linear mixed model with a random intercept per cluster, by REML, as statsmodels ``MixedLM(...).fit(reml=True)``
    of :func:`race.fit_race_mixedlm`.

    statsmodels maximises the profile REML log-likelihood over ``L = sqrt(gamma)`` with scipy's BFGS (start 1,
    ``gtol = 1e-5``, objective and gradient divided by the number of rows) and stops where the gradient is small,
    which leaves ``gamma`` up to about 4e-4 (relative) from the exact maximum. That optimisation is replayed here: the
    same scipy BFGS on the same function and gradient (computed from cluster sums), so it takes the same steps and
    stops at the same point. The fixed effects are the GLS estimate there, the residual variance
    ``r'V^-1r / (N - k)``, the group variance ``gamma`` times it, and the covariance of the fixed effects the
    corresponding block of ``inv(-H)``, ``H`` the Hessian in (fixed effects, gamma) as statsmodels forms it.

    Declines (:class:`FastPathDeclined`) where statsmodels warns or changes method: BFGS not converged, ``gamma``
    below 1e-8 anywhere on the way (statsmodels switches to a pseudo-inverse), a group variance below 0.0101
    (statsmodels' boundary warning at 0.01), a Hessian diagonal that is not clearly negative.
    """
    import warnings

    from scipy import optimize

    exog = arrays.exog if exog is None else exog
    model = _RandomInterceptREML(np.asarray(endog, dtype=float), exog, arrays)
    nobs = float(len(endog))

    def objective(p: np.ndarray) -> float:  # statsmodels: -loglike / nobs in L = sqrt(gamma)
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            return -model.loglike(p[0] ** 2) / nobs

    def gradient(p: np.ndarray) -> np.ndarray:
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            return np.array([-model.score(p[0] ** 2) * 2 * p[0] / nobs])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            optimum, _, _, _, n_f, _, warnflag = optimize.fmin_bfgs(
                objective,
                np.array([1.0]),
                gradient,
                gtol=1e-5,
                norm=np.inf,
                epsilon=1.4901161193847656e-08,
                maxiter=100,
                full_output=True,
                disp=False,
            )
        except (FloatingPointError, np.linalg.LinAlgError) as error:
            raise FastPathDeclined(f"REML objective failed: {error}") from error
    if caught:
        raise FastPathDeclined(f"warnings during the optimisation: {caught[0].message}")
    gamma = float(optimum[0] ** 2)
    if warnflag or model.smallest_gamma < 1e-8:
        raise FastPathDeclined("BFGS did not converge or reached a singular random-effects variance")
    _, _, beta, _, rvir = model.parts(gamma)
    scale = rvir / model.fac
    hessian = model.hessian(gamma)
    diagonal = np.diag(hessian)
    if gamma * scale < 0.0101 or np.any(diagonal > -1e-8 * np.max(np.abs(diagonal))):
        raise FastPathDeclined("group variance near the boundary or Hessian not negative definite")
    cov = np.linalg.inv(-hessian)
    return MixedFit(beta, cov[: model.k, : model.k], gamma * scale, scale, int(n_f))


# --------------------------------------------------------------------------
# Regional fractional logit, a batch of designs at once (permutation test)
# --------------------------------------------------------------------------


def _binomial_deviance(share: np.ndarray, mu: np.ndarray, var_weights: np.ndarray) -> np.ndarray:
    """statsmodels' Binomial deviance (n = 1, scale 1) of each row of ``mu``."""
    endog_mu = np.clip(share / (mu + 1e-20), _FLOAT_EPS, np.inf)
    n_endog_mu = np.clip((1.0 - share) / (1.0 - mu + 1e-20), _FLOAT_EPS, np.inf)
    resid_dev = 2 * (share * np.log(endog_mu) + (1 - share) * np.log(n_endog_mu))
    return np.sum(resid_dev * var_weights, axis=-1)


def _logit_inverse(eta: np.ndarray) -> np.ndarray:
    """statsmodels' Logit.inverse."""
    return 1.0 / (1.0 + np.exp(-eta))


def fractional_logit_irls(
    share: np.ndarray,
    exog: np.ndarray,
    var_weights: np.ndarray | None = None,
    maxiter: int = IRLS_MAXITER,
    tol: float = IRLS_TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """IRLS estimates of the binomial GLM on ``share`` for a batch of designs ``exog`` (P x n x k), and iterations.

    Replays statsmodels ``GLM(share, X, Binomial(), var_weights=w).fit()`` for each design: start
    ``mu = (y + 0.5) / 2``, weighted least-squares steps with weights ``w mu (1 - mu)`` and working response
    ``eta + (y - mu) / (mu (1 - mu))``, stop after the first step whose deviance differs from the previous one by at
    most ``tol`` (or after ``maxiter`` steps); each design stops on its own.
    """
    exog = np.asarray(exog, dtype=float)
    n_designs, n, _ = exog.shape
    weights = np.ones(n) if var_weights is None else np.asarray(var_weights, dtype=float)
    mu0 = (share + 0.5) / 2
    p0 = np.clip(mu0, _FLOAT_EPS, 1.0 - _FLOAT_EPS)
    eta = np.broadcast_to(np.log(p0 / (1.0 - p0)), (n_designs, n)).copy()
    mu = np.broadcast_to(mu0, (n_designs, n)).copy()
    deviance = np.broadcast_to(_binomial_deviance(share, mu0, weights), (n_designs,)).copy()
    params = np.full((n_designs, exog.shape[2]), np.nan)
    iterations = np.zeros(n_designs, dtype=int)
    active = np.arange(n_designs)
    for iteration in range(1, maxiter + 1):
        x, m, h = exog[active], mu[active], eta[active]
        w = weights * m * (1 - m)
        working = h + (share - m) / (m * (1 - m))
        xw = x * w[:, :, None]
        beta = np.linalg.solve(np.einsum("pni,pnj->pij", xw, x), np.einsum("pni,pn->pi", xw, working)[..., None])[
            ..., 0
        ]
        h = np.einsum("pni,pi->pn", x, beta)
        m = _logit_inverse(h)
        new_deviance = _binomial_deviance(share, m, weights)
        params[active], eta[active], mu[active] = beta, h, m
        done = np.abs(new_deviance - deviance[active]) <= tol
        deviance[active] = new_deviance
        iterations[active] = iteration
        active = active[~done]
        if not len(active):
            break
    return params, iterations


def sandwich_se_batch(
    share: np.ndarray,
    exog: np.ndarray,
    params: np.ndarray,
    var_weights: np.ndarray | None,
    k: int,
    kind: str = "HC3",
) -> tuple[np.ndarray, np.ndarray]:
    """Sandwich SE of coefficient ``k`` for each design (``inference.glm_sandwich_cov``), and the largest leverage.

    ``H^-1 (sum_i c_i s_i s_i') H^-1`` with scores ``s_i = w_i x_i (y_i - mu_i)``, ``H = X' diag(w mu (1 - mu)) X``;
    HC3 divides each score by ``1 - h_ii`` (``h_ii = w_i mu_i (1 - mu_i) x_i' H^-1 x_i``), HC1 multiplies HC0 by
    ``n / (n - k)``. Only entry ``(k, k)`` is formed: ``|S H^-1 e_k|^2``.
    """
    n_designs, n, n_params = exog.shape
    weights = np.ones(n) if var_weights is None else np.asarray(var_weights, dtype=float)
    mu = _logit_inverse(np.einsum("pni,pi->pn", exog, params))
    hw = weights * mu * (1 - mu)
    info = np.einsum("pni,pn,pnj->pij", exog, hw, exog)
    column = np.linalg.solve(info, np.broadcast_to(np.eye(n_params)[:, k], (n_designs, n_params))[..., None])[..., 0]
    scores_k = weights * (share - mu) * np.einsum("pni,pi->pn", exog, column)  # s_i' H^-1 e_k
    leverage = hw * np.einsum("pni,pij,pnj->pn", exog, np.linalg.inv(info), exog)
    if kind == "HC3":
        scores_k = scores_k / (1 - leverage)
    elif kind not in ("HC0", "HC1"):
        raise ValueError(f"kind must be HC0, HC1 or HC3, got {kind!r}")
    variance = np.sum(scores_k**2, axis=1)
    if kind == "HC1":
        variance = variance * n / (n - n_params)
    return np.sqrt(variance), leverage.max(axis=1)


def permutation_statistics(
    share: np.ndarray,
    exog: np.ndarray,
    weights: np.ndarray | None,
    k: int,
    columns: Sequence[np.ndarray] | np.ndarray,
    statistic: str = "t",
    cov_type: str = "HC3",
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of ``resampling._regional_statistic`` with design column ``k`` replaced by each row of ``columns``.

    Returns the statistics and a mask of the designs this path declines (NaN there): an ill-conditioned
    information matrix (condition number above 1e10), a non-finite result or, for HC3, a leverage within 1e-6 of
    the 1 - 1e-10 cut-off of ``glm_sandwich_cov``. The caller computes declined designs with statsmodels.
    """
    if statistic not in ("t", "coef"):
        raise ValueError("statistic must be 't' or 'coef'")
    columns = np.asarray(columns, dtype=float)
    designs = np.repeat(np.asarray(exog, dtype=float)[None], len(columns), axis=0)
    designs[:, :, k] = columns
    declined = np.zeros(len(columns), dtype=bool)
    ok_design = np.linalg.cond(np.einsum("pni,pnj->pij", designs, designs)) < 1e10
    declined |= ~ok_design
    values = np.full(len(columns), np.nan)
    index = np.flatnonzero(ok_design)
    if not len(index):
        return values, declined
    with np.errstate(all="ignore"):
        try:
            params, _ = fractional_logit_irls(share, designs[index], weights)
            if statistic == "t":
                se, max_leverage = sandwich_se_batch(share, designs[index], params, weights, k, cov_type)
        except np.linalg.LinAlgError:  # a singular system somewhere in the batch: leave them all to statsmodels
            return values, np.ones(len(columns), dtype=bool)
        undefined = np.zeros(len(index), dtype=bool)  # HC3 with a leverage-1 row: NaN, as glm_sandwich_cov raises
        unsure = ~np.all(np.isfinite(params), axis=1)
        if statistic == "coef":
            out = params[:, k]
        else:
            out = params[:, k] / se
            if cov_type == "HC3":
                undefined = max_leverage >= 1 - 1e-10
                unsure |= np.abs(max_leverage - (1 - 1e-10)) < 1e-6
        unsure |= ~np.isfinite(out) & ~undefined
    declined[index[unsure]] = True
    values[index] = np.where(undefined, np.nan, out)
    values[declined] = np.nan
    return values, declined
