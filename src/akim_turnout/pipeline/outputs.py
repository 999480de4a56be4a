"""What the pipeline publishes (tables, metrics, data frames), written under one rounding rule.

**Stated precision.** Every number a stage writes, and every number a figure is drawn from, passes through
:func:`stated`:

* whole numbers (integers, or floats holding a whole number after rounding) are written as integers;
* other numbers keep :data:`SIGNIFICANT_DIGITS` (6) significant digits;
* magnitudes of :data:`WHOLE_FROM` (10^6) and more are rounded to whole units;
* magnitudes below :data:`ZERO_BELOW` (10^-9) are written as 0;
* NaN and infinities are written as missing (empty in CSV, ``null`` in JSON).

Why: a model fit is linear algebra in OpenBLAS and elementwise ``exp``/``log`` in numpy, and both pick code paths
by CPU (BLAS kernels, SIMD widths). The same fit on two x86-64 machines agrees to about 15 digits but not in the
last bit. Written at full precision, that last bit changes a file's hash, so a fresh clone elsewhere would not
reproduce ``dvc.lock``. Six significant digits are far more than any estimate here means (the regional model has at
most 14 observations) and far fewer than the machines agree on. The rounding itself goes through Python's
correctly rounded decimal formatting, so it is the same on every machine.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SIGNIFICANT_DIGITS = 6
WHOLE_FROM = 1e6
ZERO_BELOW = 1e-9


def stated(value: Any) -> Any:
    """One number at its stated precision (see the module docstring); other values pass through.

    Floats become ``int`` when whole, ``None`` when not finite. Containers (dict, list, tuple, Series, arrays) are
    converted element by element, so the result is plain JSON-serialisable data.
    """
    if isinstance(value, Mapping):
        return {str(key): stated(item) for key, item in value.items()}
    if isinstance(value, pd.Series):
        return {str(key): stated(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [stated(item) for item in list(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = _stated_float(float(value))
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() else number
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _stated_float(x: float) -> float:
    if not math.isfinite(x):
        return math.nan
    size = abs(x)
    if size < ZERO_BELOW:
        return 0.0
    if size >= WHOLE_FROM:
        return float(round(x)) + 0.0
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}") + 0.0  # + 0.0 turns -0.0 into 0.0


def stated_array(values: Any) -> np.ndarray:
    """A float array at its stated precision (NaN stays NaN)."""
    array = np.asarray(values, dtype=float)
    return np.array([_stated_float(x) for x in array.ravel()], dtype=float).reshape(array.shape)


def stated_frame(frame: pd.DataFrame, whole_as_int: bool = True) -> pd.DataFrame:
    """A copy of ``frame`` with every float column at its stated precision.

    With ``whole_as_int``, a float column whose stated values are all whole numbers becomes a nullable integer
    column (``Int64``), so counts print as ``95``, not ``95.0``. Other columns are unchanged.
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            values = stated_array(out[column].to_numpy(dtype=float))
            finite = values[np.isfinite(values)]
            if whole_as_int and len(finite) and np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**53):
                out[column] = pd.array([None if math.isnan(v) else int(v) for v in values], dtype="Int64")
            else:
                out[column] = pd.Series(values, index=out.index, dtype=float)
    out.attrs = stated(dict(frame.attrs))
    return out


@dataclass(frozen=True)
class Column:
    """How one column of a publication table is printed.

    ``label``: the header readers see, with its unit ("estimate (logit)", "turnout (%)", "regions (count)").
    ``decimals``: for numbers, the fixed number of decimals (0 for counts, printed with thousands separators);
    ``None`` for text. ``scale`` multiplies numbers first (100 shows a share in percent). ``text`` maps each text
    value to its reader's form (e.g. :func:`akim_turnout.report.labels.term`). ``smallest``: a non-negative number that
    would print as zero below it is printed as a bound instead (a p-value of 0.0002 as "< 0.001", not "0.000").
    """

    label: str
    decimals: int | None = None
    scale: float = 1.0
    text: Callable[[Any], str] | None = None
    smallest: float | None = None

    def format(self, value: Any) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if self.decimals is None:
            return self.text(value) if self.text else str(value)
        number = _stated_float(float(value) * self.scale)
        if math.isnan(number):
            return ""
        if self.smallest is not None and 0 <= number < self.smallest:
            return f"< {self.smallest:,.{self.decimals}f}"
        return f"{number:,.{self.decimals}f}"


def publication_table(frame: pd.DataFrame, columns: Mapping[str, Column]) -> pd.DataFrame:
    """The columns of ``frame`` named in ``columns``, in that order, under their labels, printed as text."""
    return pd.DataFrame({spec.label: [spec.format(value) for value in frame[name]] for name, spec in columns.items()})


def save_table(
    frame: pd.DataFrame, out_dir: str | Path, stem: str, caption: str, columns: Mapping[str, Column]
) -> pd.DataFrame:
    """Write the publication table of ``frame`` (:func:`publication_table`) as ``stem.csv`` and a booktabs
    ``stem.tex``, exactly as printed; return it. Machine-readable results go to a stage's data folder instead."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = publication_table(frame, columns)
    table.to_csv(out_dir / f"{stem}.csv", index=False, lineterminator="\n")
    alignment = "".join("l" if spec.decimals is None else "r" for spec in columns.values())
    latex = table.to_latex(
        index=False, na_rep="--", caption=caption or None, label=f"tab:{stem}", escape=True, column_format=alignment
    )
    latex = re.sub(r"(?m)(^|& )< ", r"\1$<$ ", latex)  # a bound such as "< 0.001" in a cell, in math mode
    (out_dir / f"{stem}.tex").write_text(latex, encoding="utf-8")
    return table


def read_table(out_dir: str | Path, stem: str) -> pd.DataFrame:
    """A publication table written by :func:`save_table`, as the text it prints (empty where missing)."""
    return pd.read_csv(Path(out_dir) / f"{stem}.csv", dtype=str, keep_default_na=False)


def write_frame(frame: pd.DataFrame, out_dir: str | Path, stem: str, csv: bool = False) -> pd.DataFrame:
    """Write a data output as ``stem.parquet`` (and ``stem.csv``) at its stated precision; return what was written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = stated_frame(frame.reset_index(drop=True))
    table.to_parquet(out_dir / f"{stem}.parquet", index=False)
    if csv:
        table.to_csv(out_dir / f"{stem}.csv", index=False, lineterminator="\n")
    return table


def write_json(metrics: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """Write ``metrics`` at their stated precision as sorted, indented JSON; return what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = stated(dict(metrics))
    path.write_text(
        json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    return values


def read_json(path: str | Path) -> dict[str, Any]:
    """A metrics JSON written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
