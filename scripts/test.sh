#!/usr/bin/env bash
# Runs the checks and the test suite in ./.venv, setting it up first if needed. Extra arguments go
# to pytest. --fast: the unit tests only (not end to end, not slow; under 2 minutes).
# Tests on the real clips read ../shared/data (or $TALKFACE_SHARED_DATA) and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${TALKFACE_VENV:-.venv}"
marks=()
if [ "${1:-}" = "--fast" ]; then
  shift
  marks=(-m "not e2e and not slow")
fi
# Lint, format and the layer order (pyproject.toml: tool.ruff, tool.importlinter).
"$venv/bin/ruff" check --quiet .
"$venv/bin/ruff" format --check --quiet .
"$venv/bin/lint-imports" --no-cache >/dev/null || "$venv/bin/lint-imports" --no-cache
exec "$venv/bin/python" -m pytest "${marks[@]}" "$@"
