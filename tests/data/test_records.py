"""Data records of the replication package: the conflict record names the primary it keeps, the audit tells quotes
checked on stored pages from curation excerpts, and the figures added from stored pages are as published."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from akim_turnout.data import audit
from akim_turnout.data.ingest import load_raw
from akim_turnout.data.validation import (
    DataValidationError,
    Row,
    Table,
    conflict_record_problems,
    stored_copy_record_problems,
)
from akim_turnout.pipeline.paths import project_path

RAW = project_path("data/raw")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _swap_akmola_turnout(raw: Path) -> None:
    """Make Aqmola News' 75.75 (B39) the primary and the commission list's 75.5 (A1) the alternative."""
    rows = _rows(raw / "regional.csv")
    for row in rows:
        if row["round_id"] == "2021-07-25_rural" and row["region"] == "Akmola" and row["variable"] == "turnout_pct":
            row["role"] = {"primary": "alternative", "alternative": "primary"}[row["role"]]
    _write(raw / "regional.csv", rows)


def test_changing_the_primary_fails_until_the_conflict_record_follows(tmp_path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(RAW, raw)
    _swap_akmola_turnout(raw)
    with pytest.raises(DataValidationError) as failure:
        load_raw(raw)
    message = str(failure.value)
    assert "[conflict-primary]" in message and "Akmola turnout_pct" in message
    assert "records 75.5 as kept, but the primary is 75.75 (B39)" in message
    search = _rows(raw / "conflict_search.csv")
    for row in search:
        if row["unit"] == "Akmola" and row["variable"] == "turnout_pct":
            row["stored_value"] = "75.75"
            row["resolution"] = "Kept Aqmola News' 75.75 (B39); the commission list's 75.5 (A1) is the alternative."
    _write(raw / "conflict_search.csv", search)
    load_raw(raw)  # the record now names the primary it keeps


def test_conflict_record_rule_on_hand_made_rows() -> None:
    records = [
        {"role": "primary", "as_of": "", "round_id": "r", "region": "X", "race_id": None, "variable": "v",
         "value": 5.0, "source_id": "B1"},
        {"role": "primary", "as_of": "14:00", "round_id": "r", "region": "Y", "race_id": None, "variable": "v",
         "value": 1.0, "source_id": "B9"},
    ]  # fmt: skip
    row = {"round_id": "r", "unit": "X", "variable": "v", "conflict": "yes"}
    ok = {**row, "stored_value": "5", "resolution": "Kept B1's 5; B2 is the alternative"}
    wrong_source = {**row, "stored_value": "5", "resolution": "Kept B11's figure"}  # B11 is not B1
    no_primary = {**row, "unit": "Y", "stored_value": "1", "resolution": "interim only (B9)"}
    not_a_conflict = {**row, "conflict": "no", "stored_value": "7", "resolution": ""}
    problems = conflict_record_problems(
        enumerate([ok, wrong_source, no_primary, not_a_conflict], start=2), records, "c.csv"
    )
    assert [(p.line, p.column) for p in problems] == [(3, "resolution"), (4, "stored_value")]
    assert problems[1].message == "Y v (r): records 1 as kept, but no primary figure is stored"


def test_the_audit_reports_both_verification_counts() -> None:
    raw = load_raw(RAW)
    text = audit.audit_report(raw, "data/raw")
    stored = {r["source_id"]: r["stored_copy"] for r in _rows(RAW / "sources.csv")}
    counts = {"found": 0, "excerpt only": 0}
    published = 0
    for name in ("national", "regional", "race_figures"):
        for row in _rows(RAW / f"{name}.csv"):
            if row["basis"] != "published":
                continue
            published += 1
            if audit.quote_states(row["quote"], row["value"]) and stored[row["source_id"]] in counts:
                counts[stored[row["source_id"]]] += 1
    found, excerpt = counts["found"], counts["excerpt only"]
    assert f"  quote found on a stored page: {found} of {published} ({100 * found / published:.1f} %)" in text
    assert f"  quote from an excerpt kept at curation: {excerpt} of {published}" in text
    # every file the audit names is one of the repository's own (none outside it)
    named = set(re.findall(r"[\w./-]+\.(?:md|csv|json)\b", text))
    assert named and all((RAW / Path(n).name).is_file() or project_path(n).is_file() for n in named), named
    assert "../" not in text


def test_rechecked_stored_copy_flags() -> None:
    stored = {r["source_id"]: r["stored_copy"] for r in _rows(RAW / "sources.csv")}
    # B23: its page (gov.kz, Khobda district) and quote are stored after all; N13 was not located; B33 is stored.
    assert (stored["B23"], stored["N13"], stored["B33"]) == ("found", "excerpt only", "found")
    # Searched among the stored pages without finding the source's address: no longer 'found'.
    not_found = ["B28", "B32", "B39", "B40", "C3", "C6", "C15", "C24", "C30", "C31", "C34d", "C43", "G5", "G6", "G9",
                 "G12", "G14", "G15a", "H2"]  # fmt: skip
    assert {stored[s] for s in not_found} == {"excerpt only"}
    assert stored["G17c"] == "not needed"  # no quote, no figure row


def test_stored_copy_record_agrees_with_sources() -> None:
    flags = {r["source_id"]: r["stored_copy"] for r in _rows(RAW / "sources.csv")}
    record = {r["source_id"]: r for r in _rows(RAW / "stored_copy_check.csv")}
    assert set(record) == set(flags) and len(flags) == 147
    assert all(record[s]["stored_copy"] == flags[s] for s in flags)
    found = {s for s, r in record.items() if r["found_by"] in ("url", "quote")}
    assert found == {s for s, f in flags.items() if f == "found"} and len(found) == 112
    assert all(record[s]["stored_address"].startswith("http") for s in found)


def _table(name: str, rows: list[dict[str, str]]) -> Table:
    return Table(name, tuple(rows[0]), tuple(Row(line, row) for line, row in enumerate(rows, start=2)))


def test_stored_copy_record_rule_on_hand_made_rows() -> None:
    sources = _table("s.csv", [{"source_id": "A", "stored_copy": "found"}, {"source_id": "B", "stored_copy": "found"},
                               {"source_id": "C", "stored_copy": "excerpt only"},
                               {"source_id": "D", "stored_copy": "excerpt only"}])  # fmt: skip
    page = {"found_by": "quote", "stored_address": "https://x"}
    check = _table("k.csv", [
        {"source_id": "A", "stored_copy": "found", **page},  # fine
        {"source_id": "B", "stored_copy": "excerpt only", "found_by": "not found", "stored_address": ""},  # differs
        {"source_id": "C", "stored_copy": "excerpt only", "found_by": "url", "stored_address": ""},  # page, no flag
    ])  # fmt: skip
    problems = stored_copy_record_problems(sources, check)
    assert [(p.file, p.line, p.column) for p in problems] == [
        ("s.csv", 5, "source_id"),
        ("k.csv", 3, "stored_copy"),
        ("k.csv", 4, "found_by"),
        ("k.csv", 4, "stored_address"),
    ]
    assert problems[0].message == "source 'D' has no row in k.csv"


def test_the_audit_counts_the_stored_copy_record() -> None:
    text = audit.audit_report(load_raw(RAW), "data/raw")
    rows = _rows(RAW / "stored_copy_check.csv")
    url = sum(r["found_by"] == "url" for r in rows)
    quote = sum(r["found_by"] == "quote" for r in rows)
    missing = sum(r["found_by"] == "not found" for r in rows)
    assert (url, quote, missing) == (11, 101, 20)
    assert f"  stored page found: {url + quote} ({url} by its address or title, {quote} by its quote)" in text
    assert f"  searched, no stored page at the source's address: {missing} " in text


def test_flipping_a_flag_without_the_record_fails(tmp_path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(RAW, raw)
    rows = _rows(raw / "sources.csv")
    for row in rows:
        if row["source_id"] == "B28":
            row["stored_copy"] = "found"
    _write(raw / "sources.csv", rows)
    with pytest.raises(DataValidationError, match=r"stored_copy_check.csv:\d+: column 'stored_copy'.*B28"):
        load_raw(raw)


def _figure(table: str, **match: str) -> dict[str, str]:
    rows = [r for r in _rows(RAW / f"{table}.csv") if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, (table, match, len(rows))
    return rows[0]


def test_zhambyl_2021_figures_and_the_732_conflict() -> None:
    posts = _figure("regional", round_id="2021-07-25_rural", region="Zhambyl", variable="posts")
    assert (posts["value"], posts["role"], posts["source_id"]) == ("41", "alternative", "B42")
    assert "в 41 сельском округе" in posts["quote"]
    published = [
        int(r["value"])
        for r in _rows(RAW / "regional.csv")
        if r["round_id"] == "2021-07-25_rural"
        and r["variable"] == "posts"
        and r["role"] == "primary"
        and not r["as_of"]
    ]
    national = _figure("national", round_id="2021-07-25_rural", variable="posts", role="primary")
    assert (sum(published) + 41, int(national["value"])) == (732, 730)
    party = _figure("regional", round_id="2021-07-25_rural", region="Zhambyl", variable="cands_nominated_party")
    self_ = _figure("regional", round_id="2021-07-25_rural", region="Zhambyl", variable="cands_nominated_self")
    total = _figure("regional", round_id="2021-07-25_rural", region="Zhambyl", variable="cands_nominated", as_of="")
    assert int(party["value"]) + int(self_["value"]) == int(total["value"]) == 122
    record = next(r for r in _rows(RAW / "conflict_search.csv") if r["unit"] == "Zhambyl" and r["variable"] == "posts")
    assert record["conflict"] == "yes" and record["stored_value"] == "" and "730 (N10)" in record["resolution"]


def test_observers_turkestan_and_later_races() -> None:
    observers = _figure("national", round_id="2021-07-25_rural", variable="observers")
    assert (observers["value"], observers["precision"]) == ("2000", "lower_bound")
    assert "more than 2 000 observers of the Center" in observers["quote"] and "one organisation" in observers["note"]
    nur_otan = _figure("regional", region="Turkestan", variable="cands_registered_nur_otan")
    assert nur_otan["value"] == "47" and "Nur Otan partıasynyń atynan 47 úmitker" in nur_otan["quote"]
    fort = {
        r["variable"]: int(r["value"]) for r in _rows(RAW / "race_figures.csv") if "fort-shevchenko" in r["race_id"]
    }
    assert fort == {"voters_on_rolls": 4591, "votes_cast": 2526, "votes_winner": 1756, "votes_candidate_2": 302,
                    "votes_candidate_3": 398}  # fmt: skip
    assert fort["votes_winner"] + fort["votes_candidate_2"] + fort["votes_candidate_3"] <= fort["votes_cast"]
    units = {r["race_id"]: r["round_id"] for r in _rows(RAW / "race_units.csv")}
    assert units["2025-kyzylorda-karmakshy-toretam"] == units["2025-kyzylorda-aral-zhetes-bi"] == "2025-10-19_rural"
    assert not any(
        r["note"] == "" for r in _rows(RAW / "race_figures.csv") if r["race_id"] in units and "2025-kyz" in r["race_id"]
    )


def test_bokeikhan_later_race() -> None:
    unit = _figure("race_units", race_id="undated-atyrau-kurmangazy-bokeikhan")
    assert unit["round_id"] == "undated_rural_bokeikhan" and "self-nominated" in unit["note"]
    figures = {
        r["variable"]: int(r["value"])
        for r in _rows(RAW / "race_figures.csv")
        if r["race_id"] == "undated-atyrau-kurmangazy-bokeikhan"
    }
    assert figures == {"voters_on_rolls": 1106, "votes_cast": 645, "voted_outside_premises": 18,
                       "votes_against_all": 15, "cands_on_ballot": 3, "votes_winner": 391, "votes_candidate_2": 130,
                       "votes_candidate_3": 102}  # fmt: skip
    # 391 + 130 + 102 + 15 = 638 of 645 ballots: 7 are left for invalid ballots, none is over.
    assert figures["votes_cast"] - sum(figures[v] for v in ("votes_winner", "votes_candidate_2", "votes_candidate_3",
                                                              "votes_against_all")) == 7  # fmt: skip
    source = next(r for r in _rows(RAW / "sources.csv") if r["source_id"] == "C53")
    assert source["url"] == "https://azh.kz/kz/news/view/83290" and source["stored_copy"] == "found"
    rounds = {r["round_id"]: r for r in _rows(RAW / "rounds.csv")}
    assert rounds["undated_rural_bokeikhan"]["election_date"] == ""  # the page prints no year
