"""Make targets a researcher uses besides reproduce and test: lab (as root or not) and clean."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from akim_turnout.pipeline.paths import project_root

ROOT = project_root()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_starts_jupyterlab_for_this_user(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    args = f"--no-browser --ServerApp.port={port} --ServerApp.ip=127.0.0.1 --ServerApp.token=test"
    process = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log, deadline = "", time.monotonic() + 90
    try:
        while time.monotonic() < deadline and f"127.0.0.1:{port}/lab" not in log:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            log += line
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    assert f"127.0.0.1:{port}/lab" in log, log[-3000:]
    assert "Running as root is not recommended" not in log


def test_make_clean_removes_outputs_and_nothing_tracked(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for relative in filter(None, listed.split("\0")):
        if (ROOT / relative).is_file():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, copy / relative)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=copy, check=True, capture_output=True)
    outputs = [
        "reports/report.html",
        "reports/figures/ingest/coverage_2021.png",
        "reports/metrics/ingest.json",
        "reports/notebooks/01_ingest.ipynb",
        "data/processed/ingest/national.parquet",
        "data/processed/simulation_study/results.parquet",
        "scratch/reports/figures/forensics/a.png",
        ".venv/bin/python",
    ]
    for relative in outputs:
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_text("x")
    result = subprocess.run(["make", "-s", "clean"], cwd=copy, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [relative for relative in outputs if (copy / relative).exists()] == []
    assert subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout == ""
    assert (copy / "reports/figures/.gitignore").is_file() and (copy / "data/raw/regional.csv").is_file()
