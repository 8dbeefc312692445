# The README's two commands:  `make run`  (set up + all notebooks in the local profile + Analysis.ipynb)
#                             `make test` (set up + lint + unit tests + every notebook in the tiny profile + Analysis)
# Variables: PROFILE=tiny|local|gpu-small|full|auto (default local), NB=01 (one notebook), PY=python3.11 (base interpreter),
#            QUIET=1 (one line per notebook instead of streamed cell progress and outputs)
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
PROFILE ?= local
NB ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup venv assets run test lint unit bench gpu-check looped-regime surgery-regime pretrain-regime baselines-regime clean-runs

setup: $(STAMP) assets

# torch first, alone, pinned: with torch 2.13.0 already present pip keeps it, so requirements.txt never pulls a
# CUDA build onto a CPU machine. On a GPU box install the CUDA wheel of torch 2.13.0 before `make setup`.
# Bytecode: Python writes each module's .pyc the first time a process imports it, and every later process reuses it.
# Where PYTHONDONTWRITEBYTECODE is set (this machine and its CI) nothing is written, and every process compiles again
# what it imports (torch, transformers, ...): the test suite starts hundreds. So the variable is dropped here, for
# every recipe. pip's own compile step (--no-compile) is skipped: it compiles every installed file, one at a time
# (~100 s on 2 cores; `compileall -j 0` ~60 s), where the processes compile only what they import, once.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m pip install -q --no-compile -r requirements.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps -e .
	touch $(STAMP)

assets: $(STAMP)
	$(BIN)/python -m helpers assets

# GPU profiles load from the hub: `make run PROFILE=full|gpu-small` (and PROFILE=auto where torch sees a CUDA GPU, or,
# before the venv exists, nvidia-smi lists one) skips the offline assets (`helpers assets`, which runs apt-get download)
ifeq ($(PROFILE)$(filter run,$(MAKECMDGOALS)),autorun)
RUN_GPU := $(shell if test -x $(BIN)/python; then $(BIN)/python -c "import torch; print(torch.cuda.is_available())"; \
                   else nvidia-smi -L 2>/dev/null | grep -q GPU && echo True; fi 2>/dev/null)
endif
RUN_ASSETS := $(if $(filter full gpu-small,$(PROFILE))$(filter True,$(RUN_GPU)),,assets)

run: $(STAMP) $(RUN_ASSETS)
	$(BIN)/python -m helpers notebooks --profile $(PROFILE) --nb "$(NB)"

# one pytest worker per core, a test file per worker at a time (the tiny notebooks' session fixture stays whole)
test: setup lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

# pyflakes + pycodestyle at 120 columns (pyproject.toml [tool.ruff])
lint: $(STAMP)
	$(BIN)/ruff check helpers tests benchmarks

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not notebooks"

bench: setup
	$(BIN)/python benchmarks/bench_train_core.py
	$(BIN)/python benchmarks/bench_surgery.py
	$(BIN)/python benchmarks/bench_compression.py
	$(BIN)/python benchmarks/bench_looped.py

# one GPU in <= 10 min (H100; <= 20 on a T4): precision, each notebook's largest steps, levers, 05 packed -> one record
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

# seed 002's regime search (5 points x 3 tuning seeds x both arms, two side by side: ~36 min); not part of `make bench`
looped-regime: setup
	$(BIN)/python benchmarks/looped_regime.py

clean-runs:
	rm -rf runs

# seed 000's regime search (9 points, original vs no attention, two side by side); not part of `make bench`
surgery-regime: setup
	$(BIN)/python benchmarks/surgery_regime.py

# notebook 00's regime search (3 points of its from-scratch LM, two side by side: ~15 min); not part of `make bench`
baselines-regime: setup
	$(BIN)/python benchmarks/baselines_regime.py

# seed 003's regime search (23 points x the grid's two extreme cells, CPU-time budgets, two side by side: ~12 min)
pretrain-regime: setup
	$(BIN)/python benchmarks/pretrain_regime.py
