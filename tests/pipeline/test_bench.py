"""The benchmark's bookkeeping (its measurements themselves are run by `make bench`, never by timed tests)."""

from __future__ import annotations

import pytest

from akim_turnout.pipeline import bench


def test_row_reports_ratio_to_floor_and_target() -> None:
    full = bench.row("full dvc repro -f", 45.0, 15.0, "stages x stack floor", 1.3)
    assert full["ratio"] == 3.0 and full["met"] is False
    assert bench.row("no-op", 1.4, 1.0, "dvc status", 1.5)["met"] is True
    faster = bench.row("fast engine", 100.0, 20.0, "statsmodels engine", 4.0, unit="rep/s", higher_is_better=True)
    assert faster["ratio"] == 5.0 and faster["met"] is True
    assert bench.row("x", 1.0, 0.0, "none")["ratio"] is None and bench.row("x", 1.0, 0.0, "none")["met"] is None


def test_table_lists_every_measure_with_its_floor_ratio_and_verdict() -> None:
    rows = [
        bench.row("stage ingest", 4.0, 2.0, "runner + kernel + its imports"),
        bench.row("no-op dvc repro", 1.8, 1.2, "dvc status, empty pipeline", 1.5),
    ]
    table = bench.format_table(rows).splitlines()
    assert table[2] == "| stage ingest | 4.0 s | 2.0 (runner + kernel + its imports) | 2.0 |  |  |"
    assert table[3] == "| no-op dvc repro | 1.8 s | 1.2 (dvc status, empty pipeline) | 1.5 | ≤ 1.5 | met |"
    assert len(table) == 2 + len(rows)


def test_stage_floor_notebook_holds_only_the_imports(tmp_path) -> None:
    notebook = bench.notebook_of("import pandas as pd\nx = 1\nfrom akim_turnout import data\n", tmp_path / "n.ipynb")
    assert bench.stage_imports(notebook) == "import pandas as pd\nfrom akim_turnout import data"


def test_readme_table_is_replaced_between_markers(tmp_path) -> None:
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{bench.README_START}\nold\n{bench.README_END}\nafter\n")
    bench.update_readme(readme, "| new |", "2026-11-30")
    text = readme.read_text()
    assert "old" not in text and "| new |" in text and text.endswith(f"{bench.README_END}\nafter\n")
    with pytest.raises(ValueError, match="has no <!-- bench:start -->"):
        bench.update_readme(plain, "| t |", "2026-11-30")


def test_the_two_speed_targets_of_the_full_study() -> None:
    """The simulation study's stage at most 4 x its floor, a forced full rebuild at most 1.5 x (stages x floor)."""
    assert bench.TARGETS["study_stage_ratio"] == 4.0 and bench.TARGETS["full_repro_ratio"] == 1.5
    assert bench.stage_target("simulation_study") == 4.0
    assert bench.stage_target("ingest") is None and bench.stage_target("report") is None
    slow = bench.row("stage simulation_study", 21.7, 3.26, "runner + kernel + its imports", 4.0)
    assert slow["ratio"] == 6.66 and slow["met"] is False  # 21.7 / 3.26 = 6.656...
    quick = bench.row("stage simulation_study", 13.0, 3.25, "runner + kernel + its imports", 4.0)
    assert quick["ratio"] == 4.0 and quick["met"] is True  # at the target exactly: met
    full = bench.row("full dvc repro -f", 36.0, 25.0, "stages x stack floor", bench.TARGETS["full_repro_ratio"])
    assert full["ratio"] == 1.44 and full["met"] is True
    table = bench.format_table([slow, full]).splitlines()
    assert table[2] == (
        "| stage simulation_study | 21.7 s | 3.26 (runner + kernel + its imports) | 6.66 | ≤ 4.0 | **not met** |"
    )
    assert table[3] == "| full dvc repro -f | 36.0 s | 25.0 (stages x stack floor) | 1.44 | ≤ 1.5 | met |"


def test_table_direction_of_a_target_follows_the_row() -> None:
    """'≥' where higher is better (throughput), whatever the measure is called; '≤' otherwise."""
    rows = [
        bench.row("throughput", 90.0, 15.0, "statsmodels engine", 4.0, unit="rep/s", higher_is_better=True),
        bench.row("time", 90.0, 15.0, "floor", 4.0),
    ]
    table = bench.format_table(rows).splitlines()
    assert table[2] == "| throughput | 90.0 rep/s | 15.0 (statsmodels engine) | 6.0 | ≥ 4.0 | met |"
    assert table[3] == "| time | 90.0 s | 15.0 (floor) | 6.0 | ≤ 4.0 | **not met** |"


def test_fits_and_study_read_the_reproduced_clone_and_refuse_a_checkout_without_data(tmp_path, monkeypatch) -> None:
    """`make bench` in a fresh clone: the fits and the study read the clone the pipeline bench reproduced; with the
    pipeline skipped, a checkout without processed data is refused with what to do, before anything is timed."""
    seen = []
    monkeypatch.setattr(bench, "project_root", lambda: tmp_path)
    monkeypatch.setattr(bench, "bench_fits", lambda root, env: (seen.append(("fits", root)) or [], {}))
    monkeypatch.setattr(bench, "bench_study", lambda root, env: seen.append(("study", root)) or [])

    def pipeline(root, scratch, env):
        (scratch / "project" / "data" / "processed" / "ingest").mkdir(parents=True)
        return []

    monkeypatch.setattr(bench, "bench_pipeline", pipeline)
    assert bench.main(["--skip", "environment"]) == 0
    assert [kind for kind, _ in seen] == ["fits", "study"]
    assert all(root.name == "project" and root != tmp_path for _, root in seen)
    with pytest.raises(SystemExit):
        bench.main(["--skip", "environment", "pipeline"])
    assert len(seen) == 2
