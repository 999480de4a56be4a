"""The DVC pipeline in a temporary copy of the repository: runs, no-op reruns, determinism, parameter handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from akim_turnout.paths import project_root

pytestmark = pytest.mark.pipeline
ROOT = project_root()


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AKIM_OUTPUT_ROOT", None)  # the copy's stages must write into the copy
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def copy_repository(destination: Path) -> Path:
    """Copy the files git tracks or would track (not venvs, caches or outputs) and commit them in a new repo."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], ROOT).stdout.split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "copy"]):
        run(command, destination)
    return destination


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A copy of the repository after one `dvc repro`."""
    copy = copy_repository(tmp_path_factory.mktemp("pipeline") / "repo")
    run(["dvc", "repro"], copy)
    return copy


def stages() -> list[str]:
    return list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def test_repro_builds_the_report_and_every_declared_output(built: Path) -> None:
    assert (built / "reports/report.html").stat().st_size > 10_000
    for stage in yaml.safe_load((built / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            path = built / (next(iter(entry)) if isinstance(entry, dict) else entry)
            assert path.exists() and (path.is_file() or any(path.iterdir())), f"{path} missing or empty"


def test_second_repro_runs_no_stage_and_git_stays_clean(built: Path) -> None:
    output = run(["dvc", "repro"], built).stdout
    assert "Running stage" not in output, output
    assert run(["git", "status", "--porcelain"], built).stdout == "", "a run must leave the committed tree unchanged"


def test_forced_runs_leave_dvc_lock_unchanged(built: Path) -> None:
    before = (built / "dvc.lock").read_bytes()
    run(["dvc", "repro", "-f"], built)
    assert (built / "dvc.lock").read_bytes() == before, "outputs are not byte-stable between runs"


def test_metrics_are_readable_by_dvc(built: Path) -> None:
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], built).stdout)
    metrics = next(iter(shown.values()))["data"]
    ingest = metrics["reports/metrics/ingest.json"]["data"]
    assert ingest["regions_2021"] == 14
    assert ingest["turnout_pct_min"] == pytest.approx(66.5, abs=0.05)
    assert ingest["turnout_pct_max"] == pytest.approx(90.9, abs=0.05)


def test_changing_one_parameter_invalidates_only_the_stages_using_it(built: Path, tmp_path: Path) -> None:
    params = yaml.safe_load((built / "params.yaml").read_text())
    original = (built / "params.yaml").read_text()
    params["report"]["title"] = params["report"]["title"] + " (edited)"
    try:
        (built / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        changed = json.loads(run(["dvc", "status", "--json"], built).stdout)
        assert set(changed) == {"report"}, changed
    finally:
        (built / "params.yaml").write_text(original)


def test_misspelled_parameter_stops_its_stage_naming_it(built: Path) -> None:
    original = (built / "params.yaml").read_text()
    try:
        (built / "params.yaml").write_text(original.replace("  raw_dir: data/raw", "  raw_dri: data/raw"))
        result = run(["dvc", "repro", "-s", "ingest"], built, check=False)
        assert result.returncode != 0
        assert "unknown parameter 'raw_dri'" in result.stderr + result.stdout
        assert "missing parameter 'raw_dir'" in result.stderr + result.stdout
    finally:
        (built / "params.yaml").write_text(original)
        run(["dvc", "checkout", "-q"], built, check=False)


def test_bad_raw_data_stops_the_ingest_stage_and_nothing_is_taken_for_good(built: Path) -> None:
    regional = built / "data/raw/regional.csv"
    original, lock = regional.read_bytes(), (built / "dvc.lock").read_bytes()
    try:
        regional.write_bytes(original.replace(b"2021-07-25_rural,Akmola,turnout_pct,75.5,", b"2021-07-25_rural,Akmola,turnout_pct,175.5,"))
        result = run(["dvc", "repro", "-s", "ingest"], built, check=False)
        output = result.stderr + result.stdout
        assert result.returncode != 0
        assert "data/raw/regional.csv:2: column 'value': turnout_pct = 175.5 is above the maximum 100" in output
        assert (built / "dvc.lock").read_bytes() == lock, "a failed run must not be recorded"
        assert "ingest" in json.loads(run(["dvc", "status", "--json"], built).stdout)
    finally:
        regional.write_bytes(original)
        run(["dvc", "checkout", "-q", "--force"], built, check=False)
    assert run(["git", "status", "--porcelain"], built).stdout == ""


def test_model_metrics_within_tolerance(built: Path) -> None:
    metrics = lambda name: json.loads((built / f"reports/metrics/{name}.json").read_text())
    regional, simulated, races = metrics("regional_model"), metrics("simulate"), metrics("race_models")
    assert regional["main_unweighted"]["n_obs"] == 11  # Aktobe entered with its published 35 posts and 105 candidates
    assert sorted(regional["main_unweighted"]["dropped"]) == ["Pavlodar", "West Kazakhstan", "Zhambyl"]
    assert 0 < regional["permutation"]["p_value"] <= 1
    assert simulated["data_kind"] == "simulated" and simulated["races"] == 730
    assert (simulated["candidates_total"], simulated["party_total"], simulated["self_total"], simulated["women_total"]) == (2297, 878, 1419, 458)
    assert simulated["registered_total"] == 1209817 and simulated["max_abs_turnout_gap_pp"] < 0.01
    for term, fit in races["glm"].items():  # 730 races in 14 clusters: each true value inside its 95 % CI here
        assert fit["ci_lower"] <= fit["true"] <= fit["ci_upper"], term
    assert races["glm_n_clusters"] == 14 and races["real_fitted"] is False


def test_validation_and_diagnostics_metrics(built: Path) -> None:
    study = json.loads((built / "reports/metrics/simulation_study.json").read_text())
    methods = study["real_design"]["methods"]
    assert study["data_kind"] == "simulated" and study["real_design"]["n_regions"] == 14
    assert methods["naive_binomial"]["size"] > 0.3, "ignoring overdispersion must over-reject"
    assert study["recommended_method"] in ("cluster_t", "wild_bootstrap", "gee_bias_reduced")
    best = methods[study["recommended_method"]]
    assert abs(best["size"] - 0.05) <= 3 * best["size_mcse"] + 0.01 and 0 < best["mde_pp"] < 20
    forensics = json.loads((built / "reports/metrics/forensics.json").read_text())
    assert forensics["simulated_clean"]["integer_p_value"] > 0.01
    assert forensics["simulated_planted"]["integer_p_value"] < 0.01


def test_queued_sweep_over_true_effect_and_model_family(built: Path) -> None:
    """The documented sweep (python -m akim_turnout.sweep) on a 2 x 1 grid, run by `dvc queue start -j 2`."""
    env_run = lambda args, check=True: run(args, built, check=check)
    result = env_run([sys.executable, "-m", "akim_turnout.sweep", "--effects", "-0.3", "0.0", "--families", "gee", "--jobs", "2", "--timeout", "900"])
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {"effect-0p30-gee", "effect0p00-gee"}
    assert float(lines["effect0p00-gee"][1]) == 0.0 and lines["effect0p00-gee"][2] == "gee"
    diff = env_run(["dvc", "metrics", "diff", "HEAD", "effect0p00-gee", "--json"]).stdout
    changed = json.loads(diff)["reports/metrics/race_models.json"]
    assert "headline.model" not in changed or changed["headline.model"]["new"] == "gee"
    assert changed["headline.true"]["new"] == 0.0
    assert run(["git", "status", "--porcelain"], built).stdout == "", "queued experiments leave the workspace alone"


def test_shared_remote_push_then_fresh_clone_pulls_and_reruns_nothing(built: Path, tmp_path: Path) -> None:
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], built)
    try:
        run(["dvc", "push", "-q"], built)
        clone = tmp_path / "collaborator"
        run(["git", "clone", "-q", str(built), str(clone)], tmp_path)
        run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], clone)
        run(["dvc", "pull", "-q"], clone)
        assert (clone / "reports/report.html").read_bytes() == (built / "reports/report.html").read_bytes()
        output = run(["dvc", "repro"], clone).stdout
        assert "Running stage" not in output and "up to date" in output
    finally:
        run(["dvc", "remote", "remove", "--local", "shared"], built, check=False)
