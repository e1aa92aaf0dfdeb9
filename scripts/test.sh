#!/usr/bin/env bash
# Runs the test suite in ./.venv, setting it up first if needed. Extra arguments go to pytest.
# Tests on the real clips read ../shared/data (or $TALKFACE_SHARED_DATA) and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${TALKFACE_VENV:-.venv}/bin/python" -m pytest "$@"
