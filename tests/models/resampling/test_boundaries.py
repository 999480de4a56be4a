"""The resampling tests of akim_turnout.models.resampling at their boundaries: a statistic of exactly zero (every
replicate reaches it), a narrow bootstrap interval found by test inversion, the solver and engine arguments
(the fast paths of models.fastfit), the label of a failed observed fit, a batch of permuted designs of which one
separates, and a percentage outside 0 to 100."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from akim_turnout.models import fastfit, race, resampling
from akim_turnout.models import regional as regional_model
from models.resampling.test_enumeration import (
    RADEMACHER,
    all_vectors,
    exact_crossing,
    exact_wild_p,
    six_clusters,
)  # tests/ is on sys.path


def mirrored_clusters() -> pd.DataFrame:
    """Two regions, each with x = -1 and x = 1, 100 registered per race; region a has 60 and 40 voters, region b the
    mirror image, 40 and 60."""
    return pd.DataFrame(
        {
            "region": ["a", "a", "b", "b"],
            "x": [-1.0, 1.0, -1.0, 1.0],
            "registered": [100, 100, 100, 100],
            "voted": [60, 40, 40, 60],
        }
    )


def test_a_zero_score_statistic_has_bootstrap_p_value_one() -> None:
    """By hand, at the null slope 0: the restricted intercept is logit(200 / 400) = 0, so mu = 1/2 and the residuals
    are +10, -10 (region a) and -10, +10 (region b); H = X' diag(100 / 4) X = diag(100, 100) (the x column sums to
    0), so psi_g = sum_i r_i x_i / 100: psi_a = (-10 - 10) / 100 = -0.2 and psi_b = +0.2. The statistic
    sum(psi) / |psi| is 0, and every one of the four sign vectors gives a replicate with |t*| >= 0 (0 for equal signs,
    sqrt(2) for opposite ones): p = 1. Checked for the statsmodels path and for the fast one."""
    df = mirrored_clusters()
    draws = np.array(list(itertools.product([-1.0, 1.0], repeat=2)))
    result = resampling.wild_cluster_bootstrap(df, "x", "x", draws=draws, ci=False)
    assert result.estimate == 0.0 and result.statistic == 0.0
    assert result.p_value == 1.0
    arrays = fastfit.race_arrays(df, "x")
    assert fastfit.score_bootstrap(arrays, 1, 0.0, draws, np.zeros(2)) == (0.0, 1.0)


def test_a_zero_observed_statistic_has_permutation_p_value_one() -> None:
    """Five regions symmetric in x (x = -1, 1 at 40 % and x = -1, 1 at 60 %, x = 0 at 50 %): the fitted slope is 0,
    exactly so in the fast path, whose weighted sums cancel term by term. Every permutation's |statistic| reaches 0,
    so all 119 non-identity orders count and p = (119 + 1) / (119 + 1) = 1, for the coefficient and for the t-value.
    """
    regional = pd.DataFrame(
        {"region": list("abcde"), "turnout_pct": [40.0, 40.0, 60.0, 60.0, 50.0], "x": [-1.0, 1.0, -1.0, 1.0, 0.0]}
    )
    orders = [order for order in itertools.permutations(range(5)) if order != tuple(range(5))]
    for statistic in ("t", "coef"):
        result = resampling.permutation_test(regional, "x", permutations=orders, statistic=statistic)
        assert result.n_permutations == 119 and result.n_failed == 0
        assert result.p_value == 1.0, statistic


def test_wild_bootstrap_interval_at_a_large_alpha_brackets_the_estimate() -> None:
    """At alpha = 0.6 the interval is narrower than one standard error on either side (the exact p-values at the
    estimate -+ SE, 22/64 and 26/64, are already below 0.6), so each bound is bisected from the bracket [estimate,
    estimate -+ SE] until it is narrower than 1e-6 SE: the bound is within 0.5e-6 SE of the exact crossing, found here
    by bisection on the independent enumeration of all 64 Rademacher vectors. The lower bound lies below the estimate
    and the upper above it."""
    df = six_clusters()
    vectors = all_vectors(RADEMACHER, 6)
    result = resampling.wild_cluster_bootstrap(df, "x", "x", draws=vectors, alpha=0.6)
    estimate, se = result.estimate, float(race.fit_race_glm(df, "x").bse["x"])
    assert exact_wild_p(df, estimate - se, vectors)[1] == 22 / 64
    assert exact_wild_p(df, estimate + se, vectors)[1] == 26 / 64

    assert result.ci_lower < estimate < result.ci_upper
    for reported, outside in ((result.ci_lower, estimate - se), (result.ci_upper, estimate + se)):
        assert reported == pytest.approx(exact_crossing(df, vectors, estimate, outside, 0.6, 1e-12), abs=0.5e-6 * se)


def test_wild_bootstrap_estimate_uses_the_requested_solver() -> None:
    """``solver="irls"`` fits the model by statsmodels' IRLS: the reported estimate is that fit's, bit for bit. On
    this data Newton's estimate differs from IRLS's in the last digits, so the check tells the two solvers apart."""
    df = six_clusters()
    design = sm.add_constant(df["x"].to_numpy())
    endog = np.column_stack([df["voted"], df["registered"] - df["voted"]])
    model = sm.GLM(endog, design, family=sm.families.Binomial())
    irls = float(model.fit().params[1])
    newton = float(model.fit(method="newton", tol=1e-10).params[1])
    assert irls != newton
    assert resampling.wild_cluster_bootstrap(df, "x", "x", n_boot=9, solver="irls", ci=False).estimate == irls


def test_fast_engine_computes_the_null_distribution_with_fastfit(monkeypatch: pytest.MonkeyPatch) -> None:
    """``engine="fast"`` (the default) computes the whole permutation distribution with one call of
    ``fastfit.permutation_statistics`` (observed design first, then the permutations) and reports its values;
    ``engine="statsmodels"`` does not call it."""
    regional = pd.DataFrame(
        {
            "region": list("abcdef"),
            "turnout_pct": [52.0, 61.0, 58.0, 70.0, 66.0, 75.0],
            "x": [1.0, 3.0, 2.0, 5.0, 4.0, 6.0],
        }
    )
    real = fastfit.permutation_statistics
    calls: list[np.ndarray] = []

    def recording(*args, **kwargs):
        values, declined = real(*args, **kwargs)
        calls.append(values.copy())
        return values, declined

    monkeypatch.setattr(fastfit, "permutation_statistics", recording)
    fast = resampling.permutation_test(regional, "x", n_permutations=20, seed=1)
    assert len(calls) == 1 and len(calls[0]) == 21
    np.testing.assert_array_equal(fast.null_distribution, calls[0][1:])
    resampling.permutation_test(regional, "x", n_permutations=20, seed=1, engine="statsmodels")
    assert len(calls) == 1


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_permutation_test_names_itself_when_the_observed_covariance_fails(engine: str) -> None:
    """Shares 0, 0, 0, 1, 1, 1 on x = 1..6 separate perfectly: the fit drives the fitted shares to 0 and 1, the HC0
    covariance is not finite, and the error names the permutation test."""
    regional = pd.DataFrame(
        {"region": list("abcdef"), "turnout_pct": [0.0, 0.0, 0.0, 100.0, 100.0, 100.0], "x": np.arange(1.0, 7.0)}
    )
    message = "permutation: non-finite covariance (perfect separation or prediction?)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        resampling.permutation_test(regional, "x", n_permutations=5, cov_type="HC0", engine=engine)


@pytest.mark.parametrize("statistic", ["coef", "t"])
def test_a_separating_design_declines_only_itself(statistic: str) -> None:
    """Shares 0, 0, 0, 1, 1, 1: the column 0..5 separates them (IRLS ends in NaN), the other two columns do not.
    Only the separating design is declined; the others get statsmodels' statistic (HC0)."""
    share = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    exog = np.column_stack([np.ones(6), np.arange(6.0)])
    columns = np.vstack([np.arange(6.0), [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [0.0, 5.0, 1.0, 4.0, 2.0, 3.0]])
    values, declined = fastfit.permutation_statistics(share, exog, None, 1, columns, statistic, "HC0")
    assert declined.tolist() == [True, False, False]
    assert np.isnan(values[0])
    for value, column in zip(values[1:], columns[1:], strict=True):
        design = exog.copy()
        design[:, 1] = column
        assert value == pytest.approx(
            resampling._regional_statistic(share, design, None, 1, statistic, "HC0"), rel=1e-8
        )


@pytest.mark.parametrize("engine", ["fast", "statsmodels"])
def test_permutation_test_refuses_a_percentage_outside_0_to_100(engine: str) -> None:
    """Region c's 160 % is refused by name, as the regional fit refuses it, before any permutation."""
    regional = pd.DataFrame(
        {"region": list("abcde"), "turnout_pct": [40.0, 55.0, 160.0, 70.0, 65.0], "x": [0.1, 0.4, 0.2, 0.9, 0.5]}
    )
    with pytest.raises(ValueError, match=r"^permutation_test: turnout_pct outside \[0, 100\] for \['c'\]$"):
        resampling.permutation_test(regional, "x", n_permutations=9, engine=engine)
    with pytest.raises(ValueError, match=r"^regional_fractional_logit: turnout_pct outside \[0, 100\] for \['c'\]$"):
        regional_model.fit_regional_fractional_logit(regional, ["x"])
