"""Parameter sweep with DVC experiments: the simulator's true effect x the model family of the headline estimate.

    python -m akim_turnout.sweep --effects 0.0 -0.15 -0.3 --families glm gee mixedlm --jobs 2

Each grid point is queued with ``dvc exp run --queue -S ...``; ``dvc queue start -j JOBS`` runs them in parallel in
temporary copies (the workspace is untouched), and the comparison is printed with ``dvc exp show``. Afterwards
``dvc exp show`` / ``dvc metrics diff`` compare them, and ``dvc exp apply NAME`` brings one into the workspace.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

EFFECT_PARAM = "simulate.settings.beta_self_share"
FAMILY_PARAM = "race_models.headline_model"
SHOWN = ["race_models.json:headline", "simulate.json:true_coefficients"]


def dvc(*args: str, cwd: Path) -> str:
    result = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def queue_grid(effects: list[float], families: list[str], cwd: Path) -> list[str]:
    """Queue one experiment per (effect, family); returns their names."""
    names = []
    for effect, family in itertools.product(effects, families):
        name = f"effect{effect:+.2f}-{family}".replace(".", "p").replace("+", "")
        dvc("exp", "run", "--queue", "--name", name, "-S", f"{EFFECT_PARAM}={effect}", "-S", f"{FAMILY_PARAM}={family}", cwd=cwd)
        names.append(name)
    return names


def wait_for_queue(cwd: Path, timeout_s: float, poll_s: float = 3.0) -> None:
    """Poll ``dvc queue status`` until nothing is queued or running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=cwd)
        if not any(word in status for word in ("Queued", "Running")):
            failed = [line for line in status.splitlines() if "Failed" in line]
            if failed:
                raise RuntimeError("experiments failed:\n" + "\n".join(failed))
            return
        time.sleep(poll_s)
    raise TimeoutError(f"experiments still running after {timeout_s} s")


def headline_table(names: list[str], cwd: Path) -> list[dict]:
    """Parameters and headline metric of each named experiment, from ``dvc exp show --json``."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=cwd))
    rows = []
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs", []):
                if revision.get("name") not in names:
                    continue
                data = revision["data"]
                params = data["params"]["params.yaml"]["data"]
                headline = data["metrics"]["reports/metrics/race_models.json"]["data"]["headline"]
                rows.append({"name": revision["name"], "true_effect": params["simulate"]["settings"]["beta_self_share"],
                             "family": params["race_models"]["headline_model"], **{k: headline[k] for k in ("estimate", "ci_lower", "ci_upper")}})
    return sorted(rows, key=lambda r: r["name"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effects", nargs="+", type=float, default=[0.0, -0.15, -0.3])
    parser.add_argument("--families", nargs="+", default=["glm", "gee", "mixedlm"], choices=["glm", "beta", "gee", "mixedlm"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    cwd = Path.cwd()
    names = queue_grid(args.effects, args.families, cwd)
    dvc("queue", "start", "-j", str(args.jobs), cwd=cwd)
    try:
        wait_for_queue(cwd, args.timeout)
    finally:
        dvc("queue", "stop", cwd=cwd)
    rows = headline_table(names, cwd)
    print(f"{'experiment':<26} {'true effect':>11} {'family':<8} {'estimate':>9} {'95 % CI':>20}")
    for r in rows:
        print(f"{r['name']:<26} {r['true_effect']:>11.2f} {r['family']:<8} {r['estimate']:>9.3f} [{r['ci_lower']:.3f}, {r['ci_upper']:.3f}]")
    return 0 if len(rows) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
