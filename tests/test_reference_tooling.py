"""`make reference` and its two helpers in tests/reference/: the check for R and its packages (before anything is
written), and the comparison of the frozen inputs with the pipeline's outputs (written only when asked)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from akim_turnout.pipeline.paths import project_root

ROOT = project_root()
REFERENCE = ROOT / "tests" / "reference"
sys.path.insert(0, str(REFERENCE))
import check_r  # noqa: E402
import make_inputs  # noqa: E402

ALL_DEBIAN = "r-base-core r-cran-sandwich r-cran-geepack r-cran-lme4 r-cran-jsonlite r-cran-mass r-cran-numderiv"


def test_the_packages_are_read_from_the_library_calls_of_generate_r() -> None:
    assert check_r.r_packages() == ["sandwich", "geepack", "lme4", "jsonlite", "MASS", "numDeriv"]
    assert check_r.debian_package("numDeriv") == "r-cran-numderiv" and check_r.debian_package("MASS") == "r-cran-mass"


def run_check(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REFERENCE / "check_r.py")],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
    )


def test_without_r_the_check_names_every_package_to_install(tmp_path: Path) -> None:
    result = run_check(str(tmp_path))  # an empty folder: no Rscript
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"make reference needs R (Rscript is not on PATH): apt-get install --no-install-recommends {ALL_DEBIAN}\n"
    )


# A stand-in for Rscript: `Rscript -e CODE PKG...` prints, one a line, the packages not in $FAKE_R_INSTALLED.
FAKE_RSCRIPT = """#!/bin/sh
shift 2
for p in "$@"; do
  case " $FAKE_R_INSTALLED " in *" $p "*) ;; *) echo "$p" ;; esac
done
"""


def fake_r(folder: Path) -> Path:
    rscript = folder / "Rscript"
    rscript.write_text(FAKE_RSCRIPT)
    rscript.chmod(0o755)
    return folder


def test_with_r_but_packages_missing_the_check_names_only_those(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_R_INSTALLED", "sandwich lme4 jsonlite MASS")
    result = run_check(f"{fake_r(tmp_path)}:/usr/bin:/bin")
    assert result.returncode == 1
    assert result.stderr == (
        "make reference needs the R package(s) geepack, numDeriv: "
        "apt-get install --no-install-recommends r-cran-geepack r-cran-numderiv\n"
    )
    monkeypatch.setenv("FAKE_R_INSTALLED", "sandwich geepack lme4 jsonlite MASS numDeriv")
    complete = run_check(f"{tmp_path}:/usr/bin:/bin")
    assert (complete.returncode, complete.stdout, complete.stderr) == (0, "", "")


def tracked_state() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(REFERENCE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.skipif(shutil.which("Rscript", path="/usr/bin:/bin") is not None, reason="R is installed here")
def test_make_reference_without_r_stops_before_writing_anything() -> None:
    before = tracked_state()
    stamps = [ROOT / ".venv" / ".installed-from-lock", ROOT / ".venv" / ".installed-from-test-lock"]
    if not all(stamp.exists() for stamp in stamps):
        pytest.skip("needs the environment built by make env-test")
    result = subprocess.run(
        ["make", "--no-print-directory", "reference"],
        cwd=ROOT,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert f"apt-get install --no-install-recommends {ALL_DEBIAN}" in result.stderr, result.stderr
    assert "make_inputs" not in result.stdout + result.stderr and "generate.R" not in result.stdout
    assert tracked_state() == before


FRAME = pd.DataFrame(
    {
        "region": ["Akmola", "Aktobe", "Almaty"],
        "share": [2 / 3, np.nan, 0.1 + 0.2],
        "count": [770, 883, 12],
    }
)


def test_exact_csv_writes_each_float_as_its_shortest_repr() -> None:
    text = make_inputs.exact_csv(FRAME)
    assert text == "region,share,count\nAkmola,0.6666666666666666,770\nAktobe,,883\nAlmaty,0.30000000000000004,12\n"


def test_comparing_writes_nothing_and_names_the_files_that_differ(tmp_path: Path, monkeypatch, capsys) -> None:
    frames = {"regional_2021.csv": FRAME, "races_simulated.csv": FRAME.iloc[:2]}
    monkeypatch.setattr(make_inputs, "pipeline_frames", lambda: frames)
    monkeypatch.setattr(make_inputs, "simulation_seed", lambda: 7)
    older = make_inputs.exact_csv(FRAME).replace("Almaty,0.30000000000000004", "Almaty,0.3")
    (tmp_path / "regional_2021.csv").write_text(older)
    assert make_inputs.main([], folder=tmp_path) == 0
    out = capsys.readouterr().out
    assert "(regional_2021.csv: 1 of 3 data rows differ; races_simulated.csv: missing)" in out, out
    assert [p.name for p in tmp_path.iterdir()] == ["regional_2021.csv"]
    assert (tmp_path / "regional_2021.csv").read_text() == older
    assert make_inputs.main(["--write"], folder=tmp_path) == 0
    assert (tmp_path / "regional_2021.csv").read_text() == make_inputs.exact_csv(FRAME)
    assert (
        tmp_path / "races_simulated.csv"
    ).read_text() == "region,share,count\nAkmola,0.6666666666666666,770\nAktobe,,883\n"
    capsys.readouterr()
    assert make_inputs.main([], folder=tmp_path) == 0
    assert capsys.readouterr().out == (
        "the reference inputs are what today's pipeline derives (3 regions; 2 races in 2 regions, simulation seed 7)\n"
    )


def test_a_missing_pipeline_output_is_a_note_when_comparing_and_an_error_when_writing(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(make_inputs.SOURCES, "races_simulated.csv", (tmp_path / "absent.parquet", ["region"]))
    with pytest.raises(FileNotFoundError, match=r"absent.parquet is missing: run `.venv/bin/dvc repro simulate`"):
        make_inputs.main(["--write"], folder=tmp_path)
    assert make_inputs.main([], folder=tmp_path) == 0 and not list(tmp_path.iterdir())


def test_the_committed_inputs_are_not_rewritten_by_a_comparison(capsys) -> None:
    """Whatever today's pipeline gives, `make reference`'s comparison leaves the frozen inputs alone."""
    before = tracked_state()
    assert make_inputs.main([]) == 0
    assert capsys.readouterr().out.startswith(("note: ", "the reference inputs are"))
    assert tracked_state() == before
