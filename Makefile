# The README's two commands: `make demo` (install + run the demo) and `make test` (install + tests +
# `grokscope reproduce --quick`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test install dev lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first: the CPU build on this machine; the project's range admits it.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

# the test suite also exercises the optional sinks (TensorBoard, W&B offline), sweep engines (Ray, submitit) and the digits task (scikit-learn)
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev,tb,wandb,ray,slurm,yaml,images]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/grokscope train --preset demo

# the suite, then the presets that train in seconds must still do what they claim (one seed each)
test: dev
	$(PY) -m pytest -q -n auto
	$(VENV)/bin/grokscope reproduce --quick --quiet --out "$$(mktemp -d)/reproduce"

lint: dev
	$(VENV)/bin/ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) build src/*.egg-info
