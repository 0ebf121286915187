"""Checkpoints and resume: where the trainer saves checkpoint-N folders, and which one a (re)started run continues.

A job's --checkpoint-dir is its read-write `checkpoints` output: when Azure ML restarts a pre-empted job, the
folder still holds what the first attempt saved, and the run continues from the newest *complete* checkpoint
there (azft_contract.checkpoints says what complete is; a checkpoint cut off mid-save is skipped and named in the
log). --resume-from is another run's checkpoints: a read-only input (`submit --resume-from JOB`), or the earlier
local run's checkpoint (`run --local --resume`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from azft_contract.checkpoints import STATE_FILE, Checkpoint, incomplete_reason, newest_complete

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


def checkpoint_root(args: Args) -> Path:
    """The trainer's output_dir, where checkpoint-N folders go: --checkpoint-dir, else --output-dir."""
    return args.checkpoint_dir if args.checkpoint_dir is not None else args.output_dir


def _skipped(path: Path, reason: str) -> None:
    if is_main_process():
        log.warning("ignoring %s: incomplete, %s", path, reason)


def resume_point(args: Args) -> Checkpoint | None:
    """The checkpoint this run continues from: the newest complete one of --checkpoint-dir (this job's own, left
    by an earlier attempt) or of --resume-from (another run's), whichever is further on; None to start afresh.
    UsageError when --resume-from has none and nothing else does, or when it holds the other kind of weights."""
    deepspeed = args.deepspeed is not None
    own = other = None
    if args.checkpoint_dir is not None:
        own = newest_complete(args.checkpoint_dir, deepspeed=deepspeed, on_skip=_skipped)
    if args.resume_from is not None:
        other = newest_complete(args.resume_from, deepspeed=deepspeed, on_skip=_skipped)
        if own is None and other is None:
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
