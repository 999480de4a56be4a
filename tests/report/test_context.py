"""The report's context (akim_turnout.report.context) and its templates: each judgement rule on both sides of its
switch with the exact sentence, the words that follow the parameters, the refusal of undeclared reads, and, on the
pipeline's outputs, that the context carries the numbers files' numbers and renders every section."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from akim_turnout.pipeline.paths import StageFiles, load_params, project_root
from akim_turnout.report import context as report_context
from akim_turnout.report import html as report
from akim_turnout.report import labels
from akim_turnout.report.context import (
    evidence_text,
    glm_intervals,
    grid_text,
    headline_choice_text,
    left_out_range,
    main_interval_text,
    mc_se_pp,
    mde_text,
    not_estimable_models,
    not_estimable_text,
    p_value_text,
    pp,
    predictor_step_text,
    predictor_unit_text,
    real_fit_text,
    replication_text,
    tie_text,
)

ROOT = project_root()
NOTEBOOK = ROOT / "notebooks/07_report.ipynb"


# --- judgement rules on constructed inputs ------------------------------------------------------------------------


def test_pp_prints_one_decimal_signed_or_not_and_a_dash_when_missing() -> None:
    assert pp(-8.08197) == "-8.1"
    assert pp(0.506023) == "+0.5"
    assert pp(0.0) == "+0.0"
    assert pp(6.84, signed=False) == "6.8"
    assert pp(None) == "–" and pp(None, False) == "–"


@pytest.mark.parametrize(
    ("size_low", "size_high", "expected"),
    [
        (0.093, 0.152, "too narrow"),  # the whole interval of the size above 5 %
        (0.0501, 0.08, "too narrow"),
        (0.01, 0.049, "too wide"),  # the whole interval below 5 %
        (0.025, 0.061, "of about the right width"),
        (0.05, 0.09, "of about the right width"),  # a bound at the level itself: not judged off
        (0.01, 0.05, "of about the right width"),
    ],
)
def test_glm_intervals_judges_by_where_the_size_interval_lies(size_low, size_high, expected) -> None:
    assert glm_intervals(size_low, size_high, 0.05) == expected


def test_evidence_text_counts_every_status_and_zero_for_absent_ones() -> None:
    statuses = {"published": 57, "published (rounded)": 3, "conflict": 8, "interim only": 3, "missing": 69}
    assert evidence_text(statuses, 140) == (
        "Of the 140 cells of the regional table, 57 are published, 3 published rounded, 8 disputed between sources, "
        "3 published only as interim figures and 69 missing"
    )
    assert evidence_text({"published": 2}, 2) == (
        "Of the 2 cells of the regional table, 2 are published, 0 published rounded, 0 disputed between sources, "
        "0 published only as interim figures and 0 missing"
    )


def test_mde_text_with_interval_with_open_bound_and_without_mde() -> None:
    metrics = {"mde_pp": 5.64, "mde_pp_low": 5.21, "mde_pp_high": 7.349, "mde_pp_linear": 6.84}
    assert mde_text(metrics, "") == (
        "5.6 percentage points (interval 5.2 to 7.3; from a probit power curve fitted by maximum likelihood to the "
        "rejection counts, 6.8 by linear interpolation; the interval holds the Monte Carlo error of the fit and the "
        "linear value)"
    )
    assert mde_text({**metrics, "mde_pp_high": None, "mde_pp_linear": None}, "") == (
        "5.6 percentage points (interval 5.2 to beyond the simulated effects; from a probit power curve fitted by "
        "maximum likelihood to the rejection counts; the interval holds the Monte Carlo error of the fit and the "
        "linear value)"
    )
    none = {"mde_pp": None, "mde_pp_low": None, "mde_pp_high": None}
    assert mde_text(none, "size above 5 %") == "not quoted (size above 5 %)"


def test_tie_p_value_and_left_out_texts() -> None:
    assert tie_text(["wild_bootstrap"]) == (
        "on the same simulated data sets the wild cluster bootstrap is told apart from every method the rule compared "
        "with it"
    )
    assert tie_text(["gee_bias_reduced", "wild_bootstrap", "cluster_t"]) == (
        "the simulation study cannot tell the GEE with bias-reduced covariance apart from the wild cluster bootstrap "
        "and the cluster-robust GLM with t(G-1) on the same simulated data sets, so the headline is shown under each"
    )
    assert p_value_text(0.0069, 0.000828, 9999) == (
        "0.0069 (Monte Carlo SE 0.0008 over 9,999 bootstrap draws, within 0.001)"
    )
    # sqrt(0.4 * 0.6 / 9999) = 0.0049: above the target, with the draws that would meet it (0.24 / 1e-6)
    assert p_value_text(0.4, 0.004899, 9999, 240000) == (
        "0.4000 (Monte Carlo SE 0.0049 over 9,999 bootstrap draws, above 0.001 at this p-value; about 240,000 draws "
        "would bring it to 0.001)"
    )
    assert p_value_text(0.0123, None, 9999) == "0.012"
    rows = [
        {"method": "gee_bias_reduced", "left_out": "T", "estimate": -0.2, "ci_lower": -0.3, "ci_upper": -0.1},
        {"method": "wild_bootstrap", "left_out": "T", "estimate": -0.25, "ci_lower": -0.4, "ci_upper": 0.1},
        {"method": "wild_bootstrap", "left_out": "A", "estimate": -0.35, "ci_lower": -0.5, "ci_upper": -0.2},
        {"method": "wild_bootstrap", "left_out": "B", "estimate": -0.3, "ci_lower": 0.1, "ci_upper": 0.4},
    ]
    wild = left_out_range(rows, "wild_bootstrap")
    assert (wild["low"], wild["high"], wild["excluding_zero"], wild["count"]) == (-0.35, -0.25, 2, 3)
    assert wild["largest"] == rows[1]
    with pytest.raises(ValueError, match="no leave-one-region-out rows for 'mixedlm'"):
        left_out_range(rows, "mixedlm")


def test_main_interval_text_on_each_side_of_zero() -> None:
    assert main_interval_text(-0.87, -0.10, 2, 15) == "is one of the 2 of 15 that exclude zero"
    assert main_interval_text(0.10, 0.87, 2, 15) == "is one of the 2 of 15 that exclude zero"
    assert main_interval_text(-0.87, 0.10, 2, 15) == "includes zero, as 13 of the 15 do"
    assert main_interval_text(-0.87, 0.0, 0, 15) == "includes zero, as 15 of the 15 do"


def _coefficients(statuses: list[str]) -> pd.DataFrame:
    models = ["main, unweighted", "mix, unweighted", "mix, unweighted"]
    terms = ["candidates per post", "intercept", "self-nominated share"]
    return pd.DataFrame({"model": models, "term": terms, "regions (count)": "6", "status": statuses})


def test_not_estimable_text_names_model_terms_regions_and_reason() -> None:
    reason = "not estimable: 3 residual degrees of freedom (fewer than 4)"
    frame = _coefficients(["ok", reason, reason])
    assert not_estimable_text(frame) == (
        "mix, unweighted (self-nominated share; 6 regions; 3 residual degrees of freedom (fewer than 4))"
    )
    assert not_estimable_models(frame) == "mix, unweighted"
    frame = _coefficients(["ok", "ok", "ok"])
    assert not_estimable_text(frame) == "none" and not_estimable_models(frame) == "none"


def test_real_fit_and_replication_sentences_on_both_sides() -> None:
    assert real_fit_text(True) == "a real race-level model was fitted"
    assert real_fit_text(False) == "no real race-level model can be fitted"
    assert replication_text([]) == "Every method ran on the same data sets."
    assert replication_text(["mixed model on the empirical logit", "naive binomial GLM"]) == (
        "mixed model on the empirical logit, naive binomial GLM ran on fewer data sets; their rows are comparisons "
        "only, without an MDE."
    )


def test_monte_carlo_standard_error_in_percentage_points() -> None:
    # sqrt(0.05 * 0.95 / 500) = 0.0097468; sqrt(0.95 * 0.05 / 200) = 0.0154110
    assert mc_se_pp(0.05, 500) == pytest.approx(0.974679, abs=1e-6)
    assert mc_se_pp(0.95, 200) == pytest.approx(1.541104, abs=1e-6)
    assert grid_text([0.0, -0.15, -0.3, -0.6]) == "-0.15, -0.3, -0.6"


def test_predictor_words_follow_the_predictor() -> None:
    assert predictor_step_text("cands_per_seat", 0.5) == "0.5 candidates more per post"
    assert predictor_step_text("self_share", 0.1) == "a self-nominated share higher by 0.1"
    assert predictor_unit_text("cands_per_seat") == "one candidate more per post"
    assert predictor_unit_text("women_share") == "a women's share one unit higher"


def test_headline_choice_names_the_recommendation_or_the_parameter() -> None:
    assert headline_choice_text("recommended", "wild_bootstrap", "wild_bootstrap") == (
        "the method the simulation study recommends, the wild cluster bootstrap"
    )
    assert headline_choice_text("glm", "cluster_t", "wild_bootstrap") == (
        "the cluster-robust GLM with t(G-1), as set in params.yaml (race_models.headline_model); the simulation "
        "study recommends the wild cluster bootstrap"
    )


def test_a_read_the_notebook_does_not_declare_is_refused(tmp_path: Path) -> None:
    files = report_context.DeclaredReads([StageFiles("ingest", tmp_path).tables], tmp_path)
    assert files.get("ingest", "tables") == tmp_path / "reports/tables/ingest"
    with pytest.raises(ValueError, match=r"the report reads reports/numbers/forensics.json, which its notebook"):
        files.get("forensics", "numbers")


def test_templates_escape_data_and_keep_building_blocks() -> None:
    numbering = report.Numbering.in_order(figures=["a"], tables=["t"])
    env = report.template_environment(numbering)
    template = env.from_string(
        "<p>{{ name }} ({{ fig('a') }}, {{ tab('t') }}) {{ x | fmt(',.1f') }}</p>{{ links([u]) }}"
    )
    html = template.render(name="<script>alert(1)</script>", x=1234.56, u="https://e.kz/?a=1&b=2")
    assert html == (
        '<p>&lt;script&gt;alert(1)&lt;/script&gt; (<a href="#fig-a">Figure 1</a>, <a href="#tab-t">Table 1</a>) '
        '1,234.6</p><a href="https://e.kz/?a=1&amp;b=2">https://e.kz/?a=1&amp;b=2</a>'
    )
    # a caption built in a template is escaped once, not twice
    table = env.from_string("{{ table(frame, key='t', caption='A & B ' ~ name) }}")
    html = table.render(frame=pd.DataFrame({"region": ["<b>"]}), name="<i>")
    assert "<b>Table 1.</b> A &amp; B &lt;i&gt;</caption>" in html and "<td>&lt;b&gt;</td>" in html


def test_the_notebook_is_thin() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]
    assert len([line for line in code if line.strip() and not line.lstrip().startswith("#")]) <= 40
    assert max(len(line) for line in code) <= 120
    text = "\n".join(code)
    assert not re.search(r"\bf[\"']", text) and "<p>" not in text, "no HTML or prose in the notebook"


# --- on the pipeline's outputs ------------------------------------------------------------------------------------


def _reads(root: Path) -> list[Path]:
    kinds = {
        "ingest": ("data", "figures", "tables", "numbers"),
        "regional_model": ("figures", "tables", "numbers"),
        "simulate": ("figures", "numbers"),
        "race_models": ("data", "figures", "tables", "numbers"),
        "simulation_study": ("data", "figures", "tables", "numbers"),
        "forensics": ("figures", "tables", "numbers"),
    }
    return [getattr(StageFiles(stage, root), kind) for stage, names in kinds.items() for kind in names]


@pytest.fixture(scope="module")
def real_context() -> dict:
    missing = [p for p in _reads(ROOT) if not p.exists()]
    if missing:
        pytest.skip(f"pipeline outputs missing ({missing[0]}): run `dvc repro` first")
    return report_context.build(_reads(ROOT), params=load_params(), title="T <&>")


def _numbers(stage: str) -> dict:
    return json.loads(StageFiles(stage, ROOT).numbers.read_text(encoding="utf-8"))


def test_context_holds_the_numbers_files_numbers(real_context) -> None:
    regional, race, study = _numbers("regional_model"), _numbers("race_models"), _numbers("simulation_study")
    assert real_context["ingest"] == _numbers("ingest")
    assert real_context["simulate"] == _numbers("simulate")
    assert real_context["forensics"] == _numbers("forensics")
    assert real_context["regional"]["spec"] == regional["specification_curve"]
    assert real_context["regional"]["main"] == regional["main_unweighted"]
    assert {k: real_context["regional"][k] for k in regional} == regional
    assert {k: real_context["race"][k] for k in race} == race
    assert {k: real_context["study"][k] for k in study} == study
    recommendation = json.loads((StageFiles("simulation_study", ROOT).data / "recommendation.json").read_text())
    assert real_context["study"]["best"] == study["real_design"]["methods"][recommendation["method"]]
    assert real_context["race"]["headline_fit"] == json.loads(
        (StageFiles("race_models", ROOT).data / "headline.json").read_text()
    )
    glm = study["real_design"]["methods"]["cluster_t"]
    assert real_context["race"]["glm_intervals"] == glm_intervals(
        glm["size_low"], glm["size_high"], study["real_design"]["alpha"]
    )
    assert set(real_context["figures"]) == set(report_context.FIGURES)
    assert all(Path(path).is_file() for path in real_context["figures"].values())
    assert set(report_context.TABLES) - {"sources"} <= set(real_context["tables"])


def _render_all(context: dict) -> str:
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    return "".join(report.render_section(name, context, numbering) for name in report_context.TEMPLATES)


def test_every_section_renders_and_data_strings_show_as_text(real_context) -> None:
    context = copy.deepcopy(real_context)
    context["regions"]["lowest"]["region"] = "<script>alert(1)</script>"
    context["sources"][0]["publisher"] = "<script>x</script>"
    html = _render_all(context)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<h1>T &lt;&amp;&gt;</h1>" in html
    for key in report_context.FIGURES:
        assert f'id="fig-{key}"' in html and f'href="#fig-{key}"' in html
    for key in report_context.TABLES:
        assert f'id="tab-{key}"' in html and f'href="#tab-{key}"' in html
    assert html.count("<figure") == len(report_context.FIGURES)


def test_a_tie_shows_the_headline_under_each_tied_method(real_context) -> None:
    context = copy.deepcopy(real_context)
    race = context["race"]
    first = race["headlines"][0]
    other = "wild_bootstrap" if first["method"] != "wild_bootstrap" else "gee_bias_reduced"
    race["headlines"] = [first, {**first, "method": other, "estimate": -0.1234}]
    race["leave_one_region_out"] = [
        *race["leave_one_region_out"],
        *({**row, "method": other} for row in race["leave_one_region_out"] if row["method"] == first["method"]),
    ]
    race.update(
        report_context.race_precision(
            race, {"method": first["method"], "methods": [first["method"], other]}, "recommended"
        )
    )
    table = context["tables"]["headlines"]
    context["tables"]["headlines"] = pd.concat([table, table.assign(method=labels.method(other))], ignore_index=True)
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    html = report.render_section("race_models", context, numbering)
    assert race["tied"] is True
    assert (
        f"cannot tell the {labels.method(first['method'])} apart from the {labels.method(other)} on the same simulated "
        "data sets, so the headline is shown under each"
    ) in html
    assert html.count(labels.method(other)) >= 2  # in the sentence and as a row of the headlines table


def test_words_follow_the_parameters(real_context) -> None:
    params = copy.deepcopy(load_params())
    params["regional_model"].update(main_predictor="self_share", weight="posts")
    params["race_models"]["headline_model"] = "glm"
    context = report_context.build(_reads(ROOT), params=params, title="T")
    assert context["words"]["predictor"] == "self-nominated share"
    assert context["words"]["weighting"] == "posts-weighted"
    assert real_context["words"]["weighting"] == "electorate-weighted"
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    html = report.render_section("regional_model", context, numbering)
    assert "fit turnout on self-nominated share under each combination" in html
    assert "Its coefficient of self-nominated share is" in html
    assert "coefficient of candidates per post" not in html
    html = report.render_section("race_models", context, numbering)
    assert "as set in params.yaml (race_models.headline_model)" in html
    default = report.render_section("regional_model", real_context, numbering)
    assert "fit turnout on candidates per post under each combination" in default


def test_units_and_counts_follow_the_terms() -> None:
    from akim_turnout.report.context import count_text, race_units_text, regional_units_text

    assert regional_units_text(["cands_per_seat", "cands_per_seat", "self_share"]) == (
        "one candidate more per post; a share from 0 to 1 for self-nominated share"
    )
    assert regional_units_text(["self_share", "women_share"]) == "each a share from 0 to 1"
    assert race_units_text(["any_woman", "np.log(n_candidates)", "self_share"]) == (
        "a change from 0 to 1 of woman on the ballot and self-nominated share; "
        "one unit of log candidates for log(candidates)"
    )
    assert race_units_text(["n_candidates", "self_share"]) == (
        "a change from 0 to 1 of self-nominated share; one candidate more for candidates"
    )
    assert race_units_text(["self_share"]) == "a change from 0 to 1 of self-nominated share"
    assert count_text(1, "inference method") == "one inference method"
    assert count_text(5, "inference method") == "five inference methods"
    assert count_text(12, "panel") == "12 panels"


def test_a_main_fit_that_is_not_estimable_is_said_so_without_its_refits(real_context) -> None:
    context = copy.deepcopy(real_context)
    reason = "2 observations for 2 parameters; cannot fit"
    regional = context["regional"]
    regional["main"] = {**regional["main"], "estimable": False, "estimate": None, "ci_lower": None, "ci_upper": None}
    regional["leave_one_out"] = {"not_estimable": reason}
    regional["permutation"] = {"not_estimable": reason, "n_permutations": 99}
    regional["main_reason"], regional["main_interval"] = reason, "is not estimable"
    context["words"].update(predictor="self-nominated share", candidate_count=False)
    context["curve"]["stage_applies"] = False  # a share has no counting stage
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    html = report.render_section("regional_model", context, numbering)
    text = re.sub(r"\s+", " ", html)
    assert f"Its coefficient of self-nominated share is not estimable ({reason};" in text
    assert "and so are the leave-one-region-out refits" in text
    assert (
        "Leave-one-region-out influence: not computed, as the main fit of self-nominated share is not estimable "
        f"({reason})."
    ) in text
    assert "Permutation test of one specification: not computed" in text
    assert "Leaving out one region at a time moves it" not in text and "permutations gives p =" not in text
    assert "under each combination of the choices that can each be built: weighting" in text
    assert "the counting stage" not in text and "either count" not in text


def test_race_words_follow_the_formula_and_a_term_the_simulator_lacks(real_context) -> None:
    context = copy.deepcopy(real_context)
    context["race"]["headline"] = {**context["race"]["headline"], "true": None, "population_averaged": None}
    context["words"].update(main_term="candidates", race_units="one candidate more for candidates")
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    text = re.sub(r"\s+", " ", report.render_section("race_models", context, numbering))
    assert "The simulator's true model has no candidates term (its terms: " in text
    assert "one unit of log candidates" not in text and "one candidate more for candidates" in text
    default = re.sub(r"\s+", " ", report.render_section("race_models", real_context, numbering))
    assert "races were simulated with a conditional coefficient of" in default
    assert "one unit of log candidates for log(candidates)" in default
    assert "Three panels of dot-and-whisker" in default


def test_the_not_estimable_figure_states_what_and_why() -> None:
    from akim_turnout.report import figures

    figure = figures.plot_not_estimable("Permutation test: main model (women's share)", "2 observations; cannot fit")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["Permutation test: main model (women's share)\nnot estimable: 2 observations; cannot fit"]
    assert not figure.axes[0].axison


def test_diagnostics_say_whether_the_real_races_were_examined(real_context) -> None:
    numbering = report.Numbering.in_order(figures=report_context.FIGURES, tables=report_context.TABLES)
    default = re.sub(r"\s+", " ", report.render_section("diagnostics", real_context, numbering))
    assert "too few to run the diagnostics. They are therefore shown on one simulated data set (" in default
    context = copy.deepcopy(real_context)
    context["forensics"]["real"] = {**context["forensics"]["simulated_clean"], "integer_p_value": 0.25}
    context["params"] = {**context["params"], "forensics": {**context["params"]["forensics"], "min_real_races": 2}}
    text = re.sub(r"\s+", " ", report.render_section("diagnostics", context, numbering))
    assert "too few to run" not in text
    assert (
        "at least 2 (<code>forensics.min_real_races</code>), so the diagnostics were run on them too "
        "(integer-percentage test p = 0.250), but so few races can show little. The diagnostics are therefore also "
        "shown on one simulated data set ("
    ) in text


def test_the_glm_intervals_are_judged_only_where_the_study_ran_the_glm() -> None:
    from akim_turnout.report.context import study_glm_intervals

    # exact size interval above, below and around alpha = 0.05
    assert study_glm_intervals({"cluster_t": {"size_low": 0.06, "size_high": 0.09}}, 0.05) == "too narrow"
    assert study_glm_intervals({"cluster_t": {"size_low": 0.01, "size_high": 0.04}}, 0.05) == "too wide"
    assert study_glm_intervals({"cluster_t": {"size_low": 0.03, "size_high": 0.07}}, 0.05) == "of about the right width"
    # a study of the wild bootstrap only (design.methods: [wild_bootstrap]) says nothing of the GLM's intervals
    only_wild = {"wild_bootstrap": {"size_low": 0.06, "size_high": 0.09}}
    assert study_glm_intervals(only_wild, 0.05) == (
        "not judged by the simulation study (it did not run the cluster-robust GLM)"
    )


def test_the_data_sets_at_effect_0_follow_a_null_n_replications_null() -> None:
    from akim_turnout.report.context import mc_se_pp, null_data_sets

    assert null_data_sets({"n_replications": 500, "n_replications_null": 2000}) == 2000
    # n_replications_null: null runs effect 0 with n_replications data sets (StudyDesign.replications_for)
    assert null_data_sets({"n_replications": 3, "n_replications_null": None}) == 3
    # its Monte Carlo SE of a 5 % size: 100 * sqrt(0.05 * 0.95 / 3) = 12.58 pp
    assert mc_se_pp(0.05, null_data_sets({"n_replications": 3, "n_replications_null": None})) == pytest.approx(
        12.583057, abs=1e-6
    )


def test_regions_range_says_when_no_specification_is_estimable() -> None:
    from akim_turnout.report.context import regions_range_text

    assert regions_range_text({"estimable": 8, "n_regions_min": 6, "n_regions_max": 11}) == "6 to 11 regions"
    assert regions_range_text({"estimable": 1, "n_regions_min": 11, "n_regions_max": 11}) == "11 regions"
    assert regions_range_text({"estimable": 0, "n_regions_min": 0, "n_regions_max": 0}) == "no estimable specification"
