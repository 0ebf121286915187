"""The entry point's machine-readable stdout lines: a prefix, then one JSON object, one line each.

    AZFT_PROGRESS {"step": 10, "loss": 1.23, ...}    every logging step (and evaluations: eval_loss)
    AZFT_DONE {"train_loss": ..., "output_dir": ...}  once, after a successful run (the metrics)
    AZFT_ERROR {"exit_code": 2, "error": "..."}       once, when the run fails

Everything else on stdout is free text; logs go to stderr.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "DONE_PREFIX",
    "ERROR_PREFIX",
    "PROGRESS_PREFIX",
    "PROGRESS_PREFIXES",
    "finite",
    "format_progress_line",
    "parse_progress_line",
]

PROGRESS_PREFIX = "AZFT_PROGRESS "
DONE_PREFIX = "AZFT_DONE "
ERROR_PREFIX = "AZFT_ERROR "
#: kind -> prefix, for parse_progress_line's answer.
PROGRESS_PREFIXES = {"progress": PROGRESS_PREFIX, "done": DONE_PREFIX, "error": ERROR_PREFIX}


def finite(value: Any) -> Any:
    """`value` with every non-finite float (in dicts and lists too) as None: JSON has no NaN/inf, so a
    diverged loss is reported as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def format_progress_line(prefix: str, payload: dict[str, Any]) -> str:
    """The line (without its newline) for a payload: non-finite floats become null, keys are sorted."""
    if prefix not in PROGRESS_PREFIXES.values():
        raise ValueError(f"not a progress-line prefix: {prefix!r}")
    return prefix + json.dumps(finite(payload), sort_keys=True)


def parse_progress_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """("progress" | "done" | "error", payload) for a progress line, None for any other line (a line
    that has a prefix but no JSON object after it is not a progress line either)."""
    for kind, prefix in PROGRESS_PREFIXES.items():
        if line.startswith(prefix):
            try:
                payload = json.loads(line[len(prefix) :])
            except ValueError:
                return None
            return (kind, payload) if isinstance(payload, dict) else None
    return None
