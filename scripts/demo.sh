#!/usr/bin/env bash
# README command 1: install what is missing, then run the whole job end to end
# on the local emulator stack and print the reconciliation.
# Options are passed to `python -m demo` (--duration, --rate, ...; see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export NO_GCE_CHECK=True
exec .venv/bin/python -m demo "$@"
