"""The sweep's own logic, without DVC: experiment names, reading `dvc queue status`, progress lines. The sweep run
through `dvc queue start` is tested in tests/test_pipeline.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from akim_turnout.pipeline import sweep


@pytest.mark.parametrize(
    ("effect", "family", "name"),
    [(0.0, "glm", "effect0p00-glm"), (-0.15, "gee", "effect-0p15-gee"), (-0.3, "mixedlm", "effect-0p30-mixedlm")],
)
def test_experiment_names_are_git_ref_safe(effect: float, family: str, name: str) -> None:
    assert sweep.experiment_name(effect, family) == name


STATUS = """\
Task     Name              Created    Status
1a2b3c4  effect0p00-glm    12:00 PM   Success
5d6e7f8  effect-0p15-gee   12:00 PM   Running
9a8b7c6  other-experiment  11:00 AM   Failed
"""


def test_queue_states_reads_only_the_named_experiments() -> None:
    states = sweep.queue_states(STATUS, ["effect0p00-glm", "effect-0p15-gee"])
    assert states == {"effect0p00-glm": "Success", "effect-0p15-gee": "Running"}


def test_progress_counts_seconds_from_the_start_of_the_queue(monkeypatch, capsys) -> None:
    replies = iter([STATUS, STATUS.replace("Running", "Failed")])
    monkeypatch.setattr(sweep, "dvc", lambda *args, cwd: next(replies))
    monkeypatch.setattr(sweep.time, "sleep", lambda seconds: None)
    started = time.monotonic() - 42.4
    states = sweep.wait_for_queue(["effect0p00-glm", "effect-0p15-gee"], Path("."), 900, started=started)
    assert states == {"effect0p00-glm": "Success", "effect-0p15-gee": "Failed"}
    assert capsys.readouterr().out.splitlines() == [
        "[1/2] effect0p00-glm: success (42 s)",
        "[2/2] effect-0p15-gee: failed (42 s)",
    ]


def test_waiting_past_the_timeout_raises(monkeypatch) -> None:
    monkeypatch.setattr(sweep, "dvc", lambda *args, cwd: STATUS)
    monkeypatch.setattr(sweep.time, "sleep", lambda seconds: None)
    with pytest.raises(TimeoutError, match="experiments still running after 10 s"):
        sweep.wait_for_queue(["effect-0p15-gee"], Path("."), 10, started=time.monotonic() - 11)


def test_dvc_runs_with_this_environments_bin_first_on_path(monkeypatch) -> None:
    """DVC starts its queue workers as a bare `dvc`: from a shell without the environment on PATH they must still
    find this environment's dvc."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert sweep.environment()["PATH"] == f"{Path(sys.executable).parent}:/usr/bin:/bin"
    monkeypatch.delenv("PATH")
    assert sweep.environment()["PATH"] == f"{Path(sys.executable).parent}:{os.defpath}"
    monkeypatch.setenv("PATH", f"/usr/bin:{Path(sys.executable).parent}")
    assert sweep.environment()["PATH"] == f"/usr/bin:{Path(sys.executable).parent}", "already there: left alone"


# The command prints a line and starts a background child that inherits its standard output and lives on until the
# test creates the file `release`: as `dvc queue start` does with its queue worker.
WAITS = "import pathlib, time\\nwhile not pathlib.Path('release').exists(): time.sleep(0.05)"
LEAVES_A_CHILD = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "{WAITS}"])
print("started", child.pid, flush=True)
print("a warning", file=sys.stderr)
"""


def test_a_command_that_leaves_a_background_child_returns_at_once(tmp_path: Path) -> None:
    """The cause of `make sweep` printing nothing until all experiments were done: reading the output of `dvc queue
    start` through a pipe waits for the queue worker, which holds the pipe open until the queue is empty."""
    code, out, err = sweep.run_detached([sys.executable, "-c", LEAVES_A_CHILD], tmp_path)
    try:
        assert code == 0 and err == "a warning\n"
        words = out.split()
        assert words[0] == "started" and len(words) == 2
        pid = int(words[1])
        os.kill(pid, 0)  # the child is still running: the call did not wait for it
    finally:
        (tmp_path / "release").touch()
    deadline = time.monotonic() + 30  # the released child ends by itself; do not leave it to the next test
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)


def test_a_failing_dvc_call_raises_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"dvc queue status failed:[\s\S]*not inside of a DVC repository"):
        sweep.dvc("queue", "status", cwd=tmp_path)


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="only a virtual environment's Python puts its bin on PATH")
def test_the_environments_python_puts_its_bin_first_on_path() -> None:
    """Installed by `make env` (bin/venv-bin-on-path.pth): what lets a bare `.venv/bin/dvc queue start` work."""
    bin_dir = str(Path(sys.executable).parent)
    shown = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['PATH'])"],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == f"{bin_dir}:/usr/bin:/bin", "run `make env` to install bin/venv-bin-on-path.pth into .venv"
    again = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['PATH'])"],
        env={"PATH": f"/usr/bin:{bin_dir}:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert again == f"/usr/bin:{bin_dir}:/bin", "already on PATH: left as it is"


STAGE = """\
stages:
  square:
    cmd: echo $(( ${x} * ${x} )) > out.txt
    params: [x]
    outs: [out.txt]
"""


@pytest.mark.pipeline
def test_a_queued_experiment_finishes_from_a_shell_without_the_environment(tmp_path: Path) -> None:
    """`.venv/bin/dvc queue start` from a shell whose PATH is /usr/bin:/bin, on a one-stage repository (seconds,
    not the pipeline's minutes); the sweep's own DVC calls run in the same shell."""
    dvc = str(Path(sys.executable).parent / "dvc")
    shell = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    shell["PATH"] = "/usr/bin:/bin"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text("x: 3\n")
    (repo / "dvc.yaml").write_text(STAGE)
    (repo / ".gitignore").write_text("out.txt\n")
    for command in (
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "one stage"],
        [dvc, "exp", "run", "--queue", "-q", "--name", "seven", "-S", "x=7"],
        [dvc, "queue", "start", "-j", "1"],
    ):
        subprocess.run(command, cwd=repo, env=shell, check=True, capture_output=True, timeout=120)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = "/usr/bin:/bin"
    try:
        states = sweep.wait_for_queue(["seven"], repo, timeout_s=120, poll_s=0.5)
        assert states == {"seven": "Success"}
        shown = json.loads(sweep.dvc("exp", "show", "--json", cwd=repo))
    finally:
        os.environ["PATH"] = old_path
        subprocess.run([dvc, "queue", "stop"], cwd=repo, env=shell, capture_output=True, timeout=120)
    params = [
        revision["data"]["params"]["params.yaml"]["data"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for revision in experiment["revs"]
        if revision.get("name") == "seven"
    ]
    assert params == [{"x": 7}]
