"""Seeded race-level simulator for the rural akim elections of 25 July 2021.

The published record is regional (14 regions) and incomplete. This module
turns it into a synthetic data set with one row per contested post ("race")
and a known logit model of race-level turnout. What is reproduced exactly (by
construction): every region's posts, candidates, party/self-nominated and
women candidates and voters where published (the rest allocated by stated
rules), its turnout to within half a vote, and the published numbers of posts
with k candidates of Akmola (registered), Kyzylorda and Mangystau (on the
ballot). What is fitted: the spread of candidates per post elsewhere
(:func:`fit_candidate_spread`) and the race noise SD (from the published
*interim* turnouts, :func:`interim_noise_estimate`). What is assumed: the
placement of party nominees and women on races (only checked against the
few races of other rounds that publish a split), the electorates' spread, the
true effects, and the within-region dependence (none at the defaults: region
slopes, district effects and an endogenous mix are sensitivity settings).
:func:`published_comparison` lists each match with its kind. Fitting the models of
:mod:`akim_turnout.models.race` to such data shows whether they recover the
effects that were put in.

Pipeline:

1. :func:`allocate_region_margins` completes the regional table by stated,
   documented rules (each filled value is flagged ``assumed``).
2. :func:`simulate_races` (or :func:`simulate_scaled` for larger synthetic
   data sets) draws the races with ``numpy.random.default_rng(seed)``;
   :func:`draw_races` is the same draw as arrays (:class:`RaceDraw`), from
   margins checked once (:func:`check_margins`), as the simulation study
   uses it thousands of times.
3. :func:`true_coefficients` returns the effects used, keyed by the term
   names the models report; :func:`population_averaged_coefficients` the
   attenuated marginal effects a binomial GLM should recover.

Why one module of this size: it is one generative model; its settings, the allocation of unpublished
margins and the drawing of races share private helpers (largest-remainder rounding, group offsets), and split
in two each half would reach into the other's internals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from akim_turnout.pipeline.parameters import SIMULATION_SETTINGS, default, mapping_problems

PUBLISHED = "published"
ASSUMED = "assumed"
MARGIN_COLUMNS = (
    "posts",
    "cands",
    "cands_party",
    "cands_self",
    "cands_women",
    "voters_on_rolls",
)
NATIONAL_KEYS = MARGIN_COLUMNS
RACE_COLUMNS = (
    "race_id",
    "region",
    "registered",
    "voted",
    "n_candidates",
    "n_party",
    "n_self",
    "n_women",
    "self_share",
    "any_self",
    "women_share",
    "any_woman",
    "winner_votes",
    "valid_votes",
)
UNKNOWN_POSTS_RULES = SIMULATION_SETTINGS["unknown_posts_rule"].choices
# Published posts by number of candidates (data/raw: posts_with_<k>_cands), the counts a region's races must have.
DISTRIBUTION_SIZES = (2, 3, 4, 5, 6)
DISTRIBUTION_COLUMNS = tuple(f"posts_with_{k}_cands" for k in DISTRIBUTION_SIZES)
# Logit-scale search interval for the regional intercepts; wide enough for any
# published turnout strictly between 0 and 100 %.
_ALPHA_BRACKET = (-50.0, 50.0)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationSettings:
    """True effects and noise of the simulated races.

    Attributes:
        beta_cands: effect on logit turnout of the number of candidates,
            through ``log(n_candidates)`` (``cands_scale="log"``) or the
            count itself (``cands_scale="count"``).
        cands_scale: ``"log"`` or ``"count"``.
        beta_self_share: effect of the share of self-nominated candidates.
        beta_women: effect of at least one woman standing (``any_woman``).
        overdispersion_sd: SD of the race-level normal noise on the logit
            scale (extra-binomial variation between races); its default is
            the estimate from the published interim within-region turnouts
            (:func:`interim_noise_estimate`; a test keeps params.yaml equal
            to it at two decimals).
        voters_sd_log: SD of log race electorate sizes (log-normal spread).
        min_candidates: candidates every race has at least.
        min_registered: voters every race has at least.
        unknown_posts_rule: how regions without published posts share the
            national remainder; only ``"equal"`` is implemented.
        binomial_sampling: draw votes as Binomial(registered, p) before the
            exact regional calibration (else use expected votes).
        dirichlet_concentration: concentration of the symmetric Dirichlet
            that splits valid votes among candidates.
        party_placement: how a region's party nominees fall on its races:
            ``"spread"`` (as evenly as possible: a race gets a second one
            only when every race has one; the ruling party alone nominated
            candidates for 588 of the 730 posts, so at least about 80 % of
            races had a party nominee, which ``"random"`` placement, about
            75 %, falls short of) or ``"random"`` (any candidate slot of the
            region, independently).
        cands_spread_sd: spread of the candidate counts of a region without a published distribution (see
            :func:`candidate_counts_rule`); fitted to the published distributions by
            :func:`fit_candidate_spread` (a test keeps params.yaml equal to the fit).
        slope_sd: SD over regions of the effect of the self-nominated share (a random slope: region ``r`` has
            ``beta_self_share + slope_sd * u_r``, ``u_r ~ N(0, 1)``); 0 = one slope for all regions.
        district_share: share of the race noise variance common to a district inside the region (the
            intra-district correlation of the noise; the total noise SD stays ``overdispersion_sd``).
        district_races: races per district (consecutive races of a region form a district).
        mix_endogeneity: correlation (Gaussian copula) between a race's noise and its self-nominated share within
            its region: the region's candidate mixes are matched to its races by the ranks of
            ``rho * e / sd + sqrt(1 - rho^2) * xi``; 0 = mix independent of the noise.
    """

    # No defaults here: the default of every setting is its value in params.yaml (simulate.settings), the only
    # place a default is written; :meth:`from_params` builds the settings from it.
    beta_cands: float
    cands_scale: str
    beta_self_share: float
    beta_women: float
    overdispersion_sd: float
    voters_sd_log: float
    min_candidates: int
    min_registered: int
    unknown_posts_rule: str
    binomial_sampling: bool
    dirichlet_concentration: float
    party_placement: str
    cands_spread_sd: float
    slope_sd: float
    district_share: float
    district_races: int
    mix_endogeneity: float

    def __post_init__(self) -> None:
        problems = mapping_problems(asdict(self), SIMULATION_SETTINGS, "settings")
        if problems:
            raise ValueError("Invalid simulation settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> SimulationSettings:
        """Build settings from a plain mapping (e.g. a params.yaml section), checked against
        :data:`akim_turnout.pipeline.parameters.SIMULATION_SETTINGS`.

        Unknown keys are refused, so a typo cannot silently run a default. A missing key takes its value in
        params.yaml (``simulate.settings``), the only place a default is written: this class has none of its own.
        """
        problems = mapping_problems(mapping, SIMULATION_SETTINGS, "settings", partial=True)
        if problems:
            raise ValueError("Invalid simulation settings: " + "; ".join(problems))
        missing = [key for key in SIMULATION_SETTINGS if key not in mapping]
        if missing:
            base = default("simulate", "settings")
            mapping = {**{key: base[key] for key in missing}, **mapping}
        problems = mapping_problems(mapping, SIMULATION_SETTINGS, "settings")
        if problems:
            raise ValueError("Invalid simulation settings: " + "; ".join(problems))
        numbers = {key for key, rule in SIMULATION_SETTINGS.items() if rule.kind == "number"}
        return cls(**{key: float(value) if key in numbers else value for key, value in mapping.items()})

    @classmethod
    def from_params(cls, path: Any = None, **overrides: Any) -> SimulationSettings:
        """The settings of ``params.yaml`` (``simulate.settings``; ``path``: another params file), with
        ``overrides`` replacing single settings: ``SimulationSettings.from_params(beta_self_share=0.0)``."""
        unknown = sorted(set(overrides) - set(SIMULATION_SETTINGS))
        if unknown:
            raise ValueError(f"Invalid simulation settings: unknown setting(s) {', '.join(unknown)}")
        settings = default("simulate", "settings", path)
        return replace(cls.from_mapping(settings), **overrides)

    @classmethod
    def from_stage(cls, simulate_data: Any) -> SimulationSettings:
        """The settings the simulate stage ran with, from its ``settings.json`` (in ``simulate_data``, the
        stage's data folder: ``stage_inputs("simulate").data``). See :func:`stage_settings`."""
        return stage_settings(simulate_data)[1]


def cands_term(settings: SimulationSettings) -> str:
    """Model term name for the candidate-count effect."""
    return "np.log(n_candidates)" if settings.cands_scale == "log" else "n_candidates"


def true_coefficients(settings: SimulationSettings) -> pd.Series:
    """True logit-scale effects, indexed by the term names the models report."""
    return pd.Series(
        {
            cands_term(settings): settings.beta_cands,
            "self_share": settings.beta_self_share,
            "any_woman": settings.beta_women,
        },
        name="true_value",
    )


def population_averaged_coefficients(settings: SimulationSettings) -> pd.Series:
    """Approximate marginal (population-averaged) effects that a binomial GLM estimates.

    Race noise ``e ~ N(0, s)`` on the logit scale attenuates the marginal
    effects to about ``beta / sqrt(1 + c^2 s^2)``, ``c = 16 sqrt(3) / (15 pi)``
    (Zeger, Liang & Albert 1988); mixed models on the logit scale target
    ``beta`` itself.
    """
    c = 16 * np.sqrt(3) / (15 * np.pi)
    factor = 1 / np.sqrt(1 + (c * settings.overdispersion_sd) ** 2)
    return (true_coefficients(settings) * factor).rename("population_averaged")


SETTINGS_FILE = "settings.json"


def stage_settings(simulate_data: Any) -> tuple[int, SimulationSettings]:
    """The seed and settings the simulate stage ran with.

    How simulator settings travel (one path): ``params.yaml`` -> the runner (papermill) -> the simulate notebook,
    which writes them with its seed to ``settings.json`` in its data folder; every later reader (the simulation
    study, the race models, the report) takes them from that file through this function, so what they state is
    what the races were simulated with. ``simulate_data`` is that folder (``stage_inputs("simulate").data``).
    """
    with open(Path(simulate_data) / SETTINGS_FILE, encoding="utf-8") as handle:
        saved = json.load(handle)
    return int(saved["seed"]), SimulationSettings.from_mapping(saved["settings"])


def interim_noise_estimate(
    races: pd.DataFrame, round_prefix: str = "2021-07-25", level: float = 0.95
) -> dict[str, Any]:
    """Between-race SD of logit turnout within a region, from the published *interim* turnouts (a stated estimator).

    Units: the race and aggregate rows of the round with ``turnout_interim_pct`` (ingest's ``races`` table). A
    region contributes when every one of its units has a known number of posts (1 for a race, ``posts`` for an
    aggregate): Mangystau's 10 villages at 14:00 and Kyzylorda's 6 districts and 1 okrug at 13:00 (its 40 posts).
    With ``x_u`` the logit of unit ``u``'s interim turnout and ``n_u`` its posts, a region's sum of squares is
    ``sum n_u (x_u - xbar)^2`` (``xbar`` the posts-weighted mean), on ``units - 1`` degrees of freedom: the mean
    of ``n`` races has variance ``sigma^2 / n`` if races are independent with equal electorates. The estimate is
    the pooled ``sqrt(SS / df)``, with the chi-square interval ``sqrt(SS / chi2_{1-a/2, df})``,
    ``sqrt(SS / chi2_{a/2, df})``. Regions whose aggregates lack posts (Kostanay's 19 districts at 14:00) are
    returned as checks only: their unit SD times ``sqrt(posts / units)``. Interim figures measure turnout by
    midday, not the final turnout; a district effect would inflate the aggregate part.
    """
    from scipy.stats import chi2  # lazy: the simulator itself does not need it

    rows = races[races["round_id"].astype(str).str.startswith(round_prefix) & races["turnout_interim_pct"].notna()]
    rows = rows.assign(
        n=np.where(rows["scope"] == "race", 1.0, rows["posts"].astype(float)),
        x=np.log(rows["turnout_interim_pct"] / (100 - rows["turnout_interim_pct"])),
    )
    used, checks, ss, df = [], [], 0.0, 0
    for region, group in rows.groupby("region", sort=True):
        if len(group) < 2:
            continue
        if group["n"].notna().all():
            mean = float((group["n"] * group["x"]).sum() / group["n"].sum())
            part = float((group["n"] * (group["x"] - mean) ** 2).sum())
            ss, df = ss + part, df + len(group) - 1
            used.append(
                {
                    "region": str(region),
                    "units": len(group),
                    "posts": int(group["n"].sum()),
                    "sd": float(np.sqrt(part / (len(group) - 1))),
                }
            )
        else:
            checks.append({"region": str(region), "units": len(group), "unit_sd": float(group["x"].std(ddof=1))})
    if df == 0:
        raise ValueError("no region publishes interim turnout for two or more units of known posts")
    a = 1 - level
    return {
        "estimate": float(np.sqrt(ss / df)),
        "low": float(np.sqrt(ss / chi2.ppf(1 - a / 2, df))),
        "high": float(np.sqrt(ss / chi2.ppf(a / 2, df))),
        "df": int(df),
        "level": level,
        "regions": used,
        "checks": checks,
    }


def true_formula_rhs(settings: SimulationSettings) -> str:
    """Right-hand side that matches the data-generating model."""
    return " + ".join(["C(region)", *true_coefficients(settings).index])


# --------------------------------------------------------------------------
# Integer allocation helpers
# --------------------------------------------------------------------------


def largest_remainder(total: int, basis: np.ndarray) -> np.ndarray:
    """Split integer ``total`` in proportion to ``basis`` (Hamilton method).

    Each share gets the floor of its quota; the units left go to the largest
    fractional parts, ties to the earlier position. The result sums to
    ``total`` exactly.
    """
    basis = np.asarray(basis, dtype=float)
    if total < 0 or basis.sum() <= 0 or np.any(basis < 0):
        raise ValueError(f"Cannot split {total} over basis {basis.tolist()}")
    quotas = total * basis / basis.sum()
    shares = np.floor(quotas).astype(np.int64)
    leftover = int(total - shares.sum())
    order = np.argsort(-(quotas - shares), kind="stable")
    shares[order[:leftover]] += 1
    return shares


def grouped_largest_remainder(quotas: np.ndarray, group: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Round real ``quotas`` to integers whose per-group sums equal ``totals``.

    Vectorised largest-remainder rounding: within each group the units left
    after flooring go to the largest fractional parts, ties to the earlier
    position. Quotas must already sum (up to float error) to the group
    totals; quotas at or below a cap stay at or below it, because a unit only
    goes to a positive fraction.
    """
    floors = np.floor(quotas)
    n_groups = len(totals)
    leftover = np.asarray(totals, dtype=np.int64) - np.rint(
        np.bincount(group, weights=floors, minlength=n_groups)
    ).astype(np.int64)
    sizes = np.bincount(group, minlength=n_groups)
    # a group can take at most one unit per share: more left over means the quotas do not match the totals
    if np.any(leftover < 0) or np.any(leftover > sizes):
        raise RuntimeError("Largest-remainder rounding failed: quotas do not match totals")
    # group, then descending fraction (negated exactly), then position (lexsort is stable)
    order = np.lexsort((floors - quotas, group))
    in_order = group[order]
    rank = np.arange(len(quotas)) - (np.cumsum(sizes) - sizes)[in_order]
    shares = floors.astype(np.int64)
    shares[order[rank < leftover[in_order]]] += 1
    return shares


def scale_to_totals_with_caps(
    weights: np.ndarray, caps: np.ndarray, group: np.ndarray, totals: np.ndarray
) -> np.ndarray:
    """Real quotas proportional to ``weights`` within each group, each <= its cap, summing to the group's total.

    Water-filling, all groups at once: in a group, quotas that would exceed their cap are fixed at the cap and the
    rest is re-spread over the others, until no proposal exceeds its cap. A group whose weights sum to 0 (or whose
    free weights do) spreads in proportion to the caps.
    """
    weights = np.asarray(weights, dtype=float)
    caps = np.asarray(caps)
    cap_values = caps.astype(float)
    n_groups = len(totals)
    if np.any(np.asarray(totals) > np.bincount(group, weights=cap_values, minlength=n_groups)):
        raise ValueError("Target exceeds the sum of caps")
    no_weight = np.bincount(group, weights=weights, minlength=n_groups) <= 0
    weights = np.where(no_weight[group], cap_values, weights)
    quotas = cap_values.copy()
    free = np.ones(len(weights), dtype=bool)
    open_groups = np.ones(n_groups, dtype=bool)
    while open_groups.any():
        remaining = totals - np.bincount(group, weights=np.where(free, 0.0, cap_values), minlength=n_groups)
        free_weight = np.bincount(group, weights=np.where(free, weights, 0.0), minlength=n_groups)
        basis = np.where((free_weight > 0)[group], weights, cap_values)
        basis_sum = np.bincount(group, weights=np.where(free, basis, 0.0), minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):  # groups already settled may have nothing free
            proposal = basis * remaining[group] / basis_sum[group]
        active = free & open_groups[group]
        over = active & (proposal > cap_values)
        settled = open_groups & (np.bincount(group, weights=over, minlength=n_groups) == 0)
        placed = active & settled[group]
        quotas[placed] = proposal[placed]
        open_groups &= ~settled
        free &= ~over
    return quotas


# --------------------------------------------------------------------------
# Regional margins
# --------------------------------------------------------------------------


def _check_region_input(regions: pd.DataFrame, national: Mapping[str, float]) -> None:
    """Refuse inputs that the allocation rules cannot handle."""
    required = ["region", "turnout_pct", *MARGIN_COLUMNS]
    missing = [c for c in required if c not in regions.columns]
    if missing:
        raise ValueError(f"regions is missing column(s): {missing}")
    missing_keys = [k for k in NATIONAL_KEYS if k not in national]
    if missing_keys:
        raise ValueError(f"national is missing key(s): {missing_keys}")
    turnout = regions["turnout_pct"].to_numpy(dtype=float)
    if np.any(~np.isfinite(turnout)) or np.any((turnout <= 0) | (turnout >= 100)):
        raise ValueError("turnout_pct must be known and strictly between 0 and 100")
    if national["cands_party"] + national["cands_self"] != national["cands"]:
        raise ValueError("national cands_party + cands_self must equal cands")


def _fill_remainder(
    known: pd.Series, national_total: int, basis: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Keep known values; split the national remainder over unknown rows.

    Returns the integer values and a ``published``/``assumed`` flag array.
    """
    values = known.to_numpy(dtype=float)
    unknown = np.isnan(values)
    remainder = int(round(national_total - np.nansum(values)))
    if remainder < 0:
        raise ValueError(f"{label}: published regional values exceed the national total")
    filled = np.where(unknown, 0, values).astype(np.int64)
    if unknown.any():
        filled[unknown] = largest_remainder(remainder, basis[unknown])
    elif remainder != 0:
        raise ValueError(f"{label}: regional values do not add up to the national total")
    return filled, np.where(unknown, ASSUMED, PUBLISHED)


def _fill_party_split(regions: pd.DataFrame, cands: np.ndarray, national: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Party/self-nominated split: published where known, else national remainder share."""
    party_known = regions["cands_party"].notna().to_numpy()
    if not np.array_equal(party_known, regions["cands_self"].notna().to_numpy()):
        raise ValueError("cands_party and cands_self must be both published or both missing")
    published_sum = (regions["cands_party"] + regions["cands_self"]).to_numpy(dtype=float)
    if np.any(party_known & (published_sum != cands)):
        raise ValueError("cands_party + cands_self must equal cands where published")
    party, source = _fill_remainder(
        regions["cands_party"], int(national["cands_party"]), cands.astype(float), "cands_party"
    )
    self_nominated = cands - party
    if np.any(self_nominated < 0):
        raise ValueError("cands_party allocation exceeds cands in some region")
    return {"cands_party": party, "cands_self": self_nominated, "party_source": source}


def _fill_posts(posts: pd.Series, national_posts: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Posts: published as is; the remainder split by ``rule`` ("equal")."""
    if rule not in UNKNOWN_POSTS_RULES:
        raise ValueError(f"unknown_posts_rule must be one of {UNKNOWN_POSTS_RULES}")
    return _fill_remainder(posts, national_posts, np.ones(len(posts)), "posts")


def allocate_region_margins(
    regions: pd.DataFrame,
    national: Mapping[str, float],
    unknown_posts_rule: str = "equal",
    min_candidates: int = 2,
) -> pd.DataFrame:
    """Complete the regional table so that every column adds up to the national total.

    Rules (applied in this order; every number is an integer):

    1. Published regional figures are used as they are (flag ``published``).
    2. Posts: the national remainder (national posts minus the sum of the
       published regional posts) is split equally among the regions without
       published posts (``unknown_posts_rule="equal"``), by largest-remainder
       rounding.
    3. Candidates, women candidates and voters on the rolls: each national
       remainder (national total minus the sum of published regional values)
       is shared among the regions without a published value in proportion
       to their posts (from rule 2), by largest-remainder rounding.
    4. Party-nominated and self-nominated candidates: where a region
       publishes both, they are used as is (and must add up to its
       candidates). Every other region's party-nominated count is its share
       of the national party remainder (national party nominees minus the
       published regional ones) in proportion to its candidates (rules 1 and
       3), by largest-remainder rounding; its self-nominated count is its
       candidates minus its party nominees. Hence every region's split adds
       up to its candidates, and the national party and self totals are
       met exactly.
    5. Largest-remainder rounding gives each unit left after flooring to the
       largest fractional part, ties to the region listed first; every
       column therefore sums exactly to its national total.

    Consistency checks (``ValueError``): published values exceeding the
    national total, a published party/self split that does not add up to
    the published candidates, women exceeding candidates, or fewer than
    ``min_candidates`` candidates per post in a region.

    Returns:
        One row per region with ``region``, ``turnout_pct``, the integer
        margins and a ``<column>_source`` column saying ``published`` or
        ``assumed`` for each margin.
    """
    _check_region_input(regions, national)
    regions = regions.reset_index(drop=True)
    posts, posts_src = _fill_posts(regions["posts"], int(national["posts"]), unknown_posts_rule)
    basis = posts.astype(float)
    cands, cands_src = _fill_remainder(regions["cands"], int(national["cands"]), basis, "cands")
    split = _fill_party_split(regions, cands, national)
    women, women_src = _fill_remainder(regions["cands_women"], int(national["cands_women"]), basis, "cands_women")
    voters, voters_src = _fill_remainder(
        regions["voters_on_rolls"], int(national["voters_on_rolls"]), basis, "voters_on_rolls"
    )
    margins = pd.DataFrame(
        {
            "region": regions["region"].astype(str).to_numpy(),
            "turnout_pct": regions["turnout_pct"].to_numpy(dtype=float),
            "posts": posts,
            "cands": cands,
            "cands_party": split["cands_party"],
            "cands_self": split["cands_self"],
            "cands_women": women,
            "voters_on_rolls": voters,
            "posts_source": posts_src,
            "cands_source": cands_src,
            "cands_party_source": split["party_source"],
            "cands_self_source": split["party_source"],
            "cands_women_source": women_src,
            "voters_on_rolls_source": voters_src,
        }
    )
    distributions = published_distributions(regions.assign(posts=posts, cands=cands))
    margins = margins.join(distributions)
    margins["cands_distribution_source"] = np.where(distributions.notna().all(axis=1), PUBLISHED, ASSUMED)
    _check_margins_feasible(margins, min_candidates, min_registered=1)
    return margins


def published_distributions(regions: pd.DataFrame) -> pd.DataFrame:
    """Per region, the published numbers of posts with k candidates (:data:`DISTRIBUTION_COLUMNS`), where complete.

    A region's distribution is used only when its published cells account for all its posts and all its
    candidates (``sum(n_k) == posts`` and ``sum(k n_k) == cands``, the simulator's regional total, whose counting
    stage is the distribution's: registered for Akmola, on the ballot for Kyzylorda and Mangystau); its cells left
    empty are then 0 by these two identities, not estimated. Any other region's row is NaN (the rule of
    :func:`candidate_counts_rule` applies). Input without the columns gives an all-NaN frame.
    """
    out = pd.DataFrame(np.nan, index=regions.index, columns=list(DISTRIBUTION_COLUMNS))
    present = [c for c in DISTRIBUTION_COLUMNS if c in regions.columns]
    if not present:
        return out
    cells = regions[present].astype(float)
    published = cells.notna().any(axis=1)
    filled = cells.fillna(0.0)
    sizes = np.array([int(c.split("_")[2]) for c in present], dtype=float)
    posts_ok = filled.sum(axis=1).to_numpy() == regions["posts"].to_numpy(dtype=float)
    cands_ok = filled.to_numpy() @ sizes == regions["cands"].to_numpy(dtype=float)
    complete = published.to_numpy() & posts_ok & cands_ok
    out.loc[complete, present] = filled.loc[complete].to_numpy()
    out.loc[complete] = out.loc[complete].fillna(0.0)
    return out


MARGIN_COUNTS = ("posts", "cands", "cands_party", "cands_women", "voters_on_rolls")  # whole numbers in any dtype


def _check_margins_feasible(margins: pd.DataFrame, min_candidates: int, min_registered: int) -> None:
    """Refuse margins that cannot be split into races obeying the minimums, or whose counts are not whole."""
    rules = {
        "fewer candidates than min_candidates per post": margins["cands"] < min_candidates * margins["posts"],
        "more women candidates than candidates": margins["cands_women"] > margins["cands"],
        "fewer voters than min_registered per post": margins["voters_on_rolls"] < min_registered * margins["posts"],
        "no posts": margins["posts"] <= 0,
    }
    counts = margins[list(MARGIN_COUNTS)].to_numpy(dtype=float)
    fractional = np.isfinite(counts) & (counts != np.floor(counts))
    rules.update({f"a fraction in {column}": fractional[:, j] for j, column in enumerate(MARGIN_COUNTS)})
    problems = [f"{rule}: {margins.loc[mask, 'region'].tolist()}" for rule, mask in rules.items() if mask.any()]
    if problems:
        raise ValueError("Infeasible regional margins: " + "; ".join(problems))


def scale_margins(margins: pd.DataFrame, n_races: int) -> pd.DataFrame:
    """Scale allocated margins to ``n_races`` posts, keeping regional proportions.

    Posts are split over regions by largest remainder in proportion to the
    allocated posts; every other count column gets the national total times
    ``n_races / total posts`` (rounded), split in proportion to the allocated
    column; self-nominated = candidates - party nominees. Turnout is kept.
    """
    factor = n_races / margins["posts"].sum()
    scaled = margins.copy()
    scaled["posts"] = largest_remainder(n_races, margins["posts"].to_numpy())
    for column in ("cands", "cands_party", "cands_women", "voters_on_rolls"):
        total = int(round(margins[column].sum() * factor))
        scaled[column] = largest_remainder(total, margins[column].to_numpy())
    scaled["cands_self"] = scaled["cands"] - scaled["cands_party"]
    if factor != 1:  # a published distribution counts the real posts: scaled regions follow the rule
        for column in DISTRIBUTION_COLUMNS:
            if column in scaled:
                scaled[column] = np.nan
        if "cands_distribution_source" in scaled:
            scaled["cands_distribution_source"] = ASSUMED
    return scaled


# --------------------------------------------------------------------------
# Race simulation
# --------------------------------------------------------------------------


def _group_starts(counts: np.ndarray) -> np.ndarray:
    """Start offset of each consecutive group of the given sizes."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def candidate_counts_rule(posts: int, cands: int, min_candidates: int, spread_sd: float, z: np.ndarray) -> np.ndarray:
    """Candidates per race of a region without a published distribution (the fitted rule).

    Each race's quota of candidates beyond ``min_candidates`` is ``max(m + spread_sd * z_i, 0)``, ``m`` the
    region's mean (``cands / posts - min_candidates``) and ``z_i`` standard normal; the quotas are rescaled to the
    region's extra candidates and rounded by largest remainder. So every race has at least ``min_candidates``, the
    region's total is exact, the counts follow the region's mean (the rule scales by shifting), and
    ``spread_sd = 0`` gives the most even counts (each race the floor or the ceiling of the mean). One region of
    :func:`candidate_counts_by_rule`.
    """
    return candidate_counts_by_rule(np.array([posts]), np.array([cands]), min_candidates, spread_sd, z)


def candidate_counts_by_rule(
    posts: np.ndarray, cands: np.ndarray, min_candidates: int, spread_sd: float, z: np.ndarray
) -> np.ndarray:
    """:func:`candidate_counts_rule` of several regions at once (their races consecutive, ``z`` one draw per race)."""
    posts = np.asarray(posts, dtype=np.int64)
    extra = np.asarray(cands, dtype=np.int64) - min_candidates * posts
    if np.any(extra < 0):
        raise ValueError("fewer candidates than min_candidates per post")
    group = np.repeat(np.arange(len(posts)), posts)
    starts = _group_starts(posts)
    quotas = np.maximum((extra / posts)[group] + spread_sd * np.asarray(z, dtype=float), 0.0)
    sums = np.add.reduceat(quotas, starts)
    empty = sums <= 0
    quotas = np.where(empty[group], 1.0, quotas)
    sums = np.where(empty, posts.astype(float), sums)
    quotas = quotas * extra[group] / sums[group]
    return min_candidates + grouped_largest_remainder(quotas, group, extra)


def _draw_candidate_counts(
    posts: np.ndarray,
    cands: np.ndarray,
    distributions: np.ndarray,
    min_candidates: int,
    spread_sd: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Candidates per race, region by region: the published distribution (``distributions``, posts with 2..6
    candidates, NaN where not published) in a random order of the region's races where one is published
    (:func:`published_distributions`), else :func:`candidate_counts_rule`."""
    n_races = int(posts.sum())
    z = rng.standard_normal(n_races)
    order = rng.random(n_races)
    counts = np.empty(n_races, dtype=np.int64)
    published = np.all(np.isfinite(distributions), axis=1)
    starts = _group_starts(posts)
    for r in np.flatnonzero(published):
        block = slice(starts[r], starts[r] + posts[r])
        values = np.repeat(np.array(DISTRIBUTION_SIZES, dtype=np.int64), distributions[r].astype(np.int64))
        counts[block] = values[np.argsort(order[block], kind="stable")]
    by_rule = np.repeat(~published, posts)
    if by_rule.any():
        counts[by_rule] = candidate_counts_by_rule(
            posts[~published], cands[~published], min_candidates, spread_sd, z[by_rule]
        )
    return counts


def distribution_variance(counts: Mapping[int, float]) -> tuple[float, float]:
    """Posts and the (population) variance of candidates per post of one distribution ``{k: posts with k}``."""
    k = np.array(list(counts), dtype=float)
    n = np.array(list(counts.values()), dtype=float)
    mean = (k * n).sum() / n.sum()
    return float(n.sum()), float((n * (k - mean) ** 2).sum() / n.sum())


def fit_candidate_spread(
    margins: pd.DataFrame, min_candidates: int, draws: int = 200, seed: int = 0, digits: int = 2
) -> dict[str, Any]:
    """Fit ``cands_spread_sd`` of :func:`candidate_counts_rule` to the published distributions (method of moments).

    Target: the posts-weighted mean over the regions with a published distribution of the within-region variance
    of candidates per post. The rule is applied to those regions' posts and candidates with ``draws`` sets of
    normal draws (fixed ``seed``, common to every trial value); bisection finds the spread whose mean pooled
    variance equals the target. Returns the fit (rounded to ``digits``), the target and the variance at 0.
    """
    published = margins[margins.reindex(columns=list(DISTRIBUTION_COLUMNS)).notna().all(axis=1)]
    if published.empty:
        raise ValueError("no region publishes a complete distribution of candidates per post")
    parts = [
        distribution_variance({k: float(row[c]) for k, c in zip(DISTRIBUTION_SIZES, DISTRIBUTION_COLUMNS, strict=True)})
        for _, row in published.iterrows()
    ]
    total_posts = sum(p for p, _ in parts)
    target = sum(p * v for p, v in parts) / total_posts
    rng = np.random.default_rng(seed)
    zs = [rng.standard_normal((draws, int(p))) for p, _ in parts]

    def pooled(spread: float) -> float:
        out = 0.0
        for (_, row), z in zip(published.iterrows(), zs, strict=True):
            posts, extra = int(row["posts"]), int(row["cands"]) - min_candidates * int(row["posts"])
            # candidate_counts_rule for every draw at once (one group per draw)
            quotas = np.maximum(extra / posts + spread * z, 0.0)
            quotas[quotas.sum(axis=1) <= 0] = 1.0  # as candidate_counts_rule: an all-zero draw spreads evenly
            quotas = quotas * extra / quotas.sum(axis=1, keepdims=True)
            group = np.repeat(np.arange(draws), posts)
            counts = grouped_largest_remainder(quotas.ravel(), group, np.full(draws, extra)).reshape(draws, posts)
            out += float(counts.var(axis=1).sum()) * posts / draws
        return out / total_posts

    at_zero = pooled(0.0)
    low, high = 0.0, 5.0
    if at_zero >= target:
        fitted = 0.0
    else:
        for _ in range(30):
            mid = (low + high) / 2
            low, high = (mid, high) if pooled(mid) < target else (low, mid)
        fitted = (low + high) / 2
    return {
        "cands_spread_sd": round(fitted, digits),
        "target_variance": target,
        "fitted_variance": pooled(round(fitted, digits)),
        "variance_at_zero": at_zero,
        "regions": published["region"].tolist(),
        "posts": int(total_posts),
    }


def _mark_slots(per_region: np.ndarray, region_slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mark exactly ``per_region[r]`` randomly chosen candidate slots of each region.

    Slots are stored region by region, so each region is a contiguous block.
    """
    marked = np.zeros(int(region_slots.sum()), dtype=bool)
    for start, size, count in zip(_group_starts(region_slots), region_slots, per_region, strict=True):
        marked[start + rng.choice(size, size=int(count), replace=False)] = True
    return marked


def _spread_party(party: np.ndarray, posts: np.ndarray, n_cands: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Party nominees per race, spread over each region's races as evenly as their candidate counts allow.

    Races are taken in a random order, round after round, each taking one more party nominee while it has a
    self-nominated candidate left to replace, until the region's party nominees are placed: no race gets a second
    party nominee while another race of its region has none and room for one.
    """
    n_party = np.zeros(len(n_cands), dtype=np.int64)
    for start, size, total in zip(_group_starts(posts), posts, party, strict=True):
        races = start + rng.permutation(int(size))
        left = int(total)
        while left > 0:
            open_races = races[n_party[races] < n_cands[races]]
            if len(open_races) == 0:
                raise ValueError("more party nominees than candidates in a region")
            taken = open_races[:left]
            n_party[taken] += 1
            left -= len(taken)
    return n_party


def _draw_electorates(
    race_region: np.ndarray,
    posts: np.ndarray,
    voters: np.ndarray,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Log-normal electorate sizes, floored at ``min_registered``, summing to each region's voters."""
    sizes = rng.lognormal(0.0, settings.voters_sd_log, len(race_region))
    free_voters = voters - settings.min_registered * posts
    region_size = np.bincount(race_region, weights=sizes, minlength=len(posts))
    quotas = settings.min_registered + free_voters[race_region] * sizes / region_size[race_region]
    return grouped_largest_remainder(quotas, race_region, voters)


def _mix_predictor(
    n_cands: np.ndarray, self_share: np.ndarray, any_woman: np.ndarray, s: SimulationSettings
) -> np.ndarray:
    """Candidate-mix part of the logit linear predictor."""
    cands_x = np.log(n_cands) if s.cands_scale == "log" else n_cands.astype(float)
    return s.beta_cands * cands_x + s.beta_self_share * self_share + s.beta_women * any_woman


def _calibrate_alphas(
    race_region: np.ndarray, registered: np.ndarray, offset: np.ndarray, target_share: np.ndarray
) -> np.ndarray:
    """Regional intercepts making each region's electorate-weighted mean turnout hit its target.

    Safeguarded Newton iteration, all regions at once: the weighted mean of
    ``expit(alpha + offset)`` is increasing in ``alpha``, so a bracket is kept
    and a bisection step replaces any Newton step that leaves it.
    """
    n_regions = len(target_share)
    weights = registered / np.bincount(race_region, weights=registered, minlength=n_regions)[race_region]
    reach = float(np.max(np.abs(offset), initial=0.0))  # offsets beyond the bracket (e.g. -5 x 10 candidates) widen it
    lower = np.full(n_regions, _ALPHA_BRACKET[0] - reach)
    upper = np.full(n_regions, _ALPHA_BRACKET[1] + reach)
    mean_offset = np.bincount(race_region, weights=weights * offset, minlength=n_regions)
    alphas = np.log(target_share / (1 - target_share)) - mean_offset
    for _ in range(200):
        p = expit(alphas[race_region] + offset)
        gap = np.bincount(race_region, weights=weights * p, minlength=n_regions) - target_share
        if np.max(np.abs(gap)) < 1e-13:
            return alphas
        slope = np.bincount(race_region, weights=weights * p * (1 - p), minlength=n_regions)
        lower = np.where(gap < 0, alphas, lower)
        upper = np.where(gap > 0, alphas, upper)
        newton = alphas - gap / np.maximum(slope, 1e-300)
        inside = (newton > lower) & (newton < upper)
        alphas = np.where(inside, newton, (lower + upper) / 2)
    raise RuntimeError("Regional intercept calibration did not converge")


def _draw_voted(
    registered: np.ndarray,
    p: np.ndarray,
    race_region: np.ndarray,
    targets: np.ndarray,
    s: SimulationSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Integer votes: (binomial) draws rescaled so each region hits its target exactly."""
    draws = rng.binomial(registered, p).astype(float) if s.binomial_sampling else registered * p
    quotas = scale_to_totals_with_caps(draws, registered, race_region, targets)
    voted = grouped_largest_remainder(quotas, race_region, targets)
    if np.any(voted > registered):
        raise RuntimeError("Vote allocation exceeded an electorate")
    return voted


def _winner_votes(
    slot_race: np.ndarray, voted: np.ndarray, concentration: float, rng: np.random.Generator
) -> np.ndarray:
    """Split each race's valid votes by a symmetric Dirichlet; return the top count.

    At a small concentration every gamma draw of a race can underflow to 0; such a race gives all its votes to its
    first candidate, the Dirichlet's limit as the concentration goes to 0 (one candidate takes everything)."""
    gamma = rng.gamma(concentration, size=len(slot_race))
    race_sum = np.bincount(slot_race, weights=gamma, minlength=len(voted))
    starts = _group_starts(np.bincount(slot_race, minlength=len(voted)))
    first = np.zeros(len(slot_race), dtype=bool)
    first[starts] = True
    share = np.where(race_sum[slot_race] > 0, gamma / np.where(race_sum > 0, race_sum, 1)[slot_race], first)
    votes = grouped_largest_remainder(share * voted[slot_race], slot_race, voted)
    return np.maximum.reduceat(votes, starts)


def _race_noise(
    race_region: np.ndarray, posts: np.ndarray, s: SimulationSettings, rng: np.random.Generator
) -> np.ndarray:
    """Race noise on the logit scale: ``sd * (sqrt(1 - d) * eps_i + sqrt(d) * eta_district)``, ``d`` =
    ``district_share``; districts are runs of ``district_races`` consecutive races of a region. Both normal draws
    are made whatever the settings (common random numbers across settings)."""
    eps = rng.standard_normal(len(race_region))
    within = np.arange(len(race_region)) - _group_starts(posts)[race_region]
    per_region = -(-posts // s.district_races)  # ceiling
    district = _group_starts(per_region)[race_region] + within // s.district_races
    eta = rng.standard_normal(int(per_region.sum()))
    d = s.district_share
    return s.overdispersion_sd * (np.sqrt(1 - d) * eps + np.sqrt(d) * eta[district])


def _endogenous_order(
    race_region: np.ndarray,
    noise: np.ndarray,
    self_share: np.ndarray,
    s: SimulationSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """A permutation of races within each region that matches candidate mixes to races (``mix_endogeneity``).

    Race ``i`` gets the mix of the race at ``perm[i]``: within a region the mixes sorted by self-nominated share
    (ties in random order) go to the races sorted by ``rho * noise / sd + sqrt(1 - rho^2) * xi`` (Gaussian
    copula); with ``rho = 0`` this is a random reshuffle, equal in law to the mixes as drawn."""
    xi = rng.standard_normal(len(race_region))
    tie = rng.random(len(race_region))
    rho = s.mix_endogeneity
    scaled = noise / s.overdispersion_sd if s.overdispersion_sd > 0 else np.zeros_like(noise)
    score = rho * scaled + np.sqrt(1 - rho**2) * xi
    # all regions at once: races are stored region by region, so the k-th race of a region in each order pair up
    perm = np.empty(len(race_region), dtype=np.int64)
    perm[np.lexsort((score, race_region))] = np.lexsort((tie, self_share, race_region))
    return perm


@dataclass(frozen=True, eq=False)
class MarginArrays:
    """Completed regional margins as the arrays the race draws use (built once, reused by every draw)."""

    regions: np.ndarray  # region names, in the margins' order
    turnout_pct: np.ndarray
    posts: np.ndarray
    cands: np.ndarray
    cands_party: np.ndarray
    cands_women: np.ndarray
    voters: np.ndarray
    distributions: np.ndarray  # posts with 2..6 candidates where published (DISTRIBUTION_COLUMNS), else NaN

    @classmethod
    def from_frame(cls, margins: pd.DataFrame) -> MarginArrays:
        return cls(
            margins["region"].astype(str).to_numpy(dtype=object),
            margins["turnout_pct"].to_numpy(dtype=float),
            *(margins[c].to_numpy(dtype=float).astype(np.int64) for c in MARGIN_COUNTS),
            margins.reindex(columns=list(DISTRIBUTION_COLUMNS)).to_numpy(dtype=float),
        )

    @property
    def n_races(self) -> int:
        return int(self.posts.sum())

    @property
    def race_region(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.posts)), self.posts)

    @property
    def starts(self) -> np.ndarray:
        return _group_starts(self.posts)

    @property
    def published(self) -> np.ndarray:
        """Regions whose candidates per race follow their published distribution."""
        return np.all(np.isfinite(self.distributions), axis=1)


@dataclass(frozen=True, eq=False)
class RaceDraw:
    """One simulated data set as arrays (one entry per race, races grouped by region in the margins' order); its
    table is :meth:`frame`."""

    regions: np.ndarray
    race_region: np.ndarray
    registered: np.ndarray
    voted: np.ndarray
    n_candidates: np.ndarray
    n_party: np.ndarray
    n_women: np.ndarray
    winner_votes: np.ndarray | None  # None: drawn without them (draw_races(winners=False))
    alphas: np.ndarray
    slopes: np.ndarray
    seed: int

    def columns(self) -> dict[str, np.ndarray]:
        """The race table's columns (:data:`RACE_COLUMNS`, region as names) as arrays; without winner votes where
        the draw has none."""
        n_self = self.n_candidates - self.n_party
        columns = {
            "race_id": np.arange(1, len(self.n_candidates) + 1),
            "region": self.regions[self.race_region],
            "registered": self.registered,
            "voted": self.voted,
            "n_candidates": self.n_candidates,
            "n_party": self.n_party,
            "n_self": n_self,
            "n_women": self.n_women,
            "self_share": n_self / self.n_candidates,
            "any_self": (n_self > 0).astype(np.int64),
            "women_share": self.n_women / self.n_candidates,
            "any_woman": (self.n_women > 0).astype(np.int64),
            "winner_votes": self.winner_votes,
            "valid_votes": self.voted,
        }
        return {name: values for name, values in columns.items() if values is not None}

    def frame(self) -> pd.DataFrame:
        """The race table (:data:`RACE_COLUMNS`), with the regional intercepts, slopes and seed in ``attrs``."""
        if self.winner_votes is None:
            raise ValueError("this draw has no winner votes (draw_races(winners=False)): draw it with them")
        races = pd.DataFrame(self.columns())[list(RACE_COLUMNS)]
        races.attrs["alpha_region"] = dict(zip(self.regions, self.alphas.round(10).tolist(), strict=True))
        races.attrs["slope_region"] = dict(zip(self.regions, self.slopes.round(10).tolist(), strict=True))
        races.attrs["seed"] = self.seed
        return races


def check_margins(margins: pd.DataFrame, settings: SimulationSettings) -> MarginArrays:
    """Refuse margins the simulator cannot split into races under ``settings``; their arrays otherwise."""
    _check_margins_feasible(margins, settings.min_candidates, settings.min_registered)
    return MarginArrays.from_frame(margins)


def draw_races(m: MarginArrays, settings: SimulationSettings, seed: int, winners: bool = True) -> RaceDraw:
    """One simulated data set from margins already checked by :func:`check_margins` (see :func:`simulate_races`).

    ``winners=False`` skips the split of votes among candidates, the last draw: every other array is the same, and
    ``winner_votes`` is None (the turnout models do not use it)."""
    rng = np.random.default_rng(seed)
    posts, cands = m.posts, m.cands
    race_region = m.race_region
    n_cands = _draw_candidate_counts(
        posts, cands, m.distributions, settings.min_candidates, settings.cands_spread_sd, rng
    )
    if not np.array_equal(np.bincount(race_region, weights=n_cands, minlength=len(posts)).astype(np.int64), cands):
        raise ValueError("candidates per race do not add up to the regional candidates")
    slot_race = np.repeat(np.arange(len(n_cands)), n_cands)
    if settings.party_placement == "spread":
        n_party = _spread_party(m.cands_party, posts, n_cands, rng)
    else:
        is_party = _mark_slots(m.cands_party, cands, rng)
        n_party = np.bincount(slot_race, weights=is_party, minlength=len(n_cands)).astype(np.int64)
    is_woman = _mark_slots(m.cands_women, cands, rng)
    n_women = np.bincount(slot_race, weights=is_woman, minlength=len(n_cands)).astype(np.int64)
    voters = m.voters
    registered = _draw_electorates(race_region, posts, voters, settings, rng)
    noise = _race_noise(race_region, posts, settings, rng)
    slopes = settings.beta_self_share + settings.slope_sd * rng.standard_normal(len(posts))
    perm = _endogenous_order(race_region, noise, (n_cands - n_party) / n_cands, settings, rng)
    n_cands, n_party, n_women = n_cands[perm], n_party[perm], n_women[perm]
    slot_race = np.repeat(np.arange(len(n_cands)), n_cands)
    n_self = n_cands - n_party
    offset = _mix_predictor(n_cands, n_self / n_cands, (n_women > 0).astype(float), settings)
    offset = offset + (slopes[race_region] - settings.beta_self_share) * (n_self / n_cands) + noise
    targets = np.rint(m.turnout_pct / 100 * voters).astype(np.int64)
    alphas = _calibrate_alphas(race_region, registered, offset, targets / voters)
    p = expit(alphas[race_region] + offset)
    voted = _draw_voted(registered, p, race_region, targets, settings, rng)
    winner = _winner_votes(slot_race, voted, settings.dirichlet_concentration, rng) if winners else None
    return RaceDraw(m.regions, race_region, registered, voted, n_cands, n_party, n_women, winner, alphas, slopes, seed)


def simulate_from_margins(margins: pd.DataFrame, settings: SimulationSettings, seed: int) -> pd.DataFrame:
    """Draw one row per post from completed regional margins (see :func:`simulate_races`)."""
    return draw_races(check_margins(margins, settings), settings, seed).frame()


def simulate_races(
    regions: pd.DataFrame,
    national: Mapping[str, float],
    settings: SimulationSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate one row per post (730 with the real data), calibrated to the published record.

    Model:
        * Each region's posts, candidates (party, self-nominated, women) and
          voters on the rolls are the margins of
          :func:`allocate_region_margins`.
        * Candidates per race: where a region publishes its posts by number
          of candidates (Akmola, Kyzylorda, Mangystau) exactly those numbers,
          in a random order of its races; elsewhere
          :func:`candidate_counts_rule` (at least ``min_candidates``, the
          smallest count published, 2: no stored source states a legal
          minimum; spread ``cands_spread_sd`` fitted to the three published
          distributions). Party nominees are exactly the regional counts,
          placed by ``party_placement``; women are exactly the regional
          counts on randomly chosen candidate slots.
        * Electorates are log-normal (``voters_sd_log``), at least
          ``min_registered``, and sum exactly to the regional voters.
        * ``logit p = alpha_region + beta_cands * f(n_candidates)
          + beta_self_share * self_share + beta_women * any_woman + e``,
          ``e ~ N(0, overdispersion_sd)`` (a share ``district_share`` of its
          variance common to a district of ``district_races`` races), the
          self-nominated effect varying by region with SD ``slope_sd``, and
          the candidate mixes matched to the noise with copula correlation
          ``mix_endogeneity``. ``alpha_region`` is solved
          numerically so that the electorate-weighted mean of ``p`` equals
          the published turnout (rounded to whole votes).
        * Votes are Binomial(registered, p) draws (or expected values),
          rescaled within the region (never above ``registered``) and
          rounded by largest remainder, so the regional sum of votes equals
          ``round(turnout_pct / 100 * voters)``: the regional turnout then
          differs from the published one by less than ``0.5 / voters``.
        * Valid votes equal votes; they are split among the candidates by a
          symmetric Dirichlet (``dirichlet_concentration``) and rounded;
          ``winner_votes`` is the largest share.

    Only ``numpy.random.default_rng(seed)`` is used: the same seed gives an
    identical frame. The regional intercepts are in ``frame.attrs["alpha_region"]``.
    """
    settings = settings or SimulationSettings.from_params()
    margins = allocate_region_margins(regions, national, settings.unknown_posts_rule, settings.min_candidates)
    return simulate_from_margins(margins, settings, seed)


def simulate_scaled(
    regions: pd.DataFrame,
    national: Mapping[str, float],
    settings: SimulationSettings | None = None,
    seed: int = 0,
    n_races: int = 1_000_000,
) -> pd.DataFrame:
    """Simulate ``n_races`` races with margins scaled up from the 2021 record.

    Same model as :func:`simulate_races`; the margins are those of
    :func:`allocate_region_margins` passed through :func:`scale_margins`,
    so regional proportions, candidates per post, voters per post and
    regional turnout are kept. Used for parameter-recovery studies.
    """
    settings = settings or SimulationSettings.from_params()
    margins = allocate_region_margins(regions, national, settings.unknown_posts_rule, settings.min_candidates)
    return simulate_from_margins(scale_margins(margins, n_races), settings, seed)


NATIONAL_INPUTS = {
    "posts": "posts",
    "cands": "cands_registered",
    "cands_party": "cands_registered_party",
    "cands_self": "cands_registered_self",
    "cands_women": "cands_registered_women",
    "voters_on_rolls": "voters_on_rolls",
}
REGIONAL_INPUTS = ["region", *MARGIN_COLUMNS, "turnout_pct"]


def inputs_from_published(
    regional: pd.DataFrame, national_row: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The simulator's inputs from the processed published tables (regional_2021 and the 2021 national row)."""
    missing = [column for column in REGIONAL_INPUTS if column not in regional]
    if missing:
        raise ValueError(f"regional table lacks {missing}")
    national = {key: float(national_row[column]) for key, column in NATIONAL_INPUTS.items()}
    distributions = [column for column in DISTRIBUTION_COLUMNS if column in regional]
    return regional[REGIONAL_INPUTS + distributions].copy(), national


def calibration_check(races: pd.DataFrame, margins: pd.DataFrame) -> pd.DataFrame:
    """Per region: published (or allocated) margins against what the simulated races add up to."""
    sums = races.groupby("region").agg(
        posts_sim=("race_id", "size"),
        cands_sim=("n_candidates", "sum"),
        party_sim=("n_party", "sum"),
        self_sim=("n_self", "sum"),
        women_sim=("n_women", "sum"),
        registered_sim=("registered", "sum"),
        voted_sim=("voted", "sum"),
    )
    sums["turnout_sim_pct"] = 100 * sums["voted_sim"] / sums["registered_sim"]
    return margins.set_index("region").join(sums).reset_index()


IDENTITY = "identity (by construction)"
FITTED = "fitted (method of moments)"
CHECK = "check"


def _party_split_races(published_races: pd.DataFrame) -> pd.DataFrame:
    """Races (any round) that publish both their party and self-nominated candidates at one stage."""
    rows = []
    for stage in ("cands_on_ballot", "cands_registered", "cands_nominated"):
        party, self_ = f"{stage}_party", f"{stage}_self"
        if party not in published_races or self_ not in published_races:
            continue
        both = published_races[
            (published_races["scope"] == "race") & published_races[party].notna() & published_races[self_].notna()
        ]
        rows += [
            {"race_id": r.race_id, "party": float(getattr(r, party)), "self": float(getattr(r, self_))}
            for r in both.itertuples()
        ]
    return pd.DataFrame(rows, columns=["race_id", "party", "self"]).drop_duplicates("race_id")


def published_comparison(
    races: pd.DataFrame,
    margins: pd.DataFrame,
    published_races: pd.DataFrame,
    noise: Mapping[str, Any],
    spread: Mapping[str, Any],
) -> pd.DataFrame:
    """Every published race-level distribution against the SIMULATED races, with what kind of match each is.

    ``kind``: :data:`IDENTITY` (the simulator imposes the published figure: posts with k candidates where
    published, regional candidates, party nominees and turnout), :data:`FITTED` (a parameter was chosen to match
    it: the pooled variance of candidates per post under the rule, ``spread``; the noise SD, ``noise``) or
    :data:`CHECK` (not imposed: races with only self-nominated candidates, against races of any round that publish
    their split; the within-region SD of simulated logit turnout against the interim estimate).
    """
    rows: list[dict[str, Any]] = []
    for _, m in margins.iterrows():
        if m.get("cands_distribution_source") != PUBLISHED:
            continue
        simulated = races.loc[races["region"] == m["region"], "n_candidates"].value_counts()
        for k, column in zip(DISTRIBUTION_SIZES, DISTRIBUTION_COLUMNS, strict=True):
            rows.append(
                {
                    "quantity": f"posts with {k} candidates",
                    "region": m["region"],
                    "published": float(m[column]),
                    "simulated": float(simulated.get(k, 0)),
                    "kind": IDENTITY,
                }
            )
    rows.append(
        {
            "quantity": "variance of candidates per post, pooled (rule applied to these regions)",
            "region": ", ".join(spread["regions"]),
            "published": float(spread["target_variance"]),
            "simulated": float(spread.get("fitted_variance", math.nan)),
            "kind": FITTED,
        }
    )
    for _, m in margins.iterrows():
        if m.get("cands_party_source") == PUBLISHED:
            party = float(races.loc[races["region"] == m["region"], "n_party"].sum())
            rows.append(
                {
                    "quantity": "party-nominated candidates",
                    "region": m["region"],
                    "published": float(m["cands_party"]),
                    "simulated": party,
                    "kind": IDENTITY,
                }
            )
    split = _party_split_races(published_races)
    if len(split):
        rows.append(
            {
                "quantity": f"share of races with only self-nominated candidates ({len(split)} races of any round)",
                "region": "all",
                "published": float((split["party"] == 0).mean()),
                "simulated": float((races["n_party"] == 0).mean()),
                "kind": CHECK,
            }
        )
    x = np.log(races["voted"] / (races["registered"] - races["voted"]).clip(lower=0.5))
    within = x - x.groupby(races["region"]).transform("mean")
    pooled = float(np.sqrt((within**2).sum() / (len(races) - races["region"].nunique())))
    rows.append(
        {
            "quantity": f"between-race SD of logit turnout within region (published: interim, {noise['df']} df)",
            "region": ", ".join(r["region"] for r in noise["regions"]),
            "published": float(noise["estimate"]),
            "simulated": pooled,
            "kind": CHECK,
        }
    )
    turnout = races.groupby("region")[["voted", "registered"]].sum()
    gap = (100 * turnout["voted"] / turnout["registered"] - margins.set_index("region")["turnout_pct"]).abs().max()
    rows.append(
        {
            "quantity": "largest gap of regional turnout (pp)",
            "region": "all 14",
            "published": 0.0,
            "simulated": float(gap),
            "kind": IDENTITY,
        }
    )
    return pd.DataFrame(rows, columns=["quantity", "region", "published", "simulated", "kind"])
