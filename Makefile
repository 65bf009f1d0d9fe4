# Two commands: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv if missing and install torch 2.13.0 (CPU) FIRST, then digr with its dev extra;
# the install is redone only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.digr-installed
TORCH  := torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: setup test test-all demo bench clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]" $(TORCH)
	touch $(STAMP)

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/digr pipeline --task red-fetch-green --teacher results/red-fetch-green/teacher --out $(DEMO_OUT) --preset demo

bench: $(STAMP)
	$(BIN)/python benchmarks/saliency_speed.py --json

clean:
	rm -rf $(VENV) runs/demo
