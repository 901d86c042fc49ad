# The two front-door commands: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# A CPU build of torch is on disk on our machines; bring your own (CUDA) torch elsewhere: TORCH_PIN=
TORCH_PIN ?= torch==2.13.0

.PHONY: install install-dev demo test lint bench multi30k

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
	$(PYTHON) -m transformer download multi30k $(MULTI30K)
	$(PYTHON) -m transformer prepare --train-src $(MULTI30K)/train.en --train-tgt $(MULTI30K)/train.de \
		--valid-src $(MULTI30K)/val.en --valid-tgt $(MULTI30K)/val.de --out data/multi30k --vocab-size 8000
	$(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC)) $(PYTHON) -m transformer train --config configs/multi30k.toml --data data/multi30k --run-dir $(M30K_RUN)
	$(PYTHON) -m transformer average $(M30K_RUN) --last 5 -o $(M30K_RUN)/avg5.safetensors
	for test in test2016 test2017; do \
		$(PYTHON) -m transformer evaluate -c $(M30K_RUN)/avg5.safetensors \
			--src $(MULTI30K)/$$test.en --ref $(MULTI30K)/$$test.de -o $(M30K_RUN)/$$test.de --json \
			> $(M30K_RUN)/$$test.json || exit 1; \
	done
	$(PYTHON) -m json.tool $(M30K_RUN)/test2016.json
