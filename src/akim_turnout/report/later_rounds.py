"""The real races after 25 July 2021 whose results the stored pages publish in full: a descriptive table for the
report (``templates/sections/later_rounds.html.j2``), labelled by round and date, each with the sentence that states
its counts. Nothing is estimated or computed: counts and turnout are shown as published (turnout only where the
source prints it)."""

from __future__ import annotations

import re

import pandas as pd

ROUND_2021 = "2021-07-25_rural"
# Rural-level akims (villages, settlements, rural okrugs, towns of district significance); district and city akims
# (the 2023 pilot, Semey 2025) are another level.
OTHER_LEVELS = ("_district", "_city")
COMPLETE = ("voters_on_rolls", "votes_cast")  # a race is listed when both are published


def round_date(round_id: str) -> str:
    """The date a round id states: a day, a month, a year, or 'undated'."""
    for pattern in (r"^(\d{4}-\d{2}-\d{2})_", r"^(\d{4}-\d{2})_", r"^(\d{4})_"):
        match = re.match(pattern, round_id)
        if match:
            return match.group(1)
    return "undated"


def _count(value: object) -> str:
    return "–" if value is None or value != value else f"{int(value):,}"


def later_round_races(races: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    """One row per later rural or town race with published electorate and votes cast, in date order.

    ``races``: the processed wide race table (``races.parquet``); ``figures``: the processed figure rows
    (``figures.parquet``, for sources and quotes). Raises ValueError when a column it needs is missing."""
    for frame, name, columns in (
        (races, "races", ("race_id", "round_id", "region", "district", "unit", "unit_type", *COMPLETE)),
        (figures, "figures", ("race_id", "variable", "role", "source_id", "quote")),
    ):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(f"the {name} table lacks {', '.join(missing)}")
    later = races[
        (races["round_id"] != ROUND_2021)
        & ~races["round_id"].str.endswith(OTHER_LEVELS)
        & races["voters_on_rolls"].notna()
        & races["votes_cast"].notna()
    ]
    rows = []
    for race in later.itertuples():
        stated = figures[
            (figures["race_id"] == race.race_id) & (figures["role"] == "primary") & figures["variable"].isin(COMPLETE)
        ]
        counts = [getattr(race, column, None) for column in ("cands_on_ballot", "cands_registered")]
        candidates = next((count for count in counts if count is not None and count == count), None)
        published_turnout = getattr(race, "turnout_pct", None)
        rows.append(
            {
                "round": race.round_id,
                "date": round_date(race.round_id),
                "race": f"{race.unit} ({race.unit_type}), {race.district}, {race.region}",
                "voters on the list (count)": _count(race.voters_on_rolls),
                "voted (count)": _count(race.votes_cast),
                "turnout as printed (%)": "–"
                if published_turnout is None or published_turnout != published_turnout
                else f"{published_turnout:g}",
                "candidates (count)": _count(candidates),
                "winner's votes (count)": _count(getattr(race, "votes_winner", None)),
                "source": ", ".join(sorted(set(stated["source_id"]))),
                "quote": " / ".join(dict.fromkeys(stated["quote"])),
            }
        )
    table = pd.DataFrame(rows, columns=[
        "round", "date", "race", "voters on the list (count)", "voted (count)", "turnout as printed (%)",
        "candidates (count)", "winner's votes (count)", "source", "quote",
    ])  # fmt: skip
    return table.sort_values(["date", "race"], kind="stable").reset_index(drop=True)


def context(races: pd.DataFrame, figures: pd.DataFrame) -> dict:
    """The section's numbers: the table, how many races and the first and last dated round."""
    table = later_round_races(races, figures)
    dated = sorted(d for d in table["date"] if d != "undated")
    return {
        "table": table,
        "count": len(table),
        "rounds": int(table["round"].nunique()),
        "first": dated[0] if dated else "–",
        "last": dated[-1] if dated else "–",
        "undated": int((table["date"] == "undated").sum()),
    }
