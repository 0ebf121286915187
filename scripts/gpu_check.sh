#!/usr/bin/env bash
# GPU check of the training entry point (jobs/src/finetune) on one CUDA GPU, in well under 5 minutes:
#   lora          plain LoRA, bf16 (the memory baseline)
#   qlora         4-bit NF4 + double quant, prepare_model_for_kbit_training
#   lora_zero2    LoRA under DeepSpeed ZeRO-2
#   lora_zero3    LoRA under ZeRO-3 from a config WITHOUT stage3_gather_16bit_weights_on_model_save: the entry
#                 point must switch it on, and the saved adapter must be non-empty and load with PeftModel
#   qlora_zero3   QLoRA under ZeRO-3 (bnb_4bit_quant_storage = compute dtype)
#   full_zero3    full fine-tuning under ZeRO-3 (gathered 16-bit model save)
# Every config prints one JSON line (prefix GPU_CHECK) with peak GPU memory (torch.cuda.max_memory_allocated),
# tokens/s and the model's shape, for comparison with the planner's memory estimates.
#
# Usage: scripts/gpu_check.sh [WORK_DIR]
#   PYTHON=python3  interpreter with CUDA torch, transformers, peft, trl, accelerate, bitsandbytes, deepspeed
#   GPU_CHECK_HIDDEN=1024 GPU_CHECK_LAYERS=4 GPU_CHECK_STEPS=10   size of the tiny Phi-3 and of the runs
#   GPU_CHECK_ALLOW_CPU=1   dry-run the script on a machine without CUDA (only `lora` can pass there)
# Exit code: 0 when every config passed, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
# The runs cd into jobs/src: make a relative interpreter path absolute (keeping a venv's symlink as is).
if [[ "$PY" == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"; fi
WORK="${1:-$(mktemp -d -t azft-gpu-check-XXXXXX)}"
HIDDEN="${GPU_CHECK_HIDDEN:-1024}"
LAYERS="${GPU_CHECK_LAYERS:-4}"
STEPS="${GPU_CHECK_STEPS:-10}"
mkdir -p "$WORK"
export PYTHONPATH="$ROOT/jobs/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1
unset MLFLOW_TRACKING_URI MLFLOW_RUN_ID

"$PY" - "$WORK" "$HIDDEN" "$LAYERS" <<'EOF' || exit 1
import json, os, sys
from pathlib import Path

import torch

from azfinetune.tiny_model import make_chat_dataset, make_tiny_phi3

work, hidden, layers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
elif os.environ.get("GPU_CHECK_ALLOW_CPU") != "1":  # a dry run of the script itself on a CPU machine
    sys.exit("gpu_check: no CUDA device")
make_tiny_phi3(work / "model", hidden_size=hidden, num_layers=layers)
make_chat_dataset(work / "chat.jsonl", n=200, seed=0)
auto = {k: "auto" for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size",
                            "gradient_clipping")}
precision = {"bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}}
zero2 = {"zero_optimization": {"stage": 2, "overlap_comm": True, "contiguous_gradients": True}}
zero3 = {"zero_optimization": {"stage": 3, "overlap_comm": True, "stage3_param_persistence_threshold": "auto",
                               "stage3_prefetch_bucket_size": "auto", "reduce_bucket_size": "auto"}}
(work / "zero2.json").write_text(json.dumps({**zero2, **precision, **auto}, indent=2))
(work / "zero3.json").write_text(json.dumps({**zero3, **precision, **auto}, indent=2))  # no gather flag: on purpose
EOF

FAILED=0

run_config() {
  local name="$1"; shift
  local out="$WORK/$name"
  local start=$SECONDS
  (cd "$ROOT/jobs/src" && "$PY" -m finetune \
      --task chat-completion --model "$WORK/model" --train-file "$WORK/chat.jsonl" \
      --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 --target-modules all-linear \
      --quant-bits 4 --quant-type nf4 --double-quant true \
      --epochs 1 --max-steps "$STEPS" --learning-rate 2e-4 --lr-scheduler linear --warmup-ratio 0.1 \
      --per-device-batch-size 4 --gradient-accumulation-steps 1 --max-seq-length 256 \
      --precision bf16 --gradient-checkpointing true --packing false --seed 0 --logging-steps 5 \
      --output-dir "$out" "$@") >"$WORK/$name.log" 2>&1
  local code=$?
  "$PY" - "$name" "$out" "$code" "$((SECONDS - start))" "$WORK/model" "$HIDDEN" "$LAYERS" <<'EOF'
import json, sys
from pathlib import Path

name, out, code, seconds, model = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
line = {"config": name, "exit_code": code, "seconds": seconds, "hidden_size": int(sys.argv[6]),
        "num_layers": int(sys.argv[7]), "batch": 4, "seq": 256, "gradient_checkpointing": True}
ok = code == 0
try:
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("technique", "deepspeed_zero_stage", "precision", "peak_memory_mb", "peak_memory_source",
                "tokens_per_second", "train_loss", "trainable_parameters", "total_parameters", "saved_parameters"):
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

run_config lora --technique lora
run_config qlora --technique qlora
run_config lora_zero2 --technique lora --deepspeed "$WORK/zero2.json"
run_config lora_zero3 --technique lora --deepspeed "$WORK/zero3.json"
run_config qlora_zero3 --technique qlora --deepspeed "$WORK/zero3.json"
run_config full_zero3 --technique full --deepspeed "$WORK/zero3.json"

if [ "$FAILED" -eq 0 ]; then echo "gpu_check: all configs passed"; else echo "gpu_check: FAILED"; fi
exit "$FAILED"
