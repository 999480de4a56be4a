"""The resampling tests of akim_turnout.models.resampling on tiny hand-made tables: weighted coefficients of
permuted designs by hand, the covariance of the fast engine, defaults, dropped regions, failing fits and the
wild bootstrap interval."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from akim_turnout.models import regional, resampling
from models.tables import binomial_mle, regional_frame, six_clusters  # tests/ is on sys.path


def five_regions() -> pd.DataFrame:
    """x is not linear in z, but reversing x gives z exactly (a collinear permuted design)."""
    return pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [5.0, 3.0, 2.0, 1.0, 0.0],
            "z": [0.0, 1.0, 2.0, 3.0, 5.0],
            "w": [1.0, 2.0, 1.0, 3.0, 2.0],
            "turnout_pct": [66.0, 72.5, 61.0, 70.0, 71.5],
        }
    )


def weighted_fractional_logit_coef(share: np.ndarray, design: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Newton on the weighted Bernoulli quasi-likelihood (independent code)."""
    beta = np.zeros(design.shape[1])
    for _ in range(100):
        mu = expit(design @ beta)
        step = np.linalg.solve(
            design.T @ (design * (weights * mu * (1 - mu))[:, None]), design.T @ (weights * (share - mu))
        )
        beta = beta + step
        if np.max(np.abs(step)) < 1e-15:
            break
    return beta


ORDERS = [(1, 0, 2, 3, 4), (0, 2, 1, 3, 4), (4, 3, 2, 1, 0)]  # the last one makes x equal to z


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_weighted_coefficients_of_permuted_designs_by_hand(engine: str) -> None:
    regions = five_regions()
    share, w = regions["turnout_pct"].to_numpy() / 100, regions["w"].to_numpy()
    x, z = regions["x"].to_numpy(), regions["z"].to_numpy()
    result = resampling.permutation_test(
        regions, "x", covariates=["z"], weight="w", statistic="coef", permutations=ORDERS, engine=engine
    )
    for value, order in zip(result.null_distribution[:2], ORDERS[:2], strict=True):
        design = np.column_stack([np.ones(5), x[list(order)], z])
        assert value == pytest.approx(weighted_fractional_logit_coef(share, design, w)[1], abs=1e-7)
    # The collinear design has no unique coefficients: statsmodels' pseudo-inverse answer, whatever the engine.
    collinear = np.column_stack([np.ones(5), z, z])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns that the design is rank-deficient
        reference = GLM(share, collinear, family=families.Binomial(), var_weights=w / w.mean()).fit().params[1]
    assert np.isfinite(reference)
    assert result.null_distribution[2] == pytest.approx(reference, rel=1e-9)
    assert result.n_failed == 0


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_a_permuted_design_whose_robust_t_fails_is_counted_as_failed(engine: str) -> None:
    result = resampling.permutation_test(five_regions(), "x", covariates=["z"], permutations=ORDERS, engine=engine)
    assert np.isnan(result.null_distribution[2]) and np.isfinite(result.null_distribution[:2]).all()
    assert result.n_failed == 1 and result.n_permutations == 3


def test_fast_engine_uses_the_requested_covariance() -> None:
    regions = five_regions()
    orders = list(itertools.permutations(range(5)))[1:30]
    fast = resampling.permutation_test(regions, "x", cov_type="HC1", permutations=orders)
    slow = resampling.permutation_test(regions, "x", cov_type="HC1", permutations=orders, engine="statsmodels")
    hc3 = resampling.permutation_test(regions, "x", permutations=orders, engine="statsmodels")
    np.testing.assert_allclose(fast.null_distribution, slow.null_distribution, rtol=1e-7)
    assert np.max(np.abs(fast.null_distribution - hc3.null_distribution)) > 1e-3


def test_permutation_defaults_are_999_draws_from_seed_zero() -> None:
    regions = five_regions()
    default = resampling.permutation_test(regions, "x")
    explicit = resampling.permutation_test(regions, "x", n_permutations=999, seed=0)
    assert default.n_permutations == 999 and len(default.null_distribution) == 999
    np.testing.assert_array_equal(default.null_distribution, explicit.null_distribution)


def test_permutation_test_drops_regions_missing_the_weight() -> None:
    regions = five_regions().assign(w=[1.0, 2.0, np.nan, 3.0, 2.0], extra=[1.0, 2.0, 4.0, 3.0, 5.0])
    orders = [(1, 0, 2, 3), (0, 1, 3, 2)]
    result = resampling.permutation_test(regions, "extra", weight="w", statistic="coef", permutations=orders)
    assert result.n_obs == 4
    kept = regions.drop(index=2)
    share, w, x = kept["turnout_pct"].to_numpy() / 100, kept["w"].to_numpy(), kept["extra"].to_numpy()
    design = np.column_stack([np.ones(4), x[[1, 0, 2, 3]]])
    assert result.null_distribution[0] == pytest.approx(weighted_fractional_logit_coef(share, design, w)[1], abs=1e-7)


def test_permutation_test_names_itself_when_the_design_is_collinear() -> None:
    regions = five_regions().assign(x2=lambda d: 2 * d["x"])
    with pytest.raises(ValueError) as caught:
        resampling.permutation_test(regions, "x", covariates=["x2"])
    assert str(caught.value) == "permutation_test: design columns are collinear: ['Intercept', 'x', 'x2']"


def test_wild_bootstrap_defaults_are_999_draws_from_seed_zero() -> None:
    df = six_clusters()
    default = resampling.wild_cluster_bootstrap(df, "x", "x", ci=False)
    explicit = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=999, seed=0, ci=False)
    assert default.n_boot == 999 and default.seed == 0
    assert default.p_value == explicit.p_value and default.statistic == explicit.statistic


def test_wild_bootstrap_with_custom_column_names_and_a_null_value() -> None:
    df = six_clusters()
    renamed = df.rename(columns={"voted": "ballots", "registered": "electorate"})
    given = resampling.wild_cluster_bootstrap(
        renamed, "x", "x", n_boot=99, null_value=0.2, ci=False, voted="ballots", registered="electorate"
    )
    plain = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=99, null_value=0.2, ci=False)
    assert given.null_value == 0.2 and plain.null_value == 0.2
    assert given.p_value == plain.p_value and given.statistic == plain.statistic
    assert given.estimate == pytest.approx(binomial_mle(df)[1], abs=1e-10)


def test_rademacher_note_when_the_draws_reach_every_sign_vector() -> None:
    df = six_clusters()
    exact = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=64, weights="rademacher", ci=False)
    fewer = resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=63, weights="rademacher", ci=False)
    assert exact.notes == ("only 64 distinct Rademacher draws exist for 6 clusters",)
    assert fewer.notes == ()


def test_wild_bootstrap_interval_ends_where_p_drops_below_alpha() -> None:
    # 20 sign vectors (none constant), so p-values are multiples of 1/20 and p = alpha = 0.05 occurs:
    # a null with p exactly alpha is not rejected and belongs to the interval.
    df = six_clusters()
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=(60, 6))
    draws = signs[np.abs(signs.sum(axis=1)) < 6][:20]
    result = resampling.wild_cluster_bootstrap(df, "x", "x", draws=draws)

    def p_at(null_value: float) -> float:
        return resampling.wild_cluster_bootstrap(df, "x", "x", draws=draws, null_value=null_value, ci=False).p_value

    delta = 1e-4
    assert p_at(result.ci_lower - delta) < 0.05 and p_at(result.ci_lower + delta) == 0.05
    assert p_at(result.ci_upper - delta) >= 0.05 and p_at(result.ci_upper + delta) < 0.05


def test_weighted_permutation_statistics_are_those_of_the_weighted_fit() -> None:
    frame = regional_frame()
    fit = regional.fit_regional_fractional_logit(frame, ["x"], weight="w")
    coef = resampling.permutation_test(frame, "x", weight="w", statistic="coef", permutations=[(1, 0, 2, 3, 4)])
    t = resampling.permutation_test(frame, "x", weight="w", permutations=[(1, 0, 2, 3, 4)])
    assert coef.observed == pytest.approx(fit.params["x"], rel=1e-9)
    assert t.observed == pytest.approx(fit.params["x"] / fit.bse["x"], rel=1e-9)
    swapped = regional.fit_regional_fractional_logit(frame.assign(x=[2.0, 1.0, 3.0, 4.0, 5.0]), ["x"], weight="w")
    assert coef.null_distribution[0] == pytest.approx(swapped.params["x"], rel=1e-9)
    assert t.null_distribution[0] == pytest.approx(swapped.params["x"] / swapped.bse["x"], rel=1e-9)
    hc1 = resampling.permutation_test(frame, "x", weight="w", cov_type="HC1", permutations=[(1, 0, 2, 3, 4)])
    hc1_fit = regional.fit_regional_fractional_logit(frame, ["x"], weight="w", cov_type="HC1")
    assert hc1.observed == pytest.approx(hc1_fit.params["x"] / hc1_fit.bse["x"], rel=1e-9)


def test_permutation_with_a_failing_fit_counts_it() -> None:
    """Permuting x onto the covariate z makes the design collinear: that order's fit fails, is NaN, is counted in
    n_failed and is left out of the p-value ((0 + 1) / (1 + 1) with the one valid order below the observed)."""
    frame = pd.DataFrame(
        {
            "region": list("ABCDE"),
            "x": [0.0, 1.0, 0.0, 1.0, 0.0],
            "z": [1.0, 1.0, 0.0, 0.0, 0.0],
            "turnout_pct": [60.0, 65.0, 70.0, 75.0, 66.0],
        }
    )
    result = resampling.permutation_test(frame, "x", covariates=["z"], permutations=[(0, 1, 2, 4, 3), (1, 3, 2, 0, 4)])
    assert result.n_failed == 1 and math.isnan(result.null_distribution[1]) and result.n_permutations == 2
    assert abs(result.null_distribution[0]) < abs(result.observed)
    assert result.p_value == 0.5
    assert result.to_dict()["null_quantiles"]["q50"] == pytest.approx(result.null_distribution[0], rel=1e-5)
