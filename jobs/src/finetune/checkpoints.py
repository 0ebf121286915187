"""Checkpoints and resume: where the trainer saves checkpoint-N folders, and which one a (re)started run continues.

A job's --checkpoint-dir is its read-write `checkpoints` output: when Azure ML restarts a pre-empted job, the
folder still holds what the first attempt saved, and the run continues from the newest *complete* checkpoint
there. --resume-from is another run's checkpoints (a read-only input, or a local run's folder). A checkpoint is
complete when the trainer finished writing it: it writes the weights, the optimizer and RNG states, and
trainer_state.json last, so a folder without a readable trainer_state.json (a VM taken mid-save) is skipped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.args import Args, is_main_process
from finetune.errors import UsageError

log = logging.getLogger("finetune")

__all__ = [
    "Checkpoint",
    "checkpoint_root",
    "incomplete_reason",
    "newest_complete",
    "resume_metrics",
    "resume_point",
]

#: transformers' PREFIX_CHECKPOINT_DIR and TRAINER_STATE_NAME.
_FOLDER = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
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
    """A complete checkpoint-N folder: its path and the optimizer step it was saved at."""

    path: Path
    step: int
    adapter: bool


def checkpoint_root(args: Args) -> Path:
    """The trainer's output_dir, where checkpoint-N folders go: --checkpoint-dir, else --output-dir."""
    return args.checkpoint_dir if args.checkpoint_dir is not None else args.output_dir


def incomplete_reason(folder: Path, *, deepspeed: bool = False) -> str | None:
    """Why a checkpoint-N folder cannot be resumed (None when it can): no readable trainer_state.json at step N,
    no weights, or (under DeepSpeed) no engine state."""
    match = _FOLDER.match(folder.name)
    if match is None:
        return "not a checkpoint-N folder"
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {STATE_FILE} (the save did not finish)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{STATE_FILE} is unreadable ({type(error).__name__})"
    if not isinstance(state, dict) or state.get("global_step") != int(match.group(1)):
        return f"{STATE_FILE} is not that of step {match.group(1)}"
    if not any((folder / name).is_file() for name in ADAPTER_FILES + MODEL_FILES):
        return "no model or adapter weights"
    if (
        any((folder / name).is_file() for name in ADAPTER_FILES)
        and not (folder / "adapter_config.json").is_file()
    ):
        return "no adapter_config.json"
    if deepspeed and not any(path.is_dir() for path in folder.glob("global_step*")):
        return "no DeepSpeed engine state (global_step*)"
    return None


def newest_complete(folder: Path, *, deepspeed: bool = False) -> Checkpoint | None:
    """The complete checkpoint with the highest step in `folder` (or `folder` itself when it is one), else None.
    Incomplete ones are skipped, each said in the log."""
    if not folder.is_dir():
        return None
    candidates = [folder] if _FOLDER.match(folder.name) else []
    candidates += sorted(
        (path for path in folder.iterdir() if path.is_dir() and _FOLDER.match(path.name)),
        key=lambda path: int(path.name.split("-")[1]),
        reverse=True,
    )
    for path in candidates:
        reason = incomplete_reason(path, deepspeed=deepspeed)
        if reason is None:
            step = int(path.name.split("-")[1])
            adapter = any((path / name).is_file() for name in ADAPTER_FILES)
            return Checkpoint(path, step, adapter)
        if is_main_process():
            log.warning("ignoring %s: incomplete, %s", path, reason)
    return None


def resume_point(args: Args) -> Checkpoint | None:
    """The checkpoint this run continues from: the newest complete one of --checkpoint-dir (this job's own, left
    by an earlier attempt) or of --resume-from (another run's), whichever is further on; None to start afresh.
    UsageError when --resume-from has none and nothing else does, or when it holds the other kind of weights."""
    deepspeed = args.deepspeed is not None
    own = (
        newest_complete(args.checkpoint_dir, deepspeed=deepspeed) if args.checkpoint_dir is not None else None
    )
    other = newest_complete(args.resume_from, deepspeed=deepspeed) if args.resume_from is not None else None
    if args.resume_from is not None and own is None and other is None:
        raise UsageError(
            f"--resume-from {args.resume_from}: no complete checkpoint there (a checkpoint-N folder with "
            f"{STATE_FILE} and the model or adapter weights); the run it came from saved none"
        )
    found = [point for point in (own, other) if point is not None]
    if not found:
        return None
    chosen = max(found, key=lambda point: point.step)  # own first: it wins a tie
    if chosen.adapter != args.is_peft:
        saved = "an adapter" if chosen.adapter else "a full model"
        raise UsageError(
            f"{chosen.path} holds {saved}; --technique {args.technique} cannot resume it (train with the "
            "technique that saved it)"
        )
    if is_main_process():
        log.info("resuming from %s (step %d) in %s", chosen.path.name, chosen.step, chosen.path.parent)
    return chosen


def resume_metrics(point: Checkpoint | None) -> dict[str, Any]:
    """What metrics.json says about the resume: the checkpoint and step the run continued from."""
    if point is None:
        return {}
    return {"resumed_from": str(point.path), "resumed_from_step": point.step}
