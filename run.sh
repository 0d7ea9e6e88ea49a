#!/usr/bin/env bash
# The main job: set up, fine-tune the bundled model on NSMC if no checkpoint exists yet
# (a few minutes on CPU), then serve it at http://127.0.0.1:9001.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export KOGEN_NSMC_DIR="${KOGEN_NSMC_DIR:-$( [ -d ../shared/data/nsmc ] && echo ../shared/data/nsmc || true)}"
[ -n "$KOGEN_NSMC_DIR" ] || unset KOGEN_NSMC_DIR
if [ ! -d checkpoints/quick/hf_model ]; then
  .venv/bin/kogen train --quick --output-dir checkpoints/quick
fi
exec .venv/bin/kogen serve --checkpoint-dir checkpoints/quick --model bundled "$@"
