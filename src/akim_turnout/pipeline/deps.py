"""The project modules each DVC stage runs, derived from its notebook and command, checked against ``dvc.yaml``.

A stage must list as ``deps`` every module of this package that its notebook or command imports, directly or
through other modules of the package (lazy imports inside functions included), so that editing any of them makes
``dvc status`` report the stage as changed. Listing a module the stage does not import is refused as well: it
would rerun the stage for nothing. Likewise every output of an earlier stage that its notebook reads
(``stage_inputs("x").tables`` and the like, ``data.read_processed``) must be among its deps (:func:`stage_reads`).

``python -m akim_turnout.pipeline.deps`` prints each stage's modules and exits 1, naming stage and module, where
``dvc.yaml`` disagrees; ``--write`` rewrites the module lines of each stage's deps to match (the rest of the file,
comments included, stays as it is). The runner makes the same check before a stage runs.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

PACKAGE = "akim_turnout"
PACKAGE_DIR = f"src/{PACKAGE}"
MODULE_IN_COMMAND = re.compile(rf"-m\s+({PACKAGE}(?:\.\w+)*)")


class DependencyMismatch(ValueError):
    """``dvc.yaml`` lists other project modules for a stage than the stage imports."""


def _module_file(root: Path, module: str) -> Path | None:
    """The source file of ``module`` (``akim_turnout`` or ``akim_turnout.x``) under ``root``, if it exists."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root / "src" / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str, current: str | None = None) -> set[str]:
    """Project modules named by the import statements of ``source`` (a module's name ``current`` resolves
    relative imports). ``from akim_turnout import x`` counts ``akim_turnout.x`` when ``x`` is a module, and always
    ``akim_turnout`` itself."""
    found: set[str] = set()
    for node in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and current:
                anchor = current.split(".")[: -node.level]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _walk(node: ast.AST):
    """Every node below ``node``, except code under ``if __name__ == "__main__":`` (it runs only as a program,
    never when a stage imports the module)."""
    for child in ast.iter_child_nodes(node):
        if not _is_main_guard(child):
            yield child
            yield from _walk(child)


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``"""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and len(node.test.comparators) == 1
        and isinstance(node.test.comparators[0], ast.Constant)
        and node.test.comparators[0].value == "__main__"
    )


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one Python source (IPython magics and shell lines left out)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            text = "".join(cell.get("source", []))
            lines += [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def module_closure(root: Path, start: Iterable[str]) -> set[str]:
    """Every project module reached from ``start`` by imports (each with its parent packages)."""
    pending, seen = list(start), set()
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b runs a/__init__.py first
            module = ".".join(parts[:depth])
            path = _module_file(root, module)
            if path is None or module in seen:
                continue
            seen.add(module)
            pending.extend(imported_modules(path.read_text(encoding="utf-8"), module))
    return seen


def stage_modules(root: Path, stage: Mapping) -> list[str]:
    """Source files (relative to ``root``) of the project modules a stage's notebook and command import."""
    command = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
    start = set(MODULE_IN_COMMAND.findall(command))
    # `python -m package` runs the package's __main__.py
    start |= {f"{m}.__main__" for m in start if (root / "src" / Path(*m.split(".")) / "__main__.py").is_file()}
    for notebook in re.findall(r"(\S+\.ipynb)", command)[:1]:  # the runner's first notebook is the clean one
        start |= imported_modules(notebook_source(root / notebook))
    files = {_module_file(root, module) for module in module_closure(root, start)}
    return sorted(str(path.relative_to(root)) for path in files if path is not None)


OUTPUT_KINDS = ("figures", "tables", "numbers", "metrics", "data")


def _stage_call(node: ast.AST) -> str | None:
    """The stage named by a ``stage_inputs("stage")`` call, or None."""
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "stage_inputs"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return str(node.args[0].value)
    return None


def stage_reads(source: str) -> set[str]:
    """Outputs of earlier stages that ``source`` reads, as paths relative to the project root: every
    ``stage_inputs("x").<kind>`` (also through a name bound to ``stage_inputs("x")``, alone or in a tuple) and
    every ``read_processed(...)`` without a folder (the ingest stage's data)."""
    from akim_turnout.pipeline.paths import StageFiles

    tree = ast.parse(source)
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, value in zip(targets, values, strict=False):
                stage = _stage_call(value)
                if stage and isinstance(target, ast.Name):
                    bound[target.id] = stage
    reads = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in OUTPUT_KINDS:
            value = node.value
            stage = bound.get(value.id) if isinstance(value, ast.Name) else _stage_call(value)
            if stage:
                reads.add(StageFiles.relative(stage)[node.attr])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "read_processed"
            and len(node.args) + len(node.keywords) == 1
        ):
            reads.add(StageFiles.relative("ingest")["data"])
    return reads


def check_stage(root: Path, name: str, stage: Mapping) -> list[str]:
    """Problems of one stage: project modules imported but not listed in its deps, or listed but not imported;
    outputs of earlier stages its notebook reads but does not list."""
    declared = {d for d in stage.get("deps", []) if d.startswith(f"{PACKAGE_DIR}/") and d.endswith(".py")}
    needed = set(stage_modules(root, stage))
    problems = [
        f"stage '{name}' imports {path} but dvc.yaml does not list it in its deps" for path in sorted(needed - declared)
    ]
    problems += [
        f"stage '{name}' lists {path} in its deps but does not import it" for path in sorted(declared - needed)
    ]
    command = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
    deps_listed = [str(d).rstrip("/") for d in stage.get("deps", [])]
    for notebook in re.findall(r"(\S+\.ipynb)", command)[:1]:
        for path in sorted(stage_reads(notebook_source(root / notebook))):
            if not any(path == d or path.startswith(f"{d}/") for d in deps_listed):
                problems.append(f"stage '{name}' reads {path} but dvc.yaml does not list it in its deps")
    return problems


def check_pipeline(root: Path, stages: Iterable[str] | None = None) -> None:
    """Raise DependencyMismatch naming every stage and module where ``dvc.yaml`` and the imports disagree."""
    all_stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    names = list(all_stages) if stages is None else list(stages)
    problems = [problem for name in names for problem in check_stage(root, name, all_stages[name])]
    if problems:
        hint = (
            " (python -m akim_turnout.pipeline.deps --write updates the module lines; outputs read are added by hand)"
        )
        raise DependencyMismatch("; ".join(problems) + hint)


MODULE_LINE = re.compile(rf"^(\s+)- {PACKAGE_DIR}/[\w/]+\.py\s*$")


def write_deps(root: Path) -> None:
    """Rewrite each stage's project-module deps in ``dvc.yaml`` to its import closure, keeping everything else.

    The modules take the place of the stage's first module line (a stage without one gets them after its
    notebook line).
    """
    text = (root / "dvc.yaml").read_text(encoding="utf-8")
    stages = yaml.safe_load(text)["stages"]
    lines, current, written = [], None, set()
    for line in text.splitlines(keepends=True):
        header = re.match(r"^  (\w+):\s*$", line)
        if header and header.group(1) in stages:
            current = header.group(1)
        module = MODULE_LINE.match(line)
        notebook = re.match(r"^(\s+)- notebooks/\S+\.ipynb\s*$", line)
        if module and current in written:
            continue
        if module or (
            notebook and current and not any(f"{PACKAGE_DIR}/" in dep for dep in stages[current].get("deps", []))
        ):
            indent = (module or notebook).group(1)
            if notebook:
                lines.append(line)
            lines += [f"{indent}- {path}\n" for path in stage_modules(root, stages[current])]
            written.add(current)
            continue
        lines.append(line)
    (root / "dvc.yaml").write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from akim_turnout.pipeline.paths import project_root

    parser = argparse.ArgumentParser(description="List and check the project modules each DVC stage imports.")
    parser.add_argument("--write", action="store_true", help="rewrite the module deps in dvc.yaml to match")
    args = parser.parse_args(argv)
    root = project_root()
    if args.write:
        write_deps(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name, stage in stages.items():
        print(f"{name}: {', '.join(str(Path(p).relative_to(PACKAGE_DIR)) for p in stage_modules(root, stage))}")
    try:
        check_pipeline(root)
    except DependencyMismatch as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
