"""Every parameter of ``params.yaml``: its type, range and allowed values, checked before a stage does any work.

The runner checks a stage's parameters against :data:`SCHEMA` before it starts the notebook's kernel, so a bad value
stops the stage at once with one line naming the stage and the parameter, e.g.::

    error: stage 'regional_model': parameter 'n_permutations' must be an integer from 99 to 1000000, got -5

This is the one declaration of every parameter: its name (the key), its rule (type, range or allowed values) and a
short human label (:attr:`Rule.label`, :func:`label`). Its default is its value in ``params.yaml`` and is written
nowhere else (:func:`default`); the notebooks' parameter cells are tested equal to ``params.yaml``, and the classes
built from a section (:class:`study.simulate.SimulationSettings`, :class:`study.replications.StudyDesign`)
have no defaults of their own: built from a mapping, a missing key is an error, and ``from_params`` fills keys from
``params.yaml``. The allowed values of the categorical parameters, with the words readers see for them, are declared
here once (:data:`REGIONAL_PREDICTORS`, :data:`REGIONAL_WEIGHTS`, :data:`HEADLINES`, :data:`STUDY_METHOD_LABELS`);
:mod:`akim_turnout.report.labels` and the modules that branch on them take them from here.
``tests/pipeline/test_parameters.py`` fails, naming the parameter, where a default or a choice list is written a second
time.

The simulator's ``settings`` and the study's ``design`` are checked key by key here as well; the classes that use
them take their rules from this module and add only the checks that involve several keys at once. A right-hand side
(``race_models.formula_rhs``) is parsed by :func:`akim_turnout.models.formula.parse_formula`, the parser the fits use.

A stage may read a parameter of another stage's section (:data:`SHARED`): the simulation study fits the race
models' ``formula_rhs`` and runs their wild bootstrap with the same number of draws (``n_boot``); the runner
passes them with the stage's own keys, and ``dvc.yaml`` lists them in the stage's ``params``. This module imports
nothing heavy (``params.yaml`` is read only when :func:`default` is called), so the runner stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akim_turnout.models.formula import FormulaError, parse_formula


class ParameterError(ValueError):
    """A parameter value breaks its rule; the message names stage and parameter."""


@dataclass(frozen=True)
class Rule:
    """What one parameter may be.

    ``kind``: ``"integer"``, ``"number"``, ``"boolean"``, ``"text"``, ``"list"`` or ``"mapping"``. Numbers may have
    ``minimum`` / ``maximum`` (inclusive unless ``open_minimum``); text may have ``choices``; a list has an ``item``
    rule and ``min_items``; a mapping has ``fields`` (every key known; missing keys allowed when ``partial``).
    ``nullable`` admits ``null``. ``label`` is the parameter as readers see it ("permutations of the regional test").
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
    label: str = ""

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


def integer(minimum: float | None = None, maximum: float | None = None, *, label: str = "") -> Rule:
    return Rule("integer", minimum, maximum, label=label)


def number(
    minimum: float | None = None, maximum: float | None = None, *, open_minimum: bool = False, label: str = ""
) -> Rule:
    return Rule("number", minimum, maximum, open_minimum, label=label)


def choice(*values: Any, kind: str = "text", label: str = "") -> Rule:
    return Rule(kind, choices=tuple(values), label=label)


def boolean(label: str = "") -> Rule:
    return Rule("boolean", label=label)


def text(label: str = "") -> Rule:
    return Rule("text", label=label)


def seed(label: str = "random seed") -> Rule:
    return integer(0, 2**32 - 1, label=label)


# The allowed values of the categorical parameters, each with the words readers see for it (akim_turnout.report.labels).
FIGURE_FORMATS = ("png", "pdf", "svg")
REGIONAL_PREDICTORS = {
    "cands_per_seat": "candidates per post",
    "self_share": "self-nominated share",
    "women_share": "women's share",
}
REGIONAL_WEIGHTS = {"voters_on_rolls": "electorate-weighted", "posts": "posts-weighted"}
# the candidate count of a regional specification: one stage, or either stage with an indicator of the stage
COUNTING_STAGES = {
    "registered": "registered candidates only",
    "on ballot": "candidates on the ballot only",
    "either + stage indicator": "registered or on the ballot, with an indicator of the stage",
}
HEADLINES = {
    "recommended": "the method the simulation study recommends",
    "glm": "binomial GLM, cluster-robust",
    "wild_bootstrap": "wild cluster bootstrap",
    "gee": "GEE, bias-reduced",
    "mixedlm": "mixed model (empirical logit)",
    "beta": "beta regression",
}
STUDY_METHOD_LABELS = {
    "cluster_t": "cluster-robust GLM with t(G-1)",
    "wild_bootstrap": "wild cluster bootstrap",
    "gee_bias_reduced": "GEE with bias-reduced covariance",
    "mixedlm": "mixed model on the empirical logit",
    "naive_binomial": "naive binomial GLM",
}
STUDY_METHODS = tuple(STUDY_METHOD_LABELS)  # reporting order
# the methods whose intervals allow for clustering by region (the candidates for the recommendation)
CLUSTER_ROBUST_METHODS = ("cluster_t", "wild_bootstrap", "gee_bias_reduced")
WILD_WEIGHTS = ("webb", "rademacher")

SIMULATION_SETTINGS = {
    "beta_cands": number(-5, 5, label="true effect of the number of candidates (logit)"),
    "cands_scale": choice("log", "count", label="scale of the number of candidates in the true model"),
    "beta_self_share": number(-5, 5, label="true effect of the self-nominated share (logit)"),
    "beta_women": number(-5, 5, label="true effect of a woman on the ballot (logit)"),
    "overdispersion_sd": number(0, 5, label="SD of race-level noise (logit)"),
    "voters_sd_log": number(0, 5, label="spread of race electorates (log-normal SD)"),
    # at most 2: the published 2021 margins have fewer than 3 candidates per post in Atyrau, Kostanay and Mangystau
    "min_candidates": integer(1, 2, label="least candidates per race"),
    # at most 900: the 2021 regional margins have 901.8 voters per post in the region with the fewest
    "min_registered": integer(1, 900, label="least voters per race"),
    "unknown_posts_rule": choice("equal", label="how regions without published posts share the remainder"),
    "binomial_sampling": boolean("votes drawn as binomial counts"),
    "dirichlet_concentration": number(0, 1000, open_minimum=True, label="Dirichlet concentration of vote splits"),
    "party_placement": choice("spread", "random", label="placement of party nominees over a region's races"),
    "cands_spread_sd": number(0, 5, label="spread of candidates per race where no distribution is published"),
    "slope_sd": number(0, 5, label="SD over regions of the self-nominated share's effect (random slope, logit)"),
    "district_share": number(0, 1, label="share of the race noise variance common to a district"),
    "district_races": integer(1, 1000, label="races per district"),
    "mix_endogeneity": number(-1, 1, label="correlation of the candidate mix with the race's turnout noise"),
}
# The simulator settings the sensitivity analysis varies one at a time (each list holds the base value), in order.
SENSITIVITY_DIMENSIONS = ("overdispersion_sd", "party_placement", "slope_sd", "district_share", "mix_endogeneity")

# keys of the study's design that params.yaml does not hold in simulation_study.design: the stage takes them from
# another section (SHARED), so the study runs the headline's procedure; design key -> (section, key)
STUDY_DESIGN_SHARED = {"n_boot": ("race_models", "n_boot"), "boot_seed": ("race_models", "boot_seed")}

STUDY_DESIGN = {
    "n_replications": integer(2, 100_000, label="data sets per non-zero effect"),
    "n_replications_null": Rule("integer", 2, 100_000, nullable=True, label="data sets at effect 0"),
    "effect_grid": Rule(
        "list", item=number(-5, 5), min_items=2, unique=True, label="true effects of the self-nominated share"
    ),
    "designs": Rule(
        "list",
        min_items=1,
        item=Rule(
            "mapping",
            partial=True,
            fields={
                # at most 100: a design copies the 14 regions, and beyond about 100 copies the smallest keep a
                # post each only with some 10,000 races or more (see tests/test_parameter_space.py)
                "n_regions": integer(2, 100, label="regions (clusters)"),
                "n_races": integer(4, 1_000_000, label="races"),
                "n_replications": Rule("integer", 2, 100_000, nullable=True, label="data sets of this design"),
            },
        ),
        label="design points (the real design first)",
    ),
    # not in params.yaml's design: the stage passes race_models.n_boot (SHARED), so the study tests the headline's
    # procedure; this rule checks a design built in code (fewer draws for a quick study)
    "n_boot": integer(19, 100_000, label="wild bootstrap draws per test"),
    # likewise race_models.boot_seed: every test of the study uses the headline's weight draws
    "boot_seed": seed("seed of the wild bootstrap's weight draws"),
    "seed": seed(),
    "alpha": number(0, 0.5, open_minimum=True, label="test level"),
    "methods": Rule("list", item=choice(*STUDY_METHODS), min_items=1, unique=True, label="inference methods"),
    "method_replications": Rule(
        "mapping",
        partial=True,
        fields={m: integer(2, 100_000) for m in STUDY_METHODS},
        label="caps on the data sets of slow methods",
    ),
    "wild_bootstrap_ci": boolean("invert the wild bootstrap test into an interval"),
    "wild_weights": choice(*WILD_WEIGHTS, label="wild bootstrap weights"),
}

SCHEMA: dict[str, dict[str, Rule]] = {
    "common": {
        "dpi": integer(50, 600, label="raster resolution of figures (dpi)"),
        "figure_formats": Rule(
            "list", item=choice(*FIGURE_FORMATS), min_items=1, unique=True, label="figure file formats"
        ),
    },
    "regional_model": {
        "main_predictor": choice(*REGIONAL_PREDICTORS, label="predictor of the main regional model"),
        "mix_predictors": Rule(
            "list",
            item=choice(*REGIONAL_PREDICTORS),
            min_items=1,
            unique=True,
            label="predictors of the candidate-mix regional model",
        ),
        "weight": choice(*REGIONAL_WEIGHTS, label="weight of the weighted regional model"),
        "counting_stage": choice(*COUNTING_STAGES, label="candidate count of the default specification"),
        "n_permutations": integer(
            99, 1_000_000, label="permutations of the regional test and of the joint test of the specification curve"
        ),
        "seed": seed(),
    },
    "simulate": {
        "seed": seed(),
        "settings": Rule("mapping", fields=SIMULATION_SETTINGS, label="the true model behind the simulated races"),
    },
    "race_models": {
        "formula_rhs": text("right-hand side of the race-level models"),
        "main_term": text("term the headline estimate is about"),
        "headline_model": choice(*HEADLINES, label="model of the headline estimate"),
        "n_boot": integer(99, 100_000, label="wild bootstrap draws"),
        "boot_seed": seed("seed of the wild bootstrap"),
        "min_real_races": integer(2, 1_000_000, label="least real races to fit"),
        "min_real_clusters": integer(2, 1000, label="least regions among the real races to fit"),
    },
    "simulation_study": {
        "design": Rule(
            "mapping",
            fields={key: value for key, value in STUDY_DESIGN.items() if key not in STUDY_DESIGN_SHARED},
            label="design of the simulation study",
        ),
        "sensitivity": Rule(
            "mapping",
            fields={
                "n_replications": integer(100, 100_000, label="data sets per effect and setting"),
                **{
                    key: Rule(
                        "list",
                        item=SIMULATION_SETTINGS[key],
                        min_items=1,
                        unique=True,
                        label=SIMULATION_SETTINGS[key].label,
                    )
                    for key in SENSITIVITY_DIMENSIONS
                },
            },
            label="simulator settings of the sensitivity analysis",
        ),
        "n_jobs": integer(-64, 64, label="parallel workers"),
        "backend": choice("joblib", "dask", label="parallel backend"),
    },
    "forensics": {
        "n_sim": integer(100, 1_000_000, label="Monte Carlo draws of the binomial null"),
        "seed": seed(),
        # below 0.5: at 0.5 pp every turnout is within the tolerance of an integer (the test refuses it)
        "tolerance_pp": number(0, 0.49, open_minimum=True, label="tolerance of an integer turnout (pp)"),
        "smooth_pp": number(0, 10, open_minimum=True, label="smoothing of the turnout histogram (pp)"),
        "bins": integer(5, 500, label="histogram bins"),
        "planted_fraction": number(0, 0.5, label="share of simulated races pushed to integer turnout"),
        "min_real_races": integer(2, 1_000_000, label="least real races to examine"),
    },
    "report": {
        "title": text("title of the report"),
    },
}

# Parameters a stage reads from another stage's section: stage -> ((section, key), ...). The runner passes them with
# the stage's own keys (akim_turnout.pipeline.runner), dvc.yaml lists them as ``section.key`` in the stage's params.
SHARED: dict[str, tuple[tuple[str, str], ...]] = {
    "simulation_study": (("race_models", "formula_rhs"), ("race_models", "n_boot"), ("race_models", "boot_seed")),
}

# the term whose effect the simulation study varies (its true value is the setting beta_self_share)
STUDY_EFFECT_TERM = "self_share"


def stage_rules(stage: str) -> dict[str, Rule]:
    """The rules of every parameter a stage receives: ``common``, its own section and what it shares."""
    rules = {**SCHEMA["common"], **SCHEMA.get(stage, {})}
    rules.update({key: SCHEMA[section][key] for section, key in SHARED.get(stage, ())})
    return rules


def rule(section: str, key: str) -> Rule:
    """The rule of ``section.key``; KeyError naming it if no such parameter is declared."""
    try:
        return SCHEMA[section][key]
    except KeyError:
        raise KeyError(
            f"no parameter '{section}.{key}' is declared in akim_turnout.pipeline.parameters.SCHEMA"
        ) from None


def label(section: str, key: str) -> str:
    """A parameter as readers see it: ``label("regional_model", "n_permutations")`` -> 'permutations of ...'."""
    return rule(section, key).label or key


def default(section: str, key: str | None = None, path: Any = None) -> Any:
    """The default of a parameter (or of a whole section): its value in ``params.yaml``, the only place a default
    is written. ``path`` reads another params file."""
    from akim_turnout.pipeline.paths import load_params  # lazy: PyYAML is read only here

    params = load_params(path)
    if section not in params:
        raise KeyError(f"params.yaml has no section {section!r}")
    if key is None:
        return params[section]
    if key not in params[section]:
        raise KeyError(f"params.yaml has no parameter '{section}.{key}'")
    return params[section][key]


def formula_problems(value: Any, name: str = "formula_rhs") -> list[str]:
    """Why a right-hand side cannot be fitted (by the parser every fit uses), or nothing."""
    if not isinstance(value, str):
        return []
    try:
        parse_formula(value)
    except FormulaError as error:
        return [f"parameter '{name}' is not a formula the models can fit: {error}"]
    return []


def stage_problems(stage: str, params: Mapping[str, Any]) -> list[str]:
    """Problems of the parameters a stage receives (``common`` plus its own section and what it shares, as the
    runner passes them)."""
    problems = mapping_problems(params, stage_rules(stage))
    if stage == "simulation_study" and params.get("n_jobs") == 0:
        problems.append("parameter 'n_jobs' must not be 0 (1 = in this process, -1 = all cores)")
    methods = (params.get("design") or {}).get("methods") if stage == "simulation_study" else None
    if isinstance(methods, (list, tuple)) and methods and not set(methods) & set(CLUSTER_ROBUST_METHODS):
        # the study recommends a method for the race models' headline among the cluster-robust ones
        problems.append(
            f"parameter 'design.methods' must include a cluster-robust method ({', '.join(CLUSTER_ROBUST_METHODS)}), "
            f"among which the study recommends the headline's; got {list(methods)!r}"
        )
    rhs = params.get("formula_rhs")
    formula_bad = formula_problems(rhs)
    problems += formula_bad
    if not formula_bad and isinstance(rhs, str):
        terms = parse_formula(rhs).names
        if stage == "race_models" and isinstance(params.get("main_term"), str):
            main = params["main_term"]
            canonical = parse_formula(main).names[0] if not formula_problems(main) else main
            single = parse_formula(rhs).mix_terms  # a C(...) term has one coefficient per level: no one estimate
            if canonical not in single:
                problems.append(
                    f"parameter 'main_term' must be one of the terms of formula_rhs with one coefficient "
                    f"({', '.join(single)}), got {main!r}"
                )
        if stage == "simulation_study" and STUDY_EFFECT_TERM not in terms:
            problems.append(
                f"parameter 'formula_rhs' (race_models) must contain {STUDY_EFFECT_TERM}, the term whose effect "
                f"the simulation study varies; got {rhs!r}"
            )
    return problems


def check_stage(stage: str, params: Mapping[str, Any]) -> None:
    """Raise ParameterError with one line naming the stage and every bad parameter."""
    problems = stage_problems(stage, params)
    if problems:
        raise ParameterError(f"stage '{stage}': " + "; ".join(problems))


def stage_params(stage: str, path: str | Path | None = None) -> dict[str, Any]:
    """The ``common`` section merged with the stage's own section (a stage without choices has none) and the keys
    it reads from other sections (:data:`SHARED`); a key in two of them is an error."""
    from akim_turnout.pipeline.paths import load_params  # lazy: PyYAML is read only here

    params = load_params(path)
    common = params.get("common") or {}
    own = params.get(stage) or {}
    shared = {key: (params.get(section) or {}).get(key) for section, key in SHARED.get(stage, ())}
    clash = sorted((set(common) & set(own)) | ((set(common) | set(own)) & set(shared)))
    if clash:
        raise ValueError(f"params.yaml: {', '.join(clash)} set in both 'common' and {stage!r}")
    return {**common, **own, **shared}
