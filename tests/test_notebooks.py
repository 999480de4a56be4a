"""Notebooks: defaults equal params.yaml, stored without outputs, wired to dvc.yaml consistently."""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from akim_turnout.pipeline.parameters import SCHEMA, SHARED, stage_params, stage_problems
from akim_turnout.pipeline.paths import StageFiles, load_params, project_path
from akim_turnout.pipeline.runner import declared_parameters

DVC_STAGES = yaml.safe_load(project_path("dvc.yaml").read_text())["stages"]
RUNNER = re.compile(r"python -m akim_turnout\.run_notebook (\S+) (\S+\.ipynb) (\S+\.ipynb)")
NOTEBOOK_STAGES = {m.group(1): (m.group(2), m.group(3)) for s in DVC_STAGES.values() if (m := RUNNER.search(s["cmd"]))}
NOTEBOOKS = sorted(project_path("notebooks").glob("*.ipynb"))


def test_every_notebook_is_a_stage_and_every_stage_runs_the_runner() -> None:
    assert set(NOTEBOOK_STAGES) == set(DVC_STAGES), "every stage must run one notebook through the runner"
    assert {nb for nb, _ in NOTEBOOK_STAGES.values()} == {f"notebooks/{p.name}" for p in NOTEBOOKS}


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_notebook_defaults_equal_params_yaml(stage: str) -> None:
    notebook, _ = NOTEBOOK_STAGES[stage]
    # papermill reports defaults as source text; compare Python values, so "01" and 1 differ.
    defaults = {
        name: ast.literal_eval(info["default"]) for name, info in declared_parameters(project_path(notebook)).items()
    }
    assert defaults == stage_params(stage)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(notebook) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    dirty = [
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{notebook.name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_fixed_unique_id(notebook) -> None:
    """A cell without an id gets a random one when the notebook is executed (nbformat), which would change the
    executed notebook on every run."""
    ids = [cell.get("id") for cell in json.loads(notebook.read_text())["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{notebook.name}: cells {missing} have no id"
    assert len(set(ids)) == len(ids), f"{notebook.name}: repeated cell ids"


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_stage_declares_notebook_params_and_executed_copy(stage: str) -> None:
    notebook, executed = NOTEBOOK_STAGES[stage]
    entry = DVC_STAGES[stage]
    assert notebook in entry["deps"] and "src/akim_turnout/pipeline/runner.py" in entry["deps"]
    own = {"common", stage} & set(load_params())
    # declare params explicitly: templated values are not locked. The report shows every parameter, so it
    # depends on every section.
    # A key read from another section (parameters.SHARED) is declared as section.key.
    shared = {f"{section}.{key}" for section, key in SHARED.get(stage, ())}
    expected = set(load_params()) if stage == "report" else own | shared
    assert set(entry["params"]) == expected
    assert executed in entry["outs"] and executed == f"reports/notebooks/{notebook.split('/')[-1]}"


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_stage_outputs_are_the_folders_named_after_the_stage(stage: str) -> None:
    entry = DVC_STAGES[stage]
    declared = {next(iter(o)) if isinstance(o, dict) else o for key in ("outs", "metrics") for o in entry.get(key, [])}
    named = set(StageFiles.relative(stage).values())
    executed = NOTEBOOK_STAGES[stage][1]
    extra = {"reports/report.html"} if stage == "report" else set()
    assert declared - named == {executed} | extra, f"{stage} declares outputs not named after the stage"
    assert StageFiles.relative(stage)["numbers"] in declared or stage == "report"


@pytest.mark.parametrize("stage", sorted(NOTEBOOK_STAGES))
def test_params_yaml_values_pass_their_rules(stage: str) -> None:
    assert stage_problems(stage, stage_params(stage)) == []


def test_stage_outputs_do_not_overlap() -> None:
    outs = [
        next(iter(o)) if isinstance(o, dict) else o
        for s in DVC_STAGES.values()
        for k in ("outs", "metrics")
        for o in s.get(k, [])
    ]
    for a in outs:
        for b in outs:
            assert a == b or not b.startswith(a.rstrip("/") + "/"), f"{b} lies inside {a}"
    assert len(outs) == len(set(outs))


def test_params_yaml_holds_no_paths_and_only_stage_sections() -> None:
    params = load_params()
    assert set(params) <= {"common", *DVC_STAGES}
    assert set(params) - {"common"} == set(SCHEMA) - {"common"}, "every section has its rules in parameters.py"
    text = project_path("params.yaml").read_text()
    assert not re.search(r"(data|reports)/", text), "paths follow from the stage name (paths.StageFiles)"
