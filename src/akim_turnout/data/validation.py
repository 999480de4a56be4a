"""Checks of raw CSV files against a Frictionless table schema, reporting every problem at once.

Each problem names the file, the line number (as an editor shows it; line 1 is the header), the column and the rule
broken. Rows are read with the ``csv`` module, not pandas, so line numbers stay exact and nothing is coerced.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
        return None, [
            Problem(name, line, column, "encoding", f"bytes {sample!r} are not valid UTF-8; save the file as UTF-8")
        ]
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
            problems.append(
                Problem(name, start, "-", "field-count", f"{len(cells)} fields, the header has {len(header)}")
            )
            continue
        rows.append(Row(start, dict(zip(header, cells, strict=True))))
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
        Problem(
            table.name, 1, column, "unknown-column", f"column is not in the schema (expected: {', '.join(expected)})"
        )
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
                problems.append(
                    Problem(
                        table.name, row.line, name, "minimum", f"{text} is below the minimum {constraints['minimum']}"
                    )
                )
            if "maximum" in constraints and value > constraints["maximum"]:
                problems.append(
                    Problem(
                        table.name, row.line, name, "maximum", f"{text} is above the maximum {constraints['maximum']}"
                    )
                )
            if "pattern" in constraints and not re.fullmatch(constraints["pattern"], text):
                problems.append(
                    Problem(table.name, row.line, name, "pattern", f"'{text}' does not match {constraints['pattern']}")
                )
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
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(columns, key, strict=True))
            problems.append(
                Problem(
                    table.name, row.line, columns[-1], rule, f"duplicate key ({shown}), first on line {first_line[key]}"
                )
            )
        else:
            first_line[key] = row.line
    return problems


def check_foreign_key(
    table: Table, column: str, allowed: set[str], target: str, *, optional: bool = False
) -> list[Problem]:
    """Values of ``column`` must appear in ``allowed`` (the key column of ``target``)."""
    problems = []
    for row in table.rows:
        value = row.values.get(column, "").strip()
        if not value and optional:
            continue
        if value not in allowed:
            problems.append(
                Problem(table.name, row.line, column, "foreign-key", f"'{value}' is not a known key in {target}")
            )
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Numbers in quoted text: does a sentence state a figure in one of its usual writings?

_GROUP_SEP = (
    "[ \u00a0\u202f\u2009,.]"  # thousands separators seen in the sources: space, no-break/thin space, comma, dot
)
_SCALES = {
    1000: r"(?:тысяч\w*|тыс\.?|мың\w*|myń\w*|thousand\w*)",
    1_000_000: r"(?:млн\.?|миллион\w*|million\w*|миллион\w*)",
}
# Number words (Russian, Kazakh in Cyrillic and Latin script, English) in the forms the sources use;
# "|" separates forms.
NUMBER_WORDS = {
    0: "ни одного|ни одной|ноль|none|zero",
    1: "один|одна|одно|одного|одной|одному|одним|единственный|единственная|единственного"
    "|біреу|біреуі|бір|bir|bireýi|one",
    2: "два|две|двух|двум|двумя|двое|двоих|екі|екеу|екеуі|eki|ekeýi|two",
    3: "три|трёх|трех|трем|тремя|трое|троих|үш|үшеу|үшеуі|úsh|úsheýi|three",
    4: "четыре|четырёх|четырех|четырем|четырьмя|четверо|четверых|төрт|төртеу|төртеуі|tórt|tórteýi|four",
    5: "пять|пяти|пятью|пятеро|пятерых|бес|бесеу|бесеуі|bes|beseýi|five",
    6: "шесть|шести|шестеро|шестерых|алты|алтау|alty|six",
    7: "семь|семи|семеро|жеті|жетеу|jeti|seven",
    8: "восемь|восьми|восьмеро|сегіз|segiz|eight",
    9: "девять|девяти|девятеро|тоғыз|toǵyz|nine",
    10: "десять|десяти|он|on|ten",
    11: "одиннадцать|одиннадцати|eleven",
    12: "двенадцать|двенадцати|twelve",
    50: "пятьдесят|пятидесяти|елу|fifty",
    100: "сто|ста|жүз|hundred",
}


def _word_pattern(number: float) -> str | None:
    """Alternation of the number words for ``number``, longest first, or None."""
    if not float(number).is_integer() or int(number) not in NUMBER_WORDS:
        return None
    words = sorted(NUMBER_WORDS[int(number)].split("|"), key=len, reverse=True)
    return "(?:" + "|".join(re.escape(w) for w in words) + ")"


def _digits_pattern(text: str) -> str:
    """Regex for a plain decimal number with optional thousands separators and either decimal mark."""
    integer, _, decimals = text.partition(".")
    head, rest = integer[: len(integer) % 3 or 3], integer[len(integer) % 3 or 3 :]
    groups = [re.escape(head)] + [f"{_GROUP_SEP}?{rest[i : i + 3]}" for i in range(0, len(rest), 3)]
    pattern = "".join(groups)
    return pattern + (f"[.,]{decimals}" if decimals else "")


def number_patterns(value: str) -> list[re.Pattern[str]]:
    """Every usual writing of ``value`` (as stored: plain digits, '.' decimals) as a compiled regex.

    Digits: 2297, 2 297, 2,297, 2.297; decimals with a point or a comma (38.2, 38,2). Round thousands and
    millions also as '52 тысячи', '70 мың', 'двух тысяч', '1.2 million'. Small counts also as words ('пятеро',
    'үшеуі', 'three', 'ни одного'). A match never sits inside a longer number ('297' is not found in '2 297').
    """
    text = value.strip().lstrip("+")
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        return []
    before, after = r"(?<![\d])(?<!\d[ \u00a0\u202f\u2009,.])", r"(?![.,]\d)(?![ \u00a0\u202f\u2009]?\d)"
    patterns = [before + _digits_pattern(text) + after]
    number = float(text)
    for scale, scale_words in _SCALES.items():
        if number >= scale and number % (scale / 10) == 0:
            short = f"{number / scale:.1f}".removesuffix(".0")
            multiplier = [before + _digits_pattern(short) + r"(?:-?[^\W\d_]{0,3})?"]
            word = _word_pattern(number / scale)
            if word:
                multiplier.append(rf"(?<![^\W\d_]){word}")
            patterns += [m + r"\s*" + scale_words for m in multiplier]
    word = _word_pattern(number)
    if word:
        patterns.append(rf"(?<![^\W\d_]){word}(?![^\W\d_])")
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def quote_states(quote: str, value: str) -> bool:
    """True when ``quote`` contains ``value`` in one of its usual writings (see :func:`number_patterns`)."""
    return any(p.search(quote) for p in number_patterns(value))


def usual_writings(value: str) -> str:
    """A few writings of ``value`` for messages: '2297 / 2 297 / 2,297', '38.2 / 38,2'."""
    text = value.strip()
    integer, _, decimals = text.partition(".")
    grouped = f"{int(integer):,}" if integer.isdigit() else integer
    forms = [
        text,
        grouped.replace(",", " ") + (f".{decimals}" if decimals else ""),
        grouped + (f".{decimals}" if decimals else ""),
    ]
    if decimals:
        forms.append(grouped.replace(",", " ") + f",{decimals}")
    return " / ".join(dict.fromkeys(forms))


# ---------------------------------------------------------------------------------------------------------------
# Provenance of a figure row: a published figure's own quote states its number; a derived one says what it is from.

DERIVATION = re.compile(r"(sum|difference|count|implied): \S.*")
QUOTE_SHOWN = 90  # characters of a quote shown in a message


def _shorten(text: str) -> str:
    return text if len(text) <= QUOTE_SHOWN else text[: QUOTE_SHOWN - 1] + "…"


def check_provenance(table: Table, languages: Mapping[str, str]) -> list[Problem]:
    """Every figure row of ``table``: quote, gloss and derivation rules (see :func:`provenance_problems`)."""
    problems = []
    for row in table.rows:
        values = {key: text.strip() for key, text in row.values.items()}
        problems += provenance_problems(table.name, row.line, values, languages.get(values.get("source_id", ""), "en"))
    return problems


def provenance_problems(file: str, line: int, values: Mapping[str, str], language: str) -> list[Problem]:
    """Rules for one figure row.

    quote-has-number: a published figure without a quote_exception has a quote that contains its value in a usual
    writing. quote-required: such a figure has a quote at all. gloss-required: a quote not in English has quote_en.
    derived-from: derived figures name what they are derived from (and only they do).
    """
    basis, quote, variable, value = (
        values.get("basis"),
        values.get("quote", ""),
        values.get("variable", ""),
        values.get("value", ""),
    )
    derived_from, problems = values.get("derived_from", ""), []
    if basis == "derived" and not DERIVATION.fullmatch(derived_from):
        problems.append(
            Problem(
                file,
                line,
                "derived_from",
                "derived-from",
                f"derived figure {variable} = {value} must say what it is derived from "
                f"('sum: a + b', 'difference: a - b', 'count: ...' or 'implied: ...'), got {derived_from!r}",
            )
        )
    if basis == "published" and derived_from:
        problems.append(
            Problem(
                file,
                line,
                "derived_from",
                "derived-from",
                f"{variable} = {value} is published, so derived_from must be empty (or set basis to derived)",
            )
        )
    if basis == "published" and not values.get("quote_exception"):
        if not quote:
            problems.append(
                Problem(
                    file,
                    line,
                    "quote",
                    "quote-required",
                    f"published figure {variable} = {value} has no quote: give the source sentence that "
                    "states it, or say in quote_exception why there is none",
                )
            )
        elif not quote_states(quote, value):
            problems.append(
                Problem(
                    file,
                    line,
                    "quote",
                    "quote-has-number",
                    f"the quote does not contain {variable} = {value} in any usual writing "
                    f"({usual_writings(value)}): {_shorten(quote)!r}",
                )
            )
    if quote and language != "en" and not values.get("quote_en"):
        problems.append(
            Problem(
                file,
                line,
                "quote_en",
                "gloss-required",
                f"the quote is in '{language}': give an English gloss in quote_en",
            )
        )
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Cross-field consistency within one unit (a round's nation, region or race) among primary figures:
# derived sums and differences, published turnout against voters and votes cast, published shares against counts.

UNIT_KEY = ["level", "round_id", "region", "race_id"]
# (share, part, whole, rule, scale): the published share must equal scale * part / whole of the same unit.
SHARES = [
    ("turnout_pct", "votes_cast", "voters_on_rolls", "turnout-consistent", 100),
    ("turnout_interim_pct", "votes_cast_interim", "voters_on_rolls", "turnout-consistent", 100),
    ("nominees_party_pct", "cands_nominated_party", "cands_nominated", "share-consistent", 100),
    ("nominees_self_pct", "cands_nominated_self", "cands_nominated", "share-consistent", 100),
    ("nominees_per_post", "cands_nominated", "posts", "share-consistent", 1),
    ("cands_registered_party_pct", "cands_registered_party", "cands_registered", "share-consistent", 100),
    ("cands_registered_self_pct", "cands_registered_self", "cands_registered", "share-consistent", 100),
    ("cands_registered_women_pct", "cands_registered_women", "cands_registered", "share-consistent", 100),
    ("cands_registered_men_pct", "cands_registered_men", "cands_registered", "share-consistent", 100),
    ("cands_on_ballot_party_pct", "cands_on_ballot_party", "cands_on_ballot", "share-consistent", 100),
    ("posts_early_pct", "posts_early", "posts", "share-consistent", 100),
    ("share_new_akims_pct", "new_akims", "posts", "share-consistent", 100),
    ("share_new_akims_pct", "new_akims", "posts_cumulative", "share-consistent", 100),
    ("winners_party_pct", "winners_party", "posts", "share-consistent", 100),
    ("winners_self_pct", "winners_self", "posts", "share-consistent", 100),
    ("vote_share_winner_pct", "votes_winner", "votes_cast", "share-consistent", 100),
    ("vote_share_candidate_2_pct", "votes_candidate_2", "votes_cast", "share-consistent", 100),
    ("vote_share_candidate_3_pct", "votes_candidate_3", "votes_cast", "share-consistent", 100),
    ("vote_share_against_all_pct", "votes_against_all", "votes_cast", "share-consistent", 100),
]


@dataclass(frozen=True)
class Figure:
    """One primary figure of a unit, as needed by the cross-field rules."""

    variable: str
    text: str
    precision: str
    as_of: str
    file: str
    line: int
    basis: str = "published"
    derived_from: str = ""

    @property
    def value(self) -> float:
        return float(self.text)

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def count_bounds(figure: Figure) -> tuple[float, float]:
    """Range of the true count: exact; rounded to its trailing zeros (220000 -> +-10000); or at least the value."""
    value = figure.value
    if figure.precision == "lower_bound":
        return value, math.inf
    if figure.precision == "rounded":
        digits = figure.text.split(".")[0]
        unit = 10 ** (len(digits) - len(digits.rstrip("0"))) if value else 1
        return value - unit, value + unit
    return value, value


def share_bounds(figure: Figure) -> tuple[float, float]:
    """Range of the true share behind a printed one: rounded or truncated to its printed decimals."""
    value = figure.value
    decimals = len(figure.text.partition(".")[2])
    unit = 10.0**-decimals
    return (value, math.inf) if figure.precision == "lower_bound" else (value - unit / 2, value + unit)


def share_problem(share: Figure, part: Figure, whole: Figure, rule: str, scale: float) -> Problem | None:
    """A Problem when no true part/whole within the published rounding gives the published share."""
    (part_lo, part_hi), (whole_lo, whole_hi) = count_bounds(part), count_bounds(whole)
    if whole_lo <= 0:
        return None
    low, high = scale * part_lo / whole_hi, scale * part_hi / whole_lo
    share_lo, share_hi = share_bounds(share)
    if high >= share_lo - 1e-9 and low < share_hi + 1e-9:
        return None
    computed = scale * part.value / whole.value
    what = "turnout" if rule == "turnout-consistent" else "share"
    return Problem(
        share.file,
        share.line,
        "value",
        rule,
        f"{share.variable} = {share.text} disagrees with {part.variable} {part.text} ({part.where()}) / "
        f"{whole.variable} {whole.text} ({whole.where()}) = {computed:.2f}: a published {what} must agree "
        "with its counts within the rounding of the published figures",
    )


def derivation_problem(figure: Figure, by_variable: Mapping[str, Figure]) -> Problem | None:
    """A derived sum or difference must equal the arithmetic of the figures it names (same unit and as_of)."""
    method, _, expression = figure.derived_from.partition(": ")
    if method not in ("sum", "difference"):
        return None
    tokens = re.split(r"\s+([+-])\s+", expression.strip())
    names, signs = tokens[0::2], [1] + [1 if sign == "+" else -1 for sign in tokens[1::2]]
    missing = [name for name in names if name not in by_variable]
    if missing:
        return Problem(
            figure.file,
            figure.line,
            "derived_from",
            "derived-from",
            f"{figure.variable} = {figure.text} is derived from {', '.join(missing)}, "
            "which this unit has no primary figure for",
        )
    total = sum(sign * by_variable[name].value for sign, name in zip(signs, names, strict=True))
    if abs(total - figure.value) > 1e-9:
        shown = " ".join(
            f"{'+' if sign > 0 else '-'} {by_variable[name].text}" for sign, name in zip(signs, names, strict=True)
        ).lstrip("+ ")
        return Problem(
            figure.file,
            figure.line,
            "value",
            "derived-arithmetic",
            f"{figure.variable} = {figure.text} but {expression} = {shown} = {total:g}",
        )
    return None


def unit_problems(figures: list[Figure]) -> list[Problem]:
    """Derived arithmetic and share/turnout consistency among the primary figures of one unit."""
    by_key = {(f.variable, f.as_of): f for f in figures}
    problems = []
    for as_of in sorted({f.as_of for f in figures}):
        same_time = {variable: f for (variable, when), f in by_key.items() if when == as_of}
        for figure in same_time.values():
            if figure.basis == "derived":
                problems.append(derivation_problem(figure, same_time))
        for share, part, whole, rule, scale in SHARES:
            whole_figure = by_key.get((whole, as_of)) or by_key.get((whole, ""))
            if share in same_time and part in same_time and whole_figure:
                problems.append(share_problem(same_time[share], same_time[part], whole_figure, rule, scale))
    return [p for p in problems if p is not None]


def check_cross_fields(records: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Group primary figure records (from the figures frame) by unit and apply :func:`unit_problems`."""
    units: dict[tuple, list[Figure]] = {}
    for record in records:
        if record.get("role") != "primary":
            continue
        key = tuple(
            "" if record.get(k) is None or record.get(k) != record.get(k) else str(record.get(k)) for k in UNIT_KEY
        )
        units.setdefault(key, []).append(
            Figure(
                record["variable"],
                str(record["value_text"]),
                record.get("precision", ""),
                record.get("as_of") or "",
                record["file"],
                int(record["line"]),
                record.get("basis") or "published",
                record.get("derived_from") or "",
            )
        )
    return [problem for figures in units.values() for problem in unit_problems(figures)]


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value).strip()


def conflict_record_problems(
    search_rows: Iterable[tuple[int, Mapping[str, str]]], records: Iterable[Mapping[str, Any]], file: str
) -> list[Problem]:
    """The conflict record names the primary it keeps.

    For every row of ``conflict_search.csv`` marked ``conflict = yes``: when the figure tables hold a final primary
    figure (no ``as_of``) for that round, unit (region or race) and variable, ``stored_value`` must equal it and the
    ``resolution`` must name its source id; when they hold none, ``stored_value`` must be empty. So changing which of
    two conflicting figures is primary fails until the conflict record says so too.
    """
    primaries: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for record in records:
        if record.get("role") != "primary" or _text(record.get("as_of")):
            continue
        unit = _text(record.get("race_id")) or _text(record.get("region")) or "national"
        primaries[(_text(record.get("round_id")), unit, _text(record.get("variable")))] = record
    problems = []
    for line, row in search_rows:
        if _text(row.get("conflict")) != "yes":
            continue
        key = (_text(row.get("round_id")), _text(row.get("unit")), _text(row.get("variable")))
        stored, resolution = _text(row.get("stored_value")), _text(row.get("resolution"))
        primary = primaries.get(key)
        where = f"{key[1]} {key[2]} ({key[0]})"
        if primary is None:
            if stored:
                problems.append(
                    Problem(
                        file,
                        line,
                        "stored_value",
                        "conflict-primary",
                        f"{where}: records {stored} as kept, but no primary figure is stored",
                    )
                )
            continue
        value, source = float(primary["value"]), _text(primary.get("source_id"))
        if not stored or float(stored) != value:
            problems.append(
                Problem(
                    file,
                    line,
                    "stored_value",
                    "conflict-primary",
                    f"{where}: records {stored or 'nothing'} as kept, but the primary is {value:g} ({source})",
                )
            )
        if not re.search(rf"(?<![A-Za-z0-9]){re.escape(source)}(?![0-9a-z])", resolution):
            problems.append(
                Problem(
                    file,
                    line,
                    "resolution",
                    "conflict-primary",
                    f"{where}: the resolution does not name the primary's source {source}",
                )
            )
    return problems


# ---------------------------------------------------------------------------------------------------------------
# The record of the stored-copy check: sources.csv's stored_copy must agree with it.

FOUND_BY_PAGE = ("url", "quote")


def stored_copy_record_problems(sources: Table, check: Table) -> list[Problem]:
    """Every source has one row in the stored-copy check, with the same ``stored_copy``; ``found`` exactly when the
    check found a stored page (``found_by`` url or quote, with its address); a source searched without result is not
    ``found``."""
    flags = {row.values.get("source_id", "").strip(): row for row in sources.rows}
    checked = {row.values.get("source_id", "").strip(): row for row in check.rows}
    problems = [
        Problem(sources.name, row.line, "source_id", "stored-copy-record", f"source '{sid}' has no row in {check.name}")
        for sid, row in flags.items()
        if sid not in checked
    ]
    for sid, row in checked.items():
        if sid not in flags:
            continue  # reported by the foreign-key rule
        flag = flags[sid].values.get("stored_copy", "").strip()
        recorded = row.values.get("stored_copy", "").strip()
        found_by = row.values.get("found_by", "").strip()
        address = row.values.get("stored_address", "").strip()
        where = (check.name, row.line)
        if recorded != flag:
            problems.append(
                Problem(
                    *where,
                    "stored_copy",
                    "stored-copy-record",
                    f"source '{sid}': the check records '{recorded}' but sources.csv says '{flag}'",
                )
            )
        if (found_by in FOUND_BY_PAGE) != (recorded == "found"):
            problems.append(
                Problem(
                    *where,
                    "found_by",
                    "stored-copy-record",
                    f"source '{sid}': found_by '{found_by}' does not fit stored_copy '{recorded}' (found exactly "
                    "when a stored page was found by its url or quote)",
                )
            )
        if (found_by in FOUND_BY_PAGE) != bool(address):
            problems.append(
                Problem(
                    *where,
                    "stored_address",
                    "stored-copy-record",
                    f"source '{sid}': a stored address is given exactly when a stored page was found",
                )
            )
    return problems
