"""Parameters declared once, one formula parser, and words that follow the parameters of a run."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from akim_turnout.models import design, regional, specification
from akim_turnout.models.formula import FormulaError, parse_formula
from akim_turnout.pipeline import parameters
from akim_turnout.pipeline.paths import load_params, project_path
from akim_turnout.report import labels
from akim_turnout.study import replications as study
from akim_turnout.study import simulate

SRC = project_path("src/akim_turnout")
DEFAULT_RHS = "C(region) + np.log(n_candidates) + self_share + any_woman"


# ---------------------------------------------------------------- one formula parser


@pytest.mark.parametrize(
    "spelling",
    [
        DEFAULT_RHS,
        "C(region)+np.log(n_candidates)+self_share+any_woman",
        "  C( region ) +np.log( n_candidates)+  self_share +any_woman ",
        "C(region) + log(n_candidates) + self_share + any_woman",
    ],
)
def test_any_spacing_is_one_formula(spelling: str) -> None:
    formula = parse_formula(spelling)
    assert formula.rhs == DEFAULT_RHS
    assert formula.mix_terms == ["np.log(n_candidates)", "self_share", "any_woman"]
    assert [t.column for t in formula.categorical] == ["region"] and formula.has_region()
    assert formula.without(["C(region)"]).rhs == "np.log(n_candidates) + self_share + any_woman"
    assert design.parse_terms(spelling) == design.parse_terms(DEFAULT_RHS)


@pytest.mark.parametrize("bad", ["", "a + + b", "a + a", "a * b", "C(region) + exp(x)"])
def test_formula_refusals(bad: str) -> None:
    with pytest.raises(FormulaError):
        parse_formula(bad)


def test_runner_check_uses_the_parser() -> None:
    race = {**load_params()["common"], **load_params()["race_models"]}
    assert parameters.stage_problems("race_models", {**race, "formula_rhs": DEFAULT_RHS.replace(" ", "")}) == []
    problems = parameters.stage_problems("race_models", {**race, "formula_rhs": "C(region) + x ** 2"})
    assert problems and "not a formula the models can fit" in problems[0]
    # the study fits the race formula: it needs the term whose effect it varies
    study_params = parameters.stage_params("simulation_study")  # common, its section, race_models' shared keys
    assert parameters.stage_problems("simulation_study", {**study_params, "formula_rhs": DEFAULT_RHS}) == []
    assert (
        "must contain self_share"
        in parameters.stage_problems("simulation_study", {**study_params, "formula_rhs": "C(region) + any_woman"})[0]
    )


def test_no_space_formula_gives_identical_study_fits() -> None:
    """The study's tasks fit the formula parameter; its no-space spelling gives the very same rows."""
    regions = pd.DataFrame(
        {
            "region": ["A", "B", "C", "D"],
            "posts": [20, 25, 30, 22],
            "cands": [50, 60, 75, 55],
            "cands_party": [20, 25, 30, 22],
            "cands_self": [30, 35, 45, 33],
            "cands_women": [5, 8, 6, 7],
            "voters_on_rolls": [20000, 30000, 25000, 22000],
            "turnout_pct": [70.0, 75.0, 80.0, 72.0],
        }
    )
    national = {
        "posts": 97,
        "cands": 240,
        "cands_party": 97,
        "cands_self": 143,
        "cands_women": 26,
        "voters_on_rolls": 97000,
    }
    small = study.StudyDesign.from_params(
        n_replications=2,
        n_replications_null=2,
        effect_grid=(0.0, -0.5),
        designs=(study.DesignPoint(4, 97),),
        methods=("cluster_t", "gee_bias_reduced", "mixedlm"),
        method_replications=(),
    )
    settings = simulate.SimulationSettings.from_params()
    rows = {
        rhs: study.run_study(small, settings, regions, national, formula_rhs=rhs)
        for rhs in (DEFAULT_RHS, DEFAULT_RHS.replace(" ", ""))
    }
    pd.testing.assert_frame_equal(*rows.values())
    # and the parameter is what is fitted: without any_woman the estimates differ
    other = study.run_study(
        small, settings, regions, national, formula_rhs="C(region) + np.log(n_candidates) + self_share"
    )
    assert not np.allclose(other["estimate"], rows[DEFAULT_RHS]["estimate"])


# ---------------------------------------------------------------- defaults in one place


def test_dataclass_defaults_are_params_yaml() -> None:
    params = load_params()
    assert simulate.SimulationSettings.from_params() == simulate.SimulationSettings.from_mapping(
        params["simulate"]["settings"]
    )
    design_ = study.StudyDesign.from_params()
    # the study's bootstrap draws are the headline's (race_models.n_boot, race_models.boot_seed), written once
    headline = {key: params["race_models"][key] for key in ("n_boot", "boot_seed")}
    assert design_.as_mapping() == {**params["simulation_study"]["design"], **headline}
    assert not set(headline) & set(params["simulation_study"]["design"])
    own = study.StudyDesign.from_mapping({"seed": 1})
    assert (own.n_boot, own.boot_seed) == (params["race_models"]["n_boot"], params["race_models"]["boot_seed"])
    # a mapping with a missing key takes params.yaml's value, never another
    assert (
        study.StudyDesign.from_mapping({"n_boot": 199}).n_replications
        == params["simulation_study"]["design"]["n_replications"]
    )
    with pytest.raises(TypeError):
        simulate.SimulationSettings()  # no second default in the class
    with pytest.raises(TypeError):
        study.StudyDesign()


def _params_keys(tree: object, out: dict[str, object] | None = None) -> dict[str, object]:
    out = {} if out is None else out
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.setdefault(key, value)
            _params_keys(value, out)
    elif isinstance(tree, list):
        for value in tree:
            _params_keys(value, out)
    return out


def _choice_sets() -> dict[str, set[str]]:
    sets = {
        "figure_formats": set(parameters.FIGURE_FORMATS),
        "regional predictors": set(parameters.REGIONAL_PREDICTORS),
        "regional weights": set(parameters.REGIONAL_WEIGHTS),
        "headline models": set(parameters.HEADLINES),
        "study methods": set(parameters.STUDY_METHODS),
    }
    return sets


def declared_twice(src: Path = SRC) -> list[str]:
    """Where src/ writes a parameter's default or a choice list a second time:

    * a dataclass field with a default whose name is a params.yaml parameter (settings built from a section must
      take their defaults from params.yaml);
    * a function keyword default whose name is a params.yaml parameter and whose value equals params.yaml's;
    * outside parameters.py, a tuple/list/set literal of two or more strings, all allowed values of one declared
      choice list (the list spelled out again).
    """
    keys = _params_keys(load_params())
    choices = _choice_sets()
    found = []
    for path in sorted(src.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                for item in node.body:
                    if (
                        isinstance(item, ast.AnnAssign)
                        and isinstance(item.target, ast.Name)
                        and item.value is not None
                        and item.target.id in keys
                        and node.name in ("SimulationSettings", "StudyDesign")
                    ):
                        found.append(f"{path.name}: {node.name}.{item.target.id} has a default of its own")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                pairs = list(zip(args.args[len(args.args) - len(args.defaults) :], args.defaults, strict=True))
                pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
                for arg, value in pairs:
                    if (
                        arg.arg in keys
                        and isinstance(value, ast.Constant)
                        and value.value == keys[arg.arg]
                        and not isinstance(keys[arg.arg], (dict, list))
                        and path.name != "parameters.py"
                    ):
                        found.append(
                            f"{path.name}: {node.name}({arg.arg}={value.value!r}) repeats params.yaml's default"
                        )
            if path.name != "parameters.py" and isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(items) >= 2 and len(items) == len(node.elts):
                    for name, allowed in choices.items():
                        if set(items) <= allowed and len(set(items)) >= 2:
                            found.append(f"{path.name}:{node.lineno}: the {name} {items} spelled out again")
    return found


# Keyword defaults still written in modules that take these values as arguments (a generic test level, the
# forensics smoothing, ...): to be removed; any finding not listed here fails the test, naming the parameter.
KNOWN = {
    "fastfit.py: t_inference(alpha=0.05) repeats params.yaml's default",
    "fastfit.py: normal_inference(alpha=0.05) repeats params.yaml's default",
    "figures.py: save_figure(dpi=150) repeats params.yaml's default",
    "figures.py: plot_size_and_coverage(alpha=0.05) repeats params.yaml's default",
    "figures.py: plot_power_curves(alpha=0.05) repeats params.yaml's default",
    "figures.py:76: the figure_formats ['png', 'pdf'] spelled out again",
    "forensics.py: integer_percent_test(smooth_pp=1.0) repeats params.yaml's default",
    "forensics.py: forensics_summary(smooth_pp=1.0) repeats params.yaml's default",
    "inference.py: _inference(alpha=0.05) repeats params.yaml's default",
    "inference.py: average_marginal_effects(alpha=0.05) repeats params.yaml's default",
    "montecarlo.py: minimum_detectable_effect(alpha=0.05) repeats params.yaml's default",
    "montecarlo.py: recommend_method(alpha=0.05) repeats params.yaml's default",
    "montecarlo.py: study_metrics(alpha=0.05) repeats params.yaml's default",
    "race.py: race_average_marginal_effects(alpha=0.05) repeats params.yaml's default",
    "regional.py: prediction_curve(alpha=0.05) repeats params.yaml's default",
    "resampling.py: wild_cluster_bootstrap(n_boot=999) repeats params.yaml's default",
    "resampling.py: wild_cluster_bootstrap(alpha=0.05) repeats params.yaml's default",
    "simulate.py: allocate_region_margins(unknown_posts_rule='equal') repeats params.yaml's default",
    "simulate.py: allocate_region_margins(min_candidates=2) repeats params.yaml's default",
    "study.py: run_study(backend='joblib') repeats params.yaml's default",
    "sweep.py:24: the headline models ['recommended', 'glm', 'wild_bootstrap', 'gee', 'mixedlm', 'beta'] "
    "spelled out again",
    "sweep.py:125: the headline models ['glm', 'gee', 'mixedlm'] spelled out again",
}


def test_no_parameter_declared_or_defaulted_twice() -> None:
    found = declared_twice()
    assert [f for f in found if f not in KNOWN] == []


def test_the_scan_finds_a_second_declaration(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass\nclass StudyDesign:\n    n_replications: int = 60\n\n"
        "def f(n_permutations=1999):\n    return ('cluster_t', 'mixedlm')\n",
        encoding="utf-8",
    )
    found = declared_twice(tmp_path)
    assert found == [
        "x.py: StudyDesign.n_replications has a default of its own",
        "x.py: f(n_permutations=1999) repeats params.yaml's default",
        "x.py:8: the study methods ['cluster_t', 'mixedlm'] spelled out again",
    ]


def test_labels_come_from_the_declarations() -> None:
    assert labels.METHODS is parameters.STUDY_METHOD_LABELS
    assert {k: v for k, v in labels.WEIGHTS.items() if k} == parameters.REGIONAL_WEIGHTS
    for name, words in parameters.REGIONAL_PREDICTORS.items():
        assert labels.term(name) == words
    for section, rules in parameters.SCHEMA.items():
        for key, rule in rules.items():
            assert rule.label, f"parameter '{section}.{key}' has no label"


# ---------------------------------------------------------------- words that follow the parameters


def test_weighting_names_follow_the_weight() -> None:
    assert labels.regional_models("posts") == {
        "main_unweighted": "main, unweighted",
        "main_weighted": "main, posts-weighted",
        "mix_unweighted": "mix, unweighted",
    }
    assert labels.regional_models("voters_on_rolls")["main_weighted"] == "main, electorate-weighted"
    words = labels.regional_labels("self_share", ["cands_per_seat", "women_share"], "posts")
    assert words["weighting"] == "posts-weighted" and words["main_predictor"] == "self-nominated share"
    assert words["model_descriptions"]["mix_unweighted"] == "candidates per post and women's share, unweighted"


def _regions() -> pd.DataFrame:
    """Seven regions; women's share published for two only (as in 2021)."""
    return pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "turnout_pct": [80.5, 84.0, 76.5, 88.0, 72.0, 82.5, 74.5],
            "cands_per_seat": [2.0, 2.5, 2.2, 3.0, 1.5, 2.8, 1.9],
            "self_share": [0.5, 0.6, 0.4, 0.7, 0.3, 0.55, 0.35],
            "women_share": [0.1, 0.2, np.nan, np.nan, np.nan, np.nan, np.nan],
            "posts": [10.0, 12.0, 14.0, 16.0, 8.0, 11.0, 13.0],
            "voters_on_rolls": [1000.0, 2000.0, 1300.0, 1500.0, 900.0, 1200.0, 1100.0],
        }
    )


def test_women_share_in_the_mix_is_not_estimable_with_its_reason() -> None:
    predictors = ["cands_per_seat", "self_share", "women_share"]
    fit = regional.fit_regional_or_not_estimable(_regions(), predictors, name="mix, unweighted")
    assert fit.not_estimable == "2 observations for 4 parameters; cannot fit"
    table = fit.to_frame()
    assert list(table["term"]) == ["Intercept", *predictors]
    assert (table["status"] == "not estimable: 2 observations for 4 parameters; cannot fit").all()
    assert table[["estimate", "ci_lower", "ci_upper"]].isna().all().all()
    assert fit.n_obs == 2 and [d["row"] for d in fit.extra["dropped"]] == list("CDEFG")
    ames = regional.regional_marginal_effects(fit)
    assert list(ames["term"]) == predictors and ames["ame_pp"].isna().all()
    assert (ames["status"] == "not estimable: 2 observations for 4 parameters; cannot fit").all()
    # a fit that can be computed is the plain fit
    ok = regional.fit_regional_or_not_estimable(_regions(), ["cands_per_seat"])
    plain = regional.fit_regional_fractional_logit(_regions(), ["cands_per_seat"])
    pd.testing.assert_series_equal(ok.params, plain.params)


def test_main_predictor_drives_the_specification_curve_and_its_words() -> None:
    frame = _regions()
    curve = specification.specification_curve(frame, {"posts": 84}, "self_share")
    # candidate-count choices do not apply to a share: one 'definition'; weighting x influence
    assert len(curve) == 1 * 3 * 2
    assert set(curve["definition"]) == {"not applicable (self-nominated share is not a candidate count)"}
    row = curve[(curve["weighting"] == "none") & (curve["influence"] == "all kept")].iloc[0]
    assert row["status"] == "ok" and row["n_regions"] == 7
    # by hand: the unweighted fit on the share, the AME of +0.1 share
    fit = regional.fit_regional_fractional_logit(frame, ["self_share"])
    mu = expit(fit.params["Intercept"] + fit.params["self_share"] * frame["self_share"])
    assert row["slope_logit"] == pytest.approx(fit.params["self_share"], rel=1e-12)
    assert row["ame_pp"] == pytest.approx(0.1 * 100 * fit.params["self_share"] * np.mean(mu * (1 - mu)), rel=1e-10)
    words = specification.curve_labels("self_share")
    assert words["step"] == "+0.1 self-nominated share"
    assert words["effect"] == "pp of turnout per +0.1 self-nominated share"
    summary = specification.curve_summary(curve, "self_share")
    assert summary["step"] == 0.1 and summary["step_candidates_per_post"] is None
    assert specification.curve_labels("cands_per_seat")["step"] == "+0.5 candidates per post"
    assert len(specification.specifications("cands_per_seat")) == 18


def test_the_plot_titles_of_dvc_yaml_hold_for_every_main_predictor() -> None:
    """`dvc plots show` draws the specification curve of whatever main_predictor ran: its title names none."""
    import yaml

    from akim_turnout.pipeline.parameters import REGIONAL_PREDICTORS
    from akim_turnout.pipeline.paths import project_root

    plots = yaml.safe_load((project_root() / "dvc.yaml").read_text())["plots"]
    titles = {path: spec["title"] for plot in plots for path, spec in plot.items()}
    curve = titles["data/processed/regional_model/specification_curve.csv"]
    assert (
        curve == "REAL DATA: regional slope per specification (pp of turnout per step of regional_model.main_predictor)"
    )
    assert not any(words in title for title in titles.values() for words in REGIONAL_PREDICTORS.values())
