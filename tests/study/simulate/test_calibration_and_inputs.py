"""The simulator (akim_turnout.study.simulate) on the published inputs: the calibration table, scaled
simulations, and the inputs read from the published tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_2021 import NATIONAL_2021, real_2021_regions  # tests/ is on sys.path, see tests/conftest.py

from akim_turnout.study import simulate


@pytest.fixture(scope="module")
def margins() -> pd.DataFrame:
    return simulate.allocate_region_margins(real_2021_regions(), NATIONAL_2021)


def test_calibration_check_adds_up_the_simulated_races(margins: pd.DataFrame) -> None:
    races = simulate.simulate_from_margins(margins, SETTINGS, seed=4)
    check = simulate.calibration_check(races, margins).set_index("region")
    for simulated, published in (
        ("posts_sim", "posts"),
        ("cands_sim", "cands"),
        ("party_sim", "cands_party"),
        ("self_sim", "cands_self"),
        ("women_sim", "cands_women"),
        ("registered_sim", "voters_on_rolls"),
    ):
        assert check[simulated].tolist() == check[published].tolist(), simulated
    voted = races.groupby("region")["voted"].sum()
    assert check["voted_sim"].tolist() == voted[check.index].tolist()
    np.testing.assert_allclose(check["turnout_sim_pct"], 100 * check["voted_sim"] / check["registered_sim"], rtol=1e-15)
    assert ((check["turnout_sim_pct"] - check["turnout_pct"]).abs() < 50 / check["voters_on_rolls"]).all()


def test_scaled_simulation_keeps_regional_proportions(margins: pd.DataFrame) -> None:
    races = simulate.simulate_scaled(real_2021_regions(), NATIONAL_2021, SETTINGS, seed=5, n_races=1460)
    assert len(races) == 1460
    posts = races.groupby("region").size()
    assert posts[margins["region"]].tolist() == (2 * margins["posts"]).tolist()
    assert races["n_candidates"].sum() == 2 * 2297 and races["registered"].sum() == 2 * 1209817
    default = simulate.simulate_scaled(real_2021_regions(), NATIONAL_2021, n_races=730, seed=5)
    pd.testing.assert_frame_equal(default, simulate.simulate_races(real_2021_regions(), NATIONAL_2021, seed=5))


def test_inputs_from_published_tables() -> None:
    regional = real_2021_regions().assign(extra_column=1)
    national_row = {
        "posts": 730,
        "cands_registered": 2297,
        "cands_registered_party": 878,
        "cands_registered_self": 1419,
        "cands_registered_women": 458,
        "voters_on_rolls": 1209817,
        "other": 5,
    }
    regions, national = simulate.inputs_from_published(regional, national_row)
    assert regions.columns.tolist() == simulate.REGIONAL_INPUTS
    assert national == {
        "posts": 730.0,
        "cands": 2297.0,
        "cands_party": 878.0,
        "cands_self": 1419.0,
        "cands_women": 458.0,
        "voters_on_rolls": 1209817.0,
    }
    with pytest.raises(ValueError, match=r"^regional table lacks \['turnout_pct'\]$"):
        simulate.inputs_from_published(regional.drop(columns="turnout_pct"), national_row)


SETTINGS = simulate.SimulationSettings.from_params()
