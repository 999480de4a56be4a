"""Race-level models (simulated races, or real race rows where enough are published).

A binomial GLM on ``[voted, registered - voted]`` with region-clustered errors and t(G-1) inference
(:func:`fit_race_glm`), its naive form for comparison, beta regression, GEE (exchangeable, bias-reduced) and a
linear mixed model on the empirical logit; a comparison table, race-level marginal effects and the headline chosen
by the simulation study. The wild cluster bootstrap is in :mod:`akim_turnout.models.resampling`.

statsmodels (0.15) behaviour this works around:

* GEE results always have ``use_t=False``; GEE ``fit`` returns ``None`` (with a ConvergenceWarning) when it fails.
* GEE's ``cov_type="bias_reduced"`` inverts ``I - H_gg`` per cluster, which is singular when the formula has a dummy
  per cluster (``C(region)``): it then fails or not depending on rounding noise. The bias-reduced covariance is
  computed by :func:`akim_turnout.models.inference.mancl_derouen_cov` (generalized inverse) instead. With ``weights``
  statsmodels' version also fails (a broadcasting error), so weighted GEE uses "robust".
* ``var_weights`` combined with a robust ``cov_type`` emits ``SpecificationWarning: cov_type not fully supported
  with var_weights`` even though the counts form gives identical numbers.
* IRLS on 10^6 x 17 designs peaks near 1.4 GB above the data (pinv/SVD copies); Newton on the analytic Hessian
  needs about 0.35 GB and half the time.
* ``BetaModel.fit`` (BFGS) stops at a gradient of about 1e-5 per observation, 1e-4 (relative) away from the
  optimum; Newton steps from there reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.genmod import cov_struct, families
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.othermod.betareg import BetaModel
from statsmodels.regression.mixed_linear_model import MixedLM

from akim_turnout.models.design import (
    parse_formula,
)
from akim_turnout.models.fastfit import PreparedRaces, logit_start, prepare_races
from akim_turnout.models.inference import (
    FitResult,
    average_marginal_effects,
    captured_warnings,
    effective_clusters,
    make_result,
    mancl_derouen_cov,
)
from akim_turnout.pipeline.parameters import HEADLINES


def race_average_marginal_effects(
    fit: FitResult,
    terms: Sequence[str] | None = None,
    electorate_weighted: bool = False,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Race-level AMEs in percentage points (see :func:`average_marginal_effects`).

    ``electorate_weighted=True`` averages over voters (weights = registered
    of each fitted race) rather than over races.
    """
    weights = fit.extra.get("_registered") if electorate_weighted else None
    if electorate_weighted and weights is None:
        raise ValueError(f"{fit.name}: no electorate stored for weighting")
    return average_marginal_effects(fit, terms, weights, alpha)


def _race_notes(data: PreparedRaces) -> list[str]:
    """Notes on dropped rows."""
    if not data.n_dropped:
        return []
    first = data.dropped[0]
    return [f"dropped {data.n_dropped} row(s) with missing values, e.g. row {first['row']}: {first['reason']}"]


def _race_result(
    name: str,
    family: str,
    formula: str,
    names: list[str],
    params: Any,
    cov: Any,
    df: float | None,
    *,
    caught: list[str],
    notes: list[str],
    **kwargs: Any,
) -> FitResult:
    """A race-level FitResult from a fit's parameters and covariance, labelled by ``names``."""
    return make_result(
        name,
        family,
        formula,
        pd.Series(np.asarray(params), index=names),
        pd.DataFrame(np.asarray(cov), index=names, columns=names),
        df,
        warnings=tuple(caught),
        notes=tuple(notes),
        **kwargs,
    )


def fit_counts_glm(
    endog: np.ndarray,
    exog: np.ndarray,
    solver: str,
    start: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    **fit_kwargs: Any,
) -> tuple[Any, list[str]]:
    """Binomial GLM on [voted, not voted]; Newton (low memory) or IRLS. Returns results and notes."""
    model = GLM(endog, exog, family=families.Binomial(), offset=offset)
    if solver == "irls":
        return model.fit(**fit_kwargs), []
    if solver != "newton":
        raise ValueError("solver must be 'newton' or 'irls'")
    # GLM.fit(method="newton") does not pass a `tol` on: Newton stops at statsmodels' own |step| <= 1e-8
    raw = model.fit(method="newton", start_params=start, max_start_irls=0, maxiter=100, **fit_kwargs)
    if raw.mle_retvals.get("converged", False) and np.all(np.isfinite(raw.params)):
        return raw, []
    return model.fit(**fit_kwargs), ["Newton did not converge to finite estimates; refitted by IRLS"]


def fit_race_glm(
    df: pd.DataFrame,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
    endog_form: str = "counts",
    robust: bool = True,
    solver: str = "newton",
    name: str | None = None,
) -> FitResult:
    """Binomial GLM of race turnout with region-clustered SEs and t inference.

    ``endog_form="counts"`` fits ``[voted, registered - voted]``;
    ``"share"`` fits ``voted / registered`` with ``var_weights=registered``
    (same estimates and clustered SEs; statsmodels then warns that cov_type
    is "not fully supported with var_weights", which is recorded).
    Clustered inference uses t with clusters - 1 df (statsmodels'
    ``df_resid_inference``). ``robust=False`` gives the naive binomial fit
    (see :func:`fit_race_naive_binomial`). ``solver="newton"`` keeps memory
    low on 10^6 rows; it falls back to IRLS if it does not converge.
    """
    data = prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_glm")
    start = logit_start(data.voted, data.registered, len(data.names))
    cov_kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": data.clusters}, "use_t": True} if robust else {}
    with captured_warnings() as caught:
        if endog_form == "counts":
            endog = np.column_stack([data.voted, data.registered - data.voted])
            raw, notes = fit_counts_glm(endog, data.exog, solver, start, **cov_kwargs)
        elif endog_form == "share":
            model = GLM(
                data.voted / data.registered, data.exog, family=families.Binomial(), var_weights=data.registered
            )
            raw, notes = model.fit(**cov_kwargs), []
        else:
            raise ValueError("endog_form must be 'counts' or 'share'")
    return _race_glm_result(raw, data, formula_rhs, robust, endog_form, caught, notes, name)


def _race_glm_result(
    raw: Any,
    data: PreparedRaces,
    formula_rhs: str,
    robust: bool,
    endog_form: str,
    caught: list[str],
    notes: list[str],
    name: str | None,
) -> FitResult:
    """Assemble a FitResult for a race-level binomial GLM."""
    names = data.names
    pearson = float(raw.pearson_chi2 / raw.df_resid)
    extra = {
        "mean_link": "logit",
        "design_columns": names,
        "endog_form": endog_form,
        "pearson_dispersion": pearson,
        "dropped_rows": data.n_dropped,
        "_registered": data.registered,
    }
    all_notes = _race_notes(data) + notes
    if not robust:
        all_notes.append(f"non-robust binomial SEs (Pearson chi2/df = {pearson:.1f}); for simulation comparison only")
    df_inference = getattr(raw, "df_resid_inference", None) if robust else None
    return _race_result(
        name or ("race_glm_cluster" if robust else "race_glm_naive"),
        "binomial GLM (logit)",
        f"[voted, registered - voted] ~ {formula_rhs}",
        names,
        raw.params,
        raw.cov_params(),
        df_inference,
        caught=caught,
        notes=all_notes,
        n_obs=int(raw.nobs),
        n_clusters=data.n_clusters if robust else None,
        cov_type="cluster" if robust else "nonrobust",
        extra=extra,
        raw=raw,
    )


def fit_race_naive_binomial(
    df: pd.DataFrame,
    formula_rhs: str,
    voted: str = "voted",
    registered: str = "registered",
    cluster: str = "region",
) -> FitResult:
    """Non-robust binomial GLM on counts: for simulation comparisons only, never for reporting."""
    return fit_race_glm(df, formula_rhs, cluster, voted, registered, robust=False, name="race_glm_naive")


def smithson_verkuilen(share: np.ndarray) -> np.ndarray:
    """Squeeze shares into (0, 1): ``(y (n - 1) + 0.5) / n`` with ``n`` the number of shares."""
    n = len(share)
    return (share * (n - 1) + 0.5) / n


def fit_race_beta(
    df: pd.DataFrame,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
) -> FitResult:
    """Beta regression (logit mean, constant precision) of race turnout shares.

    Shares are squeezed by :func:`smithson_verkuilen` (all of them, as the
    transform prescribes; ``BetaModel`` raises on exact 0 or 1); the number
    of shares at exactly 0 or 1 is in ``extra["n_boundary_squeezed"]``.
    Races count equally (no electorate weights). SEs are clustered by
    ``cluster`` with t inference on clusters - 1 df.
    """
    data = prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_beta")
    share = data.voted / data.registered
    n_boundary = int(np.sum((share == 0) | (share == 1)))
    model = BetaModel(smithson_verkuilen(share), data.exog)
    with captured_warnings() as caught:
        # BFGS (statsmodels' default) stops at a gradient of about 1e-5 per race, which left estimates 1e-4 and
        # p-values 1e-2 (relative) away from the optimum; Newton steps on the analytic Hessian finish the job.
        rough = model.fit(disp=False)
        raw = model.fit(
            method="newton",
            start_params=rough.params,
            maxiter=100,
            tol=1e-12,
            cov_type="cluster",
            cov_kwds={"groups": data.clusters},
            use_t=True,
            disp=False,
        )
    names = [*data.names, "precision"]
    notes = _race_notes(data) + [
        f"Smithson-Verkuilen squeeze applied to all {len(share)} shares; {n_boundary} were exactly 0 or 1"
    ]
    if not raw.mle_retvals.get("converged", True):
        notes.append("BetaModel optimiser did not converge")
    extra = {
        "mean_link": "logit",
        "design_columns": data.names,
        "n_boundary_squeezed": n_boundary,
        "precision_link": "log",
    }
    return _race_result(
        "race_beta",
        "beta regression (logit mean)",
        f"squeezed voted/registered ~ {formula_rhs}",
        names,
        raw.params,
        raw.cov_params(),
        raw.df_resid_inference,
        caught=caught,
        notes=notes,
        n_obs=len(share),
        n_clusters=data.n_clusters,
        cov_type="cluster",
        extra=extra,
        raw=raw,
    )


def fit_race_gee(
    df: pd.DataFrame,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
    weighted: bool = False,
    cov_type: str = "bias_reduced",
) -> FitResult:
    """GEE, binomial family, exchangeable correlation within ``cluster``, on turnout shares.

    ``weighted=True`` passes ``registered`` (rescaled to mean 1) as GEE case
    ``weights`` so races count by electorate. ``cov_type="bias_reduced"``
    (Mancl-DeRouen, suited to few clusters) is computed with a generalized
    inverse by :func:`akim_turnout.models.inference.mancl_derouen_cov`; it is
    unweighted only, so the weighted fit needs ``cov_type="robust"``.
    statsmodels reports normal inference for GEE; p-values and CIs here use t
    with clusters - 1 df instead (noted).
    """
    if cov_type not in ("bias_reduced", "robust"):
        raise ValueError(f"cov_type must be 'bias_reduced' or 'robust', got {cov_type!r}")
    if weighted and cov_type == "bias_reduced":
        raise ValueError("the bias-reduced GEE covariance is unweighted; use weighted=False or cov_type='robust'")
    data = prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_gee")
    weights = data.registered / data.registered.mean() if weighted else None
    model = GEE(
        data.voted / data.registered,
        data.exog,
        groups=data.clusters,
        family=families.Binomial(),
        cov_struct=cov_struct.Exchangeable(),
        weights=weights,
    )
    with captured_warnings() as caught:
        raw = model.fit(cov_type="robust")
        if raw is not None and cov_type == "bias_reduced":
            cov = mancl_derouen_cov(raw)
    if raw is None:
        raise RuntimeError(f"GEE failed to converge: {caught}")
    if cov_type != "bias_reduced":
        cov = np.asarray(raw.cov_params())
    names = data.names
    notes = _race_notes(data) + [f"t inference with {data.n_clusters - 1} df (statsmodels GEE uses normal)"]
    if cov_type == "bias_reduced":
        notes.append("Mancl-DeRouen covariance with a generalized inverse of I - H_gg (akim_turnout.models.inference)")
    extra = {
        "mean_link": "logit",
        "design_columns": names,
        "weighted": weighted,
        "exchangeable_correlation": float(np.ravel(raw.cov_struct.dep_params)[0]),
        "_registered": data.registered,
    }
    return _race_result(
        "race_gee",
        "GEE binomial (logit), exchangeable",
        f"voted/registered ~ {formula_rhs}",
        names,
        raw.params,
        cov,
        data.n_clusters - 1,
        caught=caught,
        notes=notes,
        n_obs=len(data.voted),
        n_clusters=data.n_clusters,
        cov_type=cov_type,
        extra=extra,
        raw=raw,
    )


def empirical_logit(voted: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """``log((voted + 0.5) / (registered - voted + 0.5))``, finite at 0 and 100 %."""
    return np.log((voted + 0.5) / (registered - voted + 0.5))


def fit_race_mixedlm(
    df: pd.DataFrame,
    formula_rhs: str,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
) -> FitResult:
    """Linear mixed model on the empirical logit with random intercepts by ``cluster``.

    Fixed effects must not include ``C(cluster)`` (it would duplicate the
    random intercept). MixedLM takes no weights: races count equally.
    Inference is normal (statsmodels' z) on the fixed effects; the
    between-region and residual variances are in ``extra``.
    """
    if parse_formula(formula_rhs).has_region(cluster):
        raise ValueError(f"fit_race_mixedlm: drop C({cluster}); it is the random intercept")
    data = prepare_races(df, formula_rhs, cluster, voted, registered, "fit_race_mixedlm")
    endog = empirical_logit(data.voted, data.registered)
    with captured_warnings() as caught:
        raw = MixedLM(endog, data.exog, groups=data.clusters).fit(reml=True)
    names = data.names
    k = len(names)
    notes = _race_notes(data) + ["unweighted; normal inference; empirical logit outcome"]
    if not raw.converged:
        notes.append("MixedLM did not converge")
    extra = {
        "mean_link": "identity (empirical logit)",
        "design_columns": names,
        "group_variance": float(np.asarray(raw.cov_re)[0, 0]),
        "residual_variance": float(raw.scale),
        "converged": bool(raw.converged),
    }
    return _race_result(
        "race_mixedlm",
        "linear mixed model (empirical logit)",
        f"emp_logit(voted, registered) ~ {formula_rhs}",
        names,
        raw.fe_params,
        np.asarray(raw.cov_params())[:k, :k],
        None,
        caught=caught,
        notes=notes,
        n_obs=len(endog),
        n_clusters=data.n_clusters,
        cov_type="model-based",
        extra=extra,
        raw=raw,
    )


def fit_or_not_estimable(
    fit: Callable[..., FitResult],
    df: pd.DataFrame,
    formula_rhs: str,
    *,
    name: str,
    cluster: str = "region",
    **kwargs: Any,
) -> FitResult:
    """``fit(df, formula_rhs, **kwargs)`` (one of the race-level families), or, where the data cannot be fitted
    by it (a singular covariance, no convergence, a boundary the family cannot take), a fit named ``name`` whose
    ``not_estimable`` gives the reason and whose estimates, over the formula's terms, are empty."""
    try:
        return fit(df, formula_rhs, **kwargs)
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
        reason = f"{type(error).__name__}: {error}" if isinstance(error, np.linalg.LinAlgError) else str(error)
    names = ["Intercept", *parse_formula(formula_rhs).mix_terms]
    return make_result(
        name,
        "not fitted",
        f"voted/registered ~ {formula_rhs}",
        pd.Series(np.nan, index=names),
        pd.DataFrame(np.nan, index=names, columns=names),
        None,
        n_obs=len(df),
        n_clusters=int(df[cluster].nunique()),
        cov_type="",
        extra={"not_estimable": reason},
    )


def comparison_table(results: Sequence[FitResult], terms: Sequence[str]) -> pd.DataFrame:
    """One long table of ``terms`` across fits (NaN where a fit lacks a term)."""
    rows = []
    for fit in results:
        table = fit.to_frame().set_index("term")
        for term in terms:
            row = table.loc[term].to_dict() if term in table.index else {"model": fit.name}
            rows.append(
                {
                    **row,
                    "term": term,
                    "cov_type": fit.cov_type,
                    "use_t": fit.use_t,
                    "df_resid": fit.df_resid,
                    "n_obs": fit.n_obs,
                    "n_clusters": fit.n_clusters,
                    "n_warnings": len(fit.warnings),
                }
            )
    columns = [
        "model",
        "term",
        "estimate",
        "std_error",
        "ci_lower",
        "ci_upper",
        "p_value",
        "cov_type",
        "use_t",
        "df_resid",
        "n_obs",
        "n_clusters",
        "n_warnings",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


# Which race-level fit carries each inference method of the simulation study (akim_turnout.study.montecarlo.METHODS).
STUDY_METHOD_FAMILIES = {
    "cluster_t": "glm",
    "wild_bootstrap": "wild_bootstrap",
    "gee_bias_reduced": "gee",
    "mixedlm": "mixedlm",
}


HEADLINE_CHOICES = HEADLINES


def cluster_small_sample_factor(n_obs: int, n_clusters: int, n_params: int) -> float:
    """statsmodels' factor on the cluster-robust covariance of a GLM: G / (G - 1) x (N - 1) / (N - K)."""
    return n_clusters / (n_clusters - 1) * (n_obs - 1) / (n_obs - n_params)


def race_headline(
    choice: str, recommended: str | None, fits: dict[str, FitResult], bootstrap: Any, term: str | None = None
) -> dict[str, Any]:
    """The race-level headline: the estimate and 95 % interval of the bootstrap's term from one family.

    ``choice`` is one of :data:`HEADLINE_CHOICES`; ``"recommended"`` takes the family of the method the
    simulation study recommends (``recommended``, a key of :data:`STUDY_METHOD_FAMILIES`). ``fits`` maps families
    (glm, beta, gee, mixedlm) to their fits; ``"wild_bootstrap"`` reports the GLM estimate with the bootstrap's
    test-inversion interval. Returns the family, its interval's description, estimate, bounds and the p-value for
    no effect; for the bootstrap also ``p_value_mc_se``, the Monte Carlo standard error of that p-value
    (``sqrt(p (1 - p) / B)`` over its ``B`` draws; None for the other families). ``term`` (the bootstrap's by
    default) is needed only when ``bootstrap`` is None.
    """
    if choice not in HEADLINE_CHOICES:
        raise ValueError(f"headline must be one of {', '.join(HEADLINE_CHOICES)}, got {choice!r}")
    if choice == "recommended":
        if recommended not in STUDY_METHOD_FAMILIES:
            raise ValueError(f"the simulation study recommends {recommended!r}, which has no race-level fit to report")
        family = STUDY_METHOD_FAMILIES[recommended]
    else:
        family = choice
    if bootstrap is None and (family == "wild_bootstrap" or term is None):
        raise ValueError(f"the {family} headline needs the wild cluster bootstrap (or a term)")
    term = bootstrap.term if bootstrap is not None else term
    if family == "wild_bootstrap":
        return {
            "family": family,
            "interval": f"wild cluster bootstrap, test inversion ({bootstrap.weights} weights, "
            f"{bootstrap.n_boot} draws, {bootstrap.n_clusters} clusters)",
            "estimate": bootstrap.estimate,
            "ci_lower": bootstrap.ci_lower,
            "ci_upper": bootstrap.ci_upper,
            "p_value": bootstrap.p_value,
            "p_value_mc_se": p_value_mc_se(bootstrap.p_value, bootstrap.n_boot),
        }
    row = fits[family].to_frame().set_index("term").loc[term]
    fit = fits[family]
    kind = f"t({fit.df_resid:g})" if fit.use_t else "normal"
    return {
        "family": family,
        "interval": f"{fit.cov_type} covariance, {kind} quantiles",
        "estimate": row["estimate"],
        "ci_lower": row["ci_lower"],
        "ci_upper": row["ci_upper"],
        "p_value": row["p_value"],
        "p_value_mc_se": None,
    }


def p_value_mc_se(p_value: float, n_draws: int) -> float:
    """Monte Carlo standard error of a resampling p-value estimated from ``n_draws`` draws: ``sqrt(p (1 - p) / B)``."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    if not 0 <= p_value <= 1:
        raise ValueError(f"p_value must be in [0, 1], got {p_value}")
    return float(np.sqrt(p_value * (1 - p_value) / n_draws))


def draws_for_mc_se(p_value: float, target: float) -> int:
    """The fewest draws that bring the Monte Carlo SE of a p-value near ``p_value`` to at most ``target``."""
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    return max(1, int(np.ceil(p_value * (1 - p_value) / target**2)))


def race_headlines(
    choice: str, methods: Sequence[str], fits: dict[str, FitResult], bootstrap: Any, term: str | None = None
) -> list[dict[str, Any]]:
    """The headline under each method the study does not tell apart, or under the chosen family.

    ``choice == "recommended"``: one :func:`race_headline` per study method of ``methods`` (the recommended one first,
    then those tied with it), each with its ``method``. Otherwise the single headline of the family ``choice``
    (``method``: the family)."""
    if choice != "recommended":
        return [{"method": choice, **race_headline(choice, None, fits, bootstrap, term=term)}]
    return [{"method": m, **race_headline(choice, m, fits, bootstrap, term=term)} for m in methods]


def headline_families(choice: str, methods: Sequence[str]) -> set[str]:
    """The families :func:`race_headlines` needs (``"wild_bootstrap"`` for the bootstrap)."""
    if choice != "recommended":
        return {choice}
    unknown = [m for m in methods if m not in STUDY_METHOD_FAMILIES]
    if unknown:
        raise ValueError(f"no race-level fit for the study method(s) {unknown}")
    return {STUDY_METHOD_FAMILIES[m] for m in methods}


FAMILY_FITS = ("glm", "beta", "gee", "mixedlm")


def fit_families(
    races: pd.DataFrame, formula_rhs: str, mixed_rhs: str, families: Sequence[str] = FAMILY_FITS
) -> dict[str, FitResult]:
    """The race-level fits of ``families`` (of :data:`FAMILY_FITS`; the mixed model on ``mixed_rhs``, its random
    intercept replacing the region dummies)."""
    unknown = sorted(set(families) - set(FAMILY_FITS))
    if unknown:
        raise ValueError(f"families must be among {', '.join(FAMILY_FITS)}, got {unknown}")
    makers = {
        "glm": lambda: fit_race_glm(races, formula_rhs),
        "beta": lambda: fit_race_beta(races, formula_rhs),
        "gee": lambda: fit_race_gee(races, formula_rhs),
        "mixedlm": lambda: fit_race_mixedlm(races, mixed_rhs),
    }
    return {family: makers[family]() for family in FAMILY_FITS if family in families}


def leave_one_cluster_out(
    races: pd.DataFrame,
    refit: Callable[[pd.DataFrame], Sequence[Mapping[str, Any]]],
    cluster: str = "region",
    registered: str = "registered",
    left_out: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """``refit`` on the races without each cluster in turn (the largest electorate first, or ``left_out``).

    ``refit`` takes the remaining races and returns rows (e.g. :func:`race_headlines`); each row gets ``left_out``
    (the cluster), ``n_races`` (races used) and ``voters_share_left_out`` (the left-out cluster's share of
    ``registered``).
    """
    if cluster not in races.columns or registered not in races.columns:
        raise ValueError(f"races needs the columns {cluster!r} and {registered!r}")
    voters = races.groupby(cluster, sort=True)[registered].sum()
    order = list(voters.sort_values(ascending=False, kind="stable").index) if left_out is None else list(left_out)
    unknown = [c for c in order if c not in voters.index]
    if unknown:
        raise ValueError(f"no races in cluster(s) {unknown}")
    rows = []
    for label in order:
        kept = races[races[cluster] != label]
        for row in refit(kept):
            rows.append(
                {
                    "left_out": label,
                    "n_races": len(kept),
                    "voters_share_left_out": float(voters[label] / voters.sum()),
                    **row,
                }
            )
    return pd.DataFrame(rows)


def race_effective_clusters(
    races: pd.DataFrame,
    formula_rhs: str,
    term: str,
    fit: FitResult,
    cluster: str = "region",
    voted: str = "voted",
    registered: str = "registered",
    rho: float = 0.0,
) -> dict[str, Any]:
    """The effective number of clusters (:func:`akim_turnout.models.inference.effective_clusters`) of ``term`` in
    the race GLM ``fit``, weighted by the GLM's working weights ``registered x mu (1 - mu)`` at its estimate.
    ``shares`` maps each cluster to its share of the variance contributions."""
    data = prepare_races(races, formula_rhs, cluster, voted, registered, "race_effective_clusters")
    params = fit.params.reindex(data.names).to_numpy(dtype=float)
    if np.isnan(params).any():
        raise ValueError("the fit's parameters do not match the formula's design")
    mu = 1 / (1 + np.exp(-(data.exog @ params)))
    weights = data.registered * mu * (1 - mu)
    result = effective_clusters(data.exog, data.clusters, data.names.index(term), weights=weights, rho=rho)
    labels = sorted(races.dropna(subset=[cluster])[cluster].unique())
    if len(labels) != data.n_clusters:
        raise ValueError("rows with missing predictors remove whole clusters; pass complete rows")
    return {**result, "shares": dict(zip(labels, (float(x) for x in result["shares"]), strict=True))}
