# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run season report test test-fast lint format proto bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m devstack run

# A season: `make season DATA=data/binance OUT=seasons/s1 RUNS=3 PARALLEL=2` (docs/seasons.md).
DATA ?= data/binance
OUT ?= seasons/latest
RUNS ?= 1
PARALLEL ?= 1
SEED ?= 42
season: install
	$(PY) -m devstack season --data $(DATA) --out $(OUT) --runs $(RUNS) --parallel $(PARALLEL) --seed $(SEED)

# A season's statistics: `make report OUT=seasons/s1` writes seasons/s1/report.json,
# report.html and charts/.
report: install
	$(PY) -m devstack report $(OUT)

test: install
	sh scripts/ensure-test-tools.sh
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services devstack deploy bench tests
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: install
	$(PY) -m services.common.proto

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
