"""The data checker's command line and the provenance audit of ``data/raw``.

``python -m akim_turnout.data [RAW_DIR] [--audit]`` checks every raw table (exit 1 and every problem listed when
anything is wrong). With ``--audit`` it then prints, per figure table, how many published figures carry their own
quote containing their number, how many are derived, alternative or rejected, how many conflicts are recorded, the
result of the conflict search, and every exception with its reason.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from akim_turnout.data.ingest import DATAPACKAGE, FIGURE_TABLES, RawData, load_raw
from akim_turnout.data.validation import DataValidationError, Row, Table, quote_states

UNIT_COLUMNS = {"national": ("round_id",), "regional": ("round_id", "region"), "race_figures": ("race_id",)}


@dataclass(frozen=True)
class TableAudit:
    """Provenance counts of one figure table."""

    name: str
    rows: int
    published: int
    quoted: int
    on_stored_page: int
    from_excerpt: int
    exceptions: int
    derived: int
    alternative: int
    rejected: int
    conflicts: int


def _cell(row: Row, column: str) -> str:
    return row.values.get(column, "").strip()


def _unit(name: str, row: Row) -> str:
    return " ".join(_cell(row, column) for column in UNIT_COLUMNS[name])


def _has_own_quote(row: Row) -> bool:
    return _cell(row, "basis") == "published" and quote_states(_cell(row, "quote"), _cell(row, "value"))


def _key(name: str, row: Row) -> tuple[str, ...]:
    return (*(_cell(row, c) for c in UNIT_COLUMNS[name]), _cell(row, "variable"), _cell(row, "as_of"))


def conflicting_rows(name: str, table: Table) -> list[tuple[Row, Row | None]]:
    """Alternative or rejected rows whose value differs from the primary of the same key (primary may be None)."""
    primary = {_key(name, row): row for row in table.rows if _cell(row, "role") == "primary"}
    found = []
    for row in table.rows:
        if _cell(row, "role") == "primary":
            continue
        main = primary.get(_key(name, row))
        if main is None or float(_cell(main, "value")) != float(_cell(row, "value")):
            found.append((row, main))
    return found


def audit_table(name: str, table: Table, excerpt_only: set[str], stored: set[str] = frozenset()) -> TableAudit:
    """Counts for one figure table. ``stored``: sources whose page was found in the stored copies and the quotes
    checked on it (``stored_copy = found``); ``excerpt_only``: sources whose page was not retrieved, so their quotes
    come from the excerpt kept when the data were curated (``stored_copy = excerpt only``)."""
    rows = table.rows
    published = [row for row in rows if _cell(row, "basis") == "published"]
    quoted = [row for row in published if _has_own_quote(row)]
    roles = [_cell(row, "role") for row in rows]
    return TableAudit(
        name=Path(table.name).name,
        rows=len(rows),
        published=len(published),
        quoted=len(quoted),
        on_stored_page=sum(_cell(row, "source_id") in stored for row in quoted),
        from_excerpt=sum(_cell(row, "source_id") in excerpt_only for row in quoted),
        exceptions=len(published) - len(quoted),
        derived=len(rows) - len(published),
        alternative=roles.count("alternative"),
        rejected=roles.count("rejected"),
        conflicts=len(conflicting_rows(name, table)),
    )


def _sources_with(raw: RawData, stored_copy: str) -> set[str]:
    return {_cell(row, "source_id") for row in raw.tables["sources"].rows if _cell(row, "stored_copy") == stored_copy}


def _excerpt_only(raw: RawData) -> set[str]:
    return _sources_with(raw, "excerpt only")


def _on_stored_page(raw: RawData) -> set[str]:
    """Sources whose stored page the stored-copy check found (``stored_copy_check.csv``); without that record, the
    sources flagged ``found``."""
    if "stored_copy_check" not in raw.tables:
        return _sources_with(raw, "found")
    rows = raw.tables["stored_copy_check"].rows
    return {_cell(row, "source_id") for row in rows if _cell(row, "found_by") in ("url", "quote")}


def stored_copy_lines(raw: RawData) -> list[str]:
    """Counts from the record of the stored-copy check: sources checked, found by address or by quote, searched
    without result, not searched."""
    if "stored_copy_check" not in raw.tables:
        return ["  (no stored_copy_check table)"]
    rows = raw.tables["stored_copy_check"].rows
    by = {
        how: sum(_cell(row, "found_by") == how for row in rows) for how in ("url", "quote", "not found", "not searched")
    }
    days = sorted({_cell(row, "checked_on") for row in rows})
    searched = len(rows) - by["not searched"]
    return [
        f"  {len(rows)} sources recorded, checked on {', '.join(days)}; {searched} searched among the stored pages",
        f"  stored page found: {by['url'] + by['quote']} ({by['url']} by its address or title, "
        f"{by['quote']} by its quote)",
        f"  searched, no stored page at the source's address: {by['not found']} (flag set to excerpt only, or not "
        "needed where the source backs no figure)",
        f"  not searched (flag kept as excerpt only or not needed): {by['not searched']}",
    ]


def count_lines(audits: Sequence[TableAudit]) -> list[str]:
    """The per-table count table, with a total line."""
    columns = (
        "rows",
        "published",
        "quoted",
        "on_stored_page",
        "from_excerpt",
        "exceptions",
        "derived",
        "alternative",
        "rejected",
        "conflicts",
    )
    width = {c: max(len(c), 5) + 2 for c in columns}
    row = lambda label, values: (
        f"{label:<18}" + "".join(f"{v:>{width[c]}}" for c, v in zip(columns, values, strict=True))
    )
    lines = [row("table", columns)]
    lines += [row(audit.name, [getattr(audit, c) for c in columns]) for audit in audits]
    lines.append(row("all", [sum(getattr(a, c) for a in audits) for c in columns]))
    return lines


def exception_lines(raw: RawData) -> list[str]:
    """Published figures without their own quote containing the number, with the stated reason."""
    lines = []
    for name in FIGURE_TABLES:
        table = raw.tables[name]
        for row in table.rows:
            if _cell(row, "basis") == "published" and not _has_own_quote(row):
                reason = _cell(row, "quote_exception") or "(no reason given)"
                lines.append(
                    f"  {table.name}:{row.line}  {_unit(name, row)} {_cell(row, 'variable')} = {_cell(row, 'value')}"
                    f" ({_cell(row, 'source_id')}): {reason}"
                )
    return lines


def conflict_lines(raw: RawData) -> list[str]:
    """Every recorded conflict: the alternative or rejected statement against the primary value."""
    lines = []
    for name in FIGURE_TABLES:
        table = raw.tables[name]
        for row, main in conflicting_rows(name, table):
            against = f"primary {_cell(main, 'value')} ({_cell(main, 'source_id')})" if main else "no primary value"
            as_of = f" as of {_cell(row, 'as_of')}" if _cell(row, "as_of") else ""
            lines.append(
                f"  {table.name}:{row.line}  {_unit(name, row)} {_cell(row, 'variable')}{as_of}: "
                f"{_cell(row, 'role')} {_cell(row, 'value')} ({_cell(row, 'source_id')}) vs {against}"
            )
    return lines


def search_lines(raw: RawData) -> list[str]:
    """Summary of conflict_search.csv per scope: cells searched, cells with a statement, conflicts."""
    if "conflict_search" not in raw.tables:
        return ["  (no conflict_search table)"]
    by_scope: dict[str, list[int]] = {}
    for row in raw.tables["conflict_search"].rows:
        counts = by_scope.setdefault(_cell(row, "scope"), [0, 0, 0])
        counts[0] += 1
        counts[1] += bool(_cell(row, "statements"))
        counts[2] += _cell(row, "conflict") == "yes"
    lines = [
        f"  {scope}: {searched} cells searched, {stated} with at least one statement, {conflicts} with a conflict"
        for scope, (searched, stated, conflicts) in by_scope.items()
    ]
    total = [sum(c[i] for c in by_scope.values()) for i in range(3)]
    return lines + [
        f"  all: {total[0]} cells searched, {total[1]} with at least one statement, {total[2]} with a conflict"
    ]


def audit_report(raw: RawData, raw_dir: str | Path) -> str:
    """The full audit as text."""
    audits = [audit_table(name, raw.tables[name], _excerpt_only(raw), _on_stored_page(raw)) for name in FIGURE_TABLES]
    published, quoted = sum(a.published for a in audits), sum(a.quoted for a in audits)
    on_page, excerpt = sum(a.on_stored_page for a in audits), sum(a.from_excerpt for a in audits)
    exceptions = exception_lines(raw)
    conflicts = conflict_lines(raw)
    lines = [
        f"Provenance audit of {raw_dir}: {sum(a.rows for a in audits)} figure rows",
        "",
        "quoted = published figures whose own quote contains their number; of these, on_stored_page = the quote "
        "was found on the stored copy of the source's page (stored_copy_check.csv: a stored page found by its "
        "address or its quote; sources.csv stored_copy = found), from_excerpt = the "
        "page was not retrieved and the quote comes from the excerpt kept when the data were curated "
        "(stored_copy = excerpt only); "
        "exceptions = published figures without such a quote; "
        "conflicts = alternative or rejected rows that differ from the primary value.",
        "",
        *count_lines(audits),
        "",
        f"Published figures with their own quote containing the number: {quoted} of {published} "
        f"({100 * quoted / published:.1f} %)",
        f"  quote found on a stored page: {on_page} of {published} ({100 * on_page / published:.1f} %)",
        f"  quote from an excerpt kept at curation: {excerpt} of {published} ({100 * excerpt / published:.1f} %)",
        "",
        "Stored-copy check (stored_copy_check.csv):",
        *stored_copy_lines(raw),
        "",
        "Conflict search (conflict_search.csv):",
        *search_lines(raw),
        "",
        f"Exceptions ({len(exceptions)}):",
        *(exceptions or ["  none"]),
        "",
        f"Recorded conflicts ({len(conflicts)}):",
        *(conflicts or ["  none"]),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m akim_turnout.data",
        description="Check the raw data (every table against datapackage.json, provenance and consistency rules) and "
        "list every problem with file, line, column and rule. Exit status 0 when the data pass, 1 when "
        "problems are found, 2 when the folder cannot be read.",
    )
    parser.add_argument(
        "raw_dir", nargs="?", default="data/raw", help="folder holding datapackage.json (default: data/raw)"
    )
    parser.add_argument(
        "--audit",
        action="store_true",
        help="after a passing check, print the provenance audit: quotes, derived figures, alternatives, "
        "conflicts and exceptions per table",
    )
    return parser.parse_args(argv)


def folder_error(raw_dir: str) -> str | None:
    """A one-line reason why ``raw_dir`` cannot be checked at all, or None."""
    path = Path(raw_dir)
    if not path.exists():
        return f"error: folder {raw_dir} does not exist (give the folder holding {DATAPACKAGE}, e.g. data/raw)"
    if not path.is_dir():
        return f"error: {raw_dir} is not a folder (give the folder holding {DATAPACKAGE}, e.g. data/raw)"
    if not (path / DATAPACKAGE).is_file():
        return f"error: {raw_dir} has no {DATAPACKAGE} (give the folder holding it, e.g. data/raw)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check (and the audit); returns the exit status."""
    args = parse_args(argv)
    problem = folder_error(args.raw_dir)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        raw = load_raw(args.raw_dir)
    except DataValidationError as error:
        print(error, file=sys.stderr)
        return 1
    if args.audit:
        print(audit_report(raw, args.raw_dir))
    else:
        print(f"{args.raw_dir}: {len(raw.frames['figures'])} figures in {len(raw.tables)} tables, no problems")
    return 0
