"""Run one DVC stage: execute its notebook with papermill, parameters from ``params.yaml``.

Usage (from ``dvc.yaml``)::

    python -m akim_turnout.run_notebook STAGE NOTEBOOK EXECUTED_NOTEBOOK

The runner refuses parameters the notebook does not declare and declared parameters that ``params.yaml`` does not
set (papermill itself only warns, so a typo would silently run the defaults), checks that ``dvc.yaml`` lists every
project module the stage imports (:mod:`akim_turnout.deps`), creates the stage's output folders (DVC deletes them
before a run), executes from the project root with the kernel of the current environment, strips volatile metadata
so the executed notebook is byte-stable, and reports a failing cell in one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from akim_turnout.deps import DependencyMismatch, check_pipeline
from akim_turnout.paths import PERTURB_ENV, project_root, stage_params

# Metadata that changes on every run (timestamps, durations) or names the machine.
VOLATILE_NOTEBOOK_KEYS = ("papermill",)
VOLATILE_CELL_KEYS = ("papermill", "execution")
MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
STATSMODELS_CLOCK = re.compile(r"^(Date|Time):( +)\S.*$", re.MULTILINE)


class ParameterMismatch(ValueError):
    """``params.yaml`` and the notebook's parameters cell disagree."""


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and exception."""


def check_parameters(given: Mapping[str, Any], declared: Iterable[str], *, stage: str, notebook: str) -> None:
    """Fail, naming each parameter, when ``given`` and ``declared`` differ."""
    declared = set(declared)
    unknown = sorted(set(given) - declared)
    missing = sorted(declared - set(given))
    problems = [f"unknown parameter '{name}' (not in the parameters cell of {notebook})" for name in unknown]
    problems += [f"missing parameter '{name}' (declared in {notebook}, not set in params.yaml)" for name in missing]
    if problems:
        raise ParameterMismatch(f"stage '{stage}': " + "; ".join(problems))


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters cell of ``notebook`` as papermill reads it (name -> info)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def stage_output_paths(stage: str, dvc_yaml: Path) -> list[str]:
    """The ``outs``, ``metrics`` and ``plots`` paths DVC declares for ``stage``."""
    with open(dvc_yaml, encoding="utf-8") as handle:
        stages = (yaml.safe_load(handle) or {}).get("stages", {})
    if stage not in stages:
        raise KeyError(f"{dvc_yaml.name} has no stage {stage!r}")
    paths = []
    for key in ("outs", "metrics", "plots"):
        for entry in stages[stage].get(key, []) or []:
            paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def create_output_folders(paths: Iterable[str], root: Path) -> None:
    """Create each declared folder (no suffix) or each file's parent folder."""
    for relative in paths:
        path = root / relative
        (path.parent if path.suffix else path).mkdir(parents=True, exist_ok=True)


def _clean_text(text: str, root: str | None = None) -> str:
    if root:  # warnings print absolute paths of the checkout or its venv; the same run elsewhere must match
        text = text.replace(root, "<project>")
    return STATSMODELS_CLOCK.sub(lambda m: f"{m.group(1)}:{m.group(2)}(removed)", MEMORY_ADDRESS.sub(" at 0x…", text))


def _clean_output(output: dict, root: str | None) -> None:
    if "text" in output:
        output["text"] = _clean_text("".join(output["text"]) if isinstance(output["text"], list) else output["text"], root)
    for mime, value in (output.get("data") or {}).items():
        if mime.startswith("text/"):
            output["data"][mime] = _clean_text("".join(value) if isinstance(value, list) else value, root)
    if "traceback" in output:
        output["traceback"] = [_clean_text(line, root) for line in output["traceback"]]


def strip_volatile(notebook: dict, root: str | Path | None = None) -> dict:
    """Remove run timestamps, durations, random cell ids, memory addresses and the checkout's absolute path from an
    executed notebook (in place)."""
    root = str(root) if root else None
    for key in VOLATILE_NOTEBOOK_KEYS:
        notebook.get("metadata", {}).pop(key, None)
    for cell in notebook.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"  # papermill gives it a random id on every run
        for key in VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
        for output in cell.get("outputs", []):
            _clean_output(output, root)
    return notebook


def strip_volatile_file(path: Path, root: Path | None = None) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    strip_volatile(notebook, root)
    nbformat.write(notebook, path)


def execute(stage: str, notebook: Path, executed: Path, root: Path, params: Mapping[str, Any]) -> None:
    """Execute ``notebook`` into ``executed`` with ``params``; raise StageFailed with a one-line message."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Thousands of small fits: multi-threaded BLAS only adds contention on a small machine (30x slower when busy).
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    # The kernelspec 'python3' runs `python` from PATH: make it this environment's interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), parameters=dict(params), kernel_name="python3",
            cwd=str(root), progress_bar=False, log_output=False,
        )
    except PapermillExecutionError as error:
        raise StageFailed(
            f"stage '{stage}': {notebook.relative_to(root)} failed in cell {error.exec_count} "
            f"({error.ename}); full traceback in {executed.relative_to(root)}\n{error.evalue.strip()}"
        ) from None
    finally:
        if executed.exists():
            strip_volatile_file(executed, root)


def run_stage(stage: str, notebook: str, executed: str, *, root: Path | None = None) -> Path:
    root = root or project_root(Path.cwd())
    notebook_path, executed_path = root / notebook, root / executed
    params = stage_params(stage, root / "params.yaml")
    check_parameters(params, declared_parameters(notebook_path), stage=stage, notebook=notebook)
    check_pipeline(root, [stage])
    if os.environ.get(PERTURB_ENV):
        print(f"note: {PERTURB_ENV}={os.environ[PERTURB_ENV]} is set: inputs are perturbed (a test switch)", file=sys.stderr)
    create_output_folders([executed, *stage_output_paths(stage, root / "dvc.yaml")], root)
    execute(stage, notebook_path, executed_path, root, params)
    return executed_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="stage name: its section of params.yaml and its entry in dvc.yaml")
    parser.add_argument("notebook", help="clean notebook, relative to the project root")
    parser.add_argument("executed", help="where the executed notebook goes, relative to the project root")
    args = parser.parse_args(argv)
    try:
        run_stage(args.stage, args.notebook, args.executed)
    except (ParameterMismatch, DependencyMismatch, StageFailed, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
