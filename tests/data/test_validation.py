"""The raw-data checks of akim_turnout.data.validation on small hand-made tables: each rule's exact Problem (file, line,
column, rule, message), and the number-writing and rounding rules on hand-checked values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from akim_turnout.data import validation as v
from akim_turnout.data.validation import Figure, Problem


def write(tmp_path: Path, content: bytes | str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_read_table_lines_columns_and_blank_rows(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeffa, b ,c\n1,2,3\n\n4,"multi\nline",6\n7,8\n9,10,11\n')
    table, problems = v.read_table(path, "data/t.csv")
    assert table.name == "data/t.csv" and table.header == ("a", "b", "c")
    assert [(row.line, row.values) for row in table.rows] == [
        (2, {"a": "1", "b": "2", "c": "3"}),
        (4, {"a": "4", "b": "multi\nline", "c": "6"}),
        (7, {"a": "9", "b": "10", "c": "11"}),
    ]
    assert problems == [Problem("data/t.csv", 6, "-", "field-count", "2 fields, the header has 3")]
    assert v.read_table(path)[0].name == "t.csv"


def test_read_table_empty_header_only_and_encoding(tmp_path: Path) -> None:
    assert v.read_table(write(tmp_path, " \n"), "e.csv") == (
        None,
        [Problem("e.csv", 1, "-", "empty-file", "the file is empty: expected a header row and data rows")],
    )
    table, problems = v.read_table(write(tmp_path, "a,b\n"), "h.csv")
    assert table.rows == () and problems == [
        Problem("h.csv", 1, "-", "no-rows", "the file has a header but no data rows")
    ]
    bad = write(tmp_path, b"region,note\nA,fine\nB,caf\xe9 au lait\n")
    assert v.read_table(bad, "r.csv") == (
        None,
        [Problem("r.csv", 3, "note", "encoding", "bytes b'\\xe9 au' are not valid UTF-8; save the file as UTF-8")],
    )
    header = write(tmp_path, b"reg\xe9on,note\nA,x\n")
    assert v.read_table(header, "r.csv")[1][0] == Problem(
        "r.csv", 1, "(header)", "encoding", "bytes b'\\xe9on,' are not valid UTF-8; save the file as UTF-8"
    )
    beyond = write(tmp_path, b"a\nx,y,\xe9\n")
    assert v.read_table(beyond, "r.csv")[1][0].column == "(header)"


def test_line_of_offset_by_hand() -> None:
    raw = b"a,b,c\n1,2,3\n4,5,6"
    assert v._line_of_offset(raw, 0) == (1, "(header)", b"a,b,")
    assert v._line_of_offset(raw, 8) == (2, "b", b"2,3\n")
    assert v._line_of_offset(raw, 16) == (3, "c", b"6")
    # the previous line ends in a comma and this line starts with one: only this line's commas count
    after_comma = b"a,b,c\n1,2,\n,\xe9,6"
    assert v._line_of_offset(after_comma, 12) == (3, "b", b"\xe9,6")
    # one field more than the header: the offset's field has no name
    assert v._line_of_offset(b"a\nx,\xe9", 4) == (2, "(header)", b"\xe9")


SCHEMA = {
    "fields": [
        {"name": "id", "type": "string", "constraints": {"required": True, "pattern": "[A-Z]\\d"}},
        {"name": "n", "type": "integer", "constraints": {"minimum": 0, "maximum": 10}},
        {"name": "x", "type": "number"},
        {"name": "kind", "type": "string", "constraints": {"enum": ["a", "b"]}},
        {"name": "day", "type": "date"},
    ]
}


def table_of(header: tuple[str, ...], *rows: tuple[str, ...]) -> v.Table:
    return v.Table(
        "t.csv", header, tuple(v.Row(i + 2, dict(zip(header, row, strict=True))) for i, row in enumerate(rows))
    )


def test_check_columns_missing_unknown_duplicate() -> None:
    table = table_of(("id", "n", "n", "extra", "x", "day"))
    assert v.check_columns(table, SCHEMA) == [
        Problem("t.csv", 1, "kind", "missing-column", "required column is missing from the header"),
        Problem("t.csv", 1, "extra", "unknown-column", "column is not in the schema (expected: id, n, x, kind, day)"),
        Problem("t.csv", 1, "n", "duplicate-column", "column appears twice in the header"),
    ]


def test_check_fields_every_rule() -> None:
    header = ("id", "n", "x", "kind", "day")
    table = table_of(
        header,
        ("A1", "3", "1.5", "a", "2021-07-25"),
        ("", "11", "nan", "c", "25.07.2021"),
        ("a1", "-1", "x", "", ""),
        ("B2", "2.5", "", "b", "2021-01-01"),
    )
    assert v.check_fields(table, SCHEMA) == [
        Problem("t.csv", 3, "id", "required", "value is required but empty"),
        Problem("t.csv", 3, "n", "maximum", "11 is above the maximum 10"),
        Problem("t.csv", 3, "x", "type", "'nan' is not a finite number (type number)"),
        Problem("t.csv", 3, "kind", "enum", "'c' is not one of: a, b"),
        Problem("t.csv", 3, "day", "type", "'25.07.2021' is not an ISO date (YYYY-MM-DD) (type date)"),
        Problem("t.csv", 4, "id", "pattern", "'a1' does not match [A-Z]\\d"),
        Problem("t.csv", 4, "n", "minimum", "-1 is below the minimum 0"),
        Problem("t.csv", 4, "x", "type", "'x' is not a number (type number)"),
        Problem("t.csv", 5, "n", "type", "'2.5' is not a whole number (type integer)"),
    ]


def test_parse_value_by_type() -> None:
    assert v.parse_value(" +12 ", "integer") == 12 and v.parse_value("-3", "integer") == -3
    assert v.parse_value("1e3", "number") == 1000.0 and v.parse_value("2021-07-25", "date") == "2021-07-25"
    assert v.parse_value(" text ", "string") == "text"
    with pytest.raises(ValueError, match=r"^'inf' is not a finite number$"):
        v.parse_value("inf", "number")


def test_check_unique_and_foreign_keys() -> None:
    table = table_of(("round", "region", "src"), ("r1", "A", "s1"), ("r1", "B", ""), ("r1", "A ", "s9"))
    assert v.check_unique(table, ["round", "region"]) == [
        Problem("t.csv", 4, "region", "unique-key", "duplicate key (round='r1', region='A'), first on line 2")
    ]
    assert v.check_unique(table, ["round"], rule="one-primary-value")[1] == Problem(
        "t.csv", 4, "round", "one-primary-value", "duplicate key (round='r1'), first on line 2"
    )
    assert v.check_foreign_key(table, "src", {"s1"}, "sources.csv", optional=True) == [
        Problem("t.csv", 4, "src", "foreign-key", "'s9' is not a known key in sources.csv")
    ]
    assert v.check_foreign_key(table, "src", {"s1"}, "sources.csv") == [
        Problem("t.csv", 3, "src", "foreign-key", "'' is not a known key in sources.csv"),
        Problem("t.csv", 4, "src", "foreign-key", "'s9' is not a known key in sources.csv"),
    ]


def test_problem_text_and_error_message() -> None:
    assert str(Problem("f.csv", 3, "c", "rule", "msg")) == "f.csv:3: column 'c': msg [rule]"
    assert str(Problem("f.csv", 0, "-", "missing-file", "gone")) == "f.csv: column '-': gone [missing-file]"
    error = v.DataValidationError(
        [
            Problem("b.csv", 2, "c", "r", "short"),
            Problem("a.csv", 5, "c", "r", "x"),
            Problem("b.csv", 2, "c", "r", "the longer one"),
        ]
    )
    assert [p.message for p in error.problems] == ["x", "the longer one"]
    assert str(error) == (
        "2 problems in the input data:\n  a.csv:5: column 'c': x [r]\n  b.csv:2: column 'c': the longer one [r]"
    )
    assert (
        str(v.DataValidationError([Problem("a", 1, "c", "r", "m")]))
        == "1 problem in the input data:\n  a:1: column 'c': m [r]"
    )


@pytest.mark.parametrize(
    ("quote", "value", "found"),
    [
        ("turnout 38,2 %", "38.2", True),
        ("38.20 %", "38.2", False),
        ("1 209 817", "1209817", True),
        ("1209817", "1209817", True),
        ("1.209.817", "1209817", True),
        ("12 098 170", "1209817", False),
        ("70 мың сайлаушы", "70000", True),
        ("семьдесят тысяч", "70000", False),
        ("двух тысяч", "2000", True),
        ("2 тыс. избирателей", "2000", True),
        ("1,5 млн", "1500000", True),
        ("1.5 million", "1500000", True),
        ("ONE candidate", "1", True),
        ("someone", "1", False),
        ("ни одного", "0", True),
        ("сто", "100", True),
        ("10", "10.0", False),
        ("3.0 %", "3.0", True),
        ("ten thousand", "10000", True),
    ],
)
def test_quote_states_by_hand(quote: str, value: str, found: bool) -> None:
    assert v.quote_states(quote, value) is found


def test_number_pattern_pieces() -> None:
    assert v._word_pattern(3.5) is None and v._word_pattern(13) is None
    # longest first, ties in the order listed
    assert v._word_pattern(2) == "(?:двумя|двоих|екеуі|ekeýi|двух|двум|двое|екеу|два|две|екі|eki|two)"
    assert v._digits_pattern("1209817") == "1[ \u00a0\u202f\u2009,.]?209[ \u00a0\u202f\u2009,.]?817"
    assert v._digits_pattern("38.2") == "38[.,]2"
    assert v._digits_pattern("120") == "120"
    assert len(v.number_patterns("52000")) == 2 and len(v.number_patterns("2000")) == 3
    assert v.usual_writings("1209817.5") == "1209817.5 / 1 209 817.5 / 1,209,817.5 / 1 209 817,5"


def rules(values: dict[str, str], language: str = "en") -> list[tuple[str, str, str]]:
    return [(p.column, p.rule, p.message) for p in v.provenance_problems("f.csv", 4, values, language)]


def test_provenance_rules_by_hand() -> None:
    base = {"basis": "published", "variable": "posts", "value": "730", "quote": "730 posts", "derived_from": ""}
    assert rules(base) == []
    assert rules({**base, "quote": ""}) == [
        (
            "quote",
            "quote-required",
            "published figure posts = 730 has no quote: give the source sentence that states it, or say in "
            "quote_exception why there is none",
        )
    ]
    assert rules({**base, "quote": "", "quote_exception": "table image"}) == []
    assert rules({**base, "quote": "731 posts"}) == [
        ("quote", "quote-has-number", "the quote does not contain posts = 730 in any usual writing (730): '731 posts'")
    ]
    assert rules(base, "ru") == [
        ("quote_en", "gloss-required", "the quote is in 'ru': give an English gloss in quote_en")
    ]
    assert rules({**base, "quote_en": "730 posts"}, "ru") == []
    assert rules({**base, "derived_from": "sum: a + b"}) == [
        (
            "derived_from",
            "derived-from",
            "posts = 730 is published, so derived_from must be empty (or set basis to derived)",
        )
    ]
    derived = {**base, "basis": "derived", "quote": ""}
    assert rules(derived) == [
        (
            "derived_from",
            "derived-from",
            "derived figure posts = 730 must say what it is derived from ('sum: a + b', 'difference: a - b', "
            "'count: ...' or 'implied: ...'), got ''",
        )
    ]
    for text in ("sum: a + b", "difference: a - b", "count: races listed", "implied: 100 - x"):
        assert rules({**derived, "derived_from": text}) == []
    long_quote = "x" * 100
    message = rules({**base, "quote": long_quote})[0][2]
    assert message.endswith("'" + "x" * 89 + "…'")


def test_check_provenance_reads_the_language_of_each_source() -> None:
    header = ("source_id", "basis", "variable", "value", "quote", "derived_from", "quote_en")
    table = table_of(
        header, ("ru1", "published", "posts", "5", "пятеро", "", ""), ("en1", "published", "posts", "5", "five", "", "")
    )
    assert v.check_provenance(table, {"ru1": "ru", "en1": "en"}) == [
        Problem("t.csv", 2, "quote_en", "gloss-required", "the quote is in 'ru': give an English gloss in quote_en")
    ]


def fig(variable: str, text: str, precision: str = "exact", line: int = 2, **kwargs) -> Figure:
    return Figure(variable, text, precision, kwargs.pop("as_of", ""), "f.csv", line, **kwargs)


def test_count_and_share_bounds_by_hand() -> None:
    assert v.count_bounds(fig("n", "220000", "rounded")) == (210000, 230000)
    assert v.count_bounds(fig("n", "1300", "rounded")) == (1200, 1400)
    assert v.count_bounds(fig("n", "7", "rounded")) == (6, 8)
    assert v.count_bounds(fig("n", "0", "rounded")) == (-1, 1)
    assert v.count_bounds(fig("n", "52", "lower_bound")) == (52, math.inf)
    assert v.count_bounds(fig("n", "52")) == (52, 52)
    low, high = v.share_bounds(fig("s", "38.2"))
    assert low == pytest.approx(38.15, abs=1e-12) and high == pytest.approx(38.3, abs=1e-12)
    assert v.share_bounds(fig("s", "75")) == (74.5, 76.0)
    assert v.share_bounds(fig("s", "90", "lower_bound")) == (90.0, math.inf)


def test_share_problem_by_hand() -> None:
    voters, votes = fig("voters_on_rolls", "1000", line=3), fig("votes_cast", "755", line=4)
    assert v.share_problem(fig("turnout_pct", "75.5"), votes, voters, "turnout-consistent", 100) is None
    assert v.share_problem(fig("turnout_pct", "75.4"), votes, voters, "turnout-consistent", 100) is None  # truncated
    problem = v.share_problem(fig("turnout_pct", "75.7"), votes, voters, "turnout-consistent", 100)
    assert problem == Problem(
        "f.csv",
        2,
        "value",
        "turnout-consistent",
        "turnout_pct = 75.7 disagrees with votes_cast 755 (f.csv:4) / voters_on_rolls 1000 (f.csv:3) = 75.50: "
        "a published turnout must agree with its counts within the rounding of the published figures",
    )
    share = v.share_problem(fig("x_pct", "10"), votes, voters, "share-consistent", 100)
    assert share.message.endswith(
        "= 75.50: a published share must agree with its counts within the rounding of the published figures"
    )
    assert v.share_problem(fig("t", "75.7"), votes, fig("voters_on_rolls", "0", "rounded"), "r", 100) is None


def test_derivation_problem_by_hand() -> None:
    figures = {"a": fig("a", "10"), "b": fig("b", "3"), "c": fig("c", "2.5")}
    good = fig("t", "9.5", basis="derived", derived_from="sum: a - b + c")
    assert v.derivation_problem(good, figures) is None
    bad = fig("t", "9", line=7, basis="derived", derived_from="sum: a - b + c")
    assert v.derivation_problem(bad, figures) == Problem(
        "f.csv", 7, "value", "derived-arithmetic", "t = 9 but a - b + c = 10 - 3 + 2.5 = 9.5"
    )
    missing = fig("t", "9", basis="derived", derived_from="difference: a - z")
    assert v.derivation_problem(missing, figures) == Problem(
        "f.csv", 2, "derived_from", "derived-from", "t = 9 is derived from z, which this unit has no primary figure for"
    )
    assert v.derivation_problem(fig("t", "9", basis="derived", derived_from="count: x"), figures) is None


def test_cross_fields_group_by_unit_and_date() -> None:
    def record(variable: str, value: str, line: int, **kwargs) -> dict:
        return {
            "role": "primary",
            "level": "regional",
            "round_id": "r",
            "region": "A",
            "race_id": None,
            "variable": variable,
            "value_text": value,
            "precision": "exact",
            "as_of": "",
            "file": "f.csv",
            "line": line,
            **kwargs,
        }

    records = [
        record("voters_on_rolls", "1000", 2),
        record("votes_cast", "700", 3),
        record("turnout_pct", "75", 4),
        record("turnout_pct", "75", 5, region="B"),
        record("votes_cast", "750", 6, region="B"),
        record("voters_on_rolls", "1000", 7, region="B"),
        record("turnout_interim_pct", "50", 8, as_of="2021-07-25T12:00"),
        record("votes_cast_interim", "500", 9, as_of="2021-07-25T12:00"),
        record("posts", "9", 10, basis="derived", derived_from="sum: posts_a + posts_b"),
        record("posts_a", "4", 11),
        record("posts_b", "4", 12),
        record("turnout_pct", "10", 13, role="alternative"),
    ]
    problems = v.check_cross_fields(records)
    assert [(p.line, p.rule) for p in problems] == [(10, "derived-arithmetic"), (4, "turnout-consistent")]
    assert v.unit_problems([]) == []


def test_read_table_keeps_line_endings_inside_quotes_and_reads_cr_only_files(tmp_path: Path) -> None:
    """A quoted cell keeps its CRLF as written (the csv module, not the text layer, handles line ends), and a file
    with old Mac line ends (CR only) reads as three lines."""
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b'a,b\r\n1,"x\r\ny"\r\n3,4\r\n')
    table, problems = v.read_table(crlf)
    assert problems == []
    assert [(row.line, row.values) for row in table.rows] == [(2, {"a": "1", "b": "x\r\ny"}), (4, {"a": "3", "b": "4"})]
    cr = tmp_path / "cr.csv"
    cr.write_bytes(b"a,b\r1,2\r3,4\r")
    table, problems = v.read_table(cr)
    assert problems == []
    assert [(row.line, row.values) for row in table.rows] == [(2, {"a": "1", "b": "2"}), (3, {"a": "3", "b": "4"})]


def test_line_of_offset_after_a_blank_first_line_and_with_spaces_in_the_header() -> None:
    """A blank first line still counts as line 1 (the bad byte at offset 2 of b'\\nx\\xe9' is on line 2); the
    empty header line is one field named ''. A column name with a space ('region name') is one header field, so the
    byte after the first comma of line 2 is in column 'note'."""
    assert v._line_of_offset(b"\nx\xe9", 2) == (2, "", b"\xe9")
    raw = b"region name,note\nA,\xe9"
    assert raw.index(b"\xe9") == 19
    assert v._line_of_offset(raw, 19) == (2, "note", b"\xe9")


def test_check_fields_value_at_the_maximum_is_allowed() -> None:
    """The maximum is inclusive: 10 with maximum 10 passes, 11 does not."""
    schema = {"fields": [{"name": "n", "type": "integer", "constraints": {"maximum": 10}}]}
    table = table_of(("n",), ("10",), ("11",))
    assert v.check_fields(table, schema) == [Problem("t.csv", 3, "n", "maximum", "11 is above the maximum 10")]


def test_keys_read_a_column_the_row_lacks_as_empty() -> None:
    """A key column missing from the rows reads as '' (so two rows with the same other columns repeat a key), and a
    missing foreign-key column is empty: skipped when optional, reported as '' otherwise."""
    table = table_of(("round",), ("r1",), ("r1",))
    assert v.check_unique(table, ["round", "region"]) == [
        Problem("t.csv", 3, "region", "unique-key", "duplicate key (round='r1', region=''), first on line 2")
    ]
    assert v.check_foreign_key(table, "src", {"s1"}, "sources.csv", optional=True) == []
    assert v.check_foreign_key(table, "src", {"s1"}, "sources.csv") == [
        Problem("t.csv", 2, "src", "foreign-key", "'' is not a known key in sources.csv"),
        Problem("t.csv", 3, "src", "foreign-key", "'' is not a known key in sources.csv"),
    ]


def test_error_keeps_the_first_of_two_equally_long_messages() -> None:
    """Two problems at the same place with messages of the same length: the first one given is kept."""
    error = v.DataValidationError([Problem("a.csv", 2, "c", "r", "first"), Problem("a.csv", 2, "c", "r", "later")])
    assert [p.message for p in error.problems] == ["first"]


def test_number_patterns_plus_sign_and_scale_boundaries() -> None:
    """A leading '+' is dropped ('+730' is stated by '730 posts'); any other leading character makes the value not
    a number. Exactly one thousand / one million is a round thousand / million ('1 тыс.', '1 млн'); a value below
    the scale (500) or not a multiple of a tenth of it (1234) has no scaled writing."""
    assert v.quote_states("730 posts", "+730") is True
    assert v.number_patterns("X5") == []
    assert v.quote_states("5 posts", "X5") is False
    assert v.quote_states("1 тыс. избирателей", "1000") is True
    assert v.quote_states("1 млн", "1000000") is True
    assert v.quote_states("0,5 тыс", "500") is False
    assert v.quote_states("1,2 тыс", "1234") is False
    assert len(v.number_patterns("500")) == 1 and len(v.number_patterns("1234")) == 1


def test_shorten_keeps_a_quote_of_exactly_the_shown_length() -> None:
    """QUOTE_SHOWN (90) characters are shown whole; one more is cut to 89 and an ellipsis."""
    assert v.QUOTE_SHOWN == 90
    assert v._shorten("x" * 90) == "x" * 90
    assert v._shorten("x" * 91) == "x" * 89 + "…"


def test_provenance_problem_names_its_file_and_line() -> None:
    """The published-with-derivation rule reports the row's own file and line."""
    values = {"basis": "published", "variable": "posts", "value": "730", "quote": "730 posts", "derived_from": "x"}
    assert v.provenance_problems("f.csv", 4, values, "en") == [
        Problem(
            "f.csv",
            4,
            "derived_from",
            "derived-from",
            "posts = 730 is published, so derived_from must be empty (or set basis to derived)",
        )
    ]


def test_provenance_reads_missing_columns_as_empty() -> None:
    """A row without quote, variable, value or derived_from columns reads each as ''."""
    assert v.provenance_problems("f.csv", 4, {"basis": "published", "variable": "posts", "value": "7"}, "en") == [
        Problem(
            "f.csv",
            4,
            "quote",
            "quote-required",
            "published figure posts = 7 has no quote: give the source sentence that states it, or say in "
            "quote_exception why there is none",
        )
    ]
    assert v.provenance_problems("f.csv", 4, {"basis": "published", "quote": "seven"}, "en") == [
        Problem(
            "f.csv", 4, "quote", "quote-has-number", "the quote does not contain  =  in any usual writing (): 'seven'"
        )
    ]
    assert v.provenance_problems("f.csv", 4, {"basis": "published", "quote": "7", "value": "7"}, "en") == []
    assert v.provenance_problems("f.csv", 4, {"basis": "derived", "variable": "posts", "value": "7"}, "en") == [
        Problem(
            "f.csv",
            4,
            "derived_from",
            "derived-from",
            "derived figure posts = 7 must say what it is derived from ('sum: a + b', 'difference: a - b', "
            "'count: ...' or 'implied: ...'), got ''",
        )
    ]


def test_check_provenance_language_defaults() -> None:
    """A source missing from the language table is taken as English (no gloss needed); a table without a source_id
    column reads the source as '', whose language is looked up like any other."""
    table = table_of(("source_id", "basis", "variable", "value", "quote"), ("s9", "published", "posts", "5", "five"))
    assert v.check_provenance(table, {"ru1": "ru"}) == []
    no_source = table_of(("basis", "variable", "value", "quote"), ("published", "posts", "5", "пять"))
    assert v.check_provenance(no_source, {"": "ru"}) == [
        Problem("t.csv", 2, "quote_en", "gloss-required", "the quote is in 'ru': give an English gloss in quote_en")
    ]


def test_count_bounds_of_a_rounded_count_written_with_decimals() -> None:
    """Trailing zeros are counted in the integer part only: '1300.0' rounded is 1300 +- 100, as '1300' is."""
    assert v.count_bounds(fig("n", "1300.0", "rounded")) == (1200.0, 1400.0)


def test_share_problem_at_the_edges_of_the_published_rounding() -> None:
    """A printed 75 stands for [74.5, 76): counts giving 74.5 exactly agree, counts giving 76.5 do not. A whole of
    exactly 0 is skipped (no share defined); a whole of exactly 1 is checked (1/1 = 100 %, not 50 %)."""
    voters = fig("voters_on_rolls", "1000", line=3)
    assert (
        v.share_problem(fig("turnout_pct", "75"), fig("votes_cast", "745"), voters, "turnout-consistent", 100) is None
    )
    above = v.share_problem(
        fig("turnout_pct", "75"), fig("votes_cast", "765", line=4), voters, "turnout-consistent", 100
    )
    assert above == Problem(
        "f.csv",
        2,
        "value",
        "turnout-consistent",
        "turnout_pct = 75 disagrees with votes_cast 765 (f.csv:4) / voters_on_rolls 1000 (f.csv:3) = 76.50: "
        "a published turnout must agree with its counts within the rounding of the published figures",
    )
    assert v.share_problem(fig("s", "50"), fig("p", "0"), fig("w", "0"), "share-consistent", 100) is None
    one = v.share_problem(fig("s", "50"), fig("p", "1"), fig("w", "1"), "share-consistent", 100)
    assert one is not None and one.message.startswith("s = 50 disagrees with p 1 (f.csv:2) / w 1 (f.csv:2) = 100.00:")


def test_share_problem_tolerance_edges_exactly() -> None:
    """The 1e-9 tolerance is inclusive below and exclusive above. Below: a lower bound of 50.000000001 less 1e-9 is
    exactly the float 50.0, which 1/2 gives, so it agrees. Above: a printed 75 allows up to 76 + 1e-9 exclusive;
    a part of 76.000000001 over 100 gives exactly the float 76 + 1e-9, so it disagrees."""
    low_edge = float("50.000000001")
    assert low_edge - 1e-9 == 50.0 and 100 * 1.0 / 2.0 == 50.0
    assert v.share_problem(fig("s", "50.000000001", "lower_bound"), fig("p", "1"), fig("w", "2"), "r", 100) is None
    assert 100 * float("76.000000001") / 100.0 == 76.0 + 1e-9
    high = v.share_problem(fig("s", "75"), fig("p", "76.000000001"), fig("w", "100"), "share-consistent", 100)
    assert high is not None and high.rule == "share-consistent"


def test_derivation_problem_edges() -> None:
    """Two missing names are listed with ', '; only the first ': ' separates the method, so 'sum: a + b: c' names
    the figure 'b: c'; a difference of exactly 1e-9 (0.000000001 - 0) is within the tolerance."""
    figures = {"a": fig("a", "10")}
    two = fig("t", "9", basis="derived", derived_from="sum: y + z")
    assert v.derivation_problem(two, figures) == Problem(
        "f.csv",
        2,
        "derived_from",
        "derived-from",
        "t = 9 is derived from y, z, which this unit has no primary figure for",
    )
    colon = fig("t", "9", basis="derived", derived_from="sum: a + b: c")
    assert v.derivation_problem(colon, figures) == Problem(
        "f.csv",
        2,
        "derived_from",
        "derived-from",
        "t = 9 is derived from b: c, which this unit has no primary figure for",
    )
    tiny = {"e": fig("e", "0.000000001")}
    assert abs(0 + tiny["e"].value - 0.0) == 1e-9
    assert v.derivation_problem(fig("t", "0", basis="derived", derived_from="sum: e"), tiny) is None


def _record(variable: str, value: str, line: int, **kwargs) -> dict:
    return {
        "role": "primary",
        "level": "regional",
        "round_id": "r",
        "region": "A",
        "race_id": "",
        "variable": variable,
        "value_text": value,
        "precision": "exact",
        "as_of": "",
        "file": "f.csv",
        "line": line,
        **kwargs,
    }


def test_cross_fields_missing_none_and_empty_key_parts_are_one_unit() -> None:
    """A unit key part that is absent, None or '' is the same empty part: 700 / 1000 = 70 % is then checked against
    the printed 75 and reported."""
    records = [_record("voters_on_rolls", "1000", 2), _record("votes_cast", "700", 3, race_id=None)]
    third = _record("turnout_pct", "75", 4)
    del third["race_id"]
    problems = v.check_cross_fields([*records, third])
    assert [(p.line, p.rule) for p in problems] == [(4, "turnout-consistent")]


def test_cross_fields_read_precision_and_fall_back_to_the_undated_whole() -> None:
    """A rounded whole (1000 rounded: 900 to 1100) lets 700 votes give 63.6 % to 77.8 %, so a printed 75 agrees;
    an interim turnout dated 12:00 is checked against the undated voters on rolls: 400 / 1000 = 40 %, not 50 %."""
    records = [
        _record("voters_on_rolls", "1000", 2, precision="rounded"),
        _record("votes_cast", "700", 3),
        _record("turnout_pct", "75", 4),
    ]
    assert v.check_cross_fields(records) == []
    records = [
        _record("voters_on_rolls", "1000", 2),
        _record("turnout_interim_pct", "50", 8, as_of="2021-07-25T12:00"),
        _record("votes_cast_interim", "400", 9, as_of="2021-07-25T12:00"),
    ]
    assert [(p.line, p.rule) for p in v.check_cross_fields(records)] == [(8, "turnout-consistent")]
    interim = [
        fig("voters_on_rolls", "1000"),
        fig("turnout_interim_pct", "50", line=8, as_of="2021-07-25T12:00"),
        fig("votes_cast_interim", "400", line=9, as_of="2021-07-25T12:00"),
    ]
    assert [(p.line, p.rule) for p in v.unit_problems(interim)] == [(8, "turnout-consistent")]
