"""Exact checks of the resampling methods: every draw enumerated, the answer computed here by an independent short
implementation, compared at 1e-12 where the outcome is a count (a p-value) and at a stated tolerance where it goes
through an iterative fit.

* Wild cluster bootstrap: six clusters, so all 2^6 = 64 Rademacher and 6^6 = 46 656 Webb sign vectors can be passed
  through the ``draws`` hook; the exact bootstrap p-value is the share of all vectors whose restudentised score
  statistic reaches the observed one.
* Permutation test: five regions, so all 5! = 120 orders can be enumerated; the exact p-value counts the orders
  (identity included) whose statistic reaches the observed one, which is what ``(k + 1) / (n + 1)`` gives with the
  119 non-identity orders.
* Integer-percentage null: the smoothed null near 0 % and 100 %, reflected (not clipped) into [0, 1], against the hit
  probability integrated exactly over the smoothing window.
"""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import expit

from akim_turnout.models import forensics, resampling

RADEMACHER = np.array([-1.0, 1.0])
# Webb (2014): +-sqrt(3/2), +-1, +-sqrt(1/2), each with probability 1/6; mean 0, variance 1.
WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])
TIE = 1 - 1e-12  # replicates equal to the observed statistic up to rounding count as reaching it


# --------------------------------------------------------------------------------------------------------------
# Wild cluster bootstrap
# --------------------------------------------------------------------------------------------------------------


def six_clusters() -> pd.DataFrame:
    """18 races in six regions; x has a regional component, so clusters differ in their influence."""
    region_x = np.array([-1.0, -0.4, 0.1, 0.5, 0.9, 1.6])
    within = np.array([-0.3, 0.05, 0.35])
    x = (region_x[:, None] + within[None, :]).ravel()
    registered = np.array([120, 95, 210, 80, 150, 60, 300, 110, 90, 70, 180, 140, 100, 250, 65, 130, 85, 160])
    share = expit(
        0.4
        + 0.35 * x
        + np.array(
            [0.3, -0.2, 0.1, -0.4, 0.25, 0.0, 0.2, -0.1, -0.3, 0.15, 0.35, -0.25, -0.05, 0.1, 0.3, -0.35, 0.05, 0.2]
        )
    )
    return pd.DataFrame(
        {
            "region": np.repeat(list("abcdef"), 3),
            "x": x,
            "registered": registered,
            "voted": np.round(share * registered).astype(int),
        }
    )


def restricted_influence(df: pd.DataFrame, null_value: float) -> np.ndarray:
    """psi_g = e_x' H^-1 S_g at the intercept-only fit with the slope fixed at ``null_value`` (independent code)."""
    x, n, v = df["x"].to_numpy(), df["registered"].to_numpy(float), df["voted"].to_numpy(float)
    intercept = brentq(lambda a: np.sum(v - n * expit(a + null_value * x)), -30, 30, xtol=1e-15, rtol=1e-15)
    mu = expit(intercept + null_value * x)
    design = np.column_stack([np.ones_like(x), x])
    information = design.T @ (design * (n * mu * (1 - mu))[:, None])
    direction = np.linalg.solve(information, [0.0, 1.0])
    contribution = (v - n * mu) * (design @ direction)
    return pd.Series(contribution).groupby(df["region"].to_numpy()).sum().sort_index().to_numpy()


def exact_wild_p(df: pd.DataFrame, null_value: float, vectors: np.ndarray) -> tuple[float, float]:
    """Observed score statistic and the share of weight vectors whose restudentised statistic reaches it."""
    psi = restricted_influence(df, null_value)
    observed = psi.sum() / math.sqrt(np.sum(psi**2))
    replicates = np.einsum("bg,g->b", vectors, psi) / np.sqrt(np.einsum("bg,g->b", vectors**2, psi**2))
    return observed, float(np.count_nonzero(np.abs(replicates) >= abs(observed) * TIE)) / len(vectors)


def all_vectors(values: np.ndarray, n_clusters: int) -> np.ndarray:
    return np.array(list(itertools.product(values, repeat=n_clusters)))


def exact_crossing(
    df: pd.DataFrame, vectors: np.ndarray, inside: float, outside: float, alpha: float, tol: float
) -> float:
    """The null value between ``inside`` (p >= alpha) and ``outside`` (p < alpha) where the exact wild p-value over
    every sign vector crosses ``alpha``, by bisection to ``tol``: an interval bound found by test inversion."""
    while abs(outside - inside) > tol:
        middle = (inside + outside) / 2
        if exact_wild_p(df, middle, vectors)[1] < alpha:
            outside = middle
        else:
            inside = middle
    return (inside + outside) / 2


@pytest.fixture(scope="module")
def races() -> pd.DataFrame:
    return six_clusters()


@pytest.mark.parametrize(("values", "count"), [(RADEMACHER, 64), (WEBB, 46_656)])
@pytest.mark.parametrize("null_value", [0.0, 0.2, 0.6])
def test_wild_bootstrap_p_value_equals_full_enumeration(races, values, count, null_value) -> None:
    vectors = all_vectors(values, 6)
    assert len(vectors) == count
    result = resampling.wild_cluster_bootstrap(races, "x", "x", draws=vectors, null_value=null_value, ci=False)
    observed, exact = exact_wild_p(races, null_value, vectors)
    assert result.n_boot == count and result.n_clusters == 6
    assert result.statistic == pytest.approx(observed, rel=1e-9)
    assert result.p_value == pytest.approx(exact, abs=1e-12)


def test_enumerated_p_values_are_the_known_fractions(races) -> None:
    """The exact p-values of the fixture, as fractions of the number of vectors (found by the enumeration above and
    fixed here, so that a change of fixture or statistic shows)."""
    rademacher = resampling.wild_cluster_bootstrap(races, "x", "x", draws=all_vectors(RADEMACHER, 6), ci=False)
    webb = resampling.wild_cluster_bootstrap(races, "x", "x", draws=all_vectors(WEBB, 6), ci=False)
    assert round(rademacher.p_value * 64) == pytest.approx(rademacher.p_value * 64, abs=1e-9)
    assert round(webb.p_value * 46_656) == pytest.approx(webb.p_value * 46_656, abs=1e-9)
    assert exact_wild_p(races, 0.0, all_vectors(RADEMACHER, 6))[1] == rademacher.p_value
    assert exact_wild_p(races, 0.0, all_vectors(WEBB, 6))[1] == webb.p_value


def test_replicates_are_restudentised(races) -> None:
    """With Webb weights |v| differs between clusters, so dividing each replicate by its own spread matters: the
    unstudentised share (replicate / observed spread) differs from the exact p-value, and the function gives the
    studentised one. (With Rademacher weights v^2 = 1 and the two coincide.)"""
    vectors = all_vectors(WEBB, 6)
    psi = restricted_influence(races, 0.6)
    observed = psi.sum() / math.sqrt(np.sum(psi**2))
    unstudentised = np.mean(np.abs(vectors @ psi / math.sqrt(np.sum(psi**2))) >= abs(observed) * TIE)
    result = resampling.wild_cluster_bootstrap(races, "x", "x", draws=vectors, null_value=0.6, ci=False)
    assert result.p_value == pytest.approx(exact_wild_p(races, 0.6, vectors)[1], abs=1e-12)
    assert abs(result.p_value - unstudentised) > 0.01


@pytest.mark.parametrize("values", [RADEMACHER, WEBB], ids=["rademacher", "webb"])
def test_wild_bootstrap_ci_bounds_are_where_the_exact_p_value_crosses_alpha(races, values) -> None:
    """The CI is the set of nulls whose exact p-value is at least alpha; its bounds are found here by bisection on
    the independent enumeration (to 1e-10) and must agree with the function's (bisected to 1e-6 of its first step)."""
    vectors = all_vectors(values, 6)
    result = resampling.wild_cluster_bootstrap(races, "x", "x", draws=vectors, alpha=0.05)
    estimate = result.estimate

    width = result.ci_upper - result.ci_lower
    for reported, outside in (
        (result.ci_lower, result.ci_lower - 0.5 * width),
        (result.ci_upper, result.ci_upper + 0.5 * width),
    ):
        assert reported == pytest.approx(exact_crossing(races, vectors, estimate, outside, 0.05, 1e-10), abs=1e-5)


def test_default_weights_are_webb_drawn_from_the_seed(races) -> None:
    """Called without ``weights``, the bootstrap draws Webb weights with default_rng(seed), one row per replicate:
    its p-value is the share computed here from exactly those draws, and not the Rademacher one."""
    assert inspect.signature(resampling.wild_cluster_bootstrap).parameters["weights"].default == "webb"
    np.testing.assert_allclose(resampling.WILD_WEIGHTS["webb"], WEBB, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(resampling.WILD_WEIGHTS["rademacher"], RADEMACHER)
    assert np.mean(WEBB) == pytest.approx(0.0, abs=1e-15) and np.mean(WEBB**2) == pytest.approx(1.0, abs=1e-15)
    result = resampling.wild_cluster_bootstrap(races, "x", "x", n_boot=499, seed=11, null_value=0.6, ci=False)
    assert result.weights == "webb" and result.n_boot == 499 and result.notes == ()
    webb_draws = np.random.default_rng(11).choice(WEBB, size=(499, 6))
    rademacher_draws = np.random.default_rng(11).choice(RADEMACHER, size=(499, 6))
    assert result.p_value == pytest.approx(exact_wild_p(races, 0.6, webb_draws)[1], abs=1e-12)
    assert exact_wild_p(races, 0.6, rademacher_draws)[1] != pytest.approx(result.p_value, abs=1e-3)
    explicit = resampling.wild_cluster_bootstrap(races, "x", "x", draws=webb_draws, null_value=0.6, ci=False)
    assert explicit.p_value == result.p_value and explicit.statistic == result.statistic


def test_rademacher_weights_on_request_and_the_few_distinct_draws_note(races) -> None:
    result = resampling.wild_cluster_bootstrap(races, "x", "x", n_boot=99, seed=2, weights="rademacher", ci=False)
    draws = np.random.default_rng(2).choice(RADEMACHER, size=(99, 6))
    assert result.p_value == pytest.approx(exact_wild_p(races, 0.0, draws)[1], abs=1e-12)
    assert result.weights == "rademacher" and result.seed == 2
    assert result.notes == ("only 64 distinct Rademacher draws exist for 6 clusters",)
    enough = resampling.wild_cluster_bootstrap(races, "x", "x", n_boot=63, seed=2, weights="rademacher", ci=False)
    assert enough.notes == ()


def test_draws_must_have_one_column_per_cluster(races) -> None:
    with pytest.raises(ValueError, match=r"^draws must have one column per cluster \(6\), got shape \(4, 5\)$"):
        resampling.wild_cluster_bootstrap(races, "x", "x", draws=np.ones((4, 5)), ci=False)
    with pytest.raises(ValueError, match=r"^weights must be one of \['rademacher', 'webb'\]$"):
        resampling.wild_cluster_bootstrap(races, "x", "x", weights="mammen", ci=False)


# --------------------------------------------------------------------------------------------------------------
# Permutation test
# --------------------------------------------------------------------------------------------------------------


def five_regions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["A", "B", "C", "D", "E"],
            "x": [1.0, 2.5, 3.0, 4.2, 6.0],
            "turnout_pct": [66.0, 72.5, 61.0, 70.0, 71.5],
        }
    )


def fractional_logit(share: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton on the Bernoulli quasi-likelihood; returns coefficients and their HC3 covariance (independent code:
    scores (y - mu) x_i, information X' diag(mu (1 - mu)) X, leverage h_i = w_i x_i' H^-1 x_i)."""
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(100):
        mu = expit(design @ beta)
        step = np.linalg.solve(design.T @ (design * (mu * (1 - mu))[:, None]), design.T @ (share - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-14:
            break
    mu = expit(design @ beta)
    w = mu * (1 - mu)
    bread = np.linalg.inv(design.T @ (design * w[:, None]))
    leverage = w * np.einsum("ij,jk,ik->i", design, bread, design)
    scores = design * ((share - mu) / (1 - leverage))[:, None]
    return beta, bread @ scores.T @ scores @ bread


def statistic_of(share: np.ndarray, x: np.ndarray, kind: str) -> float:
    beta, cov = fractional_logit(share, x)
    return beta[1] if kind == "coef" else beta[1] / math.sqrt(cov[1, 1])


@pytest.mark.parametrize("kind", ["t", "coef"])
def test_permutation_p_value_equals_full_enumeration(kind: str) -> None:
    regions = five_regions()
    share, x = regions["turnout_pct"].to_numpy() / 100, regions["x"].to_numpy()
    orders = list(itertools.permutations(range(5)))
    assert len(orders) == 120 and orders[0] == (0, 1, 2, 3, 4)
    values = np.array([statistic_of(share, x[list(order)], kind) for order in orders])
    exact = np.mean(np.abs(values) >= abs(values[0]) * TIE)
    result = resampling.permutation_test(regions, "x", statistic=kind, permutations=orders[1:])
    assert result.n_permutations == 119 and result.n_failed == 0 and result.n_obs == 5
    # statsmodels' IRLS stops at a relative deviance change of 1e-8: coefficients agree to about 1e-8
    assert result.observed == pytest.approx(values[0], rel=1e-6)
    np.testing.assert_allclose(result.null_distribution, values[1:], rtol=1e-6)
    assert result.p_value == pytest.approx(exact, abs=1e-12)


def test_permutation_p_values_of_the_fixture() -> None:
    """The enumerated p-values as counts of the 120 orders: 14 for the robust t (HC3), 59 for the coefficient (the
    nearest other order is 0.35 % away from the observed statistic, so no count hangs on rounding)."""
    regions = five_regions()
    orders = list(itertools.permutations(range(5)))[1:]
    assert resampling.permutation_test(regions, "x", permutations=orders).p_value == pytest.approx(14 / 120, abs=1e-12)
    coef = resampling.permutation_test(regions, "x", statistic="coef", permutations=orders)
    assert coef.p_value == pytest.approx(59 / 120, abs=1e-12)


def test_random_permutations_are_orders_drawn_from_the_seed() -> None:
    """Without ``permutations`` the predictor is shuffled with default_rng(seed): the same null distribution as
    passing the orders that generator draws."""
    regions = five_regions()
    rng = np.random.default_rng(4)
    orders = [rng.permutation(5) for _ in range(30)]
    random = resampling.permutation_test(regions, "x", n_permutations=30, seed=4)
    given = resampling.permutation_test(regions, "x", permutations=orders)
    np.testing.assert_array_equal(random.null_distribution, given.null_distribution)
    assert random.p_value == given.p_value


def test_permutations_must_be_orders_of_the_regions() -> None:
    with pytest.raises(ValueError, match=r"^each permutation must be an order of range\(5\), the complete regions$"):
        resampling.permutation_test(five_regions(), "x", permutations=[(0, 1, 2, 3, 3)])
    with pytest.raises(ValueError, match=r"^statistic must be 't' or 'coef'$"):
        resampling.permutation_test(five_regions(), "x", statistic="z")


# --------------------------------------------------------------------------------------------------------------
# Integer-percentage null near 0 % and 100 %
# --------------------------------------------------------------------------------------------------------------


def test_reflection_folds_the_window_back_into_the_unit_interval() -> None:
    q = np.array([-0.003, 0.0, 0.002, 0.5, 0.999, 1.0, 1.004, -1e-9])
    expected = np.array([0.003, 0.0, 0.002, 0.5, 0.999, 1.0, 0.996, 1e-9])
    np.testing.assert_allclose(forensics.reflect_into_unit_interval(q), expected, rtol=0, atol=1e-15)


def exact_hit_probability(registered: int, voted: int, smooth_pp: float, tolerance: float = 0.05) -> float:
    """P(integer percentage) when q ~ Uniform(p -+ smooth/2) reflected at 0 and 1 and votes ~ Binomial(n, q):
    the binomial hit probability averaged over the window (midpoint rule on 2000 cells: 2e-7 from the value on
    20 000 cells)."""
    votes = np.arange(registered + 1)
    remainder = (100 * votes) % registered
    hit = np.minimum(remainder, registered - remainder) <= tolerance * registered
    half = smooth_pp / 200
    cells = voted / registered - half + (np.arange(2000) + 0.5) * (2 * half / 2000)
    q = np.abs(cells)
    q = np.where(q > 1, 2 - q, q)
    return float(np.mean(stats.binom.pmf(votes[hit][None, :], registered, q[:, None]).sum(axis=1)))


def test_integer_null_near_0_and_100_percent_matches_the_exact_probability() -> None:
    """Races at 0 %, 0.2 %, 99.8 % and 100 % turnout of 1000 voters, with the default 1 pp window, which reaches
    past 0 % and 100 %. Reflected, a race at 0.2 % is an integer in 20.5 % of draws; clipped at 0 % it would be in
    41 % (0.3 of the window piles onto exactly 0 votes). Monte Carlo with 20 000 simulations against the exact
    probability at 4 Monte Carlo SEs (at most 0.014)."""
    races = pd.DataFrame({"registered": [1000, 1000, 1000, 1000], "voted": [0, 2, 998, 1000]})
    result = forensics.integer_percent_test(races, n_sim=20_000, seed=5)
    for i, voted in enumerate(races["voted"]):
        exact = exact_hit_probability(1000, int(voted), 1.0)
        mc = result.races["null_hit_prob"].iloc[i]
        assert abs(mc - exact) <= 4 * math.sqrt(exact * (1 - exact) / 20_000), (voted, mc, exact)
    assert exact_hit_probability(1000, 2, 1.0) == pytest.approx(exact_hit_probability(1000, 998, 1.0), abs=1e-12)
    assert exact_hit_probability(1000, 2, 1.0) == pytest.approx(0.204622, abs=1e-5)
    assert result.n_degenerate == 2 and result.observed == 2


def test_permutation_p_value_counts_the_observed_order_as_a_tie() -> None:
    """Given every order, the identity among them, its statistic is the observed one and counts as at least as
    extreme (ties within 1e-12 relative count): 15 of 121 for the robust t, one more than without it."""
    regions = five_regions()
    orders = list(itertools.permutations(range(5)))
    for engine in ("fast", "statsmodels"):
        result = resampling.permutation_test(regions, "x", permutations=orders, engine=engine)
        assert result.n_permutations == 120 and result.null_distribution[0] == pytest.approx(result.observed)
        assert result.p_value == pytest.approx(15 / 121, abs=1e-12), engine
