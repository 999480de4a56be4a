"""The report's words on the specification curve: the joint test's sentence on both sides of its rule, what the stage
indicator does to the default slope, and the curve's part of the context built from a numbers file."""

from __future__ import annotations

from akim_turnout.report import context

JOINT = {
    "p_median": 0.674,
    "p_share": 1.0,
    "observed_excluding_zero": 0,
    "n_specifications": 8,
    "n_permutations": 1999,
}
FITS = {
    "either + stage indicator": {
        "status": "ok",
        "ame_pp": -1.83,
        "ci_lower_pp": -9.66,
        "ci_upper_pp": 6.0,
        "slope_logit": -0.2276,
        "n_regions": 11,
    },
    "either, no stage indicator": {
        "status": "ok",
        "ame_pp": -3.9,
        "ci_lower_pp": -7.21,
        "ci_upper_pp": -0.6,
        "slope_logit": -0.4846,
        "n_regions": 11,
    },
}
INDICATOR = {"with": "either + stage indicator", "without": "either, no stage indicator"}


def test_joint_test_text_gives_both_p_values_and_judges_at_alpha() -> None:
    consistent = context.joint_test_text(JOINT)
    assert consistent == (
        "p = 0.674 for the median slope and p = 1.000 for the share of 95 % intervals excluding zero (0 of 8), over "
        "1,999 permutations of turnout across regions: taken together, the specifications are consistent with no "
        "association"
    )
    unlikely = context.joint_test_text({**JOINT, "p_share": 0.049, "observed_excluding_zero": 5})
    assert unlikely.endswith("taken together, the specifications are unlikely under no association")
    assert "(5 of 8)" in unlikely
    assert context.joint_test_text({**JOINT, "p_median": 0.05}).endswith("consistent with no association")
    assert context.joint_test_text(None) == "no joint test (no specification is estimable)"


def test_stage_effect_text_without_and_with_the_indicator() -> None:
    text = context.stage_effect_text({"fits": FITS}, INDICATOR["with"], INDICATOR["without"])
    assert text == (
        "without the stage indicator -3.9 pp (95 % CI -7.2 to -0.6, which excludes zero; logit slope -0.485; 11 "
        "regions); with it -1.8 pp (95 % CI -9.7 to +6.0, which includes zero; logit slope -0.228; 11 regions)"
    )
    failed = {**FITS, "either + stage indicator": {**FITS["either + stage indicator"], "status": "not estimable: 3 df"}}
    assert context.stage_effect_text({"fits": failed}, INDICATOR["with"], INDICATOR["without"]).endswith(
        "with it not estimable (3 df)"
    )
    assert context.stage_effect_text({"fits": {}}, INDICATOR["with"], INDICATOR["without"]) == ""


def test_curve_context_from_a_numbers_file() -> None:
    spec = {
        "specifications": 18,
        "estimable": 8,
        "n_regions_min": 6,
        "n_regions_max": 8,
        "n_regions_by_definition": {"registered": [6, 6], "on ballot": [7, 8]},
    }
    stage = {
        "specification_curve": spec,
        "joint_test": JOINT,
        "bounds_sensitivity": {"specifications": 12},
        "counting_stage": {"default": "either + stage indicator", "indicator": INDICATOR, "fits": FITS},
    }
    words = context.curve_context(stage, {"counting_stage": "either + stage indicator"})
    assert words["spec"] is spec and words["joint"] is JOINT and words["bounds"] == {"specifications": 12}
    assert words["regions_by_definition"] == "registered: 6 regions; on ballot: 7 to 8 regions"
    assert words["regions_range"] == "6 to 8 regions"
    assert words["stage_applies"] is True and words["stage_default"] == "either + stage indicator"
    assert words["stage_effect"].startswith("without the stage indicator -3.9 pp")
    share = context.curve_context(
        {
            "specification_curve": {**spec, "n_regions_by_definition": {}},
            "joint_test": None,
            "counting_stage": {"default": "registered", "indicator": INDICATOR, "fits": {}},
        },
        {"counting_stage": "registered"},
    )
    assert share["stage_applies"] is False and share["stage_effect"] == "" and share["regions_by_definition"] == ""
    assert share["joint_text"] == "no joint test (no specification is estimable)"
