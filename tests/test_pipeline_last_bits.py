"""Outputs that do not hang on last bits: the whole pipeline rebuilt in its own temporary copy with every input
perturbed and numpy's SIMD dispatch off must reproduce every output hash of the copy's committed dvc.lock.

The copy runs with this checkout's environment (no second .venv) and its own `src/` first on the import path, so
what runs is the copy's code. It is a file of its own so that `make test` runs it on one worker while
test_pipeline.py runs on another."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_copy import ROOT, copy_repository, lock_outputs, numpy_dispatch_off, run

from akim_turnout.pipeline.paths import PERTURB_ENV

pytestmark = pytest.mark.pipeline


def test_outputs_do_not_hang_on_last_bits(tmp_path: Path) -> None:
    """A forced rebuild with every non-whole float input perturbed by 1e-12 (relative) and numpy's SIMD dispatch
    off reproduces every output hash of the committed dvc.lock, as another CPU must."""
    copy = copy_repository(tmp_path / "repo")
    committed = lock_outputs((copy / "dvc.lock").read_text())
    switches = {PERTURB_ENV: "1e-12", "PYTHONPATH": str(copy / "src"), **numpy_dispatch_off()}
    result = run(["dvc", "repro", "-f"], copy, env=switches, venv=ROOT / ".venv")
    assert f"{PERTURB_ENV}=1e-12 is set" in result.stderr, "the switch must reach every stage"
    stages = yaml.safe_load((copy / "dvc.yaml").read_text())["stages"]
    assert result.stdout.count("Running stage") == len(stages), result.stdout
    rebuilt = lock_outputs((copy / "dvc.lock").read_text())
    differ = sorted(path for path, md5 in committed.items() if rebuilt.get(path) != md5)
    assert not differ, f"outputs that differ from the committed dvc.lock under perturbation: {differ}"
    where = ["python", "-c", "import akim_turnout; print(akim_turnout.__file__)"]
    imported = run(where, copy, env=switches, venv=ROOT / ".venv").stdout.strip()
    assert Path(imported).is_relative_to(copy), f"the stages ran {imported}, not the copy's code"
