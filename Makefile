# Set-up, tests, demo and benchmarks. Every target creates or reuses .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo

.PHONY: setup test demo bench clean

setup: $(STAMP)

# torch==2.13.0 first: a plain "torch" requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/leakhunter demo --out $(DEMO)

bench: setup
	$(BIN)/python benchmarks/faults.py
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/reading.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/evaluate.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python -m benchmarks.report
	$(BIN)/python benchmarks/tune.py
	$(BIN)/python benchmarks/resume.py

clean:
	rm -rf $(DEMO) bench-out .pytest_cache
