# The course's two commands: `make lab` opens it, `make test` runs every test.
# Both create .venv with the newest Python >= 3.12 found (override: make test PYTHON=...).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=300 \
	--nbval-sanitize-with tests/nbval_sanitize.cfg
JOBS ?= auto
# Jupyter refuses to run as root (a container, CI) unless told; a learner's account is not root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# make lab opens the learner's working copy (ignored by git), kept up to date by
# course_lib.workspace: running and saving lessons there never blocks a git pull.
NOTEBOOK_DIR ?= my_notebooks
LESSONS := $(basename $(notdir $(wildcard notebooks/[0-9]*.ipynb)))

.PHONY: help setup lab present test test-lib test-notebooks test-browser screenshots bench lint \
	lint-imports execute-notebooks exercises check-exercises check-exercises-nbval clean

help:
	@echo "make lab    - set up .venv and open the course in JupyterLab (your copy: my_notebooks/)"
	@echo "make test   - set up .venv and run every test (import layers, library, slow learning tests,"
	@echo "              notebooks, and the browser tests when chromium is installed)"
	@echo "make present NB=07_ppo_clip - lecture mode: one lesson's widgets and figures in Voila, code hidden"
	@echo "make test-browser - only the browser tests (JupyterLab and Voila in chromium)"
	@echo "make screenshots  - rerun the browser tests and keep their screenshots in docs/screenshots"
	@echo "make lint-imports - check course_lib's layers (pyproject.toml [tool.importlinter]; run by make test)"
	@echo "make bench  - print speed figures (benchmarks/)"
	@echo "make execute-notebooks - re-execute and store every lesson (after changing one)"
	@echo "make exercises       - rebuild notebooks/exercises/ from the lessons (never overwrites your edits)"
	@echo "make check-exercises - your progress: one line per exercise, passed / failed / not started"
	@echo "                       (all lessons, or LESSON=03)"
	@echo "make check-exercises-nbval - the strict check: every output against the solution's (nbval)"

$(STAMP): pyproject.toml jupyter/overrides.json jupyter/jupyter_server_config.json \
		scripts/install_lab_settings.py
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  py=$$(scripts/find_python.sh); \
	  echo "Creating $(VENV) with $$py"; \
	  rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi
	set -o pipefail; $(PY) -m pip install --disable-pip-version-check -q -e '.[dev]' 2>&1 \
	  | { grep -v 'is ignored: it is neither' || true; }
	$(PY) scripts/install_lab_settings.py
	@touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(PY) -m course_lib.workspace $(NOTEBOOK_DIR)
	$(VENV)/bin/jupyter lab --notebook-dir=$(NOTEBOOK_DIR) --ServerApp.ip=127.0.0.1 $(ALLOW_ROOT) \
	  $(LAB_ARGS)

# Lecture mode: a kernel has executed the lesson before the page is asked for (preheat), so it
# opens at once; a closed page's kernel is shut down once idle VOILA_CULL_S (120) seconds.
present: $(STAMP)
	@if [ -z "$(filter $(NB),$(LESSONS))" ]; then \
	  echo "make present: NB must name a lesson, got NB='$(NB)'. Lessons: $(LESSONS)" >&2; exit 2; fi
	$(VENV)/bin/voila notebooks/$(NB).ipynb --Voila.ip=127.0.0.1 --strip_sources=True \
	  --preheat_kernel=True --pool_size=1 \
	  --MappingKernelManager.cull_idle_timeout=$(or $(VOILA_CULL_S),120) \
	  --MappingKernelManager.cull_interval=$(or $(VOILA_CULL_INTERVAL_S),30) $(VOILA_ARGS)

# make test checks the import layers first: a broken layer fails in seconds, before any test.
test: $(STAMP) lint-imports
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile tests notebooks/*.ipynb $(PYTEST_NBVAL)

test-lib: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile tests

test-notebooks: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile notebooks/*.ipynb $(PYTEST_NBVAL)

test-browser: $(STAMP)
	$(VENV)/bin/pytest tests/test_browser.py

screenshots: $(STAMP)
	SCREENSHOT_DIR=docs/screenshots $(VENV)/bin/pytest tests/test_browser.py

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check course_lib tests benchmarks scripts

# course_lib's layers and lesson modules (README: "How course_lib is built"): the contracts are
# pyproject.toml's [tool.importlinter]; the import graph is cached under .cache/.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports --no-logo --cache-dir .cache/import-linter

execute-notebooks: $(STAMP)
	$(PY) scripts/execute_notebooks.py notebooks/*.ipynb

exercises: $(STAMP)
	$(PY) -m course_lib.exercises build $(LESSON)

check-exercises: $(STAMP)
	$(PY) -m course_lib.exercises progress $(LESSON)

check-exercises-nbval: $(STAMP)
	$(PY) -m course_lib.exercises check $(LESSON)

clean:
	rm -rf $(VENV) .pytest_cache .cache build
