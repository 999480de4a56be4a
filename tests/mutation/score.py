"""Mutation score of the statistical core from mutmut's results (``make mutation`` runs this after ``mutmut run``).

Reads ``mutants/src/akim_turnout/<module>.py.meta`` (mutmut 3's result files) and prints, per module and overall,
how many mutants the unit tests killed, with the score ``killed / all``: a mutant that survived, had no test
reaching it or was not checked counts against the score; a timeout counts as killed (the mutant changed the
behaviour enough to hang a test). Surviving mutants are listed by name (``mutmut show NAME`` prints each diff) and
written to ``mutants/survivors.txt``; the table of tests/mutation/SURVIVORS.md (killed, survived, no test, not
checked, the score and the score of the checked mutants, per module) is written to ``mutants/score.md``. Exit status
0; the score is information, ``make test`` does not depend on it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

MODULES = (
    "design",
    "inference",
    "regional",
    "race",
    "resampling",
    "fastfit",
    "simulate",
    "study",
    "montecarlo",
    "forensics",
    "validation",
)
KILLED = {1, 3, 36, -24, 24, 152, 37}  # killed, pytest internal error, timeouts, caught by type check
STATUS = {0: "survived", 33: "no tests", 5: "no tests", None: "not checked"}


def _markdown_row(name: str, counts: Counter[str]) -> str:
    """One row of the SURVIVORS.md table: counts with thousands separators, scores with one decimal."""
    checked = counts["mutants"] - counts["not checked"]
    cells = [counts[key] for key in ("mutants", "killed", "survived", "no tests", "not checked")]
    score = counts["killed"] / max(counts["mutants"], 1)
    of_checked = counts["killed"] / max(checked, 1)
    return f"| {name} | " + " | ".join(f"{cell:,}" for cell in cells) + f" | {score:.1%} | {of_checked:.1%} |"


def main(root: Path = Path("mutants")) -> int:
    survivors: list[str] = []
    totals: Counter[str] = Counter()
    table = [
        "| module | mutants | killed | survived | no test | not checked | score | score of the checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print(f"{'module':<12} {'mutants':>8} {'killed':>8} {'score':>7}")
    for module in MODULES:
        meta = root / "src" / "akim_turnout" / f"{module}.py.meta"
        if not meta.exists():
            print(f"{module:<12} (no results: {meta} missing)")
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        killed = sum(code in KILLED for code in codes.values())
        for name, code in sorted(codes.items()):
            if code not in KILLED:
                survivors.append(f"{name}\t{STATUS.get(code, f'exit {code}')}")
        counts = Counter(STATUS.get(code, "survived") for code in codes.values() if code not in KILLED)
        counts.update(mutants=len(codes), killed=killed)
        table.append(_markdown_row(module, counts))
        totals.update(counts)
        print(f"{module:<12} {len(codes):>8} {killed:>8} {killed / max(len(codes), 1):>7.1%}")
    score = totals["killed"] / max(totals["mutants"], 1)
    print(f"{'all':<12} {totals['mutants']:>8} {totals['killed']:>8} {score:>7.1%}")
    table.append(_markdown_row("all", totals))
    (root / "survivors.txt").write_text("".join(f"{line}\n" for line in survivors))
    (root / "score.md").write_text("\n".join(table) + "\n")
    print(f"{len(survivors)} surviving mutants listed in {root / 'survivors.txt'} (see `mutmut show NAME`)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("mutants")))
