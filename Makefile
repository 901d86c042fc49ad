# The two front-door commands: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# A CPU build of torch is on disk on our machines; bring your own (CUDA) torch elsewhere: TORCH_PIN=
TORCH_PIN ?= torch==2.13.0

.PHONY: install install-dev demo test lint bench

install:
	$(PIP) install -q $(TORCH_PIN) -e .

install-dev:
	$(PIP) install -q $(TORCH_PIN) -e ".[dev]"

demo: install
	$(PYTHON) -m transformer demo

test: install-dev
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check src tests benchmarks

bench: install-dev
	$(PYTHON) benchmarks/bench.py
