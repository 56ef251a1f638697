#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export IDS_DATA_DIR=${IDS_DATA_DIR:-$(cd .. && pwd)/shared/data/ton_iot}
exec .venv/bin/python -m pytest "$@"
