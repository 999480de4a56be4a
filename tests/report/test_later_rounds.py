"""The later-rounds table: real races after 25 July 2021 listed as published, never computed."""

from __future__ import annotations

import pandas as pd
import pytest

from akim_turnout.report import later_rounds


def _races() -> pd.DataFrame:
    base = {"region": "R", "district": "D", "unit_type": "village", "cands_on_ballot": None, "cands_registered": None,
            "turnout_pct": None, "votes_winner": None}  # fmt: skip
    return pd.DataFrame(
        [
            {**base, "race_id": "a", "round_id": "2025-10-19_rural", "unit": "Toretam", "voters_on_rolls": 6354.0,
             "votes_cast": 3229.0, "cands_on_ballot": 3.0},
            {**base, "race_id": "b", "round_id": "2024-12-15_town", "unit": "Talgar", "voters_on_rolls": 42774.0,
             "votes_cast": 12875.0, "turnout_pct": 30.1, "cands_registered": 3.0, "votes_winner": 9071.0},
            {**base, "race_id": "c", "round_id": "2021-07-25_rural", "unit": "Old", "voters_on_rolls": 1.0,
             "votes_cast": 1.0},
            {**base, "race_id": "d", "round_id": "2023-11-05_district", "unit": "Pilot", "voters_on_rolls": 1.0,
             "votes_cast": 1.0},
            {**base, "race_id": "e", "round_id": "undated_rural_x", "unit": "Half", "voters_on_rolls": 10.0,
             "votes_cast": None},
        ]
    )  # fmt: skip


def _figures() -> pd.DataFrame:
    rows = [
        ("a", "voters_on_rolls", "primary", "C52", "q1"),
        ("a", "votes_cast", "primary", "C52", "q1"),
        ("b", "voters_on_rolls", "primary", "C33", "q2"),
        ("b", "votes_cast", "primary", "C34", "q3"),
        ("b", "votes_cast", "alternative", "C99", "other"),
    ]
    return pd.DataFrame(rows, columns=["race_id", "variable", "role", "source_id", "quote"])


def test_only_later_rural_and_town_races_with_both_counts_in_date_order() -> None:
    table = later_rounds.later_round_races(_races(), _figures())
    assert list(table["round"]) == ["2024-12-15_town", "2025-10-19_rural"]
    talgar, toretam = table.to_dict("records")
    assert talgar["voters on the list (count)"] == "42,774" and talgar["voted (count)"] == "12,875"
    assert talgar["turnout as printed (%)"] == "30.1" and talgar["winner's votes (count)"] == "9,071"
    assert talgar["source"] == "C33, C34" and talgar["quote"] == "q2 / q3"  # the alternative's quote is not shown
    assert toretam["turnout as printed (%)"] == "–", "turnout is never computed from the counts"
    assert toretam["candidates (count)"] == "3" and toretam["quote"] == "q1"
    assert toretam["race"] == "Toretam (village), D, R"


def test_round_dates_and_context() -> None:
    assert [later_rounds.round_date(r) for r in ("2024-09-08_town", "2026-01_town", "2025_rural_x", "undated_x")] == [
        "2024-09-08",
        "2026-01",
        "2025",
        "undated",
    ]
    context = later_rounds.context(_races(), _figures())
    assert (context["count"], context["rounds"], context["first"], context["last"]) == (
        2,
        2,
        "2024-12-15",
        "2025-10-19",
    )


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="races table lacks votes_cast"):
        later_rounds.later_round_races(_races().drop(columns="votes_cast"), _figures())
