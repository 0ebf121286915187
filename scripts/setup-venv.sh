#!/usr/bin/env bash
# Creates ./.venv if missing and installs azfinetune (editable) with the given extras.
# PyTorch: when the venv has none, the CPU build torch==2.13.0 is installed first, so the `train` extra's
# range is already satisfied and pip never pulls a multi-GB CUDA build. Set AZFT_TORCH_SPEC to choose another.
set -euo pipefail
extras="${1:-train}"
venv="${VENV:-.venv}"
pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_install --upgrade pip
if [[ ",$extras," == *",train,"* ]] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  pip_install "${AZFT_TORCH_SPEC:-torch==2.13.0}"
fi
pip_install -e ".[$extras]"
"$venv/bin/python" -c "import azfinetune"
