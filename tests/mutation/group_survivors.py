"""Group the surviving mutants of a ``make mutation`` run by the kind of change, for tests/mutation/SURVIVORS.md.

Reads ``mutants/survivors.txt`` (written by ``score.py``) and the mutated sources under ``mutants/src/``, where
mutmut 3 keeps every mutant as a copy of its function (``x_<function>__mutmut_<n>`` beside
``x_<function>__mutmut_orig``). Each survivor's changed lines (the same diff as ``mutmut show NAME``) are matched
against the patterns below, first match wins; what matches none is listed as not classified. The patterns say what
a change touches (a dtype argument, an error message, a sort order...), not that it is harmless: the groups are
read and spot-checked by hand. Prints Markdown: a count per group and module, then each group's mutants.

    .venv/bin/python tests/mutation/group_survivors.py [mutants]
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
from collections import defaultdict
from pathlib import Path

# (group, test on the removed and added lines, description)
GROUPS: tuple[tuple[str, object, str], ...] = (
    (
        "dtype",
        lambda old, new: (
            re.search(r"dtype|astype", old) is not None
            and _without(old, r"(,\s*)?dtype=[\w.\"']+") == _without(new, r"(,\s*)?dtype=[\w.\"']+|,\s*\)", ")")
        ),
        "a dtype argument removed or set to None where the array already has that type",
    ),
    (
        "message",
        lambda old, new: (
            re.search(r"raise |Declined\(|Error\(|notes\.append|error = \"", old) is not None
            and _strings_only(old, new)
        ),
        "the wording of an error message, a decline reason or a note (the condition and the exception are tested)",
    ),
    (
        "order",
        lambda old, new: re.search(r"kind=|sort=|sort_values|groupby", old) is not None,
        "a sort or grouping order argument",
    ),
    (
        "warnings and display",
        lambda old, new: re.search(r"errstate|disp=|catch_warnings|simplefilter|tqdm|desc=", old) is not None,
        "which floating-point warnings numpy raises, what an optimiser or a progress bar prints",
    ),
    (
        "iteration limits and tolerances",
        lambda old, new: (
            re.search(r"range\(\d+\)|maxiter|max_steps|tol|gtol|epsilon|1e-1[0-9]|< 1e-|<= 1e-", old) is not None
        ),
        "an iteration cap, a convergence tolerance or a numerical guard of a loop that converges well inside it",
    ),
    (
        "defaults",
        lambda old, new: re.match(r"\s*\w+: [\w| .\[\]]+ = ", old) is not None,
        "the default value of a parameter that the pipeline passes explicitly",
    ),
)


def _without(line: str, pattern: str, replacement: str = "") -> str:
    return re.sub(pattern, replacement, line).replace(" ", "")


def _strings_only(old: str, new: str) -> bool:
    """The two lines differ only inside string literals, or by a message replaced with None."""
    strip = re.compile(r"f?\"[^\"]*\"|f?'[^']*'|None")
    return strip.sub("S", old).replace(" ", "") == strip.sub("S", new).replace(" ", "")


def functions(path: Path) -> dict[str, str]:
    """Source of every top-level function and method in a mutated module, by name."""
    text = path.read_text()
    lines = text.splitlines()
    out = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
            out[node.name] = "\n".join(lines[node.lineno : node.end_lineno])
    return out


def changed_lines(orig: str, mutant: str) -> tuple[str, str]:
    removed, added = [], []
    for line in difflib.ndiff(orig.splitlines(), mutant.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:].strip())
        elif line.startswith("+ "):
            added.append(line[2:].strip())
    return " ".join(removed), " ".join(added)


def classify(old: str, new: str) -> str:
    for name, test, _ in GROUPS:
        if test(old, new):
            return name
    return "not classified"


def main(root: Path = Path("mutants")) -> int:
    survivors = [line.split("\t") for line in (root / "survivors.txt").read_text().splitlines() if line]
    sources: dict[str, dict[str, str]] = {}
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, status in survivors:
        module, function = name.split(".")[1], name.split(".", 2)[2]
        if module not in sources:
            sources[module] = functions(root / "src" / "akim_turnout" / f"{module}.py")
        base, number = function.rsplit("__mutmut_", 1)
        if status != "survived":
            group = status
        else:
            old, new = changed_lines(sources[module][f"{base}__mutmut_orig"], sources[module][function])
            group = classify(old, new)
        label = base.removeprefix("x_").replace("xǁ", "").replace("ǁ", ".")
        groups[group][f"{module}.{label}"].append(number)
    descriptions = {name: text for name, _, text in GROUPS}
    order = [name for name, _, _ in GROUPS] + ["not classified", "no tests", "not checked"]
    print("| group | mutants |\n|---|---:|")
    for group in order:
        if group in groups:
            print(f"| {group} | {sum(len(v) for v in groups[group].values())} |")
    for group in order:
        if group not in groups:
            continue
        members = groups[group]
        print(f"\n### {group} ({sum(len(v) for v in members.values())})\n")
        if group in descriptions:
            print(f"Changes to {descriptions[group]}.\n")
        for function, numbers in sorted(members.items(), key=lambda item: (-len(item[1]), item[0])):
            print(f"- `{function}` ({len(numbers)}): {','.join(sorted(numbers, key=int))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("mutants")))
