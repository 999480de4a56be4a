"""The regional model (the published record, at most 14 regions): a fractional logit of turnout.

A binomial GLM on the regional turnout share (Papke & Wooldridge 1996) with HC3 standard errors and t-based
inference (:func:`fit_regional_fractional_logit`), refits leaving one region out, and the fitted curve with its band.
A design that cannot be fitted at all (fewer regions than parameters, collinear columns, perfect prediction: e.g.
``women_share``, published for two regions, among the mix predictors) is reported by
:func:`fit_regional_or_not_estimable` and :func:`regional_marginal_effects` as *not estimable*, with the reason,
instead of stopping the stage. The permutation test is in :mod:`akim_turnout.models.resampling`, marginal effects and
the covariances in :mod:`models.inference`, the specification curve in :mod:`models.specification`.

statsmodels (0.15) behaviour this works around: ``GLM.fit(cov_type="HC1"|"HC2"|"HC3")`` silently returns HC0 (GLM
results have no ``cov_HCx``), so HC1/HC3 come from :func:`akim_turnout.models.inference.glm_sandwich_cov`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.models.design import build_design, check_identified, drop_incomplete, parse_terms, used_columns
from akim_turnout.models.inference import (
    FitResult,
    average_marginal_effects,
    captured_warnings,
    glm_sandwich_cov,
    make_result,
    quantile,
)


def _as_term_list(predictors: str | Sequence[str]) -> list[str]:
    """Predictors as a list of term strings ("a + b" or ["a", "b"])."""
    return [term for _, _, term in parse_terms(predictors)]


def regional_arrays(
    df: pd.DataFrame, predictors: Sequence[str], weight: str | None, outcome: str, region: str
) -> tuple[pd.DataFrame, list[dict[str, Any]], np.ndarray, list[str]]:
    """Complete regional rows, drop records, design and names."""
    columns = [outcome, *used_columns(predictors)] + ([weight] if weight else [])
    kept, dropped, _ = drop_incomplete(df, columns, label_column=region, max_records=len(df))
    exog, names = build_design(kept, predictors)
    return kept, dropped, exog, names


def checked_share(kept: pd.DataFrame, outcome: str, region: str, name: str) -> np.ndarray:
    """``outcome / 100`` of the complete rows, refusing a percentage outside [0, 100] with the regions named."""
    share = kept[outcome].to_numpy(dtype=float) / 100
    outside = (share < 0) | (share > 1)
    if outside.any():
        raise ValueError(f"{name}: {outcome} outside [0, 100] for {kept.loc[outside, region].tolist()}")
    return share


def fit_fractional_logit(share: np.ndarray, exog: np.ndarray, weights: np.ndarray | None) -> Any:
    """Binomial GLM on shares; ``weights`` enter as var_weights (never freq_weights)."""
    model = GLM(share, exog, family=families.Binomial(), var_weights=weights)
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
    kept, dropped, exog, names = regional_arrays(df, predictors, weight, outcome, region)
    check_identified(exog, names, name)
    share = checked_share(kept, outcome, region, name)
    weights = kept[weight].to_numpy(dtype=float) if weight else None
    with captured_warnings() as caught:
        raw = fit_fractional_logit(share, exog, None if weights is None else weights / weights.mean())
        cov = checked_sandwich(raw, cov_type, name)
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
    return make_result(
        name,
        "binomial (fractional logit)",
        f"{outcome}/100 ~ " + " + ".join(predictors),
        params,
        pd.DataFrame(cov, index=names, columns=names),
        len(share) - len(names),
        n_obs=len(share),
        n_clusters=None,
        cov_type=cov_type,
        warnings=tuple(caught),
        notes=tuple(notes),
        extra=extra,
        raw=raw,
    )


def fit_regional_or_not_estimable(
    df: pd.DataFrame,
    predictors: Sequence[str],
    weight: str | None = None,
    outcome: str = "turnout_pct",
    region: str = "region",
    cov_type: str = "HC3",
    name: str = "regional_fractional_logit",
) -> FitResult:
    """:func:`fit_regional_fractional_logit`, or, where the design cannot be fitted, a fit whose ``not_estimable``
    gives the reason (e.g. '2 observations for 4 parameters; cannot fit') and whose estimates are empty.

    Its ``n_obs``, dropped regions and design columns are those of the rows complete in the model's columns, so
    the tables say how many regions were left and why the others dropped.
    """
    try:
        return fit_regional_fractional_logit(df, predictors, weight, outcome, region, cov_type, name)
    except (ValueError, np.linalg.LinAlgError) as error:
        reason = str(error).removeprefix(f"{name}: ")
    predictors = _as_term_list(predictors)
    kept, dropped, _, names = regional_arrays(df, predictors, weight, outcome, region)
    empty = pd.Series(np.nan, index=names)
    notes = [f"dropped {d['row']}: {d['reason']}" for d in dropped] + [f"not estimable: {reason}"]
    extra = {
        "dropped": dropped,
        "regions": kept[region].astype(str).tolist(),
        "weight": weight,
        "mean_link": "logit",
        "design_columns": names,
        "not_estimable": reason,
    }
    return make_result(
        name,
        "binomial (fractional logit)",
        f"{outcome}/100 ~ " + " + ".join(predictors),
        empty,
        pd.DataFrame(np.nan, index=names, columns=names),
        len(kept) - len(names),
        n_obs=len(kept),
        n_clusters=None,
        cov_type=cov_type,
        notes=tuple(notes),
        extra=extra,
    )


def regional_marginal_effects(fit: FitResult, averaging_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Average marginal effects of a regional fit (:func:`akim_turnout.models.inference.average_marginal_effects`); for
    a fit that could not be computed, one row per predictor with empty effects and its ``not estimable`` status."""
    if "not_estimable" not in fit.extra:
        return average_marginal_effects(fit, averaging_weights=averaging_weights)
    terms = [name for name in fit.params.index if name != "Intercept" and not name.startswith("C(")]
    columns = ["ame_pp", "std_error_pp", "ci_lower_pp", "ci_upper_pp", "p_value"]
    rows = pd.DataFrame({"model": fit.name, "term": terms, **dict.fromkeys(columns, np.nan)})
    rows["averaging"] = "unweighted" if averaging_weights is None else "weighted"
    rows["status"] = f"not estimable: {fit.not_estimable}"
    return rows


def checked_sandwich(raw: Any, cov_type: str, label: str) -> np.ndarray:
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


def main_term(predictors: Sequence[str], term: str | None) -> str:
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
    keep_not_estimable: bool = False,
) -> pd.DataFrame:
    """Refit the regional model once per region left out.

    Returns one row per dropped region (among the complete rows) with the
    estimate, SE, CI and p-value of ``term`` (default: first predictor), its
    change from the full-sample estimate and a ``status`` (``ok`` or why the
    refit failed or is not estimable; then its estimate, SE, CI, p-value and
    change are empty unless ``keep_not_estimable``, for checking the
    computation itself).
    """
    full = fit_regional_fractional_logit(df, predictors, weight, outcome, region, cov_type)
    term = main_term(predictors, term)
    kept = df.loc[df[region].astype(str).isin(full.extra["regions"])]
    rows = [
        _loo_row(kept, label, predictors, weight, term, outcome, region, cov_type, keep_not_estimable)
        for label in full.extra["regions"]
    ]
    out = pd.DataFrame(rows)
    out["change"] = out["estimate"] - full.params[term]
    return out


def _loo_row(
    kept: pd.DataFrame,
    label: str,
    predictors: Sequence[str],
    weight: str | None,
    term: str,
    outcome: str,
    region: str,
    cov_type: str,
    keep_not_estimable: bool = False,
) -> dict[str, Any]:
    """One leave-one-out refit summarised as a row."""
    row: dict[str, Any] = {"dropped_region": label, "n_obs": len(kept) - 1}
    try:
        fit = fit_regional_fractional_logit(
            kept.loc[kept[region].astype(str) != label], predictors, weight, outcome, region, cov_type
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return {
            **row,
            "estimate": np.nan,
            "std_error": np.nan,
            "ci_lower": np.nan,
            "ci_upper": np.nan,
            "p_value": np.nan,
            "n_warnings": 0,
            "status": str(error),
        }
    table = fit.to_frame().set_index("term")  # intervals left empty when the refit is not estimable
    if keep_not_estimable:
        table[["estimate", "std_error", "ci_lower", "ci_upper", "p_value"]] = np.column_stack(
            [fit.params, fit.bse, fit.conf_int["lower"], fit.conf_int["upper"], fit.pvalues]
        )
    return {
        **row,
        **{column: table.at[term, column] for column in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value")},
        "n_warnings": len(fit.warnings),
        "status": table.at[term, "status"],
    }


def prediction_curve(fit: FitResult, term: str, grid: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """Predicted turnout (%) along ``grid`` for a fit on an intercept and one ``term``, with a t-based CI.

    The interval is computed on the logit scale from the fit's (robust) covariance and mapped back, so it stays
    inside 0-100 %.
    """
    names = ["Intercept", term]
    if list(fit.params.index) != names:
        raise ValueError(f"prediction_curve needs a fit on exactly {names}, got {list(fit.params.index)}")
    design = np.column_stack([np.ones_like(grid, dtype=float), grid])
    linear = design @ fit.params.to_numpy()
    cov = np.asarray(fit.cov_params.loc[names, names])
    se = np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))
    q = quantile(1 - alpha / 2, fit.df_resid if fit.use_t else None)
    return pd.DataFrame(
        {
            "x": grid,
            "fit": 100 * expit(linear),
            "lower": 100 * expit(linear - q * se),
            "upper": 100 * expit(linear + q * se),
        }
    )
