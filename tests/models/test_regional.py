"""The regional fractional logit of akim_turnout.models.regional: fits, weights, labels and bounds, marginal
effects, recorded warnings and dropped rows, refusals naming the model, and leave-one-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from akim_turnout.models import regional
from akim_turnout.models.inference import average_marginal_effects
from akim_turnout.models.regional import fit_regional_fractional_logit, leave_one_out
from models.tables import regional_frame, stub_glm  # tests/ is on sys.path


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


def test_checked_sandwich_messages_name_the_model() -> None:
    """Non-finite estimates and a non-finite covariance (an infinite score) are refused with the model's label."""
    with pytest.raises(ValueError) as caught:
        regional.checked_sandwich(stub_glm([np.nan], [[1.0]], [[-1.0]]), "HC0", "lbl")
    assert str(caught.value) == "lbl: non-finite estimates (perfect separation or prediction?)"
    with pytest.raises(ValueError) as caught:
        regional.checked_sandwich(stub_glm([0.0], [[np.inf], [1.0]], [[-1.0]]), "HC0", "lbl")
    assert str(caught.value) == "lbl: non-finite covariance (perfect separation or prediction?)"


def test_perfect_separation_is_refused_with_the_model_name() -> None:
    """Turnout 0 % below x = 0 and 100 % above: the fitted means reach 0 and 1, the leverages of the HC3
    covariance come from an SVD of a matrix with NaN entries, numpy raises LinAlgError, and the fit reports it
    under its name."""
    df = pd.DataFrame(
        {"region": list("ABCDEF"), "x": [-3, -2, -1, 1, 2, 3.0], "turnout_pct": [0, 0, 0, 100, 100, 100.0]}
    )
    with pytest.raises(ValueError, match=r"^sep: covariance failed \(.+\); perfect prediction\?$"):
        regional.fit_regional_fractional_logit(df, "x", name="sep")


def test_fit_records_warnings_formula_and_every_dropped_row() -> None:
    """A fit of all-zero turnout keeps statsmodels' PerfectSeparationWarning in ``warnings``; the formula joins the
    predictors with ' + '; all 51 incomplete rows are recorded (not only the first 50)."""
    df = pd.DataFrame({"region": list("ABCDEF"), "x": [-3, -2, -1, 1, 2, 3.0], "turnout_pct": [0.0] * 6})
    fit = regional.fit_regional_fractional_logit(df, "x")
    assert [w.split(":")[0] for w in fit.warnings] == ["PerfectSeparationWarning"]
    complete = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "z": [0.1, -0.4, 0.8, 0.0, -0.9, 0.5, 0.3],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
        }
    )
    missing = pd.DataFrame({"region": [f"M{i}" for i in range(51)], "x": 0.0, "z": 0.0, "turnout_pct": np.nan})
    fit = regional.fit_regional_fractional_logit(pd.concat([complete, missing], ignore_index=True), "x + z")
    assert fit.formula == "turnout_pct/100 ~ x + z"
    assert len(fit.extra["dropped"]) == 51 and fit.notes[-1] == "dropped M50: missing turnout_pct"


def test_fit_reads_object_columns_as_numbers() -> None:
    """An outcome and a weight held in object columns (as after a merge with missing values) are read as floats:
    the fit equals the one on float64 columns."""
    df = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
            "w": [100.0, 250.0, 80.0, 400.0, 120.0, 90.0, 300.0],
        }
    )
    as_object = df.astype({"turnout_pct": object, "w": object})
    expected = regional.fit_regional_fractional_logit(df, "x", weight="w").params
    pd.testing.assert_series_equal(
        regional.fit_regional_fractional_logit(as_object, "x", weight="w").params, expected, check_exact=True
    )


def test_leave_one_out_uses_the_requested_covariance_for_the_full_fit() -> None:
    """x is non-zero only for region F, so F has leverage 1: HC3 is undefined for the full fit, HC0 is not. With
    HC0, leave-one-out runs: without F, x is all zero (collinear with the intercept); every other refit has
    5 - 2 = 3 residual degrees of freedom and F's leverage 1."""
    df = pd.DataFrame({"region": list("ABCDEF"), "x": [0, 0, 0, 0, 0, 1.0], "turnout_pct": [40, 45, 50, 55, 60, 70.0]})
    with pytest.raises(ValueError, match=r"^HC3 undefined: an observation has leverage 1$"):
        regional.leave_one_out(df, "x")
    out = regional.leave_one_out(df, "x", cov_type="HC0")
    reason = (
        "not estimable: 3 residual degrees of freedom (fewer than 4); one observation has leverage 1.00 (above 0.8)"
    )
    assert out["status"].tolist() == [reason] * 5 + [
        "regional_fractional_logit: design columns are collinear: ['Intercept', 'x']"
    ]


def test_regional_fit_labels_and_shares_at_0_and_100_percent() -> None:
    fit = regional.fit_regional_fractional_logit(regional_frame(), "x", weight="w")
    assert (fit.name, fit.family, fit.formula) == (
        "regional_fractional_logit",
        "binomial (fractional logit)",
        "turnout_pct/100 ~ x",
    )
    assert fit.notes == ("var_weights = w / mean(w)",) and fit.extra["weight"] == "w"
    assert fit.extra["regions"] == list("ABCDE") and fit.extra["dropped"] == []
    direct = sm.GLM(
        regional_frame()["turnout_pct"] / 100,
        sm.add_constant(regional_frame()["x"]),
        family=sm.families.Binomial(),
        var_weights=regional_frame()["w"] / 300,
    ).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), rtol=1e-9)
    named = regional.fit_regional_fractional_logit(regional_frame(), ["x"], name="mine")
    assert named.name == "mine" and named.notes == () and named.extra["weight"] is None
    with pytest.raises(ValueError, match=r"^mine: turnout_pct outside \[0, 100\] for \['B'\]$"):
        regional.fit_regional_fractional_logit(
            regional_frame().assign(turnout_pct=[60, -1, 70, 80, 90]), ["x"], name="mine"
        )
    with pytest.raises(ValueError, match=r"^mine: 2 observations for 2 parameters; cannot fit$"):
        regional.fit_regional_fractional_logit(regional_frame().iloc[:2], ["x"], name="mine")
    with pytest.raises(ValueError, match=r"^mine: design columns are collinear: \['Intercept', 'x', 'w'\]$"):
        regional.fit_regional_fractional_logit(
            regional_frame().assign(w=2 * regional_frame()["x"]), ["x", "w"], name="mine"
        )


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
