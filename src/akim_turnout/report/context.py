"""Everything the report says, as one mapping: the stages' numbers, tables and figures, the parameters of the run,
and the sentences that depend on them (the judgement rules), for the templates in ``templates/sections/``.

The report notebook declares the outputs of earlier stages it reads (``stage_inputs("x").tables`` and the like, so
that the dependency check of ``dvc.yaml`` sees them) and passes them to :func:`build`; reading anything else is
refused. The judgement rules (:func:`pp`, :func:`glm_intervals`, :func:`evidence_text`, :func:`mde_text`, ...) are
plain functions of numbers, tested on both sides of each switch. Words that name a parameter's value (the regional
predictor, the weighting, an inference method or model) come from :mod:`akim_turnout.report.labels`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from akim_turnout.data import processed as data
from akim_turnout.models import inference
from akim_turnout.pipeline import outputs
from akim_turnout.pipeline.paths import StageFiles, project_root
from akim_turnout.report import html as report
from akim_turnout.report import labels
from akim_turnout.report import later_rounds as later
from akim_turnout.report import tables as specs

SECTIONS = {
    "summary": "Summary",
    "data": "Data and coverage",
    "descriptive": "Turnout by region and candidate mix",
    "regional-model": "Regional model (real data)",
    "calibration": "Calibration of the simulated races",
    "race-models": "Race-level models (simulated races)",
    "validation": "Method validation (simulation study)",
    "diagnostics": "Diagnostics (election forensics)",
    "later-rounds": "Later rounds (real races, descriptive)",
    "limitations": "Limitations",
    "reproduce": "How to reproduce",
    "provenance": "Provenance",
}
# One template per section, rendered in this order after the title (templates/sections/<name>.html.j2).
TEMPLATES = (
    "title",
    "summary",
    "data",
    "descriptive",
    "regional_model",
    "calibration",
    "race_models",
    "validation",
    "diagnostics",
    "later_rounds",
    "limitations",
    "reproduce",
    "provenance",
)
# Figures and tables in order of appearance (numbered so, whatever order the text cites them in).
FIGURES = (
    "coverage",
    "turnout_by_region",
    "candidate_mix",
    "specification_curve",
    "turnout_vs_mix",
    "leave_one_out",
    "permutation",
    "candidate_distributions",
    "simulated_turnout",
    "race_coefficients",
    "size_coverage",
    "power_curves",
    "fingerprint_clean",
    "integer_clean",
    "integer_planted",
)
TABLES = (
    "coverage_counts",
    "remainders",
    "sources",
    "regional",
    "specification_curve",
    "counting_stage",
    "bounds_sensitivity",
    "regional_models",
    "regional_ames",
    "calibration",
    "race_comparison",
    "headlines",
    "leave_one_region_out",
    "race_ames",
    "real_readiness",
    "study",
    "recommendation",
    "mde_sensitivity",
    "forensics",
    "later_rounds",
    "inputs",
    "versions",
)
# Figure key -> (stage, file name).
FIGURE_FILES = {
    "coverage": ("ingest", "coverage_2021.png"),
    "turnout_by_region": ("ingest", "turnout_by_region.png"),
    "candidate_mix": ("regional_model", "candidate_mix.png"),
    "specification_curve": ("regional_model", "specification_curve.png"),
    "turnout_vs_mix": ("regional_model", "turnout_vs_mix.png"),
    "leave_one_out": ("regional_model", "leave_one_out.png"),
    "permutation": ("regional_model", "permutation_null.png"),
    "candidate_distributions": ("simulate", "candidate_distributions.png"),
    "simulated_turnout": ("simulate", "simulated_turnout.png"),
    "race_coefficients": ("race_models", "coefficients.png"),
    "size_coverage": ("simulation_study", "size_coverage.png"),
    "power_curves": ("simulation_study", "power_curves.png"),
    "fingerprint_clean": ("forensics", "fingerprint_simulated_clean.png"),
    "integer_clean": ("forensics", "integer_simulated_clean.png"),
    "integer_planted": ("forensics", "integer_simulated_planted.png"),
}
# Table key -> (stage, file stem) of the publication tables shown as they are.
TABLE_FILES = {
    "coverage_counts": ("ingest", "coverage_2021"),
    "remainders": ("ingest", "remainders"),
    "regional": ("ingest", "regional_2021"),
    "specification_curve": ("regional_model", "specification_curve"),
    "counting_stage": ("regional_model", "counting_stage"),
    "bounds_sensitivity": ("regional_model", "bounds_sensitivity"),
    "regional_models": ("regional_model", "coefficients"),
    "regional_samples": ("regional_model", "samples"),
    "regional_ames": ("regional_model", "marginal_effects"),
    "race_comparison": ("race_models", "comparison"),
    "race_ames": ("race_models", "marginal_effects"),
    "real_readiness": ("race_models", "real_readiness"),
    "headlines": ("race_models", "headlines"),
    "leave_one_region_out": ("race_models", "leave_one_region_out"),
    "study": ("simulation_study", "methods"),
    "recommendation": ("simulation_study", "recommendation"),
    "mde_sensitivity": ("simulation_study", "mde_sensitivity"),
    "forensics": ("forensics", "summary"),
}
STAGES = ("ingest", "regional_model", "simulate", "race_models", "simulation_study", "forensics")
# Regional predictors counted in candidates per post: their step reads "0.5 candidates more per post".
CANDIDATES_PER_POST = ("cands_per_seat", "cands_per_post")


# --- judgement rules and wording --------------------------------------------------------------------------------


def pp(value: float | None, signed: bool = True) -> str:
    """A number of percentage points as printed in the report (one decimal; signed by default; '–' if missing)."""
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def glm_intervals(size_low: float, size_high: float, alpha: float) -> str:
    """How wide the cluster-robust GLM's intervals are, judged by its size in the simulation study: 'too narrow'
    when the exact 95 % interval of its size lies above the nominal level, 'too wide' when below, else 'of about the
    right width'."""
    if size_low > alpha:
        return "too narrow"
    if size_high < alpha:
        return "too wide"
    return "of about the right width"


def study_glm_intervals(methods: Mapping[str, Mapping[str, Any]], alpha: float) -> str:
    """:func:`glm_intervals` of the cluster-robust GLM (``cluster_t``) from the study's real-design rows by method,
    or, where the study did not run it (``design.methods`` without ``cluster_t``), that they are not judged."""
    glm = methods.get("cluster_t")
    if glm is None:
        return "not judged by the simulation study (it did not run the cluster-robust GLM)"
    return glm_intervals(glm["size_low"], glm["size_high"], alpha)


def evidence_text(statuses: Mapping[str, int], cells: int) -> str:
    """What the regional table of 2021 holds, cell by cell, from the counts of its coverage statuses."""
    count = lambda status: statuses.get(status, 0)  # noqa: E731
    return (
        f"Of the {cells} cells of the regional table, {count('published')} are published, "
        f"{count('published (rounded)')} published rounded, {count('conflict')} disputed between sources, "
        f"{count('interim only')} published only as interim figures and {count('missing')} missing"
    )


def mde_text(method_metrics: Mapping[str, Any], note: str) -> str:
    """The minimum detectable effect with its Monte Carlo interval, or why there is none (``note``, the MDE note
    of the study's table)."""
    if method_metrics["mde_pp"] is None:
        return f"not quoted ({note})"
    high = method_metrics["mde_pp_high"]
    high_text = "beyond the simulated effects" if high is None else f"{high:.1f}"
    linear = method_metrics.get("mde_pp_linear")
    linear_text = "" if linear is None else f", {linear:.1f} by linear interpolation"
    return (
        f"{method_metrics['mde_pp']:.1f} percentage points (interval {method_metrics['mde_pp_low']:.1f} to "
        f"{high_text}; from a probit power curve fitted by maximum likelihood to the rejection counts{linear_text}; "
        "the interval holds the Monte Carlo error of the fit and the linear value)"
    )


def main_interval_text(ci_lower: float, ci_upper: float, excluding_zero: int, estimable: int) -> str:
    """Where the detailed specification's 95 % interval stands among the specification curve's."""
    if ci_upper < 0 or ci_lower > 0:
        return f"is one of the {excluding_zero} of {estimable} that exclude zero"
    return f"includes zero, as {estimable - excluding_zero} of the {estimable} do"


def not_estimable_text(coefficients: pd.DataFrame) -> str:
    """The regional fits that are not estimable, each with its terms, regions and reason; 'none' if all are."""
    failed = coefficients[coefficients["status"] != "ok"]
    parts = [
        f"{model} ({' and '.join(rows.loc[rows['term'] != labels.term('Intercept'), 'term'])}; "
        f"{rows['regions (count)'].iloc[0]} regions; {rows['status'].iloc[0].removeprefix('not estimable: ')})"
        for model, rows in failed.groupby("model", sort=False)
    ]
    return "; ".join(parts) or "none"


def not_estimable_models(coefficients: pd.DataFrame) -> str:
    """The names of the regional fits that are not estimable, comma-separated; 'none' if all are."""
    return ", ".join(coefficients.loc[coefficients["status"] != "ok", "model"].drop_duplicates()) or "none"


def real_fit_text(fitted: bool) -> str:
    """Whether real races were fitted."""
    return "a real race-level model was fitted" if fitted else "no real race-level model can be fitted"


def replication_text(few: Iterable[str]) -> str:
    """Which methods ran on fewer simulated data sets than the others (method labels), or that none did."""
    few = list(few)
    if few:
        return ", ".join(few) + " ran on fewer data sets; their rows are comparisons only, without an MDE."
    return "Every method ran on the same data sets."


def null_data_sets(study: Mapping[str, Any]) -> int:
    """Data sets at effect 0 of the study's numbers: ``n_replications_null``, or, where it is null (the design's
    ``n_replications_null: null``), ``n_replications``, as the study runs it (StudyDesign.replications_for)."""
    null = study.get("n_replications_null")
    return int(study["n_replications"] if null is None else null)


def mc_se_pp(rate: float, n: int) -> float:
    """The Monte Carlo standard error, in percentage points, of a rate near ``rate`` estimated from ``n`` data sets."""
    return 100 * (rate * (1 - rate) / n) ** 0.5


def predictor_step_text(predictor: str, step: float) -> str:
    """A change of ``step`` in a regional predictor, in words: '0.5 candidates more per post',
    'a self-nominated share higher by 0.1'."""
    if predictor in CANDIDATES_PER_POST:
        return f"{step:g} candidates more per post"
    return f"a {labels.term(predictor)} higher by {step:g}"


def predictor_unit_text(predictor: str) -> str:
    """One unit more of a regional predictor, in words, for the caption of the marginal effects."""
    if predictor in CANDIDATES_PER_POST:
        return "one candidate more per post"
    return f"a {labels.term(predictor)} one unit higher"


def regional_units_text(predictors: Iterable[str]) -> str:
    """What one unit of each regional predictor is, for the caption of the regional marginal effects: 'one
    candidate more per post; a share from 0 to 1 for the shares', or 'each a share from 0 to 1'."""
    predictors = list(dict.fromkeys(predictors))
    counts = [p for p in predictors if p in CANDIDATES_PER_POST]
    shares = [p for p in predictors if p not in CANDIDATES_PER_POST]
    parts = [predictor_unit_text(counts[0])] if counts else []
    if shares:
        parts.append(("a share from 0 to 1 for " + labels.terms(shares)) if counts else "each a share from 0 to 1")
    return "; ".join(parts)


COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """'one inference method', 'five inference methods', '12 panels'."""
    number = COUNT_WORDS[n] if 0 <= n < len(COUNT_WORDS) else f"{n:,}"
    return f"{number} {noun if n == 1 else plural or noun + 's'}"


def race_units_text(terms: Iterable[str]) -> str:
    """What 'one unit more' of each race-level term is, for the caption of the race marginal effects:
    'a change from 0 to 1 of self-nominated share and woman on the ballot; one unit of log candidates for
    log(candidates)'."""
    terms = list(terms)
    logged = [t for t in terms if t.startswith("np.log(")]
    counts = [t for t in terms if t == "n_candidates"]
    rest = [t for t in terms if t not in logged and t not in counts]
    parts = [f"a change from 0 to 1 of {labels.terms(rest)}"] if rest else []
    parts += [f"one unit of log candidates for {labels.term(t)}" for t in logged]
    parts += [f"one candidate more for {labels.term(t)}" for t in counts]
    return "; ".join(parts)


def headline_choice_text(headline_model: str, headline_method: str, recommended: str) -> str:
    """Which method the headline uses and why: the study's recommendation, or the parameter's choice."""
    if headline_model == "recommended":
        return f"the method the simulation study recommends, the {labels.method(recommended)}"
    return (
        f"the {labels.method(headline_method)}, as set in params.yaml (race_models.headline_model); "
        f"the simulation study recommends the {labels.method(recommended)}"
    )


# --- the specification curve: joint test, counting stage, bounds (words judged from the numbers file) ------------


def joint_test_text(joint: Mapping[str, Any] | None, alpha: float = 0.05) -> str:
    """What the joint permutation test of the curve says, with both p-values and the number of draws; judged at
    ``alpha``: either the curve as a whole is unlikely under no association, or it is consistent with none."""
    if joint is None:
        return "no joint test (no specification is estimable)"
    numbers = (
        f"p = {joint['p_median']:.3f} for the median slope and p = {joint['p_share']:.3f} for the share of 95 % "
        f"intervals excluding zero ({joint['observed_excluding_zero']} of {joint['n_specifications']}), over "
        f"{joint['n_permutations']:,} permutations of turnout across regions"
    )
    if min(joint["p_median"], joint["p_share"]) < alpha:
        return f"{numbers}: taken together, the specifications are unlikely under no association"
    return f"{numbers}: taken together, the specifications are consistent with no association"


def stage_effect_text(counting: Mapping[str, Any], stage_with: str, stage_without: str) -> str:
    """What the stage indicator does to the default slope: the slope (pp per step, 95 % CI) of the either count
    without and with the indicator, and whether the interval excludes zero in each."""
    fits = counting["fits"]
    if stage_with not in fits or stage_without not in fits:
        return ""

    def one(fit: Mapping[str, Any]) -> str:
        if fit["status"] != "ok":
            return f"not estimable ({fit['status'].removeprefix('not estimable: ')})"
        side = "excludes" if fit["ci_lower_pp"] > 0 or fit["ci_upper_pp"] < 0 else "includes"
        return (
            f"{pp(fit['ame_pp'])} pp (95 % CI {pp(fit['ci_lower_pp'])} to {pp(fit['ci_upper_pp'])}, which {side} "
            f"zero; logit slope {fit['slope_logit']:.3f}; {fit['n_regions']} regions)"
        )

    return f"without the stage indicator {one(fits[stage_without])}; with it {one(fits[stage_with])}"


def regions_range_text(spec: Mapping[str, Any]) -> str:
    """How many regions the estimable specifications rest on: "6 to 11 regions", "11 regions", or that none is
    estimable."""
    if not spec.get("estimable"):
        return "no estimable specification"
    low, high = spec["n_regions_min"], spec["n_regions_max"]
    return f"{low} regions" if low == high else f"{low} to {high} regions"


def curve_context(regional_stage: Mapping[str, Any], regional_params: Mapping[str, Any]) -> dict[str, Any]:
    """The specification curve's part of the context: its summary, the joint test and its sentence, the bounds
    sensitivity, the counting-stage fits of the default and what the indicator does, the default stage."""
    counting = regional_stage.get("counting_stage") or {"default": regional_params.get("counting_stage"), "fits": {}}
    indicator = counting.get("indicator", {})
    spec = regional_stage["specification_curve"]
    return {
        "spec": spec,
        "joint": regional_stage.get("joint_test"),
        "joint_text": joint_test_text(regional_stage.get("joint_test")),
        "bounds": regional_stage.get("bounds_sensitivity", {}),
        "stages": counting["fits"],
        "stage_default": counting["default"],
        "stage_effect": stage_effect_text(counting, indicator.get("with", ""), indicator.get("without", "")),
        "stage_applies": bool(counting["fits"]),
        "regions_range": regions_range_text(spec),
        "regions_by_definition": "; ".join(
            f"{name}: {low}" + (f" to {high}" if high != low else "") + " regions"
            for name, (low, high) in spec.get("n_regions_by_definition", {}).items()
        ),
    }


def grid_text(effects: Iterable[float]) -> str:
    """The non-zero true effects of the simulation study, as listed in the text."""
    return ", ".join(f"{effect:g}" for effect in effects if effect != 0)


def tie_text(methods: Sequence[str]) -> str:
    """Whether the study chose one method or could not tell several apart (the recommended one first)."""
    if len(methods) == 1:
        return (
            f"on the same simulated data sets the {labels.method(methods[0])} is told apart from every method the "
            "rule compared with it"
        )
    others = " and the ".join(labels.method(m) for m in methods[1:])
    return (
        f"the simulation study cannot tell the {labels.method(methods[0])} apart from the {others} on the same "
        "simulated data sets, so the headline is shown under each"
    )


def p_value_text(p_value: float, mc_se: float | None, n_boot: int, draws_for_target: int | None = None) -> str:
    """A bootstrap p-value with its Monte Carlo standard error and the draws behind it; whether that SE is within
    the target of 0.001, and if not, about how many draws would bring it there."""
    if mc_se is None:
        return f"{p_value:.3f}"
    text = f"{p_value:.4f} (Monte Carlo SE {mc_se:.4f} over {n_boot:,} bootstrap draws"
    if mc_se <= 0.001:
        return text + ", within 0.001)"
    more = f"; about {draws_for_target:,} draws would bring it to 0.001" if draws_for_target else ""
    return text + f", above 0.001 at this p-value{more})"


def left_out_range(rows: Sequence[Mapping[str, Any]], method: str) -> dict[str, Any]:
    """The headline of ``method`` with each region left out: its lowest and highest estimate, how many of the
    intervals exclude zero, and the row of the largest region (the first, :func:`akim_turnout.models.race.
    leave_one_cluster_out` puts the largest electorate first)."""
    own = [r for r in rows if r["method"] == method]
    if not own:
        raise ValueError(f"no leave-one-region-out rows for {method!r}")
    excluding = sum(1 for r in own if r["ci_upper"] is not None and (r["ci_upper"] < 0 or r["ci_lower"] > 0))
    return {
        "low": min(r["estimate"] for r in own),
        "high": max(r["estimate"] for r in own),
        "excluding_zero": excluding,
        "count": len(own),
        "largest": own[0],
    }


def calibration_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The simulate stage's comparison of SIMULATED races with every published race-level distribution (rows of
    :func:`akim_turnout.study.simulate.published_comparison`, kept in its numbers file), as the report prints it."""
    frame = pd.DataFrame(list(records), columns=list(specs.PUBLISHED_COMPARISON))
    return outputs.publication_table(frame, specs.PUBLISHED_COMPARISON)


def scenarios_text(names: Iterable[str]) -> str:
    """Sensitivity scenarios (``"base"`` or ``"setting=value"``) as readers see them, joined by semicolons."""
    words = []
    for name in names:
        key, _, value = str(name).partition("=")
        words.append(specs.setting(key) + (f" {value}" if value else ""))
    return "; ".join(words) if words else "none"


def kinds_text(table: pd.DataFrame) -> dict[str, int]:
    """How many rows of the calibration table are identities, fitted matches and checks."""
    return {str(k): int(v) for k, v in table["kind"].value_counts().items()} if len(table) else {}


# --- reading ------------------------------------------------------------------------------------------------------


class DeclaredReads:
    """The outputs of earlier stages the report may read: exactly those its notebook declares."""

    def __init__(self, reads: Iterable[str | Path], root: Path) -> None:
        self.root = Path(root)
        self.paths = {Path(path).resolve() for path in reads}

    def get(self, stage: str, kind: str) -> Path:
        path = getattr(StageFiles(stage, self.root), kind)
        if path.resolve() not in self.paths:
            relative = StageFiles.relative(stage)[kind]
            raise ValueError(
                f"the report reads {relative}, which its notebook does not declare among its reads "
                "(declare it there and in the deps of the report stage in dvc.yaml)"
            )
        return path

    def json(self, stage: str) -> dict[str, Any]:
        return outputs.read_json(self.get(stage, "numbers"))

    def table(self, stage: str, stem: str) -> pd.DataFrame:
        return outputs.read_table(self.get(stage, "tables"), stem)

    def processed(self, name: str) -> pd.DataFrame:
        return data.read_processed(name, self.get("ingest", "data"))


def _plain(value: Any) -> Any:
    """A pandas/numpy scalar as a plain Python number (NaN stays a float)."""
    return value.item() if hasattr(value, "item") else value


def build(
    reads: Iterable[str | Path],
    *,
    params: Mapping[str, Any],
    title: str,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """The report's context: every number, table, figure path and judged sentence the templates show."""
    root = Path(root) if root is not None else project_root()
    files = DeclaredReads(reads, root)
    regional_params, race_params = params["regional_model"], params["race_models"]
    settings = params["simulate"]["settings"]

    ingest = files.json("ingest")
    regional_stage = files.json("regional_model")
    simulate = files.json("simulate")
    race = files.json("race_models")
    study = files.json("simulation_study")
    forensics = files.json("forensics")
    headline = outputs.read_json(files.get("race_models", "data") / "headline.json")
    recommendation = outputs.read_json(files.get("simulation_study", "data") / "recommendation.json")

    regional = files.processed("regional_2021")
    national = files.processed("national").set_index("round_id")
    sources = files.processed("sources")
    coverage = files.processed("coverage_2021")
    all_figures = files.processed("figures")
    remainders = files.processed("regional_remainders")
    n2021 = {key: _plain(value) for key, value in national.loc[data.ROUND_2021].items()}
    lowest = regional.loc[regional["turnout_pct"].idxmin()]
    highest = regional.loc[regional["turnout_pct"].idxmax()]
    posts_remainder = remainders.set_index(["round_id", "variable"]).loc[(data.ROUND_2021, "posts")]

    tables = {key: files.table(stage, stem) for key, (stage, stem) in TABLE_FILES.items()}
    figures = {key: str(files.get(stage, "figures") / name) for key, (stage, name) in FIGURE_FILES.items()}
    titles = data.regional_cell_sources(all_figures, sources, regional)
    tables["regional_titles"] = titles.rename(columns={name: s.label for name, s in specs.REGIONAL_2021.items()})
    tables["calibration"] = calibration_table(simulate.get("published_comparison", []))
    tables["inputs"] = report.stage_input_hashes(root, "report")
    tables["versions"] = report.package_versions()
    later_rounds = later.context(files.processed("races"), all_figures)
    tables["later_rounds"] = later_rounds["table"]

    spec = regional_stage["specification_curve"]
    main = regional_stage["main_unweighted"]
    # why the main fit is not estimable ('' if it is); its refits and permutation test are then not computed
    main_reason = "" if main.get("estimable", True) else regional_stage["leave_one_out"].get("not_estimable", "")
    predictor = regional_params["main_predictor"]
    step = spec.get("step", spec.get("step_candidates_per_post"))
    recommended = recommendation["method"]
    real = study["real_design"]
    best = real["methods"][recommended]
    glm_study = real["methods"].get("cluster_t")  # None where the study did not run it
    methods_table = tables["study"].set_index("method")
    note = methods_table.at[labels.method(recommended), "MDE note"] if best["mde_pp"] is None else ""
    unweighted_main = f"main, {labels.weighting(None)}"
    samples = tables["regional_samples"].set_index("model")
    readiness = tables["real_readiness"].set_index("round").loc[data.ROUND_2021]
    sensitivity = tables["mde_sensitivity"]
    statuses = {str(k): int(v) for k, v in coverage["status"].value_counts().items()}
    used = sources[sources["figures_backed"] > 0].sort_values("source_id")

    return {
        "title": title,
        "sections": dict(SECTIONS),
        "figures": figures,
        "tables": tables,
        "params": params,
        "params_yaml": yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=True),
        "settings": settings,
        "pp": pp,
        "words": {
            "predictor": labels.term(predictor),
            "predictor_title": labels.term(predictor)[:1].upper() + labels.term(predictor)[1:],
            "predictor_step": predictor_step_text(predictor, step),
            "predictor_unit": predictor_unit_text(predictor),
            "regional_units": regional_units_text([predictor, *regional_params["mix_predictors"]]),
            "candidate_count": predictor in CANDIDATES_PER_POST,  # the curve then crosses candidate counts
            "weighting": labels.weighting(regional_params["weight"]),
            "main_term": labels.term(race_params["main_term"]),
            "recommended": labels.method(recommended),
            "headline_choice": headline_choice_text(race_params["headline_model"], headline["family"], recommended),
            "unweighted_main": unweighted_main,
            "race_terms": labels.terms(list(race["labels"]["mix_terms"])),
            "race_units": race_units_text(race["labels"]["mix_terms"]),
            "race_panels": count_text(len(race["labels"]["mix_terms"]), "panel").capitalize(),
            "true_terms": "its terms: " + labels.terms(list(simulate["labels"]["true_terms"])),
            "study_methods": count_text(len(study["labels"]["methods"]), "inference method"),
        },
        "national": n2021,
        "national_shares": {
            "party_pct": 100 * n2021["cands_registered_party"] / n2021["cands_registered"],
            "self_pct": 100 * n2021["cands_registered_self"] / n2021["cands_registered"],
            "nur_otan_posts_pct": 100 * n2021["cands_nominated_nur_otan"] / n2021["posts"],
        },
        "regions": {
            "count": len(regional),
            "lowest": {"region": str(lowest["region"]), "turnout_pct": float(lowest["turnout_pct"])},
            "highest": {"region": str(highest["region"]), "turnout_pct": float(highest["turnout_pct"])},
        },
        "evidence": {
            "text": evidence_text(statuses, len(coverage)),
            "figures_2021": int((all_figures["round_id"] == data.ROUND_2021).sum()),
            "sources_backing": int((sources["figures_backed"] > 0).sum()),
            "posts_remainder": {key: _plain(value) for key, value in posts_remainder.items()},
        },
        "sources": [
            {
                "id": str(s.source_id),
                "publisher": str(s.publisher),
                "published": str(s.published),
                "figures": float(s.figures_backed),
                "url": str(s.url),
            }
            for s in used.itertuples()
        ],
        "ingest": ingest,
        "regional": {
            **regional_stage,
            "spec": spec,
            "step": step,
            "main": main,
            "dropped": str(samples.at[unweighted_main, "regions dropped (why)"]),
            "main_reason": main_reason,
            "main_interval": "is not estimable"
            if main_reason
            else main_interval_text(main["ci_lower"], main["ci_upper"], spec["excluding_zero"], spec["estimable"]),
            "not_estimable": not_estimable_text(tables["regional_models"]),
            "not_estimable_models": not_estimable_models(tables["regional_models"]),
            "min_df_resid": inference.MIN_DF_RESID,
            "max_leverage": inference.MAX_LEVERAGE,
        },
        "curve": curve_context(regional_stage, regional_params),
        "simulate": simulate,
        "calibration": {
            "kinds": kinds_text(pd.DataFrame(simulate.get("published_comparison", []), columns=["kind"])),
            "noise": simulate.get("noise_estimate", {}),
            "noise_regions": simulate.get("noise_regions", []),
            "noise_checks": simulate.get("noise_checks", []),
            "spread": simulate.get("cands_spread_fit", {}),
            "distribution_regions": simulate.get("distribution_regions", []),
        },
        "race": {
            **race,
            "headline_fit": headline,
            "glm_intervals": study_glm_intervals(real["methods"], real["alpha"]),
            "glm_study": glm_study,
            "real_fit": real_fit_text(race["real_fitted"]),
            **race_precision(race, recommendation, race_params["headline_model"]),
            "rounds": len(tables["real_readiness"]),
            "races_2021": str(readiness["races (count)"]),
            "usable_2021": str(readiness["usable (count)"]),
        },
        "study": {
            **study,
            "n_replications_null": null_data_sets(study),
            "recommendation": recommendation,
            "best": best,
            "mde": mde_text(best, note),
            "grid": grid_text(study["effect_grid"]),
            "replications": replication_text(
                labels.method(n) for n, m in real["methods"].items() if not m["enough_replications"]
            ),
            "mc_se_size": mc_se_pp(0.05, null_data_sets(study)),
            "mc_se_coverage": mc_se_pp(0.95, study["n_replications"]),
            "sensitivity_rows": len(sensitivity),
            "holds_text": scenarios_text(study.get("sensitivity", {}).get("holds", [])),
            "fails_text": scenarios_text(study.get("sensitivity", {}).get("fails", [])),
            "sensitivity_data_sets": str(sensitivity["data sets per effect (count)"].iloc[0]),
        },
        "forensics": forensics,
        "later_rounds": later_rounds,
    }


def race_precision(race: Mapping[str, Any], recommendation: Mapping[str, Any], headline_model: str) -> dict[str, Any]:
    """The report's words on the race-level headline's precision: the tie (or not) of the study's recommendation,
    the bootstrap p-value with its Monte Carlo SE, and the leave-one-region-out range of each headline method."""
    methods = list(recommendation.get("methods", [recommendation["method"]]))
    shown = [row["method"] for row in race["headlines"]]
    boot = race["wild_bootstrap"]
    return {
        "tie": tie_text(methods),
        "tied": len(methods) > 1 and headline_model == "recommended",
        "p_text": p_value_text(
            boot["p_value"], boot["p_value_mc_se"], boot["n_boot"], boot.get("draws_for_mc_se_0_001")
        ),
        "left_out": {m: left_out_range(race["leave_one_region_out"], m) for m in shown},
        "shown_methods": [labels.method(m) for m in shown],
    }
