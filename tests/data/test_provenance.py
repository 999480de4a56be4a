"""Provenance of the raw figures: quotes that state their numbers, derivations, cross-field consistency, the audit
and the data checker's command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from akim_turnout.data import audit, ingest
from akim_turnout.data.validation import DataValidationError, number_patterns, quote_states, usual_writings
from data.test_ingest import RAW, edit_cell, line_of, rewrite_csv  # noqa: E402  (tests/ is on sys.path, see conftest.py)

ATYRAU = {"round_id": "2021-07-25_rural", "region": "Atyrau"}
ATYRAU_TURNOUT = {**ATYRAU, "variable": "turnout_pct"}
ATYRAU_VOTES = {**ATYRAU, "variable": "votes_cast"}
ATYRAU_VOTERS = {**ATYRAU, "variable": "voters_on_rolls"}
AKTOBE_PARTY_PCT = {"round_id": "2021-07-25_rural", "region": "Aktobe", "variable": "cands_on_ballot_party_pct"}
AKTOBE_PARTY = {"round_id": "2021-07-25_rural", "region": "Aktobe", "variable": "cands_on_ballot_party"}
WKO_POSTS = {"round_id": "2021-07-25_rural", "region": "West Kazakhstan", "variable": "posts"}


@pytest.fixture
def raw_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RAW, tmp_path / "raw"))


def problems_of(raw_dir: Path) -> str:
    with pytest.raises(DataValidationError) as error:
        ingest.load_raw(raw_dir)
    return str(error.value)


def regional(raw_dir: Path, match: dict[str, str], column: str, value: str) -> int:
    """Set one cell of regional.csv; returns the row's line."""
    rewrite_csv(raw_dir / "regional.csv", edit_cell(match, column, value))
    return line_of(raw_dir / "regional.csv", match)


# ------------------------------------------------------------------------------------------------------------
# Usual writings of a number


@pytest.mark.parametrize(
    "quote, value",
    [
        ("Зарегистрировано 2 297 кандидатов", "2297"),
        ("2,297 candidates", "2297"),
        ("всего 2297", "2297"),
        ("878 человек (38,2%)", "38.2"),
        ("38.2% of them", "38.2"),
        ("52 тысячи избирателей", "52000"),
        ("220 мыңнан астам", "220000"),
        ("over 1.2 million voters", "1200000"),
        ("претендуют пятеро", "5"),
        ("үшеуі өзін-өзі ұсынған", "3"),
        ("1 209 817 избирателей", "1209817"),
        ("16кандидат ұсынылды", "16"),
    ],
)
def test_a_number_is_found_in_its_usual_writings(quote: str, value: str) -> None:
    assert quote_states(quote, value)


@pytest.mark.parametrize(
    "quote, value",
    [
        ("Зарегистрировано 2 296 кандидатов", "2297"),
        ("из 2 297 кандидатов", "297"),
        ("38,25%", "38.2"),
        ("1382 участка", "382"),
        ("пятьдесят", "5"),
    ],
)
def test_a_number_is_not_found_inside_another_number_or_word(quote: str, value: str) -> None:
    assert not quote_states(quote, value)


def test_writings_shown_in_messages() -> None:
    assert usual_writings("2297") == "2297 / 2 297 / 2,297"
    assert usual_writings("38.2") == "38.2 / 38,2"
    assert number_patterns("-5") == []


# ------------------------------------------------------------------------------------------------------------
# Bad input: each rule names file, line, column, rule and the figures involved


def test_quote_without_its_number_is_refused(raw_copy: Path) -> None:
    line = regional(raw_copy, ATYRAU_VOTES, "quote", "Из них приняли участие в голосовании почти все.")
    message = problems_of(raw_copy)
    expected = (
        f"{raw_copy}/regional.csv:{line}: column 'quote': the quote does not contain votes_cast = 32981 in any "
        "usual writing (32981 / 32 981 / 32,981): 'Из них приняли участие в голосовании почти все.' [quote-has-number]"
    )
    assert expected in message


def test_published_figure_without_quote_or_exception_is_refused(raw_copy: Path) -> None:
    line = regional(raw_copy, ATYRAU_VOTES, "quote", "")
    regional(raw_copy, ATYRAU_VOTES, "quote_en", "")
    message = problems_of(raw_copy)
    assert f"regional.csv:{line}: column 'quote': published figure votes_cast = 32981 has no quote" in message
    assert "[quote-required]" in message


def test_a_stated_exception_waives_the_quote(raw_copy: Path) -> None:
    regional(raw_copy, ATYRAU_VOTES, "quote", "")
    regional(raw_copy, ATYRAU_VOTES, "quote_en", "")
    regional(raw_copy, ATYRAU_VOTES, "quote_exception", "stored page not found in the stored copies")
    assert ingest.load_raw(raw_copy).frames["figures"]["quote_exception"].ne("").sum() == 11


def test_quote_not_in_english_needs_a_gloss(raw_copy: Path) -> None:
    line = regional(raw_copy, ATYRAU_VOTES, "quote_en", "")
    message = problems_of(raw_copy)
    assert (
        f"regional.csv:{line}: column 'quote_en': the quote is in 'ru': give an English gloss in quote_en "
        "[gloss-required]"
    ) in message


def test_derived_figure_must_say_what_it_is_derived_from(raw_copy: Path) -> None:
    line = regional(raw_copy, WKO_POSTS, "derived_from", "")
    message = problems_of(raw_copy)
    assert (
        f"regional.csv:{line}: column 'derived_from': derived figure posts = 31 must say what it is derived from "
        "('sum: a + b', 'difference: a - b', 'count: ...' or 'implied: ...'), got '' [derived-from]"
    ) in message


def test_derived_sum_must_add_up(raw_copy: Path) -> None:
    line = regional(raw_copy, WKO_POSTS, "value", "32")
    message = problems_of(raw_copy)
    assert (
        f"regional.csv:{line}: column 'value': posts = 32 but posts_term_expiry + posts_early = 26 + 5 = 31 "
        "[derived-arithmetic]"
    ) in message


def test_inconsistent_turnout_is_refused_and_nothing_is_written(raw_copy: Path, tmp_path: Path) -> None:
    line = regional(raw_copy, ATYRAU_TURNOUT, "value", "75.4")
    rewrite_csv(
        raw_copy / "regional.csv",
        lambda rows: [[c.replace("Атырау облысы – 74,4%", "Атырау облысы – 75,4%") for c in r] for r in rows],
    )
    votes, voters = (line_of(raw_copy / "regional.csv", m) for m in (ATYRAU_VOTES, ATYRAU_VOTERS))
    message = problems_of(raw_copy)
    assert message.startswith("1 problem in the input data:")
    assert (
        f"{raw_copy}/regional.csv:{line}: column 'value': turnout_pct = 75.4 disagrees with votes_cast 32981 "
        f"({raw_copy}/regional.csv:{votes}) / voters_on_rolls 44305 ({raw_copy}/regional.csv:{voters}) = 74.44: "
        "a published turnout must agree with its counts within the rounding of the published figures "
        "[turnout-consistent]"
    ) in message
    out = tmp_path / "processed"
    with pytest.raises(DataValidationError):
        ingest.write_processed(ingest.build_processed(ingest.load_raw(raw_copy)), out)
    assert not out.exists()


def test_turnout_within_rounding_passes(raw_copy: Path) -> None:
    regional(raw_copy, ATYRAU_TURNOUT, "value", "74")  # 74.44 % printed as 74 %
    rewrite_csv(
        raw_copy / "regional.csv",
        lambda rows: [[c.replace("Атырау облысы – 74,4%", "Атырау облысы – 74%") for c in r] for r in rows],
    )
    assert ingest.load_raw(raw_copy).frames["figures"].query(
        "level == 'regional' and round_id == '2021-07-25_rural' and region == 'Atyrau' and variable == 'turnout_pct'"
    )["value"].tolist() == [74.0]


def test_inconsistent_share_is_refused(raw_copy: Path) -> None:
    line = regional(raw_copy, AKTOBE_PARTY_PCT, "value", "70")
    regional(raw_copy, AKTOBE_PARTY_PCT, "quote", "105 кандидаттың 70% партия атынан үміткер болды.")
    party, total = (
        line_of(raw_copy / "regional.csv", m) for m in (AKTOBE_PARTY, {**AKTOBE_PARTY, "variable": "cands_on_ballot"})
    )
    message = problems_of(raw_copy)
    assert message.startswith("1 problem in the input data:")
    assert (
        f"regional.csv:{line}: column 'value': cands_on_ballot_party_pct = 70 disagrees with cands_on_ballot_party 63 "
        f"({raw_copy}/regional.csv:{party}) / cands_on_ballot 105 ({raw_copy}/regional.csv:{total}) = 60.00: "
        "a published share must agree with its counts within the rounding of the published figures "
        "[share-consistent]"
    ) in message


def test_an_alternative_value_is_not_checked_against_the_primary_counts(raw_copy: Path) -> None:
    """Cross-field rules compare primary figures only: the recorded alternative 75.75 of Akmola stays allowed."""
    figures = ingest.load_raw(raw_copy).frames["figures"]
    akmola = figures.query(
        "level == 'regional' and round_id == '2021-07-25_rural' and region == 'Akmola' and variable == 'turnout_pct'"
    )
    assert sorted(zip(akmola["role"], akmola["value"], strict=True)) == [("alternative", 75.75), ("primary", 75.5)]


# ------------------------------------------------------------------------------------------------------------
# The real data and the audit


def test_real_data_meet_the_provenance_target() -> None:
    raw = ingest.load_raw(RAW)
    audits = [audit.audit_table(name, raw.tables[name], audit._excerpt_only(raw)) for name in ingest.FIGURE_TABLES]
    published, quoted = sum(a.published for a in audits), sum(a.quoted for a in audits)
    assert quoted / published >= 0.98
    figures = raw.frames["figures"]
    exceptions = figures[(figures["basis"] == "published") & (figures["quote_exception"] != "")]
    assert len(exceptions) == published - quoted == 10


def test_audit_prints_counts_per_table_and_the_exceptions(capsys) -> None:
    assert audit.main([str(RAW), "--audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("table "))) :][:5]
    assert [line.split() for line in table] == [
        [
            "table",
            "rows",
            "published",
            "quoted",
            "on_stored_page",
            "from_excerpt",
            "exceptions",
            "derived",
            "alternative",
            "rejected",
            "conflicts",
        ],
        # national: + the observers row (N17); regional: + 6 rows (Zhambyl 2021 from B42, one of them the
        # alternative 41 posts, a conflict without a primary; Turkestan's 47); race: + 11 rows of three later races.
        # race: + 8 rows of Bokeikhan (C53). on_stored_page/from_excerpt follow stored_copy_check.csv: B23's 10 Khobda
        # rows are on a stored page again; the 20 sources searched without finding their page (B28, B32, B39, B40, C6,
        # C15, C24, C30, C31, C34d, C43, G5, G6, G9, G12, G14, G15a, H2 with figure rows) move to from_excerpt.
        ["national.csv", "82", "81", "80", "68", "12", "1", "1", "5", "1", "6"],
        ["regional.csv", "354", "330", "325", "290", "35", "5", "24", "13", "7", "20"],
        ["race_figures.csv", "298", "274", "270", "247", "23", "4", "24", "3", "0", "3"],
        ["all", "734", "685", "675", "605", "70", "10", "49", "21", "8", "29"],
    ]
    assert "Published figures with their own quote containing the number: 675 of 685 (98.5 %)" in lines
    assert "  quote found on a stored page: 605 of 685 (88.3 %)" in lines
    assert "  2021 regional: 182 cells searched, 87 with at least one statement, 10 with a conflict" in lines
    assert "  2023 pilot race: 294 cells searched, 61 with at least one statement, 2 with a conflict" in lines
    assert "Exceptions (10):" in lines and "Recorded conflicts (29):" in lines
    osdp = next(line for line in lines if "winners_osdp = 1 (N11)" in line)
    assert osdp.startswith(f"  {RAW}/national.csv:") and "infobox" in osdp


# ------------------------------------------------------------------------------------------------------------
# The command line


def run_checker(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}  # argparse wraps --help to the terminal width
    return subprocess.run(
        [sys.executable, "-m", "akim_turnout.data", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_help_describes_the_arguments() -> None:
    result = run_checker("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: python -m akim_turnout.data [-h] [--audit] [raw_dir]")
    assert "folder holding datapackage.json (default: data/raw)" in result.stdout


def test_messages_name_the_folder_as_typed(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(RAW, tmp_path / "my copy"))
    line = regional(copy, ATYRAU_TURNOUT, "value", "104.2")
    result = run_checker("my copy", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        f"  my copy/regional.csv:{line}: column 'value': turnout_pct = 104.2 is above the maximum 100 percent [maximum]"
        in result.stderr
    )
    assert "data/raw" not in result.stderr


def test_missing_folder_gives_one_error_line(tmp_path: Path) -> None:
    result = run_checker("no/such/folder", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == "error: folder no/such/folder does not exist (give the folder holding datapackage.json, e.g. data/raw)\n"
    )


def test_folder_without_datapackage_gives_one_error_line(tmp_path: Path) -> None:
    result = run_checker(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path} has no datapackage.json (give the folder holding it, e.g. data/raw)\n"


def test_broken_datapackage_is_a_problem_not_a_traceback(raw_copy: Path) -> None:
    (raw_copy / "datapackage.json").write_text("{not json", encoding="utf-8")
    result = run_checker(str(raw_copy))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{raw_copy}/datapackage.json:1: column '-': not valid JSON" in result.stderr


def test_regional_table_takes_total_and_split_from_one_candidate_stage() -> None:
    regional = ingest.build_processed(ingest.load_raw(RAW))["regional_2021"].set_index("region")
    stage = regional[["cands", "cands_party", "cands_self", "cands_kind"]]
    assert stage.loc["Kyzylorda"].tolist() == [122, 47, 75, "on ballot"]  # 131 registered, split only on the ballot
    assert stage.loc["Aktobe"].tolist() == [105, 63, 42, "on ballot"]
    assert stage.loc["Akmola"].tolist() == [303, 93, 210, "registered"]
    assert stage.loc["Almaty", "cands_kind"] == "registered" and pd.isna(stage.loc["Almaty", "cands_party"])
    assert regional.at["West Kazakhstan", "posts_source"] == "derived (sum: posts_term_expiry + posts_early)"
    assert (
        regional.at["Aktobe", "posts_source"] == "published total"
        and regional.at["Zhambyl", "posts_source"] == "missing"
    )
