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
    "DATA_KINDS",
    "ENTRY_POINT_TASKS",
    "FORMATS",
    "OBJECTIVES",
    "PREFERENCE",
    "PREFERENCE_OBJECTIVES",
    "PREFERENCE_TASKS",
    "REGISTRY_ONLY_TASKS",
    "TASKS",
    "TASK_FORMATS",
    "columns_for",
    "data_kind",
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
#: What training optimizes: supervised next-token loss, or a preference objective on chosen/rejected pairs.
OBJECTIVES = ("sft", "dpo", "orpo")
PREFERENCE_OBJECTIVES = ("dpo", "orpo")
#: The tasks a preference objective trains (TRL's DPOTrainer and ORPOTrainer train causal LMs).
PREFERENCE_TASKS = CAUSAL_TASKS
#: The data of a preference objective: prompt, chosen and rejected, whatever the task (one reader for all).
PREFERENCE = "preference"
#: What a data file can be read as: a task's own examples, or preference pairs.
DATA_KINDS = (*TASKS, PREFERENCE)

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
    # TRL's names first, then Azure AI Foundry's (OpenAI's) DPO layout: input.messages, preferred_output,
    # non_preferred_output.
    PREFERENCE: {
        "prompt": ("prompt", "input"),
        "chosen": ("chosen", "preferred_output"),
        "rejected": ("rejected", "non_preferred_output"),
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
TASK_FORMATS[PREFERENCE] = FORMATS  # text pairs fit a table; message lists travel as JSON in a cell


def normalize_task(task: object) -> str:
    """'chat_completion', 'ChatCompletion', an enum member ... -> 'chat-completion'; ContractError if unknown.
    "preference" (the data kind of dpo and orpo, see data_kind) is accepted too."""
    raw = str(getattr(task, "value", task))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", raw).lower().replace("_", "-").strip()
    if text not in DATA_KINDS:
        raise ContractError(f"unknown task {raw!r}", hint=f"use one of: {', '.join(DATA_KINDS)}")
    return text


def data_kind(task: object, objective: object = "sft") -> str:
    """What a file of `task` trained with `objective` holds: the task's examples (sft), or "preference" pairs
    (dpo, orpo) — the name the readers, `--column` and data.columns use."""
    value = str(getattr(objective, "value", objective)).strip().lower()
    if value not in OBJECTIVES:
        raise ContractError(f"unknown objective {value!r}", hint=f"use one of: {', '.join(OBJECTIVES)}")
    return PREFERENCE if value in PREFERENCE_OBJECTIVES else normalize_task(task)


def columns_for(task: str) -> dict[str, tuple[str, ...]]:
    """The logical columns of a task -> the names auto-detection tries (a copy)."""
    return dict(COLUMNS[normalize_task(task)])


def default_columns(task: str) -> dict[str, str]:
    """The logical columns of a task that have a default name -> that name."""
    return {key: names[0] for key, names in COLUMNS[normalize_task(task)].items() if names}
