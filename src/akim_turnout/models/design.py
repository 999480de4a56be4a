"""From a data frame to what a model fits: checked turnout rows, a formula's terms, the design matrix, clusters.

Formula-free on purpose (no patsy or formulaic): a right-hand side is terms joined by ``+``, each ``column``,
``C(column)`` (treatment dummies, first sorted level as reference) or ``np.log(column)``, with an intercept always;
this is fast on 10^6 rows and gives the same columns in every fit. The one parser of a right-hand side is
:func:`akim_turnout.models.formula.parse_formula` (pure Python, so the runner uses it too); it is re-exported here.
statsmodels does not check turnout rows, so :func:`validate_turnout_rows` does, before any fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from akim_turnout.models.formula import Formula, FormulaError, Term, parse_formula
from akim_turnout.pipeline.outputs import stated

__all__ = ["Formula", "FormulaError", "Term", "parse_formula", "parse_terms", "build_design", "validate_turnout_rows"]

INTERCEPT = "Intercept"


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


def parse_terms(formula_rhs: str | Sequence[str] | Formula) -> list[tuple[str, str, str]]:
    """Parse a right-hand side into (kind, column, term name) triples.

    Supported terms, joined by ``+`` in any spacing: ``column``, ``C(column)``
    (treatment dummies, first sorted level as reference) and ``np.log(column)``
    (:func:`akim_turnout.models.formula.parse_formula`). An intercept is always
    included. Anything else raises ``ValueError``.
    """
    return [(term.kind, term.column, term.name) for term in parse_formula(formula_rhs).terms]


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
    """Rows complete in ``columns``, records (at most ``max_records``) of dropped rows and why (``reason``, and the
    ``missing`` columns), and their count."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s): {missing}")
    isna = df[list(columns)].isna()
    incomplete = isna.any(axis=1).to_numpy()
    records = []
    for index in df.index[incomplete][:max_records]:
        label = df.at[index, label_column] if label_column else index
        reasons = [c for c in columns if isna.at[index, c]]
        records.append({"row": stated(label), "reason": "missing " + ", ".join(reasons), "missing": reasons})
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
