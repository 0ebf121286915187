#!/usr/bin/env bash
# GPU check of the training entry point (jobs/src/finetune) on CUDA GPUs: the configurations of
# tests/jobs/cpu_tier_configs.py (the same list the CPU tier trains in CI: LoRA baseline, LoRA + ZeRO-2/3, the
# ZeRO-3 config WITHOUT stage3_gather_16bit_weights_on_model_save, DoRA/full + ZeRO-3, QLoRA, QLoRA + ZeRO-3),
# each on its number of processes (torchrun; a configuration that needs more GPUs than the machine has is
# reported as skipped). The CPU tier proves correctness; this script measures what only a GPU can: peak GPU
# memory (torch.cuda.max_memory_allocated) against the planner's predicted_peak_memory() for the same setup,
# and tokens/s. Every configuration prints one JSON line (prefix GPU_CHECK); a saved adapter must be
# non-empty and load with PeftModel.
#
# Usage: scripts/gpu_check.sh [WORK_DIR]   (from a checkout: it imports tests.jobs.cpu_tier_configs)
#   PYTHON=python3  interpreter with CUDA torch, transformers, peft, trl, accelerate, bitsandbytes, deepspeed
#   GPU_CHECK_HIDDEN=1024 GPU_CHECK_LAYERS=4 GPU_CHECK_STEPS=10   size of the tiny Phi-3 and of the runs
#   GPU_CHECK_ONLY=qlora,lora_zero3   run only these configurations (names as in tests/jobs/cpu_tier_configs.py)
#   GPU_CHECK_ALLOW_CPU=1   dry-run the script on a machine without CUDA (every configuration runs; the memory
#                           figures are then the process's RSS and mean nothing against the planner)
# Exit code: 0 when every configuration that ran passed, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
# The runs cd into jobs/src: make a relative interpreter path absolute (keeping a venv's symlink as is).
if [[ "$PY" == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"; fi
WORK="${1:-$(mktemp -d -t azft-gpu-check-XXXXXX)}"
HIDDEN="${GPU_CHECK_HIDDEN:-1024}"
LAYERS="${GPU_CHECK_LAYERS:-4}"
STEPS="${GPU_CHECK_STEPS:-10}"
BATCH=4
SEQ=256
mkdir -p "$WORK"
export PYTHONPATH="$ROOT/jobs/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1
unset MLFLOW_TRACKING_URI MLFLOW_RUN_ID

"$PY" - "$WORK" "$HIDDEN" "$LAYERS" <<'EOF' || exit 1
import os, sys
from pathlib import Path

import torch

from azfinetune.tiny_model import make_chat_dataset, make_tiny_phi3

work, hidden, layers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}", flush=True)
elif os.environ.get("GPU_CHECK_ALLOW_CPU") != "1":  # a dry run of the script itself on a CPU machine
    sys.exit("gpu_check: no CUDA device")
make_tiny_phi3(work / "model", hidden_size=hidden, num_layers=layers)
make_chat_dataset(work / "chat.jsonl", n=200, seed=0)
# A file, not stdout: libraries print to stdout on import. A CPU dry run trains 2 processes (gloo).
(work / "gpus").write_text(str(torch.cuda.device_count() if torch.cuda.is_available() else 2))
EOF
GPUS="$(cat "$WORK/gpus")"
CONFIGS="$(cd "$ROOT" && "$PY" -m tests.jobs.cpu_tier_configs "$WORK/deepspeed")" || exit 1

FAILED=0

run_config() {
  local name="$1" processes="$2" technique="$3" deepspeed="$4" stage="$5"
  local out="$WORK/$name"
  if [ "$processes" -gt "$GPUS" ]; then
    echo "GPU_CHECK {\"config\": \"$name\", \"skipped\": \"needs $processes GPUs, this machine has $GPUS\"}"
    return
  fi
  local launcher=("$PY")
  if [ "$processes" -gt 1 ]; then
    launcher=("$PY" -m torch.distributed.run --standalone "--nproc_per_node=$processes")
  fi
  local ds_flags=()
  if [ "$deepspeed" != "-" ]; then ds_flags=(--deepspeed "$deepspeed"); fi
  local start=$SECONDS
  (cd "$ROOT/jobs/src" && "${launcher[@]}" -m finetune \
      --task chat-completion --model "$WORK/model" --train-file "$WORK/chat.jsonl" --technique "$technique" \
      --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 --target-modules all-linear \
      --quant-bits 4 --quant-type nf4 --double-quant true \
      --epochs 1 --max-steps "$STEPS" --learning-rate 2e-4 --lr-scheduler linear --warmup-ratio 0.1 \
      --per-device-batch-size "$BATCH" --gradient-accumulation-steps 1 --max-seq-length "$SEQ" \
      --precision bf16 --gradient-checkpointing true --packing false --seed 0 --logging-steps 5 \
      --output-dir "$out" "${ds_flags[@]}") >"$WORK/$name.log" 2>&1
  local code=$?
  "$PY" - "$name" "$out" "$code" "$((SECONDS - start))" "$WORK/model" "$technique" "$stage" "$processes" \
      "$BATCH" "$SEQ" <<'EOF'
import json, sys
from pathlib import Path

name, out, code, seconds, model = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
technique, stage, processes, batch, seq = sys.argv[6], sys.argv[7], int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10])
line = {"config": name, "exit_code": code, "seconds": seconds, "processes": processes, "batch": batch, "seq": seq,
        "gradient_checkpointing": True}
ok = code == 0
try:
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("technique", "deepspeed_zero_stage", "precision", "peak_memory_mb", "peak_memory_source",
                "tokens_per_second", "train_loss", "trainable_parameters", "total_parameters", "saved_parameters",
                "correctness_run"):
        line[key] = metrics.get(key)
    if (out / "adapter_config.json").exists():
        from peft import PeftModel
        from safetensors import safe_open
        from transformers import AutoModelForCausalLM

        with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as handle:
            sizes = [handle.get_slice(k).get_shape() for k in handle.keys()]
        line["adapter_tensors"] = len(sizes)
        line["adapter_empty_tensors"] = sum(1 for s in sizes if 0 in s or not s)
        ok = ok and bool(sizes) and line["adapter_empty_tensors"] == 0
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), str(out))
        line["adapter_loads"] = True
    from azfinetune.planner import predicted_peak_memory

    method = {"technique": technique}
    if technique != "full":
        method["lora"] = {"r": 16, "alpha": 32, "dropout": 0.05}
    if technique == "qlora":
        method["quantization"] = {"bits": 4, "type": "nf4", "double_quant": True}
    if stage != "-":
        method["deepspeed"] = {"stage": int(stage)}
    spec = {
        "name": f"gpu-check-{name}".replace("_", "-"),
        "model": model,
        "data": {"train": str(Path(model).parent / "chat.jsonl")},
        "method": method,
        "training": {"per_device_batch_size": batch, "max_seq_length": seq, "precision": "bf16",
                     "gradient_checkpointing": True},
        "target": {"kind": "local"},
    }
    predicted = predicted_peak_memory(spec, gpus_per_node=processes)
    line["predicted_allocated_mb"] = round(predicted.allocated / 2**20, 1)
    if metrics.get("peak_memory_source", "").startswith("cuda") and predicted.allocated:
        line["measured_over_predicted"] = round(metrics["peak_memory_mb"] / line["predicted_allocated_mb"], 3)
except Exception as exc:  # report, do not stop the other configs
    ok = False
    line["error"] = f"{type(exc).__name__}: {exc}"[:500]
line["ok"] = ok
print("GPU_CHECK " + json.dumps(line), flush=True)
sys.exit(0 if ok else 1)
EOF
  if [ $? -ne 0 ]; then
    FAILED=1
    echo "--- $name failed; end of its log ($WORK/$name.log):"
    tail -n 40 "$WORK/$name.log"
  fi
}

while IFS=$'\t' read -r name processes technique deepspeed stage; do
  if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ ",$GPU_CHECK_ONLY," != *",$name,"* ]]; then continue; fi
  run_config "$name" "$processes" "$technique" "$deepspeed" "$stage"
done <<<"$CONFIGS"

if [ "$FAILED" -eq 0 ]; then echo "gpu_check: all configs passed"; else echo "gpu_check: FAILED"; fi
exit "$FAILED"
