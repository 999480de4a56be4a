"""The formula-free design helpers of akim_turnout.models.design: row validation and its messages, terms and
log terms, patsy-style names, and incomplete rows dropped with their reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akim_turnout.models import design
from akim_turnout.models.design import build_design, parse_terms, validate_turnout_rows
from akim_turnout.models.race import fit_race_glm
from models.tables import tiny_counts  # tests/ is on sys.path


def test_rows_at_the_bounds_pass_and_one_vote_past_them_fails() -> None:
    """0 votes and voted == registered are valid; one vote more than registered names the row and the rule."""
    df = tiny_counts().assign(voted=[0, 80, 60, 70, 30, 150])
    validate_turnout_rows(df)  # raises on any broken rule
    assert fit_race_glm(df, "x").n_obs == 6
    df.loc[5, "voted"] = 151
    with pytest.raises(
        ValueError,
        match=r"^races: invalid turnout rows: voted > registered in 1 row\(s\), index \[5\]$",
    ):
        validate_turnout_rows(df)
    with pytest.raises(ValueError, match=r"^shares: missing column\(s\) \['ballots'\]$"):
        validate_turnout_rows(df, voted="ballots", source="shares")


def test_design_matches_patsy_style_names_and_values() -> None:
    df = pd.DataFrame({"region": ["b", "a", "c"], "n": [1.0, np.e, 1.0]})
    exog, names = build_design(df, "C(region) + np.log(n)")
    assert names == ["Intercept", "C(region)[T.b]", "C(region)[T.c]", "np.log(n)"]
    np.testing.assert_allclose(exog, [[1, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0]])


def test_unsupported_terms_and_bad_logs_are_refused() -> None:
    with pytest.raises(ValueError, match="Unsupported term 'x:z'"):
        parse_terms("x + x:z")
    with pytest.raises(ValueError, match="must be > 0"):
        build_design(pd.DataFrame({"n": [1.0, 0.0]}), "np.log(n)")


def test_validate_turnout_rows_reads_unparsable_counts_as_missing() -> None:
    df = pd.DataFrame({"voted": [5, "n/a", 7], "registered": [10, 10, "?"]}, index=["a", "b", "c"])
    with pytest.raises(ValueError) as error:
        design.validate_turnout_rows(df)
    assert (
        str(error.value) == "races: invalid turnout rows: voted or registered is missing in 2 row(s), index ['b', 'c']"
    )


def test_validate_turnout_rows_accepts_one_registered_voter_and_names_every_broken_rule() -> None:
    design.validate_turnout_rows(pd.DataFrame({"voted": [0, 1], "registered": [1, 1]}))
    df = pd.DataFrame({"v": [1, 0, 3, -1], "r": [1, 0, 2, 5]})
    with pytest.raises(ValueError) as error:
        design.validate_turnout_rows(df, voted="v", registered="r", source="sample")
    assert str(error.value) == (
        "sample: invalid turnout rows: r <= 0 in 1 row(s), index [1]; v < 0 in 1 row(s), index [3]; "
        "v > r in 1 row(s), index [2]"
    )


def test_parse_terms_spells_a_log_term_with_its_numpy_prefix() -> None:
    assert design.parse_terms("log(n) + np.log(m) + C(region) + x") == [
        ("log", "n", "np.log(n)"),
        ("log", "m", "np.log(m)"),
        ("categorical", "region", "C(region)"),
        ("numeric", "x", "x"),
    ]


def test_build_design_logs_a_column_of_python_integers() -> None:
    df = pd.DataFrame({"n": pd.Series([1, 2, 4], dtype=object)})
    exog, names = design.build_design(df, "np.log(n)")
    assert names == ["Intercept", "np.log(n)"]
    np.testing.assert_array_equal(exog, [[1.0, 0.0], [1.0, math.log(2)], [1.0, math.log(4)]])


def test_log_term_names_the_non_positive_rows_up_to_ten() -> None:
    df = pd.DataFrame({"n": [2.0, 0.0, 1.0, -1.0, 0.5]}, index=[10, 11, 12, 13, 14])
    with pytest.raises(ValueError) as error:
        design.build_design(df, "np.log(n)")
    assert str(error.value) == "np.log(n): n must be > 0 in 2 row(s), index [11, 13]"
    many = pd.DataFrame({"n": [0.0] * 12})
    with pytest.raises(ValueError) as error:
        design.build_design(many, "log(n)")
    assert (
        str(error.value) == "np.log(n): n must be > 0 in 12 row(s), index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (+2 more)]"
    )


def test_drop_incomplete_records_reasons_and_caps_the_records_at_fifty() -> None:
    df = pd.DataFrame({"a": [1.0, None, None, 4.0], "b": [None, 2.0, None, 4.0], "name": ["p", "q", "r", "s"]})
    kept, records, dropped = design.drop_incomplete(df, ["a", "b"], label_column="name")
    assert kept.index.tolist() == [3] and dropped == 3
    assert records == [
        {"row": "p", "reason": "missing b", "missing": ["b"]},
        {"row": "q", "reason": "missing a", "missing": ["a"]},
        {"row": "r", "reason": "missing a, b", "missing": ["a", "b"]},
    ]
    many = pd.DataFrame({"a": [None] * 51 + [1.0]})
    kept, records, dropped = design.drop_incomplete(many, ["a"])
    assert (len(kept), len(records), dropped) == (1, 50, 51)
    assert records[-1] == {"row": 49, "reason": "missing a", "missing": ["a"]}
    with pytest.raises(ValueError) as error:
        design.drop_incomplete(df, ["a", "z", "y"])
    assert str(error.value) == "missing column(s): ['z', 'y']"


@pytest.mark.parametrize("column", ["voted", "registered"])
def test_validate_turnout_rows_boolean_column_with_a_missing_value(column: str) -> None:
    """A nullable boolean column with a missing value is converted to floats (True = 1, missing = NaN) and the
    missing value is reported by the missing rule, as for any other column type."""
    df = pd.DataFrame({"voted": [1, 1], "registered": [1, 1]})
    df[column] = pd.array([True, None], dtype="boolean")
    with pytest.raises(ValueError) as caught:
        design.validate_turnout_rows(df)
    assert str(caught.value) == ("races: invalid turnout rows: voted or registered is missing in 1 row(s), index [1]")


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (10, "10 row(s), index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"),
        (11, "11 row(s), index [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (+1 more)]"),
    ],
)
def test_turnout_row_messages_show_ten_labels(bad: int, shown: str) -> None:
    df = pd.DataFrame({"voted": [5.0] * 12, "registered": [10.0] * 12})
    df.loc[: bad - 1, "voted"] = 11.0
    with pytest.raises(ValueError) as error:
        design.validate_turnout_rows(df)
    assert str(error.value) == f"races: invalid turnout rows: voted > registered in {shown}"
