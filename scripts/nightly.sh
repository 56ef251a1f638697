#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the nightly retraining flow on
# the real data with the embedded defaults (local Prefect, local model store,
# reports under ./home). Extra arguments go to `python -m flows nightly`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m flows nightly "$@"
