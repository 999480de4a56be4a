"""The benchmark's bookkeeping (its measurements themselves are run by `make bench`, never by timed tests)."""

from __future__ import annotations

from akim_turnout import bench


def test_row_reports_ratio_to_floor_and_target() -> None:
    row = bench.row("full dvc repro -f", 45.0, 15.0, "imports + kernel", 30.0)
    assert row["ratio"] == 3.0 and row["met"] is False
    assert bench.row("no-op", 1.5, 1.0, "dvc status", 2.0)["met"] is True
    assert bench.row("x", 1.0, 0.0, "none")["ratio"] is None


def test_table_lists_every_measure_with_its_floor() -> None:
    rows = [bench.row("stage ingest", 4.0, 2.0, "imports + kernel start"), bench.row("no-op dvc repro", 1.8, 1.2, "dvc status", 2.0)]
    table = bench.format_table(rows)
    assert "stage ingest" in table and "no-op dvc repro" in table and "(floor: dvc status)" in table
    assert table.count("\n") == len(rows) + 1

