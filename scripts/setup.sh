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
# Everything but the CUDA backends (extras: jobs = Ray, eval = the report's plots, test).
"${pip[@]}" install -e ".[jobs,eval,test]"
"$venv/bin/talkface" --version

# System packages (not on PyPI) are installed with apt-get where this runs as root or with
# passwordless sudo; otherwise it says what they are for and how to get them.
# system_package COMMAND PACKAGE WHAT-NEEDS-IT
system_package() {
  command -v "$1" >/dev/null && return
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    echo "installing $2 ($3) with apt-get"
    "${sudo[@]}" apt-get install -y -qq "$2" >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq "$2" >/dev/null; } \
      || echo "could not install $2 with apt-get: $3"
  else
    echo "$2 is not installed: $3 (sudo apt-get install $2)"
  fi
}
# Actors speak text with CMU Flite.
system_package flite flite "personalize and text input need it"
# The test that opens an evaluation report in a real browser drives Debian's Chromium (playwright's
# own browser download needs the internet); without it that test skips.
system_package chromium chromium "the report's browser test needs it"

# One-shot (photo) actors need a general audio2pose model; trained weights are not shipped, so it
# is trained here once (about a minute) from a corpus of talking-head clips when there is one.
corpus="${TALKFACE_CORPUS:-${TALKFACE_SHARED_DATA:-../shared/data}/clips}"
# Its mouth prior (the corpus' mouth shapes per viseme) is written beside it.
read -r general prior < <("$venv/bin/python" -c 'from audio2pose.general import general_model_path
from audio2pose.articulation import corpus_prior_path
from recon3d.facemodels import load_face_model
name = load_face_model("builtin").name
print(general_model_path(name), corpus_prior_path(name))')
if [ ! -f "$general" ] || [ ! -f "$prior" ]; then
  if [ -d "$corpus" ]; then
    echo "training the general audio2pose model for photo actors on $corpus (once)"
    "$venv/bin/python" scripts/train_general_audio2pose.py --face-model builtin --corpus "$corpus" 2>&1 | tail -3
  else
    echo "no talking-head corpus at $corpus (set TALKFACE_CORPUS): videos can be actors, photos cannot until" \
         "scripts/train_general_audio2pose.py has been run"
  fi
fi
