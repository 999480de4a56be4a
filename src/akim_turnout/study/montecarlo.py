"""What a Monte Carlo study's replications say: operating characteristics with exact Monte Carlo intervals, power
curves, the minimum detectable effect with its Monte Carlo interval, the recommended inference method, and the
headline numbers of the study.

Every rate (size, coverage, power) comes with its exact (Clopper-Pearson) 95 % interval, never of zero width;
claims about a method need :data:`MIN_NULL_REPLICATIONS` usable data sets at effect 0 and
:data:`MIN_EFFECT_REPLICATIONS` at every other effect. The replications themselves are run by
:mod:`akim_turnout.study.replications`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaincinv, ndtr, ndtri

from akim_turnout.pipeline.outputs import stated
from akim_turnout.pipeline.parameters import CLUSTER_ROBUST_METHODS, STUDY_METHODS
from akim_turnout.report import labels

METHODS = STUDY_METHODS  # reporting order
CLUSTER_ROBUST = CLUSTER_ROBUST_METHODS
RESULT_COLUMNS = (
    "design_index",
    "n_regions",
    "n_races",
    "effect_index",
    "effect",
    "replication",
    "sim_seed",
    "method",
    "term",
    "target",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "covered",
    "rejected",
    "ok",
    "converged",
    "n_warnings",
    "mean_pq",
    "error",
)
GROUP_COLUMNS = ["design_index", "n_regions", "n_races", "effect_index", "effect", "method"]


def clopper_pearson(successes: int | np.ndarray, n: int | np.ndarray, level: float = 0.95) -> tuple[Any, Any]:
    """Exact (Clopper-Pearson) interval of a proportion: never of zero width, even at 0 or n successes."""
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, betaincinv(k, n - k + 1, tail), 0.0)  # beta quantiles
        high = np.where(k < n, betaincinv(k + 1, n - k, 1 - tail), 1.0)
    low, high = np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Operating characteristics per design x effect x method, over replications with ``ok``.

    Columns: ``n`` (rows), ``n_ok``, ``target``, ``mean_estimate``, ``bias``
    (mean of estimate - target), ``rmse``, ``coverage`` with its exact
    95 % Monte Carlo interval ``coverage_low``, ``coverage_high``
    (:func:`clopper_pearson`), ``rejection`` (size when the effect is 0,
    power otherwise) with ``rejection_low``, ``rejection_high``, ``mean_se``,
    ``sd_estimate`` (ddof 1), ``se_ratio`` (mean SE / SD), ``mean_pq``,
    ``n_warnings`` (sum) and ``n_not_converged``.
    """
    missing = [c for c in RESULT_COLUMNS if c not in results.columns and c not in ("error", "sim_seed", "term")]
    if missing:
        raise ValueError(f"results is missing column(s): {missing}")
    rows = []
    for keys, group in results.groupby(GROUP_COLUMNS, sort=False):
        good = group[group["ok"].astype(bool)]
        n_ok = len(good)
        error = good["estimate"] - good["target"]
        covered, rejected = int(good["covered"].astype(bool).sum()), int(good["rejected"].astype(bool).sum())
        coverage_low, coverage_high = clopper_pearson(covered, n_ok)
        rejection_low, rejection_high = clopper_pearson(rejected, n_ok)
        mean_se = float(good["se"].mean()) if good["se"].notna().any() else math.nan
        sd = float(good["estimate"].std(ddof=1)) if n_ok > 1 else math.nan
        rows.append(
            {
                **dict(zip(GROUP_COLUMNS, keys, strict=True)),
                "n": len(group),
                "n_ok": n_ok,
                "target": float(group["target"].mean()),
                "mean_estimate": float(good["estimate"].mean()),
                "bias": float(error.mean()),
                "rmse": float(np.sqrt((error**2).mean())),
                "coverage": covered / n_ok if n_ok else math.nan,
                "coverage_low": coverage_low,
                "coverage_high": coverage_high,
                "rejection": rejected / n_ok if n_ok else math.nan,
                "rejection_low": rejection_low,
                "rejection_high": rejection_high,
                "mean_se": mean_se,
                "sd_estimate": sd,
                "se_ratio": mean_se / sd if sd else math.nan,
                "mean_pq": float(good["mean_pq"].mean()),
                "n_warnings": int(group["n_warnings"].sum()),
                "n_not_converged": int((~good["converged"].astype(bool)).sum()),
            }
        )
    summary = pd.DataFrame(rows)
    order = summary["method"].map({m: i for i, m in enumerate(METHODS)})
    summary = summary.assign(_m=order).sort_values(["design_index", "effect_index", "_m"], kind="stable")
    return summary.drop(columns="_m").reset_index(drop=True)


def power_curve(summary: pd.DataFrame, method: str, design_index: int = 0) -> pd.DataFrame:
    """Rejection rate of ``method`` (with its exact Monte Carlo interval) against ``|effect|`` in one design."""
    rows = summary[(summary["method"] == method) & (summary["design_index"] == design_index)]
    if rows.empty:
        raise ValueError(f"no summary rows for method {method!r} in design {design_index}")
    curve = rows.assign(abs_effect=rows["effect"].abs()).sort_values("abs_effect", kind="stable")
    return (
        curve[["effect", "abs_effect", "rejection", "rejection_low", "rejection_high", "n_ok"]]
        .rename(columns={"rejection": "power", "rejection_low": "power_low", "rejection_high": "power_high"})
        .reset_index(drop=True)
    )


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """The smallest x at which the piecewise-linear y first reaches ``level`` (NaN if it never does)."""
    reached = np.flatnonzero(y >= level)
    if len(reached) == 0:
        return math.nan
    i = reached[0]
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


# Claims about a method need this many usable data sets: size at effect 0, power and coverage at the others.
MIN_NULL_REPLICATIONS = 100
MIN_EFFECT_REPLICATIONS = 50


def enough_replications(summary: pd.DataFrame, method: str, design_index: int = 0) -> bool:
    """Whether ``method`` ran on enough data sets (see the constants above) for size, power and MDE claims."""
    rows = summary[(summary["method"] == method) & (summary["design_index"] == design_index)]
    null = rows[rows["effect"] == 0]["n_ok"]
    other = rows[rows["effect"] != 0]["n_ok"]
    return bool(
        len(null)
        and null.min() >= MIN_NULL_REPLICATIONS
        and (other.min() if len(other) else 0) >= MIN_EFFECT_REPLICATIONS
    )


# The minimum detectable effect and its Monte Carlo interval, on the logit and percentage-point scales, and the size
# at effect 0 with its interval, as minimum_detectable_effect returns them (in this order wherever they are copied).
MDE_KEYS = ("mde_logit", "mde_logit_low", "mde_logit_high", "mde_pp", "mde_pp_low", "mde_pp_high")
SIZE_KEYS = ("size", "size_low", "size_high")
# The MDE's interval: this many binomial redraws of the power curve's counts, from this seed (fixed: the interval is
# a function of the summary).
MDE_BOOTSTRAP_DRAWS = 2000
MDE_BOOTSTRAP_SEED = 20210725


def fit_probit_power(
    abs_effect: np.ndarray, rejected: np.ndarray, n: np.ndarray, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood probit power curve ``P(reject) = Phi(a + b |effect|)`` on rejection counts.

    ``rejected`` and ``n`` are counts per effect (last axis), optionally stacked over leading axes (many curves
    fitted at once). Fisher scoring (IRLS for the probit link) from the weighted least-squares fit of the empirical
    probits. Returns ``(a, b)`` with the leading shape; NaN where the fit did not converge (e.g. complete separation).
    """
    x = np.asarray(abs_effect, dtype=float)
    k = np.asarray(rejected, dtype=float)
    m = np.broadcast_to(np.asarray(n, dtype=float), k.shape)
    if x.ndim != 1 or k.shape[-1] != x.shape[0]:
        raise ValueError("rejected must have one count per effect on its last axis")
    if np.any(m <= 0) or np.any(k < 0) or np.any(k > m):
        raise ValueError("counts must satisfy 0 <= rejected <= n and n > 0")
    if len(np.unique(x)) < 2:
        raise ValueError("a power curve needs at least two distinct effects")
    z = ndtri((k + 0.5) / (m + 1))  # empirical probits as the start
    a, b = _weighted_line(x, z, m)
    converged = np.zeros(a.shape, dtype=bool)
    for _ in range(max_iter):
        eta = a[..., None] + b[..., None] * x
        p = np.clip(ndtr(eta), 1e-15, 1 - 1e-15)
        dens = np.exp(-0.5 * eta**2) / math.sqrt(2 * math.pi)
        dens = np.maximum(dens, 1e-300)
        w = m * dens**2 / (p * (1 - p))
        work = eta + (k / m - p) / dens
        new_a, new_b = _weighted_line(x, work, w)
        step = np.maximum(np.abs(new_a - a), np.abs(new_b - b))
        a, b = np.where(converged, a, new_a), np.where(converged, b, new_b)
        converged |= step < tol * (1 + np.abs(a) + np.abs(b))
        if converged.all():
            break
    bad = ~converged | ~np.isfinite(a) | ~np.isfinite(b)
    return np.where(bad, np.nan, a), np.where(bad, np.nan, b)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intercept and slope of the weighted least-squares line of ``y`` on ``x`` (along the last axis)."""
    s0, s1, s2 = w.sum(-1), (w * x).sum(-1), (w * x * x).sum(-1)
    t0, t1 = (w * y).sum(-1), (w * x * y).sum(-1)
    det = s0 * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s2 * t0 - s1 * t1) / det, (s0 * t1 - s1 * t0) / det


def _probit_crossing(a: Any, b: Any, power: float) -> Any:
    """|effect| at which the probit curve reaches ``power`` (NaN where the slope is not positive)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, (ndtri(power) - a) / b, np.nan)


def minimum_detectable_effect(
    summary: pd.DataFrame,
    method: str,
    power: float = 0.8,
    design_index: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Smallest ``|effect|`` reaching ``power``, from a probit power curve fitted to the study's rejection counts,
    with an interval that includes both the Monte Carlo error and the error of the curve's form.

    The curve: ``P(reject) = Phi(a + b |effect|)`` fitted by maximum likelihood to the rejections at every simulated
    effect, zero included (:func:`fit_probit_power`); ``mde_logit`` is where it reaches ``power``. Its interval:
    the 2.5 and 97.5 percentiles of the MDE over :data:`MDE_BOOTSTRAP_DRAWS` refits to counts redrawn from each
    effect's observed rejection rate (binomial, seed :data:`MDE_BOOTSTRAP_SEED`), widened where needed to include
    ``mde_logit_linear``, the MDE by linear interpolation of the observed power curve: the interval covers what the
    choice between the two curves changes. Where the probit has no maximum-likelihood fit (complete separation, e.g.
    two effects with 0 % and 100 % power), that curve's MDE is the linear one (``mde_curve`` says so). A bound
    beyond the largest simulated effect is NaN, and so is an MDE
    beyond it (not reached: the fit is not extrapolated).

    Returns ``mde_logit`` (absolute conditional ``beta_self_share``, the grid scale), ``mde_logit_low``,
    ``mde_logit_high``, ``mde_logit_linear``, ``mde_logit_boot_low`` / ``_high`` (the bootstrap percentiles before
    widening); the same in percentage points (``mde_pp*`` = logit x ``mean_pq`` x 100: percentage points of turnout
    for a race moving from no to only self-nominated candidates); ``probit_intercept``, ``probit_slope``,
    ``mde_curve`` (``"probit (maximum likelihood on the replication counts)"``); ``mean_pq`` (mean ``s (1 - s)`` over
    the design's simulated races); ``reached`` (some simulated effect reached ``power``); ``size`` at effect 0 with
    its exact interval; ``size_ok`` (that
    interval reaches down to ``alpha``: the power of a test shown to reject too often is not a detectable effect,
    while a conservative test's is); and
    ``enough_replications`` (:func:`enough_replications`). Without ``size_ok`` and enough replications every MDE is
    NaN.
    """
    curve = power_curve(summary, method, design_index)
    rows = summary[(summary["method"] == method) & (summary["design_index"] == design_index)]
    mean_pq = float(np.average(rows["mean_pq"], weights=rows["n_ok"])) if rows["n_ok"].sum() else math.nan
    x = curve["abs_effect"].to_numpy(dtype=float)
    null = curve[curve["abs_effect"] == 0]
    size = float(null["power"].iloc[0]) if len(null) else math.nan
    size_low = float(null["power_low"].iloc[0]) if len(null) else math.nan
    size_high = float(null["power_high"].iloc[0]) if len(null) else math.nan
    size_ok = bool(len(null) and size_low <= alpha)
    enough = enough_replications(summary, method, design_index)
    linear = _crossing(x, curve["power"].to_numpy(), power)
    keys = (
        "mde_logit",
        "mde_logit_low",
        "mde_logit_high",
        "mde_logit_linear",
        "mde_logit_boot_low",
        "mde_logit_boot_high",
    )
    mde = dict.fromkeys(keys, math.nan)
    a = b = math.nan
    curve_kind = MDE_CURVE
    usable = curve[curve["n_ok"] > 0]
    if size_ok and enough and usable["abs_effect"].nunique() >= 2:
        xs = usable["abs_effect"].to_numpy(dtype=float)
        n = usable["n_ok"].to_numpy(dtype=float)
        k = np.round(usable["power"].to_numpy(dtype=float) * n)
        a, b = (float(v) for v in fit_probit_power(xs, k, n))
        top = float(xs.max())
        fitted = max(float(_probit_crossing(a, b, power)), 0.0)  # a curve above ``power`` at 0 has an MDE of 0
        if not math.isfinite(fitted):  # no maximum-likelihood probit (complete separation): linear interpolation
            fitted, curve_kind = linear, MDE_CURVE_FALLBACK
        rng = np.random.default_rng(MDE_BOOTSTRAP_SEED)
        redrawn = rng.binomial(n.astype(np.int64), k / n, size=(MDE_BOOTSTRAP_DRAWS, len(n)))
        draws = np.maximum(_probit_crossing(*fit_probit_power(xs, redrawn, n), power), 0.0)
        for i in np.flatnonzero(~np.isfinite(draws)):  # the same fallback for a redrawn curve
            draws[i] = _crossing(xs, redrawn[i] / n, power)
        draws = np.where(np.isfinite(draws), draws, np.inf)  # never reached: beyond every bound
        boot_low, boot_high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
        low = min(boot_low, linear) if math.isfinite(linear) else boot_low
        high = max(boot_high, linear) if math.isfinite(linear) else boot_high
        within = lambda value: value if math.isfinite(value) and 0 <= value <= top else math.nan  # noqa: E731
        mde = {
            "mde_logit": within(fitted),
            "mde_logit_low": within(max(low, 0.0)),  # (bounds below 0: the power at 0 already reaches it)
            "mde_logit_high": within(high),
            "mde_logit_linear": linear,
            "mde_logit_boot_low": within(max(boot_low, 0.0)),
            "mde_logit_boot_high": within(boot_high),
        }
    return {
        "method": method,
        "power": power,
        **mde,
        **{key.replace("logit", "pp"): value * mean_pq * 100 for key, value in mde.items()},
        "probit_intercept": a,
        "probit_slope": b,
        "mde_curve": curve_kind,
        "mean_pq": mean_pq,
        "reached": bool(np.any(curve["power"].to_numpy() >= power)),
        "size": size,
        "size_low": size_low,
        "size_high": size_high,
        "size_ok": size_ok,
        "enough_replications": enough,
    }


MDE_CURVE = "probit (maximum likelihood on the replication counts)"
MDE_CURVE_FALLBACK = "linear interpolation (no maximum-likelihood probit: complete separation)"


# --- the recommendation --------------------------------------------------------------------------------------------

# A method's size and coverage are judged against bounds the study can resolve: the bound a method with exactly the
# nominal rate clears with this probability in the study's number of data sets (see resolvable_bound).
ASSURANCE = 0.95


def resolvable_bound(n: int, rate: float, side: str, level: float = 0.95, assurance: float = ASSURANCE) -> float:
    """The tightest bound on a rate that ``n`` data sets can resolve, for a method whose true rate is ``rate``.

    ``side="upper"`` (for a size): the upper end of the exact ``level`` interval of a method with true rate ``rate``
    stays at or below this bound with probability at least ``assurance``: it is the upper Clopper-Pearson bound at the
    ``assurance`` quantile of Binomial(n, rate). ``side="lower"`` (for a coverage): the lower Clopper-Pearson bound at
    the ``1 - assurance`` quantile; the lower end of a nominal method's interval stays at or above it with probability
    at least ``assurance``. More data sets bring the bound closer to ``rate``.
    """
    from scipy.stats import binom

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    if side == "upper":
        k = int(binom.ppf(assurance, n, rate))
        return float(clopper_pearson(k, n, level)[1])
    if side == "lower":
        k = int(binom.ppf(1 - assurance, n, rate))
        return float(clopper_pearson(k, n, level)[0])
    raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: ``2 P(X <= min(b, c))`` for X ~ Binomial(b + c, 1/2),
    capped at 1 (1 when there is no discordant pair)."""
    from scipy.stats import binom

    if only_first < 0 or only_second < 0:
        raise ValueError(f"discordant counts must be non-negative, got {only_first} and {only_second}")
    n = only_first + only_second
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(only_first, only_second), n, 0.5)))


PAIR_COLUMNS = ["design_index", "effect_index", "replication"]


def paired_rejections(results: pd.DataFrame, first: str, second: str, design_index: int = 0) -> dict[str, int]:
    """Rejections of two methods on the same simulated data sets at the non-zero effects of a design.

    Pairs are the data sets (``effect_index``, ``replication``) on which both methods gave a usable fit (``ok``).
    Returns ``pairs``, ``both``, ``only_first`` (the first rejects, the second does not), ``only_second`` and
    ``neither``.
    """
    missing = [c for c in (*PAIR_COLUMNS, "effect", "method", "rejected", "ok") if c not in results.columns]
    if missing:
        raise ValueError(f"results is missing column(s): {missing}")
    rows = results[(results["design_index"] == design_index) & (results["effect"] != 0) & results["ok"].astype(bool)]
    one = rows[rows["method"] == first].set_index(PAIR_COLUMNS)["rejected"].astype(bool)
    two = rows[rows["method"] == second].set_index(PAIR_COLUMNS)["rejected"].astype(bool)
    if one.index.duplicated().any() or two.index.duplicated().any():
        raise ValueError("results has more than one row per method and data set")
    a, b = one.align(two, join="inner")
    return {
        "pairs": len(a),
        "both": int((a & b).sum()),
        "only_first": int((a & ~b).sum()),
        "only_second": int((~a & b).sum()),
        "neither": int((~a & ~b).sum()),
    }


def resolvable_count(n: int, rate: float, side: str, assurance: float = ASSURANCE) -> int:
    """The count behind :func:`resolvable_bound`: the ``assurance`` quantile (``side="upper"``) or the
    ``1 - assurance`` quantile (``side="lower"``) of Binomial(n, rate). A count of successes clears the bound exactly
    when it is at most (upper) or at least (lower) this count, since the Clopper-Pearson bounds rise with the count."""
    from scipy.stats import binom

    if side not in ("upper", "lower"):
        raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")
    return int(binom.ppf(assurance if side == "upper" else 1 - assurance, n, rate))


def _counts(rates: pd.Series, n_ok: pd.Series) -> np.ndarray:
    """Whole counts behind rates of a summary (rate = count / n_ok, stored to 6 significant digits)."""
    return np.rint(rates.to_numpy(dtype=float) * n_ok.to_numpy(dtype=float)).astype(np.int64)


def method_standing(own: pd.DataFrame, alpha: float) -> dict[str, Any]:
    """Size, lowest coverage and pooled power of one method's summary rows in one design, judged against the
    resolvable bounds.

    The judgement compares whole counts (rejections at effect 0 with the count behind the ceiling, covering
    intervals at each effect with the count behind its floor, :func:`resolvable_count`), which is the same as
    comparing the exact intervals with the bounds but cannot be flipped by rounding: a method whose lowest coverage
    count equals the floor's count clears the floor, though its stated interval and the bound print alike."""
    zero, other = own[own["effect"] == 0].iloc[0], own[own["effect"] != 0]
    n_null = int(zero["n_ok"])
    ceiling = resolvable_bound(n_null, alpha, "upper") if n_null else math.nan
    floors = [resolvable_bound(int(n), 1 - alpha, "lower") if n else math.nan for n in other["n_ok"]]
    floor_counts = np.array([resolvable_count(int(n), 1 - alpha, "lower") if n else 0 for n in other["n_ok"]])
    covered = _counts(other["coverage"].fillna(0), other["n_ok"])
    usable = other["n_ok"].to_numpy() > 0
    margin = np.where(usable, covered - floor_counts, 0)
    short = other["coverage_low"].to_numpy() - np.asarray(floors, dtype=float)
    worst = other.iloc[int(np.argmin(short))] if len(other) else None
    rejected = float((other["rejection"] * other["n_ok"]).sum())
    n_effect = int(other["n_ok"].sum())
    rejected_null = int(_counts(pd.Series([zero["rejection"]]), pd.Series([n_null]))[0]) if n_null else 0
    size_ok = bool(n_null and rejected_null <= resolvable_count(n_null, alpha, "upper"))
    coverage_ok = bool(len(other) == 0 or (usable.all() and (margin >= 0).all()))
    return {
        "size": float(zero["rejection"]),
        "size_low": float(zero["rejection_low"]),
        "size_high": float(zero["rejection_high"]),
        "n_null": n_null,
        "size_ceiling": ceiling,
        "size_ok": size_ok,
        "coverage_min": math.nan if worst is None else float(worst["coverage"]),
        "coverage_min_low": math.nan if worst is None else float(worst["coverage_low"]),
        "coverage_min_high": math.nan if worst is None else float(worst["coverage_high"]),
        "coverage_min_effect": math.nan if worst is None else float(worst["effect"]),
        "coverage_floor": min(floors) if floors else math.nan,
        "n_effect_min": int(other["n_ok"].min()) if len(other) else 0,
        "coverage_ok": coverage_ok,
        "acceptable": size_ok and coverage_ok,
        "power": rejected / n_effect if n_effect else math.nan,
        "n_effect_data_sets": n_effect,
        "zero": zero,
    }


def recommend(
    summary: pd.DataFrame,
    results: pd.DataFrame | None = None,
    alpha: float = 0.05,
    design_index: int = 0,
) -> dict[str, Any]:
    """The inference method to report at a design, the methods the study cannot tell from it, and the reason.

    The rule, every interval an exact (Clopper-Pearson) 95 % interval:

    1. Only methods with enough data sets (:func:`enough_replications`) are weighed (all if none has).
    2. A method is *acceptable* when its size at effect 0 is shown to be at most the ceiling
       ``resolvable_bound(n0, alpha, "upper")`` (the upper end of its size interval is at or below it) and its
       coverage at every non-zero effect is shown to be at least the floor ``resolvable_bound(n, 1 - alpha,
       "lower")`` (the lower end of its coverage interval is at or above it). Ceiling and floor are the bounds a
       method with exactly nominal size or coverage clears with probability :data:`ASSURANCE` at the study's numbers
       of data sets, so the criteria ask no more than the study can resolve, and more data sets tighten them.
    3. Among acceptable methods the cluster-robust ones (:data:`CLUSTER_ROBUST`) come first; among those the method
       with the highest power, pooled over the non-zero effects (rejections / usable fits), is chosen (ties in the
       point value by :data:`METHODS` order).
    4. Every other method of that group is compared with the chosen one on the same data sets (``results``: the
       per-replication frame of :mod:`akim_turnout.study.replications`) by an exact McNemar test on their discordant
       rejections at the non-zero effects (:func:`paired_rejections`, :func:`mcnemar_exact`); where its p-value is at
       least ``alpha`` the two cannot be told apart and the method is *tied* with the chosen one. Without
       ``results`` no paired test is made and nothing is tied.
    5. If no method is acceptable, the cluster-robust method whose size is closest to ``alpha`` is returned, with
       nothing tied, and the reason says so.

    Returns a dict: ``method`` (the chosen one), ``tied`` (methods not told apart from it), ``methods`` (``method``
    then ``tied``), ``reason`` (sentences built from the numbers), ``criteria`` (alpha, ceiling, floor, their data
    sets, assurance, tie test) and ``candidates`` (one dict per weighed method: size and lowest coverage with their
    intervals and bounds, acceptability, pooled power, against the chosen method the discordant counts and the
    McNemar p-value, and a ``verdict`` in words).
    """
    real = summary[(summary["design_index"] == design_index) & (summary["n_ok"] > 0)]
    if real[real["effect"] == 0].empty:
        raise ValueError(f"no effect-0 rows in design {design_index}")
    methods = [
        m for m in METHODS if m in set(real["method"]) and not real[(real["method"] == m) & (real["effect"] == 0)].empty
    ]
    eligible = [m for m in methods if enough_replications(summary, m, design_index)] or methods
    standing = {m: method_standing(real[real["method"] == m], alpha) for m in eligible}
    acceptable = [m for m in eligible if standing[m]["acceptable"]]
    robust = [m for m in acceptable if m in CLUSTER_ROBUST]
    group = robust or acceptable
    nominal = 1 - alpha
    ceiling = max(s["size_ceiling"] for s in standing.values())
    floor = min(
        (s["coverage_floor"] for s in standing.values() if not math.isnan(s["coverage_floor"])), default=math.nan
    )
    n_null = min(s["n_null"] for s in standing.values())
    n_effect = min((s["n_effect_min"] for s in standing.values()), default=0)
    tied: list[str] = []
    comparisons: dict[str, dict[str, Any]] = {}
    if group:
        power = {m: standing[m]["power"] for m in group}
        best = max(group, key=lambda m: (-math.inf if math.isnan(power[m]) else power[m], -METHODS.index(m)))
        if results is not None:
            for m in group:
                if m == best:
                    continue
                pair = paired_rejections(results, best, m, design_index)
                p = mcnemar_exact(pair["only_first"], pair["only_second"])
                comparisons[m] = {**pair, "mcnemar_p": p, "tied": p >= alpha}
                if p >= alpha:
                    tied.append(m)
    else:
        fallback = [m for m in eligible if m in CLUSTER_ROBUST] or eligible
        best = min(fallback, key=lambda m: (abs(standing[m]["size"] - alpha), METHODS.index(m)))
    chosen = standing[best]
    zero = chosen["zero"]
    label = method_label
    criteria = (
        f"A method was acceptable when the exact 95 % interval of its size with no true effect ended at or below "
        f"{_pct(ceiling)} and that of its coverage at every non-zero true effect began at or above {_pct(floor)}: "
        f"the bounds a method of exactly {_pct(alpha)} size and {_pct(nominal)} coverage clears with "
        f"{_pct(ASSURANCE)} probability in {n_null:,} data sets with no true effect and {n_effect:,} at each non-zero "
        f"effect, the numbers this study ran"
    )
    listing = "Per method: " + "; ".join(
        f"{label(m)}: size {_pct(s['size'])} ({_pct(s['size_low'])} to {_pct(s['size_high'])}), lowest coverage "
        f"{_pct(s['coverage_min'])} ({_pct(s['coverage_min_low'])} to {_pct(s['coverage_min_high'])}), power "
        f"{_pct(s['power'])}, {'acceptable' if s['acceptable'] else _failure(s)}"
        for m, s in standing.items()
    )
    failed = int(zero["n"] - zero["n_ok"])
    failures = f"; {failed} of {int(zero['n'])} of its fits failed at no true effect" if failed else ""
    design = f"{int(zero['n_regions'])} regions, {int(zero['n_races'])} races"
    if group:
        among = (
            "the cluster-robust ones (they assume nothing about the correlation within a region)"
            if best in CLUSTER_ROBUST
            else "them (no cluster-robust method was acceptable)"
        )
        choice = (
            f"{len(acceptable)} of {len(standing)} methods were acceptable; among {among} the {label(best)} had the "
            f"highest power, pooled over the non-zero true effects ({_pct(chosen['power'])} of "
            f"{chosen['n_effect_data_sets']:,} data sets{failures})."
        )
        if results is None:
            pairs = " No per-data-set results were given, so no paired comparison was made."
        else:
            parts = []
            for m, c in comparisons.items():
                verdict = "cannot be told apart from it" if c["tied"] else "is less powerful"
                parts.append(
                    f"the {label(m)} {verdict} (on the same {c['pairs']:,} data sets {c['only_first']} rejections by "
                    f"the {label(best)} alone against {c['only_second']} by the {label(m)} alone, exact McNemar "
                    f"p = {_p(c['mcnemar_p'])})"
                )
            pairs = (" Compared with it, " + "; ".join(parts) + ".") if parts else ""
            if tied:
                pairs += (
                    f" The study therefore does not choose between the {label(best)} and the "
                    f"{' and the '.join(label(m) for m in tied)}: the headline is reported under each."
                )
    else:
        choice = (
            f"No method was acceptable; the {label(best)} is reported because its size came closest to "
            f"{_pct(alpha)} among the {'cluster-robust ' if best in CLUSTER_ROBUST else ''}methods{failures}."
        )
        pairs = ""
    reason = f"{criteria} (the real design: {design}). {listing}. {choice}{pairs}"
    candidates = [
        {
            "method": m,
            **{key: value for key, value in s.items() if key != "zero"},
            "cluster_robust": m in CLUSTER_ROBUST,
            "chosen": m == best,
            "tied": m in tied,
            "verdict": _verdict(m, best, tied, s["acceptable"], m in group),
            **{key: comparisons.get(m, {}).get(key) for key in ("pairs", "only_first", "only_second", "mcnemar_p")},
        }
        for m, s in standing.items()
    ]
    return stated(
        {
            "method": best,
            "tied": tied,
            "methods": [best, *tied],
            "reason": reason,
            "criteria": {
                "alpha": alpha,
                "size_ceiling": ceiling,
                "n_null": n_null,
                "coverage_floor": floor,
                "n_effect": n_effect,
                "assurance": ASSURANCE,
                "interval": "exact (Clopper-Pearson) 95 %",
                "power": "pooled over the non-zero effects",
                "tie_test": "exact McNemar on discordant rejections, same data sets" if results is not None else None,
                "tie_level": alpha,
            },
            "candidates": candidates,
        }
    )


def _verdict(method: str, best: str, tied: Sequence[str], acceptable: bool, compared: bool) -> str:
    """One method's place in the rule, in words."""
    if method == best:
        return "chosen"
    if method in tied:
        return "cannot be told apart from the chosen method"
    if not acceptable:
        return "not acceptable"
    if not compared:
        return "acceptable, not cluster-robust"
    return "acceptable, less powerful"


def _pct(value: float) -> str:
    """A rate as printed in the reason: one decimal, or none where it is whole ('5 %', '6.1 %'); '–' if missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.1f}"
    return f"{text.removesuffix('.0')} %"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def _failure(standing: Mapping[str, Any]) -> str:
    reasons = []
    if not standing["size_ok"]:
        reasons.append(f"size interval above {_pct(standing['size_ceiling'])}")
    if not standing["coverage_ok"]:
        reasons.append(f"coverage interval below {_pct(standing['coverage_floor'])}")
    return "not acceptable (" + " and ".join(reasons) + ")"


def recommend_method(
    summary: pd.DataFrame,
    alpha: float = 0.05,
    design_index: int = 0,
    results: pd.DataFrame | None = None,
) -> tuple[str, str]:
    """The chosen method of :func:`recommend` and its reason."""
    chosen = recommend(summary, results, alpha=alpha, design_index=design_index)
    return chosen["method"], chosen["reason"]


def method_label(method: str) -> str:
    """Readable label of a method name (:func:`akim_turnout.report.labels.method`)."""
    return labels.method(method)


def mde_note(method_metrics: Mapping[str, Any], effect_grid: Sequence[float]) -> str:
    """Why a method has no minimum detectable effect ('' when it has one), from its :func:`study_metrics` entry."""
    if not method_metrics["enough_replications"]:
        return "too few simulated data sets"
    if not method_metrics["size_ok"]:
        return "size not within Monte Carlo error of the nominal level"
    if method_metrics["mde_pp"] is None:
        return (
            f"not reached within the simulated effects (up to {max(abs(e) for e in effect_grid):g} on the logit scale)"
        )
    if method_metrics["mde_pp_high"] is None:
        return "upper Monte Carlo bound beyond the simulated effects"
    return ""


def study_metrics(
    summary: pd.DataFrame, alpha: float = 0.05, power: float = 0.8, results: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Headline numbers for a metrics JSON, at their stated precision (:func:`akim_turnout.pipeline.outputs.stated`).

    ``real_design``: per method, usable and failed fits, size at effect 0 with its exact 95 % Monte Carlo
    interval, the lowest coverage over the non-zero effects with its interval, the power at every non-zero effect
    with its interval (``power_by_effect``), bias and SE ratio at effect 0, whether it ran on enough data sets for
    claims, and the MDE at ``power`` with its interval (probit fit; None where :func:`minimum_detectable_effect`
    gives none) and the linearly interpolated MDE; ``designs``: size at effect 0 for every design;
    ``recommended_method`` and ``tied_methods`` (:func:`recommend`, with the paired test where ``results`` are
    given). The recommendation's reason is prose, written by :func:`recommend`.
    """
    methods = [m for m in METHODS if m in set(summary["method"])]
    real = summary[summary["design_index"] == 0]
    chosen = recommend(summary, results, alpha=alpha)
    per_method = {}
    for m in methods:
        own = real[real["method"] == m]
        zero, other = own[own["effect"] == 0].iloc[0], own[own["effect"] != 0]
        covered = other.dropna(subset=["coverage"])  # an effect where no data set gave an interval has no coverage
        worst = covered.loc[covered["coverage"].idxmin()] if len(covered) else None
        mde = minimum_detectable_effect(summary, m, power=power, alpha=alpha)
        per_method[m] = {
            "n_replications": int(zero["n_ok"]),
            "n_failed": int(zero["n"] - zero["n_ok"]),
            "n_replications_per_effect": int(other["n_ok"].min()) if len(other) else 0,
            "enough_replications": mde["enough_replications"],
            "size": zero["rejection"],
            "size_low": zero["rejection_low"],
            "size_high": zero["rejection_high"],
            "coverage_min": None if worst is None else worst["coverage"],
            "coverage_min_low": None if worst is None else worst["coverage_low"],
            "coverage_min_high": None if worst is None else worst["coverage_high"],
            "coverage_min_effect": None if worst is None else worst["effect"],
            "power_by_effect": [
                {
                    "effect": r["effect"],
                    "power": r["rejection"],
                    "power_low": r["rejection_low"],
                    "power_high": r["rejection_high"],
                    "n": int(r["n_ok"]),
                }
                for _, r in other.iterrows()
            ],
            "bias_at_zero": zero["bias"],
            "se_ratio_at_zero": zero["se_ratio"],
            **{key: mde[key] for key in (*MDE_KEYS, "mde_logit_linear", "mde_pp_linear", "size_ok")},
        }
    designs = [
        {
            "n_regions": int(group["n_regions"].iloc[0]),
            "n_races": int(group["n_races"].iloc[0]),
            "size": {r["method"]: r["rejection"] for _, r in group.iterrows()},
        }
        for _, group in summary[summary["effect"] == 0].groupby("design_index", sort=True)
    ]
    return stated(
        {
            "real_design": {
                "n_regions": int(real["n_regions"].iloc[0]),
                "n_races": int(real["n_races"].iloc[0]),
                "alpha": alpha,
                "mde_power": power,
                "mde_curve": MDE_CURVE,
                "methods": per_method,
            },
            "designs": designs,
            "recommended_method": chosen["method"],
            "tied_methods": chosen["tied"],
        }
    )
