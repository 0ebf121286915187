#!/usr/bin/env bash
# Creates ./.venv if missing and installs azfinetune (editable) with the given extras.
# PyTorch: when the venv has none, the CPU build torch==2.13.0 is installed first, so the `train` extra's
# range is already satisfied and pip never pulls a multi-GB CUDA build. Set AZFT_TORCH_SPEC to choose another.
set -euo pipefail
extras="${1:-train}"
venv="${VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [[ ",$extras," == *",train,"* ]] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q "${AZFT_TORCH_SPEC:-torch==2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
fi
"$venv/bin/python" -m pip install -q -e ".[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -c "import azfinetune" # fail loudly if the install did not work
