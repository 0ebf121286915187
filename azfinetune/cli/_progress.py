"""A rich progress display for training runs fed by the entry point's AZFT_PROGRESS lines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["TrainingProgress"]


class TrainingProgress:
    """Steps as a bar with ETA, and the latest loss and tokens/s beside it; a plain line per update without a TTY."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]training[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> TrainingProgress:
        if self.console.is_terminal:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console.is_terminal:
            self.progress.__exit__(None, None, None)

    def update(self, line: dict[str, Any]) -> None:
        parts = []
        if line.get("loss") is not None:
            parts.append(f"loss {line['loss']:.4f}")
        if line.get("eval_loss") is not None:
            parts.append(f"eval_loss {line['eval_loss']:.4f}")
        if line.get("tokens_per_second"):
            parts.append(f"{line['tokens_per_second']:.0f} tok/s")
        status = "  ".join(parts)
        step, total = int(line.get("step", 0)), int(line.get("max_steps") or 0) or None
        if not self.console.is_terminal:
            self.console.print(f"step {step}/{total or '?'}  {status}")
            return
        if self.task is None:
            self.task = self.progress.add_task("train", total=total, status=status)
        self.progress.update(self.task, completed=step, total=total, status=status)
