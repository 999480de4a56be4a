"""The words readers see for the project's internal names: model terms, variables, models and inference methods.

Tables, figures and the report take their labels from here, so a term reads the same everywhere ("log(candidates)",
not ``np.log(n_candidates)``).
"""

from __future__ import annotations

import re

TERMS = {
    "Intercept": "intercept",
    "cands_per_seat": "candidates per post",
    "cands_per_post": "candidates per post",
    "self_share": "self-nominated share",
    "women_share": "women's share",
    "np.log(n_candidates)": "log(candidates)",
    "n_candidates": "candidates",
    "any_woman": "woman on the ballot",
    "precision": "precision (beta regression)",
}

METHODS = {
    "cluster_t": "cluster-robust GLM with t(G-1)",
    "wild_bootstrap": "wild cluster bootstrap",
    "gee_bias_reduced": "GEE with bias-reduced covariance",
    "mixedlm": "mixed model on the empirical logit",
    "naive_binomial": "naive binomial GLM",
}

MODELS = {
    "race_glm_cluster": "binomial GLM, cluster-robust",
    "race_glm_naive": "binomial GLM, naive",
    "race_beta": "beta regression",
    "race_gee": "GEE, bias-reduced",
    "race_mixedlm": "mixed model (empirical logit)",
}

WEIGHTS = {
    None: "unweighted",
    "voters_on_rolls": "electorate-weighted",
    "posts": "posts-weighted",
}

UNITS = {
    "cands_per_seat": "count",
    "cands_per_post": "count",
    "self_share": "share, 0 to 1",
    "women_share": "share, 0 to 1",
}

_REGION_DUMMY = re.compile(r"^C\((\w+)\)\[T\.(.+)\]$")


def term(name: str) -> str:
    """A model term as readers see it: 'log(candidates)', 'region: Almaty', ..."""
    dummy = _REGION_DUMMY.match(name)
    if dummy:
        return f"{dummy.group(1)}: {dummy.group(2)}"
    return TERMS.get(name, name)


def method(name: str) -> str:
    """An inference method of the simulation study as readers see it."""
    return METHODS.get(name, name)


def model(name: str) -> str:
    """A fitted model's name as readers see it."""
    return MODELS.get(name, name)


def weighting(weight: str | None) -> str:
    """A regional model's weighting as readers see it: 'unweighted', 'electorate-weighted', 'posts-weighted'."""
    if weight not in WEIGHTS:
        raise KeyError(f"no label for weighting {weight!r} (known: {', '.join(map(str, WEIGHTS))})")
    return WEIGHTS[weight]


def unit(name: str) -> str:
    """The unit of a regional predictor, as printed on an axis: 'count', 'share, 0 to 1'."""
    return UNITS.get(name, "")
