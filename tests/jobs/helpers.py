"""Helpers for the training tests: the builder-style command line and the parsed result of one entry-point run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft_contract.flags import FLAGS, command_args, parse_bool

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
    """The command line as the job builder writes it (azft_contract.command_args): every flag of the table
    that has a default, tiny-model values for the rest, booleans as strings. `extra` sets any flag by its
    dest (``validation_file=...``, ``column=["text=review"]``, ``mask_prompt="false"``); None leaves it out."""
    values: dict[str, Any] = {dest: flag.default for dest, flag in FLAGS.items() if flag.default is not None}
    values.update(
        task=task,
        model=str(model),
        train_file=train_file,
        output_dir=output_dir,
        technique=technique,
        learning_rate=learning_rate,
        max_steps=max_steps,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lr_scheduler="constant",
        max_seq_length=64,
        seed=0,
        logging_steps=2,
    )
    values.update(extra)
    for dest, value in list(values.items()):
        flag = FLAGS[dest]
        if flag.kind == "bool" and isinstance(value, str):
            values[dest] = parse_bool(value)
        elif flag.repeatable and isinstance(value, str):
            values[dest] = [value]
    return command_args(values)


def minimal_chat_argv(folder: Path, *extra: str) -> list[str]:
    """The fewest flags the entry point's parser takes (a one-line chat file written into `folder`), plus `extra`:
    for tests of how single flags parse and check."""
    train = folder / "train.jsonl"
    train.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    return [
        "--task",
        "chat-completion",
        "--model",
        "m",
        "--train-file",
        str(train),
        "--output-dir",
        "out",
        *extra,
    ]
