# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Each one creates the virtual environment on first use with the pinned torch wheel first (TORCH_SPEC, from
# TORCH_INDEX when set), then installs the project with the extras that command needs: `make demo` the core only,
# `make test` the dev extra. One stamp per set of extras (.venv/.installed-core, .venv/.installed-dev), so
# `make demo` then `make test` in one clone installs the difference. Other sets: `make setup EXTRAS=bench`.
# GPU users: `make setup TORCH_SPEC=torch` keeps pip's CUDA build. On Linux, PyPI's default torch wheel is the
# CUDA build (GBs of nvidia-* packages); to get the CPU one from PyTorch's index, add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= core
export SDL_VIDEODRIVER ?= dummy

.PHONY: setup demo test clean

# The virtual environment and torch, installed once: later installs keep it (so a GPU user's build stays).
$(VENV)/.torch:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	touch $@

# The project with one set of extras ("core": none).
$(VENV)/.installed-%: setup.cfg pyproject.toml $(VENV)/.torch
	$(PY) -m pip install -q -e ".$(if $(filter core,$*),,[$*])"
	touch $@

setup: $(VENV)/.installed-$(EXTRAS)

demo: $(VENV)/.installed-core
	$(PY) scripts/train_dreamer.py --out outputs/demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) outputs *.egg-info
