# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export PYTHONUNBUFFERED := 1

# Python 3.10 (Rasa 3.6 and rasa-sdk 3.6 need it): pyenv's, else one on PATH.
PY310 ?= $(shell ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.10.*/bin/python3.10 2>/dev/null | tail -n1)
ifeq ($(PY310),)
PY310 := $(shell command -v python3.10)
endif
UV := $(shell command -v uv 2>/dev/null || echo .make/uv/bin/uv)
VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python

.PHONY: install run test lock clean-db train browser bench
install: $(VENV)/.synced $(RASA_VENV)/.synced

.make/uv/bin/uv:
	python3 -m pip install --quiet --target .make/uv-pkg uv==0.13.9
	mkdir -p .make/uv/bin && ln -sf $(CURDIR)/.make/uv-pkg/bin/uv .make/uv/bin/uv

$(VENV)/.synced: requirements/app.lock | $(UV)
	@test -n "$(PY310)" || { echo "Python 3.10 is required (pyenv install 3.10)"; exit 1; }
	test -x $(PY) || $(UV) venv -q -p $(PY310) $(VENV)
	$(UV) pip sync -q -p $(PY) requirements/app.lock
	touch $@

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
bench: install train
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

## Re-pin both environments after editing requirements/*.in.
lock: | $(UV)
	$(UV) pip compile -q -p $(PY310) requirements/app.in -o requirements/app.lock
	$(UV) pip compile -q -p $(PY310) requirements/rasa.in -o requirements/rasa.lock

## Stop the embedded PostgreSQL (it keeps running between commands otherwise).
clean-db: install
	$(PY) -m bot db stop
