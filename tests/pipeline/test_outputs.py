"""The rounding rule of everything the pipeline publishes, and the test-only input perturbation."""

from __future__ import annotations

import json
import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from akim_turnout.data import processed as data
from akim_turnout.pipeline import outputs
from akim_turnout.pipeline.paths import PERTURB_ENV, project_root
from akim_turnout.report import labels


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.86865229312325, 2.86865),  # the same estimate as computed on two machines ...
        (2.8686522931232514, 2.86865),  # ... is written identically
        (-0.4887919286390504, -0.488792),
        (0.025275208496419677, 0.0252752),
        (0.000123456789, 0.000123457),
        (123456.789, 123457),
        (1209816.9999999998, 1209817),  # at 10^6 and above: whole units
        (2_500_000.4, 2500000),
        (3e-10, 0),  # below 10^-9: zero
        (-1e-17, 0),
        (95.0, 95),
        (-0.0, 0),
    ],
)
def test_stated_number(value: float, expected: float) -> None:
    result = outputs.stated(value)
    assert result == expected and type(result) is type(expected)
    assert math.copysign(1, result) == math.copysign(1, expected)  # never "-0.0"


def test_stated_containers_and_missing_values() -> None:
    assert outputs.stated({"a": [np.float64(0.1234567), np.int64(3), np.bool_(True)], "b": float("nan")}) == {
        "a": [0.123457, 3, True],
        "b": None,
    }
    assert outputs.stated(pd.Series({"x": np.inf})) == {"x": None}
    assert outputs.stated(None) is None and outputs.stated("text") == "text"


def test_stated_frame_turns_whole_columns_into_integers() -> None:
    frame = pd.DataFrame(
        {"count": [95.0, np.nan, 220000.0], "estimate": [0.1234567, 2.0, np.nan], "name": ["a", "b", "c"]}
    )
    out = outputs.stated_frame(frame)
    assert (
        str(out["count"].dtype) == "Int64"
        and out["count"].tolist()[0] == 95
        and out["count"].isna().tolist() == [False, True, False]
    )
    assert out["estimate"].tolist()[:2] == [0.123457, 2.0] and np.isnan(out["estimate"].iloc[2])
    kept = outputs.stated_frame(frame, whole_as_int=False)
    assert kept["count"].dtype == float


def test_save_table_writes_the_publication_table(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "term": ["np.log(n_candidates)", "C(region)[T.Almaty]"],
            "estimate": [-0.48879192863905013, 2.0],
            "n_obs": [1209817.0, 10.0],
            "share": [0.6178, float("nan")],
            "internal": ["x", "y"],
        }
    )
    columns = {
        "term": outputs.Column("term", text=labels.term),
        "estimate": outputs.Column("estimate (logit)", 3),
        "n_obs": outputs.Column("voters (count)", 0),
        "share": outputs.Column("self-nominated (%)", 1, 100),
    }
    written = outputs.save_table(frame, tmp_path, "t", "caption", columns)
    assert (tmp_path / "t.csv").read_text() == (
        "term,estimate (logit),voters (count),self-nominated (%)\n"
        'log(candidates),-0.489,"1,209,817",61.8\n'
        "region: Almaty,2.000,10,\n"
    )
    assert written.columns.tolist() == ["term", "estimate (logit)", "voters (count)", "self-nominated (%)"]
    assert outputs.read_table(tmp_path, "t").iloc[1].tolist() == ["region: Almaty", "2.000", "10", ""]
    tex = (tmp_path / "t.tex").read_text()
    assert "\\begin{tabular}{lrrr}" in tex and "1,209,817" in tex and "log(candidates)" in tex and "internal" not in tex


def test_p_values_below_the_printed_precision_print_as_a_bound(tmp_path) -> None:
    p = outputs.Column("p", 3, smallest=0.001)
    assert [p.format(v) for v in (0.0, 0.0002, 0.000999, 0.001, 0.0414, 1.0, float("nan"))] == [
        "< 0.001",
        "< 0.001",
        "< 0.001",
        "0.001",
        "0.041",
        "1.000",
        "",
    ]
    assert outputs.Column("p", 3).format(0.0002) == "0.000"  # without the bound: the printed rounding
    outputs.save_table(
        pd.DataFrame({"term": ["x", "y"], "p": [0.0002, 0.2]}),
        tmp_path,
        "p",
        "c",
        {"term": outputs.Column("term"), "p": p},
    )
    assert (tmp_path / "p.csv").read_text() == "term,p\nx,< 0.001\ny,0.200\n"
    tex = (tmp_path / "p.tex").read_text()
    assert "x & $<$ 0.001 \\\\" in tex and "y & 0.200 \\\\" in tex


def test_write_json_is_sorted_stated_json(tmp_path) -> None:
    path = tmp_path / "m.json"
    returned = outputs.write_json({"b": 0.17788888, "a": {"n": 2297.0, "p": float("nan")}}, path)
    assert path.read_text() == '{\n  "a": {\n    "n": 2297,\n    "p": null\n  },\n  "b": 0.177889\n}\n'
    assert returned == outputs.read_json(path)


def test_perturbation_switch_moves_only_non_whole_floats(tmp_path, monkeypatch) -> None:
    frame = pd.DataFrame({"share": [0.25, 0.5, np.nan], "count": [3.0, 4.0, 5.0], "n": [1, 2, 3]})
    frame.to_parquet(tmp_path / "f.parquet")
    monkeypatch.delenv(PERTURB_ENV, raising=False)
    pd.testing.assert_frame_equal(data.read_frame(tmp_path / "f.parquet"), frame)
    monkeypatch.setenv(PERTURB_ENV, "1e-12")
    perturbed = data.read_frame(tmp_path / "f.parquet")
    assert perturbed["share"].iloc[0] == 0.25 * (1 + 1e-12) and perturbed["share"].iloc[1] == 0.5 * (1 - 1e-12)
    assert perturbed["count"].tolist() == [3.0, 4.0, 5.0] and perturbed["n"].tolist() == [1, 2, 3]


def test_make_never_passes_the_perturbation_switch_on() -> None:
    probe = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            'probe-switch: ; @echo "[$$AKIM_TEST_PERTURB_INPUTS]"',
            "probe-switch",
        ],
        cwd=project_root(),
        env={**os.environ, PERTURB_ENV: "1e-12"},
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_metrics_json_has_no_full_precision_floats(tmp_path) -> None:
    values = outputs.write_json({"x": [1 / 3, 2 / 3, 1e6 / 3]}, tmp_path / "m.json")
    assert values == {"x": [0.333333, 0.666667, 333333]}
    assert json.loads((tmp_path / "m.json").read_text()) == values
