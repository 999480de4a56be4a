"""Every parameter of ``params.yaml``: its type, range and allowed values, checked before a stage does any work.

The runner checks a stage's parameters against :data:`SCHEMA` before it starts the notebook's kernel, so a bad value
stops the stage at once with one line naming the stage and the parameter, e.g.::

    error: stage 'regional_model': parameter 'n_permutations' must be an integer from 99 to 1000000, got -5

The simulator's ``settings`` and the study's ``design`` are checked key by key here as well; the classes that use
them (:class:`study.simulate.SimulationSettings`, :class:`akim_turnout.study.replications.StudyDesign`) take their rules
from this module and add only the checks that involve several keys at once. This module imports nothing heavy, so
the runner stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ParameterError(ValueError):
    """A parameter value breaks its rule; the message names stage and parameter."""


@dataclass(frozen=True)
class Rule:
    """What one parameter may be.

    ``kind``: ``"integer"``, ``"number"``, ``"boolean"``, ``"text"``, ``"list"`` or ``"mapping"``. Numbers may have
    ``minimum`` / ``maximum`` (inclusive unless ``open_minimum``); text may have ``choices``; a list has an ``item``
    rule and ``min_items``; a mapping has ``fields`` (every key known; missing keys allowed when ``partial``).
    ``nullable`` admits ``null``.
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    choices: tuple[Any, ...] = ()
    item: Rule | None = None
    min_items: int = 0
    unique: bool = False
    fields: Mapping[str, Rule] = field(default_factory=dict)
    partial: bool = False
    nullable: bool = False

    def describe(self) -> str:
        """The rule in words: 'an integer from 99 to 1000000', 'one of glm, beta'..."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind in ("integer", "number"):
            noun = "an integer" if self.kind == "integer" else "a number"
            low, high = self.minimum, self.maximum
            if low is not None and high is not None and self.open_minimum:
                return f"{noun} above {_number(low)} and at most {_number(high)}"
            if low is not None and high is not None:
                return f"{noun} from {_number(low)} to {_number(high)}"
            if low is not None:
                return f"{noun} {'>' if self.open_minimum else '>='} {_number(low)}"
            if high is not None:
                return f"{noun} <= {_number(high)}"
            return noun
        return {"boolean": "true or false", "text": "a text", "list": "a list", "mapping": "a mapping"}[self.kind]

    def problems(self, value: Any, name: str) -> list[str]:
        """Messages ``parameter 'name' must be ..., got ...`` for each way ``value`` breaks the rule."""
        if value is None:
            return [] if self.nullable else [f"parameter '{name}' must be {self.describe()}, got null"]
        if not self._has_type(value):
            return [f"parameter '{name}' must be {self.describe()}, got {value!r}"]
        if self.kind == "list":
            items = list(value)
            problems = (
                [p for i, v in enumerate(items) for p in self.item.problems(v, f"{name}[{i}]")] if self.item else []
            )
            if len(items) < self.min_items:
                problems.append(f"parameter '{name}' needs at least {self.min_items} item(s), got {len(items)}")
            if self.unique and len(set(map(repr, items))) != len(items):
                problems.append(f"parameter '{name}' must not repeat an item, got {items!r}")
            return problems
        if self.kind == "mapping":
            return mapping_problems(value, self.fields, name, partial=self.partial)
        if self.choices and value not in self.choices:
            return [f"parameter '{name}' must be {self.describe()}, got {value!r}"]
        if self.kind in ("integer", "number") and not self._in_range(float(value)):
            return [f"parameter '{name}' must be {self.describe()}, got {value!r}"]
        return []

    def _has_type(self, value: Any) -> bool:
        if self.kind == "boolean":
            return isinstance(value, bool)
        if self.kind == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if self.kind == "text":
            return isinstance(value, str) and value.strip() != ""
        if self.kind == "list":
            return isinstance(value, (list, tuple))
        return isinstance(value, Mapping)

    def _in_range(self, x: float) -> bool:
        if self.minimum is not None and (x <= self.minimum if self.open_minimum else x < self.minimum):
            return False
        return self.maximum is None or x <= self.maximum


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def mapping_problems(
    value: Mapping[str, Any], fields: Mapping[str, Rule], name: str = "", *, partial: bool = False
) -> list[str]:
    """Problems of a mapping against its field rules: unknown keys, missing keys (unless ``partial``), bad values."""
    prefix = f"{name}." if name else ""
    problems = [f"unknown parameter '{prefix}{key}' (known: {', '.join(fields)})" for key in value if key not in fields]
    if not partial:
        problems += [f"missing parameter '{prefix}{key}'" for key in fields if key not in value]
    for key, rule in fields.items():
        if key in value:
            problems += rule.problems(value[key], f"{prefix}{key}")
    return problems


def integer(minimum: float | None = None, maximum: float | None = None) -> Rule:
    return Rule("integer", minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None, *, open_minimum: bool = False) -> Rule:
    return Rule("number", minimum, maximum, open_minimum)


def choice(*values: Any, kind: str = "text") -> Rule:
    return Rule(kind, choices=tuple(values))


SEED = integer(0, 2**32 - 1)
FIGURE_FORMATS = ("png", "pdf", "svg")
REGIONAL_PREDICTORS = ("cands_per_seat", "self_share", "women_share")
HEADLINES = ("recommended", "glm", "wild_bootstrap", "gee", "mixedlm", "beta")
STUDY_METHODS = ("cluster_t", "wild_bootstrap", "gee_bias_reduced", "mixedlm", "naive_binomial")

SIMULATION_SETTINGS = {
    "beta_cands": number(-5, 5),
    "cands_scale": choice("log", "count"),
    "beta_self_share": number(-5, 5),
    "beta_women": number(-5, 5),
    "overdispersion_sd": number(0, 5),
    "voters_sd_log": number(0, 5),
    "min_candidates": integer(1, 10),
    "min_registered": integer(1, 100_000),
    "unknown_posts_rule": choice("equal"),
    "binomial_sampling": Rule("boolean"),
    "dirichlet_concentration": number(0, 1000, open_minimum=True),
    "party_placement": choice("spread", "random"),
}

STUDY_DESIGN = {
    "n_replications": integer(2, 100_000),
    "n_replications_null": Rule("integer", 2, 100_000, nullable=True),
    "effect_grid": Rule("list", item=number(-5, 5), min_items=2, unique=True),
    "designs": Rule(
        "list",
        min_items=1,
        item=Rule(
            "mapping",
            partial=True,
            fields={
                "n_regions": integer(2, 1000),
                "n_races": integer(4, 1_000_000),
                "n_replications": Rule("integer", 2, 100_000, nullable=True),
            },
        ),
    ),
    "n_boot": integer(19, 100_000),
    "seed": SEED,
    "alpha": number(0, 0.5, open_minimum=True),
    "methods": Rule("list", item=choice(*STUDY_METHODS), min_items=1, unique=True),
    "method_replications": Rule("mapping", partial=True, fields={m: integer(2, 100_000) for m in STUDY_METHODS}),
    "wild_bootstrap_ci": Rule("boolean"),
    "wild_weights": choice("webb", "rademacher"),
}

SCHEMA: dict[str, dict[str, Rule]] = {
    "common": {
        "dpi": integer(50, 600),
        "figure_formats": Rule("list", item=choice(*FIGURE_FORMATS), min_items=1, unique=True),
    },
    "regional_model": {
        "main_predictor": choice(*REGIONAL_PREDICTORS),
        "mix_predictors": Rule("list", item=choice(*REGIONAL_PREDICTORS), min_items=1, unique=True),
        "weight": choice("voters_on_rolls", "posts"),
        "n_permutations": integer(99, 1_000_000),
        "seed": SEED,
    },
    "simulate": {
        "seed": SEED,
        "settings": Rule("mapping", fields=SIMULATION_SETTINGS),
    },
    "race_models": {
        "formula_rhs": Rule("text"),
        "main_term": Rule("text"),
        "headline_model": choice(*HEADLINES),
        "n_boot": integer(99, 100_000),
        "boot_seed": SEED,
        "min_real_races": integer(2, 1_000_000),
        "min_real_clusters": integer(2, 1000),
    },
    "simulation_study": {
        "design": Rule("mapping", fields=STUDY_DESIGN),
        "sensitivity": Rule(
            "mapping",
            fields={
                "n_replications": integer(100, 100_000),
                "overdispersion_sd": Rule(
                    "list", item=SIMULATION_SETTINGS["overdispersion_sd"], min_items=1, unique=True
                ),
                "party_placement": Rule("list", item=SIMULATION_SETTINGS["party_placement"], min_items=1, unique=True),
            },
        ),
        "n_jobs": integer(-64, 64),
        "backend": choice("joblib", "dask"),
    },
    "forensics": {
        "n_sim": integer(100, 1_000_000),
        "seed": SEED,
        "tolerance_pp": number(0, 0.5, open_minimum=True),
        "smooth_pp": number(0, 10, open_minimum=True),
        "bins": integer(5, 500),
        "planted_fraction": number(0, 0.5),
        "min_real_races": integer(2, 1_000_000),
    },
    "report": {
        "title": Rule("text"),
    },
}


def stage_problems(stage: str, params: Mapping[str, Any]) -> list[str]:
    """Problems of the parameters a stage receives (``common`` plus its own section, as the runner passes them)."""
    rules = {**SCHEMA["common"], **SCHEMA.get(stage, {})}
    problems = mapping_problems(params, rules)
    if stage == "simulation_study" and params.get("n_jobs") == 0:
        problems.append("parameter 'n_jobs' must not be 0 (1 = in this process, -1 = all cores)")
    if (
        stage == "race_models"
        and isinstance(params.get("formula_rhs"), str)
        and isinstance(params.get("main_term"), str)
    ):
        terms = [term.strip() for term in params["formula_rhs"].split("+")]
        if params["main_term"] not in terms:
            problems.append(
                f"parameter 'main_term' must be one of the terms of formula_rhs ({', '.join(terms)}), "
                f"got {params['main_term']!r}"
            )
    return problems


def check_stage(stage: str, params: Mapping[str, Any]) -> None:
    """Raise ParameterError with one line naming the stage and every bad parameter."""
    problems = stage_problems(stage, params)
    if problems:
        raise ParameterError(f"stage '{stage}': " + "; ".join(problems))
