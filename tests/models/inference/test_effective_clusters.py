"""The effective number of clusters (Carter, Schnepel & Steigerwald 2017) against hand computations, the headline's
Monte Carlo precision, the tied headlines and the leave-one-region-out refits (akim_turnout.models.inference,
akim_turnout.models.race)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from akim_turnout.models import inference, race

# three clusters of an intercept + slope design: A has x = 0, 1; B has x = 2; C has x = 3, 4, 5
X = np.column_stack([np.ones(6), np.arange(6.0)])
CLUSTERS = np.array(["A", "A", "B", "C", "C", "C"])


def _hand_g_star(gammas: list[Fraction]) -> Fraction:
    mean = sum(gammas) / len(gammas)
    dispersion = sum((g - mean) ** 2 for g in gammas) / len(gammas) / mean**2
    return len(gammas) / (1 + dispersion)


def test_effective_clusters_by_hand() -> None:
    # X'X = [[6, 15], [15, 55]], det 105: (X'X)^-1 e_2 = (-15, 6) / 105, so u_i = (6 x_i - 15) / 105:
    # -15, -9 | -3 | 3, 9, 15 (over 105)
    u = {"A": [-15, -9], "B": [-3], "C": [3, 9, 15]}
    independent = [Fraction(sum(v * v for v in values), 105**2) for values in u.values()]  # 306, 9, 315
    shared = [Fraction(sum(values) ** 2, 105**2) for values in u.values()]  # 576, 9, 729
    result = inference.effective_clusters(X, CLUSTERS, 1)
    assert result["g_star"] == pytest.approx(float(_hand_g_star(independent)), rel=1e-12)
    assert result["g_star"] == pytest.approx(3 * 44100 / 64314, rel=1e-12)  # Gamma = 20214 / 44100
    assert result["n_clusters"] == 3 and result["rho"] == 0.0
    assert result["shares"] == pytest.approx([306 / 630, 9 / 630, 315 / 630], rel=1e-12)
    fully = inference.effective_clusters(X, CLUSTERS, 1, rho=1.0)
    assert fully["g_star"] == pytest.approx(float(_hand_g_star(shared)), rel=1e-12)
    assert fully["g_star"] == pytest.approx(2.0, rel=1e-12)  # Gamma = 95922 / 191844 = 1/2
    half = [(g0 + g1) / 2 for g0, g1 in zip(independent, shared, strict=True)]
    assert inference.effective_clusters(X, CLUSTERS, 1, rho=0.5)["g_star"] == pytest.approx(
        float(_hand_g_star(half)), rel=1e-12
    )


def test_balanced_clusters_give_g_star_equal_to_g() -> None:
    x = np.tile([0.0, 1.0, 2.0, 5.0], 4)
    exog = np.column_stack([np.ones(16), x])
    clusters = np.repeat(np.arange(4), 4)
    for rho in (0.0, 0.3, 0.9):
        assert inference.effective_clusters(exog, clusters, 1, rho=rho)["g_star"] == pytest.approx(4.0, rel=1e-12)


def test_weights_act_as_repeated_rows_and_their_scale_does_not_matter() -> None:
    weights = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    repeated = np.repeat(np.arange(6), weights.astype(int))
    weighted = inference.effective_clusters(X, CLUSTERS, 1, weights=weights)
    assert weighted["g_star"] == pytest.approx(
        inference.effective_clusters(X[repeated], CLUSTERS[repeated], 1)["g_star"], rel=1e-12
    )
    assert inference.effective_clusters(X, CLUSTERS, 1, weights=7 * weights)["g_star"] == pytest.approx(
        weighted["g_star"], rel=1e-12
    )


def test_with_a_fixed_effect_per_cluster_rho_changes_nothing() -> None:
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(5), [3, 4, 10, 5, 6])
    dummies = (clusters[:, None] == np.arange(1, 5)).astype(float)
    exog = np.column_stack([np.ones(len(clusters)), dummies, rng.normal(size=len(clusters))])
    base = inference.effective_clusters(exog, clusters, 5)["g_star"]
    assert inference.effective_clusters(exog, clusters, 5, rho=0.6)["g_star"] == pytest.approx(base, rel=1e-10)
    assert base < 5
    with pytest.raises(ValueError, match="no cluster contributes"):
        inference.effective_clusters(exog, clusters, 5, rho=1.0)


def test_effective_clusters_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="k must index"):
        inference.effective_clusters(X, CLUSTERS, 2)
    with pytest.raises(ValueError, match="rho must be"):
        inference.effective_clusters(X, CLUSTERS, 1, rho=1.5)
    with pytest.raises(ValueError, match="weights must be"):
        inference.effective_clusters(X, CLUSTERS, 1, weights=-np.ones(6))
    with pytest.raises(ValueError, match="two clusters"):
        inference.effective_clusters(X, np.zeros(6), 1)
    with pytest.raises(ValueError, match="one cluster label per row"):
        inference.effective_clusters(X, CLUSTERS[:5], 1)


def test_p_value_monte_carlo_se_and_the_draws_it_needs() -> None:
    assert race.p_value_mc_se(0.004, 999) == pytest.approx(math.sqrt(0.004 * 0.996 / 999), rel=1e-15)
    assert race.p_value_mc_se(0.004, 999) > 0.001 >= race.p_value_mc_se(0.004, 9999)
    assert race.draws_for_mc_se(0.004, 0.001) == 3984  # 0.004 x 0.996 / 1e-6 = 3984
    assert race.p_value_mc_se(0.004, 3984) <= 0.001 < race.p_value_mc_se(0.004, 3983)
    assert race.p_value_mc_se(0.0, 99) == 0.0
    with pytest.raises(ValueError, match="n_draws"):
        race.p_value_mc_se(0.5, 0)
    with pytest.raises(ValueError, match="p_value"):
        race.p_value_mc_se(1.5, 10)
    with pytest.raises(ValueError, match="target"):
        race.draws_for_mc_se(0.5, 0)


def test_leave_one_cluster_out_largest_first() -> None:
    races = pd.DataFrame(
        {"region": ["a", "a", "b", "c", "c", "c"], "registered": [10, 20, 100, 5, 5, 5], "x": [1, 2, 3, 4, 5, 6]}
    )
    table = race.leave_one_cluster_out(races, lambda kept: [{"method": "m", "mean_x": kept["x"].mean()}])
    assert table["left_out"].tolist() == ["b", "a", "c"]  # 100, 30, 15 voters
    assert table["n_races"].tolist() == [5, 4, 3]
    assert table["voters_share_left_out"].tolist() == pytest.approx([100 / 145, 30 / 145, 15 / 145], rel=1e-15)
    assert table["mean_x"].tolist() == pytest.approx([18 / 5, 18 / 4, 6 / 3], rel=1e-15)
    only = race.leave_one_cluster_out(races, lambda kept: [{"n": len(kept)}, {"n": -len(kept)}], left_out=["c"])
    assert only[["left_out", "n"]].values.tolist() == [["c", 3], ["c", -3]]
    with pytest.raises(ValueError, match=r"no races in cluster\(s\) \['z'\]"):
        race.leave_one_cluster_out(races, lambda kept: [], left_out=["z"])
    with pytest.raises(ValueError, match="needs the columns"):
        race.leave_one_cluster_out(races.drop(columns="registered"), lambda kept: [])
