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

__all__ = [
    "Formula",
    "FormulaError",
    "Term",
    "parse_formula",
    "parse_terms",
    "build_design",
    "validate_turnout_rows",
    "used_columns",
    "drop_incomplete",
    "check_identified",
    "cluster_codes",
]

INTERCEPT = "Intercept"


def turnout_rule_masks(
    voted_values: np.ndarray, registered_values: np.ndarray, voted: str = "voted", registered: str = "registered"
) -> dict[str, np.ndarray]:
    """The rows that break each rule of a usable turnout row, by rule: both counts known, ``registered > 0``,
    ``voted >= 0``, ``voted <= registered`` (a count rule is not applied where a count is missing)."""
    v, r = np.asarray(voted_values, dtype=float), np.asarray(registered_values, dtype=float)
    missing = np.isnan(v) | np.isnan(r)
    with np.errstate(invalid="ignore"):
        return {
            f"{voted} or {registered} is missing": missing,
            f"{registered} <= 0": ~missing & (r <= 0),
            f"{voted} < 0": ~missing & (v < 0),
            f"{voted} > {registered}": ~missing & (v > r),
        }


def validate_turnout_rows(
    df: pd.DataFrame, voted: str = "voted", registered: str = "registered", source: str = "races"
) -> None:
    """Refuse rows that no turnout model may use; statsmodels does not check.

    Rules (:func:`turnout_rule_masks`): ``voted`` and ``registered`` known, ``registered > 0``,
    ``voted >= 0`` and ``voted <= registered``. The ``ValueError`` names
    every broken rule with (up to ten of) the offending rows (:func:`row_labels`).
    """
    missing_columns = [c for c in (voted, registered) if c not in df.columns]
    if missing_columns:
        raise ValueError(f"{source}: missing column(s) {missing_columns}")
    v = pd.to_numeric(df[voted], errors="coerce").to_numpy(dtype=float)
    r = pd.to_numeric(df[registered], errors="coerce").to_numpy(dtype=float)
    rules = turnout_rule_masks(v, r, voted, registered)
    problems = [f"{rule} in {row_labels(df, mask)}" for rule, mask in rules.items() if mask.any()]
    if problems:
        raise ValueError(f"{source}: invalid turnout rows: " + "; ".join(problems))


def row_labels(rows: pd.DataFrame | pd.Index, mask: np.ndarray, limit: int = 10) -> str:
    """``N row(s), race_id [labels]`` for the rows in ``mask``: the ``race_id`` values when the frame has that
    column, else the index labels (``N row(s), index [labels]``); at most ``limit`` shown, then ``... (+k more)``."""
    if isinstance(rows, pd.DataFrame) and "race_id" in rows.columns:
        key, labels = "race_id", rows["race_id"].to_numpy()[mask]
    else:
        key, labels = "index", (rows.index if isinstance(rows, pd.DataFrame) else rows).to_numpy()[mask]
    shown = ", ".join(repr(label.item() if hasattr(label, "item") else label) for label in labels[:limit])
    more = f", ... (+{len(labels) - limit} more)" if len(labels) > limit else ""
    return f"{len(labels)} row(s), {key} [{shown}{more}]"


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
            raise ValueError(f"{term}: {column} must be > 0 in {row_labels(values.index, x <= 0)}")
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


def used_columns(formula_rhs: str | Sequence[str]) -> list[str]:
    """Data columns referenced by a right-hand side."""
    return list(dict.fromkeys(column for _, column, _ in parse_terms(formula_rhs)))


def drop_incomplete(
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


def check_identified(exog: np.ndarray, names: Sequence[str], label: str) -> None:
    """Refuse designs with no residual degrees of freedom or collinear columns."""
    n, k = exog.shape
    if n <= k:
        raise ValueError(f"{label}: {n} observations for {k} parameters; cannot fit")
    if np.linalg.matrix_rank(exog) < k:
        raise ValueError(f"{label}: design columns are collinear: {list(names)}")


def cluster_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Integer cluster codes and the number of clusters."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)
