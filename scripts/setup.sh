#!/usr/bin/env bash
# Sets talkface up in ./.venv (or $TALKFACE_VENV): a virtual environment with the package and its
# pinned dependencies, installed from the package registries only. Safe to rerun (fast when done).
#
# torch: where the venv has none, installs $TORCH_SPEC (default torch==2.13.0, which this
# project's machines resolve to a local CPU wheel). On a CUDA machine, install your own torch
# build into the venv first, or set TORCH_SPEC, and it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TALKFACE_VENV:-.venv}"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --quiet)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
fi
"${pip[@]}" install -e ".[test]"
"$venv/bin/talkface" --version
