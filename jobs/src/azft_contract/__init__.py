"""azft_contract: the host–cluster contract of azfinetune, in one dependency-free package.

It ships in the job's code folder (jobs/src, the cwd of every job step) and is installed on the host as the
top-level package `azft_contract`. Both sides import it, so these are written once:

- tasks and their data columns (defaults, the names auto-detection tries), formats, chat roles (`tasks`);
- the flags of `python -m finetune` as a table (`flags`): the parser is built from it, builders write
  command lines with `command_args` / `column_args`;
- the progress lines on the entry point's stdout (`progress`);
- the data readers (`formats`, `lines`, `tables`, `examples`, `reader`): format and encoding detection,
  lines split on b"\\n" only, the per-task example checks and the example the trainer receives.

Who imports it: the job steps `finetune`, `validate_data` and `evaluate_model` (check_file), and azfinetune's
`data validate` (FileReader, with its own accelerators on top). Standard library only; Parquet needs
pyarrow, imported when a Parquet file is read.
"""

from __future__ import annotations

from azft_contract.errors import ContractError, Finding, Findings, Sink
from azft_contract.examples import LabelCounts, label_text
from azft_contract.flags import (
    DPO_LOSS_TYPES,
    ENTRY_POINT_FLAGS,
    ENTRY_POINT_MODULE,
    FLAGS,
    Flag,
    add_flags,
    column_args,
    command_args,
    parse_columns,
)
from azft_contract.formats import SUFFIX_FORMATS, detect_format, resolve_data_file
from azft_contract.progress import (
    DONE_PREFIX,
    ERROR_PREFIX,
    PROGRESS_PREFIX,
    format_progress_line,
    parse_progress_line,
)
from azft_contract.reader import (
    MIN_EXAMPLES,
    SERVERLESS_MAX_BYTES,
    FileReader,
    FileResult,
    check_file,
    detect_columns,
)
from azft_contract.tasks import (
    BEST_MODEL_METRICS,
    CAUSAL_TASKS,
    CHAT_ROLES,
    CLASSIFICATION_TASKS,
    COLUMN_KEYS,
    COLUMNS,
    DATA_KINDS,
    ENTRY_POINT_TASKS,
    FORMATS,
    OBJECTIVES,
    PREFERENCE,
    PREFERENCE_OBJECTIVES,
    PREFERENCE_TASKS,
    REGISTRY_ONLY_TASKS,
    TASK_FORMATS,
    TASKS,
    columns_for,
    data_kind,
    default_columns,
    normalize_task,
)

__version__ = "1"

__all__ = [
    "BEST_MODEL_METRICS",
    "CAUSAL_TASKS",
    "CHAT_ROLES",
    "CLASSIFICATION_TASKS",
    "COLUMNS",
    "COLUMN_KEYS",
    "DATA_KINDS",
    "DONE_PREFIX",
    "DPO_LOSS_TYPES",
    "ENTRY_POINT_FLAGS",
    "ENTRY_POINT_MODULE",
    "ENTRY_POINT_TASKS",
    "ERROR_PREFIX",
    "FLAGS",
    "FORMATS",
    "MIN_EXAMPLES",
    "OBJECTIVES",
    "PREFERENCE",
    "PREFERENCE_OBJECTIVES",
    "PREFERENCE_TASKS",
    "PROGRESS_PREFIX",
    "REGISTRY_ONLY_TASKS",
    "SERVERLESS_MAX_BYTES",
    "SUFFIX_FORMATS",
    "TASKS",
    "TASK_FORMATS",
    "ContractError",
    "FileReader",
    "FileResult",
    "Finding",
    "Findings",
    "Flag",
    "LabelCounts",
    "Sink",
    "__version__",
    "add_flags",
    "check_file",
    "column_args",
    "columns_for",
    "command_args",
    "data_kind",
    "default_columns",
    "detect_columns",
    "detect_format",
    "format_progress_line",
    "label_text",
    "normalize_task",
    "parse_columns",
    "parse_progress_line",
    "resolve_data_file",
]
