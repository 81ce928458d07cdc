#!/usr/bin/env bash
# The test suite, from a fresh clone: set up .venv, then pytest (slow tests: add `-m slow` or `--runslow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as failure" >&2
  exit 1
fi
exit "$rc"
