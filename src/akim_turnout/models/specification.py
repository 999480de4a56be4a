"""The regional slope of turnout on the main predictor as a specification curve (real data, at most 14 regions).

The predictor is ``regional_model.main_predictor`` (:func:`curve_predictor`). One regional fit rests on one set of
choices nobody can defend as the only one; the curve crosses the choices that can each apply (Simonsohn, Simmons &
Nelson 2020: valid, non-redundant specifications) and fits the same fractional logit
(:func:`models.regional.fit_regional_fractional_logit`, HC3, t inference) under each:

* **counting stage** (:data:`STAGES`, candidates per post only): registered candidates only, candidates on the
  ballot only, or either (registered where published, else on the ballot: the column ``cands``) *with an indicator
  of the stage* (:data:`STAGE_INDICATOR`, 1 where the count is of registered candidates). The stages differ in level
  (registered counts are higher than on-ballot ones by construction), so "either" without the indicator mixes two
  measures; it is fitted only to show what the indicator does (:func:`stage_comparison`), not counted in the curve.
  For a share (self-nominated, women's) the candidate-count choices do not apply: one definition, "not applicable";
* **weighting** (:data:`WEIGHTS`): none, posts, or the electorate where it is published (regions without it drop);
* **influential regions** (:data:`INFLUENCE`): all kept, or the most influential region of that fit (largest
  Cook's distance) dropped and the fit repeated.

Regions without a count are dropped in the curve. Giving them a count is a separate, labelled sensitivity
(:func:`bounds_sensitivity`): the national remainder of registered candidates (the only count with a published
national total) is allocated within bounds the published figures set (:func:`published_bounds`): every post has at
least the smallest number of candidates any published per-race distribution shows (2), and no region more candidates
per post than the largest published regional figure; the allocations favouring the lowest and the highest turnout
are a mirror pair, and a pair enters or leaves together (if either member is not estimable, both are listed as not
estimable).

Only specifications that can be built are listed (:func:`specifications`); there are no "not available" rows. The
slope is reported as an average marginal effect of a step of the predictor (:data:`STEPS`: half a candidate per post,
a tenth of a share), in percentage points of turnout, with its 95 % t interval; a specification whose fit fails
:func:`akim_turnout.models.inference.estimability` (fewer than 4 residual degrees of freedom, or a region with
leverage above 0.8) or whose interval leaves the turnout scale is listed as not estimable, with the reason.

Inference across the specifications (the joint permutation test) is
:func:`akim_turnout.models.resampling.joint_curve_test`, fed by :func:`joint_inputs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from akim_turnout.models.inference import average_marginal_effects
from akim_turnout.models.regional import fit_regional_fractional_logit
from akim_turnout.pipeline.parameters import COUNTING_STAGES, REGIONAL_PREDICTORS
from akim_turnout.report import labels

STAGE_INDICATOR = "stage_registered"  # 1 where the 'either' count is of registered candidates, 0 on the ballot
EITHER_WITH_INDICATOR = "either + stage indicator"
EITHER = "either, no stage indicator"  # the confounded count: fitted only to show what the indicator does
STAGES = {"registered": "cands_registered", "on ballot": "cands_on_ballot", EITHER_WITH_INDICATOR: "cands"}
COLUMNS = {**STAGES, EITHER: "cands"}
assert tuple(STAGES) == tuple(COUNTING_STAGES), "the stages of the curve are the counting_stage parameter's choices"
WEIGHTS = {"none": None, "posts": "posts", "electorate": "voters_on_rolls"}
WEIGHTING_OF = {None: "none", "posts": "posts", "voters_on_rolls": "electorate"}
INFLUENCE = ("all kept", "most influential dropped")
BOUNDS = ("remainder to lowest turnout", "remainder to highest turnout")  # a mirror pair
NATIONAL_TOTALS = {"registered": "cands_registered"}  # the only candidate count published nationally
STEP = 0.5  # candidates per post
PREDICTOR = "cands_per_post"  # the column the curve builds from a candidate count and the posts
CANDIDATES_PER_POST = "cands_per_seat"  # the main_predictor for which the candidate-count choices apply
# the step of each regional predictor the slope is reported for
STEPS = {name: STEP if name == CANDIDATES_PER_POST else 0.1 for name in REGIONAL_PREDICTORS}
ROW_FIELDS = (
    "definition",
    "weighting",
    "influence",
    "missing",
    "n_regions",
    "regions",
    "influential_dropped",
    "remainder_to",
    "slope_logit",
    "ame_pp",
    "ci_lower_pp",
    "ci_upper_pp",
    "p_value",
    "status",
)  # the fields of a row of :func:`fit_specification`
PER_RACE = "posts_with_{k}_cands"  # published per-race distributions: posts contested by exactly k candidates


def curve_predictor(main_predictor: str) -> str:
    """The column the curve fits for ``main_predictor``: candidates per post built under each count definition,
    or the share itself."""
    if main_predictor not in REGIONAL_PREDICTORS:
        raise ValueError(f"main_predictor must be one of {', '.join(REGIONAL_PREDICTORS)}, got {main_predictor!r}")
    return PREDICTOR if main_predictor == CANDIDATES_PER_POST else main_predictor


def not_applicable(main_predictor: str) -> str:
    """The one 'definition' of a curve whose predictor is not a candidate count."""
    return f"not applicable ({labels.term(main_predictor)} is not a candidate count)"


def choices(main_predictor: str) -> dict[str, list[str]]:
    """The choices the curve crosses for ``main_predictor``, by dimension (for the figure and the report)."""
    if main_predictor == CANDIDATES_PER_POST:
        definitions = list(STAGES)
    else:
        curve_predictor(main_predictor)
        definitions = [not_applicable(main_predictor)]
    return {"definition": definitions, "weighting": list(WEIGHTS), "influence": list(INFLUENCE)}


def step_label(main_predictor: str) -> str:
    """The step the slope is reported for, in words: '+0.5 candidates per post', '+0.1 self-nominated share'."""
    return f"+{STEPS[main_predictor]:g} {labels.term(main_predictor)}"


def curve_labels(main_predictor: str) -> dict[str, Any]:
    """The words of a curve for ``main_predictor`` (the stage writes them into its numbers file)."""
    return {
        "predictor": labels.term(main_predictor),
        "step": step_label(main_predictor),
        "effect": f"pp of turnout per {step_label(main_predictor)}",
        "choices": choices(main_predictor),
    }


@dataclass(frozen=True)
class Specification:
    definition: str
    weighting: str
    influence: str
    missing: str = "dropped"


def specifications(main_predictor: str) -> list[Specification]:
    """Every combination of the choices for ``main_predictor`` (:func:`choices`), in a fixed order; each can be
    built from published figures (regions without a figure are dropped)."""
    return [Specification(*combo) for combo in itertools.product(*choices(main_predictor).values())]


def bound_specifications(main_predictor: str) -> list[Specification]:
    """The specifications of the bounds sensitivity (:func:`bounds_sensitivity`): registered candidates with the
    national remainder allocated at each bound, crossed with weighting and influence; none for a share."""
    if curve_predictor(main_predictor) != PREDICTOR:
        return []
    return [
        Specification("registered", weighting, influence, missing)
        for weighting, influence, missing in itertools.product(WEIGHTS, INFLUENCE, BOUNDS)
    ]


def default_specification(main_predictor: str, counting_stage: str, weight: str | None = None) -> Specification:
    """The specification the run's parameters pick: ``counting_stage`` (for candidates per post), ``weight`` (None:
    unweighted), all regions kept."""
    if counting_stage not in STAGES:
        raise ValueError(f"counting_stage must be one of {', '.join(STAGES)}, got {counting_stage!r}")
    if weight not in WEIGHTING_OF:
        raise ValueError(f"weight must be one of {', '.join(w for w in WEIGHTING_OF if w)} or None, got {weight!r}")
    definition = counting_stage if curve_predictor(main_predictor) == PREDICTOR else not_applicable(main_predictor)
    return Specification(definition, WEIGHTING_OF[weight], INFLUENCE[0])


def published_bounds(regional: pd.DataFrame) -> dict[str, Any]:
    """What the published figures allow a region without a count: at least ``floor_per_post`` candidates per post
    (the smallest number of candidates in any published per-race distribution, ``posts_with_k_cands``) and at most
    ``cap_per_post`` (the largest published regional count of registered or on-ballot candidates per post), with
    the region and stage of the cap."""
    contested = [
        k
        for k in range(1, 21)
        if PER_RACE.format(k=k) in regional and (regional[PER_RACE.format(k=k)].fillna(0) > 0).any()
    ]
    if not contested:
        raise ValueError("no published per-race distribution (posts_with_k_cands) to bound the allocation")
    per_post = {stage: regional[STAGES[stage]] / regional["posts"] for stage in ("registered", "on ballot")}
    stage = max(per_post, key=lambda s: per_post[s].max())
    where = int(per_post[stage].idxmax())
    return {
        "floor_per_post": min(contested),
        "cap_per_post": float(per_post[stage].max()),
        "cap_region": str(regional.at[where, "region"]),
        "cap_stage": stage,
    }


def bounded_counts(
    regional: pd.DataFrame,
    definition: str,
    national: Mapping[str, Any],
    to_lowest: bool,
    bounds: Mapping[str, Any] | None = None,
    region: str = "region",
) -> tuple[pd.DataFrame | None, str]:
    """The regional frame with ``posts`` and the count of ``definition`` completed at one bound, or None and why.

    The regions without the count share the national remainder (national total minus the published regions). Each
    gets its least possible count first: ``floor_per_post`` candidates per post (:func:`published_bounds`), and for
    registered candidates no fewer than were on its ballot; then the rest fills the regions in order of turnout,
    lowest first (``to_lowest``) or highest first, each up to ``cap_per_post`` candidates per post (whole
    candidates). The regions that get more than their least are in ``frame.attrs["gets_remainder"]``. A region
    without posts gets the national remainder of posts (at most one may lack them).
    """
    bounds = published_bounds(regional) if bounds is None else bounds
    total_key = NATIONAL_TOTALS.get(definition)
    if total_key is None or pd.isna(national.get(total_key)):
        return None, f"no national total of {definition} candidates is published"
    frame = regional.copy()
    column = STAGES[definition]
    no_posts = frame["posts"].isna()
    if no_posts.sum() > 1:
        return None, "more than one region lacks its posts"
    frame.loc[no_posts, "posts"] = float(national["posts"]) - frame["posts"].sum()
    missing = frame[column].isna()
    if not missing.any():
        return frame, ""
    floor = np.ceil(bounds["floor_per_post"] * frame["posts"] - 1e-9)
    if definition == "registered":
        floor = np.maximum(floor, frame["cands_on_ballot"].fillna(0))
    cap = np.floor(bounds["cap_per_post"] * frame["posts"] + 1e-9)
    free = float(national[total_key]) - frame.loc[~missing, column].sum() - floor[missing].sum()
    if free < 0:
        return None, "the published regions leave less than the least the others need"
    if free > (cap[missing] - floor[missing]).clip(lower=0).sum():
        return None, "the national remainder exceeds what the largest published count per post allows"
    frame.loc[missing, column] = floor[missing]
    order = frame.loc[missing, "turnout_pct"].sort_values(ascending=to_lowest, kind="stable").index
    receivers = []
    for index in order:
        extra = min(free, max(cap[index] - floor[index], 0.0))
        if extra > 0:
            frame.loc[index, column] += extra
            free -= extra
            receivers.append(str(frame.at[index, region]))
        if free <= 0:
            break
    frame.attrs["gets_remainder"] = ", ".join(receivers)
    return frame, ""


def with_stage_indicator(regional: pd.DataFrame) -> pd.DataFrame:
    """The regional frame with :data:`STAGE_INDICATOR`: 1 where ``cands`` is a registered count, 0 where it is an
    on-ballot count, missing where there is no count (``cands_kind``)."""
    frame = regional.copy()
    kind = frame["cands_kind"]
    frame[STAGE_INDICATOR] = np.where(kind == "registered", 1.0, np.where(kind == "on ballot", 0.0, np.nan))
    return frame


def _prepared(
    regional: pd.DataFrame,
    spec: Specification,
    national: Mapping[str, Any],
    main_predictor: str,
    bounds: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame | None, str, list[str], str]:
    """Rows of one specification with its predictors (e.g. ``cands_per_post`` and the stage indicator) and weight,
    or None and why not, its predictor list, and the regions given more than their least ('' when none)."""
    predictor = curve_predictor(main_predictor)
    weight = WEIGHTS[spec.weighting]
    if predictor != PREDICTOR:
        needed = [predictor, "turnout_pct"] + ([weight] if weight else [])
        return regional.dropna(subset=needed).reset_index(drop=True), "", [predictor], ""
    if spec.definition not in COLUMNS:
        raise ValueError(f"unknown candidate count {spec.definition!r}; one of {', '.join(COLUMNS)}")
    if spec.missing == "dropped":
        frame, reason = regional.copy(), ""
    elif spec.missing in BOUNDS:
        frame, reason = bounded_counts(regional, spec.definition, national, spec.missing == BOUNDS[0], bounds=bounds)
    else:
        raise ValueError(f"unknown treatment of regions without a count {spec.missing!r}")
    if frame is None:
        return None, reason, [PREDICTOR], ""
    receiver = frame.attrs.get("gets_remainder", "")
    predictors = [PREDICTOR]
    if spec.definition == EITHER_WITH_INDICATOR:
        frame = with_stage_indicator(frame)
        predictors.append(STAGE_INDICATOR)
    frame[PREDICTOR] = frame[COLUMNS[spec.definition]] / frame["posts"]
    needed = [*predictors, "turnout_pct"] + ([weight] if weight else [])
    return frame.dropna(subset=needed).reset_index(drop=True), "", predictors, receiver


def fit_specification(
    regional: pd.DataFrame,
    spec: Specification,
    national: Mapping[str, Any],
    main_predictor: str,
    bounds: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the specification curve: the choices, the regions used, the slope and its interval or why not."""
    predictor, step = curve_predictor(main_predictor), STEPS[main_predictor]
    row: dict[str, Any] = {
        **vars(spec),
        "n_regions": 0,
        "regions": "",
        "influential_dropped": "",
        "remainder_to": "",
        "slope_logit": np.nan,
        "ame_pp": np.nan,
        "ci_lower_pp": np.nan,
        "ci_upper_pp": np.nan,
        "p_value": np.nan,
        "status": "",
    }
    frame, reason, predictors, row["remainder_to"] = _prepared(regional, spec, national, main_predictor, bounds)
    if frame is None:
        return {**row, "status": f"not available: {reason}"}
    weight = WEIGHTS[spec.weighting]
    try:
        fit = fit_regional_fractional_logit(frame, predictors, weight=weight, name="specification")
        if spec.influence != "all kept":
            cooks = fit.raw.get_influence().cooks_distance[0]
            influential = str(frame["region"].iloc[int(np.argmax(cooks))])
            row["influential_dropped"] = influential
            frame = frame[frame["region"] != influential].reset_index(drop=True)
            fit = fit_regional_fractional_logit(frame, predictors, weight=weight, name="specification")
    except ValueError as error:
        return {
            **row,
            "n_regions": len(frame),
            "regions": ", ".join(frame["region"]),
            "status": f"not estimable: {error}",
        }
    weights = None if weight is None else frame[weight].to_numpy(dtype=float)
    ame = average_marginal_effects(fit, [predictor], averaging_weights=weights).iloc[0]
    return {
        **row,
        "n_regions": fit.n_obs,
        "regions": ", ".join(frame["region"]),
        "slope_logit": fit.params[predictor],
        "ame_pp": step * ame["ame_pp"],
        "ci_lower_pp": step * ame["ci_lower_pp"],
        "ci_upper_pp": step * ame["ci_upper_pp"],
        "p_value": ame["p_value"],
        "status": ame["status"],
    }


def _ranked(rows: pd.DataFrame) -> pd.DataFrame:
    """Flags (estimable, interval excludes zero), estimable rows sorted by slope, then the others; with a rank."""
    rows = rows.copy()
    rows["estimable"] = rows["status"] == "ok"
    rows["excludes_zero"] = rows["estimable"] & ((rows["ci_lower_pp"] > 0) | (rows["ci_upper_pp"] < 0))
    rows = rows.sort_values(["estimable", "ame_pp"], ascending=[False, True], kind="stable").reset_index(drop=True)
    rows.insert(0, "rank", np.arange(1, len(rows) + 1))
    return rows


def specification_curve(
    regional: pd.DataFrame,
    national: Mapping[str, Any],
    main_predictor: str,
    default: Specification | None = None,
) -> pd.DataFrame:
    """Every specification's row (:func:`fit_specification`), estimable ones sorted by slope, then the others;
    ``default`` (:func:`default_specification`) is flagged in the column ``default``."""
    rows = pd.DataFrame(
        [fit_specification(regional, spec, national, main_predictor) for spec in specifications(main_predictor)]
    )
    rows = rows.drop(columns=["missing", "remainder_to"])
    rows["default"] = False
    if default is not None:
        rows["default"] = [
            Specification(d, w, i) == default
            for d, w, i in zip(rows["definition"], rows["weighting"], rows["influence"], strict=True)
        ]
    return _ranked(rows)


def bounds_sensitivity(regional: pd.DataFrame, national: Mapping[str, Any], main_predictor: str) -> pd.DataFrame:
    """The bounds sensitivity (:func:`bound_specifications`), rows as in the curve plus ``pair``; a mirror pair (same
    weighting and influence, the two bounds) enters or leaves together: where one member is not estimable, the
    other is listed as not estimable too ('its mirror allocation is not estimable'). Empty for a share."""
    specs = bound_specifications(main_predictor)
    if not specs:
        return _ranked(pd.DataFrame(columns=[*ROW_FIELDS, "pair"]))
    bounds = published_bounds(regional)
    rows = pd.DataFrame([fit_specification(regional, spec, national, main_predictor, bounds) for spec in specs])
    rows["pair"] = rows["weighting"] + ", " + rows["influence"]
    ok = rows["status"] == "ok"
    pair_ok = ok.groupby(rows["pair"]).transform("all")
    mirror_out = ok & ~pair_ok
    rows.loc[mirror_out, "status"] = "not estimable: its mirror allocation is not estimable"
    rows.loc[mirror_out, ["slope_logit", "ame_pp", "ci_lower_pp", "ci_upper_pp", "p_value"]] = np.nan
    return _ranked(rows)


def stage_comparison(
    regional: pd.DataFrame, national: Mapping[str, Any], main_predictor: str, weight: str | None = None
) -> pd.DataFrame:
    """The default fit (``weight``, all regions kept) under each counting stage, and under "either" without the
    stage indicator: slope (logit), its effect per step (pp) with interval and p-value, and regions. Empty for a
    share."""
    columns = [f for f in ROW_FIELDS if f not in ("missing", "remainder_to", "influential_dropped")]
    if curve_predictor(main_predictor) != PREDICTOR:
        return pd.DataFrame(columns=[*columns, "stage_indicator"])
    rows = [
        fit_specification(
            regional, Specification(definition, WEIGHTING_OF[weight], INFLUENCE[0]), national, main_predictor
        )
        for definition in [*STAGES, EITHER]
    ]
    out = pd.DataFrame(rows).drop(columns=["missing", "remainder_to", "influential_dropped"])
    out["stage_indicator"] = out["definition"] == EITHER_WITH_INDICATOR
    return out


def curve_summary(curve: pd.DataFrame, main_predictor: str) -> dict[str, Any]:
    """The numbers the report states: how many specifications (all can be built), how many are estimable, the range
    and median of the estimable slopes (pp per step of the predictor, :data:`STEPS`), the range of their intervals,
    and the regions they rest on. Counts of intervals excluding zero are given only with the joint test
    (:func:`akim_turnout.models.resampling.joint_curve_test`). ``step_candidates_per_post`` is None when the
    predictor is not candidates per post."""
    estimable = curve[curve["estimable"]]
    some = len(estimable) > 0
    default = curve[curve["default"]] if "default" in curve else curve.iloc[:0]
    return {
        "specifications": len(curve),
        "estimable": len(estimable),
        "step_candidates_per_post": STEP if main_predictor == CANDIDATES_PER_POST else None,
        "step": STEPS[main_predictor],
        "ame_pp_min": estimable["ame_pp"].min() if some else None,
        "ame_pp_median": estimable["ame_pp"].median() if some else None,
        "ame_pp_max": estimable["ame_pp"].max() if some else None,
        "ci_lower_pp_min": estimable["ci_lower_pp"].min() if some else None,
        "ci_upper_pp_max": estimable["ci_upper_pp"].max() if some else None,
        "excluding_zero": int(estimable["excludes_zero"].sum()),
        "negative": int((estimable["ame_pp"] < 0).sum()),
        "n_regions_min": int(estimable["n_regions"].min()) if some else 0,
        "n_regions_max": int(estimable["n_regions"].max()) if some else 0,
        # the regions the estimable specifications of each candidate count use, [fewest, most]
        "n_regions_by_definition": {
            str(name): [int(rows["n_regions"].min()), int(rows["n_regions"].max())]
            for name, rows in estimable.groupby("definition", sort=False)
        },
        "default_rank": int(default["rank"].iloc[0]) if len(default) else None,
        "default_estimable": bool(default["estimable"].iloc[0]) if len(default) else None,
    }


def bounds_summary(bounds_rows: pd.DataFrame, regional: pd.DataFrame) -> dict[str, Any]:
    """The numbers of the bounds sensitivity: the published bounds, specifications, estimable pairs, and the range
    of the estimable slopes (None where none is)."""
    if bounds_rows.empty:
        return {"specifications": 0, "estimable": 0, "pairs_estimable": 0, "ame_pp_min": None, "ame_pp_max": None}
    estimable = bounds_rows[bounds_rows["estimable"]]
    some = len(estimable) > 0
    return {
        **published_bounds(regional),
        "specifications": len(bounds_rows),
        "estimable": len(estimable),
        "pairs_estimable": int(estimable["pair"].nunique()),
        "ame_pp_min": estimable["ame_pp"].min() if some else None,
        "ame_pp_max": estimable["ame_pp"].max() if some else None,
    }


@dataclass(frozen=True)
class JointInput:
    """What one estimable specification of the curve uses, for the joint permutation test: its regions' positions
    in the regional frame (``rows``), design (intercept first, the predictor at ``k``), weights (None: unweighted),
    whether the most influential region is dropped in each draw, and the step of the predictor."""

    name: str
    rows: np.ndarray
    exog: np.ndarray
    k: int
    weights: np.ndarray | None
    drop_influential: bool
    step: float


def joint_inputs(
    regional: pd.DataFrame, curve: pd.DataFrame, national: Mapping[str, Any], main_predictor: str
) -> list[JointInput]:
    """The :class:`JointInput` of every estimable specification of ``curve`` (in its order), built on the rows of
    ``regional`` it uses (before the most influential region is dropped; the test drops it again in each draw)."""
    positions = {str(name): i for i, name in enumerate(regional["region"])}
    inputs = []
    for _, row in curve[curve["estimable"]].iterrows():
        spec = Specification(row["definition"], row["weighting"], row["influence"])
        frame, _, predictors, _ = _prepared(regional, spec, national, main_predictor)
        exog = np.column_stack([np.ones(len(frame)), *(frame[p].to_numpy(dtype=float) for p in predictors)])
        weight = WEIGHTS[spec.weighting]
        inputs.append(
            JointInput(
                name=f"{spec.definition}; {spec.weighting}; {spec.influence}",
                rows=np.array([positions[str(r)] for r in frame["region"]], dtype=np.int64),
                exog=exog,
                k=1,
                weights=None if weight is None else frame[weight].to_numpy(dtype=float),
                drop_influential=spec.influence != INFLUENCE[0],
                step=STEPS[main_predictor],
            )
        )
    return inputs
