"""Run one DVC stage: execute its notebook with papermill, parameters from ``params.yaml``.

Usage (from ``dvc.yaml``)::

    python -m akim_turnout.run_notebook STAGE NOTEBOOK EXECUTED_NOTEBOOK

The runner refuses parameters the notebook does not declare and declared parameters that ``params.yaml`` does not
set (papermill itself only warns, so a typo would silently run the defaults), checks that ``dvc.yaml`` lists every
project module the stage imports (:mod:`pipeline.deps`), creates the stage's output folders (DVC deletes them
before a run), executes from the project root with the kernel of the current environment, strips volatile metadata
so the executed notebook is byte-stable, and reports a failing cell in one line.

Every parameter value is checked (:mod:`pipeline.parameters`) before the kernel starts. The stage's outputs go
under the project root (the runner sets ``AKIM_OUTPUT_ROOT`` for the kernel; notebooks run by hand write to
``scratch/``). If the stage fails or is interrupted (Ctrl-C, SIGTERM), the kernel is stopped, half-written outputs
are removed and the outputs ``dvc.lock`` records for the stage are restored from the DVC cache (where the cache
holds them; otherwise they stay absent and ``dvc checkout`` restores them), and the exit status is non-zero, so
DVC records nothing as done and stops the pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from akim_turnout.pipeline.deps import DependencyMismatch, check_pipeline
from akim_turnout.pipeline.parameters import ParameterError, check_stage, stage_params
from akim_turnout.pipeline.paths import OUTPUT_ROOT_ENV, PERTURB_ENV, SCRATCH, project_root

# Metadata that changes on every run (timestamps, durations) or names the machine.
VOLATILE_NOTEBOOK_KEYS = ("papermill",)
VOLATILE_CELL_KEYS = ("papermill", "execution")
MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
STATSMODELS_CLOCK = re.compile(r"^(Date|Time):( +)\S.*$", re.MULTILINE)


class ParameterMismatch(ValueError):
    """``params.yaml`` and the notebook's parameters cell disagree."""


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and exception in one line. ``details`` holds the
    further lines of the exception's message (e.g. every problem a data check found), printed after it."""

    def __init__(self, message: str, details: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.details = tuple(details)


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
        output["text"] = _clean_text(
            "".join(output["text"]) if isinstance(output["text"], list) else output["text"], root
        )
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
            str(notebook),
            str(executed),
            parameters=dict(params),
            kernel_name="python3",
            cwd=str(root),
            progress_bar=False,
            log_output=False,
            # the kernel's own log (a TCP transport notice, a KeyboardInterrupt logged when it is shut down) says
            # nothing about the stage; errors in cells reach the runner as messages all the same
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except PapermillExecutionError as error:
        kept = root / SCRATCH / "failed" / executed.name  # the executed copy itself is an output, restored below
        if executed.exists():
            strip_volatile_file(executed, root)
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(executed, kept)
        reason, *details = error.evalue.strip().splitlines() or [""]
        raise StageFailed(
            f"stage '{stage}': {notebook.relative_to(root)} failed in cell {error.exec_count} "
            f"({error.ename}: {reason}); full traceback in {kept.relative_to(root)}",
            details,
        ) from None
    if executed.exists():
        strip_volatile_file(executed, root)


def _dvc_cache(root: Path) -> Path:
    """The md5 object folder of the project's DVC cache (``cache.dir`` of .dvc/config, else .dvc/cache)."""
    folder = root / ".dvc" / "cache"
    for config in (root / ".dvc" / "config", root / ".dvc" / "config.local"):
        text = config.read_text(encoding="utf-8") if config.is_file() else ""
        section = re.search(r"^\[cache\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
        setting = re.search(r"^\s*dir\s*=\s*(.+?)\s*$", section.group(1), re.MULTILINE) if section else None
        if setting:
            folder = (root / ".dvc" / setting.group(1)).resolve()
    return folder / "files" / "md5"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def restore_outputs(stage: str, root: Path) -> bool:
    """Remove whatever the stage wrote and put back the outputs ``dvc.lock`` records, copied from the DVC cache.

    Returns True when every recorded output was restored; otherwise the outputs are left absent (never
    half-written) and ``dvc checkout`` restores them once the cache has them.
    """
    declared = stage_output_paths(stage, root / "dvc.yaml")
    for relative in declared:
        _remove(root / relative)
    lock = root / "dvc.lock"
    entry = (
        (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage)
        if lock.is_file()
        else None
    )
    recorded = {out["path"]: out.get("md5", "") for out in (entry or {}).get("outs", [])}
    if not entry or set(recorded) != set(declared):
        return False
    cache = _dvc_cache(root)
    objects = lambda md5: cache / md5[:2] / md5[2:]  # noqa: E731
    try:
        for relative, md5 in recorded.items():
            if md5.endswith(".dir"):
                for item in json.loads(objects(md5).read_text(encoding="utf-8")):
                    target = root / relative / item["relpath"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(objects(item["md5"]), target)
            else:
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(objects(md5), root / relative)
    except (OSError, ValueError, KeyError):
        for relative in declared:
            _remove(root / relative)
        return False
    return True


def _failure_note(stage: str, root: Path) -> str:
    if restore_outputs(stage, root):
        return f"the outputs of '{stage}' are as before this run"
    return f"no half-written outputs were kept; 'dvc checkout {stage}' restores its last good outputs"


def _on_interrupt(stage: str, root: Path):
    """A signal handler stopping the kernel (and its workers), restoring the outputs and exiting non-zero."""

    def handler(signum: int, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        import psutil

        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        note = _failure_note(stage, root)
        print(
            f"error: stage '{stage}' interrupted ({signal.Signals(signum).name}); {note}", file=sys.stderr, flush=True
        )
        os._exit(130)

    return handler


def run_stage(stage: str, notebook: str, executed: str, *, root: Path | None = None) -> Path:
    """Check everything, then execute the stage's notebook (one line on success); on failure restore the outputs
    and re-raise."""
    root = root or project_root(Path.cwd())
    notebook_path, executed_path = root / notebook, root / executed
    outputs = stage_output_paths(stage, root / "dvc.yaml")  # KeyError for a stage dvc.yaml does not have
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_interrupt(stage, root))
    try:
        params = stage_params(stage, root / "params.yaml")
        check_parameters(params, declared_parameters(notebook_path), stage=stage, notebook=notebook)
        check_stage(stage, params)
        check_pipeline(root, [stage])
        if os.environ.get(PERTURB_ENV):
            print(
                f"note: {PERTURB_ENV}={os.environ[PERTURB_ENV]} is set: inputs are perturbed (a test switch)",
                file=sys.stderr,
            )
        os.environ[OUTPUT_ROOT_ENV] = str(root)  # the kernel writes into the pipeline's folders
        create_output_folders([executed, *outputs], root)
        started = time.monotonic()
        execute(stage, notebook_path, executed_path, root, params)
        print(f"stage '{stage}': {notebook} ran in {time.monotonic() - started:.1f} s", flush=True)
    except RUNNER_ERRORS as error:
        extra = (getattr(error, "details", ()),) if isinstance(error, StageFailed) else ()
        raise type(error)(f"{_message(error)}; {_failure_note(stage, root)}", *extra) from None
    return executed_path


RUNNER_ERRORS = (ParameterMismatch, ParameterError, DependencyMismatch, StageFailed, KeyError, FileNotFoundError)


def _message(error: Exception) -> str:
    return error.args[0] if isinstance(error, KeyError) and error.args else str(error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="stage name: its section of params.yaml and its entry in dvc.yaml")
    parser.add_argument("notebook", help="clean notebook, relative to the project root")
    parser.add_argument("executed", help="where the executed notebook goes, relative to the project root")
    args = parser.parse_args(argv)
    try:
        run_stage(args.stage, args.notebook, args.executed)
    except RUNNER_ERRORS as error:
        print(f"error: {_message(error)}", *getattr(error, "details", ()), sep="\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
