"""What a complete checkpoint is: the job resumes from one (finetune.checkpoints) and `run --local --resume` picks
the earlier run's (azfinetune.local), so both sides read a checkpoint-N folder the same way.

The trainer writes a checkpoint's weights, then the optimizer, scheduler and RNG states, and trainer_state.json
last: a folder without a readable trainer_state.json of its own step (a VM taken, or Ctrl-C, mid-save) is not
complete, and neither is one without weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ADAPTER_FILES",
    "MODEL_FILES",
    "STATE_FILE",
    "Checkpoint",
    "checkpoint_step",
    "incomplete_reason",
    "newest_complete",
]

#: transformers' TRAINER_STATE_NAME; its checkpoint folders are PREFIX_CHECKPOINT_DIR-<global step>.
STATE_FILE = "trainer_state.json"
_FOLDER = re.compile(r"^checkpoint-(\d+)$")
#: What save_model writes: an adapter (PEFT), or the model's weights (full fine-tuning, sharded or not).
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MODEL_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint-N folder: its path, the optimizer step it was saved at, and whether it holds an
    adapter (else a full model)."""

    path: Path
    step: int
    adapter: bool


def checkpoint_step(folder: Path) -> int | None:
    """N of a checkpoint-N folder name, else None."""
    match = _FOLDER.match(folder.name)
    return int(match.group(1)) if match else None


def incomplete_reason(folder: Path, *, deepspeed: bool = False) -> str | None:
    """Why a checkpoint-N folder cannot be resumed (None when it can): no readable trainer_state.json at step N,
    no weights, or (under DeepSpeed) no engine state."""
    step = checkpoint_step(folder)
    if step is None:
        return "not a checkpoint-N folder"
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {STATE_FILE} (the save did not finish)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{STATE_FILE} is unreadable ({type(error).__name__})"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"{STATE_FILE} is not that of step {step}"
    if not any((folder / name).is_file() for name in ADAPTER_FILES + MODEL_FILES):
        return "no model or adapter weights"
    adapter = any((folder / name).is_file() for name in ADAPTER_FILES)
    if adapter and not (folder / "adapter_config.json").is_file():
        return "no adapter_config.json"
    if deepspeed and not any(path.is_dir() for path in folder.glob("global_step*")):
        return "no DeepSpeed engine state (global_step*)"
    return None


def newest_complete(
    folder: Path,
    *,
    deepspeed: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Checkpoint | None:
    """The complete checkpoint with the highest step in `folder` (or `folder` itself when it is one), else None.
    Each incomplete one passed over goes to `on_skip(path, reason)`."""
    if not folder.is_dir():
        return None
    candidates = [folder] if checkpoint_step(folder) is not None else []
    candidates += sorted(
        (path for path in folder.iterdir() if path.is_dir() and checkpoint_step(path) is not None),
        key=lambda path: checkpoint_step(path) or 0,
        reverse=True,
    )
    for path in candidates:
        reason = incomplete_reason(path, deepspeed=deepspeed)
        if reason is None:
            adapter = any((path / name).is_file() for name in ADAPTER_FILES)
            return Checkpoint(path, checkpoint_step(path) or 0, adapter)
        if on_skip is not None:
            on_skip(path, reason)
    return None
