#!/usr/bin/env bash
# The main job on the built-in default, from a fresh clone: set up .venv, then `rsn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/rsn demo --out "${1:-runs/demo}"
