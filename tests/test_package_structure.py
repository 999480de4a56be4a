"""The package's modules use one another only through public names: no module of src/akim_turnout imports a name
starting with an underscore from another module, or reads one as an attribute of another module."""

from __future__ import annotations

import ast
from pathlib import Path

from akim_turnout.pipeline.paths import project_root

PACKAGE = "akim_turnout"


def _module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name of every module under ``package_dir`` (``__init__`` files named after their package)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of a (possibly relative) ``from ... import`` in ``module``."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts[: len(parts) - node.level + is_package]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(package_dir: Path) -> list[str]:
    """``importer: name`` for every private name a module of the package takes from another of its modules."""
    modules = _module_names(package_dir)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module_aliases = {}  # local name -> module of the package it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(module, path.name == "__init__.py", node)
                if source.split(".")[0] != package_dir.name or source == module:
                    continue
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{module}: {source}.{alias.name}")
                    if f"{source}.{alias.name}" in modules:
                        module_aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        module_aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            value = node.value
            dotted = []
            while isinstance(value, ast.Attribute):
                dotted.insert(0, value.attr)
                value = value.value
            if not isinstance(value, ast.Name):
                continue
            target = ".".join([module_aliases.get(value.id, value.id), *dotted])
            if target in modules and target != module:
                found.append(f"{module}: {target}.{node.attr}")
    return sorted(set(found))


def test_no_module_uses_a_private_name_of_another() -> None:
    found = private_imports(project_root() / "src" / PACKAGE)
    assert found == [], "private names used across modules (importer: name):\n" + "\n".join(found)


def test_the_scan_names_the_importer_and_the_name(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .a import _helper, public\n")
    (package / "sub" / "a.py").write_text("def _helper():\n    pass\n\n\ndef public():\n    return _helper()\n")
    (package / "b.py").write_text("from pkg.sub.a import _helper, public\n")
    (package / "c.py").write_text("from pkg.sub import a\n\nx = a._helper(), a.public(), a.__doc__\n")
    (package / "d.py").write_text("import pkg.sub.a as mod\n\nmod._helper()\n")
    (package / "e.py").write_text("import pkg.sub.a\n\npkg.sub.a._helper()\n")
    (package / "sub" / "f.py").write_text("from .a import _helper\nfrom . import a\n\na._helper()\n")
    (package / "g.py").write_text("from os import _exit\nfrom pkg.sub.a import public\n\npublic()\n")
    assert private_imports(package) == [
        "pkg.b: pkg.sub.a._helper",
        "pkg.c: pkg.sub.a._helper",
        "pkg.d: pkg.sub.a._helper",
        "pkg.e: pkg.sub.a._helper",
        "pkg.sub.f: pkg.sub.a._helper",
        "pkg.sub: pkg.sub.a._helper",
    ]
