"""Helpers for the training tests: the builder-style command line and the parsed result of one entry-point run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JOBS_SRC = ROOT / "jobs" / "src"


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


HAS_CUDA = _has_cuda()


@dataclass
class EntryPointRun:
    """What one `python -m finetune ...` run left behind."""

    returncode: int
    stdout: str
    stderr: str
    progress: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-6000:]}"


def contract_argv(
    *,
    task: str,
    model: Path,
    train_file: Path,
    output_dir: Path,
    technique: str = "lora",
    learning_rate: float = 2e-2,
    max_steps: int = 16,
    **extra: Any,
) -> list[str]:
    """The command line exactly as the job builder writes it (CONTRACTS.md): every flag, booleans as strings."""
    flags: dict[str, Any] = {
        "task": task,
        "model": model,
        "train-file": train_file,
        "technique": technique,
        "lora-r": 8,
        "lora-alpha": 16,
        "lora-dropout": 0.0,
        "target-modules": "all-linear",
        "quant-bits": 4,
        "quant-type": "nf4",
        "double-quant": "true",
        "epochs": 1,
        "max-steps": max_steps,
        "learning-rate": learning_rate,
        "lr-scheduler": "constant",
        "warmup-ratio": 0.0,
        "per-device-batch-size": 4,
        "gradient-accumulation-steps": 1,
        "max-seq-length": 64,
        "precision": "bf16",
        "gradient-checkpointing": "false",
        "packing": "false",
        "seed": 0,
        "logging-steps": 2,
        "output-dir": output_dir,
    }
    for key, value in extra.items():
        flags[key.replace("_", "-")] = value
    argv: list[str] = []
    for key, value in flags.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            argv += [f"--{key}", str(item)]
    return argv
