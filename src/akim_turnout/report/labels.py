"""The words readers see for the project's internal names: model terms, variables, models and inference methods.

Tables, figures and the report take their labels from here, so a term reads the same everywhere ("log(candidates)",
not ``np.log(n_candidates)``). The words for the allowed values of a parameter (regional predictors, weightings,
inference methods, headline models) are declared with the parameter in :mod:`pipeline.parameters`; this module
turns them, and the parameter values of a run, into names: :func:`regional_models` names the regional fits after the
run's predictor and weight ("candidates per post, posts-weighted").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from akim_turnout.pipeline.parameters import HEADLINES, REGIONAL_PREDICTORS, REGIONAL_WEIGHTS, STUDY_METHOD_LABELS

TERMS = {
    "Intercept": "intercept",
    **REGIONAL_PREDICTORS,
    "cands_per_post": REGIONAL_PREDICTORS["cands_per_seat"],
    "np.log(n_candidates)": "log(candidates)",
    "n_candidates": "candidates",
    "any_woman": "woman on the ballot",
    "precision": "precision (beta regression)",
}

METHODS = STUDY_METHOD_LABELS

MODELS = {
    "race_glm_cluster": "binomial GLM, cluster-robust",
    "race_glm_naive": "binomial GLM, naive",
    "race_beta": "beta regression",
    "race_gee": "GEE, bias-reduced",
    "race_mixedlm": "mixed model (empirical logit)",
}

WEIGHTS = {None: "unweighted", **REGIONAL_WEIGHTS}

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


def headline(choice: str) -> str:
    """A ``race_models.headline_model`` choice as readers see it."""
    return HEADLINES.get(choice, choice)


def terms(names: Sequence[str]) -> str:
    """Several terms as readers see them, joined: 'candidates per post and self-nominated share'."""
    words = [term(name) for name in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# The regional fits of the regional_model stage, in order.
REGIONAL_MODEL_KEYS = ("main_unweighted", "main_weighted", "mix_unweighted")


def regional_models(weight: str) -> dict[str, str]:
    """The names of the three regional fits (the ``model`` column of their tables) for a run's ``weight``: the
    main model unweighted and weighted, and the candidate-mix model, e.g. with ``weight: posts``::

        {"main_unweighted": "main, unweighted", "main_weighted": "main, posts-weighted",
         "mix_unweighted": "mix, unweighted"}
    """
    return {
        "main_unweighted": f"main, {weighting(None)}",
        "main_weighted": f"main, {weighting(weight)}",
        "mix_unweighted": f"mix, {weighting(None)}",
    }


def regional_model_descriptions(main_predictor: str, mix_predictors: Sequence[str], weight: str) -> dict[str, str]:
    """What each regional fit is, in words: 'candidates per post, posts-weighted', 'candidates per post and
    self-nominated share, unweighted'."""
    main = term(main_predictor)
    return {
        "main_unweighted": f"{main}, {weighting(None)}",
        "main_weighted": f"{main}, {weighting(weight)}",
        "mix_unweighted": f"{terms(mix_predictors)}, {weighting(None)}",
    }


def regional_labels(main_predictor: str, mix_predictors: Sequence[str], weight: str) -> dict[str, object]:
    """The words of a regional_model run, as the stage writes them into its numbers file (key ``labels``)."""
    return {
        "main_predictor": term(main_predictor),
        "main_predictor_unit": unit(main_predictor),
        "mix_predictors": [term(name) for name in mix_predictors],
        "weighting": weighting(weight),
        "models": regional_models(weight),
        "model_descriptions": regional_model_descriptions(main_predictor, mix_predictors, weight),
    }
