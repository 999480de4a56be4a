"""What the race-level fits of akim_turnout.models.race report, asserted as exact values and sentences: the notes
and extras of each fit, the covariance frames by term, the naive binomial fit and the comparison table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import race
from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings, simulate_races


@pytest.fixture(scope="module")
def races_seed_5() -> pd.DataFrame:
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=5
    )


def test_naive_binomial_is_the_model_based_fit(races_seed_5: pd.DataFrame) -> None:
    naive = race.fit_race_naive_binomial(races_seed_5, MIX_RHS)
    assert naive.name == "race_glm_naive" and naive.n_clusters is None and naive.cov_type == "nonrobust"
    np.testing.assert_allclose(naive.cov_params.to_numpy(), np.asarray(naive.raw.cov_params()), rtol=1e-12)
    np.testing.assert_allclose(
        naive.bse, np.sqrt(np.diag(np.linalg.inv(naive.raw.model.hessian(naive.raw.params) * -1))), rtol=1e-8
    )
    assert naive.n_obs == 730


@pytest.mark.parametrize("fit", ["beta", "gee", "mixedlm"])
def test_covariance_frames_are_labelled_by_term(races_seed_5: pd.DataFrame, fit: str) -> None:
    result = {"beta": race.fit_race_beta, "gee": race.fit_race_gee, "mixedlm": race.fit_race_mixedlm}[fit](
        races_seed_5, MIX_RHS
    )
    names = list(result.params.index)
    assert list(result.cov_params.index) == names and list(result.cov_params.columns) == names
    assert result.n_obs == 730 and result.n_clusters == 14 and result.warnings == ()
    assert result.extra["design_columns"] == ["Intercept", "np.log(n_candidates)", "self_share", "any_woman"]
    if fit == "gee":
        np.testing.assert_array_equal(result.extra["_registered"], races_seed_5["registered"].to_numpy(float))
        assert result.extra["weighted"] is False


MIX_RHS = "np.log(n_candidates) + self_share + any_woman"


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return simulate_races(real_2021_regions(), NATIONAL_2021, SimulationSettings.from_params(), seed=11)


@pytest.fixture(scope="module")
def holed(races: pd.DataFrame) -> pd.DataFrame:
    """The races with two rows missing self_share (rows 0 and 5)."""
    out = races.astype({"self_share": float})
    out.loc[[0, 5], "self_share"] = np.nan
    return out


def test_race_glm_notes_and_extra(holed: pd.DataFrame) -> None:
    fit = race.fit_race_glm(holed, MIX_RHS)
    assert fit.name == "race_glm_cluster" and fit.family == "binomial GLM (logit)"
    assert fit.formula == f"[voted, registered - voted] ~ {MIX_RHS}"
    assert fit.notes == ("dropped 2 row(s) with missing values, e.g. row 0: missing self_share",)
    assert fit.n_obs == 728 and fit.n_clusters == 14 and fit.cov_type == "cluster"
    assert fit.extra["endog_form"] == "counts" and fit.extra["dropped_rows"] == 2
    assert fit.extra["mean_link"] == "logit"
    assert fit.extra["design_columns"] == ["Intercept", "np.log(n_candidates)", "self_share", "any_woman"]
    assert fit.extra["pearson_dispersion"] == pytest.approx(fit.raw.pearson_chi2 / (728 - 4), rel=1e-12)
    np.testing.assert_array_equal(fit.extra["_registered"], holed["registered"].drop(index=[0, 5]).to_numpy(float))
    naive = race.fit_race_naive_binomial(holed, MIX_RHS)
    assert naive.name == "race_glm_naive" and naive.cov_type == "nonrobust"
    assert naive.notes[-1] == (
        f"non-robust binomial SEs (Pearson chi2/df = {naive.extra['pearson_dispersion']:.1f}); "
        "for simulation comparison only"
    )
    with pytest.raises(ValueError, match=r"^endog_form must be 'counts' or 'share'$"):
        race.fit_race_glm(holed, MIX_RHS, endog_form="logit")
    with pytest.raises(ValueError, match=r"^solver must be 'newton' or 'irls'$"):
        race.fit_race_glm(holed, MIX_RHS, solver="bfgs")


def test_irls_and_newton_agree(races: pd.DataFrame) -> None:
    newton = race.fit_race_glm(races, MIX_RHS)
    irls = race.fit_race_glm(races, MIX_RHS, solver="irls")
    np.testing.assert_allclose(newton.params, irls.params, rtol=1e-7)
    np.testing.assert_allclose(newton.bse, irls.bse, rtol=1e-6)
    assert newton.notes == () and irls.notes == ()


def test_race_beta_notes_and_extra(holed: pd.DataFrame) -> None:
    edged = holed.copy()
    edged.loc[1, "voted"] = 0
    fit = race.fit_race_beta(edged, MIX_RHS)
    assert fit.name == "race_beta" and fit.family == "beta regression (logit mean)"
    assert fit.formula == f"squeezed voted/registered ~ {MIX_RHS}"
    assert fit.notes == (
        "dropped 2 row(s) with missing values, e.g. row 0: missing self_share",
        "Smithson-Verkuilen squeeze applied to all 728 shares; 1 were exactly 0 or 1",
    )
    assert {k: v for k, v in fit.extra.items() if k != "design_columns"} == {
        "mean_link": "logit",
        "n_boundary_squeezed": 1,
        "precision_link": "log",
    }
    assert fit.extra["design_columns"] == ["Intercept", "np.log(n_candidates)", "self_share", "any_woman"]
    assert list(fit.params.index)[-1] == "precision" and fit.cov_type == "cluster"
    assert fit.n_obs == 728 and fit.n_clusters == 14 and fit.df_resid == 13
    assert fit.raw.mle_retvals["converged"]
    # the Newton finish leaves no gradient: the score at the estimates is zero to 1e-6 per race
    assert np.max(np.abs(fit.raw.model.score(fit.raw.params))) < 1e-6 * 728
    with pytest.raises(ValueError, match=r"^fit_race_beta: invalid turnout rows: voted > registered"):
        race.fit_race_beta(edged.assign(voted=edged["registered"] + 1), MIX_RHS)


def test_race_gee_notes_and_extra(races: pd.DataFrame) -> None:
    fit = race.fit_race_gee(races, MIX_RHS)
    assert fit.name == "race_gee" and fit.family == "GEE binomial (logit), exchangeable"
    assert fit.formula == f"voted/registered ~ {MIX_RHS}"
    assert fit.notes == (
        "t inference with 13 df (statsmodels GEE uses normal)",
        "Mancl-DeRouen covariance with a generalized inverse of I - H_gg (akim_turnout.models.inference)",
    )
    assert fit.extra["weighted"] is False and fit.extra["mean_link"] == "logit"
    assert fit.extra["exchangeable_correlation"] == pytest.approx(float(fit.raw.cov_struct.dep_params), rel=1e-12)
    robust = race.fit_race_gee(races, MIX_RHS, cov_type="robust", weighted=True)
    assert robust.notes == ("t inference with 13 df (statsmodels GEE uses normal)",)
    np.testing.assert_allclose(robust.cov_params.to_numpy(), np.asarray(robust.raw.cov_params()), rtol=1e-12)
    np.testing.assert_allclose(robust.raw.model.weights, races["registered"] / races["registered"].mean(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^cov_type must be 'bias_reduced' or 'robust', got 'naive'$"):
        race.fit_race_gee(races, MIX_RHS, cov_type="naive")


def test_race_mixedlm_notes_and_extra(races: pd.DataFrame) -> None:
    fit = race.fit_race_mixedlm(races, MIX_RHS)
    assert fit.name == "race_mixedlm" and fit.family == "linear mixed model (empirical logit)"
    assert fit.formula == f"emp_logit(voted, registered) ~ {MIX_RHS}"
    assert fit.notes == ("unweighted; normal inference; empirical logit outcome",)
    assert fit.cov_type == "model-based" and fit.df_resid is None and fit.n_obs == 730
    assert fit.extra["mean_link"] == "identity (empirical logit)" and fit.extra["converged"] is True
    assert fit.extra["group_variance"] == pytest.approx(float(np.asarray(fit.raw.cov_re)[0, 0]), rel=1e-12)
    assert fit.extra["residual_variance"] == pytest.approx(float(fit.raw.scale), rel=1e-12)
    np.testing.assert_allclose(fit.cov_params.to_numpy(), np.asarray(fit.raw.cov_params())[:4, :4], rtol=1e-12)
    np.testing.assert_allclose(
        race.empirical_logit(np.array([0.0, 5.0]), np.array([10.0, 10.0])), [math.log(0.5 / 10.5), 0.0], rtol=1e-15
    )
    with pytest.raises(ValueError, match=r"^fit_race_mixedlm: drop C\(region\); it is the random intercept$"):
        race.fit_race_mixedlm(races, "C( region ) + self_share")


def test_comparison_table_by_hand(races: pd.DataFrame) -> None:
    glm = race.fit_race_glm(races, MIX_RHS)
    mixed = race.fit_race_mixedlm(races, "self_share")
    table = race.comparison_table([glm, mixed], ["any_woman", "self_share"])
    assert table.columns.tolist() == [
        "model",
        "term",
        "estimate",
        "std_error",
        "ci_lower",
        "ci_upper",
        "p_value",
        "cov_type",
        "use_t",
        "df_resid",
        "n_obs",
        "n_clusters",
        "n_warnings",
    ]
    assert table[["model", "term"]].values.tolist() == [
        ["race_glm_cluster", "any_woman"],
        ["race_glm_cluster", "self_share"],
        ["race_mixedlm", "any_woman"],
        ["race_mixedlm", "self_share"],
    ]
    first = table.iloc[0]
    assert first["estimate"] == glm.params["any_woman"] and first["std_error"] == glm.bse["any_woman"]
    assert first["ci_lower"] == glm.conf_int.at["any_woman", "lower"]
    assert first["ci_upper"] == glm.conf_int.at["any_woman", "upper"]
    assert first["p_value"] == glm.pvalues["any_woman"]
    assert (
        first["cov_type"],
        first["use_t"],
        first["df_resid"],
        first["n_obs"],
        first["n_clusters"],
        first["n_warnings"],
    ) == ("cluster", True, 13.0, 730, 14, 0)
    missing = table.iloc[2]
    assert missing["model"] == "race_mixedlm" and missing[["estimate", "std_error", "p_value"]].isna().all()
    assert (missing["cov_type"], missing["use_t"], missing["n_clusters"]) == ("model-based", False, 14)
    assert table.iloc[3]["estimate"] == mixed.params["self_share"]


def test_a_race_family_that_cannot_be_fitted_is_not_estimable_with_its_reason() -> None:
    rows = pd.DataFrame({"region": ["a", "a", "b"], "voted": [1, 2, 3], "registered": [5, 5, 5]})

    def singular(df, rhs):
        raise np.linalg.LinAlgError("Singular matrix")

    def no_convergence(df, rhs):
        raise RuntimeError("GEE failed to converge")

    fit = race.fit_or_not_estimable(singular, rows, "C(region) + np.log(n_candidates) + self_share", name="race_gee")
    assert fit.name == "race_gee" and fit.not_estimable == "LinAlgError: Singular matrix"
    assert (fit.n_obs, fit.n_clusters) == (3, 2)
    table = fit.to_frame()
    assert table["term"].tolist() == ["Intercept", "np.log(n_candidates)", "self_share"]
    assert table["estimate"].isna().all() and set(table["status"]) == {"not estimable: LinAlgError: Singular matrix"}
    other = race.fit_or_not_estimable(no_convergence, rows, "self_share", name="race_mixedlm")
    assert other.not_estimable == "GEE failed to converge" and list(other.params.index) == ["Intercept", "self_share"]
    sentinel = object()
    assert race.fit_or_not_estimable(lambda df, rhs, **kw: sentinel, rows, "self_share", name="x") is sentinel


def test_real_races_fewer_than_the_parameters_are_not_estimable() -> None:
    """The real-race fit of the race-models stage (as notebooks/04_race_models.ipynb calls it): at thresholds as low as
    2 races in 2 regions, 4 usable races against 5 parameters (intercept, 2 region dummies for 3 regions, 2 slopes)
    give a fit that is not estimable, with the row count as its reason, instead of stopping the stage."""
    from functools import partial

    rows = pd.DataFrame(
        {
            "region": ["A", "A", "B", "C"],
            "registered": [500, 800, 650, 900],
            "voted": [300, 500, 400, 450],
            "n_candidates": [2, 3, 4, 2],
            "self_share": [0.5, 0.0, 0.25, 1.0],
        }
    )
    rhs = "C(region) + np.log(n_candidates) + self_share"
    name = "real races, binomial GLM"
    fit = race.fit_or_not_estimable(partial(race.fit_race_glm, name=name), rows, rhs, name=name)
    assert fit.name == name and fit.not_estimable == "fit_race_glm: 4 rows for 5 parameters"
    assert (fit.n_obs, fit.n_clusters) == (4, 3) and fit.params.isna().all()
    # with 6 races the fit is computed (the notebook then writes its table), and its table carries the reason that
    # 3 regions leave G - 1 = 2 residual degrees of freedom
    six = pd.concat([rows, rows.iloc[[1, 3]].assign(registered=[700, 1000], voted=[350, 600])], ignore_index=True)
    fitted = race.fit_or_not_estimable(partial(race.fit_race_glm, name=name), six, rhs, name=name)
    assert "not_estimable" not in fitted.extra and fitted.params.notna().all() and len(fitted.params) == 5
    assert set(fitted.to_frame()["status"]) == {"not estimable: 2 residual degrees of freedom (fewer than 4)"}
