"""The scripts behind `make mutation` read mutmut's verdicts as mutmut writes them (``<module>.py.meta``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "mutation"))
import planted_bugs  # noqa: E402
import rerun_survivors  # noqa: E402
import score  # noqa: E402


def _meta(root: Path, module: str, codes: dict[str, int | None]) -> None:
    folder = root / "src" / "akim_turnout"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))


def test_survivors_and_untested_mutants_are_retested_killed_and_unchecked_are_not(tmp_path) -> None:
    _meta(
        tmp_path, "study", {"s.x_f__mutmut_2": 0, "s.x_f__mutmut_1": 1, "s.x_g__mutmut_1": 33, "s.x_g__mutmut_2": None}
    )
    _meta(tmp_path, "design", {"d.x_h__mutmut_1": 0, "d.x_h__mutmut_2": 36, "d.x_h__mutmut_3": 5})
    assert rerun_survivors.alive(tmp_path) == [
        "d.x_h__mutmut_1",
        "d.x_h__mutmut_3",
        "s.x_f__mutmut_2",
        "s.x_g__mutmut_1",
    ]


def test_score_counts_timeouts_as_killed_and_everything_else_against_it(tmp_path, capsys) -> None:
    _meta(tmp_path, "design", {"a": 1, "b": 36, "c": 0, "d": 33, "e": None, "f": 1, "g": -24, "h": 1})
    assert score.main(tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["design", "8", "5", "62.5%"]
    assert lines[-2].split() == ["all", "8", "5", "62.5%"]
    assert (tmp_path / "survivors.txt").read_text() == "c\tsurvived\nd\tno tests\ne\tnot checked\n"
    # 5 killed of 8; 7 checked (e has no verdict): 5 / 7 = 71.4 % of the checked
    assert (tmp_path / "score.md").read_text().splitlines()[2:] == [
        "| design | 8 | 5 | 1 | 1 | 1 | 62.5% | 71.4% |",
        "| all | 8 | 5 | 1 | 1 | 1 | 62.5% | 71.4% |",
    ]


def test_score_table_sums_modules_with_thousands_separators(tmp_path) -> None:
    _meta(tmp_path, "design", {f"d{i}": 1 for i in range(1_200)} | {"d_alive": 0})
    _meta(tmp_path, "study", {"s1": 1, "s2": 7})  # an unknown exit code counts against the score, as survived
    score.main(tmp_path)
    assert (tmp_path / "score.md").read_text().splitlines() == [
        "| module | mutants | killed | survived | no test | not checked | score | score of the checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        "| design | 1,201 | 1,200 | 1 | 0 | 0 | 99.9% | 99.9% |",
        "| study | 2 | 1 | 1 | 0 | 0 | 50.0% | 50.0% |",
        "| all | 1,203 | 1,201 | 2 | 0 | 0 | 99.8% | 99.8% |",
    ]


@pytest.mark.parametrize("module", ["inference", "validation"])
def test_a_module_without_results_is_named_not_scored(tmp_path, capsys, module) -> None:
    _meta(tmp_path, "design", {"a": 1})
    score.main(tmp_path)
    assert f"{module:<12} (no results: {tmp_path}/src/akim_turnout/{module}.py.meta missing)" in capsys.readouterr().out


@pytest.mark.parametrize("bug", planted_bugs.BUGS, ids=lambda bug: bug.name)
def test_every_planted_bug_can_be_planted_in_its_file_and_names_existing_tests(bug) -> None:
    """`make mutation` stops at a bug whose text is not found once in its file (paths under src/akim_turnout/
    move with the package's layout), so each is checked here without running its tests."""
    path = planted_bugs.ROOT / "src" / "akim_turnout" / bug.file
    assert path.is_file(), f"{bug.file} is not a module of the package"
    assert path.read_text(encoding="utf-8").count(bug.old) == 1
    assert all((planted_bugs.ROOT / test).is_file() for test in bug.tests)
