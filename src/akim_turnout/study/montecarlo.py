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
from scipy.special import betaincinv

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


def minimum_detectable_effect(
    summary: pd.DataFrame,
    method: str,
    power: float = 0.8,
    design_index: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Smallest ``|effect|`` reaching ``power``, by linear interpolation of the power curve, with its Monte Carlo
    interval from the exact intervals of the power at each grid effect.

    Returns ``mde_logit`` (absolute conditional ``beta_self_share``, the grid scale) and its interval
    ``mde_logit_low`` (where the upper power bound reaches ``power``) and ``mde_logit_high`` (where the lower bound
    does; NaN when that happens beyond the grid); the same in percentage points (``mde_pp*`` = logit x ``mean_pq``
    x 100: percentage points of turnout for a race moving from no to only self-nominated candidates); ``mean_pq``
    (mean ``s (1 - s)`` over the design's simulated races); ``reached``; ``size`` at effect 0 with its exact
    interval; ``size_ok`` (that interval contains ``alpha``: the power of a test that rejects too often is not a
    detectable effect); and ``enough_replications`` (:func:`enough_replications`). Without ``size_ok`` and enough
    replications every MDE is NaN.
    """
    curve = power_curve(summary, method, design_index)
    rows = summary[(summary["method"] == method) & (summary["design_index"] == design_index)]
    mean_pq = float(np.average(rows["mean_pq"], weights=rows["n_ok"])) if rows["n_ok"].sum() else math.nan
    x = curve["abs_effect"].to_numpy()
    null = curve[curve["abs_effect"] == 0]
    size = float(null["power"].iloc[0]) if len(null) else math.nan
    size_low = float(null["power_low"].iloc[0]) if len(null) else math.nan
    size_high = float(null["power_high"].iloc[0]) if len(null) else math.nan
    size_ok = bool(len(null) and size_low <= alpha <= size_high)
    enough = enough_replications(summary, method, design_index)
    mde = {
        key: _crossing(x, curve[column].to_numpy(), power)
        for key, column in (("mde_logit", "power"), ("mde_logit_low", "power_high"), ("mde_logit_high", "power_low"))
    }
    if not (size_ok and enough):
        mde = dict.fromkeys(mde, math.nan)
    return {
        "method": method,
        "power": power,
        **mde,
        **{key.replace("logit", "pp"): value * mean_pq * 100 for key, value in mde.items()},
        "mean_pq": mean_pq,
        "reached": bool(np.any(curve["power"].to_numpy() >= power)),
        "size": size,
        "size_low": size_low,
        "size_high": size_high,
        "size_ok": size_ok,
        "enough_replications": enough,
    }


def recommend_method(summary: pd.DataFrame, alpha: float = 0.05, design_index: int = 0) -> tuple[str, str]:
    """The method to report at the real design, and a one-sentence reason built from the numbers.

    Only methods with enough replications (:func:`enough_replications`) are considered (all methods if none has).
    A method qualifies when the exact 95 % Monte Carlo interval of its size at effect 0 contains ``alpha`` and that
    of its coverage at every non-zero effect contains ``1 - alpha`` (at effect 0, coverage is 1 - size: the same
    event). Among qualifying methods cluster-robust ones come first, then the size closest to ``alpha``, then
    :data:`METHODS` order. If none qualifies, the cluster-robust method whose size is closest to ``alpha`` is
    returned and the reason says so.
    """
    real = summary[(summary["design_index"] == design_index) & (summary["n_ok"] > 0)]
    if real[real["effect"] == 0].empty:
        raise ValueError(f"no effect-0 rows in design {design_index}")
    methods = [m for m in METHODS if m in set(real["method"])]
    eligible = [m for m in methods if enough_replications(summary, m, design_index)] or methods
    nominal = 1 - alpha
    rows = []
    for method in eligible:
        own = real[real["method"] == method]
        zero, other = own[own["effect"] == 0].iloc[0], own[own["effect"] != 0]
        qualifies = bool(
            zero["rejection_low"] <= alpha <= zero["rejection_high"]
            and ((other["coverage_low"] <= nominal) & (nominal <= other["coverage_high"])).all()
        )
        rows.append(
            {
                "method": method,
                "qualifies": qualifies,
                "robust_rank": int(method not in CLUSTER_ROBUST),
                "size_gap": abs(zero["rejection"] - alpha),
                "order": METHODS.index(method),
                "zero": zero,
                "coverage_min": float(other["coverage"].min()) if len(other) else math.nan,
            }
        )
    table = pd.DataFrame(rows)
    qualified = table[table["qualifies"]]
    if not qualified.empty:
        best = qualified.sort_values(["robust_rank", "size_gap", "order"], kind="stable").iloc[0]
        sizes = ", ".join(f"{method_label(r.method)} {r.zero['rejection']:.1%}" for r in qualified.itertuples())
        among = (
            "cluster-robust methods (they assume nothing about the correlation within a region) come first, and "
            "among them"
            if best["method"] in CLUSTER_ROBUST
            else "no cluster-robust method qualified, and among the others"
        )
        tail = (
            f"{len(qualified)} of {len(table)} methods had an exact interval of their size containing {alpha:.0%} and "
            f"of their coverage at every true effect containing {nominal:.0%} (sizes: {sizes}); {among} this one's "
            f"size was closest to {alpha:.0%}"
        )
    else:
        best = table.sort_values(["robust_rank", "size_gap", "order"], kind="stable").iloc[0]
        tail = (
            f"no method had an exact interval of its size containing {alpha:.0%} and of its coverage at every true "
            f"effect containing {nominal:.0%}; this one's size came closest to {alpha:.0%} among the cluster-robust "
            "methods"
        )
    zero = best["zero"]
    failed = int(zero["n"] - zero["n_ok"])
    failures = f"; {failed} of {int(zero['n'])} fits failed" if failed else ""
    reason = (
        f"In {int(zero['n_ok'])} simulated data sets of the real design ({int(zero['n_regions'])} regions, "
        f"{int(zero['n_races'])} races) with no true effect, the {method_label(best['method'])} rejected the true null "
        f"in {zero['rejection']:.1%} (exact 95 % interval {zero['rejection_low']:.1%} to {zero['rejection_high']:.1%})"
        f"{failures}; {tail}."
    )
    return str(best["method"]), reason


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


def study_metrics(summary: pd.DataFrame, alpha: float = 0.05, power: float = 0.8) -> dict[str, Any]:
    """Headline numbers for a metrics JSON, at their stated precision (:func:`akim_turnout.pipeline.outputs.stated`).

    ``real_design``: per method, usable and failed fits, size at effect 0 with its exact 95 % Monte Carlo
    interval, the lowest coverage over the non-zero effects with its interval, bias and SE ratio at effect 0,
    whether it ran on enough data sets for claims, and the MDE at ``power`` with its Monte Carlo interval (None
    where :func:`minimum_detectable_effect` gives none); ``designs``: size at effect 0 for every design;
    ``recommended_method``. The recommendation's reason is prose, written by the report from these numbers.
    """
    methods = [m for m in METHODS if m in set(summary["method"])]
    real = summary[summary["design_index"] == 0]
    name, _ = recommend_method(summary, alpha=alpha)
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
            "bias_at_zero": zero["bias"],
            "se_ratio_at_zero": zero["se_ratio"],
            **{
                key: mde[key]
                for key in (
                    "mde_logit",
                    "mde_logit_low",
                    "mde_logit_high",
                    "mde_pp",
                    "mde_pp_low",
                    "mde_pp_high",
                    "size_ok",
                )
            },
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
                "methods": per_method,
            },
            "designs": designs,
            "recommended_method": name,
        }
    )
