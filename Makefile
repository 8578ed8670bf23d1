# `make demo` and `make test` set everything up on a fresh machine (a venv in .venv) and then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test corpus bench clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Exit status 1 means shapecheck found what it should: the demo model is buggy on purpose.
demo: $(STAMP)
	$(BIN)/shapecheck check fixtures/torch/resnet50_single_class.py:build_model \
		--input 16,3,224,224 --loss BCEWithLogitsLoss --labels 16 || [ $$? -eq 1 ]

# Every test, whatever its markers (slow, subprocess, network); the quick loop is `pytest -m "not slow"`.
test: $(STAMP)
	$(BIN)/python -m pytest

corpus: $(STAMP)
	$(BIN)/python tests/corpus.py pytorch
	$(BIN)/python tests/corpus.py keras
	$(BIN)/python tests/corpus.py onnx

# Whole-process time and peak memory against the baselines of benchmarks/model_sizes.py (about 15 minutes).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e .[bench]
	$(BIN)/python benchmarks/model_sizes.py --peers

clean:
	rm -rf $(VENV) build dist .pytest_cache
