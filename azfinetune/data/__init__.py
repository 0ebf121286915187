"""Training-data validation: stream a data file once, report every problem with its line and field.

The reading itself is azft_contract's, the package the job steps read data with, so `data validate`
and the job decide the same verdict for the same file; this adds token counts, duplicates and bulk checks.
"""

from __future__ import annotations

from azft_contract import CHAT_ROLES, TASKS
from azft_contract import COLUMNS as DEFAULT_COLUMNS

from azfinetune.data._render import render_report
from azfinetune.data._report import DataReport, DataStats, LabelSummary, TokenStats
from azfinetune.data._tokens import APPROX_METHOD, load_tokenizer
from azfinetune.data._validate import (
    MIN_EXAMPLES,
    SERVERLESS_MAX_BYTES,
    compare_formats,
    detect_columns,
    normalize_task,
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
    "DataReport",
    "DataStats",
    "LabelSummary",
    "TokenStats",
    "compare_formats",
    "detect_columns",
    "load_tokenizer",
    "normalize_task",
    "render_report",
    "validate_data",
    "validate_pair",
]
