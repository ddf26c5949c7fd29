# Quick start: `make run` (the product on its embedded defaults) and `make test` (the test suite).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTEST_ARGS ?=
export DATA_DIR ?= $(CURDIR)/var
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: setup run test lint format migrate bench clean

setup: $(VENV)/.installed

# Re-runs only when a requirements file changes; a plain `make setup` afterwards does nothing.
$(VENV)/.installed: requirements/base.txt requirements/test.txt requirements/nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt
	$(PY) -m pip install --quiet --no-deps -r requirements/nodeps.txt
	@touch $@

migrate: setup
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py demo_setup
	$(PY) manage.py run_stack --port $(PORT)

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The routing benchmark (HTTP throughput and p99 against a constant-bytes view; the client's decide()) with wrk,
# installed from Debian's packages when missing and this runs as root. bench/ingest.py and
# bench/train_classification.py take longer and are run on their own (README, "Benchmarks").
bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || echo "wrk not installed: the Python load generator will be used"
	$(PY) bench/routing.py

clean:
	rm -rf $(VENV) var
