"""The specification curve of the regional slope: bounds from the national remainder, statuses, the slope's scale."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from akim_turnout.models import inference, regional, specification

NATIONAL = {"posts": 100, "cands_registered": 300}


def _regional() -> pd.DataFrame:
    """Eight regions: registered counts for five, on-ballot counts for five, posts for seven (one region without)."""
    return pd.DataFrame(
        {
            "region": list("ABCDEFGH"),
            "turnout_pct": [70.0, 75.0, 80.0, 85.0, 90.0, 72.0, 88.0, 79.0],
            "posts": [10.0, 12.0, 14.0, 16.0, 8.0, 11.0, 13.0, np.nan],
            "cands_registered": [40.0, 38.0, 40.0, 35.0, 15.0, np.nan, np.nan, np.nan],
            "cands_on_ballot": [38.0, np.nan, 39.0, 33.0, 15.0, 30.0, 20.0, np.nan],
            "voters_on_rolls": [1000.0, 2000.0, np.nan, 1500.0, 900.0, 1200.0, np.nan, np.nan],
        }
    ).assign(cands=lambda f: f["cands_registered"].combine_first(f["cands_on_ballot"]))


def test_bounds_give_the_national_remainder_to_one_region_after_each_regions_floor() -> None:
    frame, reason = specification.bounded_counts(_regional(), "registered", NATIONAL, to_lowest=True)
    assert reason == ""
    assert frame.loc[7, "posts"] == 100 - 84  # the one region without posts takes the national remainder
    # floors: F at least its 30 on the ballot, G its 20, H one per post (16); 300 - 168 - 66 = 66 left over
    assert frame["cands_registered"].tolist()[5:] == [30 + 66, 20, 16]  # F has the lowest turnout of the three
    assert frame["cands_registered"].sum() == 300
    assert frame.attrs["gets_remainder"] == "F"
    high, _ = specification.bounded_counts(_regional(), "registered", NATIONAL, to_lowest=False)
    assert high["cands_registered"].tolist()[5:] == [30, 20 + 66, 16]  # G has the highest
    assert high.attrs["gets_remainder"] == "G"


def test_bounds_need_a_national_total_and_at_most_one_region_without_posts() -> None:
    assert specification.bounded_counts(_regional(), "on ballot", NATIONAL, True) == (
        None,
        "no national total of on ballot candidates is published",
    )
    two_missing = _regional().assign(posts=lambda f: f["posts"].where(f["region"] != "A"))
    assert (
        specification.bounded_counts(two_missing, "registered", NATIONAL, True)[1]
        == "more than one region lacks its posts"
    )
    small = {**NATIONAL, "cands_registered": 200}
    assert specification.bounded_counts(_regional(), "registered", small, True)[1] == (
        "the published regions leave less than the least the others need"
    )


def test_curve_rows_statuses_and_the_slope_per_half_candidate() -> None:
    curve = specification.specification_curve(_regional(), NATIONAL, "cands_per_seat")
    assert len(curve) == 3 * 3 * 3 * 2 == len(specification.specifications("cands_per_seat"))
    assert (
        curve["status"].str.startswith("not available")
        == (curve["missing"] != "dropped") & (curve["definition"] != "registered")
    ).all()
    # the region given the remainder of registered candidates: F (lowest turnout) or G (highest); none when dropped
    receivers = curve.groupby("missing")["remainder_to"].unique().map(sorted).to_dict()
    assert receivers == {
        "dropped": [""],
        "remainder to highest turnout": ["", "G"],
        "remainder to lowest turnout": ["", "F"],
    }
    estimable = curve[curve["estimable"]]
    assert len(estimable) and estimable["ci_lower_pp"].notna().all()
    assert curve.loc[~curve["estimable"], ["ame_pp", "ci_lower_pp", "ci_upper_pp"]].isna().all().all()
    assert estimable["ame_pp"].is_monotonic_increasing and list(curve["rank"]) == list(range(1, len(curve) + 1))
    # five regions leave 3 residual degrees of freedom: not estimable, and said so
    registered = curve[
        (curve["definition"] == "registered")
        & (curve["missing"] == "dropped")
        & (curve["weighting"] == "none")
        & (curve["influence"] == "all kept")
    ].iloc[0]
    assert registered["n_regions"] == 5 and registered["status"].startswith("not estimable: 3 residual degrees")
    # by hand for one specification: either count, dropped, unweighted, all kept -> regions A-G
    row = curve[
        (curve["definition"] == "either")
        & (curve["missing"] == "dropped")
        & (curve["weighting"] == "none")
        & (curve["influence"] == "all kept")
    ].iloc[0]
    data = _regional().iloc[:7]
    x = data["cands"] / data["posts"]
    fit = regional.fit_regional_fractional_logit(data.assign(cands_per_post=x), ["cands_per_post"])
    mu = expit(fit.params["Intercept"] + fit.params["cands_per_post"] * x)
    assert row["status"] == "ok" and row["regions"] == "A, B, C, D, E, F, G"
    assert row["n_regions"] == 7 and row["slope_logit"] == pytest.approx(fit.params["cands_per_post"], rel=1e-12)
    assert row["ame_pp"] == pytest.approx(0.5 * 100 * fit.params["cands_per_post"] * np.mean(mu * (1 - mu)), rel=1e-10)


def test_not_estimable_rule() -> None:
    assert inference.estimability(3, 0.5) == "3 residual degrees of freedom (fewer than 4)"
    assert inference.estimability(4, 0.81) == "one observation has leverage 0.81 (above 0.8)"
    assert inference.estimability(4, 0.8) == "" and inference.estimability(None, None) == ""


def test_summary_counts() -> None:
    curve = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "not estimable: x", "not available: y"],
            "estimable": [True, True, True, False, False],
            "ame_pp": [-3.0, -1.0, 0.5, math.nan, math.nan],
            "excludes_zero": [True, False, False, False, False],
            "n_regions": [6, 11, 14, 4, 0],
            "remainder_to": ["", "B", "C", "B", ""],
            "influential_dropped": ["A", "B", "", "B", ""],
        }
    )
    assert specification.curve_summary(curve, "cands_per_seat") == {
        "specifications": 5,
        "available": 4,
        "estimable": 3,
        "step_candidates_per_post": 0.5,
        "step": 0.5,
        "ame_pp_min": -3.0,
        "ame_pp_median": -1.0,
        "ame_pp_max": 0.5,
        "excluding_zero": 1,
        "remainder_region_dropped": 1,  # the second: B gets the remainder and is dropped (the fourth is not estimable)
        "negative": 2,
        "n_regions_min": 6,
        "n_regions_max": 14,
    }
