"""The bias-reduced GEE covariance: statsmodels' own where that is defined, and stable where it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from real_2021 import NATIONAL_2021, real_2021_regions

from akim_turnout.models import fastfit, inference, race
from akim_turnout.models.inference import mancl_derouen_cov
from akim_turnout.study import simulate


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    """730 simulated races of the real design (14 regions)."""
    return simulate.simulate_races(
        real_2021_regions(), NATIONAL_2021, simulate.SimulationSettings.from_params(), seed=3
    )


def _gee(races: pd.DataFrame, rhs: str, scale: float = 1.0):
    data = fastfit.prepare_races(races, rhs, "region", "voted", "registered", "test")
    model = sm.GEE(
        scale * data.voted / data.registered,
        data.exog,
        groups=data.clusters,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    return model, data


def test_equals_statsmodels_bias_reduced_where_it_is_defined(races) -> None:
    model, _ = _gee(races, "np.log(n_candidates) + self_share + any_woman")
    ours = mancl_derouen_cov(model.fit(cov_type="robust"))
    model, _ = _gee(races, "np.log(n_candidates) + self_share + any_woman")
    theirs = np.asarray(model.fit(cov_type="bias_reduced").cov_params())
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=0)


def test_with_region_dummies_the_result_does_not_hang_on_last_bits(races) -> None:
    rhs = "C(region) + np.log(n_candidates) + self_share + any_woman"
    model, data = _gee(races, rhs)
    base = mancl_derouen_cov(model.fit(cov_type="robust"))
    k = data.names.index("self_share")
    for factor in (1 + 1e-12, 1 - 1e-12):
        model, _ = _gee(races, rhs, factor)
        perturbed = mancl_derouen_cov(model.fit(cov_type="robust"))
        assert abs(perturbed[k, k] / base[k, k] - 1) < 1e-8
    eigenvalues = np.linalg.eigvalsh((base + base.T) / 2)  # 14 clusters, 17 parameters: rank 14 at most
    assert eigenvalues.min() > -1e-12 * eigenvalues.max() and np.sum(eigenvalues > 1e-12 * eigenvalues.max()) == 14
    # and bias reduction inflates the robust (sandwich) variance of the main term, as it should
    robust = np.asarray(_gee(races, rhs)[0].fit(cov_type="robust").cov_params())
    assert base[k, k] > robust[k, k]


def test_region_dummy_makes_i_minus_h_singular(races) -> None:
    """The reason for the generalized inverse: I - H_gg has an exact null direction for every region."""
    model, _ = _gee(races, "C(region) + self_share")
    result = model.fit(cov_type="robust")
    model.update_cached_means(np.asarray(result.params))
    expected, linear = model.cached_means[3]
    deriv = model.mean_deriv(model.exog_li[3], linear)
    sdev = np.sqrt(model.family.variance(expected))
    vinv_deriv = model.cov_struct.covariance_matrix_solve(expected, 3, sdev, (deriv,))[0] / model.estimate_scale()
    hat = deriv @ np.asarray(result.cov_naive) @ vinv_deriv.T
    singular = np.linalg.svd(np.eye(len(expected)) - hat, compute_uv=False)
    assert singular[-1] / singular[0] < 1e-10 < singular[-2] / singular[0]


def test_fit_race_gee_uses_it(races) -> None:
    fit = race.fit_race_gee(races, "C(region) + np.log(n_candidates) + self_share + any_woman")
    model, _ = _gee(races, "C(region) + np.log(n_candidates) + self_share + any_woman")
    expected = mancl_derouen_cov(model.fit(cov_type="robust"))
    np.testing.assert_allclose(fit.cov_params.to_numpy(), expected, rtol=1e-10)
    assert any("generalized inverse" in note for note in fit.notes)
    with pytest.raises(ValueError, match="cov_type must be 'bias_reduced' or 'robust'"):
        race.fit_race_gee(races, "self_share", cov_type="HC3")


def test_ame_table_scales_to_points_and_hides_intervals_past_the_turnout_scale() -> None:
    """By hand: t(7) quantile 2.364624251592785 (tables), normal 1.959963984540054; an interval reaching below
    -100 or above +100 percentage points carries no information and is shown as not estimable."""
    from types import SimpleNamespace

    from scipy import stats as scipy_stats

    raw = pd.DataFrame({"term": ["a", "b", "c"], "ame": [0.05, 0.3, -0.3], "se": [0.01, 0.35, 0.35]})
    fit = SimpleNamespace(name="m", df_resid=7, use_t=True, not_estimable=None)
    table = inference._ame_table(raw, fit, 0.05, weighted=True)
    assert table["model"].tolist() == ["m"] * 3 and table["averaging"].tolist() == ["weighted"] * 3
    a = table.iloc[0]
    assert (a["ame_pp"], a["std_error_pp"]) == pytest.approx((5.0, 1.0), rel=1e-14)
    assert (a["ci_lower_pp"], a["ci_upper_pp"]) == pytest.approx((5 - 2.364624251592785, 5 + 2.364624251592785))
    assert a["p_value"] == pytest.approx(2 * scipy_stats.t.sf(5.0, 7), rel=1e-10)
    # b: 30 +- 2.3646 x 35 reaches 112.8 (upper side only); c: -30 -+ ... reaches -112.8 (lower side only)
    assert table["status"].tolist() == ["ok"] + ["not estimable: interval wider than the turnout scale"] * 2
    assert table.iloc[1:][["ame_pp", "std_error_pp", "ci_lower_pp", "ci_upper_pp", "p_value"]].isna().all().all()
    kept = inference._ame_table(raw, fit, 0.05, weighted=False, keep_not_estimable=True)
    assert kept["averaging"].tolist() == ["unweighted"] * 3 and kept["status"].tolist() == table["status"].tolist()
    assert kept.iloc[1]["ci_upper_pp"] == pytest.approx(30 + 2.364624251592785 * 35)
    assert kept.iloc[2]["ci_lower_pp"] == pytest.approx(-30 - 2.364624251592785 * 35)
    normal = inference._ame_table(
        raw, SimpleNamespace(name="m", df_resid=7, use_t=False, not_estimable=None), 0.05, True
    )
    assert normal.iloc[0]["ci_upper_pp"] == pytest.approx(5 + 1.959963984540054)
    assert normal["status"].tolist() == ["ok", "ok", "ok"]  # 30 + 1.96 x 35 = 98.6 stays inside the scale
    assert normal.iloc[1]["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(30 / 35), rel=1e-10)
    no_df = inference._ame_table(
        raw, SimpleNamespace(name="m", df_resid=None, use_t=True, not_estimable=None), 0.05, True
    )
    assert no_df.iloc[0]["ci_upper_pp"] == pytest.approx(5 + 1.959963984540054)
    flagged = SimpleNamespace(name="m", df_resid=7, use_t=True, not_estimable="6 regions for 7 parameters")
    refused = inference._ame_table(raw, flagged, 0.05, True)
    assert refused["status"].tolist() == ["not estimable: 6 regions for 7 parameters"] * 3
    assert refused[["ame_pp", "ci_lower_pp", "p_value"]].isna().all().all()
