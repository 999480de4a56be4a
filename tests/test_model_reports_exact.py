"""What the race-level and regional model helpers report, asserted as exact values, sentences and dictionaries: the
notes and extras of each fit, the JSON summaries, the comparison table and the failure rows of leave-one-out."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.models import inference, race, regional, resampling
from akim_turnout.study.simulate import SimulationSettings, simulate_races

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


def test_permutation_result_to_dict_by_hand() -> None:
    null = np.array([np.nan, *np.linspace(-2.0, 2.0, 41)])
    result = resampling.PermutationResult("x", "t", 1.5, null, 0.25, 42, 12, 1)
    assert result.to_dict() == {
        "term": "x",
        "statistic": "t",
        "observed": 1.5,
        "p_value": 0.25,
        "n_permutations": 42,
        "n_obs": 12,
        "n_failed": 1,
        "null_quantiles": {"q025": -1.9, "q50": 0, "q975": 1.9},
    }


def test_wild_bootstrap_result_to_dict_by_hand() -> None:
    result = resampling.WildBootstrapResult("x", 0.1234567, 0.0, 2.0, 0.05, -0.5, 0.75, 99, 6, "webb", 3, ("n",))
    assert result.to_dict() == {
        "term": "x",
        "estimate": 0.123457,
        "null_value": 0,
        "statistic": 2,
        "p_value": 0.05,
        "ci_lower": -0.5,
        "ci_upper": 0.75,
        "n_boot": 99,
        "n_clusters": 6,
        "weights": "webb",
        "seed": 3,
        "notes": ["n"],
    }


def test_leave_one_out_records_a_failed_refit() -> None:
    """Four regions and two parameters: each refit on three regions works; with three regions and three
    parameters every refit has 2 rows for 3 parameters and is recorded as failed, with the reason."""
    regions = pd.DataFrame(
        {
            "region": list("ABCD"),
            "x": [1.0, 2.0, 3.5, 5.0],
            "z": [0.5, -1.0, 2.0, 0.0],
            "turnout_pct": [60.0, 66.0, 71.0, 69.0],
        }
    )
    ok = regional.leave_one_out(regions, ["x"], keep_not_estimable=True)
    assert ok["dropped_region"].tolist() == list("ABCD")
    # one residual df per refit: fitted, reported as not estimable, its numbers kept only on request
    assert ok["status"].str.startswith("not estimable: 1 residual degrees of freedom (fewer than 4); ").all()
    blank = regional.leave_one_out(regions, ["x"])
    assert (blank["status"] == ok["status"]).all()
    assert blank[["estimate", "std_error", "ci_lower", "ci_upper", "p_value", "change"]].isna().all().all()
    assert (ok["n_obs"] == 3).all() and (ok["n_warnings"] == 0).all()
    refit = regional.fit_regional_fractional_logit(regions[regions["region"] != "A"], ["x"])
    first = ok.iloc[0]
    assert first["estimate"] == refit.params["x"] and first["std_error"] == refit.bse["x"]
    assert first["ci_lower"] == refit.conf_int.at["x", "lower"] and first["ci_upper"] == refit.conf_int.at["x", "upper"]
    assert first["p_value"] == refit.pvalues["x"]
    full = regional.fit_regional_fractional_logit(regions, ["x"])
    assert first["change"] == pytest.approx(refit.params["x"] - full.params["x"], abs=1e-15)
    failed = regional.leave_one_out(regions, ["x", "z"], term="z")
    row = failed.iloc[0]
    assert row["status"] == "regional_fractional_logit: 3 observations for 3 parameters; cannot fit"
    assert row["n_warnings"] == 0 and row["n_obs"] == 3
    assert row[["estimate", "std_error", "ci_lower", "ci_upper", "p_value", "change"]].isna().all()


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the search reaches nulls of +-4000
def test_wild_bootstrap_bound_is_nan_when_no_null_is_rejected() -> None:
    """Three clusters: the 8 Rademacher vectors give p >= 2/8 at every null, so no bound exists at alpha 0.05."""
    df = pd.DataFrame(
        {
            "region": list("aabbcc"),
            "x": [-1.0, -0.5, 0.0, 0.4, 0.9, 1.5],
            "registered": [100, 80, 120, 90, 60, 150],
            "voted": [40, 50, 60, 70, 30, 130],
        }
    )
    vectors = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=float)
    result = resampling.wild_cluster_bootstrap(df, "x", "x", draws=vectors)
    assert math.isnan(result.ci_lower) and math.isnan(result.ci_upper)
    assert result.p_value >= 0.25


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
