"""The sweep's own logic, without DVC: experiment names, reading `dvc queue status`, progress lines. The sweep run
through `dvc queue start` is tested in tests/test_pipeline.py."""

from __future__ import annotations

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
