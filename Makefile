# The two front-door commands: `make demo` and `make test`. Every target works in the project's own virtualenv,
# .venv, made on first use with `$(PYTHON) -m venv`: pip refuses to install into a Python whose packages belong
# to the system (Debian's and Ubuntu's, PEP 668), never into a virtualenv. Afterwards `. .venv/bin/activate`
# puts `transformer` on the PATH. A second run reuses .venv; it reinstalls only when pyproject.toml changed
# (the stamp files .venv/.installed*), and makes .venv anew only when PYTHON names another Python.
PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
PIP := $(VENV_PYTHON) -m pip
TRANSFORMER := $(VENV_PYTHON) -m transformer
# A CPU build of torch is on disk on our machines; bring your own (CUDA) torch elsewhere: TORCH_PIN=
TORCH_PIN ?= torch==2.13.0

.PHONY: venv install install-dev demo test lint bench dist multi30k

venv: $(VENV)/.made-from
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(TRANSFORMER) demo

test: install-dev
	$(VENV_PYTHON) -m ruff check src tests benchmarks
	$(VENV_PYTHON) -m pytest -q

lint: install-dev
	$(VENV_PYTHON) -m ruff check src tests benchmarks

bench: install-dev
	$(VENV_PYTHON) benchmarks/bench.py

# The sdist and the wheel, in dist/ (tests/test_packaging.py builds them too, and installs the wheel).
dist: install-dev
	$(VENV_PYTHON) -m build --outdir dist .

# The interpreter behind PYTHON, resolved through pyenv's shims, symlinks and an active virtualenv (the
# .venv made from it, activated, is the same Python): .venv records it in .made-from. Empty where PYTHON
# does not run.
BASE_PYTHON := $(shell $(PYTHON) -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null)
ifneq ($(BASE_PYTHON),$(shell cat $(VENV)/.made-from 2>/dev/null))
.PHONY: $(VENV)/.made-from
endif

# Checks first, so that where Python cannot make a virtualenv (Debian's and Ubuntu's python3 without the
# python3-venv package: no ensurepip) the message names the package to install instead of leaving a .venv
# without pip behind.
$(VENV)/.made-from:
	@test -n "$(BASE_PYTHON)" || { \
		echo "make: PYTHON=$(PYTHON) does not run; name a Python 3.10 or newer: make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11" >&2; exit 1; }
	@$(BASE_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
		echo "make: $(PYTHON) is Python $$($(BASE_PYTHON) -c 'import platform; print(platform.python_version())'); the package needs 3.10 or newer: make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11" >&2; exit 1; }
	@$(BASE_PYTHON) -c 'import ensurepip, venv; ensurepip.version()' 2>/dev/null || { \
		v=$$($(BASE_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		echo "make: $(PYTHON) (Python $$v) cannot make a virtualenv: its venv module or ensurepip is missing." >&2; \
		echo "On Debian or Ubuntu, install it and run make again:  sudo apt install python$$v-venv  (python3-venv, for the default python3)" >&2; \
		exit 1; }
	@if [ -e $(VENV) ]; then \
		test -f $(VENV)/pyvenv.cfg || { echo "make: $(VENV) exists and is not a virtualenv; move it away or choose another: VENV=..." >&2; exit 1; }; \
		echo "make: $(VENV) was made from $$(cat $(VENV)/.made-from 2>/dev/null || echo 'an unknown Python'); PYTHON=$(PYTHON) is $(BASE_PYTHON): making it anew"; \
		rm -rf $(VENV); \
	fi
	$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: $(BASE_PYTHON) -m venv $(VENV) failed (above)" >&2; exit 1; }
	@echo '$(BASE_PYTHON)' > $@

# -q hides pip's hundreds of lines; the first install takes a minute or two (torch is large).
$(VENV)/.installed: pyproject.toml $(VENV)/.made-from
	@echo "Installing the package into $(VENV) ..."
	$(PIP) install -q $(TORCH_PIN) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.made-from
	@echo "Installing the package and its test tools into $(VENV) ..."
	$(PIP) install -q $(TORCH_PIN) -e ".[dev]"
	@touch $@ $(VENV)/.installed

# The Multi30k English->German recipe (README, "Real data"): download (skipped when MULTI30K already holds the
# files), prepare, train (11,400 updates, at most 120 minutes), average the last 5 checkpoints, score it on test2016 and test2017.
MULTI30K ?= data/multi30k-raw
M30K_RUN ?= runs/multi30k
# Training preloads tcmalloc where it is installed (Debian/Ubuntu: apt install libtcmalloc-minimal4): glibc
# hands the step's large freed blocks back to the OS and faults them in again, ~40,000 page faults a
# step on the Multi30k model; with tcmalloc ~1,200 and 1.25-1.32x the tokens/s
# (benchmarks/results/allocator_2026-11-27.txt). TCMALLOC= (empty) trains with glibc's malloc.
TCMALLOC ?= $(firstword $(wildcard /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4))

multi30k: install
	$(TRANSFORMER) download multi30k $(MULTI30K)
	$(TRANSFORMER) prepare --train-src $(MULTI30K)/train.en --train-tgt $(MULTI30K)/train.de \
		--valid-src $(MULTI30K)/val.en --valid-tgt $(MULTI30K)/val.de --out data/multi30k --vocab-size 8000
	$(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC)) $(TRANSFORMER) train --config configs/multi30k.toml --data data/multi30k --run-dir $(M30K_RUN)
	$(TRANSFORMER) average $(M30K_RUN) --last 5 -o $(M30K_RUN)/avg5.safetensors
	for test in test2016 test2017; do \
		$(TRANSFORMER) evaluate -c $(M30K_RUN)/avg5.safetensors \
			--src $(MULTI30K)/$$test.en --ref $(MULTI30K)/$$test.de -o $(M30K_RUN)/$$test.de --json \
			> $(M30K_RUN)/$$test.json || exit 1; \
	done
	$(VENV_PYTHON) -m json.tool $(M30K_RUN)/test2016.json
