"""Benchmark: speed and memory of the pipeline and the models, each as a ratio to a floor measured in the same run.

    python -m akim_turnout.pipeline.bench            # everything except fresh-clone `make reproduce` / `make test`
    python -m akim_turnout.pipeline.bench --all      # also those two (minutes)
    python -m akim_turnout.pipeline.bench --json bench-results.json

Seconds do not travel between machines; ratios measured in one run do. Floors:
- a full `dvc repro -f`  vs  (number of stages x a papermill run of a one-cell notebook importing pandas,
  statsmodels.api, matplotlib.pyplot and seaborn): the least any notebook stage of this stack pays;
- each stage  vs  its own floor: the runner's import plus a papermill run of a notebook holding only that stage's
  import statements (its kernel start and imports); the rest is the stage's work. The simulation study's stage has
  a target (``TARGETS["study_stage_ratio"]``): it is the one stage whose work grows with its parameters;
- a no-op `dvc repro`  vs  `dvc status` on an empty pipeline;
- the simulation study's fast numpy engine  vs  its statsmodels engine, replications per second on one core, with a
  check that both give the same results;
- a race-level fit  vs  one weighted cross-product X'WX over the same design; fit time against size (growth exponent);
- fresh `make test`  vs  fresh `make reproduce` (with --all).
Targets are checked here, never by timed tests.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from akim_turnout.pipeline.paths import project_root

# The simulation study's stage, and the whole pipeline, against their floors: at the study's full strength (its
# params.yaml defaults: replications, the headline's bootstrap draws, the sensitivity table) the stage may take at
# most STUDY_STAGE_RATIO times its own floor, and a forced rebuild of every stage 1.5 times (stages x stack floor).
STUDY_STAGE = "simulation_study"
TARGETS = {
    "full_repro_ratio": 1.5,
    "study_stage_ratio": 4.0,
    "noop_ratio": 1.5,
    "study_speedup": 4.0,
    "test_vs_reproduce": 2.0,
    "fit_1e6_s": 15.0,
    "fit_1e6_peak_mb": 2048.0,
    "growth_exponent": 1.2,
}
STACK_IMPORTS = "import pandas, statsmodels.api, matplotlib.pyplot, seaborn"
FIT_CHILD = r"""
import json, resource, sys, time
import numpy as np
from akim_turnout.data import processed as data
from akim_turnout.models import design, race
from akim_turnout.study import simulate
n = int(sys.argv[1])
regional = data.read_processed("regional_2021")
national = data.read_processed("national").set_index("round_id").loc[data.ROUND_2021]
regions, totals = simulate.inputs_from_published(regional, national)
settings = simulate.SimulationSettings.from_params()
races = simulate.simulate_scaled(regions, totals, settings, seed=1, n_races=n)
rhs = simulate.true_formula_rhs(settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
exog, names = design.build_design(races, rhs)
weights = races["registered"].to_numpy(float) * 0.2
(exog * weights[:, None]).T @ exog
floor = time.perf_counter() - start
del exog
start = time.perf_counter()
fit = race.fit_race_glm(races, rhs)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "fit_s": seconds, "floor_s": floor, "peak_mb": peak, "before_mb": before,
                  "fit_extra_mb": peak - before, "self_share": float(fit.params["self_share"])}))
"""
PAPERMILL_RUN = (
    "import sys, papermill; papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name='python3', "
    "progress_bar=False, log_output=False)"
)


def timed(command: list[str] | str, cwd: Path, env: dict | None = None, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs of a command (fails loudly on a non-zero exit)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(
            command, cwd=cwd, env=env, shell=isinstance(command, str), capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def environment() -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("AKIM_OUTPUT_ROOT", None)
    return env


def row(
    name: str,
    value: float,
    floor: float,
    floor_name: str,
    target: float | None = None,
    unit: str = "s",
    higher_is_better: bool = False,
) -> dict[str, Any]:
    """One measurement: its value, its floor, their ratio, and whether the ratio meets ``target``."""
    ratio = value / floor if floor else None
    met = None if target is None or ratio is None else bool(ratio >= target if higher_is_better else ratio <= target)
    return {
        "higher_is_better": higher_is_better,
        "measure": name,
        "value": round(value, 3),
        "unit": unit,
        "floor": round(floor, 3),
        "floor_is": floor_name,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "met": met,
    }


def bench_environment(root: Path, scratch: Path) -> list[dict]:
    """A fresh venv from the lock (uv's download cache may be warm) against an empty venv with uv."""
    python = shutil.which("python3.11") or sys.executable
    venv = scratch / "venv"
    floor = timed(f"{python} -m venv {venv} && {venv}/bin/python -m pip install -q uv==0.13.9", root)
    shutil.rmtree(venv)
    setup = timed(
        f"{python} -m venv {venv} && {venv}/bin/python -m pip install -q uv==0.13.9 && "
        f"{venv}/bin/uv pip sync -q --python {venv}/bin/python requirements.lock && "
        f"{venv}/bin/uv pip install -q --python {venv}/bin/python --no-deps -e .",
        root,
    )
    return [row("environment set-up from the lock", setup, floor, "empty venv + uv")]


def stages(root: Path) -> dict[str, dict]:
    import yaml

    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def notebook_of(code: str, path: Path) -> Path:
    """A one-cell notebook holding ``code``, with the project's kernel."""
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "id": "c",
                        "metadata": {},
                        "outputs": [],
                        "source": code,
                    }
                ],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return path


def stage_imports(notebook: Path) -> str:
    """The import statements of a notebook's code cells (what its kernel loads before any work)."""
    from akim_turnout.pipeline.deps import notebook_source

    tree = ast.parse(notebook_source(notebook))
    return "\n".join(ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def papermill_floor(code: str, cwd: Path, env: dict, scratch: Path, name: str) -> float:
    notebook = notebook_of(code, scratch / f"{name}.ipynb")
    return timed(
        [sys.executable, "-c", PAPERMILL_RUN, str(notebook), str(scratch / f"{name}-out.ipynb")], cwd, env, repeat=2
    )


def bench_pipeline(root: Path, scratch: Path, env: dict) -> list[dict]:
    """Full forced rebuild, each stage alone against its own floor, and a no-op, in a clone (the working tree is
    untouched)."""
    copy = scratch / "project"
    subprocess.run(["git", "clone", "-q", str(root), str(copy)], check=True)
    names = list(stages(copy))
    stack = papermill_floor(STACK_IMPORTS, copy, env, scratch, "stack")
    rows = [row("papermill run of a one-cell notebook importing the stack", stack, stack, "itself")]
    first = timed(["dvc", "repro", "-q"], copy, env)
    rows.append(row("cold dvc repro (new clone, environment ready)", first, stack * len(names), "stages x stack floor"))
    full = timed(["dvc", "repro", "-f", "-q"], copy, env)
    rows.append(row("full dvc repro -f", full, stack * len(names), "stages x stack floor", TARGETS["full_repro_ratio"]))
    runner = timed([sys.executable, "-c", "import akim_turnout.pipeline.runner, papermill"], copy, env, repeat=2)
    for name, stage in stages(copy).items():
        notebook = copy / next(part for part in stage["cmd"].split() if part.endswith(".ipynb"))
        floor = runner + papermill_floor(stage_imports(notebook), copy, env, scratch, name)
        seconds = timed(["dvc", "repro", "-f", "-s", "-q", name], copy, env)
        rows.append(row(f"stage {name}", seconds, floor, "runner + kernel + its imports", stage_target(name)))
        rows.append(row("  its work beyond the floor", max(seconds - floor, 0.0), floor, "its floor"))
    empty = scratch / "empty"
    empty.mkdir()
    timed(["dvc", "init", "--no-scm", "-q"], empty, env)
    (empty / "dvc.yaml").write_text("stages: {}\n")
    status_floor = timed(["dvc", "status", "-q"], empty, env, repeat=3)
    noop = timed(["dvc", "repro", "-q"], copy, env, repeat=3)
    rows.append(row("no-op dvc repro", noop, status_floor, "dvc status, empty pipeline", TARGETS["noop_ratio"]))
    return rows


def stage_target(name: str) -> float | None:
    """The target ratio of a stage to its floor: the simulation study's (:data:`TARGETS`), none for the others."""
    return TARGETS["study_stage_ratio"] if name == STUDY_STAGE else None


def bench_fresh_clone(root: Path, scratch: Path, env: dict) -> list[dict]:
    """`make reproduce` and `make test` each in a fresh clone; the test suite against the reproduction."""
    # as from a new shell: no activated environment, no flags of a make that runs this benchmark
    plain = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    times = {}
    for target in ("reproduce", "test"):
        clone = scratch / f"fresh-{target}"
        subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
        times[target] = timed(["make", target], clone, plain)
    return [
        row("fresh make reproduce (environment included)", times["reproduce"], times["reproduce"], "itself"),
        row("fresh make test", times["test"], times["reproduce"], "fresh make reproduce", TARGETS["test_vs_reproduce"]),
    ]


def bench_fits(root: Path, env: dict, sizes=(1_000, 10_000, 100_000, 1_000_000)) -> tuple[list[dict], dict]:
    """Race-level GLM time and peak memory per size (each in its own process), and the growth exponent."""
    import numpy as np

    results = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", FIT_CHILD, str(n)], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for r in results:
        rows.append(row(f"race GLM fit, {r['n']:,} races", r["fit_s"], r["floor_s"], "one X'WX pass"))
        rows.append(
            row(f"peak memory, {r['n']:,} races", r["peak_mb"], r["before_mb"], "RSS before the fit", unit="MB")
        )
        if r["n"] == 1_000_000:  # absolute limits, as before: 15 s and 2 GB
            rows[-2]["target"], rows[-2]["met"] = (
                f"<= {TARGETS['fit_1e6_s']:g} s",
                bool(r["fit_s"] <= TARGETS["fit_1e6_s"]),
            )
            rows[-1]["target"], rows[-1]["met"] = (
                f"<= {TARGETS['fit_1e6_peak_mb']:g} MB",
                bool(r["peak_mb"] <= TARGETS["fit_1e6_peak_mb"]),
            )
    big = [r for r in results if r["n"] >= 10_000]
    exponent = float(np.polyfit(np.log([r["n"] for r in big]), np.log([r["fit_s"] for r in big]), 1)[0])
    rows.append(
        {
            "measure": "growth exponent of fit time (10^4..10^6)",
            "value": round(exponent, 2),
            "unit": "",
            "floor": 1.0,
            "floor_is": "linear",
            "ratio": round(exponent, 2),
            "target": TARGETS["growth_exponent"],
            "met": bool(exponent <= TARGETS["growth_exponent"]),
        }
    )
    return rows, {"fits": results}


def bench_study(root: Path, env: dict) -> list[dict]:
    """Replications per second on one core at the real design (the default methods), with the fast numpy engine
    and with statsmodels, and whether both give the same results."""
    code = r"""
import json, sys, time
import numpy as np
from akim_turnout.data import processed as data
from akim_turnout.study import replications as study, simulate
regional = data.read_processed("regional_2021")
national = data.read_processed("national").set_index("round_id").loc[data.ROUND_2021]
regions, totals = simulate.inputs_from_published(regional, national)
design = study.StudyDesign.from_mapping({"n_replications": 10, "n_replications_null": 10,
                                         "effect_grid": [0.0, -0.15, -0.3, -0.6], "method_replications": {}})
settings = simulate.SimulationSettings.from_params()
frames, rates = {}, {}
for engine in ("fast", "statsmodels", "fast"):
    start = time.perf_counter()
    frames[engine] = study.run_study(design, settings, regions, totals, n_jobs=1, engine=engine)
    rates[engine] = 40 / (time.perf_counter() - start)
numeric = ["estimate", "se", "ci_low", "ci_high", "p_value"]
flags = ["ok", "covered", "rejected"]
same = bool(np.allclose(frames["fast"][numeric], frames["statsmodels"][numeric], rtol=1e-6, atol=1e-9, equal_nan=True)
            and (frames["fast"][flags] == frames["statsmodels"][flags]).all().all())
print(json.dumps({"fast": rates["fast"], "statsmodels": rates["statsmodels"], "same": same}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [
        row(
            "study throughput, statsmodels engine (replications/s, 1 core)",
            result["statsmodels"],
            result["statsmodels"],
            "itself",
            unit="rep/s",
        ),
        row(
            "study throughput, fast engine (replications/s, 1 core)",
            result["fast"],
            result["statsmodels"],
            "statsmodels engine",
            TARGETS["study_speedup"],
            unit="rep/s",
            higher_is_better=True,
        ),
    ]
    rows.append(
        {
            "measure": "fast and statsmodels engines give the same study results",
            "value": result["same"],
            "unit": "",
            "floor": "",
            "floor_is": "",
            "ratio": "",
            "target": True,
            "met": result["same"],
        }
    )
    return rows


def _met(r: dict) -> str:
    return "" if r["met"] is None else ("met" if r["met"] else "**not met**")


def format_table(rows: list[dict]) -> str:
    """The results as a Markdown table (also what the README shows)."""
    lines = ["| measure | value | floor | ratio | target | |", "|---|---|---|---|---|---|"]
    for r in rows:
        value = f"{r['value']} {r['unit']}".strip()
        floor = f"{r['floor']} ({r['floor_is']})" if r["floor_is"] and r["floor_is"] != "itself" else ""
        target = (
            ""
            if r["target"] is None
            else (
                f"{'≥' if r.get('higher_is_better') else '≤'} {r['target']}"
                if isinstance(r["target"], float)
                else str(r["target"])
            )
        )
        lines.append(f"| {r['measure']} | {value} | {floor} | {r['ratio'] if floor else ''} | {target} | {_met(r)} |")
    return "\n".join(lines)


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(path: Path, table: str, date: str) -> None:
    """Put the table between the README's bench markers."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    if not rest:
        raise ValueError(f"{path} has no {README_START} ... {README_END} block")
    block = f"{README_START}\nMeasured on {date}, {os.cpu_count()} cores, by `make bench`:\n\n{table}\n{README_END}"
    path.write_text(head + block + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the pipeline and models against floors measured in the same run."
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--all", action="store_true", help="also time `make reproduce` and `make test` in fresh clones (minutes)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["environment", "pipeline", "fits", "study"], help="parts to skip"
    )
    parser.add_argument("--readme", help="write the table into this README between its bench markers")
    args = parser.parse_args(argv)
    root, env = project_root(), environment()
    rows: list[dict] = []
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix="akim-bench-") as scratch_name:
        scratch = Path(scratch_name)
        if "environment" not in args.skip:
            rows += bench_environment(root, scratch)
        data_root = root  # where the fits and the study read the pipeline's processed data
        if "pipeline" not in args.skip:
            rows += bench_pipeline(root, scratch, env)
            data_root = scratch / "project"  # the clone the pipeline bench has just reproduced
        needs_data = {"fits", "study"} - set(args.skip)
        if needs_data and not (data_root / "data" / "processed" / "ingest").is_dir():
            parser.error(f"{data_root} has no processed data: run `make reproduce` first, or do not skip the pipeline")
        if "fits" not in args.skip:
            fit_rows, extra = bench_fits(data_root, env)
            rows += fit_rows
        if "study" not in args.skip:
            rows += bench_study(data_root, env)
        if args.all:
            rows += bench_fresh_clone(root, scratch, env)
    table = format_table(rows)
    print(table)
    if args.readme:
        update_readme(Path(args.readme), table, time.strftime("%Y-%m-%d"))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows, **extra}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
