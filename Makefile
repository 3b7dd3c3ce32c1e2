# Set-up and checks. `make demo` and `make test` work on a fresh clone: they create .venv,
# install torch==2.13.0 first, then the project with its dev extras. On kosum's machines pip finds
# a CPU wheel of it on disk; elsewhere PyPI serves the CUDA build (multi-GB): for a CPU-only
# machine add TORCH_INDEX=https://download.pytorch.org/whl/cpu. Re-running is a no-op while
# pyproject.toml is unchanged.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kosum-installed
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# CI runs the slow tests too (they fit in its time budget); locally `make test` stays fast.
PYTEST_MARKERS ?= $(if $(CI),,not slow)
DEMO_OUT ?= outputs/demo

.PHONY: install demo test test-all lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py --out $(DEMO_OUT) $(DEMO_ARGS)

test: install
	$(PY) -m pytest -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

format: install
	$(PY) -m ruff format src tests scripts
	$(PY) -m ruff check --fix src tests scripts

clean:
	rm -rf $(VENV) outputs .pytest_cache
