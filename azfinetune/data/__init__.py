"""Training-data validation: stream a data file once, report every problem with its line and field."""

from __future__ import annotations

from azfinetune.data._formats import CHAT_ROLES, DEFAULT_COLUMNS, TASKS, normalize_task
from azfinetune.data._render import render_report
from azfinetune.data._report import DataIssue, DataReport, DataStats, LabelSummary, Severity, TokenStats
from azfinetune.data._tokens import APPROX_METHOD, load_tokenizer
from azfinetune.data._validate import (
    MIN_EXAMPLES,
    SERVERLESS_MAX_BYTES,
    compare_formats,
    validate_data,
    validate_pair,
)

__all__ = [
    "APPROX_METHOD",
    "CHAT_ROLES",
    "DEFAULT_COLUMNS",
    "MIN_EXAMPLES",
    "SERVERLESS_MAX_BYTES",
    "TASKS",
    "DataIssue",
    "DataReport",
    "DataStats",
    "LabelSummary",
    "Severity",
    "TokenStats",
    "compare_formats",
    "load_tokenizer",
    "normalize_task",
    "render_report",
    "validate_data",
    "validate_pair",
]
