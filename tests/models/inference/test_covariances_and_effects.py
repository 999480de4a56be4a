"""Fit results of akim_turnout.models.inference: the sandwich covariances (HC0, HC1, HC3 and their
refusals), captured warnings, t inference with clusters, marginal effects and their frames, the bias-reduced GEE
covariance with an offset, and the dictionaries a fit writes."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py
from scipy.special import expit

from akim_turnout.models import fastfit, inference, race, regional
from akim_turnout.models.inference import FitResult, captured_warnings, glm_sandwich_cov, mancl_derouen_cov
from akim_turnout.models.race import fit_race_glm
from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings, simulate_races, true_formula_rhs
from models.tables import stub_glm  # tests/ is on sys.path


@pytest.fixture(scope="module")
def races(regions: pd.DataFrame) -> pd.DataFrame:
    return simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=11)


@pytest.fixture(scope="module")
def race_glm(races: pd.DataFrame) -> FitResult:
    return fit_race_glm(races, true_formula_rhs(SimulationSettings.from_params()))


def test_captured_warnings_records_instead_of_printing() -> None:
    with captured_warnings() as caught:
        warnings.warn("first", UserWarning, stacklevel=2)
        warnings.warn("first", UserWarning, stacklevel=2)
    assert caught == ["UserWarning: first"]


def test_clustered_inference_uses_t_with_clusters_minus_one(race_glm: FitResult) -> None:
    assert race_glm.use_t and race_glm.cov_type == "cluster"
    assert race_glm.n_clusters == 14 and race_glm.df_resid == 13
    np.testing.assert_allclose(race_glm.pvalues, race_glm.raw.pvalues, rtol=1e-8)
    np.testing.assert_allclose(race_glm.conf_int.to_numpy(), race_glm.raw.conf_int(), rtol=1e-8)


def test_statsmodels_glm_hc3_is_really_hc0() -> None:
    """Sentinel: statsmodels 0.15 GLM ignores the HC1/HC3 small-sample corrections."""
    rng = np.random.default_rng(0)
    exog = sm.add_constant(rng.normal(size=12))
    share = expit(0.5 + 0.3 * exog[:, 1] + rng.normal(0, 0.3, 12))
    model = sm.GLM(share, exog, family=sm.families.Binomial())
    np.testing.assert_allclose(model.fit(cov_type="HC3").bse, model.fit(cov_type="HC0").bse)
    assert not np.allclose(glm_sandwich_cov(model.fit(), "HC3"), glm_sandwich_cov(model.fit(), "HC0"))


def test_sandwich_matches_ols_hc_estimators() -> None:
    rng = np.random.default_rng(1)
    exog = sm.add_constant(rng.normal(size=(20, 2)))
    y = exog @ [1.0, 2.0, 3.0] + rng.normal(size=20) * (1 + np.abs(exog[:, 1]))
    gaussian = sm.GLM(y, exog).fit()
    for kind in ("HC0", "HC1", "HC3"):
        ols = sm.OLS(y, exog).fit(cov_type=kind).cov_params()
        np.testing.assert_allclose(glm_sandwich_cov(gaussian, kind), ols, atol=1e-12)


def _bare_fit(name: str = "m", df_resid: float | None = None, **extra) -> inference.FitResult:
    empty = pd.Series(dtype=float)
    return inference.FitResult(
        name=name,
        family="",
        formula="",
        params=empty,
        bse=empty,
        conf_int=pd.DataFrame({"lower": empty, "upper": empty}),
        pvalues=empty,
        n_obs=0,
        n_clusters=None,
        cov_type="",
        use_t=df_resid is not None,
        df_resid=df_resid,
        extra=extra,
    )


def test_ame_interval_reaching_exactly_100_pp_is_kept() -> None:
    """With a zero standard error the interval is the point itself: -100 and +100 pp lie on the turnout scale and
    are kept; -100.5 and +100.5 pp lie beyond it, so those rows are not estimable and their numbers are hidden."""
    raw = pd.DataFrame({"term": ["a", "b", "c", "d"], "ame": [-1.0, 1.0, -1.005, 1.005], "se": [0.0] * 4})
    assert 100 * -1.005 < -100 and 100 * 1.005 > 100
    out = inference._ame_table(raw, _bare_fit(), 0.05, weighted=False)
    wide = "not estimable: interval wider than the turnout scale"
    assert out["status"].tolist() == ["ok", "ok", wide, wide]
    assert out["ci_lower_pp"].tolist()[:2] == [-100.0, 100.0] and out["ci_upper_pp"].tolist()[:2] == [-100.0, 100.0]
    assert out["ame_pp"].isna().tolist() == [False, False, True, True]


def test_to_frame_of_a_fit_that_is_not_estimable_keeps_float_columns() -> None:
    """A fit with 3 residual degrees of freedom (fewer than 4) reports empty numbers: NaN in float columns, not
    None in object columns."""
    fit = inference.FitResult(
        name="m",
        family="",
        formula="",
        params=pd.Series([1.0], index=["x"]),
        bse=pd.Series([0.5], index=["x"]),
        conf_int=pd.DataFrame({"lower": [0.0], "upper": [2.0]}, index=["x"]),
        pvalues=pd.Series([0.05], index=["x"]),
        n_obs=4,
        n_clusters=None,
        cov_type="HC3",
        use_t=True,
        df_resid=3.0,
    )
    frame = fit.to_frame()
    assert frame["status"].tolist() == ["not estimable: 3 residual degrees of freedom (fewer than 4)"]
    for column in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value"):
        assert frame[column].dtype == np.float64 and np.isnan(frame[column].iloc[0])


def test_hc3_refuses_leverage_at_exactly_the_guard() -> None:
    """HC3 divides by 1 - h; a leverage of exactly 1 - 1e-10 is already refused (the guard is inclusive), one just
    below it is not (HC3 = sum of (s_i / (1 - h_i))^2 for a one-parameter model with Hessian -1)."""
    with pytest.raises(ValueError, match=r"^HC3 undefined: an observation has leverage 1$"):
        inference.glm_sandwich_cov(stub_glm([0.0], [[1.0], [1.0]], [[-1.0]], [0.5, 1 - 1e-10]))
    cov = inference.glm_sandwich_cov(stub_glm([0.0], [[1.0], [1.0]], [[-1.0]], [0.5, 0.75]))
    assert cov.tolist() == [[(1 / 0.5) ** 2 + (1 / 0.25) ** 2]]


def test_average_marginal_effects_reads_weights_as_float64() -> None:
    """Weights are numbers whatever their storage: float32 ones give exactly the AMEs of float64 ones (1/7 in
    float32 is not 1/7 in float64, so computing in float32 would change the last digits)."""
    df = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
        }
    )
    fit = regional.fit_regional_fractional_logit(df, "x")
    assert np.float64(np.float32(1) / np.float32(7)) != 1 / 7
    as64 = inference.average_marginal_effects(fit, averaging_weights=np.ones(7), keep_not_estimable=True)
    as32 = inference.average_marginal_effects(
        fit, averaging_weights=np.ones(7, dtype=np.float32), keep_not_estimable=True
    )
    pd.testing.assert_frame_equal(as32, as64, check_exact=True)


@pytest.fixture(scope="module")
def races_seed_3() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=3
    )


def _gee_data(races_seed_3: pd.DataFrame):
    return fastfit.prepare_races(
        races_seed_3, "np.log(n_candidates) + self_share", "region", "voted", "registered", "t"
    )


def test_mancl_derouen_with_an_offset_equals_statsmodels(races_seed_3: pd.DataFrame) -> None:
    d = _gee_data(races_seed_3)
    model = sm.GEE(
        d.voted / d.registered,
        d.exog,
        groups=d.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        offset=0.1 * np.log(d.registered),
    )
    result = model.fit(cov_type="bias_reduced")
    np.testing.assert_allclose(mancl_derouen_cov(result), np.asarray(result.cov_params()), rtol=1e-10)


def test_mancl_derouen_refusals(races_seed_3: pd.DataFrame) -> None:
    d = _gee_data(races_seed_3)
    share = d.voted / d.registered
    gaussian = sm.GEE(share, d.exog, groups=d.clusters, cov_struct=sm.cov_struct.Exchangeable()).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs a binomial GEE with logit link$"):
        mancl_derouen_cov(gaussian)
    probit = sm.GEE(
        share,
        d.exog,
        groups=d.clusters,
        cov_struct=sm.cov_struct.Exchangeable(),
        family=sm.families.Binomial(link=sm.families.links.Probit()),
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs a binomial GEE with logit link$"):
        mancl_derouen_cov(probit)
    independent = sm.GEE(
        share, d.exog, groups=d.clusters, family=sm.families.Binomial(), cov_struct=sm.cov_struct.Independence()
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov needs an exchangeable working correlation$"):
        mancl_derouen_cov(independent)
    weighted = sm.GEE(
        share,
        d.exog,
        groups=d.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        weights=d.registered / d.registered.mean(),
    ).fit()
    with pytest.raises(ValueError, match=r"^mancl_derouen_cov does not handle GEE weights$"):
        mancl_derouen_cov(weighted)


MIX_RHS = "np.log(n_candidates) + self_share + any_woman"


@pytest.fixture(scope="module")
def races_seed_5() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=5
    )


def test_marginal_effects_refusals_and_terms(races_seed_5: pd.DataFrame) -> None:
    fit = race.fit_race_glm(races_seed_5, "C(region) + " + MIX_RHS)
    default = race.race_average_marginal_effects(fit)
    assert default["term"].tolist() == ["np.log(n_candidates)", "self_share", "any_woman"]  # no dummies, no intercept
    chosen = race.race_average_marginal_effects(fit, ["any_woman"], alpha=0.1)
    assert chosen["term"].tolist() == ["any_woman"]
    row = chosen.iloc[0]
    from scipy import stats

    assert (row["ci_upper_pp"] - row["ame_pp"]) / row["std_error_pp"] == pytest.approx(stats.t.ppf(0.95, 13), rel=1e-12)
    mixed = race.fit_race_mixedlm(races_seed_5, MIX_RHS)
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


def test_fit_result_to_dict_by_hand() -> None:
    params = pd.Series({"Intercept": 0.123456789, "x": -2.5})
    bse = pd.Series({"Intercept": 0.1, "x": 0.25})
    fit = inference.FitResult(
        name="hand",
        family="binomial",
        formula="y ~ x",
        params=params,
        bse=bse,
        conf_int=pd.DataFrame({"lower": params - 0.5, "upper": params + 0.5}),
        pvalues=pd.Series({"Intercept": 0.2, "x": 1e-12}),
        n_obs=20,
        n_clusters=4,
        cov_type="cluster",
        use_t=True,
        df_resid=10.0,
        warnings=("UserWarning: w",),
        notes=("n",),
        extra={"a": 1.23456789, "_hidden": np.arange(3)},
    )
    assert fit.to_dict() == {
        "name": "hand",
        "family": "binomial",
        "formula": "y ~ x",
        "n_obs": 20,
        "n_clusters": 4,
        "cov_type": "cluster",
        "use_t": True,
        "df_resid": 10,
        "coefficients": {
            "Intercept": {
                "estimate": 0.123457,
                "std_error": 0.1,
                "ci_lower": -0.376543,
                "ci_upper": 0.623457,
                "p_value": 0.2,
            },
            "x": {"estimate": -2.5, "std_error": 0.25, "ci_lower": -3, "ci_upper": -2, "p_value": 0},
        },
        "warnings": ["UserWarning: w"],
        "notes": ["n"],
        "extra": {"a": 1.23457},
    }
    assert json.loads(json.dumps(fit.to_dict())) == fit.to_dict()
    # three residual df (fewer than inference.MIN_DF_RESID = 4): no number is reported, the fit keeps its params
    few = dataclasses.replace(fit, df_resid=3.0)
    assert few.params["x"] == -2.5 and few.to_dict()["df_resid"] == 3
    assert few.to_dict()["coefficients"]["x"] == {
        "estimate": None,
        "std_error": None,
        "ci_lower": None,
        "ci_upper": None,
        "p_value": None,
    }
