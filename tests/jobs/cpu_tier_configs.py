"""The DeepSpeed / QLoRA training configurations, one list for the CPU tier and for scripts/gpu_check.sh.

tests/jobs/test_cpu_tier.py trains each one on CPU in CI (correctness); scripts/gpu_check.sh trains the same ones on
a CUDA GPU and compares peak memory with the planner. `python -m tests.jobs.cpu_tier_configs DIR` writes each
configuration's DeepSpeed JSON into DIR and prints one tab-separated line per configuration for the script:
name, processes, technique, DeepSpeed JSON path (or -), ZeRO stage (or -).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What transformers fills from the TrainingArguments the entry point builds (as azfinetune's builder writes them).
_AUTO_KEYS = (
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "train_batch_size",
    "gradient_clipping",
)


@dataclass(frozen=True)
class TrainingConfig:
    """One `python -m finetune` configuration: technique, ZeRO stage, process count."""

    name: str
    technique: str
    zero_stage: int | None = None
    processes: int = 1
    # ZeRO-3 only. False is the known trap: without stage3_gather_16bit_weights_on_model_save the saved weights
    # are 0-element placeholders; the entry point must switch it on and still save a full adapter/model.
    gather_on_save: bool = True
    learning_rate: float = 2e-2
    # False: the GPU check runs it, the CPU tier does not (another CPU test already trains it).
    in_cpu_tier: bool = True

    def deepspeed_config(self) -> dict[str, Any] | None:
        if self.zero_stage is None:
            return None
        zero: dict[str, Any] = {"stage": self.zero_stage, "overlap_comm": True, "contiguous_gradients": True}
        if self.zero_stage == 3:
            zero.update(
                {
                    "stage3_param_persistence_threshold": "auto",
                    "stage3_prefetch_bucket_size": "auto",
                    "reduce_bucket_size": "auto",
                }
            )
            if self.gather_on_save:
                zero["stage3_gather_16bit_weights_on_model_save"] = True
        return {
            "zero_optimization": zero,
            "bf16": {"enabled": "auto"},
            "fp16": {"enabled": "auto"},
            **dict.fromkeys(_AUTO_KEYS, "auto"),
        }

    def write_deepspeed_config(self, folder: Path) -> Path | None:
        config = self.deepspeed_config()
        if config is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return path

    @property
    def is_peft(self) -> bool:
        return self.technique != "full"


CONFIGS: tuple[TrainingConfig, ...] = (
    # The GPU check's memory baseline; on CPU tests/jobs/test_entry_point.py trains plain LoRA already.
    TrainingConfig("lora", "lora", in_cpu_tier=False),
    TrainingConfig("lora_zero2", "lora", zero_stage=2),
    TrainingConfig("lora_zero2_x2", "lora", zero_stage=2, processes=2),
    TrainingConfig("lora_zero3", "lora", zero_stage=3),
    TrainingConfig("lora_zero3_x2_no_gather", "lora", zero_stage=3, processes=2, gather_on_save=False),
    TrainingConfig("dora_zero3_x2", "dora", zero_stage=3, processes=2),
    TrainingConfig("full_zero3_x2", "full", zero_stage=3, processes=2, learning_rate=3e-3),
    TrainingConfig("qlora", "qlora"),
    TrainingConfig("qlora_zero3", "qlora", zero_stage=3),
    TrainingConfig("qlora_zero3_x2", "qlora", zero_stage=3, processes=2),
)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.jobs.cpu_tier_configs DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    for config in CONFIGS:
        path = config.write_deepspeed_config(folder)
        stage = "-" if config.zero_stage is None else str(config.zero_stage)
        fields = (config.name, config.processes, config.technique, path or "-", stage)
        print("\t".join(str(field) for field in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
