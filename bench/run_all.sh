#!/usr/bin/env bash
# `make bench`: every benchmark, figures into BENCHMARKS.md, plots into bench/plots/.
#
#   bench/run_all.sh                      # the full realtime scenarios (~10 minutes)
#   bench/run_all.sh --scale 0.1 --duration 10   # a quick check of the harness
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; a fresh database is created
# and dropped) and uv (it installs requirements/bench.lock into .venv when the tools are missing).
# Extra arguments go to `python -m bench.realtime` (see --help). Results: bench/out/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# `make install` syncs .venv to test.lock exactly, which removes the bench tools (`make bench`
# installs them first, `make install-bench`): put them back when missing (bench.lock keeps
# test.lock's pins, so nothing of test.lock moves).
if ! "$PY" -c "import matplotlib, numpy" 2>/dev/null || [ ! -x "$(dirname "$PY")/py-spy" ]; then
    echo "bench: installing requirements/bench.lock into $(dirname "$(dirname "$PY")")"
    UV=${UV:-$(command -v uv || echo .make/uv/bin/uv)}
    "$UV" pip install -q -p "$PY" -r requirements/bench.lock
fi
# Up to 5,000 sockets on each side: the generator and the servers it starts raise their own
# RLIMIT_NOFILE (65536, within the hard limit); this shell's limit only has to allow it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

# Each run stops by itself; this bounds the whole (a stuck server or client cannot hang it).
exec timeout --signal=INT --kill-after=30 2400 "$PY" -m bench.realtime "$@"
