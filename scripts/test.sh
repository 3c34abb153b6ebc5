#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k files).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export NO_GCE_CHECK=True
# Two workers by default, each with its own emulator stack (tests/conftest.py says how the work is split);
# PYTEST_WORKERS=0 runs everything in this process.
WORKERS="${PYTEST_WORKERS:-2}"
if [[ "$WORKERS" == "0" ]]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
