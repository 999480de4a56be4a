# Every target bootstraps its own environment (.venv) from requirements.lock, so a fresh clone needs only
# Python 3.11 and make. Run `make help` for the list.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
TEST_STAMP := $(VENV)/.installed-from-test-lock
UV_VERSION := 0.13.9
# Mutation testing only (`make mutation`): installed into .venv on demand, not part of requirements.lock.
MUTMUT_VERSION := 3.8.1
# DVC stage commands call `python -m akim_turnout...`: they must find this environment first.
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg
# Many small model fits: single-threaded BLAS is faster than threads fighting over two cores.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
# The test-only input perturbation (akim_turnout.pipeline.paths.PERTURB_ENV) never reaches a make run.
unexport AKIM_TEST_PERTURB_INPUTS

# DVC starts its queue workers as a bare `dvc` found on PATH: this file, copied into the environment's site-packages,
# makes every Python of .venv put .venv/bin first on PATH (as activation would), so `.venv/bin/dvc queue start`
# works from any shell.
VENV_PATH_HOOK := bin/venv-bin-on-path.pth
INSTALL_PATH_HOOK = cp $(VENV_PATH_HOOK) "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/akim_turnout_venv_bin_on_path.pth"

.DEFAULT_GOAL := help
.PHONY: help env env-test reproduce rebuild test test-fast mutation lab lock bench sweep reference archive clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on some machines) every stage would otherwise recompile
# pandas, statsmodels and matplotlib from source: 6 s instead of 2 s per import of the stack.
# An environment that already has the test tools keeps them (it is synced to their lock, the same pins plus them).
$(STAMP): requirements.lock pyproject.toml Makefile $(VENV_PATH_HOOK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python \
		$$(test -f $(TEST_STAMP) && echo requirements-test.lock || echo requirements.lock)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --editable .
	@$(INSTALL_PATH_HOOK)
	@touch $@

# The test tools (pyproject's `test` extra) on top of the same pins; it satisfies `env` too.
$(TEST_STAMP): requirements-test.lock pyproject.toml Makefile $(VENV_PATH_HOOK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements-test.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --editable .
	@$(INSTALL_PATH_HOOK)
	@touch $@ $(STAMP)

env: $(STAMP) ## Create or refresh .venv exactly from requirements.lock

env-test: $(TEST_STAMP) ## The same plus the test tools (requirements-test.lock)

reproduce: env ## Set up and rebuild the whole analysis from data/raw into reports/report.html
	$(BIN)/dvc repro
	@echo "Report: $(CURDIR)/reports/report.html"

# --force reruns every stage even when DVC finds it up to date; --no-run-cache stops DVC from restoring a stage's
# outputs from an earlier run with the same inputs: every number is computed again from data/raw.
rebuild: env ## Force a full recomputation: every stage reruns from data/raw, nothing restored from DVC's caches
	$(BIN)/dvc repro --force --no-run-cache
	@echo "Report: $(CURDIR)/reports/report.html"

# Test files run in parallel (pytest-xdist), each file whole on one worker, so a file's module fixtures (the
# pipeline copy) are built once, in collection order (the pipeline tests first, see conftest.py); TEST_WORKERS=0 runs
# everything in one process, one file after another.
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: env-test ## Set up, rebuild the pipeline, and run the whole test suite (unit, nbval, pipeline, browser)
	$(BIN)/dvc repro
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: env-test ## Unit tests only (no notebooks, no pipeline copies, no browser)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) tests -m "not pipeline and not browser"

# mutmut copies src/ and tests/ to mutants/ and runs the unit tests chosen in [tool.mutmut] of pyproject.toml against
# every mutant of the statistical core (hours on 2 cores), prints the score, then plants the bug kinds of issue 14 one
# at a time (4 minutes). MUTATION_RESUME=1 keeps the verdicts in mutants/ (an interrupted run goes on where it
# stopped) and retests the survivors against the current tests. Score and survivors: tests/mutation/SURVIVORS.md.
# `make env` (uv pip sync) removes mutmut again; this target puts it back.
MUTATION_RESUME ?= 0
mutation: env-test ## Mutation score of the statistical core under the unit tests (slow; not part of `make test`)
	@$(BIN)/python -c "import importlib.metadata as m, sys; sys.exit(m.version('mutmut') != '$(MUTMUT_VERSION)')" 2>/dev/null \
		|| $(BIN)/uv pip install --quiet --python $(BIN)/python mutmut==$(MUTMUT_VERSION)
	$(if $(filter 1,$(MUTATION_RESUME)),,rm -rf mutants)
	$(BIN)/mutmut run --max-children 2
	$(if $(filter 1,$(MUTATION_RESUME)),$(BIN)/python tests/mutation/rerun_survivors.py)
	$(BIN)/python tests/mutation/score.py
	$(BIN)/python tests/mutation/group_survivors.py > mutants/survivors.md
	$(BIN)/python tests/mutation/planted_bugs.py

# Notebooks run in JupyterLab write to scratch/, never to the pipeline's tracked outputs (see README).
LAB_ARGS ?=
lab: env ## Open JupyterLab on notebooks/ with the project's kernel (as root too; LAB_ARGS="--no-browser ..." adds options)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# rfc3987-syntax (and lark, needed only by it) stay out: optional for jsonschema, ~3 s on every `import nbformat`.
lock: ## Re-resolve requirements-test.lock and requirements.lock from pyproject.toml (needs the network)
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(BIN)/uv pip compile pyproject.toml --extra test --upgrade --python-version 3.11 --no-header --quiet \
		--no-emit-package rfc3987-syntax --no-emit-package lark -o requirements-test.lock
	cp requirements-test.lock requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header --quiet \
		--no-emit-package rfc3987-syntax --no-emit-package lark -o requirements.lock

bench: env ## Measure speed and memory as ratios to floors (see README); writes bench-results.json and the README table
	$(BIN)/python -m akim_turnout.pipeline.bench --all --json bench-results.json --readme README.md

sweep: env ## Sweep the simulator's true effect x headline model family as queued DVC experiments (2 jobs)
	$(BIN)/python -m akim_turnout.pipeline.sweep --effects 0.0 -0.15 -0.3 --families glm gee mixedlm --jobs 2

# The tests compare against the committed results and need no R; only regenerating them does. check_r.py stops
# before anything is written, naming the Debian packages to install (read from generate.R's library() calls);
# make_inputs.py only compares the frozen inputs with the pipeline's (see tests/reference/README.md); R then rewrites
# tests/reference/results/, identical bytes when the committed references are current.
reference: env ## Recompute tests/reference/results/ in R from the frozen inputs (needs R; says what to install)
	@$(BIN)/python tests/reference/check_r.py
	@$(BIN)/python tests/reference/make_inputs.py
	Rscript tests/reference/generate.R

# A deposit for Zenodo: every tracked file plus the executed report, byte-identical on every rebuild of the same
# tree, with MANIFEST.sha256 inside and the archive's SHA-256 beside it (see README, Instructions to Replicators).
archive: env ## Zenodo-ready dist/akim-turnout-<version>.tar.gz: code, raw data, locks, params, dvc.lock, executed report
	$(BIN)/python -m akim_turnout.pipeline.replication zenodo --check
	$(BIN)/python -m akim_turnout.pipeline.replication readme --check
	@test -f reports/report.html || $(BIN)/dvc repro
	$(BIN)/python -m akim_turnout.pipeline.replication archive --output dist

# Pipeline outputs are exactly the files git ignores under reports/ and data/processed/ (DVC lists each there);
# the tracked .gitignore files and data/raw stay. DVC's cache (.dvc/cache: stored outputs and the run cache) goes
# too, so the next `make reproduce` recomputes every stage instead of restoring it.
clean: ## Remove the environment, every pipeline output, DVC's cache and scratch/ (nothing tracked is touched)
	git clean -fdXq -- reports data/processed
	rm -rf $(VENV) .pytest_cache scratch dvc_plots dist .dvc/cache
