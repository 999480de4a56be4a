"""The results of the resampling tests of akim_turnout.models.resampling as exact dictionaries, and the bound
of a wild bootstrap interval when no null is rejected."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout.models import resampling


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
