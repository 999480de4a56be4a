"""Check that R and every R package generate.R loads are installed, before `make reference` writes anything.

The packages are read from the ``library(...)`` calls of generate.R, so the list cannot drift from the script.
Prints one line naming the Debian packages to install and exits 1 when something is missing; exits 0 silently
otherwise. Run from anywhere: ``python tests/reference/check_r.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "generate.R"
# R itself; Debian packages every CRAN package as r-cran-<name in lower case>.
R_DEBIAN_PACKAGE = "r-base-core"
INSTALL = "apt-get install --no-install-recommends"
# Prints, one a line, the packages among its arguments that R cannot load.
MISSING_CODE = 'for (p in commandArgs(TRUE)) if (!requireNamespace(p, quietly = TRUE)) cat(p, "\\n", sep = "")'


def r_packages(script: Path = SCRIPT) -> list[str]:
    """The packages generate.R loads with ``library(name)``, in its order."""
    names = re.findall(r"^\s*library\((\w[\w.]*)\)", script.read_text(), flags=re.MULTILINE)
    if not names:
        raise ValueError(f"{script}: no library(...) call found")
    return names


def debian_package(r_package: str) -> str:
    return f"r-cran-{r_package.lower()}"


def missing_packages(packages: list[str], rscript: str) -> list[str]:
    """The packages R cannot load, asked of R itself (``requireNamespace``)."""
    result = subprocess.run([rscript, "-e", MISSING_CODE, *packages], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{rscript} failed ({result.returncode}): {result.stderr.strip()}")
    return [name for name in result.stdout.split() if name in packages]


def problem(script: Path = SCRIPT) -> str | None:
    """One line saying what to install, or None when R and every package are there."""
    packages = r_packages(script)
    rscript = shutil.which("Rscript")
    if rscript is None:
        everything = " ".join([R_DEBIAN_PACKAGE, *map(debian_package, packages)])
        return f"make reference needs R (Rscript is not on PATH): {INSTALL} {everything}"
    missing = missing_packages(packages, rscript)
    if missing:
        return (
            f"make reference needs the R package(s) {', '.join(missing)}: "
            f"{INSTALL} {' '.join(map(debian_package, missing))}"
        )
    return None


def main() -> int:
    message = problem()
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
