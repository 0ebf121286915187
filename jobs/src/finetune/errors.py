"""Errors that decide the entry point's exit code: UsageError exits 2, TrainingError (and anything else) 1."""

from __future__ import annotations


class UsageError(Exception):
    """Bad flags, data or model input: nothing was trained. Exit code 2."""

    exit_code = 2


class TrainingError(Exception):
    """Training or saving failed. Exit code 1."""

    exit_code = 1
