# clb-direct: one-command setup. `make test` and `make demo` create .venv from the lock file first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed

.PHONY: test lint fmt demo bench chaos lock clean venv package k8s test-controlplane

$(STAMP): pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	@UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --inexact --all-extras --group dev
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	@bash scripts/ensure-redis.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# The pinned upstream control plane binaries for tests/integration/controlplane (cached outside the repo).
k8s:
	@bash scripts/build-k8s.sh

test-controlplane: $(STAMP)
	$(PY) -m pytest tests/integration/controlplane $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(STAMP)
	$(VENV)/bin/clb-direct demo $(DEMO_ARGS)

# Seeded chaos scenarios, checked after every operation (a 20-seed slice runs in `make test` too).
# `make chaos SEED=17` replays one seed; CHAOS_ARGS="--scenarios 500" runs more.
chaos: $(STAMP)
	$(PY) -m tests.chaos $(if $(SEED),--seed $(SEED),) $(CHAOS_ARGS)

bench: $(STAMP)
	@bash scripts/ensure-redis.sh
	$(PY) -m tests.bench $(BENCH_ARGS)

lock:
	@test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet "uv>=0.4")
	$(UV) lock

clean:
	rm -rf $(VENV) .clb-direct demo-report build

# The artifacts serverless.yml uploads (build/package/{layer,code}.zip), sizes checked against SCF's limits.
package: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) scripts/package.py
