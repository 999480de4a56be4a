"""Every parameter is checked by its rule before a stage does any work: one line naming stage and parameter."""

from __future__ import annotations

import pytest

from akim_turnout.pipeline.parameters import SCHEMA, ParameterError, check_stage, stage_params, stage_problems

FORENSICS = stage_params("forensics")
NUMERIC = [key for key, rule in SCHEMA["forensics"].items() if rule.kind in ("integer", "number")]


def test_the_forensics_stage_has_seven_numeric_parameters() -> None:
    assert NUMERIC == ["n_sim", "seed", "tolerance_pp", "smooth_pp", "bins", "planted_fraction", "min_real_races"]


@pytest.mark.parametrize("key", NUMERIC)
@pytest.mark.parametrize("kind", ["negative", "string", "out of range"])
def test_bad_numeric_value_gives_one_line_naming_stage_and_parameter(key: str, kind: str) -> None:
    rule = SCHEMA["forensics"][key]
    value = {"negative": -5, "string": "abc", "out of range": (rule.maximum or 0) * 10 + 1}[kind]
    with pytest.raises(ParameterError) as failure:
        check_stage("forensics", {**FORENSICS, key: value})
    message = str(failure.value)
    assert message == f"stage 'forensics': parameter '{key}' must be {rule.describe()}, got {value!r}"
    assert "\n" not in message


def test_rules_in_words() -> None:
    rules = SCHEMA["forensics"]
    assert rules["n_sim"].describe() == "an integer from 100 to 1000000"
    assert rules["tolerance_pp"].describe() == "a number above 0 and at most 0.49"
    assert SCHEMA["race_models"]["headline_model"].describe() == (
        "one of recommended, glm, wild_bootstrap, gee, mixedlm, beta"
    )


def test_unknown_choice_and_cross_parameter_rules() -> None:
    race = stage_params("race_models")
    assert stage_problems("race_models", {**race, "headline_model": "ols"}) == [
        "parameter 'headline_model' must be one of recommended, glm, wild_bootstrap, gee, mixedlm, beta, got 'ols'"
    ]
    assert stage_problems("race_models", {**race, "main_term": "women_share"}) == [
        "parameter 'main_term' must be one of the terms of formula_rhs with one coefficient (np.log(n_candidates), "
        "self_share, any_woman), got 'women_share'"
    ]
    assert stage_problems("race_models", {**race, "main_term": "C( region )"}) == [
        "parameter 'main_term' must be one of the terms of formula_rhs with one coefficient (np.log(n_candidates), "
        "self_share, any_woman), got 'C( region )'"
    ]
    study = stage_params("simulation_study")
    for methods in (["naive_binomial"], ["mixedlm", "naive_binomial"]):
        assert stage_problems("simulation_study", {**study, "design": {**study["design"], "methods": methods}}) == [
            "parameter 'design.methods' must include a cluster-robust method (cluster_t, wild_bootstrap, "
            f"gee_bias_reduced), among which the study recommends the headline's; got {methods!r}"
        ]
    for methods in (["gee_bias_reduced"], ["naive_binomial", "cluster_t"]):
        assert stage_problems("simulation_study", {**study, "design": {**study["design"], "methods": methods}}) == []
    study = stage_params("simulation_study")
    assert stage_problems("simulation_study", {**study, "n_jobs": 0}) == [
        "parameter 'n_jobs' must not be 0 (1 = in this process, -1 = all cores)"
    ]
    assert stage_problems("simulation_study", {**study, "design": {**study["design"], "seed": True}}) == [
        "parameter 'design.seed' must be an integer from 0 to 4294967295, got True"
    ]
    assert stage_problems("report", {**stage_params("report"), "title": "  "}) == [
        "parameter 'title' must be a text, got '  '"
    ]
