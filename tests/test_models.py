"""Tests of the turnout models (statsmodels 0.15)."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy.optimize import minimize
from scipy.special import expit

from akim_turnout.models import race, resampling
from akim_turnout.models.design import build_design, parse_terms, validate_turnout_rows
from akim_turnout.models.inference import FitResult, average_marginal_effects, captured_warnings, glm_sandwich_cov
from akim_turnout.models.race import (
    comparison_table,
    fit_race_beta,
    fit_race_gee,
    fit_race_glm,
    fit_race_mixedlm,
    fit_race_naive_binomial,
    race_average_marginal_effects,
    smithson_verkuilen,
)
from akim_turnout.models.regional import fit_regional_fractional_logit, leave_one_out
from akim_turnout.models.resampling import permutation_test, wild_cluster_bootstrap
from akim_turnout.study.simulate import (
    SimulationSettings,
    population_averaged_coefficients,
    simulate_races,
    simulate_scaled,
    true_coefficients,
    true_formula_rhs,
)

MIX_RHS = "np.log(n_candidates) + self_share + any_woman"


@pytest.fixture(scope="module")
def races(regions: pd.DataFrame) -> pd.DataFrame:
    return simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=11)


@pytest.fixture(scope="module")
def race_glm(races: pd.DataFrame) -> FitResult:
    return fit_race_glm(races, true_formula_rhs(SimulationSettings.from_params()))


def _tiny_counts() -> pd.DataFrame:
    """Six races in three regions with turnout rising in x."""
    return pd.DataFrame(
        {
            "region": ["a", "a", "b", "b", "c", "c"],
            "x": [-1.0, 0.5, 0.0, 1.5, -0.5, 2.0],
            "registered": [100, 80, 120, 90, 60, 150],
            "voted": [40, 50, 60, 70, 30, 130],
        }
    )


# --------------------------------------------------------------------------
# Validation, design, warnings
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("voted", 200, "voted > registered"),
        ("registered", 0, "registered <= 0"),
        ("voted", -1, "voted < 0"),
        ("voted", np.nan, "voted or registered is missing"),
    ],
)
def test_invalid_rows_are_refused_naming_the_row(column: str, value: float, rule: str) -> None:
    df = _tiny_counts().astype({"voted": float, "registered": float})
    df.index = [f"race{i}" for i in range(len(df))]
    df.loc["race3", column] = value
    with pytest.raises(ValueError, match=rf"{rule} in 1 row\(s\), index \['race3'\]"):
        validate_turnout_rows(df)
    with pytest.raises(ValueError, match="race3"):
        fit_race_glm(df, "x")


def test_rows_at_the_bounds_pass_and_one_vote_past_them_fails() -> None:
    """0 votes and voted == registered are valid; one vote more than registered names the row and the rule."""
    df = _tiny_counts().assign(voted=[0, 80, 60, 70, 30, 150])
    validate_turnout_rows(df)  # raises on any broken rule
    assert fit_race_glm(df, "x").n_obs == 6
    df.loc[5, "voted"] = 151
    with pytest.raises(
        ValueError,
        match=r"^races: invalid turnout rows: voted > registered in 1 row\(s\), index \[5\]$",
    ):
        validate_turnout_rows(df)
    with pytest.raises(ValueError, match=r"^shares: missing column\(s\) \['ballots'\]$"):
        validate_turnout_rows(df, voted="ballots", source="shares")


def test_design_matches_patsy_style_names_and_values() -> None:
    df = pd.DataFrame({"region": ["b", "a", "c"], "n": [1.0, np.e, 1.0]})
    exog, names = build_design(df, "C(region) + np.log(n)")
    assert names == ["Intercept", "C(region)[T.b]", "C(region)[T.c]", "np.log(n)"]
    np.testing.assert_allclose(exog, [[1, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0]])


def test_unsupported_terms_and_bad_logs_are_refused() -> None:
    with pytest.raises(ValueError, match="Unsupported term 'x:z'"):
        parse_terms("x + x:z")
    with pytest.raises(ValueError, match="must be > 0"):
        build_design(pd.DataFrame({"n": [1.0, 0.0]}), "np.log(n)")


def test_captured_warnings_records_instead_of_printing() -> None:
    with captured_warnings() as caught:
        warnings.warn("first", UserWarning, stacklevel=2)
        warnings.warn("first", UserWarning, stacklevel=2)
    assert caught == ["UserWarning: first"]


def test_perfect_separation_warning_lands_in_fit_result() -> None:
    separated = pd.DataFrame(
        {
            "region": list("aabbcc"),
            "x": [-2, -1, -0.5, 0.5, 1, 2.0],
            "registered": [10] * 6,
            "voted": [0, 0, 0, 10, 10, 10],
        }
    )
    fit = fit_race_glm(separated, "x", solver="irls")
    assert any(w.startswith("PerfectSeparationWarning") for w in fit.warnings)
    newton = fit_race_glm(separated, "x")
    assert any(w.startswith("PerfectSeparationWarning") for w in newton.warnings)
    assert any("refitted by IRLS" in note for note in newton.notes)


# --------------------------------------------------------------------------
# Race-level binomial GLM
# --------------------------------------------------------------------------


def test_counts_and_weighted_share_forms_agree(races: pd.DataFrame) -> None:
    counts = fit_race_glm(races, MIX_RHS, endog_form="counts")
    share = fit_race_glm(races, MIX_RHS, endog_form="share")
    np.testing.assert_allclose(counts.params, share.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(counts.bse, share.bse, rtol=0, atol=1e-6)
    assert any("not fully supported with var_weights" in w for w in share.warnings)


def test_glm_matches_direct_binomial_likelihood_maximisation() -> None:
    df = _tiny_counts()
    exog = np.column_stack([np.ones(len(df)), df["x"]])
    v, n = df["voted"].to_numpy(float), df["registered"].to_numpy(float)

    def negative_loglik(beta: np.ndarray) -> float:
        eta = exog @ beta
        return -np.sum(v * eta - n * np.logaddexp(0, eta))

    direct = minimize(negative_loglik, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    fit = fit_race_glm(df, "x")
    np.testing.assert_allclose(fit.params.to_numpy(), direct, atol=1e-5)


def test_clustered_inference_uses_t_with_clusters_minus_one(race_glm: FitResult) -> None:
    assert race_glm.use_t and race_glm.cov_type == "cluster"
    assert race_glm.n_clusters == 14 and race_glm.df_resid == 13
    np.testing.assert_allclose(race_glm.pvalues, race_glm.raw.pvalues, rtol=1e-8)
    np.testing.assert_allclose(race_glm.conf_int.to_numpy(), race_glm.raw.conf_int(), rtol=1e-8)


def test_rows_missing_a_predictor_are_dropped_and_counted(races: pd.DataFrame) -> None:
    holed = races.astype({"self_share": float})
    holed.loc[holed.index[:3], "self_share"] = np.nan
    fit = fit_race_glm(holed, MIX_RHS)
    assert fit.n_obs == len(races) - 3 and fit.extra["dropped_rows"] == 3
    assert fit.notes[0].startswith("dropped 3 row(s) with missing values")


def test_naive_binomial_ses_are_much_smaller_than_clustered(races: pd.DataFrame, race_glm: FitResult) -> None:
    naive = fit_race_naive_binomial(races, true_formula_rhs(SimulationSettings.from_params()))
    np.testing.assert_allclose(naive.params, race_glm.params, atol=1e-8)
    assert naive.extra["pearson_dispersion"] > 5
    assert naive.bse["self_share"] * 3 < race_glm.bse["self_share"]
    assert not naive.use_t and naive.n_clusters is None


def test_race_glm_recovers_true_effects_on_a_million_races(regions: pd.DataFrame) -> None:
    settings = SimulationSettings.from_params()
    races = simulate_scaled(regions, NATIONAL_2021, settings, seed=2021, n_races=1_000_000)
    start = time.perf_counter()
    fit = fit_race_glm(races, true_formula_rhs(settings))
    elapsed = time.perf_counter() - start
    truth = true_coefficients(settings)
    # Stated tolerances (logit scale): 0.02 from the true effects; 0.01 from the
    # population-averaged effects (about 2 % attenuated with overdispersion_sd
    # 0.35) that a marginal binomial GLM actually targets.
    assert ((fit.params[truth.index] - truth).abs() < 0.02).all(), fit.params
    marginal = population_averaged_coefficients(settings)
    assert ((fit.params[truth.index] - marginal).abs() < 0.01).all(), fit.params
    assert elapsed < 30, elapsed  # about 4-5 s measured
    assert fit.warnings == ()


def test_race_ame_matches_statsmodels_get_margeff(race_glm: FitResult) -> None:
    ours = race_average_marginal_effects(race_glm)
    margeff = race_glm.raw.get_margeff()
    columns = [race_glm.extra["design_columns"].index(t) - 1 for t in ours["term"]]
    np.testing.assert_allclose(ours["ame_pp"] / 100, margeff.margeff[columns], rtol=1e-8)
    np.testing.assert_allclose(ours["std_error_pp"] / 100, margeff.margeff_se[columns], rtol=1e-6)


def test_electorate_weighted_ame_is_the_voter_average(race_glm: FitResult, races: pd.DataFrame) -> None:
    """Weighted by electorate: mean over voters of mu (1 - mu), times the coefficient (percentage points)."""
    plain = race_average_marginal_effects(race_glm).set_index("term")
    weighted = race_average_marginal_effects(race_glm, electorate_weighted=True).set_index("term")
    mu = expit(race_glm.raw.model.exog @ race_glm.params.to_numpy())
    registered = races["registered"].to_numpy(float)
    for term in ("np.log(n_candidates)", "self_share", "any_woman"):
        expected = 100 * np.average(mu * (1 - mu), weights=registered) * race_glm.params[term]
        assert weighted.at[term, "ame_pp"] == pytest.approx(expected, rel=1e-12)
        assert plain.at[term, "ame_pp"] == pytest.approx(
            100 * np.mean(mu * (1 - mu)) * race_glm.params[term], rel=1e-12
        )
    assert (weighted["averaging"] == "weighted").all() and (plain["averaging"] == "unweighted").all()
    with pytest.raises(ValueError, match=r"^hand: no electorate stored for weighting$"):
        race_average_marginal_effects(
            FitResult(
                "hand",
                "",
                "",
                race_glm.params,
                race_glm.bse,
                race_glm.conf_int,
                race_glm.pvalues,
                1,
                None,
                "",
                False,
                None,
            ),
            electorate_weighted=True,
        )


# --------------------------------------------------------------------------
# Other race-level models
# --------------------------------------------------------------------------


def test_wild_cluster_bootstrap(races: pd.DataFrame, race_glm: FitResult) -> None:
    rhs = true_formula_rhs(SimulationSettings.from_params())
    result = wild_cluster_bootstrap(races, rhs, "self_share", n_boot=199, seed=3)
    again = wild_cluster_bootstrap(races, rhs, "self_share", n_boot=199, seed=3, ci=False)
    assert result.p_value == again.p_value
    assert result.p_value * 199 == pytest.approx(round(result.p_value * 199), abs=1e-9)  # a count of the 199 draws
    assert result.ci_lower < race_glm.params["self_share"] < result.ci_upper
    assert result.n_clusters == 14
    at_estimate = wild_cluster_bootstrap(
        races, rhs, "self_share", n_boot=199, seed=3, null_value=race_glm.params["self_share"], ci=False
    )
    assert at_estimate.p_value == 1.0


def test_wild_cluster_bootstrap_ci_is_the_set_of_unrejected_nulls(races: pd.DataFrame) -> None:
    rhs = true_formula_rhs(SimulationSettings.from_params())
    result = wild_cluster_bootstrap(races, rhs, "any_woman", n_boot=199, seed=5)
    width = result.ci_upper - result.ci_lower
    p_at = lambda null: (
        wild_cluster_bootstrap(  # noqa: E731
            races, rhs, "any_woman", n_boot=199, seed=5, null_value=null, ci=False
        ).p_value
    )
    assert p_at(result.ci_lower - 0.01 * width) < 0.05 <= p_at(result.ci_lower + 0.01 * width)
    assert p_at(result.ci_upper + 0.01 * width) < 0.05 <= p_at(result.ci_upper - 0.01 * width)


def test_wild_cluster_bootstrap_size_under_a_true_null(regions: pd.DataFrame) -> None:
    """30 data sets with a region-correlated regressor that has no effect: about 10 % rejections at 0.10."""
    p_values = []
    for rep in range(30):
        races = simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=500 + rep)
        rng = np.random.default_rng(rep)
        region_shock = rng.normal(size=14)[pd.factorize(races["region"])[0]]
        races = races.assign(z=region_shock + 0.5 * rng.normal(size=len(races)))
        result = wild_cluster_bootstrap(races, MIX_RHS + " + z", "z", n_boot=199, seed=rep, ci=False)
        p_values.append(result.p_value)
    p_values = np.array(p_values)
    assert np.sum(p_values < 0.10) <= 8  # expected 3; binomial(30, 0.1) exceeds 8 with prob < 0.001
    assert 0.3 < np.mean(p_values) < 0.7


def test_wild_cluster_bootstrap_rejects_a_strong_effect(races: pd.DataFrame) -> None:
    share = np.where(races["any_woman"] == 1, 0.95, 0.6)
    strong = races.assign(voted=(races["registered"] * share).round())
    result = wild_cluster_bootstrap(strong, MIX_RHS, "any_woman", n_boot=199, seed=1, ci=False)
    assert result.p_value < 0.02
    with pytest.raises(ValueError, match="weights must be one of"):
        wild_cluster_bootstrap(races, MIX_RHS, "any_woman", n_boot=9, weights="mammen")


def test_beta_regression_reports_squeezed_boundary_shares(races: pd.DataFrame) -> None:
    edged = races.copy()
    edged.loc[edged.index[0], "voted"] = 0
    edged.loc[edged.index[1], "voted"] = edged.loc[edged.index[1], "registered"]
    fit = fit_race_beta(edged, MIX_RHS)
    assert fit.extra["n_boundary_squeezed"] == 2
    assert any("2 were exactly 0 or 1" in note for note in fit.notes)
    assert "precision" in fit.params.index and fit.df_resid == 13
    # (y (n - 1) + 0.5) / n with n = 3: 0 -> 1/6, 0.5 -> 1/2, 1 -> 5/6
    np.testing.assert_allclose(smithson_verkuilen(np.array([0.0, 0.5, 1.0])), [1 / 6, 0.5, 5 / 6], rtol=1e-15)


def test_gee_bias_reduced_and_weight_limits(races: pd.DataFrame) -> None:
    fit = fit_race_gee(races, MIX_RHS)
    assert fit.cov_type == "bias_reduced" and fit.df_resid == 13
    robust = fit_race_gee(races, MIX_RHS, cov_type="robust")
    assert (fit.bse >= robust.bse * 0.999).all()  # bias reduction inflates SEs
    with pytest.raises(ValueError, match="the bias-reduced GEE covariance is unweighted"):
        fit_race_gee(races, MIX_RHS, weighted=True)
    weighted = fit_race_gee(races, MIX_RHS, weighted=True, cov_type="robust")
    assert np.isfinite(weighted.params).all()


def test_mixedlm_on_empirical_logit(races: pd.DataFrame) -> None:
    fit = fit_race_mixedlm(races, MIX_RHS)
    assert fit.extra["group_variance"] > 0 and fit.n_clusters == 14
    truth = true_coefficients(SimulationSettings.from_params())
    assert ((fit.params[truth.index] - truth).abs() < 4 * fit.bse[truth.index]).all()
    with pytest.raises(ValueError, match="random intercept"):
        fit_race_mixedlm(races, "C(region) + self_share")


def test_comparison_table_and_serialisation(races: pd.DataFrame, race_glm: FitResult) -> None:
    beta = fit_race_beta(races, MIX_RHS)
    table = comparison_table([race_glm, beta], ["self_share", "precision"])
    assert len(table) == 4
    assert np.isnan(table.query("model == 'race_glm_cluster' and term == 'precision'")["estimate"]).all()
    payload = json.loads(json.dumps(race_glm.to_dict()))
    assert "_registered" not in payload["extra"]
    assert payload["coefficients"]["self_share"]["estimate"] == pytest.approx(race_glm.params["self_share"], rel=1e-5)
    expected = ["model", "term", "estimate", "std_error", "ci_lower", "ci_upper", "p_value", "status"]
    assert list(race_glm.to_frame().columns) == expected


# --------------------------------------------------------------------------
# Regional fractional logit
# --------------------------------------------------------------------------


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


def test_regional_fit_reports_n_and_dropped_regions(regions: pd.DataFrame) -> None:
    fit = fit_regional_fractional_logit(regions, ["posts"])
    assert fit.n_obs == 12 and fit.df_resid == 10 and fit.use_t and fit.cov_type == "HC3"
    assert [d["row"] for d in fit.extra["dropped"]] == ["Aktobe", "Zhambyl"]
    assert "dropped Aktobe: missing posts" in fit.notes
    weighted = fit_regional_fractional_logit(regions, ["np.log(cands)"], weight="voters_on_rolls")
    assert weighted.extra["regions"] == ["Almaty", "Atyrau", "Mangystau", "Turkestan"]
    assert {"row": "Pavlodar", "reason": "missing cands", "missing": ["cands"]} in weighted.extra["dropped"]


def test_regional_fit_accepts_a_formula_string_and_refuses_bad_shares(regions: pd.DataFrame) -> None:
    from_string = fit_regional_fractional_logit(regions, "posts + np.log(cands)")
    from_list = fit_regional_fractional_logit(regions, ["posts", "np.log(cands)"])
    pd.testing.assert_series_equal(from_string.params, from_list.params)
    broken = regions.assign(turnout_pct=regions["turnout_pct"].where(regions["region"] != "Almaty", 120.0))
    with pytest.raises(ValueError, match=r"outside \[0, 100\] for \['Almaty'\]"):
        fit_regional_fractional_logit(broken, ["posts"])


def test_regional_weights_enter_as_var_weights(regions: pd.DataFrame) -> None:
    fit = fit_regional_fractional_logit(regions, ["np.log(cands)"], weight="voters_on_rolls")
    kept = regions.set_index("region").loc[fit.extra["regions"]]
    direct = sm.GLM(
        kept["turnout_pct"] / 100,
        sm.add_constant(np.log(kept["cands"])),
        family=sm.families.Binomial(),
        var_weights=kept["voters_on_rolls"],
    ).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), atol=1e-8)
    assert fit.raw.df_resid == 2  # var_weights keep df at n - k; freq_weights would not


def test_regional_ame_values_and_t_intervals(regions: pd.DataFrame) -> None:
    """AME = 100 mean(mu (1 - mu)) b; CI = AME -+ t(0.975, n - k) SE with n - k = 10 - 3 = 7 here (2.365, not 1.96)."""
    fit = fit_regional_fractional_logit(regions, ["posts", "np.log(cands)"])
    ame = average_marginal_effects(fit).set_index("term")
    assert fit.df_resid == 7 and list(ame.index) == ["posts", "np.log(cands)"]
    mu = expit(fit.raw.model.exog @ fit.params.to_numpy())
    for term in ("posts", "np.log(cands)"):
        assert ame.at[term, "ame_pp"] == pytest.approx(100 * np.mean(mu * (1 - mu)) * fit.params[term], rel=1e-12)
        half = (ame.at[term, "ci_upper_pp"] - ame.at[term, "ame_pp"]) / ame.at[term, "std_error_pp"]
        assert half == pytest.approx(2.364624, abs=5e-7)  # t(0.975, 7), published table


def test_leave_one_out_refits_once_per_region(regions: pd.DataFrame) -> None:
    loo = leave_one_out(regions, ["posts"])
    assert len(loo) == 12 and (loo["n_obs"] == 11).all()
    assert (loo["status"] == "ok").all() and loo["estimate"].notna().all()
    full = fit_regional_fractional_logit(regions, ["posts"])
    np.testing.assert_allclose(loo["change"], loo["estimate"] - full.params["posts"])


def test_permutation_test_p_value(regions: pd.DataFrame) -> None:
    result = permutation_test(regions, "posts", n_permutations=99, seed=4)
    reached = np.sum(np.abs(result.null_distribution) >= abs(result.observed))
    assert result.p_value == pytest.approx((reached + 1) / 100, abs=1e-15)  # (k + 1) / (n + 1)
    assert result.n_failed == 0 and result.n_obs == 12 and result.term == "posts" and result.statistic == "t"
    assert result.null_distribution.shape == (99,)
    same = permutation_test(regions, "posts", n_permutations=99, seed=4)
    np.testing.assert_array_equal(result.null_distribution, same.null_distribution)


def test_permutation_test_detects_a_strong_regional_effect(regions: pd.DataFrame) -> None:
    strong = regions.assign(turnout_pct=100 * expit(0.2 + 0.03 * (regions["posts"] - 50)))
    result = permutation_test(strong, "posts", n_permutations=99, seed=0, statistic="coef")
    assert result.p_value == pytest.approx(1 / 100)


def test_race_headline_follows_the_recommended_method(races: pd.DataFrame) -> None:
    families = {"glm": fit_race_glm(races, MIX_RHS), "gee": fit_race_gee(races, MIX_RHS)}
    boot = resampling.wild_cluster_bootstrap(races, MIX_RHS, "self_share", n_boot=99, seed=1)
    glm = race.race_headline("recommended", "cluster_t", families, boot)
    gee = race.race_headline("recommended", "gee_bias_reduced", families, boot)
    wild = race.race_headline("recommended", "wild_bootstrap", families, boot)
    assert (glm["family"], gee["family"], wild["family"]) == ("glm", "gee", "wild_bootstrap")
    assert glm["ci_lower"] == families["glm"].conf_int.at["self_share", "lower"]
    assert gee["ci_upper"] == families["gee"].conf_int.at["self_share", "upper"] and gee["ci_upper"] != glm["ci_upper"]
    assert (wild["estimate"], wild["ci_lower"], wild["ci_upper"]) == (boot.estimate, boot.ci_lower, boot.ci_upper)
    assert wild["interval"] == "wild cluster bootstrap, test inversion (webb weights, 99 draws, 14 clusters)"
    assert glm == {
        "family": "glm",
        "interval": "cluster covariance, t(13) quantiles",
        "estimate": families["glm"].params["self_share"],
        "ci_lower": families["glm"].conf_int.at["self_share", "lower"],
        "ci_upper": families["glm"].conf_int.at["self_share", "upper"],
        "p_value": families["glm"].to_frame().set_index("term").at["self_share", "p_value"],
        "p_value_mc_se": None,
    }
    assert (wild["p_value"], wild["p_value_mc_se"]) == (boot.p_value, (boot.p_value * (1 - boot.p_value) / 99) ** 0.5)
    assert gee["interval"].endswith(", t(13) quantiles")
    naive = race.fit_race_naive_binomial(races, MIX_RHS)  # model-based covariance, normal quantiles
    normal = race.race_headline("glm", None, {"glm": naive}, boot)
    assert normal["interval"] == f"{naive.cov_type} covariance, normal quantiles" and not naive.use_t
    assert race.race_headline("gee", "cluster_t", families, boot) == gee  # a named family overrides
    with pytest.raises(ValueError, match="recommends 'naive_binomial', which has no race-level fit to report"):
        race.race_headline("recommended", "naive_binomial", families, boot)
    with pytest.raises(ValueError) as refused:
        race.race_headline("ols", "cluster_t", families, boot)
    assert str(refused.value) == f"headline must be one of {', '.join(race.HEADLINE_CHOICES)}, got 'ols'"
    assert str(refused.value).startswith("headline must be one of recommended, ")


def test_race_headlines_under_each_tied_method(races: pd.DataFrame) -> None:
    families = {"glm": fit_race_glm(races, MIX_RHS), "gee": fit_race_gee(races, MIX_RHS)}
    boot = resampling.wild_cluster_bootstrap(races, MIX_RHS, "self_share", n_boot=99, seed=1)
    rows = race.race_headlines("recommended", ["gee_bias_reduced", "wild_bootstrap"], families, boot)
    assert rows == [
        {"method": "gee_bias_reduced", **race.race_headline("recommended", "gee_bias_reduced", families, boot)},
        {"method": "wild_bootstrap", **race.race_headline("recommended", "wild_bootstrap", families, boot)},
    ]
    assert race.race_headlines("glm", ["gee_bias_reduced"], families, boot) == [
        {"method": "glm", **race.race_headline("glm", None, families, boot)}
    ]
    # without the bootstrap, given the term
    assert (
        race.race_headlines("recommended", ["cluster_t"], families, None, term="self_share")[0]["estimate"]
        == (families["glm"].params["self_share"])
    )
    with pytest.raises(ValueError, match="needs the wild cluster bootstrap"):
        race.race_headlines("recommended", ["wild_bootstrap"], families, None, term="self_share")
    assert race.headline_families("recommended", ["gee_bias_reduced", "wild_bootstrap"]) == {"gee", "wild_bootstrap"}
    assert race.headline_families("beta", ["cluster_t"]) == {"beta"}
    with pytest.raises(ValueError, match="no race-level fit"):
        race.headline_families("recommended", ["naive_binomial"])
    fits = race.fit_families(races, MIX_RHS, MIX_RHS.replace("C(region) + ", ""), {"gee", "glm"})
    assert list(fits) == ["glm", "gee"]
    assert fits["glm"].params.equals(families["glm"].params)
    with pytest.raises(ValueError, match="families must be among"):
        race.fit_families(races, MIX_RHS, MIX_RHS, ["ols"])


def test_cluster_small_sample_factor_by_hand() -> None:
    assert race.cluster_small_sample_factor(730, 14, 17) == pytest.approx(14 / 13 * 729 / 713, rel=1e-15)


def test_race_rows_missing_a_predictor_are_dropped_with_region_dummies_too(races: pd.DataFrame) -> None:
    """C(region) and the cluster name the same column; a missing value is one dropped row, not a crash."""
    holes = races.copy()
    holes.loc[holes.index[:3], "self_share"] = np.nan
    fit = fit_race_glm(holes, "C(region) + " + MIX_RHS)
    assert fit.n_obs == len(races) - 3
    assert fit.notes[0].startswith("dropped 3 row(s) with missing values, e.g. row 0: missing self_share")


def test_race_effective_clusters_from_the_glm_weights(races: pd.DataFrame) -> None:
    rhs = "C(region) + " + MIX_RHS
    fit = fit_race_glm(races, rhs)
    result = race.race_effective_clusters(races, rhs, "self_share", fit)
    # by hand: statsmodels' own design and fitted means, one cluster at a time
    model = fit.raw.model
    exog, mu = model.exog, np.asarray(fit.raw.mu)
    w = races["registered"].to_numpy() * mu * (1 - mu)
    k = list(fit.params.index).index("self_share")
    a = np.linalg.inv(exog.T @ (exog * w[:, None]))[:, k]
    gamma = {}
    for region in sorted(races["region"].unique()):
        rows = (races["region"] == region).to_numpy()
        u = np.sqrt(w[rows]) * (exog[rows] @ a)
        gamma[region] = float(u @ u)
    values = np.array(list(gamma.values()))
    g_star = len(values) / (1 + values.var() / values.mean() ** 2)
    assert result["g_star"] == pytest.approx(g_star, rel=1e-6)
    assert result["shares"] == pytest.approx({r: g / values.sum() for r, g in gamma.items()}, rel=1e-6)
    assert result["n_clusters"] == races["region"].nunique() and result["g_star"] < result["n_clusters"]
