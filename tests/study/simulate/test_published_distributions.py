"""The simulator against the published race-level figures: exact distributions of candidates per post, the fitted
spread and noise SD (params.yaml equals the estimates), the dependence settings, and the sensitivity scenarios.

The published figures are read from data/raw through the ingest code (not from a stage's outputs), so a data
change that moves an estimate fails here."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from scipy.stats import chi2

from akim_turnout.data import ingest
from akim_turnout.data.processed import ROUND_2021
from akim_turnout.pipeline.parameters import default
from akim_turnout.pipeline.paths import project_root
from akim_turnout.study import replications, simulate

# Published posts by number of candidates (data/raw/regional.csv; Akmola counts registered candidates, Kyzylorda and
# Mangystau candidates on the ballot), typed here from the codebook as an independent copy.
PUBLISHED = {
    "Akmola": {3: 80, 4: 12, 5: 3},
    "Kyzylorda": {2: 6, 3: 28, 4: 5, 6: 1},
    "Mangystau": {2: 5, 3: 5},
}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return ingest.build_processed(ingest.load_raw(project_root() / "data" / "raw"))


@pytest.fixture(scope="module")
def inputs(tables):
    national_row = tables["national"].set_index("round_id").loc[ROUND_2021]
    return simulate.inputs_from_published(tables["regional_2021"], national_row)


@pytest.fixture(scope="module")
def margins(inputs) -> pd.DataFrame:
    return simulate.allocate_region_margins(*inputs)


@pytest.mark.parametrize("seed", [0, 20210725, 99])
def test_published_regions_have_exactly_the_published_posts_by_candidates(inputs, seed):
    races = simulate.simulate_races(*inputs, simulate.SimulationSettings.from_params(), seed=seed)
    for region, counts in PUBLISHED.items():
        got = races.loc[races["region"] == region, "n_candidates"].value_counts().sort_index().to_dict()
        assert got == counts, region
    assert races["n_candidates"].min() >= 2


def test_distribution_stage_matches_the_regional_candidate_total(margins):
    totals = margins.set_index("region")["cands"]
    for region, counts in PUBLISHED.items():
        assert sum(k * n for k, n in counts.items()) == totals[region]
        assert sum(counts.values()) == margins.set_index("region").at[region, "posts"]
    assert sorted(margins.loc[margins["cands_distribution_source"] == "published", "region"]) == sorted(PUBLISHED)


def test_incomplete_distribution_is_not_used():
    regions = pd.DataFrame(
        {"posts": [10, 10], "cands": [25, 25], "posts_with_2_cands": [5, 4], "posts_with_3_cands": [5, 5]}
    )
    out = simulate.published_distributions(regions)
    assert out.loc[0, "posts_with_3_cands"] == 5 and out.loc[0, "posts_with_6_cands"] == 0
    assert out.loc[1].isna().all()  # 4 + 5 posts do not account for 10: never completed by guessing


def test_same_seed_same_races(inputs):
    settings = simulate.SimulationSettings.from_params(slope_sd=0.2, district_share=0.3, mix_endogeneity=0.4)
    a = simulate.simulate_races(*inputs, settings, seed=5)
    b = simulate.simulate_races(*inputs, settings, seed=5)
    pd.testing.assert_frame_equal(a, b)


def test_rule_is_even_at_zero_spread_and_keeps_totals():
    counts = simulate.candidate_counts_rule(10, 33, 2, 0.0, np.zeros(10))
    assert sorted(counts.tolist()) == [3] * 7 + [4] * 3  # mean 3.3: floor or ceiling only
    rng = np.random.default_rng(1)
    counts = simulate.candidate_counts_rule(50, 160, 2, 1.0, rng.standard_normal(50))
    assert counts.sum() == 160 and counts.min() >= 2


def test_spread_default_is_the_fit(margins):
    fit = simulate.fit_candidate_spread(margins, 2)
    # published pooled variance by hand: Akmola 95 posts (var 0.21607), Kyzylorda 40 (0.4975), Mangystau 10 (0.25)
    akmola = (80 * 9 + 12 * 16 + 3 * 25) / 95 - (303 / 95) ** 2
    kyzylorda = (6 * 4 + 28 * 9 + 5 * 16 + 36) / 40 - (122 / 40) ** 2
    target = (95 * akmola + 40 * kyzylorda + 10 * 0.25) / 145
    assert fit["target_variance"] == pytest.approx(target, rel=1e-12)
    assert fit["fitted_variance"] == pytest.approx(target, abs=0.01)
    assert default("simulate", "settings")["cands_spread_sd"] == fit["cands_spread_sd"]


def test_noise_estimate_by_hand_and_params_default(tables):
    est = simulate.interim_noise_estimate(tables["races"])
    mangystau = logit(np.array([22.1, 66, 58.9, 61.8, 58.9, 66.9, 46.1, 43.8, 36.8, 34.8]) / 100)
    ss_m = ((mangystau - mangystau.mean()) ** 2).sum()
    n = np.array([1, 12, 3, 4, 3, 4, 13])  # Karmakshy okrug, then the districts Aral ... Zhanakorgan
    k = logit(np.array([33.5, 47.8, 56.7, 48.2, 47.6, 54.2, 50.8]) / 100)
    ss_k = (n * (k - (n * k).sum() / n.sum()) ** 2).sum()
    assert est["df"] == 15
    assert est["estimate"] == pytest.approx(math.sqrt((ss_m + ss_k) / 15), rel=1e-12)
    assert est["low"] == pytest.approx(math.sqrt((ss_m + ss_k) / chi2.ppf(0.975, 15)), rel=1e-12)
    assert est["high"] == pytest.approx(math.sqrt((ss_m + ss_k) / chi2.ppf(0.025, 15)), rel=1e-12)
    assert [c["region"] for c in est["checks"]] == ["Kostanay"]  # districts without posts: a check only
    assert default("simulate", "settings")["overdispersion_sd"] == round(est["estimate"], 2)
    grid = default("simulation_study", "sensitivity")["overdispersion_sd"]
    assert grid == [round(est["low"], 2), round(est["estimate"], 2), round(est["high"], 2)]


def test_noise_estimate_refuses_data_without_usable_units():
    frame = pd.DataFrame(
        {
            "round_id": ["2021-07-25_rural"],
            "region": ["A"],
            "scope": ["race"],
            "posts": [np.nan],
            "turnout_interim_pct": [50.0],
        }
    )
    with pytest.raises(ValueError, match="two or more units"):
        simulate.interim_noise_estimate(frame)


def test_district_noise_is_correlated_inside_districts():
    posts = np.array([400])
    race_region = np.zeros(400, dtype=np.int64)
    base = simulate.SimulationSettings.from_params(overdispersion_sd=1.0, district_races=4)
    within = []
    for share in (0.0, 0.5):
        noise = simulate._race_noise(race_region, posts, replace(base, district_share=share), np.random.default_rng(3))
        pairs = noise.reshape(100, 4)
        within.append(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
        assert noise.std() == pytest.approx(1.0, abs=0.12)
    assert abs(within[0]) < 0.25 and 0.3 < within[1] < 0.7


def test_endogenous_mix_correlates_self_share_with_noise():
    rng = np.random.default_rng(0)
    region = np.zeros(2000, dtype=np.int64)
    noise = rng.standard_normal(2000)
    share = rng.random(2000)
    s = simulate.SimulationSettings.from_params(overdispersion_sd=1.0)
    for rho in (0.0, 0.6):
        perm = simulate._endogenous_order(region, noise, share, replace(s, mix_endogeneity=rho), rng)
        assert sorted(perm.tolist()) == list(range(2000))  # a permutation: regional totals are kept
        r = np.corrcoef(share[perm], noise)[0, 1]
        assert (abs(r) < 0.07) if rho == 0 else (0.5 < r < 0.65)


def test_random_slopes_vary_by_region(inputs):
    races = simulate.simulate_races(*inputs, simulate.SimulationSettings.from_params(slope_sd=0.3), seed=2)
    slopes = np.array(list(races.attrs["slope_region"].values()))
    assert len(slopes) == 14 and 0.1 < slopes.std() < 0.6
    flat = simulate.simulate_races(*inputs, simulate.SimulationSettings.from_params(), seed=2)
    assert set(flat.attrs["slope_region"].values()) == {-0.3}


def test_published_comparison_kinds(inputs, margins, tables):
    races = simulate.simulate_races(*inputs, simulate.SimulationSettings.from_params(), seed=1)
    noise = simulate.interim_noise_estimate(tables["races"])
    spread = simulate.fit_candidate_spread(margins, 2, draws=20)
    table = simulate.published_comparison(races, margins, tables["races"], noise, spread)
    identities = table[table["kind"] == simulate.IDENTITY]
    counts = identities[identities["quantity"].str.startswith("posts with")]
    assert len(counts) == 15 and (counts["published"] == counts["simulated"]).all()
    assert set(table["kind"]) == {simulate.IDENTITY, simulate.FITTED, simulate.CHECK}


def test_sensitivity_scenarios_one_at_a_time():
    base = simulate.SimulationSettings.from_params()
    grid = {"slope_sd": [0.0, 0.15, 0.3], "party_placement": ["spread", "random"]}
    scenarios = replications.sensitivity_scenarios(base, grid)
    assert [(d, v) for d, v, _ in scenarios] == [
        ("base", ""),
        ("slope_sd", 0.15),
        ("slope_sd", 0.3),
        ("party_placement", "random"),
    ]
    assert scenarios[3][2].slope_sd == base.slope_sd and scenarios[1][2].party_placement == base.party_placement
    with pytest.raises(ValueError, match="unknown"):
        replications.sensitivity_scenarios(base, {"nope": [1]})


def test_holds_under():
    table = pd.DataFrame(
        {
            "dimension": ["base", "slope_sd", "district_share"],
            "value": ["", "0.3", "0.5"],
            "method": ["wild_bootstrap"] * 3,
            "acceptable": [True, False, False],
        }
    )
    assert replications.holds_under(table, "wild_bootstrap") == {
        "holds": ["base"],
        "fails": ["slope_sd=0.3", "district_share=0.5"],
    }


def test_sensitivity_defaults_include_zero_dependence():
    grid = default("simulation_study", "sensitivity")
    for key in ("slope_sd", "district_share", "mix_endogeneity"):
        assert 0.0 in grid[key] and len(grid[key]) >= 2


def test_calibration_context_table_and_kinds():
    from akim_turnout.report import context

    records = [
        {
            "quantity": "posts with 3 candidates",
            "region": "Akmola",
            "published": 80.0,
            "simulated": 80.0,
            "kind": simulate.IDENTITY,
        },
        {"quantity": "noise", "region": "all", "published": 0.5616, "simulated": 0.58131, "kind": simulate.CHECK},
    ]
    table = context.calibration_table(records)
    assert list(table.columns) == ["published distribution", "region", "published", "simulated", "kind of match"]
    assert table.iloc[1]["simulated"] == "0.581"
    assert context.kinds_text(pd.DataFrame(records)) == {simulate.IDENTITY: 1, simulate.CHECK: 1}
    assert context.calibration_table([]).empty
    assert "calibration" in context.TEMPLATES and "calibration" in context.TABLES
    assert "candidate_distributions" in context.FIGURES


def test_candidate_distribution_figure_draws_each_published_region():
    from akim_turnout.report import figures

    rows = pd.DataFrame(
        [
            {
                "quantity": f"posts with {k} candidates",
                "region": r,
                "published": float(n),
                "simulated": float(n),
                "kind": simulate.IDENTITY,
            }
            for r, counts in PUBLISHED.items()
            for k, n in counts.items()
        ]
        + [{"quantity": "other", "region": "x", "published": 1.0, "simulated": 1.0, "kind": simulate.CHECK}]
    )
    fig = figures.plot_candidate_distributions(rows, simulated=False)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == list(PUBLISHED)
    heights = [sorted(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert heights == [sorted(float(n) for n in counts.values()) for counts in PUBLISHED.values()]


def test_scenarios_in_words():
    from akim_turnout.report import context, tables

    assert tables.setting("base") == "none (the defaults)"
    assert tables.setting("slope_sd") == "SD over regions of the self-nominated share's effect (random slope, logit)"
    assert context.scenarios_text(["base", "district_share=0.5"]) == (
        "none (the defaults); share of the race noise variance common to a district 0.5"
    )
    assert context.scenarios_text([]) == "none"


def test_sensitivity_rows_judge_acceptability_by_the_recommendation_rule() -> None:
    """A sensitivity row's ``acceptable`` is the rule's own verdict on that scenario's summary: a method whose size
    interval at 100 data sets ends above the resolvable ceiling is not acceptable, one inside both bounds is."""
    from akim_turnout.study import montecarlo

    def rows(rejections: int, covered: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "design_index": [0, 0],
                "effect": [0.0, -0.3],
                "n_ok": [100, 100],
                "n": [100, 100],
                "rejection": [rejections / 100, 0.5],
                "rejection_low": montecarlo.clopper_pearson(np.array([rejections, 50]), np.array([100, 100]))[0],
                "rejection_high": montecarlo.clopper_pearson(np.array([rejections, 50]), np.array([100, 100]))[1],
                "coverage": [covered / 100, covered / 100],
                "coverage_low": montecarlo.clopper_pearson(np.array([covered, covered]), np.array([100, 100]))[0],
                "coverage_high": montecarlo.clopper_pearson(np.array([covered, covered]), np.array([100, 100]))[1],
            }
        )

    ceiling = montecarlo.resolvable_bound(100, 0.05, "upper")
    floor = montecarlo.resolvable_bound(100, 0.95, "lower")
    good, bad = montecarlo.method_standing(rows(5, 95), 0.05), montecarlo.method_standing(rows(20, 95), 0.05)
    assert good["acceptable"] and good["size_high"] <= ceiling and good["coverage_min_low"] >= floor
    assert not bad["acceptable"] and bad["size_high"] > ceiling
