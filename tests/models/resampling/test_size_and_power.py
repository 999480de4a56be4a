"""The resampling tests of akim_turnout.models.resampling on simulated data: the wild cluster bootstrap (its
interval as the set of unrejected nulls, its size under a true null, its power) and the permutation test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021  # tests/ is on sys.path, see tests/conftest.py
from scipy.special import expit

from akim_turnout.models.inference import FitResult
from akim_turnout.models.race import fit_race_glm
from akim_turnout.models.resampling import permutation_test, wild_cluster_bootstrap
from akim_turnout.study.simulate import SimulationSettings, simulate_races, true_formula_rhs


@pytest.fixture(scope="module")
def races(regions: pd.DataFrame) -> pd.DataFrame:
    return simulate_races(regions, NATIONAL_2021, SimulationSettings.from_params(), seed=11)


@pytest.fixture(scope="module")
def race_glm(races: pd.DataFrame) -> FitResult:
    return fit_race_glm(races, true_formula_rhs(SimulationSettings.from_params()))


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


MIX_RHS = "np.log(n_candidates) + self_share + any_woman"
