#!/usr/bin/env bash
# Install everything this project needs on a fresh machine, idempotently:
# Debian packages (Java for the Pub/Sub emulator, shellcheck, Chromium for the
# dashboard's browser test), the project's
# virtualenv (.venv) and the BigQuery emulator's own virtualenv (.venv-bq).
# Re-running is cheap: each venv is rebuilt only when its requirements change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
PUBSUB_JAR_GLOB="/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "Python >= 3.10 is required ($PYTHON is $("$PYTHON" --version 2>&1))"

# -- Debian packages ---------------------------------------------------------
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# Debian's Chromium and its driver: the dashboard's browser test (Selenium).
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "please install the Debian packages: ${missing[*]} (needs root and apt-get)"
  fi
fi
# shellcheck disable=SC2086
compgen -G "$PUBSUB_JAR_GLOB" >/dev/null \
  || die "Google's Pub/Sub emulator jar is missing ($PUBSUB_JAR_GLOB): install the Debian package google-cloud-cli-pubsub-emulator"

# -- virtualenvs ---------------------------------------------------------------
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

ensure_venv() {  # ensure_venv DIR STAMP PIP-ARGS...
  local dir=$1 stamp=$2; shift 2
  if [[ -f "$dir/.bootstrap-stamp" && "$(cat "$dir/.bootstrap-stamp")" == "$stamp" ]]; then
    return 0
  fi
  say "installing $dir (a few minutes the first time)"
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  echo "$stamp" > "$dir/.bootstrap-stamp"
}

ensure_venv .venv "$(stamp_of requirements.txt requirements-tools.txt requirements-dev.txt setup.py)" -r requirements-dev.txt -e .
ensure_venv .venv-bq "$(stamp_of localstack/requirements-bq.txt)" -r localstack/requirements-bq.txt
say "ready: .venv (project), .venv-bq (BigQuery emulator)"
