#!/usr/bin/env bash
# Train the Rasa model unless models/ already holds one trained from the same inputs.
#
#   scripts/train.sh             # NLU + core: config.yml, domain.yml, data/  -> models/rasa-<hash>.tar.gz
#   scripts/train.sh --nlu-only  # NLU only:   config.yml, data/nlu/          -> models/nlu-only/nlu-<hash>.tar.gz
#   scripts/train.sh --force     # train even when the model for this hash exists
#   scripts/train.sh --check     # never trains: prints the model path for the current inputs,
#                                # exit 0 when that model exists, 1 when it does not (bot.stack.has_model)
#
# The hash covers the content and path of every input file, rasa_tools/phone.py and
# rasa_tools/faq_selector.py (pipeline components) and requirements/rasa.lock (a new Rasa version retrains).
# Progress goes to stderr; the model path is the only line on stdout, so callers can
# do MODEL=$(scripts/train.sh).
# NLU-only models live in models/nlu-only/ so `rasa run --model models` never picks one.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA=${RASA:-.venv-rasa/bin/rasa}
export RASA_TELEMETRY_ENABLED=false
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

nlu_only=0 force=0 check=0
for arg in "$@"; do
  case $arg in
    --nlu-only) nlu_only=1 ;;
    --force) force=1 ;;
    --check) check=1 ;;
    *) echo "usage: $0 [--nlu-only] [--force | --check]" >&2; exit 2 ;;
  esac
done

if ((nlu_only)); then
  inputs=(config.yml data/nlu)
  outdir=models/nlu-only prefix=nlu
else
  if [[ -f domain.yml ]]; then domain=domain.yml
  elif [[ -d domain ]]; then domain=domain
  else echo "train.sh: no domain.yml (or domain/) yet; use --nlu-only" >&2; exit 2
  fi
  inputs=(config.yml "$domain" data)
  outdir=models prefix=rasa
fi

# rasa_tools/phone.py and faq_selector.py are code inside the model (custom pipeline components).
fingerprint() {
  { find "${inputs[@]}" requirements/rasa.lock rasa_tools/phone.py rasa_tools/faq_selector.py -type f \
      \( -name '*.yml' -o -name '*.yaml' -o -name '*.lock' -o -name '*.py' \) -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16
}
if ((check)); then  # no lock: a training under way has not written its model yet
  model="$outdir/$prefix-$(fingerprint).tar.gz"
  echo "$model"
  if [[ -f $model ]]; then exit 0; else exit 1; fi
fi
mkdir -p "$outdir"

# One training at a time per checkout (tests and `make train` may race).
exec 9>"models/.train.lock"
flock 9

# Hashed only now that no other training runs: what rasa reads below is what is hashed.
hash=$(fingerprint)
name="$prefix-$hash"
model="$outdir/$name.tar.gz"

if [[ -f $model && $force == 0 ]]; then
  touch "$model"   # newest in its folder: `rasa run --model models` loads the latest file
  echo "train.sh: $model is up to date (inputs unchanged), skipping training" >&2
  echo "$model"
  exit 0
fi

start=$SECONDS
if ((nlu_only)); then
  "$RASA" train nlu --config config.yml --nlu data/nlu --out "$outdir" --fixed-model-name "$name" >&2
else
  "$RASA" train --config config.yml --domain "$domain" --data data --out "$outdir" \
    --fixed-model-name "$name" >&2
fi
[[ -f $model ]] || { echo "train.sh: rasa did not write $model" >&2; exit 1; }
if [[ $(fingerprint) != "$hash" ]]; then
  rm -f "$model"
  echo "train.sh: config, domain or data changed while training; run it again" >&2
  exit 1
fi
echo "train.sh: trained $model in $((SECONDS - start))s" >&2
echo "$model"
