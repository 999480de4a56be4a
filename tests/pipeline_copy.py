"""A temporary copy of the repository for the pipeline tests, and the commands run in it as from a reader's shell
after `git clone`: no Python environment activated, the copy's own .venv (or one given) first on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from akim_turnout.pipeline.paths import PERTURB_ENV, project_root

ROOT = project_root()


def shell_without_environment() -> dict[str, str]:
    """The caller's environment with no Python environment activated: a reader's shell after `git clone`."""
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != ours and "/.venv/" not in p + "/")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "CONDA_PREFIX", "AKIM_OUTPUT_ROOT", PERTURB_ENV)
    }
    return {**env, "PATH": path}


def run(
    args: list[str],
    cwd: Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    venv: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run a command in the copy with the copy's own environment (its .venv/bin first on PATH)."""
    base = shell_without_environment()
    base["PATH"] = f"{(venv or cwd / '.venv') / 'bin'}{os.pathsep}{base['PATH']}"
    result = subprocess.run(args, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def copy_repository(destination: Path) -> Path:
    """Copy the files git tracks or would track (not venvs, caches or outputs) and commit them in a new repo."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination


def share_dvc_cache(source: Path, copy: Path) -> None:
    """Give the copy the source's DVC cache as hard links (objects and run cache; DVC never rewrites a cached file).
    On another file system, where hard links cannot be made, the copy starts without a cache."""
    cache, target = source / ".dvc" / "cache", copy / ".dvc" / "cache"
    if cache.is_dir() and subprocess.run(["cp", "-al", str(cache), str(target)], capture_output=True).returncode:
        shutil.rmtree(target, ignore_errors=True)


def lock_outputs(lock_text: str) -> dict[str, str]:
    """Every output path recorded in a dvc.lock with its md5."""
    stages = yaml.safe_load(lock_text)["stages"]
    return {out["path"]: out["md5"] for entry in stages.values() for out in entry.get("outs", [])}


def numpy_dispatch_off() -> dict[str, str]:
    """NPY_DISABLE_CPU_FEATURES switching off numpy's SIMD paths above the baseline, where this machine has them."""
    from numpy._core._multiarray_umath import __cpu_features__

    found = [name for name in ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR") if __cpu_features__.get(name)]
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(found)} if found else {}
