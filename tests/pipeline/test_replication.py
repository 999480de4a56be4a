"""The replication package: the README against the template and the report, .zenodo.json against CITATION.cff, the
archive (byte-identical rebuilds, a manifest that verifies), the full-recomputation target and offline DVC plots."""

from __future__ import annotations

import configparser
import gzip
import hashlib
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from akim_turnout.pipeline import replication
from akim_turnout.pipeline.paths import project_path
from akim_turnout.report import context

ROOT = project_path(".")
README = (ROOT / "README.md").read_text()


# --- README ------------------------------------------------------------------------------------------------------


def test_every_template_section_is_present_and_not_empty() -> None:
    sections = replication.template_sections(README)
    for heading in replication.TEMPLATE_SECTIONS:
        assert heading in sections, f"README.md lacks the template section '## {heading}'"
        words = re.sub(r"<!--.*?-->", "", sections[heading], flags=re.DOTALL).split()
        assert len(words) >= 20, f"README section '{heading}' is (nearly) empty"


def test_the_template_subsections_and_statements_are_present() -> None:
    sections = replication.template_sections(README)
    for section, subsections in replication.TEMPLATE_SUBSECTIONS.items():
        headings = re.findall(r"^### (.+)$", sections[section], flags=re.MULTILINE)
        assert list(subsections) == [h for h in headings if h in subsections], (section, headings)
    rights = sections["Data Availability and Provenance Statements"]
    assert "- [x] I certify that the author(s) of the manuscript have legitimate access" in rights
    assert "- [x] All data **are** publicly available." in rights and "CC BY 4.0" in rights
    assert "MIT license" in sections["Description of programs/code"]
    reproduces = sections["List of tables and programs"]
    assert "- [x] All numbers provided in text in the paper" in reproduces
    assert "- [x] All tables and figures in the paper" in reproduces


def test_controlled_randomness_names_every_seed_of_params_yaml_with_its_line() -> None:
    lines = (ROOT / "params.yaml").read_text().splitlines()
    params = yaml.safe_load("\n".join(lines))

    def seed_keys(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from seed_keys(value, f"{prefix}{key}.")
            elif "seed" in key:
                yield f"{prefix}{key}", value

    expected = list(seed_keys(params))
    assert len(expected) == 5
    found = replication.seeds(ROOT)
    assert [key for key, _ in found] == [key for key, _ in expected]
    for (key, line), (_, value) in zip(found, expected, strict=True):
        assert re.match(rf"^\s*{key.rsplit('.', 1)[1]}:\s*{value}\b", lines[line - 1])
    text = replication.requirements_text(ROOT, README)
    randomness = text.split("### Controlled Randomness")[1].split("###")[0]
    assert all(f"`{key}` (line {line})" in randomness for key, line in found)


def test_runtime_and_storage_classes_tick_exactly_one_box() -> None:
    assert replication.checkboxes(70.8, replication.RUNTIME_BOXES)[0] == "- [x] <10 minutes"
    assert replication.checkboxes(600, replication.RUNTIME_BOXES)[1] == "- [x] 10-60 minutes"  # bounds exclusive
    boxes = replication.checkboxes(1.01e9, replication.STORAGE_BOXES)
    assert [b for b in boxes if b.startswith("- [x]")] == ["- [x] 250 MB - 2 GB"]
    text = replication.requirements_text(ROOT, README)
    summary = text.split("#### Summary")[1].split("#### Details")[0]
    assert summary.count("- [x]") == 2 and summary.count("- [ ]") == 12


def test_the_readme_keeps_its_two_commands_and_reproducibility_sections() -> None:
    sections = replication.template_sections(README)
    for heading in ("Two commands", "Same numbers on every machine", "Performance", "Stages", "Data"):
        assert heading in sections
    assert "make reproduce" in sections["Two commands"] and "make test" in sections["Two commands"]


def test_the_generated_parts_are_current() -> None:
    assert replication.render_readme(README, ROOT) == README, (
        "README.md's generated parts are out of date: run `python -m akim_turnout.pipeline.replication readme`"
    )
    for name in replication.GENERATED:
        assert README.count(replication.FENCE_START.format(name=name)) == 1


def test_a_stale_generated_part_is_detected(tmp_path) -> None:
    stale = README.replace("| Figure 1 |", "| Figure 0 |", 1)
    assert stale != README and replication.render_readme(stale, ROOT) == README


def _readme_map() -> list[tuple[str, str, str, str]]:
    block = re.search(r"replication:outputs:start.*?\n(.*?)<!-- replication:outputs:end", README, re.DOTALL).group(1)
    rows = [line.strip("|").split("|") for line in block.splitlines() if line.startswith("| ") and "`" in line]
    return [tuple(cell.strip() for cell in row) for row in rows]


def test_the_table_and_figure_map_follows_the_reports_numbering() -> None:
    rows = _readme_map()
    expected = [(f"Figure {i}", f"`{key}`") for i, key in enumerate(context.FIGURES, 1)]
    expected += [(f"Table {i}", f"`{key}`") for i, key in enumerate(context.TABLES, 1)]
    assert [(label, key) for label, key, _, _ in rows] == expected
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for label, key, notebook, files in rows:
        key = key.strip("`")
        stage = next(name for name, s in stages.items() if notebook.strip("`") in s["cmd"])
        path = files.split("`")[1]
        if label.startswith("Figure"):
            assert path == f"reports/figures/{stage}/{context.FIGURE_FILES[key][1]}"
            assert f"reports/figures/{stage}" in stages[stage]["outs"]
        elif key in context.TABLE_FILES:
            assert path == f"reports/tables/{stage}/{context.TABLE_FILES[key][1]}.csv"
            assert f"reports/tables/{stage}" in stages[stage]["outs"]
        else:
            assert stage == "report" and path == "reports/report.html"


def test_the_map_matches_the_rendered_report() -> None:
    report = ROOT / "reports/report.html"
    if not report.exists():
        pytest.skip("reports/report.html not built (dvc repro)")
    html = report.read_text()
    shown = {
        (f"{kind.title()} {number}", f"`{key}`")
        for kind, key, number in re.findall(r'id="(fig|tab)-([a-z_]+)".*?<b>(?:Figure|Table) (\d+)\.', html, re.DOTALL)
    }
    shown = {(label.replace("Fig ", "Figure ").replace("Tab ", "Table "), key) for label, key in shown}
    assert {(label, key) for label, key, _, _ in _readme_map()} == shown


def test_requirements_come_from_the_bench_table_and_the_lock() -> None:
    text = replication.requirements_text(ROOT, README)
    bench = re.search(r"Measured on (\S+), (\d+) cores", README)
    assert f"on {bench.group(1)}, {bench.group(2)} cores" in text
    reproduce = re.search(r"\| fresh make reproduce \(environment included\) \| ([^|]+) \|", README).group(1).strip()
    assert f"took {reproduce}" in text
    lock = (ROOT / "requirements.lock").read_text()
    for name in ("statsmodels", "dvc", "pandas"):
        version = re.search(rf"^{name}==(\S+)", lock, re.MULTILINE).group(1)
        assert f"{name} {version}" in text
    with pytest.raises(replication.ReplicationError, match="make bench"):
        replication.requirements_text(ROOT, "no bench here")


def test_programs_are_the_stages_in_dvc_order() -> None:
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    rows = list(replication.programs_text(ROOT).splitlines()[2:])
    assert [row.split("|")[2].strip().strip("`") for row in rows] == stages
    assert rows[0].startswith("| 1 | `ingest` | `notebooks/01_ingest.ipynb`")


def test_data_citations_cover_every_source_that_backs_a_figure() -> None:
    import csv

    with open(ROOT / "data/raw/sources.csv", newline="", encoding="utf-8") as handle:
        sources = list(csv.DictReader(handle))
    cited = set(re.findall(r"^- \[([A-Z][A-Za-z0-9]*)\] ", README, re.MULTILINE))  # not the "- [x]" boxes
    backing = {s["source_id"] for s in sources if s["stored_copy"] != "not needed"}
    assert cited == backing
    n17 = next(s for s in sources if s["source_id"] == "N17")
    assert f"- [N17] {n17['publisher']} (2021-07-26). {n17['url']} (in English; stored copy: found)." in README


def test_nothing_refers_outside_the_repository() -> None:
    found = subprocess.run(
        ["grep", "-rl", "shared/", "data/", "src/", "README.md"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert found == ""


# --- Zenodo ------------------------------------------------------------------------------------------------------


def test_zenodo_json_is_generated_from_citation_cff() -> None:
    assert (ROOT / ".zenodo.json").read_text() == replication.zenodo_text(ROOT)
    zenodo = json.loads((ROOT / ".zenodo.json").read_text())
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert zenodo["title"] == cff["title"]
    assert zenodo["version"] == str(cff["version"]) and zenodo["license"] == cff["license"] == "MIT"
    assert [c["name"] for c in zenodo["creators"]] == [a["name"] for a in cff["authors"]]
    assert zenodo["description"].split() == cff["abstract"].split()
    assert zenodo["keywords"] == cff["keywords"] and zenodo["upload_type"] == "software"


def test_zenodo_creators_from_family_and_given_names() -> None:
    meta = replication.zenodo_metadata(
        {
            "title": "T",
            "abstract": "A  b\n c",
            "version": 1.0,
            "license": "MIT",
            "message": "m",
            "authors": [{"family-names": "Doe", "given-names": "Jane", "orcid": "https://orcid.org/0000-0001"}],
        }
    )
    assert meta["creators"] == [{"name": "Doe, Jane", "orcid": "0000-0001"}]
    assert meta["description"] == "A b c" and meta["version"] == "1.0"


# --- archive -----------------------------------------------------------------------------------------------------


def _tiny_project(path: Path) -> Path:
    for relative, text in {
        "src/a.py": "print(1)\n",
        "data/raw/x.csv": "a,b\n1,2\n",
        "bin/run": "#!/bin/sh\necho hi\n",
        "reports/report.html": "<html></html>\n",
        "reports/notebooks/01.ipynb": "{}\n",
        "ignored.tmp": "not tracked\n",
    }.items():
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        (path / relative).write_text(text)
    (path / "bin/run").chmod(0o755)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "add", "src", "data", "bin"], cwd=path, check=True)
    return path


def test_archive_is_byte_identical_and_its_manifest_verifies(tmp_path) -> None:
    root = _tiny_project(tmp_path / "p")
    first = replication.build_archive(root, tmp_path / "one/pkg.tar.gz", "pkg")
    os.utime(root / "src/a.py", (1_800_000_000, 1_800_000_000))  # a checkout time must not matter
    second = replication.build_archive(root, tmp_path / "two/pkg.tar.gz", "pkg")
    assert first.read_bytes() == second.read_bytes()
    raw = first.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0", "gzip header time must be 0"
    with tarfile.open(first, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "pkg/MANIFEST.sha256"
        assert names[1:] == sorted(names[1:])
        assert set(names) == {
            "pkg/MANIFEST.sha256",
            "pkg/src/a.py",
            "pkg/data/raw/x.csv",
            "pkg/bin/run",
            "pkg/reports/report.html",
            "pkg/reports/notebooks/01.ipynb",
        }
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (replication.ARCHIVE_MTIME, 0, 0, "", "")
        }
        assert {m.name: m.mode for m in members}["pkg/bin/run"] == 0o755
        assert {m.name: m.mode for m in members}["pkg/src/a.py"] == 0o644
        tar.extractall(tmp_path / "out", filter="data")
    # The manifest checked by another implementation: coreutils' sha256sum.
    check = subprocess.run(
        ["sha256sum", "-c", "MANIFEST.sha256"], cwd=tmp_path / "out/pkg", capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.count(": OK") == 5, check.stdout
    assert replication.verify_archive(first) == []
    expected = hashlib.sha256(raw).hexdigest()
    assert Path(f"{first}.sha256").read_text() == f"{expected}  pkg.tar.gz\n"


def test_a_tampered_archive_fails_verification(tmp_path) -> None:
    root = _tiny_project(tmp_path / "p")
    good = replication.build_archive(root, tmp_path / "pkg.tar.gz", "pkg")
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(good, "r:gz") as src, gzip.open(bad, "wb") as out, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith("x.csv"):
                data = b"a,b\n1,3\n"
                member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    assert replication.verify_archive(bad) == ["pkg/data/raw/x.csv: its SHA-256 differs from the manifest's"]


def test_archive_refuses_without_the_executed_report(tmp_path) -> None:
    root = _tiny_project(tmp_path / "p")
    (root / "reports/report.html").unlink()
    with pytest.raises(replication.ReplicationError, match="make reproduce"):
        replication.build_archive(root, tmp_path / "pkg.tar.gz", "pkg")


def test_the_project_archive_holds_code_data_locks_and_report(tmp_path) -> None:
    if not (ROOT / "reports/report.html").exists():
        pytest.skip("reports/report.html not built (dvc repro)")
    files = replication.archive_files(ROOT)
    for required in (
        "params.yaml",
        "dvc.yaml",
        "dvc.lock",
        "requirements.lock",
        "CITATION.cff",
        ".zenodo.json",
        "LICENSE",
        "data/raw/sources.csv",
        "src/akim_turnout/pipeline/replication.py",
        "reports/report.html",
        "reports/notebooks/01_ingest.ipynb",
        "vendor/vega/vega.min.js",
    ):
        assert required in files, required
    outputs = [f for f in files if f.startswith((".venv/", "data/processed/", "dist/", "reports/figures/"))]
    assert all(f.endswith(".gitignore") for f in outputs), outputs


# --- full recomputation and offline plots --------------------------------------------------------------------------


def _make_dry(target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_rebuild_forces_every_stage_and_bypasses_the_run_cache() -> None:
    assert re.search(r"dvc repro --force --no-run-cache\n", _make_dry("rebuild"))
    assert ".dvc/cache" in _make_dry("clean").split("rm -rf", 1)[1]
    assert (
        "make rebuild" in README
        and "make clean" in replication.template_sections(README)["Instructions to Replicators"]
    )
    # A real check that the flags mean what the recipe relies on: a dry forced run lists every stage to run.
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    dry = subprocess.run(
        [str(ROOT / ".venv/bin/dvc"), "repro", "--dry", "--force", "--no-run-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{ROOT}/.venv/bin:{os.environ['PATH']}"},
    )
    assert dry.returncode == 0, dry.stderr
    assert sorted(re.findall(r"Running stage '([a-z_]+)'", dry.stdout)) == sorted(stages)


def test_dvc_plots_use_the_vendored_vega_template() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc/config")
    template = (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()
    assert template == (ROOT / "vendor/vega/dvc-plots.html").resolve()
    html = template.read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html, "{scripts} would bring back DVC's CDN links"
    assert not re.search(r"https?://", html)
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert [Path(s).name for s in sources] == ["vega.min.js", "vega-lite.min.js", "vega-embed.min.js"]
    for source in sources:
        assert (ROOT / "dvc_plots" / source).resolve().is_file()
    notice = (ROOT / "vendor/vega/NOTICE.md").read_text()
    assert notice.count("BSD-3-Clause") >= 3 and "5.33.1" in notice and "6.29.0" in notice
