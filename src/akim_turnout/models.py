"""Turnout models: regional fractional logit and race-level models (statsmodels 0.15).

Regional level (the published record, 5 to 14 regions): a fractional logit
(binomial GLM on the turnout share, Papke & Wooldridge 1996) with HC3
standard errors and t-based inference, plus leave-one-out, permutation
and average-marginal-effect helpers.

Race level (simulated races, or real race data if it appears): binomial
GLM on vote counts with region-clustered errors, a restricted wild cluster
(score) bootstrap, beta regression, GEE, a linear mixed model on the
empirical logit and a naive binomial GLM for comparison.

Statsmodels behaviour this module works around (checked on 0.15.0):

* ``GLM.fit(cov_type="HC1"|"HC2"|"HC3")`` silently returns HC0: GLM
  results have no ``cov_HCx`` attributes, so ``get_robustcov_results``
  falls back to ``cov_white_simple(use_correction=False)``. HC1/HC3 are
  therefore computed here from ``score_obs``, the Hessian and GLM leverages.
* ``get_margeff()`` uses normal quantiles whatever ``use_t`` says, its
  standard errors come from the result's own covariance (not an HC3 matrix
  computed outside statsmodels) and it ignores ``var_weights``. Average
  marginal effects are therefore computed here by the delta method.
* GEE results always have ``use_t=False``; GEE ``fit`` returns ``None``
  (with a ConvergenceWarning) when it fails; ``bias_reduced`` builds an
  n_g x n_g matrix per cluster, so it is for hundreds, not millions, of races.
* GEE's ``cov_type="bias_reduced"`` inverts ``I - H_gg`` per cluster, which
  is singular when the formula has a dummy per cluster (``C(region)``): it
  then fails or not depending on rounding noise. The bias-reduced covariance
  is computed by :func:`akim_turnout.inference.mancl_derouen_cov` (generalized
  inverse) instead. With ``weights`` statsmodels' version also fails (a
  broadcasting error), so weighted GEE uses "robust".
* ``var_weights`` combined with a robust ``cov_type`` emits
  ``SpecificationWarning: cov_type not fully supported with var_weights``
  even though the counts form gives identical numbers.
* IRLS on 10^6 x 17 designs peaks near 1.4 GB above the data (pinv/SVD
  copies); Newton on the analytic Hessian needs about 0.35 GB and half the time.
* ``BetaModel.fit`` (BFGS) stops at a gradient of about 1e-5 per observation,
  1e-4 (relative) away from the optimum; Newton steps from there reach it.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit
from statsmodels.othermod.betareg import BetaModel

from akim_turnout.inference import mancl_derouen_cov
from akim_turnout.outputs import stated

INTERCEPT = "Intercept"
_TERM_PATTERNS = (
    ("categorical", re.compile(r"^C\((\w+)\)$")),
    ("log", re.compile(r"^(?:np\.)?log\((\w+)\)$")),
    ("numeric", re.compile(r"^(\w+)$")),
)
WILD_WEIGHTS = {
    "rademacher": np.array([-1.0, 1.0]),
    # Webb (2014) six-point distribution, better with few clusters.
    "webb": np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]),
}


# --------------------------------------------------------------------------
# Validation and warnings
# --------------------------------------------------------------------------


def validate_turnout_rows(
    df: pd.DataFrame, voted: str = "voted", registered: str = "registered", source: str = "races"
) -> None:
    """Refuse rows that no turnout model may use; statsmodels does not check.

    Rules: ``voted`` and ``registered`` known, ``registered > 0``,
    ``voted >= 0`` and ``voted <= registered``. The ``ValueError`` names
    every broken rule with (up to ten of) the offending row index labels.
    """
    missing_columns = [c for c in (voted, registered) if c not in df.columns]
    if missing_columns:
        raise ValueError(f"{source}: missing column(s) {missing_columns}")
    v = pd.to_numeric(df[voted], errors="coerce").to_numpy(dtype=float)
    r = pd.to_numeric(df[registered], errors="coerce").to_numpy(dtype=float)
    missing = np.isnan(v) | np.isnan(r)
    with np.errstate(invalid="ignore"):
        rules = {
            f"{voted} or {registered} is missing": missing,
            f"{registered} <= 0": ~missing & (r <= 0),
            f"{voted} < 0": ~missing & (v < 0),
            f"{voted} > {registered}": ~missing & (v > r),
        }
    problems = [_describe_rows(df.index, mask, rule) for rule, mask in rules.items() if mask.any()]
    if problems:
        raise ValueError(f"{source}: invalid turnout rows: " + "; ".join(problems))


def _describe_rows(index: pd.Index, mask: np.ndarray, rule: str) -> str:
    """'rule at row(s) [labels]' with at most ten labels shown."""
    labels = index[mask].tolist()
    shown = labels[:10] + (["..."] if len(labels) > 10 else [])
    return f"{rule} at row index {shown} ({len(labels)} row(s))"


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


# --------------------------------------------------------------------------
# Result container
# --------------------------------------------------------------------------


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

    def to_frame(self) -> pd.DataFrame:
        """Tidy coefficient table, one row per term."""
        return pd.DataFrame(
            {
                "model": self.name,
                "term": self.params.index,
                "estimate": self.params.to_numpy(),
                "std_error": self.bse.to_numpy(),
                "ci_lower": self.conf_int["lower"].to_numpy(),
                "ci_upper": self.conf_int["upper"].to_numpy(),
                "p_value": self.pvalues.to_numpy(),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, numbers at their stated precision (:func:`akim_turnout.outputs.stated`)."""
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


def _inference(
    params: pd.Series, cov: pd.DataFrame, df: float | None, alpha: float = 0.05
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Standard errors, two-sided p-values and CIs from a covariance matrix (t if df given)."""
    bse = pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=params.index)
    dist = stats.t(df) if df is not None else stats.norm()
    z = params / bse
    pvalues = pd.Series(2 * dist.sf(np.abs(z)), index=params.index)
    q = dist.ppf(1 - alpha / 2)
    conf = pd.DataFrame({"lower": params - q * bse, "upper": params + q * bse})
    return bse, pvalues, conf


def _make_result(
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


# --------------------------------------------------------------------------
# Design matrices (formula-free, fast on 10^6 rows)
# --------------------------------------------------------------------------


def parse_terms(formula_rhs: str | Sequence[str]) -> list[tuple[str, str, str]]:
    """Parse a right-hand side into (kind, column, term name) triples.

    Supported terms, joined by ``+``: ``column``, ``C(column)`` (treatment
    dummies, first sorted level as reference) and ``np.log(column)``. An
    intercept is always included. Anything else raises ``ValueError``.
    """
    pieces = formula_rhs.split("+") if isinstance(formula_rhs, str) else list(formula_rhs)
    parsed = []
    for piece in (p.strip() for p in pieces):
        match = next(((kind, rx.match(piece)) for kind, rx in _TERM_PATTERNS if rx.match(piece)), None)
        if match is None:
            raise ValueError(
                f"Unsupported term {piece!r}: use column, C(column) or np.log(column)"
            )
        kind, m = match
        term = f"np.log({m.group(1)})" if kind == "log" else piece
        parsed.append((kind, m.group(1), term))
    return parsed


def _term_columns(kind: str, column: str, term: str, values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Design columns and names for one parsed term."""
    if kind == "categorical":
        levels = sorted(values.astype(str).unique())
        codes = pd.Categorical(values.astype(str), categories=levels).codes
        block = np.zeros((len(values), len(levels) - 1))
        rows = np.flatnonzero(codes > 0)
        block[rows, codes[rows] - 1] = 1.0
        return block, [f"C({column})[T.{level}]" for level in levels[1:]]
    x = values.to_numpy(dtype=float)
    if kind == "log":
        if np.any(x <= 0):
            raise ValueError(f"{term}: {column} must be > 0 at row index {values.index[x <= 0].tolist()[:10]}")
        x = np.log(x)
    return x[:, None], [term]


def build_design(df: pd.DataFrame, formula_rhs: str | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Design matrix (intercept first) and column names, without patsy/formulaic."""
    blocks, names = [np.ones((len(df), 1))], [INTERCEPT]
    for kind, column, term in parse_terms(formula_rhs):
        block, block_names = _term_columns(kind, column, term, df[column])
        blocks.append(block)
        names.extend(block_names)
    return np.hstack(blocks), names


def _used_columns(formula_rhs: str | Sequence[str]) -> list[str]:
    """Data columns referenced by a right-hand side."""
    return list(dict.fromkeys(column for _, column, _ in parse_terms(formula_rhs)))


def _drop_incomplete(
    df: pd.DataFrame, columns: Sequence[str], label_column: str | None = None, max_records: int = 50
) -> tuple[pd.DataFrame, list[dict[str, Any]], int]:
    """Rows complete in ``columns``, records (at most ``max_records``) of dropped rows and why, and their count."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s): {missing}")
    isna = df[list(columns)].isna()
    incomplete = isna.any(axis=1).to_numpy()
    records = []
    for index in df.index[incomplete][:max_records]:
        label = df.at[index, label_column] if label_column else index
        reasons = [c for c in columns if isna.at[index, c]]
        records.append({"row": stated(label), "reason": "missing " + ", ".join(reasons)})
    return df.loc[~incomplete], records, int(incomplete.sum())


def _check_identified(exog: np.ndarray, names: Sequence[str], label: str) -> None:
    """Refuse designs with no residual degrees of freedom or collinear columns."""
    n, k = exog.shape
    if n <= k:
        raise ValueError(f"{label}: {n} observations for {k} parameters; cannot fit")
    if np.linalg.matrix_rank(exog) < k:
        raise ValueError(f"{label}: design columns are collinear: {list(names)}")


def _cluster_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Integer cluster codes and the number of clusters."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)


# --------------------------------------------------------------------------
# Covariances and marginal effects
# --------------------------------------------------------------------------


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
) -> pd.DataFrame:
    """Average marginal effects in percentage points, with delta-method CIs.

    For a logit mean ``mu = expit(x'b)``, ``dmu/dx_k = mu (1 - mu) b_k``;
    the AME averages it over the fitted rows (equally, or with
    ``averaging_weights``). Dummies are treated as continuous (as
    ``get_margeff(dummy=False)``); for ``np.log(x)`` the effect is per unit
    of ``log(x)``. Standard errors use the fit's own covariance (HC3,
    clustered, ...) and CIs use the t distribution with the fit's
    ``df_resid`` when the fit is t-based.
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
    return _ame_table(pd.DataFrame(rows), fit, alpha, averaging_weights is not None)


def _default_terms(names: pd.Index) -> list[str]:
    """Non-intercept, non-dummy terms."""
    return [n for n in names if n != INTERCEPT and not n.startswith("C(")]


def _ame_table(raw_rows: pd.DataFrame, fit: FitResult, alpha: float, weighted: bool) -> pd.DataFrame:
    """Scale AMEs to percentage points and add p-values and CIs."""
    dist = stats.t(fit.df_resid) if fit.use_t and fit.df_resid else stats.norm()
    q = dist.ppf(1 - alpha / 2)
    out = pd.DataFrame({"model": fit.name, "term": raw_rows["term"]})
    out["ame_pp"] = 100 * raw_rows["ame"]
    out["std_error_pp"] = 100 * raw_rows["se"]
    out["ci_lower_pp"] = out["ame_pp"] - q * out["std_error_pp"]
    out["ci_upper_pp"] = out["ame_pp"] + q * out["std_error_pp"]
    out["p_value"] = 2 * dist.sf(np.abs(raw_rows["ame"] / raw_rows["se"]))
    out["averaging"] = "weighted" if weighted else "unweighted"
    return out


def race_average_marginal_effects(
    fit: FitResult,
    terms: Sequence[str] | None = None,
    electorate_weighted: bool = False,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Race-level AMEs in percentage points (see :func:`average_marginal_effects`).

    ``electorate_weighted=True`` averages over voters (weights = registered
    of each fitted race) rather than over races.
    """
    weights = fit.extra.get("_registered") if electorate_weighted else None
    if electorate_weighted and weights is None:
        raise ValueError(f"{fit.name}: no electorate stored for weighting")
    return average_marginal_effects(fit, terms, weights, alpha)


# --------------------------------------------------------------------------
# Regional fractional logit
# --------------------------------------------------------------------------


def _as_term_list(predictors: str | Sequence[str]) -> list[str]:
    """Predictors as a list of term strings ("a + b" or ["a", "b"])."""
    return [term for _, _, term in parse_terms(predictors)]


def _regional_arrays(
    df: pd.DataFrame, predictors: Sequence[str], weight: str | None, outcome: str, region: str
) -> tuple[pd.DataFrame, list[dict[str, Any]], np.ndarray, list[str]]:
    """Complete regional rows, drop records, design and names."""
    columns = [outcome, *_used_columns(predictors)] + ([weight] if weight else [])
    kept, dropped, _ = _drop_incomplete(df, columns, label_column=region, max_records=len(df))
    exog, names = build_design(kept, predictors)
    return kept, dropped, exog, names


def _fit_fractional_logit(share: np.ndarray, exog: np.ndarray, weights: np.ndarray | None) -> Any:
    """Binomial GLM on shares; ``weights`` enter as var_weights (never freq_weights)."""
    model = sm.GLM(share, exog, family=sm.families.Binomial(), var_weights=weights)
    return model.fit()


def fit_regional_fractional_logit(
    df: pd.DataFrame,
    predictors: Sequence[str],
    weight: str | None = None,
    outcome: str = "turnout_pct",
    region: str = "region",
    cov_type: str = "HC3",
    name: str = "regional_fractional_logit",
) -> FitResult:
    """Fractional logit of regional turnout (``outcome / 100``) on ``predictors``.

    * Rows missing the outcome, a predictor or the weight are dropped; each
      dropped region and the missing columns are in ``notes`` and
      ``extra["dropped"]``.
    * ``weight`` (e.g. ``"voters_on_rolls"``) enters as ``var_weights``,
      rescaled to mean 1 (estimates and sandwich SEs do not depend on the
      scale); never as ``freq_weights``.
    * Covariance: ``cov_type`` in HC3 (default), HC1 or HC0, computed by
      :func:`glm_sandwich_cov`; inference uses t with ``n - k`` df.
    """
    predictors = _as_term_list(predictors)
    kept, dropped, exog, names = _regional_arrays(df, predictors, weight, outcome, region)
    _check_identified(exog, names, name)
    share = kept[outcome].to_numpy(dtype=float) / 100
    outside = (share < 0) | (share > 1)
    if outside.any():
        raise ValueError(f"{name}: {outcome} outside [0, 100] for {kept.loc[outside, region].tolist()}")
    weights = kept[weight].to_numpy(dtype=float) if weight else None
    with captured_warnings() as caught:
        raw = _fit_fractional_logit(share, exog, None if weights is None else weights / weights.mean())
        cov = _checked_sandwich(raw, cov_type, name)
    params = pd.Series(np.asarray(raw.params), index=names)
    notes = [f"dropped {d['row']}: {d['reason']}" for d in dropped]
    if weight:
        notes.append(f"var_weights = {weight} / mean({weight})")
    extra = {
        "dropped": dropped,
        "regions": kept[region].astype(str).tolist(),
        "weight": weight,
        "mean_link": "logit",
        "design_columns": names,
        "max_leverage": float(raw.get_influence().hat_matrix_diag.max()),
    }
    return _make_result(
        name, "binomial (fractional logit)", f"{outcome}/100 ~ " + " + ".join(predictors),
        params, pd.DataFrame(cov, index=names, columns=names), len(share) - len(names),
        n_obs=len(share), n_clusters=None, cov_type=cov_type, warnings=tuple(caught),
        notes=tuple(notes), extra=extra, raw=raw,
    )


def _checked_sandwich(raw: Any, cov_type: str, label: str) -> np.ndarray:
    """Sandwich covariance, refusing fits whose estimates or leverages are unusable."""
    if not np.all(np.isfinite(raw.params)):
        raise ValueError(f"{label}: non-finite estimates (perfect separation or prediction?)")
    try:
        cov = glm_sandwich_cov(raw, cov_type)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"{label}: covariance failed ({error}); perfect prediction?") from error
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{label}: non-finite covariance (perfect separation or prediction?)")
    return cov


def _main_term(predictors: Sequence[str], term: str | None) -> str:
    """Term of interest: given, or the first predictor's term name."""
    return term if term is not None else parse_terms(predictors)[0][2]


def leave_one_out(
    df: pd.DataFrame,
    predictors: Sequence[str],
    weight: str | None = None,
    term: str | None = None,
    outcome: str = "turnout_pct",
    region: str = "region",
    cov_type: str = "HC3",
) -> pd.DataFrame:
    """Refit the regional model once per region left out.

    Returns one row per dropped region (among the complete rows) with the
    estimate, SE, CI and p-value of ``term`` (default: first predictor), its
    change from the full-sample estimate and a ``status`` (``ok`` or why the
    refit failed, e.g. too few rows for the parameters).
    """
    full = fit_regional_fractional_logit(df, predictors, weight, outcome, region, cov_type)
    term = _main_term(predictors, term)
    kept = df.loc[df[region].astype(str).isin(full.extra["regions"])]
    rows = [
        _loo_row(kept, label, predictors, weight, term, outcome, region, cov_type)
        for label in full.extra["regions"]
    ]
    out = pd.DataFrame(rows)
    out["change"] = out["estimate"] - full.params[term]
    return out


def _loo_row(
    kept: pd.DataFrame, label: str, predictors: Sequence[str], weight: str | None,
    term: str, outcome: str, region: str, cov_type: str,
) -> dict[str, Any]:
    """One leave-one-out refit summarised as a row."""
    row: dict[str, Any] = {"dropped_region": label, "n_obs": len(kept) - 1}
    try:
        fit = fit_regional_fractional_logit(
            kept.loc[kept[region].astype(str) != label], predictors, weight, outcome, region, cov_type
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return {**row, "estimate": np.nan, "std_error": np.nan, "ci_lower": np.nan,
                "ci_upper": np.nan, "p_value": np.nan, "n_warnings": 0, "status": str(error)}
    return {
        **row,
        "estimate": fit.params[term],
        "std_error": fit.bse[term],
        "ci_lower": fit.conf_int.at[term, "lower"],
        "ci_upper": fit.conf_int.at[term, "upper"],
        "p_value": fit.pvalues[term],
        "n_warnings": len(fit.warnings),
        "status": "ok",
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
                "term": self.term, "statistic": self.statistic, "observed": self.observed,
                "p_value": self.p_value, "n_permutations": self.n_permutations,
                "n_obs": self.n_obs, "n_failed": self.n_failed,
                "null_quantiles": dict(zip(["q025", "q50", "q975"], np.quantile(null, [0.025, 0.5, 0.975]))),
            }
        )


def _regional_statistic(
    share: np.ndarray, exog: np.ndarray, weights: np.ndarray | None, k: int, statistic: str, cov_type: str
) -> float:
    """Coefficient k, or its robust t-value, from one fractional-logit fit."""
    raw = _fit_fractional_logit(share, exog, weights)
    if statistic == "coef":
        return float(raw.params[k])
    return float(raw.params[k] / math.sqrt(_checked_sandwich(raw, cov_type, "permutation")[k, k]))


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
    permutations: Sequence[Sequence[int]] | None = None,
) -> PermutationResult:
    """Permutation test for ``predictor`` in the regional fractional logit.

    The predictor's values are permuted across the complete regions (other
    columns fixed) ``n_permutations`` times with ``default_rng(seed)``. The
    statistic is the robust t-value (``"t"``, default) or the coefficient
    (``"coef"``); the two-sided p-value is ``(k + 1) / (n + 1)`` with ``k``
    the permutations whose absolute statistic reaches the observed one.
    Permutations whose fit fails are counted in ``n_failed`` and excluded.

    ``permutations`` (for exact checks): orders of the complete regions, each
    a permutation of ``range(n)``, applied to the predictor instead of random
    ones; ``n_permutations`` is then their number and ``seed`` is unused.
    Passing all ``n! - 1`` non-identity orders gives the exact permutation
    p-value. Without it nothing changes.
    """
    if statistic not in ("t", "coef"):
        raise ValueError("statistic must be 't' or 'coef'")
    predictors = [predictor, *covariates]
    kept, _, exog, names = _regional_arrays(df, predictors, weight, outcome, region)
    _check_identified(exog, names, "permutation_test")
    k = names.index(_main_term(predictors, None))
    share = kept[outcome].to_numpy(dtype=float) / 100
    weights = kept[weight].to_numpy(dtype=float) if weight else None
    weights = None if weights is None else weights / weights.mean()
    rng = np.random.default_rng(seed)
    orders: list[np.ndarray | None] = [None] * n_permutations
    if permutations is not None:
        orders = [np.asarray(order, dtype=np.int64) for order in permutations]
        if any(sorted(order.tolist()) != list(range(len(share))) for order in orders):
            raise ValueError(f"each permutation must be an order of range({len(share)}), the complete regions")
        n_permutations = len(orders)
    with captured_warnings():
        observed = _regional_statistic(share, exog, weights, k, statistic, cov_type)
        null = np.array([
            _permuted_statistic(share, exog, weights, k, statistic, cov_type, rng, order) for order in orders
        ])
    valid = null[np.isfinite(null)]
    exceed = int(np.sum(np.abs(valid) >= abs(observed) * (1 - 1e-12)))
    return PermutationResult(
        term=names[k], statistic=statistic, observed=observed, null_distribution=null,
        p_value=(exceed + 1) / (len(valid) + 1), n_permutations=n_permutations,
        n_obs=len(share), n_failed=int(len(null) - len(valid)),
    )


def _permuted_statistic(
    share: np.ndarray, exog: np.ndarray, weights: np.ndarray | None, k: int,
    statistic: str, cov_type: str, rng: np.random.Generator, order: np.ndarray | None = None,
) -> float:
    """Statistic after permuting design column k (randomly, or by ``order``); NaN if the fit fails."""
    permuted = exog.copy()
    permuted[:, k] = rng.permutation(permuted[:, k]) if order is None else permuted[order, k]
    try:
        return _regional_statistic(share, permuted, weights, k, statistic, cov_type)
    except (ValueError, np.linalg.LinAlgError):
        return float("nan")


# --------------------------------------------------------------------------
# Race level
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _RaceData:
    """Validated race rows with design, counts and clusters."""

    frame: pd.DataFrame
    exog: np.ndarray
    names: list[str]
    voted: np.ndarray
    registered: np.ndarray
    clusters: np.ndarray
    n_clusters: int
    dropped: list[dict[str, Any]]
    n_dropped: int


def _prepare_races(
    df: pd.DataFrame, formula_rhs: str, cluster: str, voted: str, registered: str, label: str
) -> _RaceData:
    """Validate counts, drop rows missing predictors or cluster, build the design."""
    validate_turnout_rows(df, voted, registered, source=label)
    kept, dropped, n_dropped = _drop_incomplete(df, [*_used_columns(formula_rhs), cluster])
    exog, names = build_design(kept, formula_rhs)
    if exog.shape[0] <= exog.shape[1]:
        raise ValueError(f"{label}: {exog.shape[0]} rows for {exog.shape[1]} parameters")
    clusters, n_clusters = _cluster_codes(kept[cluster])
    return _RaceData(
        kept, exog, names, kept[voted].to_numpy(dtype=float), kept[registered].to_numpy(dtype=float),
        clusters, n_clusters, dropped, n_dropped,
    )


def _race_notes(data: _RaceData) -> list[str]:
    """Notes on dropped rows."""
    if not data.n_dropped:
        return []
    return [f"dropped {data.n_dropped} row(s) with missing values, e.g. {data.dropped[0]}"]


def _logit_start(voted: np.ndarray, registered: np.ndarray, k: int) -> np.ndarray:
    """Start values: overall logit turnout for the intercept, zeros elsewhere."""
    share = np.clip(voted.sum() / registered.sum(), 1e-6, 1 - 1e-6)
    start = np.zeros(k)
    start[0] = math.log(share / (1 - share))
    return start


def _fit_counts_glm(
    endog: np.ndarray, exog: np.ndarray, solver: str, start: np.ndarray | None = None,
    offset: np.ndarray | None = None, **fit_kwargs: Any,
) -> tuple[Any, list[str]]:
    """Binomial GLM on [voted, not voted]; Newton (low memory) or IRLS. Returns results and notes."""
    model = sm.GLM(endog, exog, family=sm.families.Binomial(), offset=offset)
    if solver == "irls":
        return model.fit(**fit_kwargs), []
    if solver != "newton":
        raise ValueError("solver must be 'newton' or 'irls'")
    raw = model.fit(method="newton", start_params=start, max_start_irls=0, maxiter=100, tol=1e-10, **fit_kwargs)
    if raw.mle_retvals.get("converged", False) and np.all(np.isfinite(raw.params)):
        return raw, []
    return model.fit(**fit_kwargs), ["Newton did not converge to finite estimates; refitted by IRLS"]


def fit_race_glm(
    df: pd.DataFrame,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
    endog_form: str = "counts",
    robust: bool = True,
    solver: str = "newton",
    name: str | None = None,
) -> FitResult:
    """Binomial GLM of race turnout with region-clustered SEs and t inference.

    ``endog_form="counts"`` fits ``[voted, registered - voted]``;
    ``"share"`` fits ``voted / registered`` with ``var_weights=registered``
    (same estimates and clustered SEs; statsmodels then warns that cov_type
    is "not fully supported with var_weights", which is recorded).
    Clustered inference uses t with clusters - 1 df (statsmodels'
    ``df_resid_inference``). ``robust=False`` gives the naive binomial fit
    (see :func:`fit_race_naive_binomial`). ``solver="newton"`` keeps memory
    low on 10^6 rows; it falls back to IRLS if it does not converge.
    """
    data = _prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_glm")
    start = _logit_start(data.voted, data.registered, len(data.names))
    cov_kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": data.clusters}, "use_t": True} if robust else {}
    with captured_warnings() as caught:
        if endog_form == "counts":
            endog = np.column_stack([data.voted, data.registered - data.voted])
            raw, notes = _fit_counts_glm(endog, data.exog, solver, start, **cov_kwargs)
        elif endog_form == "share":
            model = sm.GLM(data.voted / data.registered, data.exog, family=sm.families.Binomial(),
                           var_weights=data.registered)
            raw, notes = model.fit(**cov_kwargs), []
        else:
            raise ValueError("endog_form must be 'counts' or 'share'")
    return _race_glm_result(raw, data, formula_rhs, robust, endog_form, caught, notes, name)


def _race_glm_result(
    raw: Any, data: _RaceData, formula_rhs: str, robust: bool, endog_form: str,
    caught: list[str], notes: list[str], name: str | None,
) -> FitResult:
    """Assemble a FitResult for a race-level binomial GLM."""
    names = data.names
    pearson = float(raw.pearson_chi2 / raw.df_resid)
    extra = {
        "mean_link": "logit", "design_columns": names, "endog_form": endog_form,
        "pearson_dispersion": pearson, "dropped_rows": data.n_dropped, "_registered": data.registered,
    }
    all_notes = _race_notes(data) + notes
    if not robust:
        all_notes.append(f"non-robust binomial SEs (Pearson chi2/df = {pearson:.1f}); for simulation comparison only")
    df_inference = getattr(raw, "df_resid_inference", None) if robust else None
    return _make_result(
        name or ("race_glm_cluster" if robust else "race_glm_naive"), "binomial GLM (logit)",
        f"[voted, registered - voted] ~ {formula_rhs}", pd.Series(np.asarray(raw.params), index=names),
        pd.DataFrame(np.asarray(raw.cov_params()), index=names, columns=names), df_inference,
        n_obs=int(raw.nobs), n_clusters=data.n_clusters if robust else None,
        cov_type="cluster" if robust else "nonrobust", warnings=tuple(caught),
        notes=tuple(all_notes), extra=extra, raw=raw,
    )


def fit_race_naive_binomial(
    df: pd.DataFrame, formula_rhs: str, voted: str = "voted", registered: str = "registered",
    cluster: str = "region",
) -> FitResult:
    """Non-robust binomial GLM on counts: for simulation comparisons only, never for reporting."""
    return fit_race_glm(df, formula_rhs, cluster, voted, registered, robust=False, name="race_glm_naive")


def _strip_private(extra: dict[str, Any]) -> dict[str, Any]:
    """Drop keys starting with '_' (large arrays kept for internal use)."""
    return {k: v for k, v in extra.items() if not k.startswith("_")}


def smithson_verkuilen(share: np.ndarray) -> np.ndarray:
    """Squeeze shares into (0, 1): ``(y (n - 1) + 0.5) / n`` with ``n`` the number of shares."""
    n = len(share)
    return (share * (n - 1) + 0.5) / n


def fit_race_beta(
    df: pd.DataFrame, formula_rhs: str, cluster: str = "region",
    voted: str = "voted", registered: str = "registered",
) -> FitResult:
    """Beta regression (logit mean, constant precision) of race turnout shares.

    Shares are squeezed by :func:`smithson_verkuilen` (all of them, as the
    transform prescribes; ``BetaModel`` raises on exact 0 or 1); the number
    of shares at exactly 0 or 1 is in ``extra["n_boundary_squeezed"]``.
    Races count equally (no electorate weights). SEs are clustered by
    ``cluster`` with t inference on clusters - 1 df.
    """
    data = _prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_beta")
    share = data.voted / data.registered
    n_boundary = int(np.sum((share == 0) | (share == 1)))
    model = BetaModel(smithson_verkuilen(share), data.exog)
    with captured_warnings() as caught:
        # BFGS (statsmodels' default) stops at a gradient of about 1e-5 per race, which left estimates 1e-4 and
        # p-values 1e-2 (relative) away from the optimum; Newton steps on the analytic Hessian finish the job.
        rough = model.fit(disp=False)
        raw = model.fit(method="newton", start_params=rough.params, maxiter=100, tol=1e-12,
                        cov_type="cluster", cov_kwds={"groups": data.clusters}, use_t=True, disp=False)
    names = [*data.names, "precision"]
    notes = _race_notes(data) + [
        f"Smithson-Verkuilen squeeze applied to all {len(share)} shares; {n_boundary} were exactly 0 or 1"
    ]
    if not raw.mle_retvals.get("converged", True):
        notes.append("BetaModel optimiser did not converge")
    extra = {"mean_link": "logit", "design_columns": data.names, "n_boundary_squeezed": n_boundary,
             "precision_link": "log"}
    return _make_result(
        "race_beta", "beta regression (logit mean)", f"squeezed voted/registered ~ {formula_rhs}",
        pd.Series(np.asarray(raw.params), index=names),
        pd.DataFrame(np.asarray(raw.cov_params()), index=names, columns=names), raw.df_resid_inference,
        n_obs=len(share), n_clusters=data.n_clusters, cov_type="cluster", warnings=tuple(caught),
        notes=tuple(notes), extra=extra, raw=raw,
    )


def fit_race_gee(
    df: pd.DataFrame, formula_rhs: str, cluster: str = "region",
    voted: str = "voted", registered: str = "registered",
    weighted: bool = False, cov_type: str = "bias_reduced",
) -> FitResult:
    """GEE, binomial family, exchangeable correlation within ``cluster``, on turnout shares.

    ``weighted=True`` passes ``registered`` (rescaled to mean 1) as GEE case
    ``weights`` so races count by electorate. ``cov_type="bias_reduced"``
    (Mancl-DeRouen, suited to few clusters) is computed with a generalized
    inverse by :func:`akim_turnout.inference.mancl_derouen_cov`; it is
    unweighted only, so the weighted fit needs ``cov_type="robust"``.
    statsmodels reports normal inference for GEE; p-values and CIs here use t
    with clusters - 1 df instead (noted).
    """
    if cov_type not in ("bias_reduced", "robust"):
        raise ValueError(f"cov_type must be 'bias_reduced' or 'robust', got {cov_type!r}")
    if weighted and cov_type == "bias_reduced":
        raise ValueError("the bias-reduced GEE covariance is unweighted; use weighted=False or cov_type='robust'")
    data = _prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_gee")
    weights = data.registered / data.registered.mean() if weighted else None
    model = sm.GEE(data.voted / data.registered, data.exog, groups=data.clusters,
                   family=sm.families.Binomial(), cov_struct=sm.cov_struct.Exchangeable(), weights=weights)
    with captured_warnings() as caught:
        raw = model.fit(cov_type="robust")
        if raw is not None and cov_type == "bias_reduced":
            cov = mancl_derouen_cov(raw)
    if raw is None:
        raise RuntimeError(f"GEE failed to converge: {caught}")
    if cov_type != "bias_reduced":
        cov = np.asarray(raw.cov_params())
    names = data.names
    notes = _race_notes(data) + [f"t inference with {data.n_clusters - 1} df (statsmodels GEE uses normal)"]
    if cov_type == "bias_reduced":
        notes.append("Mancl-DeRouen covariance with a generalized inverse of I - H_gg (akim_turnout.inference)")
    extra = {"mean_link": "logit", "design_columns": names, "weighted": weighted,
             "exchangeable_correlation": float(np.ravel(raw.cov_struct.dep_params)[0]),
             "_registered": data.registered}
    return _make_result(
        "race_gee", "GEE binomial (logit), exchangeable", f"voted/registered ~ {formula_rhs}",
        pd.Series(np.asarray(raw.params), index=names),
        pd.DataFrame(cov, index=names, columns=names), data.n_clusters - 1,
        n_obs=len(data.voted), n_clusters=data.n_clusters, cov_type=cov_type, warnings=tuple(caught),
        notes=tuple(notes), extra=extra, raw=raw,
    )


def empirical_logit(voted: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """``log((voted + 0.5) / (registered - voted + 0.5))``, finite at 0 and 100 %."""
    return np.log((voted + 0.5) / (registered - voted + 0.5))


def fit_race_mixedlm(
    df: pd.DataFrame, formula_rhs: str, cluster: str = "region",
    voted: str = "voted", registered: str = "registered",
) -> FitResult:
    """Linear mixed model on the empirical logit with random intercepts by ``cluster``.

    Fixed effects must not include ``C(cluster)`` (it would duplicate the
    random intercept). MixedLM takes no weights: races count equally.
    Inference is normal (statsmodels' z) on the fixed effects; the
    between-region and residual variances are in ``extra``.
    """
    if f"C({cluster})" in formula_rhs.replace(" ", ""):
        raise ValueError(f"fit_race_mixedlm: drop C({cluster}); it is the random intercept")
    data = _prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_mixedlm")
    endog = empirical_logit(data.voted, data.registered)
    with captured_warnings() as caught:
        raw = sm.MixedLM(endog, data.exog, groups=data.clusters).fit(reml=True)
    names = data.names
    k = len(names)
    notes = _race_notes(data) + ["unweighted; normal inference; empirical logit outcome"]
    if not raw.converged:
        notes.append("MixedLM did not converge")
    extra = {"mean_link": "identity (empirical logit)", "design_columns": names,
             "group_variance": float(np.asarray(raw.cov_re)[0, 0]), "residual_variance": float(raw.scale),
             "converged": bool(raw.converged)}
    return _make_result(
        "race_mixedlm", "linear mixed model (empirical logit)", f"emp_logit(voted, registered) ~ {formula_rhs}",
        pd.Series(np.asarray(raw.fe_params), index=names),
        pd.DataFrame(np.asarray(raw.cov_params())[:k, :k], index=names, columns=names), None,
        n_obs=len(endog), n_clusters=data.n_clusters, cov_type="model-based", warnings=tuple(caught),
        notes=tuple(notes), extra=extra, raw=raw,
    )


def comparison_table(results: Sequence[FitResult], terms: Sequence[str]) -> pd.DataFrame:
    """One long table of ``terms`` across fits (NaN where a fit lacks a term)."""
    rows = []
    for fit in results:
        table = fit.to_frame().set_index("term")
        for term in terms:
            row = table.loc[term].to_dict() if term in table.index else {"model": fit.name}
            rows.append({
                **row, "term": term, "cov_type": fit.cov_type, "use_t": fit.use_t,
                "df_resid": fit.df_resid, "n_obs": fit.n_obs, "n_clusters": fit.n_clusters,
                "n_warnings": len(fit.warnings),
            })
    columns = ["model", "term", "estimate", "std_error", "ci_lower", "ci_upper", "p_value",
               "cov_type", "use_t", "df_resid", "n_obs", "n_clusters", "n_warnings"]
    return pd.DataFrame(rows).reindex(columns=columns)


# --------------------------------------------------------------------------
# Wild cluster bootstrap
# --------------------------------------------------------------------------


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
    raw, _ = _fit_counts_glm(boot.endog, boot.exog[:, others], boot.solver, start[others],
                             offset=null_value * boot.exog[:, boot.k])
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
    spread = np.sqrt((boot.draws ** 2) @ (psi ** 2))
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

    ``draws`` (for exact checks): an ``(n, G)`` array of cluster weights, one
    row per replicate, columns in sorted cluster order, used instead of
    random draws; ``n_boot`` is then its number of rows and ``seed`` is
    unused. Passing every sign vector (``2^G`` Rademacher, ``6^G`` Webb)
    gives the exact wild bootstrap p-value. Without it nothing changes.
    """
    if weights not in WILD_WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WILD_WEIGHTS)}")
    fit = fit_race_glm(df, formula_rhs, cluster, voted, registered, solver=solver)
    data = _prepare_races(df, formula_rhs, cluster, voted, registered, "wild_cluster_bootstrap")
    if draws is None:
        rng = np.random.default_rng(seed)
        draws = rng.choice(WILD_WEIGHTS[weights], size=(n_boot, data.n_clusters))
    else:
        draws = np.asarray(draws, dtype=float)
        if draws.ndim != 2 or draws.shape[1] != data.n_clusters:
            raise ValueError(f"draws must have one column per cluster ({data.n_clusters}), got shape {draws.shape}")
        n_boot = draws.shape[0]
    boot = _ScoreBootstrap(np.column_stack([data.voted, data.registered - data.voted]), data.exog,
                           data.clusters, data.n_clusters, data.names.index(term), draws, solver)
    start = fit.params.to_numpy()
    statistic, p_value = _score_bootstrap_p(boot, null_value, start)
    estimate = float(fit.params[term])
    lower = upper = float("nan")
    if ci:
        step = float(fit.bse[term])
        lower = _invert_bound(boot, estimate, -step, start, alpha)
        upper = _invert_bound(boot, estimate, step, start, alpha)
    notes = []
    if weights == "rademacher" and 2 ** data.n_clusters <= n_boot:
        notes.append(f"only {2 ** data.n_clusters} distinct Rademacher draws exist for {data.n_clusters} clusters")
    return WildBootstrapResult(term, estimate, null_value, float(statistic), p_value, float(lower), float(upper),
                               n_boot, data.n_clusters, weights, seed, tuple(notes))


def prediction_curve(fit: FitResult, term: str, grid: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """Predicted turnout (%) along ``grid`` for a fit on an intercept and one ``term``, with a t-based CI.

    The interval is computed on the logit scale from the fit's (robust) covariance and mapped back, so it stays
    inside 0-100 %.
    """
    from scipy import stats
    from scipy.special import expit

    names = ["Intercept", term]
    if list(fit.params.index) != names:
        raise ValueError(f"prediction_curve needs a fit on exactly {names}, got {list(fit.params.index)}")
    design = np.column_stack([np.ones_like(grid, dtype=float), grid])
    linear = design @ fit.params.to_numpy()
    cov = np.asarray(fit.cov_params.loc[names, names])
    se = np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))
    quantile = stats.t.ppf(1 - alpha / 2, fit.df_resid) if fit.use_t else stats.norm.ppf(1 - alpha / 2)
    return pd.DataFrame({"x": grid, "fit": 100 * expit(linear), "lower": 100 * expit(linear - quantile * se),
                         "upper": 100 * expit(linear + quantile * se)})
