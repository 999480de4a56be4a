"""The DVC pipeline in a temporary copy of the repository, set up and run by the README's own commands: runs, no-op
reruns, parameter handling, interrupts, experiments and sweeps, a remote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pipeline_copy import ROOT, copy_repository, lock_outputs, run, share_dvc_cache, shell_without_environment
from readme_commands import readme_blocks, run_blocks

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory) -> tuple[Path, list[str], bytes]:
    """A fresh copy of the project in which every runnable command block of README.md ran, as written, in order,
    from a shell with no environment activated. The first block, `make reproduce`, builds the copy's .venv and
    the pipeline; dvc.lock as it left it is returned too.

    The copy starts with this checkout's DVC cache (hard links, so nothing is written back): a stage that `make test`
    has just run here with the same code, data and parameters is restored from DVC's run cache instead of being run
    a second time. Where the cache has no such run, the stage runs. test_pipeline_last_bits.py reruns every stage
    regardless (`dvc repro -f`, in a copy of its own)."""
    copy = copy_repository(tmp_path_factory.mktemp("pipeline") / "repo")
    share_dvc_cache(ROOT, copy)
    blocks = [block for block in readme_blocks((copy / "README.md").read_text()) if not block.skipped]
    assert blocks[0].code.startswith("make reproduce"), "the README's first command block sets everything up"
    outputs = run_blocks(blocks[:1], copy, shell_without_environment())
    reproduced = (copy / "dvc.lock").read_bytes()
    outputs += run_blocks(blocks[1:], copy, shell_without_environment())
    return copy, outputs, reproduced


@pytest.fixture(scope="module")
def built(readme_run) -> Path:
    """The same copy back at the results of `make reproduce` (the README's experiments changed parameters)."""
    copy, _, reproduced = readme_run
    run(["git", "checkout", "--", "params.yaml"], copy)
    (copy / "dvc.lock").write_bytes(reproduced)
    run(["dvc", "checkout", "-q", "--force"], copy)
    return copy


def test_make_reproduce_in_a_fresh_copy_reproduces_the_committed_lock(readme_run) -> None:
    """The dvc.lock of this checkout's last commit, not the working tree's (which `make test` has just rebuilt)."""
    _, _, reproduced = readme_run
    committed_text = run(["git", "show", "HEAD:dvc.lock"], ROOT).stdout
    committed = lock_outputs(committed_text)
    differ = sorted(path for path, md5 in lock_outputs(reproduced.decode()).items() if committed.get(path) != md5)
    assert not differ, f"outputs that differ from the committed dvc.lock (rerun the pipeline and commit it): {differ}"
    assert reproduced == committed_text.encode(), "dvc.lock differs from the committed one: rerun and commit it"


def test_readme_commands_work_as_written(readme_run) -> None:
    copy, outputs, _ = readme_run
    assert (copy / ".venv/bin/python").is_file() and (copy / "reports/report.html").is_file()
    # each `dvc exp run -S` rewrote exactly the line it sets (two experiments: two lines)
    changed = run(["git", "diff", "--numstat", "params.yaml"], copy).stdout.split()
    assert changed[:2] == ["2", "2"], run(["git", "diff", "params.yaml"], copy).stdout
    params = yaml.safe_load((copy / "params.yaml").read_text())
    assert params["forensics"]["n_sim"] == 500 and params["race_models"]["headline_model"] == "gee"
    numbers = json.loads((copy / "reports/numbers/forensics.json").read_text())
    assert numbers["simulated_clean"]["integer_n_sim"] == 500
    # the hand-run notebook wrote to scratch/ only: what DVC tracks is as the experiments left it
    assert (copy / "scratch/reports/figures/forensics/integer_simulated_clean.png").is_file()
    assert "up to date" in run(["dvc", "status"], copy).stdout
    assert "no problems" in outputs[-1]
    # `dvc exp show --only-changed` after the one-value experiment: a table that fits in 120 columns
    shown = next(output for output in outputs if "fewer-draws" in output and "Experiment" in output)
    lines = shown.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("────")]
    table = lines[rules[0] : rules[-1] + 1]
    assert "forensics.n_sim" in table[1] and any("fewer-draws" in line for line in table), shown
    assert max(len(line) for line in table) <= 120, shown


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


def test_dvc_metrics_plots_and_experiments_are_readable(built: Path) -> None:
    shown = run(["dvc", "metrics", "show"], built).stdout
    assert max(len(line) for line in shown.splitlines()) <= 160, "dvc metrics show fits on a screen"
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], built).stdout)
    values = [value for data in next(iter(metrics.values()))["data"].values() for value in data["data"].values()]
    assert len(values) == 9 and all(isinstance(value, (int, float)) for value in values), "numbers only"
    run(["dvc", "plots", "show"], built)
    page = (built / "dvc_plots/index.html").read_text()
    assert run(["git", "status", "--porcelain"], built).stdout == "", "the drawn plots are git-ignored"
    for source in ("regional_2021", "specification_curve", "power_curves"):
        assert source in page, f"{source} is not plotted"


def _set_param(copy: Path, section: str, key: str, old: str, new: str) -> str:
    """Change one line of params.yaml (``key: old`` -> ``key: new`` inside ``section``); returns the original text."""
    original = (copy / "params.yaml").read_text()
    head, _, tail = original.partition(f"\n{section}:\n")
    assert f"  {key}: {old}" in tail, (section, key, old)
    (copy / "params.yaml").write_text(f"{head}\n{section}:\n" + tail.replace(f"  {key}: {old}", f"  {key}: {new}", 1))
    return original


def test_changing_one_parameter_invalidates_only_the_stages_using_it_and_the_report_follows(built: Path) -> None:
    original = _set_param(built, "report", "title", "Turnout in", "Edited turnout in")
    try:
        assert set(json.loads(run(["dvc", "status", "--json"], built).stdout)) == {"report"}
        (built / "params.yaml").write_text(original)
        _set_param(built, "forensics", "min_real_races", "30", "31")
        # the report shows every parameter, so it depends on (and reruns for) this one too
        assert set(json.loads(run(["dvc", "status", "--json"], built).stdout)) == {"forensics", "report"}
        run(["dvc", "repro"], built)
        assert "min_real_races: 31" in (built / "reports/report.html").read_text()
    finally:
        (built / "params.yaml").write_text(original)
        run(["git", "checkout", "--", "dvc.lock"], built)
        run(["dvc", "checkout", "-q", "--force"], built)
    assert run(["git", "status", "--porcelain"], built).stdout == ""


def _repro_with(copy: Path, section: str, key: str, old: str, new: str, stage: str) -> str:
    """`dvc repro -s stage` with one parameter changed; returns its output, with params.yaml restored afterwards."""
    original = _set_param(copy, section, key, old, new)
    try:
        result = run(["dvc", "repro", "-s", stage], copy, check=False)
        assert result.returncode != 0, f"{section}.{key} = {new} was accepted"
        return result.stderr + result.stdout
    finally:
        (copy / "params.yaml").write_text(original)


def test_misspelled_parameter_stops_its_stage_naming_it_and_keeps_its_outputs(built: Path) -> None:
    output = _repro_with(
        built, "regional_model", "n_permutations", "1999", "1999\n  n_permutation: 999", "regional_model"
    )
    assert "error: stage 'regional_model': unknown parameter 'n_permutation'" in output
    assert "the outputs of 'regional_model' are as before this run" in output
    assert "up to date" in run(["dvc", "status"], built).stdout, "outputs restored: nothing to rerun or check out"


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ("-5", "parameter 'n_sim' must be an integer from 100 to 1000000, got -5"),
        ("abc", "parameter 'n_sim' must be an integer from 100 to 1000000, got 'abc'"),
        ("5000000", "parameter 'n_sim' must be an integer from 100 to 1000000, got 5000000"),
    ],
)
def test_bad_value_stops_the_stage_at_once_in_one_line_and_keeps_its_outputs(
    built: Path, new: str, expected: str
) -> None:
    before = {p: p.read_bytes() for p in (built / "reports/figures/forensics").iterdir()}
    started = time.monotonic()
    output = _repro_with(built, "forensics", "n_sim", "2000", new, "forensics")
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: stage 'forensics': {expected}; the outputs of 'forensics' are as before this run"]
    assert time.monotonic() - started < 30, "refused before any work"
    assert {p: p.read_bytes() for p in (built / "reports/figures/forensics").iterdir()} == before
    assert "up to date" in run(["dvc", "status"], built).stdout


def test_interrupt_stops_the_stage_and_the_pipeline(built: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group: DVC, the stage's shell, the runner."""
    lock = (built / "dvc.lock").read_bytes()
    env = shell_without_environment()
    env["PATH"] = f"{built / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    process = subprocess.Popen(
        ["dvc", "repro", "-f", "-s", "simulation_study", "forensics"],
        cwd=built,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = ""
    while "Running stage 'simulation_study'" not in output:
        output += process.stdout.readline()
        assert process.poll() is None, output
    time.sleep(6)  # the kernel is fitting models by now
    os.killpg(process.pid, signal.SIGINT)
    sent = time.monotonic()
    rest, _ = process.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    output += rest
    assert process.returncode != 0, output
    assert stopped_after < 10, f"stopped {stopped_after:.1f} s after the interrupt"
    assert (
        "error: stage 'simulation_study' interrupted (SIGINT); the outputs of 'simulation_study' are as before"
        in output
    )
    assert "Running stage 'forensics'" not in output, "the pipeline must stop too"
    assert (built / "dvc.lock").read_bytes() == lock, "nothing recorded as done"
    assert "up to date" in run(["dvc", "status"], built).stdout
    # the copy's kernel and loky workers (both started by the copy's .venv/bin/python), not other runs' processes
    leftover = subprocess.run(["pgrep", "-f", f"{built}.*(ipykernel|loky)"], capture_output=True, text=True).stdout
    assert leftover == "", "the kernel and its workers are stopped"


def test_bad_raw_data_stops_the_ingest_stage_and_nothing_is_taken_for_good(built: Path) -> None:
    regional = built / "data/raw/regional.csv"
    original, lock = regional.read_bytes(), (built / "dvc.lock").read_bytes()
    try:
        regional.write_bytes(
            original.replace(
                b"2021-07-25_rural,Akmola,turnout_pct,75.5,", b"2021-07-25_rural,Akmola,turnout_pct,175.5,"
            )
        )
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


def test_model_numbers_within_tolerance(built: Path) -> None:
    numbers = lambda name: json.loads((built / f"reports/numbers/{name}.json").read_text())  # noqa: E731
    regional, simulated, races = numbers("regional_model"), numbers("simulate"), numbers("race_models")
    assert regional["main_unweighted"]["n_obs"] == 11 and regional["main_unweighted"]["estimable"] is True
    assert regional["mix_unweighted"]["self_share"]["estimable"] is False
    assert regional["mix_unweighted"]["self_share"]["ci_lower"] is None, "no interval from a fit without the df"
    assert regional["mix_unweighted"]["self_share"]["estimate"] is None, "nor an estimate"
    spec = regional["specification_curve"]
    assert spec["specifications"] == 18 and 0 < spec["estimable"] <= 18
    joint = regional["joint_test"]
    assert joint["n_specifications"] == spec["estimable"] and 0 < joint["p_median"] <= 1 and 0 < joint["p_share"] <= 1
    assert spec["ame_pp_min"] <= spec["ame_pp_median"] <= spec["ame_pp_max"]
    assert 0 < regional["permutation"]["p_value"] <= 1
    assert simulated["races"] == 730
    assert (
        simulated["candidates_total"],
        simulated["party_total"],
        simulated["self_total"],
        simulated["women_total"],
    ) == (2297, 878, 1419, 458)
    assert simulated["registered_total"] == 1209817 and simulated["max_abs_turnout_gap_pp"] < 0.01
    # 730 simulated races in 14 clusters: each estimate within 4 standard errors (from its t(13) interval) of the
    # true value; a 95 % interval misses by chance one term in twenty, 4 SE about one in a thousand
    t13 = 2.1603686565  # scipy.stats.t.ppf(0.975, 13)
    for term, fit in races["glm"].items():
        se = (fit["ci_upper"] - fit["ci_lower"]) / (2 * t13)
        assert abs(fit["estimate"] - fit["true"]) <= 4 * se, term
    assert races["glm_n_clusters"] == 14 and races["real_fitted"] is False
    assert races["cluster_small_sample_factor"] == pytest.approx(14 / 13 * 729 / 713, abs=1e-6)


def test_no_published_interval_from_a_fit_without_the_df_or_beyond_the_scale(built: Path) -> None:
    import pandas as pd

    tables = built / "reports/tables"
    read = lambda path: pd.read_csv(path, dtype=str, keep_default_na=False)  # noqa: E731  # as printed
    number = lambda column: pd.to_numeric(column.str.replace(",", "").replace("", None))  # noqa: E731
    printed = ["estimate (logit)", "SE (logit)", "95 % CI low", "95 % CI high", "p"]
    for path in [tables / "regional_model/coefficients.csv", tables / "regional_model/leave_one_out.csv"]:
        frame = read(path)
        assert (frame.loc[frame["status"] != "ok", printed] == "").all().all(), path
        assert (frame.loc[frame["status"] == "ok", printed] != "").all().all(), path
    for path in [
        tables / "regional_model/marginal_effects.csv",
        tables / "race_models/marginal_effects.csv",
        tables / "regional_model/specification_curve.csv",
    ]:
        frame = read(path)
        low, high = number(frame["95 % CI low (pp)"]).dropna(), number(frame["95 % CI high (pp)"]).dropna()
        assert len(low) and (low >= -100).all() and (high <= 100).all(), path
    coefficients = read(tables / "regional_model/coefficients.csv")
    assert set(coefficients.loc[coefficients["status"] != "ok", "model"]) == {"mix, unweighted"}


def test_validation_and_diagnostics_metrics(built: Path) -> None:
    import pandas as pd

    study = json.loads((built / "reports/numbers/simulation_study.json").read_text())
    methods = study["real_design"]["methods"]
    assert study["data_kind"] == "simulated" and study["real_design"]["n_regions"] == 14
    assert methods["naive_binomial"]["size_low"] > 0.3, "ignoring overdispersion must over-reject"
    assert methods["naive_binomial"]["size_ok"] is False and methods["naive_binomial"]["mde_pp"] is None
    rule = study["recommendation_rule"]
    assert rule["method"] == study["recommended_method"], "the recommendation comes from the rule"
    best = methods[study["recommended_method"]]
    # the rule compares whole counts; the stated (6-digit) interval ends may print a unit of the last digit away
    assert best["size_high"] <= rule["criteria"]["size_ceiling"] + 1e-6
    assert best["coverage_min_low"] >= rule["criteria"]["coverage_floor"] - 1e-6
    assert best["size_low"] <= 0.05 <= best["size_high"] and best["enough_replications"] is True
    summary = pd.read_parquet(built / "data/processed/simulation_study/summary.parquet")
    assert ((summary["rejection_high"] - summary["rejection_low"]) > 0).all(), "no Monte Carlo interval of zero width"
    assert ((summary["coverage_high"] - summary["coverage_low"]) > 0).all()
    forensics = json.loads((built / "reports/numbers/forensics.json").read_text())
    assert forensics["simulated_clean"]["integer_p_value"] > 0.01
    assert forensics["simulated_planted"]["integer_p_value"] < 0.01


def test_queued_sweep_reports_progress_and_can_be_run_again(built: Path) -> None:
    """The documented sweep (python -m pipeline.sweep) on a 1 x 1 grid, run by `dvc queue start`, twice: the
    second run replaces the first's experiment instead of failing on its name. The grid point keeps the simulator's
    true effect at its value in params.yaml and changes the headline model family, so the experiment reruns
    race_models and the report only (a new true effect would rerun the simulation study as well). The family is
    one the recommendation does not already give, so the experiment's headline differs from the workspace's."""
    effect = yaml.safe_load((built / "params.yaml").read_text())["simulate"]["settings"]["beta_self_share"]
    recommended = json.loads((built / "data/processed/simulation_study/recommendation.json").read_text())["method"]
    family = next(f for f in ("gee", "glm") if f != {"gee_bias_reduced": "gee", "cluster_t": "glm"}.get(recommended))
    name = f"effect{effect:+.2f}-{family}".replace(".", "p").replace("+", "")
    sweep = [
        str(built / ".venv/bin/python"),
        "-m",
        "akim_turnout.pipeline.sweep",
        "--effects",
        str(effect),
        "--families",
        family,
        "--jobs",
        "1",
        "--timeout",
        "900",
    ]
    first = run(sweep, built).stdout
    assert "queued 1 experiment(s)" in first and f"[1/1] {name}: success" in first, first
    second = run(sweep, built).stdout
    assert f"replacing 1 earlier experiment(s): {name}" in second, second
    row = second.splitlines()[-1].split()
    assert row[:3] == [name, f"{effect:.2f}", family]
    params = json.loads(run(["dvc", "params", "diff", "HEAD", name, "--json"], built).stdout)["params.yaml"]
    assert params == {"race_models.headline_model": {"old": "recommended", "new": family}}, params
    changed = json.loads(run(["dvc", "metrics", "diff", "HEAD", name, "--json"], built).stdout)
    headline = changed["reports/metrics/race_models.json"]
    assert headline["sim_headline"]["new"] == pytest.approx(float(row[3]), abs=5e-4), "table = metric"
    low, high = headline["sim_lo"]["new"], headline["sim_hi"]["new"]
    assert low < effect < high, "the family's interval covers the true effect (in this simulated data set)"
    assert run(["git", "status", "--porcelain"], built).stdout == "", "queued experiments leave the workspace alone"


def test_shared_remote_push_then_fresh_clone_pulls_and_reruns_nothing(built: Path, tmp_path: Path) -> None:
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], built)
    try:
        run(["dvc", "push", "-q"], built)
        clone = tmp_path / "collaborator"
        venv = built / ".venv"
        run(["git", "clone", "-q", str(built), str(clone)], tmp_path, venv=venv)
        run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], clone, venv=venv)
        run(["dvc", "pull", "-q"], clone, venv=venv)
        assert (clone / "reports/report.html").read_bytes() == (built / "reports/report.html").read_bytes()
        output = run(["dvc", "repro"], clone, venv=venv).stdout
        assert "Running stage" not in output and "up to date" in output
    finally:
        run(["dvc", "remote", "remove", "--local", "shared"], built, check=False)
