"""Retest the mutants an earlier ``mutmut run`` left alive, against the tests as they are now (``make mutation
MUTATION_RESUME=1``).

mutmut keeps each mutant's verdict in ``mutants/src/akim_turnout/<module>.py.meta`` and, run again without names,
only tests mutants that have none (an interrupted run resumes; a function whose source changed is mutated and
tested afresh). A test added since would therefore never meet the mutants that survived before it. This script
lists every mutant whose verdict is "survived" or "no tests" and runs ``mutmut run NAME ...`` on them, which
retests named mutants whatever their verdict; mutmut copies ``tests/`` into ``mutants/`` on every run, so they meet
the current tests. Mutants already killed keep their verdict: the resumed score equals a fresh run's only if no test
that killed one was removed or weakened since (a fresh ``make mutation`` checks everything again).

    .venv/bin/python tests/mutation/rerun_survivors.py [mutants]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ALIVE = {0, 33, 5}  # survived; no test reached the mutant (33, 5)
BATCH = 400  # names per mutmut call (its name filter is quadratic in the number of names)


def alive(root: Path) -> list[str]:
    """Names of the mutants whose recorded verdict is survived or no tests, in a stable order."""
    names = []
    for meta in sorted((root / "src").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        names += sorted(name for name, code in codes.items() if code in ALIVE)
    return names


def main(root: Path = Path("mutants")) -> int:
    names = alive(root)
    print(f"{len(names)} mutants survived or had no test: retesting them against the current tests")
    mutmut = Path(sys.executable).parent / "mutmut"
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        result = subprocess.run([str(mutmut), "run", "--max-children", "2", *batch])
        if result.returncode != 0:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("mutants")))
