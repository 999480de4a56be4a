"""environment.yml mirrors pyproject.toml and the lock (conda cannot be run here to solve it)."""

from __future__ import annotations

import re
import tomllib

import yaml

from akim_turnout.pipeline.paths import project_path

# A pip requirement that conda-forge splits into several packages.
CONDA_NAMES = {"dask[distributed]": {"dask", "distributed"}}


def _normalise(name: str) -> str:
    """One spelling for a distribution name (PEP 503): conda-forge's ruamel.yaml.clib is the lock's ruamel-yaml-clib."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _normalise(re.split(r"[<>=!~ ;]", requirement.strip(), maxsplit=1)[0])


def _pyproject_names() -> set[str]:
    with open(project_path("pyproject.toml"), "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    names: set[str] = set()
    for requirement in dependencies:
        name = _name(requirement)
        names |= CONDA_NAMES.get(name, {re.sub(r"\[.*\]", "", name)})
    return names


def _conda_pins() -> dict[str, str]:
    environment = yaml.safe_load(project_path("environment.yml").read_text())
    pins = {}
    for entry in environment["dependencies"]:
        if isinstance(entry, str) and entry not in ("pip",):
            name, _, version = entry.partition("=")
            pins[_normalise(name)] = version
    return pins


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in project_path("requirements.lock").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==")
            pins[_normalise(name.strip())] = version.split()[0]
    return pins


def test_environment_yml_lists_exactly_the_pyproject_packages() -> None:
    conda = set(_conda_pins()) - {"python"}
    expected = _pyproject_names()
    assert conda == expected, (
        f"only in environment.yml: {sorted(conda - expected)}; only in pyproject: {sorted(expected - conda)}"
    )


def test_environment_yml_pins_match_the_lock() -> None:
    lock = _lock_pins()
    mismatched = {
        name: (version, lock.get(name))
        for name, version in _conda_pins().items()
        if name != "python" and lock.get(name) != version
    }
    assert not mismatched, f"environment.yml vs requirements.lock: {mismatched}"


def test_environment_yml_targets_python_311_on_conda_forge() -> None:
    environment = yaml.safe_load(project_path("environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    assert _conda_pins()["python"] == "3.11"


def test_lock_leaves_out_the_slow_optional_grammar_package() -> None:
    # rfc3987-syntax adds ~3 s to every `import nbformat` (grammar built at import); jsonschema treats it as optional.
    assert "rfc3987-syntax" not in _lock_pins()


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in project_path(path).read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==")
            pins[_normalise(name.strip())] = version.split()[0]
    return pins


def test_test_tools_are_an_extra_pinned_like_everything_else() -> None:
    with open(project_path("pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    tools = {_name(r) for r in project["optional-dependencies"]["test"]}
    assert tools == {"frictionless", "nbval", "playwright", "pytest", "pytest-xdist", "ruff"}
    runtime, test = _pins("requirements.lock"), _pins("requirements-test.lock")
    assert not tools & set(runtime), "make reproduce installs no test tool"
    assert tools <= set(test)
    assert {name: version for name, version in test.items() if name in runtime} == runtime, "same pins in both locks"


def test_licence_and_citation() -> None:
    with open(project_path("pyproject.toml"), "rb") as handle:
        assert tomllib.load(handle)["project"]["license"] == {"text": "MIT"}
    assert project_path("LICENSE").read_text().startswith("MIT License")
    assert "CC BY 4.0" in project_path("data/raw/LICENSE.md").read_text()
    citation = yaml.safe_load(project_path("CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert {"message", "title", "authors", "version"} <= set(citation)
    assert citation["references"][0]["license"] == "CC-BY-4.0"
