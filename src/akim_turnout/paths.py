"""Project root, standard folders and parameter loading.

Code runs from three places: the DVC stage runner (cwd = project root), papermill kernels (cwd = caller's folder)
and nbval kernels (cwd = the notebook's folder). Every path is therefore resolved from the project root, the first
folder upwards that holds ``dvc.yaml``, never from the current working directory.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT_MARKER = "dvc.yaml"
# Tests point notebook outputs to a scratch folder so nbval never overwrites tracked pipeline outputs.
OUTPUT_ROOT_ENV = "AKIM_OUTPUT_ROOT"
# Test-only switch: a relative size (e.g. "1e-12") by which every non-whole float a stage reads from an earlier
# stage's data is perturbed (akim_turnout.data.read_frame), to show that no output hangs on last bits
# (tests/test_pipeline.py). Nothing in the pipeline sets it, the Makefile unexports it and the runner announces it.
PERTURB_ENV = "AKIM_TEST_PERTURB_INPUTS"


@lru_cache(maxsize=None)
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


def output_path(relative: str | Path, *, mkdir: bool = True) -> Path:
    """An output path under the project root, or under ``$AKIM_OUTPUT_ROOT`` when set (test runs).

    Directories named by ``relative`` (no suffix) are created; for files, the parent folder is created.
    """
    path = Path(relative)
    if not path.is_absolute():
        base = Path(os.environ[OUTPUT_ROOT_ENV]) if os.environ.get(OUTPUT_ROOT_ENV) else project_root()
        path = base / path
    if mkdir:
        (path if not path.suffix else path.parent).mkdir(parents=True, exist_ok=True)
    return path


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The whole ``params.yaml`` with its YAML types (a quoted "01" stays a string)."""
    with open(path or project_path("params.yaml"), encoding="utf-8") as handle:
        params = yaml.safe_load(handle)
    if not isinstance(params, dict):
        raise ValueError(f"{path or 'params.yaml'}: expected a mapping of sections")
    return params


def stage_params(stage: str, path: str | Path | None = None) -> dict[str, Any]:
    """The ``common`` section merged with the stage's own section; a key in both is an error."""
    params = load_params(path)
    if stage not in params:
        raise KeyError(f"params.yaml has no section {stage!r} (sections: {', '.join(sorted(params))})")
    common = params.get("common") or {}
    own = params[stage] or {}
    clash = sorted(set(common) & set(own))
    if clash:
        raise ValueError(f"params.yaml: {', '.join(clash)} set in both 'common' and {stage!r}")
    return {**common, **own}
