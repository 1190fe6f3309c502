# st87: make setup | demo | test | suites | bench | lint
#
# Every target sets itself up: `make setup` makes .venv with the host tools, the MicroPython
# unix port, mpy-cross and micropython-unittest. It is idempotent and quick once done (a stamp
# file records the inputs it was made from).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
MPYLIB := $(VENV)/mpylib

.PHONY: setup demo test test-host test-device suites bench lint clean

setup: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml tools/fetch_unittest.py
	@command -v openssl >/dev/null || { echo "openssl is needed (apt-get install openssl)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	$(PY) tools/fetch_unittest.py $(MPYLIB)
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) tools/run_tests.py

test-host: setup
	$(PY) -m pytest -q tests_host

test-device: setup
	$(PY) tests_device/run.py

# Every cipher suite of the application note's Table 6, end to end against a real peer.
suites: setup
	$(PY) tools/suites.py

# Benchmarks on the unix port (bench/results.md); not part of make test.
bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
