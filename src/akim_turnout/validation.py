"""Checks of raw CSV files against a Frictionless table schema, reporting every problem at once.

Each problem names the file, the line number (as an editor shows it; line 1 is the header), the column and the rule
broken. Rows are read with the ``csv`` module, not pandas, so line numbers stay exact and nothing is coerced.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping


@dataclass(frozen=True, order=True)
class Problem:
    """One broken rule: where (file, line, column) and what."""

    file: str
    line: int
    column: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: column '{self.column}': {self.message} [{self.rule}]"


class DataValidationError(ValueError):
    """Raised with every problem found; ``str()`` lists one per line."""

    def __init__(self, problems: Iterable[Problem]):
        # A cell can break a schema rule and the same, more specific, variable rule: keep the fuller message.
        by_place: dict[tuple, Problem] = {}
        for problem in problems:
            place = (problem.file, problem.line, problem.column, problem.rule)
            if place not in by_place or len(problem.message) > len(by_place[place].message):
                by_place[place] = problem
        self.problems = sorted(by_place.values())
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the input data:\n{lines}")


@dataclass(frozen=True)
class Row:
    """A data row as text, with the line it starts on."""

    line: int
    values: dict[str, str]


@dataclass(frozen=True)
class Table:
    """A parsed CSV file: its name for messages, header, and rows as text."""

    name: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]


def _line_of_offset(raw: bytes, offset: int) -> tuple[int, str, bytes]:
    """Line number of a byte offset, and the column the offset falls in (counted from the header)."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
    field_index = raw[line_start:offset].count(b",")
    column = header[field_index] if field_index < len(header) and line > 1 else "(header)"
    return line, column, raw[offset : offset + 4]


def read_table(path: Path, name: str | None = None) -> tuple[Table | None, list[Problem]]:
    """Read ``path`` as strict UTF-8 CSV. Returns the table (or None when unreadable) and any problems."""
    name = name or path.name
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column, sample = _line_of_offset(raw, error.start)
        return None, [Problem(name, line, column, "encoding", f"bytes {sample!r} are not valid UTF-8; save the file as UTF-8")]
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, [Problem(name, 1, "-", "empty-file", "the file is empty: expected a header row and data rows")]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = tuple(cell.strip() for cell in next(reader))
    rows, problems, line = [], [], 1
    for cells in reader:
        start = line + 1
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(Problem(name, start, "-", "field-count", f"{len(cells)} fields, the header has {len(header)}"))
            continue
        rows.append(Row(start, dict(zip(header, cells))))
    if not rows and not problems:
        problems.append(Problem(name, 1, "-", "no-rows", "the file has a header but no data rows"))
    return Table(name, header, tuple(rows)), problems


def check_columns(table: Table, schema: Mapping[str, Any]) -> list[Problem]:
    """Missing required columns and unknown extra columns, both reported on the header line."""
    expected = [field["name"] for field in schema["fields"]]
    problems = [
        Problem(table.name, 1, column, "missing-column", "required column is missing from the header")
        for column in expected
        if column not in table.header
    ]
    problems += [
        Problem(table.name, 1, column, "unknown-column", f"column is not in the schema (expected: {', '.join(expected)})")
        for column in table.header
        if column not in expected
    ]
    seen: set[str] = set()
    for column in table.header:
        if column in seen:
            problems.append(Problem(table.name, 1, column, "duplicate-column", "column appears twice in the header"))
        seen.add(column)
    return problems


def parse_value(text: str, field_type: str) -> Any:
    """Parse one cell by its Frictionless type; raise ValueError with a short reason."""
    text = text.strip()
    if field_type == "integer":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"'{text}' is not a whole number")
        return int(text)
    if field_type == "number":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"'{text}' is not a finite number")
        return value
    if field_type == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(f"'{text}' is not an ISO date (YYYY-MM-DD)")
        return text
    return text


def check_fields(table: Table, schema: Mapping[str, Any]) -> list[Problem]:
    """Per-cell rules: required, type, enum, minimum, maximum, pattern."""
    problems = []
    fields = [field for field in schema["fields"] if field["name"] in table.header]
    for row in table.rows:
        for field in fields:
            name, text = field["name"], row.values[field["name"]].strip()
            constraints = field.get("constraints", {})
            if not text:
                if constraints.get("required"):
                    problems.append(Problem(table.name, row.line, name, "required", "value is required but empty"))
                continue
            try:
                value = parse_value(text, field.get("type", "string"))
            except ValueError as error:
                problems.append(Problem(table.name, row.line, name, "type", f"{error} (type {field.get('type')})"))
                continue
            if "enum" in constraints and value not in constraints["enum"]:
                allowed = ", ".join(map(str, constraints["enum"]))
                problems.append(Problem(table.name, row.line, name, "enum", f"'{text}' is not one of: {allowed}"))
            if "minimum" in constraints and value < constraints["minimum"]:
                problems.append(Problem(table.name, row.line, name, "minimum", f"{text} is below the minimum {constraints['minimum']}"))
            if "maximum" in constraints and value > constraints["maximum"]:
                problems.append(Problem(table.name, row.line, name, "maximum", f"{text} is above the maximum {constraints['maximum']}"))
            if "pattern" in constraints and not re.fullmatch(constraints["pattern"], text):
                problems.append(Problem(table.name, row.line, name, "pattern", f"'{text}' does not match {constraints['pattern']}"))
    return problems


def _key(row: Row, columns: Iterable[str]) -> tuple[str, ...]:
    return tuple(row.values.get(column, "").strip() for column in columns)


def check_unique(table: Table, columns: list[str], rule: str = "unique-key") -> list[Problem]:
    """Rows sharing the same key: each repeat is reported with the line of its first occurrence."""
    first_line: dict[tuple[str, ...], int] = {}
    problems = []
    for row in table.rows:
        key = _key(row, columns)
        if key in first_line:
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(columns, key))
            problems.append(Problem(table.name, row.line, columns[-1], rule, f"duplicate key ({shown}), first on line {first_line[key]}"))
        else:
            first_line[key] = row.line
    return problems


def check_foreign_key(table: Table, column: str, allowed: set[str], target: str, *, optional: bool = False) -> list[Problem]:
    """Values of ``column`` must appear in ``allowed`` (the key column of ``target``)."""
    problems = []
    for row in table.rows:
        value = row.values.get(column, "").strip()
        if not value and optional:
            continue
        if value not in allowed:
            problems.append(Problem(table.name, row.line, column, "foreign-key", f"'{value}' is not a known key in {target}"))
    return problems
