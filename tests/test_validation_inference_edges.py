"""Edges of akim_turnout.data.validation, design, regional and inference that the other tests leave open.

Each test pins a behaviour at the place where a small change of the code (a comparison, a default, a boundary)
would change a result: the tolerance edges of the share and derivation rules, defaults for columns a row lacks,
line endings and blank first lines of raw files, and the exact boundary values of the number-writing rules. Every
expected value is worked out by hand in the test.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from akim_turnout.data import validation as v
from akim_turnout.data.validation import Figure, Problem
from akim_turnout.models import design, inference, regional


def table_of(header: tuple[str, ...], *rows: tuple[str, ...]) -> v.Table:
    return v.Table(
        "t.csv", header, tuple(v.Row(i + 2, dict(zip(header, row, strict=True))) for i, row in enumerate(rows))
    )


def fig(variable: str, text: str, precision: str = "exact", line: int = 2, **kwargs) -> Figure:
    return Figure(variable, text, precision, kwargs.pop("as_of", ""), "f.csv", line, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# validation: reading raw files
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# validation: cells, keys, errors
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# validation: numbers in quotes and provenance
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# validation: rounding bounds, shares, derivations, cross-field grouping
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# design
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["voted", "registered"])
def test_validate_turnout_rows_boolean_column_with_a_missing_value(column: str) -> None:
    """A nullable boolean column with a missing value is converted to floats (True = 1, missing = NaN) and the
    missing value is reported by the missing rule, as for any other column type."""
    df = pd.DataFrame({"voted": [1, 1], "registered": [1, 1]})
    df[column] = pd.array([True, None], dtype="boolean")
    with pytest.raises(ValueError) as caught:
        design.validate_turnout_rows(df)
    assert str(caught.value) == ("races: invalid turnout rows: voted or registered is missing in 1 row(s), index [1]")


# --------------------------------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------------------------------


def _bare_fit(name: str = "m", df_resid: float | None = None, **extra) -> inference.FitResult:
    empty = pd.Series(dtype=float)
    return inference.FitResult(
        name=name,
        family="",
        formula="",
        params=empty,
        bse=empty,
        conf_int=pd.DataFrame({"lower": empty, "upper": empty}),
        pvalues=empty,
        n_obs=0,
        n_clusters=None,
        cov_type="",
        use_t=df_resid is not None,
        df_resid=df_resid,
        extra=extra,
    )


def test_ame_interval_reaching_exactly_100_pp_is_kept() -> None:
    """With a zero standard error the interval is the point itself: -100 and +100 pp lie on the turnout scale and
    are kept; -100.5 and +100.5 pp lie beyond it, so those rows are not estimable and their numbers are hidden."""
    raw = pd.DataFrame({"term": ["a", "b", "c", "d"], "ame": [-1.0, 1.0, -1.005, 1.005], "se": [0.0] * 4})
    assert 100 * -1.005 < -100 and 100 * 1.005 > 100
    out = inference._ame_table(raw, _bare_fit(), 0.05, weighted=False)
    wide = "not estimable: interval wider than the turnout scale"
    assert out["status"].tolist() == ["ok", "ok", wide, wide]
    assert out["ci_lower_pp"].tolist()[:2] == [-100.0, 100.0] and out["ci_upper_pp"].tolist()[:2] == [-100.0, 100.0]
    assert out["ame_pp"].isna().tolist() == [False, False, True, True]


def test_to_frame_of_a_fit_that_is_not_estimable_keeps_float_columns() -> None:
    """A fit with 3 residual degrees of freedom (fewer than 4) reports empty numbers: NaN in float columns, not
    None in object columns."""
    fit = inference.FitResult(
        name="m",
        family="",
        formula="",
        params=pd.Series([1.0], index=["x"]),
        bse=pd.Series([0.5], index=["x"]),
        conf_int=pd.DataFrame({"lower": [0.0], "upper": [2.0]}, index=["x"]),
        pvalues=pd.Series([0.05], index=["x"]),
        n_obs=4,
        n_clusters=None,
        cov_type="HC3",
        use_t=True,
        df_resid=3.0,
    )
    frame = fit.to_frame()
    assert frame["status"].tolist() == ["not estimable: 3 residual degrees of freedom (fewer than 4)"]
    for column in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value"):
        assert frame[column].dtype == np.float64 and np.isnan(frame[column].iloc[0])


def _stub_glm(params, scores, hessian, hat=None) -> SimpleNamespace:
    """Just what glm_sandwich_cov and _checked_sandwich read from a statsmodels GLM result."""
    model = SimpleNamespace(score_obs=lambda p: np.asarray(scores, float), hessian=lambda p: np.asarray(hessian, float))
    influence = SimpleNamespace(hat_matrix_diag=None if hat is None else np.asarray(hat, float))
    return SimpleNamespace(params=np.asarray(params, float), model=model, get_influence=lambda: influence)


def test_hc3_refuses_leverage_at_exactly_the_guard() -> None:
    """HC3 divides by 1 - h; a leverage of exactly 1 - 1e-10 is already refused (the guard is inclusive), one just
    below it is not (HC3 = sum of (s_i / (1 - h_i))^2 for a one-parameter model with Hessian -1)."""
    with pytest.raises(ValueError, match=r"^HC3 undefined: an observation has leverage 1$"):
        inference.glm_sandwich_cov(_stub_glm([0.0], [[1.0], [1.0]], [[-1.0]], [0.5, 1 - 1e-10]))
    cov = inference.glm_sandwich_cov(_stub_glm([0.0], [[1.0], [1.0]], [[-1.0]], [0.5, 0.75]))
    assert cov.tolist() == [[(1 / 0.5) ** 2 + (1 / 0.25) ** 2]]


def test_average_marginal_effects_reads_weights_as_float64() -> None:
    """Weights are numbers whatever their storage: float32 ones give exactly the AMEs of float64 ones (1/7 in
    float32 is not 1/7 in float64, so computing in float32 would change the last digits)."""
    df = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
        }
    )
    fit = regional.fit_regional_fractional_logit(df, "x")
    assert np.float64(np.float32(1) / np.float32(7)) != 1 / 7
    as64 = inference.average_marginal_effects(fit, averaging_weights=np.ones(7), keep_not_estimable=True)
    as32 = inference.average_marginal_effects(
        fit, averaging_weights=np.ones(7, dtype=np.float32), keep_not_estimable=True
    )
    pd.testing.assert_frame_equal(as32, as64, check_exact=True)


# --------------------------------------------------------------------------------------------------------------
# regional
# --------------------------------------------------------------------------------------------------------------


def test_checked_sandwich_messages_name_the_model() -> None:
    """Non-finite estimates and a non-finite covariance (an infinite score) are refused with the model's label."""
    with pytest.raises(ValueError) as caught:
        regional._checked_sandwich(_stub_glm([np.nan], [[1.0]], [[-1.0]]), "HC0", "lbl")
    assert str(caught.value) == "lbl: non-finite estimates (perfect separation or prediction?)"
    with pytest.raises(ValueError) as caught:
        regional._checked_sandwich(_stub_glm([0.0], [[np.inf], [1.0]], [[-1.0]]), "HC0", "lbl")
    assert str(caught.value) == "lbl: non-finite covariance (perfect separation or prediction?)"


def test_perfect_separation_is_refused_with_the_model_name() -> None:
    """Turnout 0 % below x = 0 and 100 % above: the fitted means reach 0 and 1, the leverages of the HC3
    covariance come from an SVD of a matrix with NaN entries, numpy raises LinAlgError, and the fit reports it
    under its name."""
    df = pd.DataFrame(
        {"region": list("ABCDEF"), "x": [-3, -2, -1, 1, 2, 3.0], "turnout_pct": [0, 0, 0, 100, 100, 100.0]}
    )
    with pytest.raises(ValueError, match=r"^sep: covariance failed \(.+\); perfect prediction\?$"):
        regional.fit_regional_fractional_logit(df, "x", name="sep")


def test_fit_records_warnings_formula_and_every_dropped_row() -> None:
    """A fit of all-zero turnout keeps statsmodels' PerfectSeparationWarning in ``warnings``; the formula joins the
    predictors with ' + '; all 51 incomplete rows are recorded (not only the first 50)."""
    df = pd.DataFrame({"region": list("ABCDEF"), "x": [-3, -2, -1, 1, 2, 3.0], "turnout_pct": [0.0] * 6})
    fit = regional.fit_regional_fractional_logit(df, "x")
    assert [w.split(":")[0] for w in fit.warnings] == ["PerfectSeparationWarning"]
    complete = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "z": [0.1, -0.4, 0.8, 0.0, -0.9, 0.5, 0.3],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
        }
    )
    missing = pd.DataFrame({"region": [f"M{i}" for i in range(51)], "x": 0.0, "z": 0.0, "turnout_pct": np.nan})
    fit = regional.fit_regional_fractional_logit(pd.concat([complete, missing], ignore_index=True), "x + z")
    assert fit.formula == "turnout_pct/100 ~ x + z"
    assert len(fit.extra["dropped"]) == 51 and fit.notes[-1] == "dropped M50: missing turnout_pct"


def test_fit_reads_object_columns_as_numbers() -> None:
    """An outcome and a weight held in object columns (as after a merge with missing values) are read as floats:
    the fit equals the one on float64 columns."""
    df = pd.DataFrame(
        {
            "region": list("ABCDEFG"),
            "x": [-1.5, -1.0, -0.2, 0.3, 0.9, 1.4, 2.0],
            "turnout_pct": [30.0, 41.0, 44.0, 52.0, 61.0, 60.0, 75.0],
            "w": [100.0, 250.0, 80.0, 400.0, 120.0, 90.0, 300.0],
        }
    )
    as_object = df.astype({"turnout_pct": object, "w": object})
    expected = regional.fit_regional_fractional_logit(df, "x", weight="w").params
    pd.testing.assert_series_equal(
        regional.fit_regional_fractional_logit(as_object, "x", weight="w").params, expected, check_exact=True
    )


def test_leave_one_out_uses_the_requested_covariance_for_the_full_fit() -> None:
    """x is non-zero only for region F, so F has leverage 1: HC3 is undefined for the full fit, HC0 is not. With
    HC0, leave-one-out runs: without F, x is all zero (collinear with the intercept); every other refit has
    5 - 2 = 3 residual degrees of freedom and F's leverage 1."""
    df = pd.DataFrame({"region": list("ABCDEF"), "x": [0, 0, 0, 0, 0, 1.0], "turnout_pct": [40, 45, 50, 55, 60, 70.0]})
    with pytest.raises(ValueError, match=r"^HC3 undefined: an observation has leverage 1$"):
        regional.leave_one_out(df, "x")
    out = regional.leave_one_out(df, "x", cov_type="HC0")
    reason = (
        "not estimable: 3 residual degrees of freedom (fewer than 4); one observation has leverage 1.00 (above 0.8)"
    )
    assert out["status"].tolist() == [reason] * 5 + [
        "regional_fractional_logit: design columns are collinear: ['Intercept', 'x']"
    ]
