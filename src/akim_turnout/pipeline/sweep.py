"""Parameter sweep with DVC experiments: the simulator's true effect x the model family of the headline estimate.

    python -m akim_turnout.pipeline.sweep --effects 0.0 -0.15 -0.3 --families glm gee mixedlm --jobs 2

Each grid point is queued with ``dvc exp run --queue -S ...`` under a name such as ``effect-0p15-gee``; an
experiment of the same name from an earlier sweep is replaced. ``dvc queue start -j JOBS`` runs them in parallel in
temporary copies (the workspace is untouched) while one line per finished experiment reports progress; the table
at the end is in numeric order (family, then true effect from 0 down). Afterwards ``dvc exp show`` /
``dvc metrics diff`` compare them, and ``dvc exp apply NAME`` brings one into the workspace.

It works from any shell: DVC starts its queue workers as a bare ``dvc`` looked up on ``PATH``, so every DVC call
here runs with this environment's ``bin/`` on ``PATH``. DVC's workers keep the standard output of
``dvc queue start`` open until the queue is empty, so DVC's output goes to temporary files, never to pipes: reading
a pipe would wait for the whole queue and print every progress line at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EFFECT_PARAM = "simulate.settings.beta_self_share"
FAMILY_PARAM = "race_models.headline_model"
FAMILIES = ("recommended", "glm", "wild_bootstrap", "gee", "mixedlm", "beta")
FINISHED = ("Success", "Failed")


def environment() -> dict[str, str]:
    """The caller's environment with this Python's ``bin/`` on ``PATH`` (first, unless already there), where DVC
    looks for ``dvc``."""
    path, bin_dir = os.environ.get("PATH", os.defpath), str(Path(sys.executable).parent)
    return {**os.environ, "PATH": path if bin_dir in path.split(os.pathsep) else f"{bin_dir}{os.pathsep}{path}"}


def run_detached(command: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``command`` to its end and return (exit code, stdout, stderr). The output goes through temporary files:
    a background process the command leaves behind (DVC's queue worker) may keep them open without blocking us."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.run(command, cwd=cwd, env=environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        return code.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def dvc(*args: str, cwd: Path) -> str:
    code, stdout, stderr = run_detached([sys.executable, "-m", "dvc", *args], cwd)
    if code != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{stdout}\n{stderr}")
    return stdout


def experiment_name(effect: float, family: str) -> str:
    """A git-ref-safe name: ``effect0p00-glm``, ``effect-0p15-gee``."""
    return f"effect{effect:+.2f}-{family}".replace(".", "p").replace("+", "")


def queue_grid(effects: list[float], families: list[str], cwd: Path) -> list[str]:
    """Queue one experiment per (effect, family), replacing experiments of the same name; returns the names."""
    names = [experiment_name(effect, family) for effect, family in itertools.product(effects, families)]
    existing = set(dvc("exp", "list", "--name-only", cwd=cwd).split())
    earlier = [name for name in names if name in existing]
    if earlier:
        dvc("exp", "remove", *earlier, cwd=cwd)
        print(f"replacing {len(earlier)} earlier experiment(s): {', '.join(earlier)}", flush=True)
    for (effect, family), name in zip(itertools.product(effects, families), names, strict=True):
        dvc(
            "exp",
            "run",
            "--queue",
            "--name",
            name,
            "-S",
            f"{EFFECT_PARAM}={effect}",
            "-S",
            f"{FAMILY_PARAM}={family}",
            cwd=cwd,
        )
    return names


def queue_states(status: str, names: list[str]) -> dict[str, str]:
    """Name -> status (Queued, Running, Success, Failed) from the text of ``dvc queue status``."""
    states = {}
    for line in status.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in names:
            states[words[1]] = words[-1]
    return states


def wait_for_queue(
    names: list[str], cwd: Path, timeout_s: float, poll_s: float = 3.0, started: float | None = None
) -> dict[str, str]:
    """Poll ``dvc queue status`` until every experiment has finished, printing one line as each one does, with the
    seconds since ``started`` (a ``time.monotonic()`` reading taken before the queue was started; default: now)."""
    started = time.monotonic() if started is None else started
    deadline, reported = started + timeout_s, set()
    while time.monotonic() < deadline:
        states = queue_states(dvc("queue", "status", cwd=cwd), names)
        for name in names:
            if states.get(name) in FINISHED and name not in reported:
                reported.add(name)
                print(
                    f"[{len(reported)}/{len(names)}] {name}: {states[name].lower()} "
                    f"({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        if len(reported) == len(names):
            return states
        time.sleep(poll_s)
    raise TimeoutError(f"experiments still running after {timeout_s:.0f} s")


def headline_table(names: list[str], cwd: Path) -> list[dict]:
    """Parameters and headline metric of each named experiment, from ``dvc exp show --json``, in numeric order."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=cwd))
    rows = []
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs", []):
                if revision.get("name") not in names:
                    continue
                data = revision["data"]
                params = data["params"]["params.yaml"]["data"]
                headline = data["metrics"]["reports/metrics/race_models.json"]["data"]
                rows.append(
                    {
                        "name": revision["name"],
                        "true_effect": float(params["simulate"]["settings"]["beta_self_share"]),
                        "family": params["race_models"]["headline_model"],
                        "estimate": headline["sim_headline"],
                        "ci_lower": headline["sim_lo"],
                        "ci_upper": headline["sim_hi"],
                    }
                )
    return sorted(rows, key=lambda r: (FAMILIES.index(r["family"]), -r["true_effect"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effects", nargs="+", type=float, default=[0.0, -0.15, -0.3])
    parser.add_argument("--families", nargs="+", default=["glm", "gee", "mixedlm"], choices=FAMILIES)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    cwd = Path.cwd()
    names = queue_grid(args.effects, args.families, cwd)
    print(f"queued {len(names)} experiment(s); running {args.jobs} at a time", flush=True)
    started = time.monotonic()
    dvc("queue", "start", "-j", str(args.jobs), cwd=cwd)
    try:
        states = wait_for_queue(names, cwd, args.timeout, started=started)
    finally:
        dvc("queue", "stop", cwd=cwd)
    rows = headline_table(names, cwd)
    print(f"{'experiment':<26} {'true effect':>11} {'family':<8} {'estimate':>9} {'95 % CI':>20}")
    for r in rows:
        print(
            f"{r['name']:<26} {r['true_effect']:>11.2f} {r['family']:<8} {r['estimate']:>9.3f} "
            f"[{r['ci_lower']:.3f}, {r['ci_upper']:.3f}]"
        )
    failed = [name for name, state in states.items() if state == "Failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (dvc queue logs NAME shows why)", file=sys.stderr)
    return 0 if len(rows) == len(names) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
