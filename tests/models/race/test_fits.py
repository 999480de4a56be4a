"""The race-level fits of akim_turnout.models.race on simulated races: validation of rows, the GLM against a
direct likelihood maximisation and against known effects, marginal effects, the beta, GEE and mixed models, the
comparison table and the headline that follows the recommended method."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy.optimize import minimize
from scipy.special import expit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.models import race, resampling
from akim_turnout.models.design import validate_turnout_rows
from akim_turnout.models.inference import FitResult
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
from akim_turnout.study.simulate import (
    SimulationSettings,
    population_averaged_coefficients,
    simulate_races,
    simulate_scaled,
    true_coefficients,
    true_formula_rhs,
)
from models.tables import tiny_counts  # tests/ is on sys.path

MIX_RHS = "np.log(n_candidates) + self_share + any_woman"


@pytest.fixture(scope="module")
def races(regions: pd.DataFrame) -> pd.DataFrame:
    return simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=11)


@pytest.fixture(scope="module")
def race_glm(races: pd.DataFrame) -> FitResult:
    return fit_race_glm(races, true_formula_rhs(SimulationSettings.from_params()))


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
    df = tiny_counts().astype({"voted": float, "registered": float})
    df.index = [f"race{i}" for i in range(len(df))]
    df.loc["race3", column] = value
    with pytest.raises(ValueError, match=rf"{rule} in 1 row\(s\), index \['race3'\]"):
        validate_turnout_rows(df)
    with pytest.raises(ValueError, match="race3"):
        fit_race_glm(df, "x")


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


def test_counts_and_weighted_share_forms_agree(races: pd.DataFrame) -> None:
    counts = fit_race_glm(races, MIX_RHS, endog_form="counts")
    share = fit_race_glm(races, MIX_RHS, endog_form="share")
    np.testing.assert_allclose(counts.params, share.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(counts.bse, share.bse, rtol=0, atol=1e-6)
    assert any("not fully supported with var_weights" in w for w in share.warnings)


def test_glm_matches_direct_binomial_likelihood_maximisation() -> None:
    df = tiny_counts()
    exog = np.column_stack([np.ones(len(df)), df["x"]])
    v, n = df["voted"].to_numpy(float), df["registered"].to_numpy(float)

    def negative_loglik(beta: np.ndarray) -> float:
        eta = exog @ beta
        return -np.sum(v * eta - n * np.logaddexp(0, eta))

    direct = minimize(negative_loglik, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    fit = fit_race_glm(df, "x")
    np.testing.assert_allclose(fit.params.to_numpy(), direct, atol=1e-5)


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


def twelve_races() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": list("aaabbbcccddd"),
            "x": [-1.0, 0.5, 1.2, 0.0, 1.5, -0.7, -0.5, 2.0, 0.9, 0.3, -1.2, 1.1],
            "registered": [100, 80, 140, 120, 90, 70, 60, 150, 110, 95, 130, 85],
            "voted": [40, 50, 95, 60, 70, 30, 30, 130, 75, 50, 45, 60],
        }
    )


def test_counts_held_as_python_objects_are_fitted_like_numbers() -> None:
    """An object column of Python ints passes the row checks (they convert with ``pd.to_numeric``); the fit must
    convert it too and give statsmodels' clustered binomial GLM on the same numbers."""
    df = twelve_races()
    as_objects = df.astype({"voted": object, "registered": object})
    fit = race.fit_race_glm(as_objects, "x")
    voted, registered = df["voted"].to_numpy(float), df["registered"].to_numpy(float)
    design = np.column_stack([np.ones(len(df)), df["x"].to_numpy(float)])
    expected = GLM(np.column_stack([voted, registered - voted]), design, family=families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(df["region"])[0]}, use_t=True
    )
    np.testing.assert_allclose(fit.params.to_numpy(), expected.params, rtol=1e-9)
    np.testing.assert_allclose(fit.bse.to_numpy(), expected.bse, rtol=1e-9)
    beta = race.fit_race_beta(as_objects, "x")
    assert beta.n_obs == 12 and np.all(np.isfinite(beta.params.to_numpy()))


def test_beta_regression_prints_nothing_and_its_results_name_the_cluster_covariance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both optimiser runs of the beta regression stay silent (a notebook or log shows no optimiser chatter), and
    the statsmodels results kept in ``raw`` say what was requested: ``cluster`` covariance for both race fits and
    the ``newton`` method for the GLM (the labels ``raw.summary()`` prints)."""
    df = twelve_races()
    beta = race.fit_race_beta(df, "x")
    glm = race.fit_race_glm(df, "x")
    assert capsys.readouterr() == ("", "")
    assert (beta.raw.cov_type, glm.raw.cov_type, glm.raw.method) == ("cluster", "cluster", "newton")


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
