# Entry points for a local machine. `make demo` and `make test` set up .venv first
# (a no-op when it is up to date), so each is the one command a fresh clone needs.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint clean

setup:
	bash .ci/setup.sh

## Run the whole pipeline on the built-in sample with a short training (conf/demo.yaml).
demo: setup
	$(PYTHON) -m shl.cli run --config conf/demo.yaml

## Run the test suite.
test: setup
	$(PYTHON) -m pytest tests

clean:
	rm -rf .lakehouse spark-warehouse metastore_db derby.log .pytest_cache
