"""Benchmark: speed and memory of the pipeline and the models, each against a floor measured in the same run.

    python -m akim_turnout.bench            # everything except `make test` (a few minutes)
    python -m akim_turnout.bench --all      # also time `make test` in a fresh clone
    python -m akim_turnout.bench --json bench-results.json

Floors: the fixed cost of the same kind of work on this machine, so ratios travel between machines.
- environment set-up  vs  an empty venv with uv installed (the bootstrap every set-up pays);
- each notebook stage and a full `dvc repro -f`  vs  `python -c "import pandas, statsmodels.api, matplotlib, seaborn"`
  plus one Jupyter kernel start and shutdown (what any notebook stage must pay);
- a no-op `dvc repro`  vs  `dvc status` on an empty pipeline;
- a race-level fit  vs  one weighted cross-product X'WX over the same design (a single Newton step's core);
- simulation-study throughput on 2 workers  vs  1 worker (the ratio is the speed-up).
Targets are checked here, never by timed tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from akim_turnout.paths import project_root

TARGETS = {"full_repro_s": 30.0, "noop_repro_s": 2.0, "stage_ratio": 2.0, "fresh_reproduce_s": 90.0,
           "fit_1e6_s": 15.0, "fit_1e6_peak_mb": 2048.0, "speedup_2_workers": 1.7}
IMPORT_FLOOR = "import pandas, statsmodels.api, matplotlib, seaborn"
KERNEL_FLOOR = ("from jupyter_client.manager import start_new_kernel\n"
                "km, kc = start_new_kernel(kernel_name='python3'); kc.execute_interactive('1'); kc.stop_channels(); km.shutdown_kernel(now=True)")
FIT_CHILD = r"""
import json, resource, sys, time
import numpy as np
from akim_turnout import data, models, simulate
n = int(sys.argv[1])
regional = data.read_processed("regional_2021")
national = data.read_processed("national").set_index("round_id").loc[data.ROUND_2021]
regions, totals = simulate.inputs_from_published(regional, national)
settings = simulate.SimulationSettings()
races = simulate.simulate_scaled(regions, totals, settings, seed=1, n_races=n)
rhs = simulate.true_formula_rhs(settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
exog, names = models.build_design(races, rhs)
weights = races["registered"].to_numpy(float) * 0.2
(exog * weights[:, None]).T @ exog
floor = time.perf_counter() - start
del exog
start = time.perf_counter()
fit = models.fit_race_glm(races, rhs)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "fit_s": seconds, "floor_s": floor, "peak_mb": peak, "before_mb": before, "fit_extra_mb": peak - before,
                  "self_share": float(fit.params["self_share"])}))
"""


def timed(command: list[str] | str, cwd: Path, env: dict | None = None, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs of a command (fails loudly on a non-zero exit)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, env=env, shell=isinstance(command, str), capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def environment() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("AKIM_OUTPUT_ROOT", None)
    return env


def row(name: str, seconds: float, floor: float, floor_name: str, target: float | None = None, unit: str = "s") -> dict[str, Any]:
    return {"measure": name, "value": round(seconds, 3), "unit": unit, "floor": round(floor, 3), "floor_is": floor_name,
            "ratio": round(seconds / floor, 2) if floor else None, "target": target,
            "met": None if target is None else bool(seconds <= target)}


def bench_environment(root: Path, scratch: Path) -> list[dict]:
    """A fresh venv from the lock (uv's download cache may be warm) against an empty venv with uv."""
    python = shutil.which("python3.11") or sys.executable
    venv = scratch / "venv"
    floor = timed(f"{python} -m venv {venv} && {venv}/bin/python -m pip install -q uv==0.13.9", root)
    shutil.rmtree(venv)
    setup = timed(f"{python} -m venv {venv} && {venv}/bin/python -m pip install -q uv==0.13.9 && "
                  f"{venv}/bin/uv pip sync -q --python {venv}/bin/python requirements.lock && "
                  f"{venv}/bin/uv pip install -q --python {venv}/bin/python --no-deps -e .", root)
    return [row("environment set-up from the lock", setup, floor, "empty venv + uv")]


def stage_names(root: Path) -> list[str]:
    import yaml

    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def bench_pipeline(root: Path, scratch: Path, env: dict) -> list[dict]:
    """Full forced rebuild, each stage alone, and a no-op, in a copy of the project (the working tree is untouched)."""
    copy = scratch / "project"
    subprocess.run(["git", "clone", "-q", str(root), str(copy)], check=True)
    floor = timed([sys.executable, "-c", IMPORT_FLOOR], copy, env, repeat=3) + timed([sys.executable, "-c", KERNEL_FLOOR], copy, env, repeat=2)
    rows = []
    first = timed(["dvc", "repro", "-q"], copy, env)
    rows.append(row("cold dvc repro (new clone, env ready)", first, floor * len(stage_names(copy)), "floor x stages"))
    full = timed(["dvc", "repro", "-f", "-q"], copy, env)
    rows.append(row("full dvc repro -f", full, floor * len(stage_names(copy)), "floor x stages", TARGETS["full_repro_s"]))
    for stage in stage_names(copy):
        seconds = timed(["dvc", "repro", "-f", "-s", "-q", stage], copy, env)
        rows.append(row(f"stage {stage}", seconds, floor, "imports + kernel start"))
        rows[-1]["target"], rows[-1]["met"] = f"<= {TARGETS['stage_ratio']} x floor", bool(seconds <= TARGETS["stage_ratio"] * floor)
    empty = scratch / "empty"
    empty.mkdir()
    timed(["dvc", "init", "--no-scm", "-q"], empty, env)
    (empty / "dvc.yaml").write_text("stages: {}\n")
    status_floor = timed(["dvc", "status", "-q"], empty, env, repeat=3)
    noop = timed(["dvc", "repro", "-q"], copy, env, repeat=3)
    rows.append(row("no-op dvc repro", noop, status_floor, "dvc status, empty pipeline", TARGETS["noop_repro_s"]))
    return rows


def bench_fresh_reproduce(root: Path, scratch: Path, env: dict) -> list[dict]:
    clone = scratch / "fresh"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    seconds = timed(["make", "reproduce"], clone, {k: v for k, v in env.items() if k != "VIRTUAL_ENV"})
    return [row("fresh make reproduce (environment included)", seconds, seconds, "itself", TARGETS["fresh_reproduce_s"])]


def bench_make_test(root: Path, scratch: Path, env: dict) -> list[dict]:
    clone = scratch / "fresh-test"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    seconds = timed(["make", "test"], clone, env)
    return [row("fresh make test", seconds, seconds, "itself")]


def bench_fits(root: Path, env: dict, sizes=(1_000, 10_000, 100_000, 1_000_000)) -> tuple[list[dict], dict]:
    """Race-level GLM time and peak memory per size (each in its own process), and the growth exponent."""
    import numpy as np

    results = []
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", FIT_CHILD, str(n)], cwd=root, env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for r in results:
        target = TARGETS["fit_1e6_s"] if r["n"] == 1_000_000 else None
        rows.append(row(f"race GLM fit, {r['n']:,} races", r["fit_s"], r["floor_s"], "one X'WX pass", target))
        mem_target = TARGETS["fit_1e6_peak_mb"] if r["n"] == 1_000_000 else None
        rows.append(row(f"peak memory, {r['n']:,} races", r["peak_mb"], r["before_mb"], "RSS before the fit", mem_target, unit="MB"))
    big = [r for r in results if r["n"] >= 10_000]
    exponent = float(np.polyfit(np.log([r["n"] for r in big]), np.log([r["fit_s"] for r in big]), 1)[0])
    rows.append({"measure": "growth exponent of fit time (10^4..10^6)", "value": round(exponent, 2), "unit": "",
                 "floor": 1.0, "floor_is": "linear", "ratio": round(exponent, 2), "target": "near 1", "met": bool(exponent <= 1.2)})
    return rows, {"fits": results}


def bench_study(root: Path, env: dict) -> list[dict]:
    """Replications per second of a simulation study with 1 and 2 workers, after a warm-up run that starts the workers
    (joblib reuses them); the warm-up time, mostly worker start-up and imports, is reported separately."""
    code = r"""
import json, sys, time
from akim_turnout import data, simulate, study
regional = data.read_processed("regional_2021")
national = data.read_processed("national").set_index("round_id").loc[data.ROUND_2021]
regions, totals = simulate.inputs_from_published(regional, national)
methods = {"methods": ["cluster_t", "wild_bootstrap", "gee_bias_reduced"], "method_replications": {}, "n_boot": 99}
design = study.StudyDesign.from_mapping({"n_replications": 60, "n_replications_null": 120, "effect_grid": [0.0, -0.2], **methods})
warm_up = study.StudyDesign.from_mapping({"n_replications": 2, "n_replications_null": 2, "effect_grid": [0.0, -0.2], **methods})
if __name__ == "__main__":
    start = time.perf_counter()
    study.run_study(warm_up, simulate.SimulationSettings(), regions, totals, n_jobs=int(sys.argv[1]))
    startup = time.perf_counter() - start
    start = time.perf_counter()
    results = study.run_study(design, simulate.SimulationSettings(), regions, totals, n_jobs=int(sys.argv[1]))
    seconds = time.perf_counter() - start
    print(json.dumps({"startup": startup, "seconds": seconds, "replications": int(results[["effect_index", "replication"]].drop_duplicates().shape[0])}))
"""
    script = Path(tempfile.mkdtemp()) / "study_bench.py"
    script.write_text(code)
    runs = {}
    for workers in (1, 2):
        out = subprocess.run([sys.executable, str(script), str(workers)], cwd=root, env=env, capture_output=True, text=True, check=True)
        runs[workers] = json.loads(out.stdout.strip().splitlines()[-1])
    rate = {w: r["replications"] / r["seconds"] for w, r in runs.items()}
    return [row("study warm-up (worker start), 2 workers", runs[2]["startup"], runs[1]["startup"], "1 worker (no pool)"),
            row("study throughput, 1 worker (replications/s)", rate[1], rate[1], "itself", unit="rep/s"),
            row("study throughput, 2 workers (replications/s)", rate[2], rate[1], "1 worker", unit="rep/s"),
            {"measure": "study speed-up on 2 workers", "value": round(rate[2] / rate[1], 2), "unit": "x", "floor": 1.0,
             "floor_is": "1 worker", "ratio": round(rate[2] / rate[1], 2), "target": TARGETS["speedup_2_workers"],
             "met": bool(rate[2] / rate[1] >= TARGETS["speedup_2_workers"])}]


def format_table(rows: list[dict]) -> str:
    header = f"{'measure':<48} {'value':>10} {'unit':<6} {'floor':>9} {'ratio':>7}  {'target':<16} met"
    lines = [header, "-" * len(header)]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(f"{r['measure']:<48} {r['value']:>10} {r['unit']:<6} {r['floor']:>9} {str(r['ratio']):>7}  {str(r['target'] or ''):<16} {met}"
                     f"   (floor: {r['floor_is']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the pipeline and models against floors measured in the same run.")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--all", action="store_true", help="also time `make reproduce` and `make test` in fresh clones (minutes)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["environment", "pipeline", "fits", "study"], help="parts to skip")
    args = parser.parse_args(argv)
    root, env = project_root(), environment()
    rows: list[dict] = []
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix="akim-bench-") as scratch_name:
        scratch = Path(scratch_name)
        if "environment" not in args.skip:
            rows += bench_environment(root, scratch)
        if "pipeline" not in args.skip:
            rows += bench_pipeline(root, scratch, env)
        if "fits" not in args.skip:
            fit_rows, extra = bench_fits(root, env)
            rows += fit_rows
        if "study" not in args.skip:
            rows += bench_study(root, env)
        if args.all:
            rows += bench_fresh_reproduce(root, scratch, env) + bench_make_test(root, scratch, env)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows, **extra}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
