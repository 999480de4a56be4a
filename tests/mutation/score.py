"""Mutation score of the statistical core from mutmut's results (``make mutation`` runs this after ``mutmut run``).

Reads ``mutants/src/akim_turnout/<module>.py.meta`` (mutmut 3's result files) and prints, per module and overall,
how many mutants the unit tests killed, with the score ``killed / all``: a mutant that survived, had no test
reaching it or was not checked counts against the score; a timeout counts as killed (the mutant changed the
behaviour enough to hang a test). Surviving mutants are listed by name (``mutmut show NAME`` prints each diff) and
written to ``mutants/survivors.txt``. Exit status 0; the score is information, ``make test`` does not depend on it.
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


def main(root: Path = Path("mutants")) -> int:
    survivors: list[str] = []
    totals: Counter[str] = Counter()
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
        totals["mutants"] += len(codes)
        totals["killed"] += killed
        print(f"{module:<12} {len(codes):>8} {killed:>8} {killed / max(len(codes), 1):>7.1%}")
    score = totals["killed"] / max(totals["mutants"], 1)
    print(f"{'all':<12} {totals['mutants']:>8} {totals['killed']:>8} {score:>7.1%}")
    (root / "survivors.txt").write_text("".join(f"{line}\n" for line in survivors))
    print(f"{len(survivors)} surviving mutants listed in {root / 'survivors.txt'} (see `mutmut show NAME`)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("mutants")))
