# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export PYTHONUNBUFFERED := 1

PYENV_VERSIONS := $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions
# Python 3.10 for .venv-rasa (the Rasa 3.6 server needs it): pyenv's, else one on PATH.
PY310 ?= $(shell ls -d $(PYENV_VERSIONS)/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -n1)
ifeq ($(PY310),)
PY310 := $(shell command -v python3.10)
endif
# Python 3.13 for .venv (the services, rasa-sdk 3.21, the tests): pyenv's, else one on PATH.
PY313 ?= $(shell ls -d $(PYENV_VERSIONS)/3.13.*/bin/python3.13 2>/dev/null | sort -V | tail -n1)
ifeq ($(PY313),)
PY313 := $(shell command -v python3.13)
endif
UV := $(shell command -v uv 2>/dev/null || echo .make/uv/bin/uv)
VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python

.PHONY: install install-bench run test lock clean-db train browser bench
## Both environments, .venv with what the tests need (requirements/test.lock) and the project itself.
install: $(VENV)/.synced $(RASA_VENV)/.synced

## .venv with the benchmark tools too (requirements/bench.lock: test.lock's pins and matplotlib, py-spy).
install-bench: $(VENV)/.bench $(RASA_VENV)/.synced

.make/uv/bin/uv:
	python3 -m pip install --quiet --target .make/uv-pkg uv==0.13.9
	mkdir -p .make/uv/bin && ln -sf $(CURDIR)/.make/uv-pkg/bin/uv .make/uv/bin/uv

# A .venv made by another Python (an older checkout's 3.10) is made again. bench.lock holds
# test.lock's pins and more, so a .venv synced to it counts as installed for the tests too.
define venv313
	@test -n "$(PY313)" || { echo "Python 3.13 is required for .venv (pyenv install 3.13, or PY313=/path/to/python3.13)"; exit 1; }
	$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || $(UV) venv -q --clear -p $(PY313) $(VENV)
	$(UV) pip sync -q --require-hashes -p $(PY) $(1)
	$(UV) pip install -q --no-deps --no-build-isolation -p $(PY) -e .
endef

$(VENV)/.synced: requirements/test.lock pyproject.toml | $(UV)
	$(call venv313,requirements/test.lock)
	rm -f $(VENV)/.bench
	touch $@

$(VENV)/.bench: requirements/bench.lock requirements/test.lock pyproject.toml | $(UV)
	$(call venv313,requirements/bench.lock)
	touch $(VENV)/.synced $@

$(RASA_VENV)/.synced: requirements/rasa.lock | $(UV)
	@test -n "$(PY310)" || { echo "Python 3.10 is required (pyenv install 3.10)"; exit 1; }
	test -x $(RASA_VENV)/bin/python || $(UV) venv -q -p $(PY310) $(RASA_VENV)
	$(UV) pip sync -q -p $(RASA_VENV)/bin/python requirements/rasa.lock
	touch $@

## Start everything (embedded PostgreSQL when DATABASE_URL is not set). Ctrl-C stops it all.
run: install
	$(PY) -m bot up

## Every test, against real PostgreSQL and real processes (trains the model first if its data changed).
test: install train browser
	$(PY) -m pytest $(PYTEST_ARGS)

## Train the Rasa model into models/ unless one from the same data is there.
train: install
	bash scripts/train.sh

## Every benchmark; figures into BENCHMARKS.md (run it on a quiet machine).
bench: install-bench train
	bash bench/run_all.sh
	$(PY) bench/cache_vs_sql.py
	$(PY) bench/chat_turns.py
	$(PY) bench/race.py
	$(PY) bench/flood.py
	$(PY) bench/simulate.py
	$(PY) bench/soak.py

## Debian's Chromium for the browser tests (needs root; skipped when it is installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser tests"; exit 1; fi; }

## Re-pin after editing requirements/*.in: runtime, then test on top of it, then bench on top of
## test (.venv, Python 3.13, with hashes); rasa.lock for .venv-rasa (Python 3.10).
LOCK := $(UV) pip compile -q --custom-compile-command "make lock"
lock: | $(UV)
	$(LOCK) --generate-hashes -p $(PY313) requirements/runtime.in -o requirements/runtime.lock
	$(LOCK) --generate-hashes -p $(PY313) requirements/test.in -o requirements/test.lock
	$(LOCK) --generate-hashes -p $(PY313) requirements/bench.in -o requirements/bench.lock
	$(UV) pip compile -q -p $(PY310) requirements/rasa.in -o requirements/rasa.lock

## Stop the embedded PostgreSQL (it keeps running between commands otherwise).
clean-db: install
	$(PY) -m bot db stop
