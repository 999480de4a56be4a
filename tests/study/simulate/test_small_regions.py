"""Exact checks of the simulator that surviving mutants of :mod:`akim_turnout.study.simulate` showed to be missing.

Every input is built inside its test (no module-scoped fixture), on two-region tables small enough to work out by
hand:

* allocation of regional margins: fully published tables kept as integer counts, unknown values (also given as
  ``None`` in object columns) filled from the national remainder and flagged ``assumed``, boundary cases that are
  accepted (a turnout of 1 % or 99 %, a region of party nominees only, one voter per post, a table indexed by region),
  and the exact message of every refusal;
* feasibility of margins handed to :func:`simulate.simulate_from_margins`: boundaries that are accepted and the
  exact messages of those refused;
* largest-remainder rounding of counts whose products exceed 64-bit integers, and of fractional parts that differ
  by about 1e-16;
* the winner's votes against a Dirichlet split worked out from the same gamma draws, and no warning when every
  gamma draw of a race underflows;
* the regional intercepts: Newton steps (few evaluations), and regions calibrated together exactly as alone;
* the message of settings refused at construction.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from akim_turnout.study import simulate
from akim_turnout.study.simulate import SimulationSettings

# --------------------------------------------------------------------------------------------------------------
# Two-region inputs
# --------------------------------------------------------------------------------------------------------------

COUNTS = ["posts", "cands", "cands_party", "cands_self", "cands_women", "voters_on_rolls"]


def two_regions(**columns: list) -> pd.DataFrame:
    """Regions A and B, every figure published and consistent with :data:`NATIONAL`."""
    frame = pd.DataFrame(
        {
            "region": ["A", "B"],
            "posts": [2.0, 3.0],
            "cands": [5.0, 7.0],
            "cands_party": [2.0, 3.0],
            "cands_self": [3.0, 4.0],
            "cands_women": [1.0, 2.0],
            "voters_on_rolls": [1000.0, 1500.0],
            "turnout_pct": [60.0, 70.0],
        }
    )
    for column, values in columns.items():
        frame[column] = pd.Series(values, dtype=object if None in values else None)
    return frame


NATIONAL = {"posts": 5, "cands": 12, "cands_party": 5, "cands_self": 7, "cands_women": 3, "voters_on_rolls": 2500}


def two_margins(**columns: list) -> pd.DataFrame:
    """The same two regions as completed margins (integer counts), feasible with the default settings (2 candidates,
    50 voters per post)."""
    frame = two_regions().astype(dict.fromkeys(COUNTS, "int64"))
    for column, values in columns.items():
        frame[column] = values
    return frame


# --------------------------------------------------------------------------------------------------------------
# Allocation of regional margins
# --------------------------------------------------------------------------------------------------------------


def test_fully_published_regions_are_kept_as_integer_counts_flagged_published() -> None:
    # Every column adds up to its national total, so nothing is left to allocate (a remainder of 0 is no error).
    margins = simulate.allocate_region_margins(two_regions(), NATIONAL)
    for column in COUNTS:
        assert margins[column].dtype == np.int64, column
        assert margins[column].tolist() == two_regions()[column].astype(int).tolist(), column
        assert margins[f"{column}_source"].tolist() == ["published", "published"], column


def test_unknown_values_given_as_none_take_the_national_remainder_without_warnings() -> None:
    # B publishes nothing but its turnout: it is the only unknown region, so it takes each national remainder
    # whole (posts 5 - 2, candidates 12 - 5, party 5 - 2, women 3 - 1, voters 2500 - 1000); its self-nominated
    # are its candidates minus its party nominees (7 - 3). Object columns holding None read as missing.
    regions = two_regions(
        posts=[2, None],
        cands=[5, None],
        cands_party=[2.0, np.nan],
        cands_self=[3.0, np.nan],
        cands_women=[1, None],
        voters_on_rolls=[1000, None],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        margins = simulate.allocate_region_margins(regions, NATIONAL)
    expected = {
        "posts": [2, 3],
        "cands": [5, 7],
        "cands_party": [2, 3],
        "cands_self": [3, 4],
        "cands_women": [1, 2],
        "voters_on_rolls": [1000, 1500],
    }
    for column, values in expected.items():
        assert margins[column].tolist() == values, column
        assert margins[f"{column}_source"].tolist() == ["published", "assumed"], column


def test_turnout_at_one_and_ninety_nine_percent_given_as_integers_is_accepted_as_floats() -> None:
    margins = simulate.allocate_region_margins(two_regions(turnout_pct=[1, 99]), NATIONAL)
    assert margins["turnout_pct"].dtype == np.float64
    assert margins["turnout_pct"].tolist() == [1.0, 99.0]


def test_a_region_of_party_nominees_only_is_accepted() -> None:
    # A: all 5 candidates party nominees, none self-nominated; B: 3 and 4. National: 8 party, 4 self, 12 in all.
    regions = two_regions(cands_party=[5.0, 3.0], cands_self=[0.0, 4.0])
    margins = simulate.allocate_region_margins(regions, {**NATIONAL, "cands_party": 8, "cands_self": 4})
    assert margins["cands_party"].tolist() == [5, 3]
    assert margins["cands_self"].tolist() == [0, 4]


def test_one_voter_per_post_is_enough_for_the_allocation() -> None:
    # The allocation asks for at least one voter per post (the settings' min_registered applies at simulation).
    regions = two_regions(voters_on_rolls=[2.0, 1500.0])
    margins = simulate.allocate_region_margins(regions, {**NATIONAL, "voters_on_rolls": 1502})
    assert margins["voters_on_rolls"].tolist() == [2, 1500]


def test_regions_indexed_by_their_names_allocate_as_with_a_plain_index() -> None:
    # The index is dropped: an index named like one of the columns must not collide with it.
    plain = simulate.allocate_region_margins(two_regions(), NATIONAL)
    by_name = simulate.allocate_region_margins(two_regions().set_index("region", drop=False), NATIONAL)
    pd.testing.assert_frame_equal(by_name, plain)


@pytest.mark.parametrize(
    ("regions", "national", "message"),
    [
        (two_regions().drop(columns="cands_women"), NATIONAL, "regions is missing column(s): ['cands_women']"),
        (
            two_regions(),
            {k: v for k, v in NATIONAL.items() if k != "voters_on_rolls"},
            "national is missing key(s): ['voters_on_rolls']",
        ),
        (two_regions(), {**NATIONAL, "cands_self": 6}, "national cands_party + cands_self must equal cands"),
        (
            two_regions(cands_self=[3.0, np.nan]),
            NATIONAL,
            "cands_party and cands_self must be both published or both missing",
        ),
        (
            two_regions(cands_party=[1.0, 3.0]),
            {**NATIONAL, "cands_party": 4, "cands_self": 8},
            "cands_party + cands_self must equal cands where published",
        ),
        (
            # A publishes 9 self-nominated, more than the national 5: B (10 candidates) would need 15 - 1 = 14
            # party nominees.
            two_regions(
                cands=[10.0, 10.0], cands_party=[1.0, np.nan], cands_self=[9.0, np.nan], cands_women=[1.0, 2.0]
            ),
            {**NATIONAL, "cands": 20, "cands_party": 15, "cands_self": 5},
            "cands_party allocation exceeds cands in some region",
        ),
        (two_regions(), {**NATIONAL, "posts": 6}, "posts: regional values do not add up to the national total"),
        (
            two_regions(),
            {**NATIONAL, "cands": 10, "cands_party": 4, "cands_self": 6},
            "cands: published regional values exceed the national total",
        ),
        (
            two_regions(cands_party=[4.0, 3.0], cands_self=[1.0, 4.0]),
            NATIONAL,
            "cands_party: published regional values exceed the national total",
        ),
        (
            two_regions(),
            {**NATIONAL, "cands_women": 2},
            "cands_women: published regional values exceed the national total",
        ),
        (
            two_regions(),
            {**NATIONAL, "voters_on_rolls": 2000},
            "voters_on_rolls: published regional values exceed the national total",
        ),
    ],
)
def test_allocation_refusals_give_exact_messages(regions: pd.DataFrame, national: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        simulate.allocate_region_margins(regions, national)
    assert str(caught.value) == message


def test_an_unknown_posts_rule_is_refused_with_the_rules_known() -> None:
    with pytest.raises(ValueError) as caught:
        simulate.allocate_region_margins(two_regions(), NATIONAL, unknown_posts_rule="by_voters")
    assert str(caught.value) == "unknown_posts_rule must be one of ('equal',)"


@pytest.mark.parametrize("turnout", [[np.nan, 70.0], [None, 70.0], [0.0, 70.0], [60.0, 100.0], [-5.0, 70.0], [60, 150]])
def test_turnout_must_be_known_and_strictly_between_0_and_100(turnout: list) -> None:
    with pytest.raises(ValueError) as caught:
        simulate.allocate_region_margins(two_regions(turnout_pct=turnout), NATIONAL)
    assert str(caught.value) == "turnout_pct must be known and strictly between 0 and 100"


# --------------------------------------------------------------------------------------------------------------
# Feasibility of margins
# --------------------------------------------------------------------------------------------------------------


def test_a_region_of_women_candidates_only_is_simulated() -> None:
    # B's 7 candidates are all women, so each of its races has only women.
    races = simulate.simulate_from_margins(two_margins(cands_women=[1, 7]), SimulationSettings.from_params(), seed=1)
    b = races[races["region"] == "B"]
    assert (b["n_women"] == b["n_candidates"]).all()
    assert b["n_women"].sum() == 7


def test_exactly_min_registered_voters_per_post_gives_races_of_that_size() -> None:
    # A has 2 posts and 2 x 50 voters: each of its races has exactly the minimum of 50.
    races = simulate.simulate_from_margins(
        two_margins(voters_on_rolls=[100, 1500]), SimulationSettings.from_params(), seed=1
    )
    assert races.loc[races["region"] == "A", "registered"].tolist() == [50, 50]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"cands_women": [6, 2]}, "more women candidates than candidates: ['A']"),
        ({"voters_on_rolls": [60, 1500]}, "fewer voters than min_registered per post: ['A']"),
        ({"posts": [2, 0], "cands": [5, 0], "cands_women": [1, 0], "voters_on_rolls": [1000, 0]}, "no posts: ['B']"),
        (
            {"cands_women": [6, 2], "voters_on_rolls": [1000, 140]},
            "more women candidates than candidates: ['A']; fewer voters than min_registered per post: ['B']",
        ),
        # counts are whole numbers whatever their dtype: 1000.5 voters would be truncated to 1000 without a word
        ({"voters_on_rolls": [1000.5, 1500.0]}, "a fraction in voters_on_rolls: ['A']"),
        (
            {"cands_party": [2.0, 2.5], "cands_women": [0.5, 2.0]},
            "a fraction in cands_party: ['B']; a fraction in cands_women: ['A']",
        ),
    ],
)
def test_infeasible_margins_give_exact_messages(columns: dict, message: str) -> None:
    # 60 voters for A's 2 posts fall short of 2 x 50; 140 for B's 3 posts of 3 x 50.
    with pytest.raises(ValueError) as caught:
        simulate.simulate_from_margins(two_margins(**columns), SimulationSettings.from_params(), seed=0)
    assert str(caught.value) == "Infeasible regional margins: " + message


def test_whole_counts_held_as_floats_simulate_as_integers() -> None:
    """The same margins as integers and as whole floats give the same races, seed for seed."""
    as_floats = {c: [float(v) for v in two_margins()[c]] for c in ("posts", "cands", "cands_party", "voters_on_rolls")}
    expected = simulate.simulate_from_margins(two_margins(), SimulationSettings.from_params(), seed=3)
    got = simulate.simulate_from_margins(two_margins(**as_floats), SimulationSettings.from_params(), seed=3)
    pd.testing.assert_frame_equal(got, expected)


# --------------------------------------------------------------------------------------------------------------
# Rounding, winners and intercepts
# --------------------------------------------------------------------------------------------------------------


def test_largest_remainder_of_counts_beyond_64_bit_products() -> None:
    # 10^10 split 1 : 3 is 2.5 x 10^9 and 7.5 x 10^9; total x basis (10^20) does not fit a 64-bit integer.
    shares = simulate.largest_remainder(10**10, np.array([10**10, 3 * 10**10]))
    assert shares.dtype == np.int64
    assert shares.tolist() == [2_500_000_000, 7_500_000_000]


@pytest.mark.parametrize("quotas", [[0.25, 0.25 + 2**-53], [0.6, float(np.nextafter(0.6, 1.0))]])
def test_grouped_rounding_gives_the_unit_to_a_fraction_larger_by_one_part_in_ten_to_the_sixteen(
    quotas: list[float],
) -> None:
    # Two quotas of group 0 whose fractional parts differ by about 1e-16: the one unit left goes to the larger.
    out = simulate.grouped_largest_remainder(np.array(quotas), np.array([0, 0]), np.array([1]))
    assert out.tolist() == [0, 1]


@pytest.mark.parametrize("concentration", [1.0, 0.01])
def test_winner_votes_are_the_largest_share_of_a_dirichlet_split(concentration: float) -> None:
    # The same generator state gives the same gamma draws; each race's votes split by Hamilton's method in
    # proportion to its draws (simulate.largest_remainder, independent of the grouped rounding used inside).
    sizes = [2, 3, 1, 4, 2, 3]
    slot_race = np.repeat(np.arange(6), sizes)
    voted = np.array([100, 57, 30, 1000, 0, 9])
    gamma = np.random.default_rng(4).gamma(concentration, size=len(slot_race))
    expected = []
    for race, votes in enumerate(voted):
        draws = gamma[slot_race == race]
        assert draws.sum() > 0
        expected.append(int(simulate.largest_remainder(int(votes), draws).max()))
    if concentration == 1.0:
        # By hand for race 0: draws 3.7988 and 0.4308 give quotas 89.8 and 10.2, so 90 after rounding.
        assert expected[0] == 90
    else:
        # Race 3's four draws add up to less than 1, and its 1000 votes are still split.
        assert gamma[slot_race == 3].sum() < 1 and expected[3] < 1000
    winner = simulate._winner_votes(slot_race, voted, concentration, np.random.default_rng(4))
    assert winner.tolist() == expected


def test_races_whose_gamma_draws_all_underflow_give_every_vote_to_one_candidate_without_warnings() -> None:
    # At concentration 1e-6 every gamma draw underflows to 0 (checked below): each race goes whole to one candidate.
    slot_race = np.repeat(np.arange(4), [2, 3, 1, 4])
    voted = np.array([100, 57, 30, 1000])
    assert not np.random.default_rng(1).gamma(1e-6, size=len(slot_race)).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        winner = simulate._winner_votes(slot_race, voted, 1e-6, np.random.default_rng(1))
    assert winner.tolist() == [100, 57, 30, 1000]


def test_intercept_search_takes_newton_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # From the start value logit(target) - mean offset, Newton steps reach a gap below 1e-13 in a few evaluations;
    # bisection of the [-50, 50] bracket alone would need about log2(100 x 0.25 / 1e-13), some 48 halvings.
    evaluations = []

    def counted_expit(x: np.ndarray) -> np.ndarray:
        evaluations.append(1)
        return expit(x)

    monkeypatch.setattr(simulate, "expit", counted_expit)
    registered = np.array([50.0, 100.0, 200.0])
    offset = np.array([0.3, -0.4, 1.1])
    simulate._calibrate_alphas(np.zeros(3, dtype=np.int64), registered, offset, np.array([0.75]))
    assert len(evaluations) <= 10


@pytest.mark.parametrize("target", [0.25, 0.55, 0.6, 0.8])
def test_regions_are_calibrated_together_exactly_as_alone(target: float) -> None:
    # Region 0 has one race, at its closed-form intercept from the start; region 1 (offsets 20, -20, 0) needs
    # several Newton steps. Calibrating them together must leave region 0 where it is and give each region the
    # same intercept, to the last bit, as calibrating it alone.
    registered = np.array([100.0, 50.0, 100.0, 200.0])
    offset = np.array([0.7, 20.0, -20.0, 0.0])
    targets = np.array([target, 0.9])
    together = simulate._calibrate_alphas(np.array([0, 1, 1, 1]), registered, offset, targets)
    alone_0 = simulate._calibrate_alphas(np.array([0]), registered[:1], offset[:1], targets[:1])
    alone_1 = simulate._calibrate_alphas(np.zeros(3, dtype=np.int64), registered[1:], offset[1:], targets[1:])
    assert together.tolist() == [alone_0[0], alone_1[0]]


# --------------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------------


def test_settings_refused_at_construction_list_every_problem() -> None:
    with pytest.raises(ValueError) as caught:
        SimulationSettings.from_params(overdispersion_sd=-1.0, min_candidates=0)
    assert str(caught.value) == (
        "Invalid simulation settings: parameter 'settings.overdispersion_sd' must be a number from 0 to 5, got -1.0; "
        "parameter 'settings.min_candidates' must be an integer from 1 to 2, got 0"
    )
