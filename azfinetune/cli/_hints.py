"""The "next command" lines the CLI prints: each one is the command that was run, changed only where it says so.

A hint built from the real command line keeps every flag the user gave (`--set`, workspace flags, ...) and is
quoted for the shell, so copying it runs exactly what was shown (issue 18, item 1).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import click

__all__ = ["REACH_FLAGS", "command_line", "current_args", "hint_flags", "reach_flags"]

#: The flags that say where a job lives; the next commands (logs, status, cancel) need the same ones.
REACH_FLAGS = (
    "--subscription",
    "--resource-group",
    "--workspace",
    "--foundry-endpoint",
    "--foundry-api-key-env",
    "--context",
    "--namespace",
)


def current_args() -> list[str]:
    """The arguments of the command being run (after `azfinetune`), as the user typed them."""
    ctx = click.get_current_context(silent=True)
    args = getattr(ctx.find_root().obj, "argv", None) if ctx is not None else None
    return list(args) if args is not None else []


def command_line(
    args: Sequence[str] | None = None, *, drop: Sequence[str] = (), add: Sequence[str] = ()
) -> str:
    """`azfinetune ARGS` with the flags in `drop` left out and `add` appended, shell-quoted."""
    words = [w for w in (current_args() if args is None else list(args)) if w not in drop]
    return shlex.join(["azfinetune", *words, *add])


def hint_flags(text: str) -> list[str]:
    """The long flags (--name) a hint names, for the tests that check each exists on its command."""
    import re

    return re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)


def reach_flags(args: Sequence[str] | None = None) -> list[str]:
    """The REACH_FLAGS (with their values) the user gave, in their order: `--workspace ws` or `--workspace=ws`."""
    words = current_args() if args is None else list(args)
    found: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        name = word.split("=", 1)[0]
        if name in REACH_FLAGS:
            if "=" in word:
                found.append(word)
            elif index + 1 < len(words):
                found.extend([word, words[index + 1]])
                index += 1
        index += 1
    return found
