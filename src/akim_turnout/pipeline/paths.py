"""Project root, where each stage writes, and parameter loading.

Code runs from three places: the DVC stage runner (cwd = project root), papermill kernels (cwd = caller's folder)
and nbval kernels (cwd = the notebook's folder). Every path is therefore resolved from the project root, the first
folder upwards that holds ``dvc.yaml``, never from the current working directory.

**Where a stage writes** follows from its name alone (:class:`StageFiles`): ``reports/figures/<stage>/``,
``reports/tables/<stage>/`` (publication tables), ``reports/numbers/<stage>.json`` (every number the report quotes),
``reports/metrics/<stage>.json`` (a few headline numbers for DVC) and ``data/processed/<stage>/`` (machine-readable
data and results). ``dvc.yaml`` declares
exactly these (a test checks it); ``params.yaml`` holds no paths.

**Pipeline or scratch.** A stage run by the pipeline writes under the project root: the runner sets
``AKIM_OUTPUT_ROOT`` to it. A notebook run by hand (JupyterLab, papermill) without that variable writes under
``scratch/`` instead, so trying a parameter never overwrites what DVC tracks; inputs always come from the pipeline's
folders under the project root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT_MARKER = "dvc.yaml"
# Where stage outputs go: the runner sets it to the project root; tests point it to a temporary folder.
OUTPUT_ROOT_ENV = "AKIM_OUTPUT_ROOT"
SCRATCH = "scratch"  # default output root of notebooks run by hand (git-ignored)
# Test-only switch: a relative size (e.g. "1e-12") by which every non-whole float a stage reads from an earlier
# stage's data is perturbed (akim_turnout.data.processed.read_frame), to show that no output hangs on last bits
# (tests/test_pipeline_last_bits.py). Nothing in the pipeline sets it, the Makefile unexports it and the runner
# announces it.
PERTURB_ENV = "AKIM_TEST_PERTURB_INPUTS"


@cache
def _find_root(start: str) -> Path:
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT_MARKER).is_file():
            return folder
    raise FileNotFoundError(f"no {ROOT_MARKER} found in {here} or any parent folder")


def project_root(start: str | Path | None = None) -> Path:
    """The folder holding ``dvc.yaml``, searched upwards from ``start``.

    By default the search starts at the working directory (a copy of the project must use its own files, even
    with the package installed from another copy), and falls back to this package's own checkout.
    """
    if start is not None:
        return _find_root(str(start))
    try:
        return _find_root(os.getcwd())
    except FileNotFoundError:
        return _find_root(str(Path(__file__).parent))


def project_path(relative: str | Path) -> Path:
    """An input path: relative paths are taken from the project root."""
    path = Path(relative)
    return path if path.is_absolute() else project_root() / path


def output_root() -> Path:
    """Where stage outputs go: ``$AKIM_OUTPUT_ROOT`` if set (the pipeline, tests), else ``<project>/scratch``."""
    configured = os.environ.get(OUTPUT_ROOT_ENV)
    return Path(configured) if configured else project_root() / SCRATCH


def output_path(relative: str | Path, *, mkdir: bool = True) -> Path:
    """An output path under :func:`output_root` (absolute paths are kept).

    Directories named by ``relative`` (no suffix) are created; for files, the parent folder is created.
    """
    path = Path(relative)
    if not path.is_absolute():
        path = output_root() / path
    if mkdir:
        (path if not path.suffix else path.parent).mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class StageFiles:
    """The output locations of one stage under ``base`` (all derived from the stage name)."""

    stage: str
    base: Path

    @staticmethod
    def relative(stage: str) -> dict[str, str]:
        """Kind -> path relative to the project root, as ``dvc.yaml`` declares them."""
        return {
            "figures": f"reports/figures/{stage}",
            "tables": f"reports/tables/{stage}",
            "numbers": f"reports/numbers/{stage}.json",
            "metrics": f"reports/metrics/{stage}.json",
            "data": f"data/processed/{stage}",
        }

    def _path(self, kind: str) -> Path:
        return self.base / self.relative(self.stage)[kind]

    @property
    def figures(self) -> Path:
        return self._path("figures")

    @property
    def tables(self) -> Path:
        return self._path("tables")

    @property
    def numbers(self) -> Path:
        """Every number the report quotes from this stage (JSON)."""
        return self._path("numbers")

    @property
    def metrics(self) -> Path:
        """A few headline numbers for ``dvc metrics`` and ``dvc exp show`` (only stages whose results experiments
        compare declare one)."""
        return self._path("metrics")

    @property
    def data(self) -> Path:
        return self._path("data")


def stage_outputs(stage: str) -> StageFiles:
    """Where ``stage`` writes now: under the output root (the project in the pipeline, scratch by hand)."""
    return StageFiles(stage, output_root())


def stage_inputs(stage: str) -> StageFiles:
    """What the pipeline's ``stage`` wrote: always under the project root."""
    return StageFiles(stage, project_root())


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The whole ``params.yaml`` with its YAML types (a quoted "01" stays a string)."""
    with open(path or project_path("params.yaml"), encoding="utf-8") as handle:
        params = yaml.safe_load(handle)
    if not isinstance(params, dict):
        raise ValueError(f"{path or 'params.yaml'}: expected a mapping of sections")
    return params
