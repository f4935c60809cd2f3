# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# An extra package index for the torch wheel, empty by default. On the public index a plain
# `torch==2.13.0` on Linux x86_64 is the CUDA build (it pulls about 17 nvidia-* packages, several
# GB); point this at a CPU-only wheel index to get the CPU build, e.g.
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIP := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: demo test setup bench clean

# Create the virtual environment. torch is pinned to 2.13.0 and installed *before* the
# package, so no dependency can pull another build in afterwards.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIP) torch==2.13.0
	$(PY) -m pip install --quiet -e '.[serve,dev,hf,viz,cluster]' 'torch==2.13.0'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/attnlab demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/attnlab bench attention

clean:
	rm -rf $(VENV) build *.egg-info
