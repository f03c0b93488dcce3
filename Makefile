# Two entry points on a fresh machine: `make demo` (main job, embedded default) and `make test`.
# Each creates the virtual environment it needs (.venv) on first use, with the exact versions of
# constraints.txt; pyproject.toml holds the tested ranges (docs/install.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedpia-installed
# torch first and pinned: the CPU build on this machine (an unpinned torch pulls a multi-GB CUDA
# build). constraints.txt pins the same version (tests/docs/test_install_files.py checks it).
TORCH := torch==2.13.0
PIP_VERSION := pip==26.3
INSTALL := $(PY) -m pip install -q -c constraints.txt

.PHONY: demo test lint bench constraints ranges clean-venv

$(STAMP): pyproject.toml Makefile constraints.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_VERSION)
	$(INSTALL) $(TORCH)
	$(INSTALL) -e ".[flower,hf,dev,tensorboard]"
	# never a plain `pip install medmnist` (it replaces torch with a CUDA build): --no-deps,
	# exact versions, one package per line in requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedpia demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_align.py

# rewrite constraints.txt from .venv after a deliberate upgrade inside it (pip install -U ...)
constraints: $(STAMP)
	$(PY) scripts/freeze_constraints.py > constraints.txt.new
	mv constraints.txt.new constraints.txt

# both ends of the ranges in fresh environments (uv + PyPI: several GB each, CUDA torch builds)
RANGE_PY ?= $(PYTHON)
ranges: $(STAMP)
	UV=$(VENV)/bin/uv scripts/check_ranges.sh lowest $(RANGE_PY) .ranges/lowest
	UV=$(VENV)/bin/uv scripts/check_ranges.sh highest $(RANGE_PY) .ranges/highest

clean-venv:
	rm -rf $(VENV) .ranges
