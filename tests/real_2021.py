"""Regional figures of 25 July 2021 used as fixed inputs by the simulator, model and study tests.

Kept as literals (not read from data/raw) so these unit tests do not depend on the data layer. Each number is a
published figure of data/raw, though Kyzylorda's candidates are its nominations and Turkestan's voters its expected
voters, where the pipeline uses candidates on the ballot and voters on the rolls; Aktobe's posts and candidates,
added to data/raw later, are not here (tests/data/test_ingest.py::test_the_test_fixture_is_made_of_published_figures).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Published figures for the 25 July 2021 rural akim elections (fixed test inputs; see the module docstring).
TURNOUT_2021 = {
    "Akmola": 75.5,
    "Aktobe": 79,
    "Almaty": 66.5,
    "Atyrau": 74.4,
    "East Kazakhstan": 90.9,
    "Zhambyl": 90.7,
    "West Kazakhstan": 81.4,
    "Karaganda": 75.8,
    "Kostanay": 84.4,
    "Kyzylorda": 83.6,
    "Mangystau": 82.4,
    "Pavlodar": 76.9,
    "North Kazakhstan": 87.1,
    "Turkestan": 77.1,
}
POSTS_2021 = {
    "Akmola": 95,
    "Almaty": 71,
    "Atyrau": 18,
    "East Kazakhstan": 77,
    "West Kazakhstan": 31,
    "Karaganda": 75,
    "Kostanay": 65,
    "Kyzylorda": 40,
    "Mangystau": 10,
    "Pavlodar": 44,
    "North Kazakhstan": 70,
    "Turkestan": 60,
}
CANDS_2021 = {
    "Akmola": 303,
    "Almaty": 235,
    "Atyrau": 52,
    "East Kazakhstan": 232,
    "Karaganda": 268,
    "Kostanay": 147,
    "Kyzylorda": 151,
    "Mangystau": 25,
    "North Kazakhstan": 218,
    "Turkestan": 210,
}
PARTY_2021 = {"Akmola": 93, "Karaganda": 81, "Kyzylorda": 53, "North Kazakhstan": 68, "Turkestan": 83}
SELF_2021 = {"Akmola": 210, "Karaganda": 187, "Kyzylorda": 98, "North Kazakhstan": 150, "Turkestan": 127}
WOMEN_2021 = {"North Kazakhstan": 70, "Turkestan": 10}
VOTERS_2021 = {"Atyrau": 44305, "Mangystau": 14144, "Almaty": 220000, "Pavlodar": 52000, "Turkestan": 262500}
NATIONAL_2021 = {
    "posts": 730,
    "cands": 2297,
    "cands_party": 878,
    "cands_self": 1419,
    "cands_women": 458,
    "voters_on_rolls": 1209817,
}
PUBLISHED_2021 = {
    "posts": POSTS_2021,
    "cands": CANDS_2021,
    "cands_party": PARTY_2021,
    "cands_self": SELF_2021,
    "cands_women": WOMEN_2021,
    "voters_on_rolls": VOTERS_2021,
}


def real_2021_regions() -> pd.DataFrame:
    """The 14-row regional input frame, NaN where a figure was not published."""
    names = list(TURNOUT_2021)
    frame = pd.DataFrame({"region": names})
    for column, published in PUBLISHED_2021.items():
        frame[column] = [float(published.get(name, np.nan)) for name in names]
    frame["turnout_pct"] = [float(TURNOUT_2021[name]) for name in names]
    return frame
