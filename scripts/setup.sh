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

# Actors speak text with CMU Flite, a system package (not on PyPI): installed with apt-get where
# this runs as root or with passwordless sudo, otherwise say how.
if ! command -v flite >/dev/null; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    echo "installing CMU Flite (text to speech) with apt-get"
    "${sudo[@]}" apt-get install -y -qq flite >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq flite >/dev/null; } \
      || echo "could not install CMU Flite with apt-get: personalize and text input need it"
  else
    echo "CMU Flite is not installed: personalize and text input need it (sudo apt-get install flite, or brew install flite)"
  fi
fi

# The test that opens an evaluation report in a real browser drives Debian's Chromium (playwright's
# own browser download needs the internet): installed likewise where it can be, else that test skips.
if ! command -v chromium >/dev/null; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    echo "installing Chromium (for the report test) with apt-get"
    "${sudo[@]}" apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq chromium >/dev/null; } \
      || echo "could not install Chromium with apt-get: the report's browser test will be skipped"
  else
    echo "Chromium is not installed: the report's browser test will be skipped (sudo apt-get install chromium)"
  fi
fi

# One-shot (photo) actors need a general audio2pose model; trained weights are not shipped, so it
# is trained here once (about a minute) from a corpus of talking-head clips when there is one.
corpus="${TALKFACE_CORPUS:-${TALKFACE_SHARED_DATA:-../shared/data}/clips}"
general="$("$venv/bin/python" -c 'from audio2pose.general import general_model_path
from recon3d.facemodels import load_face_model
print(general_model_path(load_face_model("builtin").name))')"
if [ ! -f "$general" ]; then
  if [ -d "$corpus" ]; then
    echo "training the general audio2pose model for photo actors on $corpus (once)"
    "$venv/bin/python" scripts/train_general_audio2pose.py --face-model builtin --corpus "$corpus" 2>&1 | tail -3
  else
    echo "no talking-head corpus at $corpus (set TALKFACE_CORPUS): videos can be actors, photos cannot until" \
         "scripts/train_general_audio2pose.py has been run"
  fi
fi
