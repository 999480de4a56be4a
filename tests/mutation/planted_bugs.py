"""Plant each bug kind that issue 14 found the unit tests missing, one at a time, and check that the tests now fail.

Each bug is a text replacement in a copy of ``src/`` (in a temporary folder, put first on ``PYTHONPATH``); the
named unit tests run against it and must fail. A control run without any bug must pass first. ``make mutation``
runs this after mutmut; run it alone with ``.venv/bin/python tests/mutation/planted_bugs.py``. Exit status 1 if a
planted bug survives or the control fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Bug:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = (
    Bug(
        "regional covariance HC0 while labelled HC3",
        "models/regional.py",
        "cov = checked_sandwich(raw, cov_type, name)",
        'cov = checked_sandwich(raw, "HC0", name)',
        ("tests/test_constants.py",),
    ),
    Bug(
        "AME intervals with normal quantiles",
        "models/inference.py",
        "df = fit.df_resid if fit.use_t and fit.df_resid else None\n    q = quantile(1 - alpha / 2, df)",
        "df = fit.df_resid if fit.use_t and fit.df_resid else None\n    q = quantile(1 - alpha / 2, None)",
        (
            "tests/test_constants.py",
            "tests/models/race/test_fits.py",
            "tests/models/test_regional.py",
            "tests/models/inference/test_covariances_and_effects.py",
        ),
    ),
    Bug(
        "prediction band with normal quantiles",
        "models/regional.py",
        "q = quantile(1 - alpha / 2, fit.df_resid if fit.use_t else None)",
        "q = quantile(1 - alpha / 2, None)",
        ("tests/test_constants.py",),
    ),
    Bug(
        "study Wald coverage with normal quantiles",
        "study/replications.py",
        "half = inference.quantile(1 - alpha / 2, fit.df_resid) * se",
        "half = inference.quantile(1 - alpha / 2, None) * se",
        ("tests/test_constants.py",),
    ),
    Bug(
        "study's fast-engine Wald coverage with normal quantiles",
        "study/replications.py",
        "    if df is None:\n        p_value, low, high = (float(x) for x in fastfit.normal_inference(",
        "    if True:\n        p_value, low, high = (float(x) for x in fastfit.normal_inference(",
        ("tests/study/replications/test_study_runs.py", "tests/models/fastfit/test_agreement_with_statsmodels.py"),
    ),
    Bug(
        "wild bootstrap with Rademacher weights by default",
        "models/resampling.py",
        'weights: str = "webb",',
        'weights: str = "rademacher",',
        ("tests/models/resampling/test_enumeration.py",),
    ),
    Bug(
        "wild bootstrap replicates not restudentised",
        "models/resampling.py",
        "boot_stats = perturbed / spread",
        "boot_stats = perturbed / math.sqrt(psi @ psi)",
        ("tests/models/resampling/test_enumeration.py",),
    ),
    Bug(
        "attenuation constant inverted",
        "study/simulate.py",
        "c = 16 * np.sqrt(3) / (15 * np.pi)",
        "c = 15 * np.pi / (16 * np.sqrt(3))",
        ("tests/test_constants.py",),
    ),
    Bug(
        "integer-percentage null clipped at 0 and 100 % instead of reflected",
        "models/forensics.py",
        "q = np.abs(q)  # reflect at 0 ...\n    return np.where(q > 1.0, 2.0 - q, q)  # ... and at 1",
        "return np.clip(q, 0.0, 1.0)",
        ("tests/models/resampling/test_enumeration.py",),
    ),
    Bug(
        "unknown source_id accepted",
        "data/validation.py",
        "        if value not in allowed:",
        '        if value not in allowed and column != "source_id":',
        ("tests/data/test_ingest.py",),
    ),
    Bug(
        "unescaped figure caption",
        "report/html.py",
        "<b>Figure {number}.</b> {escape(caption)}",
        "<b>Figure {number}.</b> {caption}",
        ("tests/data/test_ingest.py",),
    ),
    Bug(
        "statsmodels Time: line left in executed notebooks",
        "pipeline/runner.py",
        'r"^(Date|Time):( +)\\S.*$"',
        'r"^(Date):( +)\\S.*$"',
        ("tests/pipeline/test_runner.py",),
    ),
)


def run_tests(src: Path, tests: tuple[str, ...]) -> int:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        *tests,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not pipeline and not browser",
    ]
    return subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="planted-") as folder:
        src = Path(folder) / "src"
        shutil.copytree(ROOT / "src", src)
        every_test = tuple(sorted({test for bug in BUGS for test in bug.tests}))
        if run_tests(src, every_test) != 0:
            print("control run without a planted bug failed: fix the tests first")
            return 1
        survived = []
        for bug in BUGS:
            path = src / "akim_turnout" / bug.file
            original = path.read_text(encoding="utf-8")
            if original.count(bug.old) != 1:
                print(f"cannot plant {bug.name!r}: the text to replace is not found once in {bug.file}")
                return 1
            path.write_text(original.replace(bug.old, bug.new), encoding="utf-8")
            try:
                caught = run_tests(src, bug.tests) != 0
            finally:
                path.write_text(original, encoding="utf-8")
            print(f"{'caught  ' if caught else 'SURVIVED'}  {bug.name}")
            if not caught:
                survived.append(bug.name)
        print(f"{len(BUGS) - len(survived)} of {len(BUGS)} planted bugs caught")
        return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
