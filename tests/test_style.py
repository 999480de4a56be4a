"""The field's own tools pass on the project's files: ruff on the code, frictionless on the data package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from akim_turnout.pipeline.paths import project_root

ROOT = project_root()
BIN = Path(sys.executable).parent


def test_ruff_lint_and_format() -> None:
    check = subprocess.run(
        [BIN / "ruff", "check", "src", "tests", "conftest.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout[-3000:]
    formatted = subprocess.run(
        [BIN / "ruff", "format", "--check", "src", "tests", "conftest.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout[-3000:]


def _frictionless(path: Path) -> dict:
    result = subprocess.run([BIN / "frictionless", "validate", "--json", str(path)], capture_output=True, text=True)
    return json.loads(result.stdout)


def test_data_package_passes_the_standard_validator() -> None:
    report = _frictionless(ROOT / "data/raw/datapackage.json")
    assert report["valid"] is True, [task["errors"] for task in report["tasks"] if task["errors"]]
    assert len(report["tasks"]) == 10


def test_the_standard_validator_catches_a_wrong_type(tmp_path) -> None:
    copy = tmp_path / "raw"
    shutil.copytree(ROOT / "data/raw", copy)
    regional = copy / "regional.csv"
    regional.write_text(regional.read_text().replace(",turnout_pct,75.5,", ",turnout_pct,seventy-five,", 1))
    report = _frictionless(copy / "datapackage.json")
    assert report["valid"] is False
    errors = [error for task in report["tasks"] for error in task["errors"]]
    assert [(e["type"], e["fieldName"], e["rowNumber"]) for e in errors] == [("type-error", "value", 2)]
