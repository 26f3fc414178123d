# Two commands do everything: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nc_keras-installed
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
TEST_JOBS ?= 2

.PHONY: setup demo test test-tensorflow test-jax test-torch clean

# Reinstalls only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[jax,torch,dev,text]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/nc-keras demo

# Runs the whole suite once per backend and fails if any backend fails;
# TEST_JOBS backends at a time (one pytest process keeps about one core
# busy), each one's output in .test-logs/<backend>.log, printed as it ends.
test: setup
	$(PY) scripts/test_backends.py --jobs $(TEST_JOBS) --backends "$(BACKENDS)" -- $(PYTEST_ARGS)

# One backend in the foreground. A static pattern rule: make never uses an
# implicit (pattern) rule for a .PHONY target, which then ran nothing.
test-tensorflow test-jax test-torch: test-%: setup
	KERAS_BACKEND=$* $(PY) -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .test-logs
