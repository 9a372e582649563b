# The course's two commands: `make lab` opens it, `make test` runs every test.
# Both create .venv with the newest Python >= 3.12 found (override: make test PYTHON=...).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=300 \
	--nbval-sanitize-with tests/nbval_sanitize.cfg
JOBS ?= auto

.PHONY: help setup lab test test-lib test-notebooks bench lint execute-notebooks exercises \
	check-exercises clean

help:
	@echo "make lab    - set up .venv and open the course in JupyterLab"
	@echo "make test   - set up .venv and run every test (library, slow learning tests, notebooks)"
	@echo "make bench  - print speed figures (benchmarks/)"
	@echo "make execute-notebooks - re-execute and store every lesson (after changing one)"
	@echo "make exercises       - rebuild notebooks/exercises/ from the lessons (never overwrites your edits)"
	@echo "make check-exercises - check your exercise answers (all notebooks, or LESSON=03)"

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  py=$$(scripts/find_python.sh); \
	  echo "Creating $(VENV) with $$py"; \
	  rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi
	set -o pipefail; $(PY) -m pip install --disable-pip-version-check -q -e '.[dev]' 2>&1 \
	  | { grep -v 'is ignored: it is neither' || true; }
	@touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1

test: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile tests notebooks/*.ipynb $(PYTEST_NBVAL)

test-lib: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile tests

test-notebooks: $(STAMP)
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile notebooks/*.ipynb $(PYTEST_NBVAL)

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check course_lib tests benchmarks

execute-notebooks: $(STAMP)
	$(PY) scripts/execute_notebooks.py notebooks/*.ipynb

exercises: $(STAMP)
	$(PY) -m course_lib.exercises build $(LESSON)

check-exercises: $(STAMP)
	$(PY) -m course_lib.exercises check $(LESSON)

clean:
	rm -rf $(VENV) .pytest_cache .cache
