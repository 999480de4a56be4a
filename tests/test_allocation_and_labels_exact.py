"""Integer allocation rules of the simulator and the labels, frames and refusals of the fits, by value or exact
message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import inference, race, regional
from akim_turnout.study import simulate

MIX_RHS = "np.log(n_candidates) + self_share + any_woman"


@pytest.mark.parametrize(("total", "basis"), [(-1, [1.0, 1.0]), (5, [0.0, 0.0]), (5, [2.0, -1.0])])
def test_largest_remainder_refuses_impossible_splits(total: int, basis: list[float]) -> None:
    with pytest.raises(ValueError, match=rf"^Cannot split {total} over basis \[{basis[0]}, {basis[1]}\]$"):
        simulate.largest_remainder(total, np.array(basis))


def test_largest_remainder_edges_by_hand() -> None:
    assert simulate.largest_remainder(0, np.array([1.0, 2.0])).tolist() == [0, 0]
    assert simulate.largest_remainder(3, np.array([0.0, 1.0])).tolist() == [0, 3]
    assert simulate.largest_remainder(1, np.array([0.5, 0.5])).tolist() == [1, 0]  # a tie goes to the first
    assert simulate.largest_remainder(7, np.array([1, 2, 4])).tolist() == [1, 2, 4]
    # quotas 2.4, 1.6, 1.0 (sum 5): floors 2, 1, 1, the unit left goes to the largest fraction (0.6)
    assert simulate.largest_remainder(5, np.array([2.4, 1.6, 1.0])).tolist() == [2, 2, 1]


def test_capped_water_filling_by_hand() -> None:
    caps = np.array([10, 10, 2])
    # proportional quotas 6, 6, 6 exceed the third cap: it is fixed at 2 and 16 is spread over the others
    np.testing.assert_allclose(
        simulate._scale_to_total_with_caps(np.array([1.0, 1.0, 1.0]), caps, 18), [8.0, 8.0, 2.0], rtol=1e-15
    )
    # no weight at all: spread in proportion to the caps
    np.testing.assert_allclose(simulate._scale_to_total_with_caps(np.zeros(3), caps, 11), [5.0, 5.0, 1.0], rtol=1e-15)
    # weights only where the cap is reached: the rest goes by caps
    np.testing.assert_allclose(
        simulate._scale_to_total_with_caps(np.array([0.0, 0.0, 1.0]), caps, 12), [5.0, 5.0, 2.0], rtol=1e-15
    )
    # a quota exactly at its cap stays free and equal to it
    np.testing.assert_allclose(
        simulate._scale_to_total_with_caps(np.array([1.0, 1.0, 1.0]), np.array([2, 2, 2]), 6),
        [2.0, 2.0, 2.0],
        rtol=1e-15,
    )
    np.testing.assert_allclose(simulate._scale_to_total_with_caps(np.array([1.0, 1.0]), caps[:2], 20), [10.0, 10.0])
    with pytest.raises(ValueError, match=r"^Target exceeds the sum of caps$"):
        simulate._scale_to_total_with_caps(np.ones(3), caps, 23)


def test_true_coefficients_series() -> None:
    truth = simulate.true_coefficients(simulate.SimulationSettings.from_params())
    assert truth.name == "true_value" and truth.to_dict() == {
        "np.log(n_candidates)": 0.2,
        "self_share": -0.3,
        "any_woman": 0.1,
    }


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=5
    )


def test_naive_binomial_is_the_model_based_fit(races: pd.DataFrame) -> None:
    naive = race.fit_race_naive_binomial(races, MIX_RHS)
    assert naive.name == "race_glm_naive" and naive.n_clusters is None and naive.cov_type == "nonrobust"
    np.testing.assert_allclose(naive.cov_params.to_numpy(), np.asarray(naive.raw.cov_params()), rtol=1e-12)
    np.testing.assert_allclose(
        naive.bse, np.sqrt(np.diag(np.linalg.inv(naive.raw.model.hessian(naive.raw.params) * -1))), rtol=1e-8
    )
    assert naive.n_obs == 730


@pytest.mark.parametrize("fit", ["beta", "gee", "mixedlm"])
def test_covariance_frames_are_labelled_by_term(races: pd.DataFrame, fit: str) -> None:
    result = {"beta": race.fit_race_beta, "gee": race.fit_race_gee, "mixedlm": race.fit_race_mixedlm}[fit](
        races, MIX_RHS
    )
    names = list(result.params.index)
    assert list(result.cov_params.index) == names and list(result.cov_params.columns) == names
    assert result.n_obs == 730 and result.n_clusters == 14 and result.warnings == ()
    assert result.extra["design_columns"] == ["Intercept", "np.log(n_candidates)", "self_share", "any_woman"]
    if fit == "gee":
        np.testing.assert_array_equal(result.extra["_registered"], races["registered"].to_numpy(float))
        assert result.extra["weighted"] is False


def test_marginal_effects_refusals_and_terms(races: pd.DataFrame) -> None:
    fit = race.fit_race_glm(races, "C(region) + " + MIX_RHS)
    default = race.race_average_marginal_effects(fit)
    assert default["term"].tolist() == ["np.log(n_candidates)", "self_share", "any_woman"]  # no dummies, no intercept
    chosen = race.race_average_marginal_effects(fit, ["any_woman"], alpha=0.1)
    assert chosen["term"].tolist() == ["any_woman"]
    row = chosen.iloc[0]
    from scipy import stats

    assert (row["ci_upper_pp"] - row["ame_pp"]) / row["std_error_pp"] == pytest.approx(stats.t.ppf(0.95, 13), rel=1e-12)
    mixed = race.fit_race_mixedlm(races, MIX_RHS)
    with pytest.raises(
        ValueError,
        match=r"^race_mixedlm: marginal effects need a logit-mean fit with its raw "
        r"results$",
    ):
        inference.average_marginal_effects(mixed)
    bare = inference.FitResult(
        "bare",
        "",
        "",
        fit.params,
        fit.bse,
        fit.conf_int,
        fit.pvalues,
        1,
        None,
        "",
        False,
        None,
        extra={"mean_link": "logit"},
        cov_params=fit.cov_params,
    )
    with pytest.raises(ValueError, match=r"^bare: marginal effects need a logit-mean fit with its raw results$"):
        inference.average_marginal_effects(bare)
    no_cov = inference.FitResult(
        "no_cov",
        "",
        "",
        fit.params,
        fit.bse,
        fit.conf_int,
        fit.pvalues,
        1,
        None,
        "",
        False,
        None,
        extra={"mean_link": "logit"},
        raw=fit.raw,
    )
    with pytest.raises(ValueError, match=r"^no_cov: marginal effects need a logit-mean fit with its raw results$"):
        inference.average_marginal_effects(no_cov)


def test_sandwich_default_is_hc3() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(8)
    design = sm.add_constant(rng.normal(size=10))
    raw = sm.GLM(np.clip(0.5 + 0.1 * rng.normal(size=10), 0.01, 0.99), design, family=sm.families.Binomial()).fit()
    np.testing.assert_array_equal(inference.glm_sandwich_cov(raw), inference.glm_sandwich_cov(raw, "HC3"))
    assert not np.allclose(inference.glm_sandwich_cov(raw), inference.glm_sandwich_cov(raw, "HC0"))


def test_leave_one_out_passes_covariance_and_term() -> None:
    # nine regions: every leave-one-out fit keeps 8 - 3 = 5 residual df, enough to be reported (inference.estimability)
    regions = pd.DataFrame(
        {
            "region": list("ABCDEFGHI"),
            "x": [1.0, 2.0, 3.5, 5.0, 6.0, 2.5, 4.0, 3.0, 5.5],
            "z": [0.5, -1.0, 2.0, 0.0, 1.0, 0.3, -0.5, 1.5, -0.2],
            "turnout_pct": [60.0, 66.0, 71.0, 69.0, 75.0, 64.0, 70.0, 67.0, 73.0],
        }
    )
    hc1 = regional.leave_one_out(regions, ["x", "z"], cov_type="HC1")
    refit = regional.fit_regional_fractional_logit(regions[regions["region"] != "A"], ["x", "z"], cov_type="HC1")
    assert hc1.iloc[0]["std_error"] == refit.bse["x"]
    z_term = regional.leave_one_out(regions, ["x", "z"], term="z")
    refit3 = regional.fit_regional_fractional_logit(regions[regions["region"] != "A"], ["x", "z"])
    full = regional.fit_regional_fractional_logit(regions, ["x", "z"])
    assert z_term.iloc[0]["estimate"] == refit3.params["z"]
    assert z_term.iloc[0]["change"] == pytest.approx(refit3.params["z"] - full.params["z"], abs=1e-15)


def test_simulated_race_columns_by_hand() -> None:
    """One simulation built inside the test (not from a shared fixture): every derived column recomputed."""
    margins = simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)
    races = simulate.simulate_from_margins(margins, simulate.SimulationSettings.from_params(), seed=12)
    assert races.attrs["seed"] == 12 and set(races.attrs["alpha_region"]) == set(margins["region"])
    assert all(round(a, 10) == a for a in races.attrs["alpha_region"].values())
    assert (races["n_self"] == races["n_candidates"] - races["n_party"]).all()
    np.testing.assert_allclose(races["self_share"], races["n_self"] / races["n_candidates"], rtol=1e-15)
    np.testing.assert_allclose(races["women_share"], races["n_women"] / races["n_candidates"], rtol=1e-15)
    assert (races["any_self"] == (races["n_self"] > 0).astype(int)).all()
    assert (races["any_woman"] == (races["n_women"] > 0).astype(int)).all()
    assert (races["winner_votes"] <= races["valid_votes"]).all() and (races["valid_votes"] == races["voted"]).all()
    assert (races["winner_votes"] * races["n_candidates"] >= races["voted"]).all() and races[
        "winner_votes"
    ].dtype.kind == "i"
    assert (races["voted"] < races["registered"]).all() and (races["n_candidates"] >= 2).all()
    by_region = races.groupby("region")
    assert by_region["n_party"].sum()[margins["region"]].tolist() == margins["cands_party"].tolist()
    assert by_region["n_women"].sum()[margins["region"]].tolist() == margins["cands_women"].tolist()
    assert by_region["n_candidates"].sum()[margins["region"]].tolist() == margins["cands"].tolist()
    assert by_region["registered"].sum()[margins["region"]].tolist() == margins["voters_on_rolls"].tolist()
