#!/usr/bin/env bash
# Creates ./.venv if missing and installs azfinetune (editable) with the given extras (default: train).
# PyTorch: when the venv has none, the CPU build torch==2.13.0 is installed first, so the `train` extra's
# range is already satisfied and pip never pulls a multi-GB CUDA build. Set AZFT_TORCH_SPEC to choose another.
#
# The `deepspeed` extra (DeepSpeed ZeRO + bitsandbytes for QLoRA; tests/jobs/test_cpu_tier.py runs them on CPU):
# deepspeed is a source package, and a plain `pip install` would build it in an isolated environment with a fresh
# (CUDA) torch. Here it is built once, against the venv's own torch, into a wheel cached outside the clone
#   $AZFT_WHEEL_CACHE (default ~/.cache/azfinetune/wheels)/deepspeed-<version>-torch<torch>-<python>/
# with DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 (the CPU shared-memory comm op is compiled at build time, not JIT in
# every run) and `--no-build-isolation`, then installed from it with torch pinned to the installed version.
# The same by hand:
#   echo "torch==$(python -c 'import torch; print(torch.__version__)')" > /tmp/torch.txt
#   DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 pip install deepspeed==0.19.8 --no-build-isolation -c /tmp/torch.txt
#   pip install -e '.[train,deepspeed]' -c /tmp/torch.txt
set -euo pipefail
extras="${1:-train}"
venv="${VENV:-.venv}"
deepspeed_version="0.19.8"  # keep equal to the pin of the `deepspeed` extra in pyproject.toml
pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
# step LABEL COMMAND...: one line when a phase starts and one with its seconds when it ends, so a slow install
# (minutes on a busy machine) is never silent. AZFT_SETUP_VERBOSE=1 shows pip's own output as well.
step() {
  local label="$1" started=$SECONDS
  shift
  echo "setup-venv: $label…"
  "$@"
  echo "setup-venv: $label: done in $((SECONDS - started)) s"
}
[ "${AZFT_SETUP_VERBOSE:-0}" = "1" ] && pip_install() { "$venv/bin/python" -m pip install --disable-pip-version-check "$@"; }
total_started=$SECONDS

[ -x "$venv/bin/python" ] || step "creating $venv" python3 -m venv "$venv"
step "upgrading pip" pip_install --upgrade pip
if [[ ",$extras," == *",train,"* || ",$extras," == *",deepspeed,"* ]] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  step "installing ${AZFT_TORCH_SPEC:-torch==2.13.0} (CPU build)" pip_install "${AZFT_TORCH_SPEC:-torch==2.13.0}"
fi

constraints=()
if [[ ",$extras," == *",deepspeed,"* ]]; then
  torch_version="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
  python_tag="$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  pins="$(mktemp -t azft-torch-pin-XXXXXX.txt)"
  building=""
  trap 'rm -rf "$pins" ${building:+"$building"}' EXIT
  echo "torch==$torch_version" >"$pins"  # nothing below may replace the venv's torch
  constraints=(-c "$pins")
  installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("deepspeed"))' 2>/dev/null || true)"
  if [ "$installed" != "$deepspeed_version" ]; then
    cache="${AZFT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azfinetune/wheels}"
    slot="$cache/deepspeed-$deepspeed_version-torch$torch_version-$python_tag"
    if ! compgen -G "$slot/deepspeed-$deepspeed_version-*.whl" >/dev/null; then
      echo "setup-venv: building deepspeed $deepspeed_version against torch $torch_version (once; cached in $slot)"
      started=$SECONDS
      mkdir -p "$cache"
      building="$(mktemp -d "$cache/.building-XXXXXX")"
      pip_install setuptools wheel "${constraints[@]}"
      # --no-cache-dir: pip's own wheel cache does not key on the torch a wheel was built against.
      DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 "$venv/bin/python" -m pip wheel -q --disable-pip-version-check \
        --no-cache-dir --no-deps --no-build-isolation -w "$building" "deepspeed==$deepspeed_version"
      chmod 755 "$building"
      rm -rf "$slot" && mv "$building" "$slot"  # whole or not at all: a failed build leaves no slot behind
      echo "setup-venv: deepspeed wheel built in $((SECONDS - started)) s"
    fi
    step "installing deepspeed $deepspeed_version from $slot" pip_install "${constraints[@]}" "$slot"/deepspeed-"$deepspeed_version"-*.whl
  fi
fi
step "installing azfinetune[$extras] (editable) and its dependencies" pip_install "${constraints[@]}" -e ".[$extras]"
step "checking that azfinetune imports" "$venv/bin/python" -c "import azfinetune"

# dev: tests/testing/test_rest_schema.py re-derives FakeWorkspace's preview REST schemas from azure-ai-ml
# 1.27.1's generated models (the last release that has them): its wheel is fetched once into the same cache,
# so the test itself never touches the network.
if [[ ",$extras," == *",dev,"* ]]; then
  wheels="${AZFT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azfinetune/wheels}"
  if ! compgen -G "$wheels/azure_ai_ml-1.27.1-*.whl" >/dev/null; then
    mkdir -p "$wheels"
    step "fetching the azure-ai-ml 1.27.1 wheel (tests/testing/test_rest_schema.py)" \
      "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps azure-ai-ml==1.27.1 -d "$wheels"
  fi
fi
echo "setup-venv: ready in $((SECONDS - total_started)) s ($venv, extras: $extras)"
