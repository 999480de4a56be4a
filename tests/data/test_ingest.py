"""The data layer: the real data pass, every figure has a source, and each kind of bad input gets a clear error."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from akim_turnout.data import audit, ingest
from akim_turnout.data import processed as data
from akim_turnout.data.regions import build_region_index, normalise_name
from akim_turnout.pipeline.paths import project_path
from akim_turnout.report import html as report

RAW = project_path("data/raw")


@pytest.fixture(scope="module")
def raw() -> ingest.RawData:
    return ingest.load_raw(RAW)


@pytest.fixture(scope="module")
def processed(raw, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Processed tables written to disk and read back, as later stages read them."""
    out = tmp_path_factory.mktemp("processed")
    ingest.write_processed(ingest.build_processed(raw), out)
    return {
        name: data.read_processed(name, out) for name in ("regional_2021", "national", "figures", "races", "sources")
    }


def test_real_data_pass_validation(raw) -> None:
    assert len(raw.frames["figures"]) > 500
    assert set(raw.regions.regions_of_map("2021")) == {
        "Akmola",
        "Aktobe",
        "Almaty",
        "Atyrau",
        "East Kazakhstan",
        "Karaganda",
        "Kostanay",
        "Kyzylorda",
        "Mangystau",
        "North Kazakhstan",
        "Pavlodar",
        "Turkestan",
        "West Kazakhstan",
        "Zhambyl",
    }


def test_every_raw_figure_is_backed_by_a_source_row(raw) -> None:
    figures, sources = raw.frames["figures"], raw.frames["sources"]
    assert figures["value"].notna().all()
    assert figures["source_id"].isin(sources["source_id"]).all()
    assert sources.loc[sources["source_id"].isin(figures["source_id"]), "url"].str.match(r"https?://").all()


def test_seed_article_figures_come_out_of_processed_tables(processed) -> None:
    national = processed["national"].set_index("round_id").loc[data.ROUND_2021]
    regional = processed["regional_2021"].set_index("region")["turnout_pct"]
    assert national["posts"] == 730
    assert national["cands_registered"] == 2297 and national["cands_nominated"] == 2582
    assert national["cands_registered_party"] == 878 and national["cands_registered_self"] == 1419
    assert round(100 * national["cands_registered_party"] / national["cands_registered"], 1) == 38.2
    assert round(100 * national["cands_registered_self"] / national["cands_registered"], 1) == 61.8
    assert national["cands_registered_women"] == 458 and national["polling_stations"] == 1847
    assert regional["East Kazakhstan"] == 90.9 and regional["Zhambyl"] == 90.7 and regional["Atyrau"] == 74.4
    assert regional.idxmin() == "Almaty" and regional.min() == 66.5


def test_missing_stays_missing_and_derived_values_follow_inputs(processed) -> None:
    regional = processed["regional_2021"].set_index("region")
    assert pd.isna(regional.at["Zhambyl", "posts"]) and pd.isna(regional.at["Zhambyl", "cands_per_seat"])
    assert regional.at["Aktobe", "posts"] == 35 and regional.at["Aktobe", "cands_per_seat"] == 3  # 105 on the ballot
    assert pd.isna(regional.at["Almaty", "self_share"])  # registered total published, party/self split not
    has_inputs = regional["cands"].notna() & regional["posts"].notna()
    assert regional.loc[has_inputs, "cands_per_seat"].notna().all()
    assert regional.loc[~has_inputs, "cands_per_seat"].isna().all()
    assert regional.at["Akmola", "self_share"] == pytest.approx(210 / 303)


def test_remainder_of_posts_is_reported_for_the_regions_without_figures(raw) -> None:
    posts = raw.remainders.set_index(["round_id", "variable"]).loc[(data.ROUND_2021, "posts")]
    assert posts["remainder"] == 39 and posts["missing_regions"] == "Zhambyl"


def test_conflicts_stay_visible_with_their_alternative_source(processed) -> None:
    figures = processed["figures"]
    stations = figures[
        (figures["round_id"] == data.ROUND_2021)
        & (figures["level"] == "national")
        & (figures["variable"] == "polling_stations")
    ]
    assert set(zip(stations["role"], stations["value"], strict=True)) == {("primary", 1847), ("alternative", 1845)}
    assert stations["url"].notna().all()


def test_region_names_accept_russian_and_kazakh_spellings(raw) -> None:
    resolve = raw.regions.resolve
    assert resolve("Восточно-Казахстанская область") == "East Kazakhstan"
    assert resolve("Алматы облысы") == "Almaty"
    assert resolve("almaty region") == resolve("Almaty oblast") == "Almaty"
    assert resolve("Абай") == "Abai" and resolve("Atlantis") is None
    assert normalise_name("  North-Kazakhstan Region ") == normalise_name("north kazakhstan")


def test_processed_outputs_are_parquet_and_csv(raw, tmp_path) -> None:
    written = ingest.write_processed(ingest.build_processed(raw), tmp_path)
    assert {p.suffix for p in written} == {".parquet", ".csv"}
    csv_regional = pd.read_csv(tmp_path / "regional_2021.csv")
    assert len(csv_regional) == 14


# ------------------------------------------------------------------------------------------------------------
# Bad input: each kind is one mutation of a copy of data/raw; the check lists file, line, column and rule.


def rewrite_csv(path: Path, change: Callable[[list[list[str]]], list[list[str]]]) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(change(rows))
    path.write_text(buffer.getvalue(), encoding="utf-8")


def edit_cell(match: dict[str, str], column: str, value: str) -> Callable:
    """Set ``column`` of the first row whose cells equal ``match``; returns the row's line via the exception text."""

    def change(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        for row in rows[1:]:
            if all(row[header.index(k)] == v for k, v in match.items()):
                row[header.index(column)] = value
                return rows
        raise AssertionError(f"no row matches {match}")

    return change


def line_of(path: Path, match: dict[str, str]) -> int:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    return next(i + 1 for i, row in enumerate(rows) if i and all(row[header.index(k)] == v for k, v in match.items()))


AKMOLA_TURNOUT = {"round_id": "2021-07-25_rural", "region": "Akmola", "variable": "turnout_pct"}
AKMOLA_POSTS = {"round_id": "2021-07-25_rural", "region": "Akmola", "variable": "posts"}
ATYRAU_VOTES = {"round_id": "2021-07-25_rural", "region": "Atyrau", "variable": "votes_cast"}


def mutate_regional(change) -> Callable[[Path], None]:
    return lambda raw_dir: rewrite_csv(raw_dir / "regional.csv", change)


def duplicate_first_data_row(rows):
    return rows[:2] + [list(rows[1])] + rows[2:]


def append_non_utf8(raw_dir: Path) -> None:
    path = raw_dir / "regional.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2] + b" caf\xe9"  # Latin-1 byte in the note column of line 3
    path.write_bytes(b"\n".join(lines))


BAD_INPUTS = {
    "missing column": (
        mutate_regional(lambda rows: [r[:-1] for r in rows]),
        ["regional.csv:1", "'note'", "missing-column"],
    ),
    "unknown extra column": (
        mutate_regional(lambda rows: [r + (["comment"] if i == 0 else ["x"]) for i, r in enumerate(rows)]),
        ["regional.csv:1", "'comment'", "unknown-column"],
    ),
    "wrong type": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "value", "seventy")),
        ["regional.csv:2", "'value'", "'seventy' is not a number"],
    ),
    "empty file": (lambda d: (d / "sources.csv").write_text(""), ["sources.csv:1", "empty-file"]),
    "header only": (mutate_regional(lambda rows: rows[:1]), ["regional.csv:1", "no-rows"]),
    "duplicated key": (
        mutate_regional(duplicate_first_data_row),
        ["regional.csv:3", "duplicate key", "first on line 2"],
    ),
    "unknown region name": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "region", "Atlantis")),
        ["regional.csv:2", "'region'", "unknown region name 'Atlantis'", "known-region"],
    ),
    "turnout above 100": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "value", "104.2")),
        ["regional.csv:2", "turnout_pct = 104.2 is above the maximum 100", "[maximum]"],
    ),
    "votes above voters": (
        mutate_regional(edit_cell(ATYRAU_VOTES, "value", "50000")),
        ["votes_cast = 50000 exceeds voters_on_rolls = 44305", "part-not-above-whole"],
    ),
    "negative count": (
        mutate_regional(edit_cell(AKMOLA_POSTS, "value", "-5")),
        ["posts = -5 is below the minimum 0", "[minimum]"],
    ),
    "regional sum above national": (
        mutate_regional(edit_cell(AKMOLA_POSTS, "value", "900")),
        ["posts: regions sum to", "above the national total 730", "regional-sum"],
    ),
    "not UTF-8": (append_non_utf8, ["regional.csv:3", "column 'note'", "not valid UTF-8", "encoding"]),
    "figure without source": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "source_id", "")),
        ["regional.csv:2", "'source_id'", "figure has no source"],
    ),
    "unknown source_id": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "source_id", "no_such_source")),
        ["regional.csv:2: column 'source_id': 'no_such_source' is not a known key in", "sources.csv [foreign-key]"],
    ),
    "html in region name": (
        mutate_regional(edit_cell(AKMOLA_TURNOUT, "region", "<script>alert(1)</script>")),
        ["regional.csv:2", "unknown region name '<script>alert(1)</script>'"],
    ),
}


@pytest.fixture
def raw_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RAW, tmp_path / "raw"))


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_refused_with_file_line_column_and_rule(kind: str, raw_copy: Path, capsys) -> None:
    mutate, expected = BAD_INPUTS[kind]
    mutate(raw_copy)
    assert audit.main([str(raw_copy)]) == 1
    message = capsys.readouterr().err
    for fragment in expected:
        assert fragment in message, f"{kind}: {fragment!r} not in:\n{message}"


def test_every_problem_is_reported_at_once(raw_copy: Path) -> None:
    rewrite_csv(raw_copy / "regional.csv", edit_cell(AKMOLA_TURNOUT, "value", "104.2"))
    rewrite_csv(raw_copy / "regional.csv", edit_cell(AKMOLA_POSTS, "value", "-5"))
    rewrite_csv(
        raw_copy / "race_units.csv", lambda rows: rows[:1] + [[*rows[1][:2], "Narnia", *rows[1][3:]]] + rows[2:]
    )
    with pytest.raises(ingest.DataValidationError) as error:
        ingest.load_raw(raw_copy)
    rules = {problem.rule for problem in error.value.problems}
    assert {"maximum", "minimum", "known-region", "quote-has-number"} <= rules
    # 104.2 and -5 also break the quote rule: each row's quote states the published value, not the edited one
    assert str(error.value).startswith("5 problems in the input data:")
    assert f"regional.csv:{line_of(raw_copy / 'regional.csv', AKMOLA_POSTS)}" in str(error.value)


def test_check_command_exits_non_zero_and_leaves_the_data_untouched(raw_copy: Path) -> None:
    rewrite_csv(raw_copy / "regional.csv", edit_cell(AKMOLA_TURNOUT, "value", "104.2"))
    before = {p.name: p.read_bytes() for p in raw_copy.iterdir()}
    result = subprocess.run([sys.executable, "-m", "akim_turnout.data", str(raw_copy)], capture_output=True, text=True)
    assert result.returncode == 1 and "turnout_pct = 104.2" in result.stderr
    assert {p.name: p.read_bytes() for p in raw_copy.iterdir()} == before


def test_region_name_with_html_stays_inert_text_in_report_tables() -> None:
    frame = pd.DataFrame({"region": ["<script>alert(1)</script>"], "turnout (%)": [80.0]})
    html = report.table_html(frame, key="t", caption="<b>caption</b>", numbering=report.Numbering())
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;caption&lt;/b&gt;" in html


def test_report_tables_right_align_only_numeric_columns() -> None:
    frame = pd.DataFrame({"term": ["x", "y"], "p": ["< 0.001", "0.200"], "n": ["1,209,817", ""], "note": ["1a", ""]})
    html = report.table_html(frame, key="t", caption="c", numbering=report.Numbering())
    assert '<th>term</th><th class="num">p</th><th class="num">n</th><th>note</th>' in html
    assert '<td>x</td><td class="num">&lt; 0.001</td><td class="num">1,209,817</td><td>1a</td>' in html


def test_figure_caption_and_alt_text_are_escaped(tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    html = report.figure_html(
        png, key="k<1>", caption="<i>turnout</i> & share", alt='a "quoted" <alt>', numbering=report.Numbering()
    )
    assert "<i>" not in html and "&lt;i&gt;turnout&lt;/i&gt; &amp; share</figcaption>" in html
    assert 'alt="a &quot;quoted&quot; &lt;alt&gt;"' in html and 'id="fig-k&lt;1&gt;"' in html


def test_region_index_maps_aliases_from_rows() -> None:
    index = build_region_index(
        [{"region": "Abai", "map": "2022", "name_ru": "область Абай", "name_kk": "Абай облысы", "aliases": "Abay"}]
    )
    assert index.resolve("Abay") == index.resolve("абай") == "Abai"


def test_the_test_fixture_is_made_of_published_figures() -> None:
    """tests/real_2021.py holds fixed inputs for the simulator, model and study tests. Each of its numbers is a
    published figure of data/raw for that region, though not always under the definition the pipeline picks:
    the candidates of Kyzylorda are its nominations (the pipeline uses candidates on the ballot), and the voters
    of Turkestan are its expected voters (the pipeline uses voters on the rolls). Any other number fails here."""
    from real_2021 import PUBLISHED_2021, TURNOUT_2021  # tests/ is on sys.path, see tests/conftest.py

    published = ingest.build_processed(ingest.load_raw(RAW))["regional_2021"].set_index("region")
    definitions = {
        "posts": ["posts"],
        "cands": ["cands_registered", "cands_on_ballot", "cands_nominated"],
        "cands_party": ["cands_registered_party", "cands_on_ballot_party", "cands_nominated_party"],
        "cands_self": ["cands_registered_self", "cands_on_ballot_self", "cands_nominated_self"],
        "cands_women": ["cands_registered_women", "cands_nominated_women"],
        "voters_on_rolls": ["voters_on_rolls", "voters_expected"],
    }
    other_definition = set()
    for column, values in PUBLISHED_2021.items():
        for region, value in values.items():
            matches = [c for c in definitions[column] if published.at[region, c] == value]
            assert matches, f"{column} = {value} for {region} is not a published figure"
            if published.at[region, column] != value:
                other_definition.add((region, column, matches[0]))
    assert other_definition == {
        ("Kyzylorda", "cands", "cands_nominated"),
        ("Kyzylorda", "cands_party", "cands_nominated_party"),
        ("Kyzylorda", "cands_self", "cands_nominated_self"),
        ("Turkestan", "voters_on_rolls", "voters_expected"),
    }
    assert published["turnout_pct"].to_dict() == TURNOUT_2021


def test_race_readiness_orders_rounds_with_as_many_races_by_id_on_every_cpu() -> None:
    """Rounds with most races first; rounds with as many races in order of their id. Run with numpy's SIMD dispatch
    switched off as well: the quicksort kernels order ties differently (with dispatch off, an unstable sort of these
    rounds puts r16 to r03 in reverse), so only a stable sort gives the same table on every CPU."""
    import json
    import os
    import subprocess
    import sys

    from pipeline_copy import numpy_dispatch_off

    code = (
        "import json, pandas as pd\n"
        "from akim_turnout.data.processed import race_readiness\n"
        "ids = ['big', 'mid', 'two'] + [f'r{i:02d}' for i in range(14)]\n"
        "rows = ['big'] * 30 + ['mid'] * 27 + ['two'] * 2 + ids[3:]\n"
        "frame = pd.DataFrame({'round_id': rows, 'region': 'A', 'registered': 100.0})\n"
        "print(json.dumps(race_readiness(frame, ['registered'])['round_id'].tolist()))\n"
    )
    for env in ({}, numpy_dispatch_off()):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **env}
        )
        assert json.loads(result.stdout) == ["big", "mid", "two", *[f"r{i:02d}" for i in range(14)]], env
