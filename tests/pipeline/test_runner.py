"""The notebook runner: typed parameters, strict parameter checks, output folders, byte-stable results, errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from akim_turnout.pipeline import parameters
from akim_turnout.pipeline import runner as run_notebook
from akim_turnout.pipeline.parameters import Rule
from akim_turnout.pipeline.runner import ParameterMismatch, StageFailed, check_parameters, strip_volatile

PARAMETERS = {
    "code": "01",
    "count": 3,
    "ratio": 0.5,
    "flag": True,
    "names": ["a", "b"],
    "out_file": "out/deep/result.json",
}


def _notebook(cells: list[tuple[str, str, list[str]]]) -> dict:
    return {
        "cells": [
            {
                "cell_type": kind,
                "id": f"c{i}",
                "metadata": {"tags": tags} if tags else {},
                "source": source,
                **({"execution_count": None, "outputs": []} if kind == "code" else {}),
            }
            for i, (kind, source, tags) in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


PARAMETERS_CELL = textwrap.dedent("""\
    code = "x"
    count = 0
    ratio = 0.0
    flag = False
    names = []
    out_file = "unused.json"
""")
BODY = textwrap.dedent("""\
    import json, pathlib
    pathlib.Path(out_file).write_text(json.dumps({k: [type(v).__name__, v] for k, v in
        dict(code=code, count=count, ratio=ratio, flag=flag, names=names).items()}))
    print(object())
""")


DEMO_RULES = {
    "code": Rule("text"),
    "count": parameters.integer(0, 10),
    "ratio": parameters.number(0, 1),
    "flag": Rule("boolean"),
    "names": Rule("list", item=Rule("text")),
    "out_file": Rule("text"),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A minimal project: dvc.yaml with one stage, params.yaml with its rules, and a notebook."""
    monkeypatch.setattr(parameters, "SCHEMA", {"common": {}, "demo": DEMO_RULES})
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "stage.ipynb").write_text(
        json.dumps(
            _notebook([("markdown", "# test", []), ("code", PARAMETERS_CELL, ["parameters"]), ("code", BODY, [])])
        )
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"common": {}, "demo": PARAMETERS}))
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "demo": {
                        "cmd": "python -m akim_turnout.run_notebook demo notebooks/stage.ipynb reports/nb/stage.ipynb",
                        "outs": ["out/deep", "reports/nb/stage.ipynb"],
                        "metrics": ["reports/metrics/demo.json"],
                    }
                }
            }
        )
    )
    return tmp_path


def test_yaml_types_reach_the_notebook_and_folders_are_created(project: Path) -> None:
    executed = run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project)
    seen = json.loads((project / "out/deep/result.json").read_text())
    assert seen == {
        "code": ["str", "01"],
        "count": ["int", 3],
        "ratio": ["float", 0.5],
        "flag": ["bool", True],
        "names": ["list", ["a", "b"]],
    }
    assert executed.is_file()
    assert (project / "reports/metrics").is_dir(), "metrics folder declared in dvc.yaml must be created"


def test_executed_notebook_is_stripped_and_byte_stable(project: Path) -> None:
    first = run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project).read_bytes()
    second = run_notebook.run_stage(
        "demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project
    ).read_bytes()
    assert first == second
    notebook = json.loads(first)
    assert "papermill" not in notebook["metadata"]
    assert all("execution" not in c["metadata"] and "papermill" not in c["metadata"] for c in notebook["cells"])
    text = json.dumps(notebook, ensure_ascii=False)
    assert "object object at 0x…" in text and "at 0x7" not in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["demo"].update(coutn=3), "unknown parameter 'coutn'"),
        (lambda p: p["demo"].pop("ratio"), "missing parameter 'ratio'"),
        (lambda p: p["common"].update(dpi=100), "unknown parameter 'dpi'"),
    ],
)
def test_parameter_mismatch_names_the_parameter(project: Path, capsys, change, expected) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParameterMismatch, match=expected):
        run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project)


def test_cli_exits_non_zero_with_one_line_naming_the_typo(project: Path, capsys, monkeypatch) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["demo"]["cuont"] = params["demo"].pop("count")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    assert run_notebook.main(["demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb"]) == 1
    err = capsys.readouterr().err
    assert "unknown parameter 'cuont'" in err and "missing parameter 'count'" in err and "stage 'demo'" in err


def test_failing_cell_reports_notebook_cell_and_exception(project: Path) -> None:
    notebook = json.loads((project / "notebooks/stage.ipynb").read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "id": "boom",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "raise ValueError('bad row 7 in turnout')",
        }
    )
    (project / "notebooks/stage.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(StageFailed) as failure:
        run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project)
    message = str(failure.value)
    assert message.startswith(
        "stage 'demo': notebooks/stage.ipynb failed in cell 4 (ValueError: bad row 7 in turnout); "
        "full traceback in scratch/failed/stage.ipynb; "
    )
    assert "\n" not in message and "Traceback" not in message
    assert "Traceback" in (project / "scratch/failed/stage.ipynb").read_text()
    # the third cell had written out/deep/result.json: half-written outputs are not kept (no dvc.lock to restore from)
    assert not (project / "out/deep").exists() and not (project / "reports/nb/stage.ipynb").exists()
    assert message.endswith("no half-written outputs were kept; 'dvc checkout demo' restores its last good outputs")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("count", -5, "parameter 'count' must be an integer from 0 to 10, got -5"),
        ("count", "abc", "parameter 'count' must be an integer from 0 to 10, got 'abc'"),
        ("count", 11, "parameter 'count' must be an integer from 0 to 10, got 11"),
        ("ratio", 1.5, "parameter 'ratio' must be a number from 0 to 1, got 1.5"),
        ("flag", "yes", "parameter 'flag' must be true or false, got 'yes'"),
    ],
)
def test_bad_values_stop_the_stage_before_the_kernel_starts(project: Path, key, value, expected) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["demo"][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(parameters.ParameterError) as failure:
        run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project)
    assert str(failure.value).startswith(f"stage 'demo': {expected}; ")
    assert not (project / "reports/nb/stage.ipynb").exists(), "nothing ran"


def _cache_object(cache: Path, content: bytes) -> str:
    import hashlib

    md5 = hashlib.md5(content).hexdigest()
    (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
    (cache / md5[:2] / md5[2:]).write_bytes(content)
    return md5


def test_failed_stage_gets_its_recorded_outputs_back_from_the_dvc_cache(project: Path) -> None:
    """DVC deletes a stage's outputs before running it; on failure the runner puts back what dvc.lock records."""
    cache = project / ".dvc/cache/files/md5"
    result = _cache_object(cache, b'{"old": true}')
    listing = json.dumps([{"md5": result, "relpath": "result.json"}]).encode()
    directory = _cache_object(cache, listing)
    executed = _cache_object(cache, b"{}")
    metrics = _cache_object(cache, b'{"n": 1}')
    (project / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "demo": {
                        "outs": [
                            {"path": "out/deep", "md5": directory[:32] + ".dir"},
                            {"path": "reports/nb/stage.ipynb", "md5": executed},
                            {"path": "reports/metrics/demo.json", "md5": metrics},
                        ]
                    }
                },
            }
        )
    )
    (cache / directory[:2] / directory[2:]).rename(cache / directory[:2] / (directory[2:] + ".dir"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["demo"]["count"] = -1
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "out/deep").mkdir(parents=True)
    (project / "out/deep/partial.txt").write_text("half-written")
    with pytest.raises(parameters.ParameterError, match="the outputs of 'demo' are as before this run$"):
        run_notebook.run_stage("demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb", root=project)
    assert sorted(p.name for p in (project / "out/deep").iterdir()) == ["result.json"]
    assert (project / "out/deep/result.json").read_bytes() == b'{"old": true}'
    assert (project / "reports/metrics/demo.json").read_bytes() == b'{"n": 1}'


def test_check_parameters_accepts_an_exact_match_and_names_a_near_miss() -> None:
    check_parameters({"a": 1, "b": "01"}, ["a", "b"], stage="s", notebook="n.ipynb")  # raises on any mismatch
    with pytest.raises(ParameterMismatch) as error:
        check_parameters({"a": 1, "bb": "01"}, ["a", "b"], stage="s", notebook="n.ipynb")
    assert str(error.value) == (
        "stage 's': unknown parameter 'bb' (not in the parameters cell of n.ipynb); "
        "missing parameter 'b' (declared in n.ipynb, not set in params.yaml)"
    )


def test_strip_volatile_removes_timestamps_and_statsmodels_clock() -> None:
    notebook = {
        "metadata": {"papermill": {"start_time": "2026"}},
        "cells": [
            {
                "metadata": {"execution": {"iopub.status.busy": "2026"}, "papermill": {"duration": 1.2}, "tags": ["x"]},
                "outputs": [
                    {
                        "output_type": "stream",
                        "text": [
                            "Date:                Sat, 28 Nov 2026\n",
                            "Time:                14:03:59\n",
                            "<f at 0x7f00ab>\n",
                            "/tmp/checkout/.venv/lib/site.py:21: Warning\n",
                        ],
                    }
                ],
            }
        ],
    }
    cleaned = strip_volatile(notebook, "/tmp/checkout")
    cell = cleaned["cells"][0]
    assert cleaned["metadata"] == {} and cell["metadata"] == {"tags": ["x"]}
    assert "2026" not in cell["outputs"][0]["text"] and "0x7f00ab" not in cell["outputs"][0]["text"]
    assert cell["outputs"][0]["text"].startswith(
        "Date:                (removed)\nTime:                (removed)\n<f at 0x…>\n"
    )
    assert (
        "<project>/.venv/lib/site.py:21" in cell["outputs"][0]["text"]
        and "/tmp/checkout" not in cell["outputs"][0]["text"]
    )


def test_cli_prints_every_line_of_a_multi_line_error(project: Path, capsys, monkeypatch) -> None:
    notebook = json.loads((project / "notebooks/stage.ipynb").read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "id": "boom",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "raise ValueError('2 problems in the input data:\\n  a.csv:2: bad\\n  a.csv:3: bad')",
        }
    )
    (project / "notebooks/stage.ipynb").write_text(json.dumps(notebook))
    monkeypatch.chdir(project)
    assert run_notebook.main(["demo", "notebooks/stage.ipynb", "reports/nb/stage.ipynb"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        "error: stage 'demo': notebooks/stage.ipynb failed in cell 4 "
        "(ValueError: 2 problems in the input data:); full traceback in scratch/failed/stage.ipynb"
    )
    assert err[1:] == ["  a.csv:2: bad", "  a.csv:3: bad"]
