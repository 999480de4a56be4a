"""The specification curve of the regional slope: only specifications that can be built, the counting stage as a
choice, imputations within published bounds as a separate sensitivity with mirror pairs in or out together, and the
joint permutation test (checked by exact enumeration against an independent statsmodels implementation)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.data import ingest
from akim_turnout.data.processed import ROUND_2021
from akim_turnout.models import inference, regional, resampling, specification
from akim_turnout.pipeline.paths import project_root
from akim_turnout.report import tables

RAW = project_root() / "data" / "raw"
NATIONAL = {"posts": 100, "cands_registered": 300}


def _regional() -> pd.DataFrame:
    """Eight regions: registered counts for five, on-ballot counts for six, posts for seven (one region without);
    a per-race distribution for A (posts with 2 and with 4 candidates)."""
    frame = pd.DataFrame(
        {
            "region": list("ABCDEFGH"),
            "turnout_pct": [70.0, 75.0, 80.0, 85.0, 90.0, 72.0, 88.0, 79.0],
            "posts": [10.0, 12.0, 14.0, 16.0, 8.0, 11.0, 13.0, np.nan],
            "cands_registered": [40.0, 38.0, 40.0, 35.0, 15.0, np.nan, np.nan, np.nan],
            "cands_on_ballot": [38.0, np.nan, 39.0, 33.0, 15.0, 30.0, 20.0, np.nan],
            "voters_on_rolls": [1000.0, 2000.0, np.nan, 1500.0, 900.0, 1200.0, np.nan, np.nan],
            "posts_with_2_cands": [3.0] + [np.nan] * 7,
            "posts_with_4_cands": [7.0] + [np.nan] * 7,
        }
    )
    frame["cands"] = frame["cands_registered"].combine_first(frame["cands_on_ballot"])
    frame["cands_kind"] = np.where(
        frame["cands_registered"].notna(),
        "registered",
        np.where(frame["cands_on_ballot"].notna(), "on ballot", "missing"),
    )
    return frame


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.Series]:
    """The regional table and national figures of 2021, built from data/raw."""
    built = ingest.build_processed(ingest.load_raw(RAW))
    return built["regional_2021"], built["national"].set_index("round_id").loc[ROUND_2021]


def test_published_bounds_are_the_smallest_per_race_count_and_the_largest_regional_figure() -> None:
    bounds = specification.published_bounds(_regional())
    # posts_with_2_cands > 0 somewhere; largest per post: A, 40 registered / 10 posts (its 38 on the ballot is less)
    assert bounds == {"floor_per_post": 2, "cap_per_post": 4.0, "cap_region": "A", "cap_stage": "registered"}
    with pytest.raises(ValueError, match="no published per-race distribution"):
        specification.published_bounds(_regional().drop(columns=["posts_with_2_cands", "posts_with_4_cands"]))


def test_bounds_fill_regions_in_order_of_turnout_between_the_floor_and_the_cap() -> None:
    frame, reason = specification.bounded_counts(_regional(), "registered", NATIONAL, to_lowest=True)
    assert reason == ""
    assert frame.loc[7, "posts"] == 100 - 84  # the one region without posts takes the national remainder
    # remainder 300 - 168 = 132; floors: F max(2 x 11, 30 on the ballot) = 30, G max(26, 20) = 26, H 2 x 16 = 32;
    # 44 left; caps (4 per post): F 44, G 52, H 64. Lowest turnout first: F (72 %) +14, H (79 %) +30, G none.
    assert frame["cands_registered"].tolist()[5:] == [44, 26, 62]
    assert frame["cands_registered"].sum() == 300 and frame.attrs["gets_remainder"] == "F, H"
    high, _ = specification.bounded_counts(_regional(), "registered", NATIONAL, to_lowest=False)
    assert high["cands_registered"].tolist()[5:] == [30, 52, 50]  # G (88 %) +26 to its cap, then H +18
    assert high.attrs["gets_remainder"] == "G, H"


def test_bounds_refuse_what_the_published_figures_do_not_allow() -> None:
    assert specification.bounded_counts(_regional(), "on ballot", NATIONAL, True) == (
        None,
        "no national total of on ballot candidates is published",
    )
    two_missing = _regional().assign(posts=lambda f: f["posts"].where(f["region"] != "A"))
    assert specification.bounded_counts(two_missing, "registered", NATIONAL, True)[1] == (
        "more than one region lacks its posts"
    )
    assert specification.bounded_counts(_regional(), "registered", {**NATIONAL, "cands_registered": 200}, True)[1] == (
        "the published regions leave less than the least the others need"  # 32 left, 88 needed
    )
    # 400: 144 left over the floors, but the caps leave room for 14 + 26 + 32 = 72 only
    assert specification.bounded_counts(_regional(), "registered", {**NATIONAL, "cands_registered": 400}, True)[1] == (
        "the national remainder exceeds what the largest published count per post allows"
    )


def test_real_imputations_stay_within_the_legal_minimum_and_the_largest_published_value(real) -> None:
    frame, nat = real
    bounds = specification.published_bounds(frame)
    assert bounds["floor_per_post"] == 2  # Kyzylorda 6 and Mangystau 5 posts with 2 candidates; none with fewer
    largest = max((frame["cands_registered"] / frame["posts"]).max(), (frame["cands_on_ballot"] / frame["posts"]).max())
    assert bounds["cap_per_post"] == largest == pytest.approx(268 / 75)  # Karaganda, registered
    for to_lowest in (True, False):
        filled, reason = specification.bounded_counts(frame, "registered", nat, to_lowest)
        assert reason == ""
        imputed = frame["cands_registered"].isna()
        per_post = filled.loc[imputed, "cands_registered"] / filled.loc[imputed, "posts"]
        assert (per_post >= 2).all() and (per_post <= largest + 1e-12).all()
        assert (filled.loc[imputed, "cands_registered"] >= frame.loc[imputed, "cands_on_ballot"].fillna(0)).all()
        assert filled["cands_registered"].sum() == nat["cands_registered"]


def test_real_curve_counts_only_specifications_that_can_be_built(real) -> None:
    frame, nat = real
    curve = specification.specification_curve(frame, nat, "cands_per_seat")
    assert len(curve) == 3 * 3 * 2 == len(specification.specifications("cands_per_seat"))
    assert not curve["status"].str.startswith("not available").any()
    assert set(curve["definition"]) == {"registered", "on ballot", "either + stage indicator"}
    assert not curve["definition"].eq(specification.EITHER).any()  # the confounded count is not in the curve
    assert (curve["n_regions"] > 0).all()


def test_mirror_allocations_enter_or_leave_together(real) -> None:
    frame, nat = real
    bounds = specification.bounds_sensitivity(frame, nat, "cands_per_seat")
    assert len(bounds) == 12 and set(bounds["missing"]) == set(specification.BOUNDS)
    per_pair = bounds.groupby("pair")["estimable"].agg(["all", "any"])
    assert (per_pair["all"] == per_pair["any"]).all()
    # on the real data one pair is split by the leverage rule: electorate-weighted, most influential dropped, where
    # the highest-turnout allocation has a region of leverage above 0.8 and the lowest-turnout one does not
    pair = bounds[bounds["pair"] == "electorate, most influential dropped"].set_index("missing")["status"]
    assert pair["remainder to highest turnout"].startswith("not estimable: one observation has leverage")
    assert pair["remainder to lowest turnout"] == "not estimable: its mirror allocation is not estimable"
    alone = specification.fit_specification(
        frame,
        specification.Specification("registered", "electorate", "most influential dropped", specification.BOUNDS[0]),
        nat,
        "cands_per_seat",
    )
    assert alone["status"] == "ok"  # estimable on its own: only the pair rule takes it out
    assert specification.bounds_sensitivity(frame, nat, "self_share").empty


def test_the_stage_indicator_is_a_covariate_and_the_slope_is_within_stage() -> None:
    data = _regional()
    row = specification.fit_specification(
        data, specification.Specification("either + stage indicator", "none", "all kept"), NATIONAL, "cands_per_seat"
    )
    used = data.iloc[:7]  # A-G have a count and posts
    x = (used["cands"] / used["posts"]).to_numpy()
    stage = (used["cands_kind"] == "registered").to_numpy(dtype=float)
    exog = np.column_stack([np.ones(7), x, stage])
    fit = GLM(used["turnout_pct"].to_numpy() / 100, exog, family=families.Binomial()).fit()
    mu = expit(exog @ fit.params)
    assert row["n_regions"] == 7 and row["regions"] == "A, B, C, D, E, F, G"
    assert row["slope_logit"] == pytest.approx(fit.params[1], rel=1e-7)
    assert row["ame_pp"] == pytest.approx(0.5 * 100 * fit.params[1] * np.mean(mu * (1 - mu)), rel=1e-7)
    plain = specification.fit_specification(
        data, specification.Specification(specification.EITHER, "none", "all kept"), NATIONAL, "cands_per_seat"
    )
    without = GLM(used["turnout_pct"].to_numpy() / 100, exog[:, :2], family=families.Binomial()).fit()
    assert plain["slope_logit"] == pytest.approx(without.params[1], rel=1e-7)
    assert plain["slope_logit"] != pytest.approx(row["slope_logit"], rel=1e-3)


def test_real_stage_comparison_shows_what_the_indicator_does(real) -> None:
    frame, nat = real
    stages = specification.stage_comparison(frame, nat, "cands_per_seat").set_index("definition")
    assert list(stages.index) == ["registered", "on ballot", "either + stage indicator", specification.EITHER]
    assert stages.loc[specification.EITHER, "slope_logit"] == pytest.approx(-0.484574, abs=1e-6)
    assert stages.loc["either + stage indicator", "slope_logit"] == pytest.approx(-0.227568, abs=1e-6)
    assert stages.loc[specification.EITHER, "ci_upper_pp"] < 0 < stages.loc["either + stage indicator", "ci_upper_pp"]
    assert list(stages["n_regions"]) == [6, 8, 11, 11]


def test_default_specification_follows_the_parameters() -> None:
    default = specification.default_specification("cands_per_seat", "on ballot")
    assert default == specification.Specification("on ballot", "none", "all kept")
    assert specification.default_specification("self_share", "registered", "posts").definition.startswith(
        "not applicable"
    )
    with pytest.raises(ValueError, match="counting_stage must be one of"):
        specification.default_specification("cands_per_seat", "either")
    curve = specification.specification_curve(_regional(), NATIONAL, "cands_per_seat", default)
    assert curve["default"].sum() == 1
    chosen = curve[curve["default"]].iloc[0]
    assert (chosen["definition"], chosen["weighting"], chosen["influence"]) == ("on ballot", "none", "all kept")


def test_main_predictor_changes_the_curve_and_its_labels() -> None:
    data = _regional().assign(self_share=[0.30, 0.41, 0.50, 0.60, 0.70, 0.35, 0.66, 0.47])
    counts = specification.specification_curve(data, NATIONAL, "cands_per_seat")
    shares = specification.specification_curve(data, NATIONAL, "self_share")
    assert len(counts) == 18 and len(shares) == 6
    assert set(shares["definition"]) == {"not applicable (self-nominated share is not a candidate count)"}
    row = shares[(shares["weighting"] == "none") & (shares["influence"] == "all kept")].iloc[0]
    fit = regional.fit_regional_fractional_logit(data, ["self_share"])
    mu = expit(fit.params["Intercept"] + fit.params["self_share"] * data["self_share"])
    assert row["n_regions"] == 8
    assert row["ame_pp"] == pytest.approx(0.1 * 100 * fit.params["self_share"] * np.mean(mu * (1 - mu)), rel=1e-9)
    assert specification.curve_labels("self_share")["step"] == "+0.1 self-nominated share"
    assert specification.curve_labels("cands_per_seat")["step"] == "+0.5 candidates per post"
    assert (
        specification.curve_labels("self_share")["choices"]["definition"]
        != (specification.curve_labels("cands_per_seat")["choices"]["definition"])
    )
    columns = tables.specification_curve_columns(specification.step_label("self_share"))
    assert columns["ame_pp"].label == "change (pp per +0.1 self-nominated share)"
    assert tables.specification_curve_columns(specification.step_label("cands_per_seat"))["ame_pp"].label == (
        "change (pp per +0.5 candidates per post)"
    )


def test_not_estimable_rule() -> None:
    assert inference.estimability(3, 0.5) == "3 residual degrees of freedom (fewer than 4)"
    assert inference.estimability(4, 0.81) == "one observation has leverage 0.81 (above 0.8)"
    assert inference.estimability(4, 0.8) == "" and inference.estimability(None, None) == ""


def test_summary_gives_ranges_of_estimates_and_intervals() -> None:
    curve = pd.DataFrame(
        {
            "rank": [1, 2, 3, 4],
            "status": ["ok", "ok", "ok", "not estimable: x"],
            "estimable": [True, True, True, False],
            "ame_pp": [-3.0, -1.0, 0.5, math.nan],
            "ci_lower_pp": [-5.0, -9.0, -2.0, math.nan],
            "ci_upper_pp": [-0.5, 7.0, 3.0, math.nan],
            "excludes_zero": [True, False, False, False],
            "n_regions": [6, 11, 8, 4],
            "default": [False, True, False, False],
            "definition": ["registered", "on ballot", "registered", "on ballot"],
        }
    )
    assert specification.curve_summary(curve, "cands_per_seat") == {
        "specifications": 4,
        "estimable": 3,
        "step_candidates_per_post": 0.5,
        "step": 0.5,
        "ame_pp_min": -3.0,
        "ame_pp_median": -1.0,
        "ame_pp_max": 0.5,
        "ci_lower_pp_min": -9.0,
        "ci_upper_pp_max": 7.0,
        "excluding_zero": 1,
        "negative": 2,
        "n_regions_min": 6,
        "n_regions_max": 11,
        "n_regions_by_definition": {"registered": [6, 8], "on ballot": [11, 11]},
        "default_rank": 2,
        "default_estimable": True,
    }


# ---- the joint permutation test ------------------------------------------------------------------------------


def test_batched_fits_reproduce_the_curve_on_the_real_data(real) -> None:
    frame, nat = real
    curve = specification.specification_curve(frame, nat, "cands_per_seat")
    estimable = curve[curve["estimable"]]
    inputs = specification.joint_inputs(frame, curve, nat, "cands_per_seat")
    keys = np.arange(len(frame))[None]  # the identity: the data themselves
    turnout = frame["turnout_pct"].to_numpy()
    for spec, (_, row) in zip(inputs, estimable.iterrows(), strict=True):
        ame, lower, upper = resampling._joint_draws(turnout, spec, keys)
        assert [ame[0], lower[0], upper[0]] == pytest.approx(
            [row["ame_pp"], row["ci_lower_pp"], row["ci_upper_pp"]], rel=1e-6, abs=1e-8
        ), spec.name
    result = resampling.joint_curve_test(turnout, inputs, n_permutations=199, seed=5)
    assert result.observed_median == pytest.approx(estimable["ame_pp"].median(), rel=1e-7)
    assert result.observed_excluding == int(estimable["excludes_zero"].sum())
    again = resampling.joint_curve_test(turnout, inputs, n_permutations=199, seed=5)
    assert (again.p_median, again.p_share) == (result.p_median, result.p_share)
    np.testing.assert_array_equal(again.null_median, result.null_median)
    assert result.n_permutations == 199 and 0 < result.p_median <= 1 and 0 < result.p_share <= 1


def _tiny() -> pd.DataFrame:
    """Five regions with a self-nominated share, posts and (for four) an electorate."""
    return pd.DataFrame(
        {
            "region": list("ABCDE"),
            "turnout_pct": [72.0, 81.5, 77.0, 88.0, 84.5],
            "self_share": [0.31, 0.52, 0.44, 0.71, 0.60],
            "posts": [10.0, 14.0, 9.0, 20.0, 12.0],
            "voters_on_rolls": [900.0, 1500.0, np.nan, 2100.0, 1300.0],
        }
    )


def _statistics_by_statsmodels(frame: pd.DataFrame, specs: list, order: tuple[int, ...]) -> tuple[float, float]:
    """Median and share of intervals excluding zero under one order of the regions, refitting every specification
    with :func:`specification.fit_specification` (statsmodels) on turnout permuted within the regions it uses."""
    position = {region: i for i, region in enumerate(order)}
    rows = []
    for spec in specs:
        weight = specification.WEIGHTS[spec.weighting]
        used = frame.dropna(subset=["self_share", "turnout_pct"] + ([weight] if weight else [])).index
        ranked = sorted(used, key=lambda r: position[r])  # the region placed i-th gets the i-th turnout
        permuted = frame.copy()
        permuted.loc[ranked, "turnout_pct"] = frame.loc[list(used), "turnout_pct"].to_numpy()
        rows.append(specification.fit_specification(permuted, spec, {}, "self_share"))
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return math.nan, math.nan
    excluding = sum(r["ci_lower_pp"] > 0 or r["ci_upper_pp"] < 0 for r in ok)
    return float(np.median([r["ame_pp"] for r in ok])), excluding / len(ok)


def test_joint_p_values_equal_exact_enumeration_of_every_permutation(monkeypatch) -> None:
    # five regions leave 2-3 residual df: lower the df rule (in both implementations) so that the fits count
    monkeypatch.setattr(inference, "MIN_DF_RESID", 1)
    frame = _tiny()
    curve = specification.specification_curve(frame, {}, "self_share")
    assert curve["estimable"].sum() >= 3
    estimable = curve[curve["estimable"]]
    specs = [
        specification.Specification(d, w, i)
        for d, w, i in estimable[["definition", "weighting", "influence"]].to_numpy()
    ]
    inputs = specification.joint_inputs(frame, curve, {}, "self_share")
    orders = list(itertools.permutations(range(5)))
    result = resampling.joint_curve_test(frame["turnout_pct"].to_numpy(), inputs, permutations=orders[1:])
    # independently: statsmodels on every one of the 120 orders (the identity included)
    values = np.array([_statistics_by_statsmodels(frame, specs, order) for order in orders])
    observed_median, observed_share = values[0]
    valid = np.isfinite(values[:, 0])
    assert result.observed_median == pytest.approx(observed_median, rel=1e-7)
    assert result.observed_share == pytest.approx(observed_share)
    np.testing.assert_allclose(result.null_median, values[1:, 0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.null_share, values[1:, 1], atol=1e-12)
    exact_median = np.sum(np.abs(values[valid, 0]) >= abs(observed_median) * (1 - 1e-12)) / valid.sum()
    exact_share = np.sum(values[valid, 1] >= observed_share * (1 - 1e-12)) / valid.sum()
    assert result.p_median == pytest.approx(exact_median, rel=1e-12)
    assert result.p_share == pytest.approx(exact_share, rel=1e-12)
    assert result.n_permutations == 119 and result.n_failed == int((~valid[1:]).sum())
    assert 0 < result.p_median < 1  # the enumeration distinguishes draws


def test_joint_test_refuses_bad_input() -> None:
    frame = _tiny()
    with pytest.raises(ValueError, match="at least one estimable specification"):
        resampling.joint_curve_test(frame["turnout_pct"].to_numpy(), [])
    spec = specification.JointInput(
        "x", np.arange(5), np.column_stack([np.ones(5), frame["self_share"]]), 1, None, False, 0.1
    )
    with pytest.raises(ValueError, match="within \\[0, 100\\]"):
        resampling.joint_curve_test(np.array([50.0, 60.0, 70.0, 80.0, 101.0]), [spec])
    with pytest.raises(ValueError, match="order of range\\(5\\)"):
        resampling.joint_curve_test(frame["turnout_pct"].to_numpy(), [spec], permutations=[[0, 1, 2, 3, 3]])
