"""Shared test set-up: helper modules in tests/ importable whatever pytest's import mode, and the real 2021 design
the simulation tests share."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from real_2021 import NATIONAL_2021, real_2021_regions  # noqa: E402

from akim_turnout.study.simulate import allocate_region_margins  # noqa: E402


@pytest.fixture(scope="module")
def regions() -> pd.DataFrame:
    """The 14 regions of 25 July 2021 as the simulator reads them (tests/real_2021.py)."""
    return real_2021_regions()


@pytest.fixture(scope="module")
def base_margins(regions: pd.DataFrame) -> pd.DataFrame:
    """Regional margins completed from the national totals (simulate.allocate_region_margins)."""
    return allocate_region_margins(regions, NATIONAL_2021)
