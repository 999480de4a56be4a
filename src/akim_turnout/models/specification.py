"""The regional slope of turnout on the main predictor as a specification curve (real data, at most 14 regions).

The predictor is ``regional_model.main_predictor`` (:func:`curve_predictor`). For candidates per post, the default,
every choice below applies; for a share (self-nominated, women's) the candidate-count choices do not: the curve
lists one definition, "not applicable", and only "dropped" for regions without the figure (the bounds below
allocate a national remainder of candidates, which no share has), and crosses weighting and influence.

One regional fit rests on one set of choices nobody can defend as the only one. This module crosses every
defensible choice and fits the same fractional logit (:func:`models.regional.fit_regional_fractional_logit`,
HC3, t inference) under each:

* **candidate count** (:data:`DEFINITIONS`): registered candidates only, candidates on the ballot only, or either
  (registered where published, else on the ballot: the project's default column ``cands``);
* **regions without a count** (:data:`MISSING`): dropped; or *bounded*: the national remainder of the count
  (national total minus the published regions) is given to the regions without one, each first getting the least
  it can have (one candidate per post, and for registered candidates no fewer than were on its ballot), and all
  the rest going to the one with the lowest, or the highest, turnout. These two allocations are the extremes in
  the direction of a negative and of a positive slope; they are bounds, not estimates, and only exist where the
  national total of that count is published (registered candidates) and at most one region lacks its posts (its
  posts are then the national remainder);
* **weighting** (:data:`WEIGHTS`): none, posts, or the electorate where it is published (regions without it drop);
* **influential regions** (:data:`INFLUENCE`): all kept, or the most influential region of that fit (largest
  Cook's distance) dropped and the fit repeated.

The slope is reported as an average marginal effect of a step of the predictor (:data:`STEPS`: half a candidate
per post, a tenth of a share), in percentage points of turnout, with its 95 % t interval; a specification whose
fit fails :func:`akim_turnout.models.inference.estimability` (fewer than 4 residual degrees of freedom, or a region with
leverage above 0.8) or whose interval leaves the turnout scale is listed as not estimable, with the reason, and
shows no interval.
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
from akim_turnout.pipeline.parameters import REGIONAL_PREDICTORS
from akim_turnout.report import labels

DEFINITIONS = {"registered": "cands_registered", "on ballot": "cands_on_ballot", "either": "cands"}
MISSING = ("dropped", "remainder to lowest turnout", "remainder to highest turnout")
WEIGHTS = {"none": None, "posts": "posts", "electorate": "voters_on_rolls"}
INFLUENCE = ("all kept", "most influential dropped")
NATIONAL_TOTALS = {"registered": "cands_registered"}  # the only candidate count published nationally
STEP = 0.5  # candidates per post
PREDICTOR = "cands_per_post"  # the column the curve builds from a candidate count and the posts
CANDIDATES_PER_POST = "cands_per_seat"  # the main_predictor for which the candidate-count choices apply
# the step of each regional predictor the slope is reported for
STEPS = {name: STEP if name == CANDIDATES_PER_POST else 0.1 for name in REGIONAL_PREDICTORS}


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
        definitions, missing = list(DEFINITIONS), list(MISSING)
    else:
        curve_predictor(main_predictor)
        definitions, missing = [not_applicable(main_predictor)], [MISSING[0]]
    return {"definition": definitions, "missing": missing, "weighting": list(WEIGHTS), "influence": list(INFLUENCE)}


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
    missing: str
    weighting: str
    influence: str


def specifications(main_predictor: str) -> list[Specification]:
    """Every combination of the choices for ``main_predictor`` (:func:`choices`), in a fixed order."""
    return [Specification(*combo) for combo in itertools.product(*choices(main_predictor).values())]


def bounded_counts(
    regional: pd.DataFrame, definition: str, national: Mapping[str, Any], to_lowest: bool, region: str = "region"
) -> tuple[pd.DataFrame | None, str]:
    """The regional frame with ``posts`` and the count of ``definition`` completed at one bound, or None and why.

    The regions without the count share the national remainder: each gets its least possible count first (one per
    post; for registered candidates, at least its published on-ballot count), and the rest goes to the region
    with the lowest (``to_lowest``) or highest turnout among them; its name is in ``frame.attrs["gets_remainder"]``.
    """
    total_key = NATIONAL_TOTALS.get(definition)
    if total_key is None or pd.isna(national.get(total_key)):
        return None, f"no national total of {definition} candidates is published"
    frame = regional.copy()
    column = DEFINITIONS[definition]
    no_posts = frame["posts"].isna()
    if no_posts.sum() > 1:
        return None, "more than one region lacks its posts"
    frame.loc[no_posts, "posts"] = float(national["posts"]) - frame["posts"].sum()
    missing = frame[column].isna()
    floor = frame["posts"].copy()
    if definition == "registered":
        floor = np.maximum(floor, frame["cands_on_ballot"].fillna(0))
    free = float(national[total_key]) - frame.loc[~missing, column].sum() - floor[missing].sum()
    if not missing.any():
        return frame, ""
    if free < 0:
        return None, "the published regions leave less than the least the others need"
    frame.loc[missing, column] = floor[missing]
    turnout = frame.loc[missing, "turnout_pct"]
    target = turnout.idxmin() if to_lowest else turnout.idxmax()
    frame.loc[target, column] += free
    frame.attrs["gets_remainder"] = str(frame.at[target, region])
    return frame, ""


def _prepared(
    regional: pd.DataFrame, spec: Specification, national: Mapping[str, Any], main_predictor: str
) -> tuple[pd.DataFrame | None, str, str]:
    """Rows and columns of one specification (the predictor, e.g. ``cands_per_post``, and the weight), or None and
    why not, and the region given the national remainder ('' when none is)."""
    predictor = curve_predictor(main_predictor)
    if predictor != PREDICTOR:
        needed = [predictor, "turnout_pct"] + ([WEIGHTS[spec.weighting]] if WEIGHTS[spec.weighting] else [])
        return regional.dropna(subset=needed).reset_index(drop=True), "", ""
    if spec.missing == "dropped":
        frame, reason = regional.copy(), ""
    else:
        frame, reason = bounded_counts(regional, spec.definition, national, spec.missing.endswith("lowest turnout"))
    if frame is None:
        return None, reason, ""
    receiver = frame.attrs.get("gets_remainder", "")
    frame[PREDICTOR] = frame[DEFINITIONS[spec.definition]] / frame["posts"]
    needed = [PREDICTOR, "turnout_pct"] + ([WEIGHTS[spec.weighting]] if WEIGHTS[spec.weighting] else [])
    return frame.dropna(subset=needed).reset_index(drop=True), "", receiver


def fit_specification(
    regional: pd.DataFrame, spec: Specification, national: Mapping[str, Any], main_predictor: str
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
        "status": "",
    }
    frame, reason, row["remainder_to"] = _prepared(regional, spec, national, main_predictor)
    if frame is None:
        return {**row, "status": f"not available: {reason}"}
    weight = WEIGHTS[spec.weighting]
    try:
        fit = fit_regional_fractional_logit(frame, [predictor], weight=weight, name="specification")
        if spec.influence != "all kept":
            cooks = fit.raw.get_influence().cooks_distance[0]
            influential = str(frame["region"].iloc[int(np.argmax(cooks))])
            row["influential_dropped"] = influential
            frame = frame[frame["region"] != influential].reset_index(drop=True)
            fit = fit_regional_fractional_logit(frame, [predictor], weight=weight, name="specification")
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
        "status": ame["status"],
    }


def specification_curve(regional: pd.DataFrame, national: Mapping[str, Any], main_predictor: str) -> pd.DataFrame:
    """Every specification's row (:func:`fit_specification`), estimable ones sorted by slope, then the others."""
    rows = pd.DataFrame(
        [fit_specification(regional, spec, national, main_predictor) for spec in specifications(main_predictor)]
    )
    rows["estimable"] = rows["status"] == "ok"
    rows["excludes_zero"] = rows["estimable"] & ((rows["ci_lower_pp"] > 0) | (rows["ci_upper_pp"] < 0))
    rows = rows.sort_values(["estimable", "ame_pp"], ascending=[False, True], kind="stable").reset_index(drop=True)
    rows.insert(0, "rank", np.arange(1, len(rows) + 1))
    return rows


def curve_summary(curve: pd.DataFrame, main_predictor: str) -> dict[str, Any]:
    """The numbers the report states: how many specifications, the range and median of the estimable slopes (pp
    per step of the predictor, :data:`STEPS`), how many intervals exclude zero, and the regions each rests on.
    ``step_candidates_per_post`` is None when the predictor is not candidates per post; ``step`` is the step of
    the predictor it is."""
    estimable = curve[curve["estimable"]]
    return {
        "specifications": len(curve),
        "available": int((~curve["status"].str.startswith("not available")).sum()),
        "estimable": len(estimable),
        "step_candidates_per_post": STEP if main_predictor == CANDIDATES_PER_POST else None,
        "step": STEPS[main_predictor],
        "ame_pp_min": estimable["ame_pp"].min() if len(estimable) else None,
        "ame_pp_median": estimable["ame_pp"].median() if len(estimable) else None,
        "ame_pp_max": estimable["ame_pp"].max() if len(estimable) else None,
        "excluding_zero": int(estimable["excludes_zero"].sum()),
        # specifications that give the remainder to a region and then drop that region as the most influential
        "remainder_region_dropped": int(
            ((estimable["remainder_to"] != "") & (estimable["influential_dropped"] == estimable["remainder_to"])).sum()
        ),
        "negative": int((estimable["ame_pp"] < 0).sum()),
        "n_regions_min": int(estimable["n_regions"].min()) if len(estimable) else 0,
        "n_regions_max": int(estimable["n_regions"].max()) if len(estimable) else 0,
    }
