#!/usr/bin/env bash
# Set up and run the test suite (offline; about 5 minutes on 2 cores). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
