# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Each one creates the virtual environment on first use: the pinned CPU torch wheel first (so pip does not
# pull a multi-GB CUDA build), then the project with its extras. GPU users: `make setup TORCH_SPEC=torch`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
export SDL_VIDEODRIVER ?= dummy

.PHONY: setup demo test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/train_dreamer.py --out outputs/demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) outputs *.egg-info
