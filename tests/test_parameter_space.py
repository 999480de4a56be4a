"""Every allowed value of every parameter, run through the stages it affects: each stage either succeeds or reports
"not estimable" with its reason, and the tables, numbers and report name exactly what was run (no stale label).

The cases come from the declarations (:data:`akim_turnout.pipeline.parameters.SCHEMA`): each choice of a categorical
parameter, both booleans, each allowed item of a list of choices, ``null`` where a parameter admits it, and each
numeric parameter at both ends of its range (an open minimum at a value just above it).
:func:`test_the_runs_cover_every_declared_value` derives that list from the schema and fails, naming the case, when
no run (and not the defaults of ``params.yaml``) covers it; a parameter added to the schema is thus covered or named.

The values are grouped into few runs (:data:`RUNS`): a run sets many parameters at once, and reruns only the stages
whose parameters it changes and the stages downstream of them (from ``dvc.yaml``), in a temporary copy of the
repository seeded with this checkout's pipeline outputs (``reports/`` and ``data/processed/``; run ``dvc repro``
first), each run from those outputs afresh. Each stage is started as DVC starts it, by the runner
(``python -m akim_turnout.run_notebook STAGE NOTEBOOK EXECUTED``), from the copy's root with the copy's ``src`` on
``PYTHONPATH``; its outputs are removed first, as DVC removes them.

Test-only study size: a run that reruns a stage starts from :data:`SMALL` for its section (simulation study: 3 data
sets per non-zero effect and 6 at effect 0, the base sensitivity setting only with 100 data sets; race models: 99
wild bootstrap draws, which the simulation study shares (``race_models.n_boot``, :data:`SHARED`: a run that reruns
the study starts from them too); regional model: 99 permutations; forensics: 200 Monte Carlo draws), then applies the
run's values. The upper ends of the parameters that only count work (draws, replications, permutations, workers,
races of a design) are run at a feasible value instead, listed in :data:`FEASIBLE`: the code path is the same at any
count, only the time grows with it, so those declared maxima stay (a study of 100,000 data sets is slow, not wrong);
``n_jobs: 64`` is run as 2 workers on this 2-core machine for the same reason. Maxima that could not run at all were
lowered in :mod:`akim_turnout.pipeline.parameters` instead, each with its reason: ``settings.min_candidates`` (2)
and ``settings.min_registered`` (900), the most the published 2021 margins allow; ``forensics.tolerance_pp`` (below
0.5, where every turnout is within the tolerance of an integer); ``design.designs[].n_regions`` (100: a design
copies the 14 regions, and beyond about 100 copies the smallest keep a post each only with some 10,000 races). Not
declared and not checked before a run: a design whose races are too few for its regions (e.g. 14 regions and 28
races leave a region without a post; at ``min_registered: 900`` only the real design holds) stops the simulation
study with the simulator's one-line error; the runs below keep clear of it.

Wall time, measured with the 2 cores shared with other work (load average about 1 to 4): about 4.3 minutes (258 s)
for the file (runs: low 129 s, high 95 s, gee 7 s, mixedlm 7 s, beta 19 s); the low and high runs rerun all seven
stages, the other three only the race models and the report (and the study, for a new formula). The simulator's
within-region dependence settings run at both ends in the low run (slope_sd 5, district_share 1, district_races 1,
mix_endogeneity -1, cands_spread_sd 0) and the high run (district_races 1000, mix_endogeneity 1, cands_spread_sd 5),
their sensitivity items at the other ends.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_copy import ROOT, copy_repository, shell_without_environment

from akim_turnout.pipeline.parameters import (
    HEADLINES,
    REGIONAL_PREDICTORS,
    REGIONAL_WEIGHTS,
    SCHEMA,
    SHARED,
    STUDY_METHOD_LABELS,
    Rule,
)

pytestmark = pytest.mark.pipeline

MAX_SEED = 2**32 - 1
TINY = 1e-3  # "just above" an open minimum

# Upper ends that only count work, run at this value instead (see the module's docstring).
FEASIBLE = {
    "regional_model.n_permutations": 4999,
    "race_models.n_boot": 1999,
    "simulation_study.design.n_replications": 4,
    "simulation_study.design.n_replications_null": 4,
    "simulation_study.design.designs[].n_replications": 4,
    "simulation_study.design.designs[].n_races": 2000,
    "simulation_study.design.method_replications.*": 4,
    "simulation_study.sensitivity.n_replications": 150,
    "simulation_study.n_jobs": 2,
    "forensics.n_sim": 5000,
    "forensics.min_real_races": 1_000_000,  # free: fewer races are published, so nothing runs
    "race_models.min_real_races": 1_000_000,
    "race_models.min_real_clusters": 1000,
}

# Starting point of a run for each section it changes: a small study.
SMALL: dict[str, dict[str, Any]] = {
    "regional_model": {"n_permutations": 99},
    "race_models": {"n_boot": 99},
    "simulation_study": {
        "design": {"n_replications": 3, "n_replications_null": 6},
        "sensitivity": {
            "n_replications": 100,
            "overdispersion_sd": [0.35],
            "party_placement": ["spread"],
            "slope_sd": [0.0],
            "district_share": [0.0],
            "mix_endogeneity": [0.0],
        },
        "n_jobs": 1,
    },
    "forensics": {"n_sim": 200},
}

# The runs: dotted parameter -> value. Each sets many parameters at once; a cross-key rule (main_term among the
# terms of formula_rhs; the effect term in the study's formula) holds in each.
RUNS: dict[str, dict[str, Any]] = {
    "low": {
        "common.dpi": 50,
        "common.figure_formats": ["png", "svg"],
        "regional_model.main_predictor": "self_share",
        "regional_model.mix_predictors": ["women_share"],
        "regional_model.weight": "posts",
        "regional_model.counting_stage": "registered",
        "regional_model.n_permutations": 99,
        "regional_model.seed": 0,
        "simulate.seed": 0,
        "simulate.settings.beta_cands": -5.0,
        "simulate.settings.cands_scale": "count",
        "simulate.settings.beta_self_share": -5.0,
        "simulate.settings.beta_women": -5.0,
        "simulate.settings.overdispersion_sd": 0.0,
        "simulate.settings.voters_sd_log": 0.0,
        "simulate.settings.min_candidates": 1,
        "simulate.settings.min_registered": 1,
        "simulate.settings.binomial_sampling": False,
        "simulate.settings.dirichlet_concentration": TINY,
        "simulate.settings.party_placement": "random",
        "simulate.settings.cands_spread_sd": 0.0,
        "simulate.settings.slope_sd": 5.0,
        "simulate.settings.district_share": 1.0,
        "simulate.settings.district_races": 1,
        "simulate.settings.mix_endogeneity": -1.0,
        "race_models.formula_rhs": "C(region)+np.log(n_candidates)+self_share+any_woman",
        "race_models.main_term": "np.log(n_candidates)",
        "race_models.headline_model": "glm",
        "race_models.n_boot": 99,
        "race_models.boot_seed": 0,
        "race_models.min_real_races": 2,
        "race_models.min_real_clusters": 2,
        "simulation_study.design.n_replications": 2,
        "simulation_study.design.n_replications_null": None,
        "simulation_study.design.effect_grid": [0.0, -5.0],
        "simulation_study.design.designs": [
            {"n_regions": 14, "n_races": 730},
            {"n_regions": 2, "n_races": 4, "n_replications": None},
            # the most regions, with the real design's races (each copy of a region keeps a post)
            {"n_regions": 100, "n_races": 730, "n_replications": 2},
        ],
        "simulation_study.design.seed": 0,
        "simulation_study.design.alpha": TINY,
        "simulation_study.design.methods": ["wild_bootstrap"],
        "simulation_study.design.method_replications": {"wild_bootstrap": 2},
        "simulation_study.design.wild_bootstrap_ci": True,
        "simulation_study.design.wild_weights": "rademacher",
        "simulation_study.sensitivity.n_replications": 100,
        "simulation_study.sensitivity.overdispersion_sd": [0.0],
        "simulation_study.sensitivity.party_placement": ["random"],
        "simulation_study.sensitivity.slope_sd": [0.0],
        "simulation_study.sensitivity.district_share": [0.0],
        "simulation_study.sensitivity.mix_endogeneity": [1.0],
        "simulation_study.n_jobs": -64,
        "simulation_study.backend": "joblib",
        "forensics.n_sim": 100,
        "forensics.seed": 0,
        "forensics.tolerance_pp": TINY,
        "forensics.smooth_pp": TINY,
        "forensics.bins": 5,
        "forensics.planted_fraction": 0.0,
        "forensics.min_real_races": 2,
        "report.title": "T",
    },
    "high": {
        "common.dpi": 600,
        "common.figure_formats": ["png", "pdf"],
        "regional_model.main_predictor": "women_share",
        "regional_model.mix_predictors": ["cands_per_seat", "self_share", "women_share"],
        "regional_model.weight": "voters_on_rolls",
        "regional_model.counting_stage": "on ballot",
        "regional_model.n_permutations": FEASIBLE["regional_model.n_permutations"],
        "regional_model.seed": MAX_SEED,
        "simulate.seed": MAX_SEED,
        "simulate.settings.beta_cands": 5.0,
        "simulate.settings.cands_scale": "log",
        "simulate.settings.beta_self_share": 5.0,
        "simulate.settings.beta_women": 5.0,
        "simulate.settings.overdispersion_sd": 5.0,
        "simulate.settings.voters_sd_log": 5.0,
        "simulate.settings.min_candidates": 2,
        "simulate.settings.min_registered": 900,
        "simulate.settings.binomial_sampling": True,
        "simulate.settings.dirichlet_concentration": 1000.0,
        "simulate.settings.party_placement": "spread",
        "simulate.settings.cands_spread_sd": 5.0,
        "simulate.settings.slope_sd": 0.0,
        "simulate.settings.district_share": 0.5,
        "simulate.settings.district_races": 1000,
        "simulate.settings.mix_endogeneity": 1.0,
        "race_models.formula_rhs": "C(region)  +  np.log( n_candidates ) + self_share + any_woman",
        "race_models.main_term": "any_woman",
        "race_models.headline_model": "wild_bootstrap",
        "race_models.n_boot": FEASIBLE["race_models.n_boot"],
        "race_models.boot_seed": MAX_SEED,
        "race_models.min_real_races": 1_000_000,
        "race_models.min_real_clusters": 1000,
        "simulation_study.design.n_replications": FEASIBLE["simulation_study.design.n_replications"],
        "simulation_study.design.n_replications_null": FEASIBLE["simulation_study.design.n_replications_null"],
        "simulation_study.design.effect_grid": [0.0, 5.0],
        "simulation_study.design.designs": [
            {"n_regions": 14, "n_races": 730},
            {
                "n_regions": 3,
                "n_races": FEASIBLE["simulation_study.design.designs[].n_races"],
                "n_replications": FEASIBLE["simulation_study.design.designs[].n_replications"],
            },
        ],
        "simulation_study.design.seed": MAX_SEED,
        "simulation_study.design.alpha": 0.5,
        "simulation_study.design.methods": ["cluster_t", "gee_bias_reduced", "mixedlm", "naive_binomial"],
        "simulation_study.design.method_replications": {
            "cluster_t": 4,
            "gee_bias_reduced": 4,
            "mixedlm": 2,
            "naive_binomial": 4,
            "wild_bootstrap": 4,
        },
        "simulation_study.design.wild_bootstrap_ci": False,
        "simulation_study.design.wild_weights": "webb",
        "simulation_study.sensitivity.n_replications": FEASIBLE["simulation_study.sensitivity.n_replications"],
        "simulation_study.sensitivity.overdispersion_sd": [5.0, 0.0],
        "simulation_study.sensitivity.party_placement": ["spread", "random"],
        "simulation_study.sensitivity.slope_sd": [5.0],
        "simulation_study.sensitivity.district_share": [1.0],
        "simulation_study.sensitivity.mix_endogeneity": [-1.0],
        "simulation_study.n_jobs": FEASIBLE["simulation_study.n_jobs"],
        "simulation_study.backend": "dask",
        "forensics.n_sim": FEASIBLE["forensics.n_sim"],
        "forensics.seed": MAX_SEED,
        "forensics.tolerance_pp": 0.49,
        "forensics.smooth_pp": 10.0,
        "forensics.bins": 500,
        "forensics.planted_fraction": 0.5,
        "forensics.min_real_races": FEASIBLE["forensics.min_real_races"],
        "report.title": "A report title with <angle brackets> & an ampersand",
    },
    # the other headline models and main terms: race models and report only
    "gee": {"race_models.headline_model": "gee"},
    "mixedlm": {"race_models.headline_model": "mixedlm", "race_models.main_term": "self_share"},
    "beta": {
        "race_models.headline_model": "beta",
        "race_models.formula_rhs": "C(region) + n_candidates + self_share",
        "race_models.main_term": "n_candidates",
    },
}


# --- the cases, from the declarations ---------------------------------------------------------------------------


def _ends(rule: Rule) -> list[Any]:
    low = rule.minimum + TINY if rule.open_minimum else rule.minimum
    kind = int if rule.kind == "integer" else float
    return [kind(low), kind(rule.maximum)]


def declared_cases(rules: dict[str, Rule] = SCHEMA, prefix: str = "") -> list[tuple[str, str, Any]]:
    """Every case the schema declares: (parameter, how, value), ``how`` one of ``value`` (the parameter equals it),
    ``item`` (a list parameter holds it), ``end`` (the parameter, or an item of it, is at this end of its range).
    Free text (a formula, a title) has no cases of its own; the runs spell it in several ways."""
    cases = []
    for key, rule in rules.items():
        name = f"{prefix}{key}"
        if isinstance(rule, dict):  # a section
            cases += declared_cases(rule, f"{name}.")
            continue
        if rule.nullable:
            cases.append((name, "value", None))
        if rule.kind == "mapping":
            star = rule.partial and all(not field.label for field in rule.fields.values())
            if star:  # a mapping of like values (method -> cap)
                cases += [(f"{name}.*", "end", end) for end in _ends(next(iter(rule.fields.values())))]
            else:
                cases += declared_cases(dict(rule.fields), f"{name}.")
        elif rule.kind == "list" and rule.item is not None:
            item = rule.item
            if item.choices:
                cases += [(name, "item", choice) for choice in item.choices]
            elif item.kind == "mapping":
                cases += declared_cases(dict(item.fields), f"{name}[].")
            elif item.kind in ("integer", "number"):
                cases += [(name, "item_end", end) for end in _ends(item)]
        elif rule.choices:
            cases += [(name, "value", choice) for choice in rule.choices]
        elif rule.kind == "boolean":
            cases += [(name, "value", True), (name, "value", False)]
        elif rule.kind in ("integer", "number"):
            cases += [(name, "end", end) for end in _ends(rule)]
    return cases


def _values(params: dict[str, Any], name: str) -> list[Any]:
    """Every value a dotted name takes in a params mapping (``a[].b``: b of every item of list a; ``a.*``: every
    value of mapping a)."""
    found = [params]
    for part in name.split("."):
        next_found = []
        for node in found:
            if part == "*":
                next_found += list(node.values()) if isinstance(node, dict) else []
            elif part.endswith("[]"):
                items = node.get(part[:-2]) if isinstance(node, dict) else None
                next_found += list(items or [])
            elif isinstance(node, dict) and part in node:
                next_found.append(node[part])
        found = next_found
    return found


def covered(case: tuple[str, str, Any], params: dict[str, Any]) -> bool:
    name, how, value = case
    values = _values(params, name)
    feasible = FEASIBLE.get(name)
    if how == "value":
        return any(v == value and type(v) is type(value) for v in values)
    if how == "item":
        return any(isinstance(v, list) and value in v for v in values)
    if how == "item_end":
        return any(isinstance(v, list) and value in v for v in values)
    return any(v == value or (feasible is not None and v == feasible) for v in values)


# --- the runs -----------------------------------------------------------------------------------------------------


def _set(params: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def run_params(run: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """params.yaml of a run: the defaults, each section the run changes started from SMALL, then the run's values."""
    params = copy.deepcopy(defaults)
    for stage in stages_to_run(run):
        _merge(params.get(stage, {}), SMALL.get(stage, {}))
        for section, key in SHARED.get(stage, ()):  # what the stage reads from another section, small too
            if key in SMALL.get(section, {}):
                params[section][key] = copy.deepcopy(SMALL[section][key])
    for dotted, value in RUNS[run].items():
        _set(params, dotted, value)
    return params


def touched(run: str) -> set[str]:
    """The sections the run changes, and each ``section.key`` it changes."""
    return {part for dotted in RUNS[run] for part in (dotted.split(".")[0], ".".join(dotted.split(".")[:2]))}


def pipeline_stages(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def stages_to_run(run: str, root: Path = ROOT) -> list[str]:
    """The stages whose params the run changes, and every stage downstream of them, in an order DVC could run."""
    stages = pipeline_stages(root)
    changed_names = touched(run)
    outs = {stage: [str(o) for o in spec.get("outs", [])] for stage, spec in stages.items()}

    def upstream(stage: str) -> set[str]:
        deps = stages[stage].get("deps", [])
        return {other for other, paths in outs.items() for dep in deps for path in paths if dep == path}

    affected = {s for s, spec in stages.items() if {str(p) for p in spec.get("params", [])} & changed_names}
    changed = True
    while changed:
        more = {s for s in stages if s not in affected and upstream(s) & affected}
        changed, affected = bool(more), affected | more
    order: list[str] = []
    while len(order) < len(affected):
        order += [s for s in stages if s in affected and s not in order and upstream(s) & affected <= set(order)]
    return order


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    """A copy of the repository; each run seeds it with this checkout's pipeline outputs."""
    missing = [p for p in ("reports/report.html", "data/processed/simulation_study") if not (ROOT / p).exists()]
    if missing:
        pytest.fail(f"the checkout has no pipeline outputs ({', '.join(missing)}): run `dvc repro` first")
    return copy_repository(tmp_path_factory.mktemp("space") / "repo")


def _seed_outputs(copy_root: Path) -> None:
    for folder in ("reports", "data/processed"):
        shutil.rmtree(copy_root / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, copy_root / folder)


def _run_stage(copy_root: Path, stage: str) -> subprocess.CompletedProcess:
    spec = pipeline_stages(copy_root)[stage]
    for out in spec.get("outs", []) + [next(iter(m)) if isinstance(m, dict) else m for m in spec.get("metrics", [])]:
        path = copy_root / str(out)
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    env = shell_without_environment()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(copy_root / "src")
    args = spec["cmd"].split("&&")
    result = None
    for part in args:
        words = part.split()
        assert words[:2] == ["sh", "bin/project-python"], spec["cmd"]
        result = subprocess.run(
            [sys.executable, *words[2:]], cwd=copy_root, env=env, capture_output=True, text=True, timeout=900
        )
        if result.returncode:
            break
    return result


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _csv_text(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.glob("*.csv")))


def check_regional(root: Path, params: dict[str, Any], report: str) -> None:
    from akim_turnout.report import labels

    section = params["regional_model"]
    predictor, mix, weight = section["main_predictor"], section["mix_predictors"], section["weight"]
    numbers = _json(root / "reports/numbers/regional_model.json")
    assert numbers["labels"]["weighting"] == REGIONAL_WEIGHTS[weight]
    assert numbers["labels"]["main_predictor"] == REGIONAL_PREDICTORS[predictor]
    assert numbers["labels"]["mix_predictors"] == [REGIONAL_PREDICTORS[p] for p in mix]
    tables = _csv_text(root / "reports/tables/regional_model")
    names = labels.regional_models(weight)
    coefficients = (root / "reports/tables/regional_model/coefficients.csv").read_text()
    for name in names.values():
        assert name in coefficients, name
    for other, words in REGIONAL_WEIGHTS.items():
        if other != weight:
            for text, where in ((tables, "regional tables"), (json.dumps(numbers), "numbers"), (report, "report")):
                assert f"main, {words}" not in text, f"stale '{words}' model name in the {where} (weight: {weight})"
    label = REGIONAL_PREDICTORS[predictor]
    caption = (root / "reports/tables/regional_model/specification_curve.tex").read_text()
    assert label in caption, f"the specification-curve table does not name {label!r}"
    assert numbers["labels"]["specification_curve"]["predictor"] == label
    assert f"Regional turnout against {label}" in report or "not estimable" in report
    if predictor != "cands_per_seat":
        assert "candidates more per post" not in report, "the report steps the main predictor in candidates"
    if "cands_per_seat" not in [predictor, *mix]:
        assert "one candidate more per post" not in report, "a unit of candidates for a run without the predictor"


def check_race(root: Path, params: dict[str, Any], report: str) -> None:
    from akim_turnout.models.formula import parse_formula
    from akim_turnout.report import labels

    section = params["race_models"]
    numbers = _json(root / "reports/numbers/race_models.json")
    formula = parse_formula(section["formula_rhs"])
    main = parse_formula(section["main_term"]).rhs
    assert numbers["labels"]["formula_rhs"] == formula.rhs
    assert numbers["labels"]["headline_model"] == HEADLINES[section["headline_model"]]
    assert numbers["labels"]["main_term"] == labels.term(main)
    assert f"for the {labels.term(main)} is" in report, "the report's headline names another term"
    headline = _json(root / "data/processed/race_models/headline.json")
    if section["headline_model"] != "recommended":
        assert HEADLINES[section["headline_model"]].split(",")[0].lower() in report.lower()
        assert headline["family"] == section["headline_model"] or headline.get("not_estimable")
    if "np.log(n_candidates)" not in formula.names:
        assert "log candidates" not in report, "a caption speaks of log candidates the formula does not have"


def check_study(root: Path, params: dict[str, Any], report: str) -> None:
    design = params["simulation_study"]["design"]
    numbers = _json(root / "reports/numbers/simulation_study.json")
    assert set(numbers["labels"]["methods"]) == set(design["methods"])
    table = (root / "reports/tables/simulation_study/methods.csv").read_text()
    for method, words in STUDY_METHOD_LABELS.items():
        assert (words in table) == (method in design["methods"]), f"methods table and methods run differ: {method}"
    assert "five inference methods" not in report or len(design["methods"]) == 5


def check_not_estimable_reasons(root: Path) -> None:
    """Every 'not estimable' in a table carries a reason."""
    for path in (root / "reports/tables").rglob("*.csv"):
        for line in path.read_text().splitlines():
            for cell in line.split(","):
                if cell.strip().strip('"').startswith("not estimable"):
                    assert len(cell.strip().strip('"')) > len("not estimable: "), f"{path}: {cell}"


def check_figures(root: Path, params: dict[str, Any], stages: list[str]) -> None:
    formats = params["common"]["figure_formats"]
    for stage in stages:
        folder = root / "reports/figures" / stage
        if not folder.is_dir():
            continue
        stems = {p.stem for p in folder.iterdir()}
        for stem in stems:
            present = {p.suffix[1:] for p in folder.glob(f"{stem}.*")}
            assert present == set(formats), f"{stage}/{stem}: {sorted(present)} written, {formats} asked"


@pytest.fixture(scope="module")
def runs(space: Path) -> dict[str, tuple[list[str], dict[str, Any], str, float]]:
    """Each run: its stages, its params, where it failed ('' if it did not) and its wall time."""
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    results = {}
    for run in RUNS:
        params = run_params(run, defaults)
        (space / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _seed_outputs(space)
        stages, failure, start = stages_to_run(run), "", time.perf_counter()
        for stage in stages:
            result = _run_stage(space, stage)
            if result.returncode:
                failure = f"stage {stage}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
                break
        outcome = ""
        if not failure:
            report = (space / "reports/report.html").read_text()
            try:
                if "regional_model" in stages:
                    check_regional(space, params, report)
                if "race_models" in stages:
                    check_race(space, params, report)
                if "simulation_study" in stages:
                    check_study(space, params, report)
                check_not_estimable_reasons(space)
                check_figures(space, params, stages)
                # the browser-tab title and the heading: the run's title exactly, escaped (no raw "<" inside)
                title = params["report"]["title"]
                for shown in (
                    re.search(r"<title>([^<]*)</title>", report),
                    re.search(r"<h1[^>]*>([^<]*)</h1>", report),
                ):
                    assert shown and html.unescape(shown.group(1)) == title, f"the report does not carry {title!r}"
            except AssertionError as error:
                outcome = f"wrong words: {error}"
        results[run] = (stages, params, failure or outcome, time.perf_counter() - start)
    return results


def test_the_runs_cover_every_declared_value() -> None:
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    every = [run_params(run, defaults) for run in RUNS] + [defaults]
    missing = [case for case in declared_cases() if not any(covered(case, params) for params in every)]
    assert not missing, f"declared values no run covers: {missing}"


def test_each_run_keeps_the_cross_key_rules(tmp_path) -> None:
    from akim_turnout.pipeline.parameters import stage_params, stage_problems

    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    for run in RUNS:
        params = run_params(run, defaults)
        path = tmp_path / f"{run}.yaml"
        path.write_text(yaml.safe_dump(params))
        for stage in pipeline_stages():
            assert stage_problems(stage, stage_params(stage, path)) == [], (run, stage)


def test_every_allowed_value_runs_and_is_named_as_run(runs) -> None:
    rows = [
        f"{run}: {', '.join(stages)}: {outcome or 'ok'} ({seconds:.0f} s)"
        for run, (stages, _, outcome, seconds) in runs.items()
    ]
    print("\n".join(rows))
    failed = [row for row, (_, (_, _, outcome, _)) in zip(rows, runs.items(), strict=True) if outcome]
    assert not failed, "\n\n".join(f"{run}: {outcome}" for run, (_, _, outcome, _) in runs.items() if outcome)
