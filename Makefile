# One-command entry points. `make bench` and `make test` create the virtual environment when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, from whatever index pip is configured with; override for another build (e.g. a CPU-only wheel).
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
BASICSR_PKG ?= basicsr-fixed==1.4.2

# Data beside the checkout when present (CI lays ../shared there); override with ZSSR_BENCH_DATA=... or unset.
SHARED ?= $(abspath ../shared)
export ZSSR_BENCH_DATA ?= $(if $(wildcard $(SHARED)/datasets),$(SHARED)/datasets,)
export ZSSR_BENCH_REFERENCE ?= $(if $(wildcard $(SHARED)/reference),$(SHARED)/reference,)

# `make bench VAR=value`: each variable below is the `python -m bench run` option of the same name in lower case
# (--dataset, --time-budget, ...); one left empty is not passed, so the CLI's default applies (bench/options.py,
# `python -m bench run --help`). RESUME=0 is --no-resume. Adding an option: add its variable name here.
RUN_VARIABLES := DATASET IMAGES METHODS SCALES PROTOCOL PROFILE DEVICE PRECISION DEGRADATION EXECUTOR WORKERS BATCH \
	TIME_BUDGET OUT
run_flag = $(if $($(1)),--$(shell echo $(1) | tr 'A-Z_' 'a-z-') '$($(1))')
BENCH_ARGS = $(foreach v,$(RUN_VARIABLES),$(call run_flag,$(v))) $(if $(filter 0,$(RESUME)),--no-resume)

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: setup bench test weights list clean-venv lint device-kit device-rehearsal reproduce reproduce-fast reproduction-doc study

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'setuptools>=77' wheel cython numpy
	$(PIP) install -q $(TORCH_PKGS)
	$(PIP) install -q --no-build-isolation --no-deps $(BASICSR_PKG)
	$(PIP) install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

bench: $(STAMP)
	$(PY) -m bench run $(BENCH_ARGS)

# The ZSSR paper's table: zssr-original (one jump) and zssr-original-gradual (the paper's 6 increments), paper
# profile, PRECISION (auto: bf16 where native), Set5 and Set14 at x2/x3/x4; Set5 x2 again with seeds 1 and 2 (the
# spread); Set5 x2 of the gradual variant in fp32 (does bf16 move the mean?). One folder per dataset, method and
# seed under reports/reproduce/ (the README's table names them; their results.csv are kept in git), each
# resumable: the folders already measured are not computed again. Estimated: hours on one GPU; on 2 CPU cores
# about 2.5 min per one-jump cell and 10-12 min per gradual cell at x2.
REPRODUCE = $(PY) -m bench run --profile paper --protocol rgb --degradation bicubic $(call run_flag,DEVICE) \
	$(call run_flag,BATCH)
REPRODUCE_RUNS = original:zssr-original gradual-guard:zssr-original-gradual
reproduce: $(STAMP)
	set -e; for ds in set5 set14; do for run in $(REPRODUCE_RUNS); do \
		$(REPRODUCE) --precision $(or $(PRECISION),auto) --dataset $$ds --scales 2,3,4 --methods $${run#*:} \
			--out reports/reproduce/$$ds-$${run%%:*}-seed0; done; done
	set -e; for seed in 1 2; do for run in $(REPRODUCE_RUNS); do \
		$(REPRODUCE) --precision $(or $(PRECISION),auto) --dataset set5 --scales 2 --methods $${run#*:} --seed $$seed \
			--out reports/reproduce/set5-$${run%%:*}-seed$$seed; done; done
	$(REPRODUCE) --precision fp32 --dataset set5 --scales 2 --methods zssr-original-gradual \
		--out reports/reproduce/set5-gradual-guard-fp32-seed0

# zssr-fast's check against zssr-original at x2 (5x faster, <= 0.2 dB PSNR-Y and <= 0.005 LPIPS lost) on Set5,
# Set14 and the categories set, same folders as above (the one-jump x2 cells already measured are reused).
# Estimated on 2 CPU cores: about 1 h for Set5 and Set14, 2 h for the categories.
reproduce-fast: $(STAMP)
	set -e; for ds in set5 set14 categories; do \
		$(REPRODUCE) --precision $(or $(PRECISION),auto) --dataset $$ds --scales 2 --methods zssr-original \
			--out reports/reproduce/$$ds-original-seed0; \
		$(REPRODUCE) --precision $(or $(PRECISION),auto) --dataset $$ds --scales 2 --methods bicubic,zssr-fast \
			--out reports/reproduce/$$ds-fast-seed0; done

# docs/reproduction.md and the README's results block, from the committed reports/reproduce/*/results.csv; the
# README's study tables (set5-contenders, mzsr-nonideal) from reports/studies/.
reproduction-doc: $(STAMP)
	$(PY) tools/make_reproduction_doc.py
	$(PY) tools/make_study_tables.py

weights: $(STAMP)
	$(PY) -m bench weights $(if $(METHODS),--methods '$(METHODS)')

list: $(STAMP)
	$(PY) -m bench list

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# What a lent GPU machine needs and lacks (wheels, compact weights, Set5/Set14), into .device-kit/ (<= 60 MiB);
# then `device run` with command `bash tools/device_run.sh` and carry [".device-kit", ".device-results"].
# KIT_FOR=study: the categories set and the study stage's weights instead (command: STAGES=study bash tools/device_run.sh).
device-kit: $(STAMP)
	$(PY) tools/device_kit.py $(if $(KIT_FOR),--for $(KIT_FOR))

# The kit and tools/device_run.sh proven on this CPU in a fresh virtualenv (slow; not part of `make test`).
device-rehearsal: $(STAMP)
	PY=$(PY) bash tools/device_rehearsal.sh

clean-venv:
	rm -rf $(VENV)

# A declared study (studies/$(STUDY).toml): `make study STUDY=<name>` runs what is left of it (resumable) into
# reports/studies/<name>/ and renders docs/studies/<name>.md and .html; ESTIMATE=1 prints the cells to run, done and
# reused and the estimated CPU hours, and runs nothing; RENDER_ONLY=1 renders the document from the results alone.
# STUDY_ARGS: more options of `python -m bench.study`, e.g. --accept-reuse-mismatch.
STUDY ?=
STUDY_ARGS ?=
study: $(STAMP)
	@test -n '$(STUDY)' || { echo "give a study: make study STUDY=<name> (studies/<name>.toml)"; exit 2; }
	$(PY) -m bench.study $(if $(filter 1,$(RENDER_ONLY)),render,$(if $(filter 1,$(ESTIMATE)),estimate,run)) '$(STUDY)' \
		$(if $(filter 1,$(RENDER_ONLY)),,$(call run_flag,DEVICE) $(call run_flag,BATCH)) $(STUDY_ARGS)
