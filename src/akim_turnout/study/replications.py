"""Monte Carlo study of the race-level turnout estimators with only 14 clusters.

The 730 races of 25 July 2021 sit in 14 regions. Every race-level estimator
of :mod:`akim_turnout.models.race` either clusters by region (13 degrees of
freedom) or models regions as random effects. This module checks by
simulation whether their 95 % confidence intervals cover, whether their 5 %
tests have size 5 %, and how large an effect of the candidate mix (the
share of self-nominated candidates, ``self_share``) the real design detects
with 80 % power.

One *replication* draws a synthetic data set with
:func:`akim_turnout.study.simulate.simulate_from_margins` under a design (number
of regions and races) and a true ``beta_self_share`` from the effect grid
(every other setting held at the base settings), then fits every method:

========================  ====================================================================
``cluster_t``             binomial GLM on counts, region-clustered SEs, t(G - 1) inference
                          (:func:`race.fit_race_glm`)
``wild_bootstrap``        restricted wild cluster score bootstrap, Webb weights
                          (:func:`resampling.wild_cluster_bootstrap`); estimate = GLM estimate
``gee_bias_reduced``      GEE, exchangeable by region, Mancl-DeRouen covariance, t(G - 1)
                          (:func:`race.fit_race_gee`)
``mixedlm``               linear mixed model on the empirical logit, random region intercepts,
                          normal inference (:func:`race.fit_race_mixedlm`)
``naive_binomial``        binomial GLM with model-based SEs (:func:`race.fit_race_naive_binomial`)
========================  ====================================================================

Choices (stated once, used everywhere):

* **Target of each estimator.** Races carry normal noise on the logit scale,
  so the binomial GLM, the wild bootstrap (built on that GLM), GEE and the
  naive GLM estimate the *population-averaged* (attenuated) coefficient:
  their target is :func:`simulate.population_averaged_coefficients`.
  MixedLM on the empirical logit conditions on the region and works on the
  logit scale, so its target is the conditional
  :func:`simulate.true_coefficients`. Bias, RMSE and coverage are measured
  against the method's own target; tests are always of ``self_share = 0``,
  which is true for both targets exactly when the grid effect is 0.
* **Wild bootstrap coverage.** The bootstrap CI is a test inversion (all
  nulls not rejected at ``alpha`` with the same weight draws). Inverting it
  costs about 40 restricted fits; instead each replication runs the
  bootstrap test at the target value with the same draws, and the target
  is counted as covered when that test does not reject (``p >= alpha``), which is
  what the inverted CI would say. ``wild_bootstrap_ci=True`` computes the
  CI bounds too (about 7 times slower). The bootstrap has no standard error:
  ``se`` is NaN for it.
* **Designs other than the real one.** Start from the 14 allocated regional
  margins (:func:`simulate.allocate_region_margins`). Region ``g``
  (``g = 0 .. n_regions - 1``) copies the count margins of real region
  ``g mod 14`` and takes the *published turnout* of real region
  ``(g mod 14 + g // 14) mod 14``: the first 14 are the real regions, copies
  are renamed ``"<region> #2"`` etc. and get another region's turnout, so
  the spread of regional turnouts is the published one (no invented
  numbers). Fewer than 14 regions keep the first ``n_regions``. The margins
  are then scaled to ``n_races`` with :func:`simulate.scale_margins`
  (regional proportions, candidates and voters per post kept).
* **Seeds.** Replication ``r`` of effect ``e`` in design ``d`` uses
  ``numpy.random.SeedSequence([seed, d, e, r])`` for its simulation seed,
  so results do not depend on the number of workers, the backend or the
  order of execution. Its bootstrap uses the headline's weight draws
  (``boot_seed``, the stage's ``race_models.boot_seed``): the study measures
  the size and power of the very test the headline reports, conditional on
  its draws, and the B x G weight matrix is drawn once per worker, not once
  per test.
* **Minimum detectable effect.** Linear interpolation of the rejection rate
  over ``|effect|`` (grid values are the conditional ``beta_self_share`` of
  the simulator); converted to percentage points of turnout as
  ``|beta| x mean(s (1 - s)) x 100``, the mean taken over the simulated
  races (unweighted) of the design, ``s`` = race turnout. Since the races
  already carry their logit noise, this is the average marginal effect of
  moving a race from no to only self-nominated candidates.

Fit engines: the replications' fits go through :mod:`akim_turnout.models.fastfit`
(numpy, the same numbers as statsmodels to about 1e-11; ``engine="fast"``,
the default of :func:`run_study`) or through the statsmodels functions
named above (``engine="statsmodels"``). The fast engine hands the bootstrap
CI of ``wild_bootstrap_ci`` and any case it declines to statsmodels. The
default study's results frame is identical either way. The fast engine
draws each replication as arrays (:func:`draw_replication`: no table, no
winner votes, the margins checked once per design) and builds its design
from them (:func:`draw_arrays`, equal to ``race_arrays`` of its table), and
fits the replications of a worker in batches (:func:`run_batch`,
``batch_size``): the binomial GLMs of a batch run as one batched Newton
iteration, the GEEs as one batched iteration and the bootstrap tests as one
batch of restricted fits, each data set stopping on its own, so the results
do not depend on the batch size (tested); the GEEs' bias-reduced
covariances are one stack of padded cluster blocks, and the mixed model is
fitted one data set at a time.

The bootstrap is the headline's procedure: the same number of draws
(``race_models.n_boot``, passed by the stage), the same weights, test and
tie rule, the same weight draws (``boot_seed``); coverage is the inverted
interval's verdict (see above). Its draws cost little: the B x G weight
matrix is drawn once per worker, and the tests of a batch are two products
of their stacked cluster influences with it.

Cost (the default study on 2 cores, 2 workers, BLAS single-threaded, real
design, 9,999 draws): the 4,000 data sets of the study, every method, in
about 11 s (5.4 ms of CPU per data set), the sensitivity's 4,500 (three
methods) in about 9.5 s (4.2 ms). Of a data set's CPU time with every
method, roughly: the mixed model's BFGS replay 1.4 ms (scipy's line search
in Python), the draw 1.2 ms (per-region loops of random draws and integer
allocations), the GEE 0.6 ms and its bias-reduced covariance 0.6 ms, the
GLM 0.2 ms and the two bootstrap tests 0.5 ms; the rest is bookkeeping.
statsmodels is imported only where a fit goes to it, so a worker process
starts in about 0.6 s of CPU instead of 1.2 s.

Bias-reduced GEE: with region dummies in the formula, each region's block
``I - H_gg`` of the Mancl-DeRouen correction is singular in exact arithmetic
(the region's own dummy has leverage 1 inside it). statsmodels' own
``bias_reduced`` covariance then failed ("Singular matrix") or not depending
on rounding noise, so on different CPUs different replications failed. The
study uses :func:`akim_turnout.models.inference.mancl_derouen_cov` (generalized
inverse), which is the same on every machine. A fit that still raises is
kept as a row with ``ok=False`` and the error text; summaries count them
(``n - n_ok``).

Why one module of this size: the study design, the replication it defines (seeds, margins, methods) and
its parallel run are one unit; the results' summaries live in :mod:`akim_turnout.study.montecarlo`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from akim_turnout.models import fastfit, inference
from akim_turnout.models.formula import parse_formula
from akim_turnout.pipeline.outputs import stated_frame
from akim_turnout.pipeline.parameters import (
    STUDY_DESIGN,
    STUDY_DESIGN_SHARED,
    STUDY_EFFECT_TERM,
    default,
    mapping_problems,
)
from akim_turnout.study import simulate
from akim_turnout.study.montecarlo import (
    CLUSTER_ROBUST,
    MDE_KEYS,
    METHODS,
    RESULT_COLUMNS,
    SIZE_KEYS,
    method_standing,
    minimum_detectable_effect,
    summarise,
)

EFFECT_TERM = STUDY_EFFECT_TERM
EFFECT_SETTING = "beta_self_share"
# Fit engine of the replications: "fast" (akim_turnout.models.fastfit, the default) or "statsmodels". Both give the same
# rows to about 1e-12 (tests/models/fastfit/test_agreement_with_statsmodels.py); "fast" fits the methods of
# FAST_METHODS in numpy (wild_bootstrap without wild_bootstrap_ci) and hands any case it declines to statsmodels.
ENGINES = ("fast", "statsmodels")
# replications fitted together by the fast engine (run_batch); results do not depend on it (the whole default study
# on 2 workers: 20.6 s at 50, 21.9 s at 25)
DEFAULT_BATCH_SIZE = 50
FAST_METHODS = METHODS  # every method of the study has a numpy path


# --------------------------------------------------------------------------
# Study design
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DesignPoint:
    """One simulated design: ``n_regions`` clusters holding ``n_races`` races in all.

    ``n_replications``, if given, is this design's number of replications
    at every effect (it overrides both study-wide numbers).
    """

    n_regions: int
    n_races: int
    n_replications: int | None = None

    def label(self) -> str:
        """Short text such as ``'14 regions, 730 races'``."""
        return f"{self.n_regions} regions, {self.n_races} races"


@dataclass(frozen=True)
class StudyDesign:
    """Settings of the Monte Carlo study (the ``simulation_study`` section of params.yaml).

    Attributes:
        n_replications: data sets per design and non-zero effect (R).
        n_replications_null: data sets at effect 0, where size and coverage
            are judged (``None``: same as ``n_replications``).
        effect_grid: true ``beta_self_share`` values (logit scale,
            conditional); must contain 0 and lie on one side of it.
        designs: design points; the first is the reference (real) design
            used by :func:`power_curve`, :func:`recommend_method` and
            :func:`study_metrics`.
        n_boot: wild bootstrap replicates per test. Not in params.yaml's ``simulation_study.design``: the
            stage passes the headline's ``race_models.n_boot`` (:data:`parameters.STUDY_DESIGN_SHARED`), so the
            study tests the procedure the headline uses; a missing ``n_boot`` takes that value.
        boot_seed: seed of the bootstrap's weight draws, likewise the headline's ``race_models.boot_seed``: every
            test of the study uses the headline's weight matrix (the first ``n_clusters`` columns' worth of
            draws for its design), so the study measures the very test the headline reports, draws included.
        seed: root seed (non-negative integer).
        alpha: test level; CIs are ``1 - alpha``.
        methods: subset of :data:`METHODS`, in reporting order.
        method_replications: cap per method: the method is fitted only on
            replications ``r < cap`` (for slow or merely comparative
            methods); caps of methods not in ``methods`` are ignored.
        wild_bootstrap_ci: also invert the bootstrap test into a CI.
        wild_weights: ``"webb"`` or ``"rademacher"``.
    """

    # No defaults here: the default of every key is its value in params.yaml (simulation_study.design), the only
    # place a default is written; :meth:`from_params` builds the design from it.
    n_replications: int
    n_replications_null: int | None
    effect_grid: tuple[float, ...]
    designs: tuple[DesignPoint, ...]
    n_boot: int
    boot_seed: int
    seed: int
    alpha: float
    methods: tuple[str, ...]
    method_replications: tuple[tuple[str, int], ...]
    wild_bootstrap_ci: bool
    wild_weights: str

    def __post_init__(self) -> None:
        problems = _design_problems(self)
        if problems:
            raise ValueError("Invalid study design: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> StudyDesign:
        """Build a design from a plain mapping (a params.yaml section), checked against
        :data:`pipeline.parameters.STUDY_DESIGN`; unknown keys are refused. A missing key takes its value in
        params.yaml (``simulation_study.design``), the only place a default is written: this class has none.

        ``designs`` is a list of ``{n_regions, n_races[, n_replications]}``
        mappings; ``method_replications`` a mapping ``method -> cap``.
        """
        problems = mapping_problems(mapping, STUDY_DESIGN, "design", partial=True)
        if not problems and any(key not in mapping for key in STUDY_DESIGN):
            mapping = {**design_defaults(), **mapping}
        if problems:
            raise ValueError("Invalid study design: " + "; ".join(problems))
        converters: dict[str, Callable[[Any], Any]] = {
            "alpha": float,
            "effect_grid": lambda v: tuple(float(x) for x in v),
            "designs": lambda v: tuple(x if isinstance(x, DesignPoint) else DesignPoint(**x) for x in v),
            "methods": tuple,
            "method_replications": lambda v: tuple(dict(v).items()),
        }
        return cls(**{key: converters.get(key, lambda v: v)(value) for key, value in mapping.items()})

    @classmethod
    def from_params(cls, path: Any = None, **overrides: Any) -> StudyDesign:
        """The design of ``params.yaml`` (``simulation_study.design``; ``path``: another params file), with
        ``overrides`` (in this class's types: tuples, :class:`DesignPoint`) replacing single keys."""
        unknown = sorted(set(overrides) - set(STUDY_DESIGN))
        if unknown:
            raise ValueError(f"Invalid study design: unknown key(s) {', '.join(unknown)}")
        return replace(cls.from_mapping(design_defaults(path)), **overrides)

    def as_mapping(self) -> dict[str, Any]:
        """The design as params.yaml spells it (the inverse of :meth:`from_mapping`)."""
        return {
            "n_replications": self.n_replications,
            "n_replications_null": self.n_replications_null,
            "effect_grid": list(self.effect_grid),
            "designs": [{k: v for k, v in vars(p).items() if v is not None} for p in self.designs],
            "n_boot": self.n_boot,
            "boot_seed": self.boot_seed,
            "seed": self.seed,
            "alpha": self.alpha,
            "methods": list(self.methods),
            "method_replications": dict(self.method_replications),
            "wild_bootstrap_ci": self.wild_bootstrap_ci,
            "wild_weights": self.wild_weights,
        }

    def replications(self, design_index: int, effect: float) -> int:
        """Number of replications of design ``design_index`` at ``effect``.

        The design's own ``n_replications`` if set; else ``n_replications_null``
        (if set) at effect 0 and ``n_replications`` elsewhere.
        """
        point = self.designs[design_index]
        if point.n_replications is not None:
            return point.n_replications
        if effect == 0 and self.n_replications_null is not None:
            return self.n_replications_null
        return self.n_replications

    def methods_for(self, replication: int) -> tuple[str, ...]:
        """Methods fitted on replication ``replication`` (caps of ``method_replications`` applied)."""
        caps = dict(self.method_replications)
        return tuple(m for m in self.methods if replication < caps.get(m, replication + 1))


def design_defaults(path: Any = None) -> dict[str, Any]:
    """The default design: params.yaml's ``simulation_study.design`` with the keys it takes from other sections
    (:data:`parameters.STUDY_DESIGN_SHARED`: ``n_boot`` is ``race_models.n_boot``); ``path``: another params file."""
    shared = {key: default(section, name, path) for key, (section, name) in STUDY_DESIGN_SHARED.items()}
    return {**default("simulation_study", "design", path), **shared}


def _design_problems(d: StudyDesign) -> list[str]:
    """The violated constraints of a study design: each key's own rule (:data:`parameters.STUDY_DESIGN`), then
    the rules that involve several keys."""
    problems = mapping_problems(d.as_mapping(), STUDY_DESIGN, "design", partial=True)
    if problems:
        return problems
    grid = np.asarray(d.effect_grid, dtype=float)
    checks = [
        (0.0 in d.effect_grid, "effect_grid must contain 0 (size of the tests)"),
        (bool(np.all(grid <= 0) or np.all(grid >= 0)), "effect_grid must lie on one side of 0"),
        (all(p.n_races >= 2 * p.n_regions for p in d.designs), "each design needs n_races >= 2 * n_regions"),
    ]
    return [message for ok, message in checks if not ok]


# --------------------------------------------------------------------------
# Margins of the simulated designs and seeds
# --------------------------------------------------------------------------


def design_margins(base: pd.DataFrame, n_regions: int, n_races: int) -> pd.DataFrame:
    """Regional margins for a design, built from the allocated real margins (rule in the module docstring).

    Region ``g`` copies the count margins of base region ``g mod K`` and the
    turnout of base region ``(g mod K + g // K) mod K`` (``K`` base regions);
    copies are named ``"<region> #<copy>"``. The result is scaled to
    ``n_races`` posts with :func:`simulate.scale_margins` unless it already
    has that many.
    """
    if n_regions < 1 or n_races < n_regions:
        raise ValueError(f"need 1 <= n_regions <= n_races, got {n_regions}, {n_races}")
    base = base.reset_index(drop=True)
    k = len(base)
    g = np.arange(n_regions)
    source, copy = g % k, g // k
    out = base.iloc[source].reset_index(drop=True).copy()
    out["turnout_pct"] = base["turnout_pct"].to_numpy()[(source + copy) % k]
    out["region"] = [name if c == 0 else f"{name} #{c + 1}" for name, c in zip(out["region"], copy, strict=True)]
    if int(out["posts"].sum()) != n_races:
        out = simulate.scale_margins(out, n_races)
    return out


def replication_seeds(seed: int, design_index: int, effect_index: int, replication: int) -> tuple[int, int]:
    """Simulation and bootstrap seeds of one replication, from ``SeedSequence([seed, d, e, r])`` (the study's tasks
    replace the bootstrap seed by the headline's, :attr:`StudyDesign.boot_seed`)."""
    state = np.random.SeedSequence([seed, design_index, effect_index, replication]).generate_state(2)
    return int(state[0]), int(state[1])


# --------------------------------------------------------------------------
# One replication
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReplicationTask:
    """Everything a worker needs to run one replication (picklable)."""

    design_index: int
    n_regions: int
    n_races: int
    effect_index: int
    effect: float
    replication: int
    margins: pd.DataFrame
    settings: simulate.SimulationSettings
    methods: tuple[str, ...]
    seed: int
    n_boot: int = 99
    alpha: float = 0.05
    wild_ci: bool = False
    wild_weights: str = "webb"
    engine: str = "fast"
    formula_rhs: str | None = None  # what the methods fit (the stage: race_models.formula_rhs); None: true model
    margin_arrays: simulate.MarginArrays | None = None  # ``margins`` checked once (build_tasks); None: per draw
    # seed of the bootstrap's weight draws, common to every replication (the study: the headline's); None: the
    # replication's own (the second seed of replication_seeds)
    boot_seed: int | None = None

    @property
    def rhs(self) -> str:
        """The right-hand side the methods fit: ``formula_rhs`` in its canonical spelling, or, when None, the
        data-generating model's (:func:`simulate.true_formula_rhs`)."""
        if self.formula_rhs is None:
            return simulate.true_formula_rhs(self.settings)
        return parse_formula(self.formula_rhs).rhs

    @property
    def fixed_rhs(self) -> str:
        """The fixed effects of the mixed model: :attr:`rhs` without ``C(region)`` (the random intercept)."""
        formula = parse_formula(self.rhs)
        return formula.without([term.name for term in formula.categorical if term.column == "region"]).rhs


def build_tasks(
    design: StudyDesign,
    base_settings: simulate.SimulationSettings,
    regions: pd.DataFrame,
    national: Mapping[str, float],
    engine: str = "fast",
    formula_rhs: str | None = None,
) -> list[ReplicationTask]:
    """All replications of the study, ordered by design, effect and replication (fitted with ``engine``); every
    method fits ``formula_rhs`` (the stage passes ``race_models.formula_rhs``; None: the data-generating model's
    right-hand side)."""
    if formula_rhs is not None:
        formula_rhs = parse_formula(formula_rhs).rhs
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    base = simulate.allocate_region_margins(
        regions, national, base_settings.unknown_posts_rule, base_settings.min_candidates
    )
    tasks = []
    for d, point in enumerate(design.designs):
        margins = design_margins(base, point.n_regions, point.n_races)
        checked = simulate.check_margins(margins, base_settings)  # the effect changes no minimum
        for e, effect in enumerate(design.effect_grid):
            settings = replace(base_settings, **{EFFECT_SETTING: float(effect)})
            for r in range(design.replications(d, effect)):
                tasks.append(
                    ReplicationTask(
                        d,
                        point.n_regions,
                        point.n_races,
                        e,
                        float(effect),
                        r,
                        margins,
                        settings,
                        design.methods_for(r),
                        design.seed,
                        design.n_boot,
                        design.alpha,
                        design.wild_bootstrap_ci,
                        design.wild_weights,
                        engine,
                        formula_rhs,
                        checked,
                        design.boot_seed,
                    )
                )
    return tasks


def _wald(fit: inference.FitResult, target: float, alpha: float) -> dict[str, Any]:
    """Estimate, SE, (1 - alpha) CI, p-value and coverage of EFFECT_TERM from a fitted model."""
    estimate, se = float(fit.params[EFFECT_TERM]), float(fit.bse[EFFECT_TERM])
    half = inference.quantile(1 - alpha / 2, fit.df_resid) * se
    low, high = estimate - half, estimate + half
    not_converged = any(w.startswith("ConvergenceWarning") for w in fit.warnings)
    if "converged" in fit.extra:
        not_converged = not_converged or not fit.extra["converged"]
    return {
        "estimate": estimate,
        "se": se,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(fit.pvalues[EFFECT_TERM]),
        "covered": bool(low <= target <= high),
        "converged": not not_converged,
        "n_warnings": len(fit.warnings),
    }


def _fit_wild(races: pd.DataFrame, task: ReplicationTask, target: float, boot_seed: int) -> dict[str, Any]:
    """Bootstrap test of 0 (p-value) and, with the same weight draws, coverage of the target."""
    from akim_turnout.models import resampling  # statsmodels: see _fit_method

    rhs = task.rhs
    common = {"n_boot": task.n_boot, "seed": boot_seed, "weights": task.wild_weights, "alpha": task.alpha}
    with inference.captured_warnings() as caught:
        null = resampling.wild_cluster_bootstrap(races, rhs, EFFECT_TERM, null_value=0.0, ci=task.wild_ci, **common)
        if task.wild_ci:
            covered = bool(null.ci_lower <= target <= null.ci_upper)
        elif target == 0.0:
            covered = bool(null.p_value >= task.alpha)
        else:
            at_target = resampling.wild_cluster_bootstrap(
                races, rhs, EFFECT_TERM, null_value=target, ci=False, **common
            )
            covered = bool(at_target.p_value >= task.alpha)
    return {
        "estimate": null.estimate,
        "se": math.nan,
        "ci_low": null.ci_lower,
        "ci_high": null.ci_upper,
        "p_value": null.p_value,
        "covered": covered,
        "converged": not any(w.startswith("ConvergenceWarning") for w in caught),
        "n_warnings": len(caught),
    }


def _fast_wald(estimate: float, variance: float, df: float | None, target: float, alpha: float) -> dict[str, Any]:
    """What :func:`_wald` returns for a fit without warnings, from the estimate and variance of EFFECT_TERM."""
    se = math.sqrt(variance)
    if df is None:
        p_value, low, high = (float(x) for x in fastfit.normal_inference(estimate, se, alpha))
    else:
        p_value, low, high = (float(x) for x in fastfit.t_inference(estimate, se, df, alpha))
    return {
        "estimate": float(estimate),
        "se": se,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "covered": bool(low <= target <= high),
        "converged": True,
        "n_warnings": 0,
    }


def _fit_fast(
    method: str,
    races: simulate.RaceDraw | pd.DataFrame,
    task: ReplicationTask,
    target: float,
    boot_seed: int,
    cache: dict[str, Any],
) -> dict[str, Any]:
    """:func:`_fit_method` by :mod:`akim_turnout.models.fastfit`; raises ``FastPathDeclined`` for the statsmodels path.

    ``cache`` holds the replication's arrays and GLM fit (shared by cluster_t, naive_binomial and the bootstrap,
    whose estimates are therefore identical, as with statsmodels).
    """
    if method == "wild_bootstrap" and task.wild_ci:
        raise fastfit.FastPathDeclined(
            "bootstrap CI by test inversion is computed by resampling.wild_cluster_bootstrap"
        )
    if method == "mixedlm":  # fixed effects without C(region): the random intercept takes its place
        arrays = _fixed_arrays(races, task, cache)
        mixed = fastfit.fit_random_intercept_reml(arrays, fastfit.empirical_logit(arrays.voted, arrays.registered))
        params, cov, df = mixed.params, mixed.cov_params, None
    else:
        if "arrays" not in cache:
            cache["arrays"] = draw_arrays(races, task.rhs)
        arrays = cache["arrays"]
        if method == "gee_bias_reduced":
            gee = cache.get("gee") or fastfit.fit_gee_exchangeable(arrays)  # fitted in the batch (_fit_batch)
            cov = cache.get("gee_cov")  # computed in the batch too
            for result in (gee, cov):
                if isinstance(result, fastfit.FastPathDeclined):
                    raise fastfit.FastPathDeclined(str(result))
            params, df = gee.params, arrays.n_clusters - 1
            cov = gee.cov_bias_reduced if cov is None else cov
        else:
            if "glm" not in cache:
                cache["glm"] = fastfit.fit_counts_glm(arrays)
            glm = cache["glm"]
            if isinstance(glm, fastfit.FastPathDeclined):  # declined in the batch (_fit_batch)
                raise fastfit.FastPathDeclined(str(glm))
            params = glm.params
            cov = glm.cov_naive if method == "naive_binomial" else glm.cov_cluster
            df = None if method == "naive_binomial" else glm.df_resid_inference
    k = arrays.names.index(EFFECT_TERM)
    # statsmodels' path takes the square root of every variance and counts the warning a negative one raises
    if not (np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)):
        raise fastfit.FastPathDeclined("non-positive or non-finite variance")
    if method != "wild_bootstrap":
        return _fast_wald(params[k], cov[k, k], df, target, task.alpha)
    done = cache.get("bootstrap", {})  # tests already run in the batch (_fit_batch), by null value

    def p_at(null_value: float) -> float:
        if null_value not in done:
            draws = weight_draws(boot_seed, task.n_boot, arrays.n_clusters, task.wild_weights)
            done[null_value] = fastfit.score_bootstrap(arrays, k, null_value, draws, params)
        if isinstance(done[null_value], fastfit.FastPathDeclined):
            raise fastfit.FastPathDeclined(str(done[null_value]))
        return done[null_value][1]

    p_value = p_at(0.0)
    at_target = p_value if target == 0.0 else p_at(target)
    return {
        "estimate": float(params[k]),
        "se": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": p_value,
        "covered": bool(at_target >= task.alpha),
        "converged": True,
        "n_warnings": 0,
    }


def _fixed_arrays(
    races: simulate.RaceDraw | pd.DataFrame, task: ReplicationTask, cache: dict[str, Any]
) -> fastfit.RaceArrays:
    """The mixed model's design (:attr:`ReplicationTask.fixed_rhs`): the replication's arrays of
    :attr:`~ReplicationTask.rhs` without the columns of the region term. These are the columns
    ``race_arrays(races, fixed_rhs)`` builds, in its order, on the same rows (the region is the cluster either
    way); built directly where those arrays are not at hand."""
    arrays = cache.get("arrays")
    if arrays is None:
        return draw_arrays(races, task.fixed_rhs)
    formula = parse_formula(task.rhs)
    prefixes = tuple(f"{term.name}[" for term in formula.categorical if term.column == "region")
    keep = [i for i, name in enumerate(arrays.names) if not (prefixes and name.startswith(prefixes))]
    return fastfit.RaceArrays(
        arrays.exog[:, keep],
        [arrays.names[i] for i in keep],
        arrays.voted,
        arrays.registered,
        arrays.clusters,
        arrays.n_clusters,
    )


@functools.lru_cache(maxsize=4)
def weight_draws(seed: int, n_boot: int, n_clusters: int, weights: str) -> np.ndarray:
    """:func:`fastfit.wild_weight_draws`, drawn once per worker for the study's common bootstrap seed (read-only)."""
    draws = fastfit.wild_weight_draws(seed, n_boot, n_clusters, weights)
    draws.flags.writeable = False
    return draws


# methods whose fast path starts from the replication's binomial GLM (fitted for a whole batch at once), and the
# methods fitted for a whole batch at once (those and the GEE)
_GLM_METHODS = frozenset({"cluster_t", "naive_binomial", "wild_bootstrap"})
_BATCHED_METHODS = _GLM_METHODS | {"gee_bias_reduced"}


def _fit_batch(
    tasks: Sequence[ReplicationTask],
    simulated: Sequence[tuple[simulate.RaceDraw | pd.DataFrame, int, int]],
    caches: Sequence[dict[str, Any]],
) -> None:
    """Fit what the fast engine can fit for many replications at once, into each replication's ``cache``.

    Replications whose design arrays have one shape and the same columns (one design point) are stacked: their
    binomial GLMs run as one batched Newton iteration (:func:`fastfit.fit_counts_glm_batch`), their GEEs as one
    batched iteration (:func:`fastfit.fit_gee_exchangeable_batch`, same cluster codes) with their bias-reduced
    covariances (:func:`fastfit.mancl_derouen_batch`), and their wild
    bootstrap tests (of 0 and, at a non-zero effect, of the target, each with its task's weight draws)
    as one batch of restricted fits (:func:`fastfit.score_bootstrap_batch`). Each replication's numbers are those
    of its own fits, whatever the batch (each data set stops its iteration on its own), so the results do not depend
    on the batch size. Declined fits are stored as :class:`fastfit.FastPathDeclined` and handed on to statsmodels
    by :func:`_fit_fast`; anything that raises here is left to the replication's own fits, which record it.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, task in enumerate(tasks):
        if task.engine != "fast" or not _BATCHED_METHODS & set(task.methods):
            continue
        try:
            arrays = caches[i]["arrays"] = draw_arrays(simulated[i][0], task.rhs)
        except Exception:  # noqa: BLE001 - the replication's own fit raises it again and records it
            continue
        groups.setdefault((arrays.exog.shape, tuple(arrays.names), arrays.clusters.tobytes()), []).append(i)
    with inference.captured_warnings():  # the regular case warns nothing; a declined one is refitted and counted
        for members in groups.values():
            gee = [i for i in members if "gee_bias_reduced" in tasks[i].methods]
            try:
                gee_fits = fastfit.fit_gee_exchangeable_batch([caches[i]["arrays"] for i in gee])
            except Exception:  # noqa: BLE001 - left to each replication's own fit, which records it
                gee_fits = [None] * len(gee)
            for i, fit in zip(gee, gee_fits, strict=True):
                if fit is not None:
                    caches[i]["gee"] = fit
            fitted = [(i, fit) for i, fit in zip(gee, gee_fits, strict=True) if isinstance(fit, fastfit.GEEFit)]
            if fitted:
                try:
                    covariances = fastfit.mancl_derouen_batch(
                        [fit.arrays for _, fit in fitted],
                        np.stack([fit.params for _, fit in fitted]),
                        np.array([fit.dep_param for _, fit in fitted]),
                    )
                except Exception:  # noqa: BLE001 - left to each replication's own fit, which records it
                    covariances = [None] * len(fitted)
                for (i, _), cov in zip(fitted, covariances, strict=True):
                    if cov is not None:
                        caches[i]["gee_cov"] = cov
            members = [i for i in members if _GLM_METHODS & set(tasks[i].methods)]
            fits = fastfit.fit_counts_glm_batch([caches[i]["arrays"] for i in members])
            requests = []  # (replication, null value) of every bootstrap test
            for i, fit in zip(members, fits, strict=True):
                caches[i]["glm"] = fit
                task = tasks[i]
                if "wild_bootstrap" in task.methods and not task.wild_ci and isinstance(fit, fastfit.CountsGLM):
                    target = method_target("wild_bootstrap", task.settings)
                    requests += [(i, 0.0)] + ([(i, target)] if target != 0.0 else [])
            if not requests:
                continue
            k = caches[members[0]]["arrays"].names.index(EFFECT_TERM)
            draws = {
                i: weight_draws(simulated[i][2], tasks[i].n_boot, caches[i]["arrays"].n_clusters, tasks[i].wild_weights)
                for i in dict.fromkeys(i for i, _ in requests)
            }
            results = fastfit.score_bootstrap_batch(
                [caches[i]["arrays"] for i, _ in requests],
                k,
                [null for _, null in requests],
                [draws[i] for i, _ in requests],
                np.stack([caches[i]["glm"].params for i, _ in requests]),
            )
            for (i, null), result in zip(requests, results, strict=True):
                caches[i].setdefault("bootstrap", {})[null] = result


def _fit_method(
    method: str,
    races: simulate.RaceDraw | pd.DataFrame,
    task: ReplicationTask,
    target: float,
    boot_seed: int,
    cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit one method to one simulated data set; returns the inference columns of a result row.

    With ``task.engine == "fast"`` the methods of :data:`FAST_METHODS` go through :func:`_fit_fast` (``cache``:
    a dict shared by the fits of one replication), falling back to statsmodels where it declines.
    """
    if task.engine == "fast" and method in FAST_METHODS:
        try:
            return _fit_fast(method, races, task, target, boot_seed, {} if cache is None else cache)
        except fastfit.FastPathDeclined:
            pass
    # statsmodels only here and in _fit_wild: worker processes of the fast engine never import it
    from akim_turnout.models import race

    races = _table(races, task)
    rhs = task.rhs
    if method == "cluster_t":
        return _wald(race.fit_race_glm(races, rhs), target, task.alpha)
    if method == "naive_binomial":
        return _wald(race.fit_race_naive_binomial(races, rhs), target, task.alpha)
    if method == "gee_bias_reduced":
        return _wald(race.fit_race_gee(races, rhs, cov_type="bias_reduced"), target, task.alpha)
    if method == "mixedlm":
        return _wald(race.fit_race_mixedlm(races, task.fixed_rhs), target, task.alpha)
    if method == "wild_bootstrap":
        return _fit_wild(races, task, target, boot_seed)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


@functools.lru_cache(maxsize=256)  # settings are frozen; the pandas Series behind a target cost more than a fast fit
def method_target(method: str, settings: simulate.SimulationSettings) -> float:
    """True value a method estimates: conditional for MixedLM, population-averaged otherwise."""
    truth = (
        simulate.true_coefficients(settings)
        if method == "mixedlm"
        else (simulate.population_averaged_coefficients(settings))
    )
    return float(truth[EFFECT_TERM])


def simulate_replication(task: ReplicationTask) -> tuple[pd.DataFrame, int, int]:
    """The simulated races of a task as a table, with its simulation and bootstrap seeds."""
    sim_seed, boot_seed = _seeds(task)
    return simulate.draw_races(_checked_margins(task), task.settings, sim_seed).frame(), sim_seed, boot_seed


def draw_replication(task: ReplicationTask) -> tuple[simulate.RaceDraw, int, int]:
    """The simulated races of a task as arrays (:class:`simulate.RaceDraw`, without the winner votes no method
    uses), with its simulation and bootstrap seeds; the same data set as :func:`simulate_replication`."""
    sim_seed, boot_seed = _seeds(task)
    return simulate.draw_races(_checked_margins(task), task.settings, sim_seed, winners=False), sim_seed, boot_seed


def _seeds(task: ReplicationTask) -> tuple[int, int]:
    """The task's simulation seed and its bootstrap seed (the design's common one where set)."""
    sim_seed, boot_seed = replication_seeds(task.seed, task.design_index, task.effect_index, task.replication)
    return sim_seed, boot_seed if task.boot_seed is None else task.boot_seed


def _checked_margins(task: ReplicationTask) -> simulate.MarginArrays:
    """The task's margins as checked arrays: checked once for the whole study (build_tasks), else here."""
    if task.margin_arrays is not None:
        return task.margin_arrays
    return simulate.check_margins(task.margins, task.settings)


def draw_arrays(races: simulate.RaceDraw | pd.DataFrame, rhs: str) -> fastfit.RaceArrays:
    """The design of ``rhs`` on a simulated data set: built from the draw's arrays (regions coded in sorted order),
    the same arrays as :func:`fastfit.race_arrays` of its table (tested); a table goes to ``race_arrays``."""
    if not isinstance(races, simulate.RaceDraw):
        return fastfit.race_arrays(races, rhs)
    columns = races.columns()
    levels = sorted(races.regions)
    rank = {name: code for code, name in enumerate(levels)}
    region_codes = np.array([rank[name] for name in races.regions], dtype=np.int64)[races.race_region]
    numeric = {name: values for name, values in columns.items() if name != "region"}
    try:
        return fastfit.arrays_from_columns(numeric, {"region": (region_codes, levels)}, rhs)
    except fastfit.FastPathDeclined:  # e.g. a numeric column as a category: the table's general path
        return fastfit.race_arrays(pd.DataFrame(columns), rhs)


def _table(races: simulate.RaceDraw | pd.DataFrame, task: ReplicationTask) -> pd.DataFrame:
    """A simulated data set as the table the statsmodels paths fit (a draw is tabulated by drawing it again, whole)."""
    return simulate_replication(task)[0] if isinstance(races, simulate.RaceDraw) else races


def run_replication(
    task: ReplicationTask,
    simulated: tuple[simulate.RaceDraw | pd.DataFrame, int, int] | None = None,
    cache: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Simulate one data set and fit every method of the task: one result row per method.

    ``simulated`` (the task's :func:`simulate_replication`) and ``cache`` (fits already made for it by
    :func:`_fit_batch`) come from :func:`run_batch`; without them the replication does everything itself, with
    the same results.

    Row columns are :data:`RESULT_COLUMNS`. ``covered``: the method's target
    lies in its ``1 - alpha`` CI; ``rejected``: ``p_value < alpha`` for the
    test of ``self_share = 0``; ``ok``: the fit raised nothing and gave a
    finite estimate and p-value; ``converged``: no ConvergenceWarning (and,
    for MixedLM, statsmodels' converged flag); ``n_warnings``: distinct
    warnings during the fit. A fit that raises gives a row with ``ok=False``
    and the exception in ``error``.
    """
    races, sim_seed, boot_seed = draw_replication(task) if simulated is None else simulated
    if isinstance(races, pd.DataFrame):
        races.attrs = {}  # no fit reads the simulator's notes, and pandas deep-copies them on every column access
        share = races["voted"].to_numpy(dtype=float) / races["registered"].to_numpy(dtype=float)
    else:
        share = races.voted / races.registered
    base = {
        "design_index": task.design_index,
        "n_regions": task.n_regions,
        "n_races": task.n_races,
        "effect_index": task.effect_index,
        "effect": task.effect,
        "replication": task.replication,
        "sim_seed": sim_seed,
        "term": EFFECT_TERM,
        "mean_pq": float(np.mean(share * (1 - share))),
    }
    rows = []
    cache = {} if cache is None else cache
    for method in task.methods:
        target = method_target(method, task.settings)
        try:
            # warnings raised outside the models' own capture (e.g. sqrt of a negative
            # variance of another term) are counted here instead of being printed
            with inference.captured_warnings() as caught:
                out = _fit_method(method, races, task, target, boot_seed, cache)
            out["n_warnings"] += len(caught)
            out["converged"] = out["converged"] and not any(w.startswith("ConvergenceWarning") for w in caught)
            error = ""
        except Exception as exc:  # a failed fit is a simulation outcome, recorded, not fatal
            out = {
                "estimate": math.nan,
                "se": math.nan,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "p_value": math.nan,
                "covered": False,
                "converged": False,
                "n_warnings": 0,
            }
            error = f"{type(exc).__name__}: {exc}"
        ok = not error and math.isfinite(out["estimate"]) and math.isfinite(out["p_value"])
        if not error and not ok:
            error = "non-finite estimate or p-value"
        rows.append(
            {
                **base,
                "method": method,
                "target": target,
                **out,
                "rejected": bool(out["p_value"] < task.alpha),
                "ok": ok,
                "error": error,
            }
        )
    return [{column: row[column] for column in RESULT_COLUMNS} for row in rows]


def run_batch(tasks: Sequence[ReplicationTask]) -> list[dict[str, Any]]:
    """Result rows of several replications, simulated first and then fitted together where the fast engine can
    (:func:`_fit_batch`); each replication's rows are those :func:`run_replication` gives it alone."""
    simulated = [draw_replication(task) for task in tasks]
    caches: list[dict[str, Any]] = [{} for _ in tasks]
    _fit_batch(tasks, simulated, caches)
    return [
        row
        for task, data, cache in zip(tasks, simulated, caches, strict=True)
        for row in run_replication(task, data, cache)
    ]


def run_chunk(tasks: Sequence[ReplicationTask], batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict[str, Any]]:
    """Result rows of several replications (the unit of work sent to a worker), in batches of ``batch_size``
    (:func:`run_batch`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [row for start in range(0, len(tasks), batch_size) for row in run_batch(tasks[start : start + batch_size])]


# --------------------------------------------------------------------------
# The whole study
# --------------------------------------------------------------------------


def chunk_tasks(tasks: Sequence[ReplicationTask], n_chunks: int) -> list[list[ReplicationTask]]:
    """Deal tasks round-robin into at most ``n_chunks`` non-empty chunks (balances slow designs)."""
    n_chunks = max(1, min(n_chunks, len(tasks)))
    return [list(tasks[i::n_chunks]) for i in range(n_chunks)]


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Result rows as a frame at stated precision, sorted by design, effect, replication and method order.

    Summaries are computed from these stated values, so they do not depend on the last bits of any fit.
    """
    frame = stated_frame(pd.DataFrame(list(rows), columns=list(RESULT_COLUMNS)), whole_as_int=False)
    order = frame["method"].map({m: i for i, m in enumerate(METHODS)})
    keys = frame[["design_index", "effect_index", "replication"]].assign(_m=order)
    sorted_index = keys.sort_values(["design_index", "effect_index", "replication", "_m"], kind="stable").index
    return frame.loc[sorted_index].reset_index(drop=True)


def _n_workers(n_jobs: int) -> int:
    """Worker count with joblib's convention (-1 = all cores)."""
    import joblib

    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0")
    return n_jobs if n_jobs > 0 else max(1, joblib.cpu_count() + 1 + n_jobs)


def _progress(iterable: Iterable[Any], total: int, enabled: bool) -> Iterable[Any]:
    from tqdm import tqdm  # text bar: works in terminals and notebooks without ipywidgets

    return tqdm(iterable, total=total, disable=not enabled, desc="replication chunks")


def _run_joblib(
    chunks: list[list[ReplicationTask]], n_jobs: int, progress: bool, batch_size: int
) -> list[dict[str, Any]]:
    from joblib import Parallel, delayed

    work = functools.partial(run_chunk, batch_size=batch_size)
    if n_jobs == 1:
        results = (work(chunk) for chunk in chunks)
    else:
        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
        results = parallel(delayed(work)(chunk) for chunk in chunks)
    return [row for rows in _progress(results, len(chunks), progress) for row in rows]


def _run_dask(
    chunks: list[list[ReplicationTask]], n_workers: int, progress: bool, client: Any, batch_size: int
) -> list[dict[str, Any]]:
    from distributed import Client, LocalCluster, as_completed

    def gather(active: Any) -> list[dict[str, Any]]:
        futures = active.map(functools.partial(run_chunk, batch_size=batch_size), chunks, pure=False)
        return [row for future in _progress(as_completed(futures), len(futures), progress) for row in future.result()]

    if client is not None:
        return gather(client)
    with (
        LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as own,
    ):
        return gather(own)


def run_study(
    design: StudyDesign,
    base_settings: simulate.SimulationSettings,
    regions: pd.DataFrame,
    national: Mapping[str, float],
    n_jobs: int = 1,
    backend: str = "joblib",
    progress: bool = False,
    client: Any = None,
    chunks_per_worker: int = 4,
    engine: str = "fast",
    formula_rhs: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """Run every replication of the study; one row per design x effect x replication x method.

    Every method fits ``formula_rhs`` (the stage passes the race models' ``race_models.formula_rhs``, so the study
    validates the model the race stage fits; None fits the data-generating model's right-hand side).
    ``regions`` and ``national`` are the published regional table and
    national totals (as for :func:`simulate.simulate_races`). Backends:
    ``"joblib"`` (loky processes; ``n_jobs=1`` runs in this process) or
    ``"dask"`` (``client`` if given, else a ``LocalCluster`` of ``n_jobs``
    single-threaded worker processes created and closed here). Tasks go in
    ``chunks_per_worker`` chunks per worker. Seeds depend only on the
    design, so the frame (sorted by :func:`results_frame`) is identical
    whatever the backend, ``n_jobs``, chunking or ``batch_size`` (replications a worker fits together with the
    fast engine, :func:`run_batch`). ``engine``: see :data:`ENGINES`.

    Notes: loky and dask worker processes run BLAS single-threaded (both set
    ``OPENBLAS_NUM_THREADS=1`` etc. in their workers); with ``n_jobs=1`` the
    fits run in this process, where multi-threaded OpenBLAS on these small
    matrices slowed fits up to 30-fold on a busy 2-core machine: set
    ``OPENBLAS_NUM_THREADS=1`` before Python starts. Worker processes are
    spawned, so a script using them needs the ``if __name__ == "__main__":``
    guard. Warning counts are captured with ``warnings.catch_warnings``,
    which is not thread-safe: on a multi-threaded dask worker ``n_warnings``
    may be miscounted.
    """
    if backend not in ("joblib", "dask"):
        raise ValueError("backend must be 'joblib' or 'dask'")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    tasks = build_tasks(design, base_settings, regions, national, engine, formula_rhs)
    workers = _n_workers(n_jobs)
    chunks = chunk_tasks(tasks, workers * max(1, chunks_per_worker))
    if backend == "joblib":
        rows = _run_joblib(chunks, n_jobs, progress, batch_size)
    else:
        rows = _run_dask(chunks, workers, progress, client, batch_size)
    return results_frame(rows)


def sensitivity_scenarios(
    base_settings: simulate.SimulationSettings, grid: Mapping[str, Sequence[Any]]
) -> list[tuple[str, Any, simulate.SimulationSettings]]:
    """One-at-a-time scenarios: ``("base", "", base)`` first, then for each setting of ``grid`` (in order) each of
    its values other than the base value, with every other setting at the base. Returns
    ``(dimension, value, settings)`` triples."""
    unknown = [key for key in grid if not hasattr(base_settings, key)]
    if unknown:
        raise ValueError(f"unknown simulator setting(s) in the sensitivity grid: {unknown}")
    scenarios: list[tuple[str, Any, simulate.SimulationSettings]] = [("base", "", base_settings)]
    for key, values in grid.items():
        for value in values:
            if value != getattr(base_settings, key):
                scenarios.append((key, value, replace(base_settings, **{key: value})))
    return scenarios


def sensitivity(
    design: StudyDesign,
    base_settings: simulate.SimulationSettings,
    regions: pd.DataFrame,
    national: Mapping[str, float],
    grid: Mapping[str, Sequence[Any]],
    methods: Sequence[str],
    n_replications: int,
    power: float = 0.8,
    base_results: pd.DataFrame | None = None,
    **run_options: Any,
) -> pd.DataFrame:
    """Size, lowest coverage and MDE of ``methods`` at the real design, one simulator setting moved at a time.

    The scenarios are :func:`sensitivity_scenarios` of ``grid`` (the noise SD over its estimate's interval, the
    placement of party nominees, and the within-region dependence: ``slope_sd``, ``district_share``,
    ``mix_endogeneity``). Each reruns the study for ``methods`` on the first design with ``n_replications`` data sets
    per effect, the same effect grid and the same seeds (settings compared on common random numbers); the base
    scenario's data sets are therefore the first ``n_replications`` of each effect of the study itself, and with
    ``base_results`` (the :func:`run_study` results of ``design`` at ``base_settings``) their rows are taken from
    there instead of being fitted again (the same rows: tested). One row per
    scenario and method: ``dimension``, ``value``, size with its exact interval and ``size_ok``, the lowest coverage
    over the non-zero effects with its interval, and the MDE (logit and percentage points) with its Monte Carlo
    interval (:func:`minimum_detectable_effect`). ``run_options`` go to :func:`run_study`.
    """
    rows = []
    reduced = replace(
        design,
        designs=design.designs[:1],
        methods=tuple(m for m in METHODS if m in methods),
        n_replications=n_replications,
        n_replications_null=n_replications,
        method_replications=(),
    )
    for dimension, value, settings in sensitivity_scenarios(base_settings, grid):
        results = _base_rows(base_results, reduced) if dimension == "base" else None
        if results is None:
            results = run_study(reduced, settings, regions, national, **run_options)
        summary = summarise(results)
        for method in reduced.methods:
            mde = minimum_detectable_effect(summary, method, power=power, alpha=design.alpha)
            standing = method_standing(summary[summary["method"] == method], design.alpha)
            rows.append(
                {
                    "dimension": dimension,
                    "value": str(value),
                    "method": method,
                    "n_replications": n_replications,
                    **{key: standing[key] for key in (*SIZE_KEYS, "size_ok")},
                    **{key: standing[key] for key in ("coverage_min", "coverage_min_low", "coverage_min_high")},
                    "acceptable": standing["acceptable"],
                    **{key: mde[key] for key in MDE_KEYS},
                }
            )
    return pd.DataFrame(rows)


def _base_rows(results: pd.DataFrame | None, reduced: StudyDesign) -> pd.DataFrame | None:
    """The rows of the study's ``results`` that the ``reduced`` design (its first design point, methods and
    ``n_replications`` data sets per effect, same seeds) would fit; None when they are not all there."""
    if results is None:
        return None
    n = reduced.n_replications
    rows = results[
        (results["design_index"] == 0) & results["method"].isin(reduced.methods) & (results["replication"] < n)
    ]
    expected = len(reduced.effect_grid) * n * len(reduced.methods)
    grid = np.asarray(reduced.effect_grid, dtype=float)
    if len(rows) != expected or not np.array_equal(np.sort(rows["effect"].unique()), np.sort(grid)):
        return None
    return rows.reset_index(drop=True)


def holds_under(table: pd.DataFrame, method: str) -> dict[str, list[str]]:
    """Where the recommended ``method`` stays acceptable in a :func:`sensitivity` table: scenarios
    (``"dimension=value"``) in which it meets the recommendation rule's size and coverage criteria
    (:func:`akim_turnout.study.montecarlo.method_standing` at that scenario's numbers of data sets: ``holds``), and
    the others (``fails``)."""
    rows = table[table["method"] == method]
    ok = rows["acceptable"].astype(bool)
    name = rows["dimension"].where(rows["dimension"] == "base", rows["dimension"] + "=" + rows["value"].astype(str))
    return {"holds": name[ok].tolist(), "fails": name[~ok].tolist()}


def sensitivity_methods(methods: Sequence[str], recommended: Sequence[str]) -> list[str]:
    """The methods the sensitivity table reruns: the cluster-robust ones of the study and every recommended one
    (the headline's method, and any it is tied with), in the study's order."""
    wanted = set(CLUSTER_ROBUST) | set(recommended)
    return [m for m in methods if m in wanted]


def sensitivity_summary(table: pd.DataFrame, recommended: str, n_replications: int) -> dict[str, Any]:
    """What the numbers file keeps of a :func:`sensitivity` table for the recommended method: the scenarios where it
    stays acceptable and where not (:func:`holds_under`), its MDE range over the scenarios and at the base settings,
    and its row per scenario."""
    own = table[table["method"] == recommended]
    if own.empty:
        raise ValueError(f"the sensitivity table has no rows of the recommended method {recommended!r}")
    holds = holds_under(table, recommended)
    base = own[own["dimension"] == "base"]
    columns = ["dimension", "value", "size", "size_low", "size_high", "coverage_min", "coverage_min_low", "mde_pp"]
    return {
        "settings": int(table[["dimension", "value"]].drop_duplicates().shape[0]),
        "n_replications": n_replications,
        "methods": list(dict.fromkeys(table["method"])),
        "holds": holds["holds"],
        "fails": holds["fails"],
        "mde_pp_min": own["mde_pp"].min(),
        "mde_pp_max": own["mde_pp"].max(),
        "mde_pp_chosen": base["mde_pp"].iloc[0] if len(base) else math.nan,
        "recommended": own[columns].to_dict("records"),
    }
