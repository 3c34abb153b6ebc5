#!/usr/bin/env bash
# README command 2: install what is missing, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k files).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export NO_GCE_CHECK=True
exec .venv/bin/python -m pytest "$@"
