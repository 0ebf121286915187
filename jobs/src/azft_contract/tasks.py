"""The tasks, their data columns (default names and the names auto-detection tries), formats and chat roles."""

from __future__ import annotations

import re

from azft_contract.errors import ContractError

__all__ = [
    "BEST_MODEL_METRICS",
    "CAUSAL_TASKS",
    "CHAT_ROLES",
    "CLASSIFICATION_TASKS",
    "COLUMNS",
    "COLUMN_KEYS",
    "ENTRY_POINT_TASKS",
    "FORMATS",
    "REGISTRY_ONLY_TASKS",
    "TASKS",
    "TASK_FORMATS",
    "columns_for",
    "default_columns",
    "normalize_task",
]

#: Generative tasks the entry point trains with TRL's SFTTrainer.
CAUSAL_TASKS = ("chat-completion", "text-completion")
#: Tasks the entry point trains with a classification head and transformers' Trainer.
CLASSIFICATION_TASKS = ("text-classification", "token-classification")
#: Tasks `python -m finetune` refuses (exit 2): the Azure ML registry's pipeline components train them.
REGISTRY_ONLY_TASKS = ("question-answering", "summarization", "translation")
#: Tasks `python -m finetune` trains.
ENTRY_POINT_TASKS = CAUSAL_TASKS + CLASSIFICATION_TASKS
TASKS = ENTRY_POINT_TASKS + REGISTRY_ONLY_TASKS

# Logical column -> the names tried in order when none is given; the first is the default, () has none.
# The names follow the Azure ML registry pipelines' sample data (sentence1_key/label_key, token_key/tag_key
# with CoNLL "ner_tags", SQuAD context/question/answers{text, answer_start}, document_key/summary_key).
# translation: "translation" names the column of WMT-style objects {"en": ..., "ro": ...}, source_lang /
# target_lang are language codes (which then also name the text columns), never column names themselves.
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "chat-completion": {"messages": ("messages",)},
    "text-completion": {"prompt": ("prompt",), "completion": ("completion",), "text": ("text",)},
    "text-classification": {
        "text": ("text", "sentence1", "sentence"),
        "text_pair": ("text_pair", "sentence2"),
        "label": ("label", "labels"),
    },
    "token-classification": {"tokens": ("tokens",), "tags": ("ner_tags", "tags")},
    "question-answering": {
        "context": ("context",),
        "question": ("question",),
        "answers": ("answers",),
        "answer_text": ("text",),
        "answer_start": ("answer_start",),
    },
    "summarization": {
        "source": ("document", "source", "article"),
        "target": ("summary", "target", "highlights"),
    },
    "translation": {
        "source": ("source",),
        "target": ("target",),
        "source_lang": (),
        "target_lang": (),
        "translation": (),
    },
}

#: Every logical column key of every task (what `--column KEY=NAME` takes), sorted.
COLUMN_KEYS = tuple(sorted({key for columns in COLUMNS.values() for key in columns}))

CHAT_ROLES = ("system", "user", "assistant")

#: Validation metrics the entry point's trainer computes, per task: what --metric-for-best-model may name.
BEST_MODEL_METRICS: dict[str, tuple[str, ...]] = {
    "chat-completion": ("loss", "mean_token_accuracy"),
    "text-completion": ("loss", "mean_token_accuracy"),
    "text-classification": ("loss", "accuracy"),
    "token-classification": ("loss", "accuracy"),
}

#: jsonl: one JSON object per line; json: a JSON array of objects (or JSON Lines in a .json file);
#: csv/tsv: a header row, then one row per example; parquet: one row per example (needs pyarrow).
FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
#: The formats each task's data may come in: a conversation does not fit a table cell.
TASK_FORMATS: dict[str, tuple[str, ...]] = {
    task: ("jsonl", "json") if task == "chat-completion" else FORMATS for task in TASKS
}


def normalize_task(task: object) -> str:
    """'chat_completion', 'ChatCompletion', an enum member ... -> 'chat-completion'; ContractError if unknown."""
    raw = str(getattr(task, "value", task))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", raw).lower().replace("_", "-").strip()
    if text not in TASKS:
        raise ContractError(f"unknown task {raw!r}", hint=f"use one of: {', '.join(TASKS)}")
    return text


def columns_for(task: str) -> dict[str, tuple[str, ...]]:
    """The logical columns of a task -> the names auto-detection tries (a copy)."""
    return dict(COLUMNS[normalize_task(task)])


def default_columns(task: str) -> dict[str, str]:
    """The logical columns of a task that have a default name -> that name."""
    return {key: names[0] for key, names in COLUMNS[normalize_task(task)].items() if names}
