"""Every publication table: which columns it shows, under which label and unit, with how many decimals.

A stage writes a table with ``outputs.save_table(frame, out.tables, stem, caption, tables.<SPEC>)``; the CSV, the
LaTeX file and the report show the same text. Machine-readable results (full precision at the stated rule) are in
each stage's data folder.
"""

from __future__ import annotations

from akim_turnout.pipeline.outputs import Column
from akim_turnout.pipeline.parameters import SIMULATION_SETTINGS
from akim_turnout.report import labels

P_VALUE = Column("p", 3, smallest=0.001)


def _estimate_columns(unit: str = "logit", decimals: int = 3) -> dict[str, Column]:
    return {
        "estimate": Column(f"estimate ({unit})", decimals),
        "std_error": Column(f"SE ({unit})", decimals),
        "ci_lower": Column("95 % CI low", decimals),
        "ci_upper": Column("95 % CI high", decimals),
        "p_value": P_VALUE,
    }


REGIONAL_2021 = {
    "region": Column("region"),
    "turnout_pct": Column("turnout (%)", 1),
    "posts": Column("posts (count)", 0),
    "cands": Column("candidates (count)", 0),
    "cands_kind": Column("candidate count"),
    "cands_per_seat": Column("candidates per post", 2),
    "self_share": Column("self-nominated (%)", 1, 100),
    "women_share": Column("women (%)", 1, 100),
    "voters_on_rolls": Column("voters on the rolls (count)", 0),
}

REMAINDERS = {
    "variable": Column("figure"),
    "national": Column("national total (count)", 0),
    "sum_known": Column("sum of known regions (count)", 0),
    "remainder": Column("remainder (count)", 0),
    "known_regions": Column("regions known (count)", 0),
    "missing_regions": Column("regions without it"),
}

SOURCES = {
    "source_id": Column("id"),
    "publisher": Column("publisher"),
    "published": Column("published"),
    "figures_backed": Column("figures (count)", 0),
    "url": Column("URL"),
}

REGIONAL_COEFFICIENTS = {
    "model": Column("model"),
    "term": Column("term", text=labels.term),
    **_estimate_columns(),
    "n_obs": Column("regions (count)", 0),
    "status": Column("status"),
}

REGIONAL_SAMPLES = {
    "model": Column("model"),
    "n_obs": Column("regions (count)", 0),
    "dropped": Column("regions dropped (why)"),
}

AMES = {
    "model": Column("model", text=labels.model),
    "term": Column("term", text=labels.term),
    "ame_pp": Column("average marginal effect (pp)", 2),
    "std_error_pp": Column("SE (pp)", 2),
    "ci_lower_pp": Column("95 % CI low (pp)", 2),
    "ci_upper_pp": Column("95 % CI high (pp)", 2),
    "p_value": P_VALUE,
    "status": Column("status"),
}

LEAVE_ONE_OUT = {
    "dropped_region": Column("region left out"),
    "n_obs": Column("regions (count)", 0),
    **_estimate_columns(),
    "change": Column("change from all regions (logit)", 3),
    "status": Column("status"),
}


def _slope_columns(step_label: str) -> dict[str, Column]:
    """The slope of a specification in pp of turnout per ``step_label`` of the predictor, and its interval."""
    return {
        "ame_pp": Column(f"change (pp per {step_label})", 2),
        "ci_lower_pp": Column("95 % CI low (pp)", 2),
        "ci_upper_pp": Column("95 % CI high (pp)", 2),
    }


def specification_curve_columns(step_label: str = "+0.5 candidates per post") -> dict[str, Column]:
    """Columns of the specification curve; the slope's label follows the predictor's step (e.g. '+0.1
    self-nominated share', :func:`akim_turnout.models.specification.step_label`)."""
    return {
        "rank": Column("rank", 0),
        "definition": Column("candidate count"),
        "weighting": Column("weighting"),
        "influence": Column("influential region"),
        "n_regions": Column("regions (count)", 0),
        "influential_dropped": Column("region dropped"),
        **_slope_columns(step_label),
        "status": Column("status"),
        "default": Column("default of params.yaml"),
    }


def bounds_columns(step_label: str = "+0.5 candidates per post") -> dict[str, Column]:
    """Columns of the bounds sensitivity (regions without a count given the national remainder within the
    published bounds)."""
    return {
        "rank": Column("rank", 0),
        "missing": Column("allocation"),
        "remainder_to": Column("regions above the least"),
        "weighting": Column("weighting"),
        "influence": Column("influential region"),
        "n_regions": Column("regions (count)", 0),
        "influential_dropped": Column("region dropped"),
        **_slope_columns(step_label),
        "status": Column("status"),
    }


def stage_columns(step_label: str = "+0.5 candidates per post") -> dict[str, Column]:
    """Columns of the counting-stage comparison of the default specification."""
    return {
        "definition": Column("candidate count"),
        "n_regions": Column("regions (count)", 0),
        "slope_logit": Column("slope (logit)", 3),
        **_slope_columns(step_label),
        "p_value": P_VALUE,
        "status": Column("status"),
    }


SPECIFICATION_CURVE = specification_curve_columns()

RACE_COMPARISON = {
    "model": Column("model", text=labels.model),
    "term": Column("term", text=labels.term),
    **_estimate_columns(),
    "n_obs": Column("races (count)", 0),
    "n_clusters": Column("regions (count)", 0),
}

CALIBRATION = {
    "region": Column("region"),
    "posts_sim": Column("races (count)", 0),
    "cands_sim": Column("candidates (count)", 0),
    "party_sim": Column("party-nominated (count)", 0),
    "women_sim": Column("women (count)", 0),
    "registered_sim": Column("registered (count)", 0),
    "voters_on_rolls_source": Column("electorate from"),
    "turnout_pct": Column("published turnout (%)", 1),
    "turnout_sim_pct": Column("simulated turnout (%)", 3),
}

READINESS = {
    "round_id": Column("round"),
    "races": Column("races (count)", 0),
    "with registered": Column("with electorate (count)", 0),
    "with voted": Column("with votes cast (count)", 0),
    "with n_candidates": Column("with candidates (count)", 0),
    "with self_share": Column("with nomination split (count)", 0),
    "usable": Column("usable (count)", 0),
    "regions among usable": Column("their regions (count)", 0),
}

STUDY_METHODS = {
    "method": Column("method", text=labels.method),
    "n_replications": Column("data sets at 0 (count)", 0),
    "n_replications_per_effect": Column("data sets per other effect (count)", 0),
    "n_failed": Column("failed fits (count)", 0),
    "size": Column("size (%)", 1, 100),
    "size_low": Column("size: 95 % MC low (%)", 1, 100),
    "size_high": Column("size: 95 % MC high (%)", 1, 100),
    "coverage_min": Column("lowest coverage (%)", 1, 100),
    "coverage_min_low": Column("coverage: 95 % MC low (%)", 1, 100),
    "coverage_min_high": Column("coverage: 95 % MC high (%)", 1, 100),
    "mde_pp": Column("MDE at 80 % power (pp)", 1),
    "mde_pp_low": Column("MDE: MC low (pp)", 1),
    "mde_pp_high": Column("MDE: MC high (pp)", 1),
    "mde_pp_linear": Column("MDE, linear interpolation (pp)", 1),
    "mde_note": Column("MDE note"),
}

# The recommendation rule, one row per weighed method (akim_turnout.study.montecarlo.recommend).
RECOMMENDATION = {
    "method": Column("method", text=labels.method),
    "size": Column("size (%)", 1, 100),
    "size_high": Column("size: 95 % MC high (%)", 1, 100),
    "size_ceiling": Column("size ceiling (%)", 1, 100),
    "coverage_min_low": Column("lowest coverage: 95 % MC low (%)", 1, 100),
    "coverage_floor": Column("coverage floor (%)", 1, 100),
    "acceptable": Column("acceptable"),
    "power": Column("power, non-zero effects pooled (%)", 1, 100),
    "only_first": Column("rejected by the chosen method alone (count)", 0),
    "only_second": Column("rejected by this method alone (count)", 0),
    "mcnemar_p": Column("exact McNemar p", 3, smallest=0.001),
    "verdict": Column("verdict"),
}

# The race-level headline under each method the study does not tell apart, and with one region left out.
HEADLINES = {
    "method": Column("method", text=labels.method),
    "estimate": Column("estimate (logit)", 3),
    "ci_lower": Column("95 % CI low", 3),
    "ci_upper": Column("95 % CI high", 3),
    "p_value": P_VALUE,
    "p_value_mc_se": Column("p: Monte Carlo SE", 4),
    "interval": Column("interval"),
}
LEAVE_ONE_REGION_OUT = {
    "left_out": Column("region left out"),
    "method": Column("method", text=labels.method),
    "n_races": Column("races used (count)", 0),
    "voters_share_left_out": Column("registered voters left out (%)", 1, 100),
    "estimate": Column("estimate (logit)", 3),
    "ci_lower": Column("95 % CI low", 3),
    "ci_upper": Column("95 % CI high", 3),
    "p_value": P_VALUE,
}

OPERATING_CHARACTERISTICS = {
    "n_regions": Column("regions (count)", 0),
    "n_races": Column("races (count)", 0),
    "effect": Column("true effect (logit)", 2),
    "method": Column("method", text=labels.method),
    "n_ok": Column("usable fits (count)", 0),
    "bias": Column("bias (logit)", 4),
    "rmse": Column("RMSE (logit)", 4),
    "coverage": Column("coverage (%)", 1, 100),
    "coverage_low": Column("coverage: 95 % MC low (%)", 1, 100),
    "coverage_high": Column("coverage: 95 % MC high (%)", 1, 100),
    "rejection": Column("rejection (%)", 1, 100),
    "rejection_low": Column("rejection: 95 % MC low (%)", 1, 100),
    "rejection_high": Column("rejection: 95 % MC high (%)", 1, 100),
    "se_ratio": Column("mean SE / SD", 2),
}


def setting(name: str) -> str:
    """A simulator setting as readers see it (its label in :mod:`akim_turnout.pipeline.parameters`); ``base``: the
    defaults."""
    return (
        "none (the defaults)"
        if name == "base"
        else SIMULATION_SETTINGS[name].label
        if name in SIMULATION_SETTINGS
        else name
    )


MDE_SENSITIVITY = {
    "dimension": Column("setting moved", text=setting),
    "value": Column("its value"),
    "method": Column("method", text=labels.method),
    "n_replications": Column("data sets per effect (count)", 0),
    "size": Column("size (%)", 1, 100),
    "size_low": Column("size: MC low (%)", 1, 100),
    "size_high": Column("size: MC high (%)", 1, 100),
    "coverage_min": Column("lowest coverage (%)", 1, 100),
    "coverage_min_low": Column("coverage: MC low (%)", 1, 100),
    "mde_pp": Column("MDE (pp)", 1),
    "mde_pp_low": Column("MDE: MC low (pp)", 1),
    "mde_pp_high": Column("MDE: MC high (pp)", 1),
}

PUBLISHED_COMPARISON = {
    "quantity": Column("published distribution"),
    "region": Column("region"),
    "published": Column("published", 3),
    "simulated": Column("simulated", 3),
    "kind": Column("kind of match"),
}

FORENSICS_SUMMARY = {
    "races": Column("races"),
    "n_races": Column("races (count)", 0),
    "integer_observed": Column("integer turnouts observed (count)", 0),
    "integer_null_mean": Column("expected under the null (count)", 1),
    "integer_p_value": P_VALUE,
    "second_digit_p_value": Column("second-digit p", 3, smallest=0.001),
}

TURNOUT_BY_REGION = {
    "region": Column("region"),
    "n_races": Column("races (count)", 0),
    "turnout_weighted_pct": Column("turnout, electorate-weighted (%)", 1),
    "turnout_median_pct": Column("median race turnout (%)", 1),
    "turnout_iqr_pp": Column("IQR (pp)", 1),
    "share_above_95": Column("races above 95 % (%)", 1, 100),
}

COVERAGE_COUNTS = {"variable": Column("figure")}  # the status columns are added by the stage, as counts
