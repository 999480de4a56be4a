"""Each stage's deps in dvc.yaml are exactly the project modules its notebook and command import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from akim_turnout.pipeline import deps
from akim_turnout.pipeline.paths import project_root
from akim_turnout.pipeline.runner import main as run_main

ROOT = project_root()


def test_every_stage_lists_exactly_the_modules_it_imports() -> None:
    deps.check_pipeline(ROOT)  # raises DependencyMismatch naming stage and module otherwise


def test_closure_follows_imports_through_modules() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    study = deps.stage_modules(ROOT, stages["simulation_study"])
    # the study notebook imports study, which imports race, simulate and fastfit; importing any module runs __init__
    assert {
        "src/akim_turnout/study/replications.py",
        "src/akim_turnout/models/race.py",
        "src/akim_turnout/study/simulate.py",
        "src/akim_turnout/models/fastfit.py",
        "src/akim_turnout/models/inference.py",
        "src/akim_turnout/__init__.py",
        "src/akim_turnout/pipeline/runner.py",
    } <= set(study)
    report = deps.stage_modules(ROOT, stages["report"])
    assert {
        "src/akim_turnout/report/html.py",
        "src/akim_turnout/report/tables.py",
        "src/akim_turnout/report/labels.py",
    } <= set(report)
    assert not {
        "src/akim_turnout/study/replications.py",
        "src/akim_turnout/models/race.py",
        "src/akim_turnout/models/forensics.py",
    } & set(report)


def test_import_forms() -> None:
    source = (
        "import akim_turnout.models.race as m\nfrom akim_turnout.pipeline import paths, outputs\nimport numpy\n"
        "def f():\n    from akim_turnout.study.replications import METHODS\n"
    )
    assert deps.imported_modules(source) == {
        "akim_turnout.models.race",
        "akim_turnout.pipeline",
        "akim_turnout.pipeline.paths",
        "akim_turnout.pipeline.outputs",
        "akim_turnout.study.replications",
        "akim_turnout.study.replications.METHODS",
    }
    relative = "from . import outputs\nfrom ..models.race import x\n"
    assert deps.imported_modules(relative, "akim_turnout.pipeline.paths") == {
        "akim_turnout.pipeline",
        "akim_turnout.pipeline.outputs",
        "akim_turnout.models.race",
        "akim_turnout.models.race.x",
    }


def _fixture_project(tmp_path: Path, extra_import: str) -> Path:
    """A copy of the project's dvc.yaml, src and notebooks where the forensics notebook imports one more module."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    path = tmp_path / "notebooks/06_forensics.ipynb"
    notebook = json.loads(path.read_text())
    code = next(c for c in notebook["cells"] if c["cell_type"] == "code" and "import" in "".join(c["source"]))
    code["source"] = [f"{extra_import}\n", *code["source"]]
    path.write_text(json.dumps(notebook))
    return tmp_path


def test_a_notebook_importing_an_undeclared_module_fails_naming_stage_and_module(tmp_path) -> None:
    project = _fixture_project(tmp_path, "from akim_turnout.study import replications")
    with pytest.raises(deps.DependencyMismatch) as caught:
        deps.check_pipeline(project)
    message = str(caught.value)
    assert (
        "stage 'forensics' imports src/akim_turnout/study/replications.py but dvc.yaml does not list it in its deps"
        in message
    )
    # study brings race, inference and simulate with it
    assert "stage 'forensics' imports src/akim_turnout/models/race.py" in message
    assert "stage 'regional_model'" not in message


def test_a_declared_module_the_stage_does_not_import_is_refused(tmp_path) -> None:
    project = _fixture_project(tmp_path, "")
    dvc = yaml.safe_load((project / "dvc.yaml").read_text())
    dvc["stages"]["ingest"]["deps"].append("src/akim_turnout/study/replications.py")
    (project / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    with pytest.raises(
        deps.DependencyMismatch,
        match="stage 'ingest' lists src/akim_turnout/study/replications.py in its deps but does not import it",
    ):
        deps.check_pipeline(project, ["ingest"])


def test_the_runner_refuses_a_stage_with_missing_deps(tmp_path, monkeypatch, capsys) -> None:
    project = _fixture_project(tmp_path, "import akim_turnout.study.replications")
    monkeypatch.chdir(project)
    assert run_main(["forensics", "notebooks/06_forensics.ipynb", "reports/notebooks/06_forensics.ipynb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: stage 'forensics' imports src/akim_turnout/") and "study/replications.py" in err
    assert not (project / "reports").exists(), "nothing is run or created before the check"


def test_reads_of_earlier_outputs_are_found_in_every_form() -> None:
    source = """
from akim_turnout.pipeline.paths import stage_inputs
ingest, study_stage = stage_inputs("ingest"), stage_inputs("simulation_study")
race_stage = stage_inputs("race_models")
a = outputs.read_table(ingest.tables, "x")
b = outputs.read_json(study_stage.data / "recommendation.json")
c = stage_inputs("forensics").figures / "f.png"
d = data.read_processed("regional_2021")
e = data.read_processed("t", "elsewhere")  # an explicit folder is not the pipeline's
f = race_stage.stage  # not an output
"""
    assert deps.stage_reads(source) == {
        "reports/tables/ingest",
        "data/processed/simulation_study",
        "reports/figures/forensics",
        "data/processed/ingest",
    }


def test_an_undeclared_read_is_refused_naming_stage_and_path(tmp_path: Path) -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    report = dict(stages["report"])
    report["deps"] = [d for d in report["deps"] if d != "reports/tables/forensics"]
    assert deps.check_stage(ROOT, "report", report) == [
        "stage 'report' reads reports/tables/forensics but dvc.yaml does not list it in its deps"
    ]
    assert deps.check_stage(ROOT, "report", stages["report"]) == []
