"""The data files as the trainer receives them (read by azft_contract, as `data validate` reads them) and
turned into model inputs for each task (chat, text, classification)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azft_contract import ContractError, check_file

from finetune.args import Args
from finetune.errors import UsageError

log = logging.getLogger("finetune")

IGNORE_INDEX = -100
_WARNINGS_SHOWN = 5

# Used only when the model's tokenizer has no chat template (base models): plain role headers, EOS after
# each assistant turn so the model learns to stop.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] + ':\n' + message['content'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}"
)


class Split(list[dict[str, Any]]):
    """The valid examples of one data file, as azft_contract returns them (dicts of logical keys:
    ``{"messages": [...]}``, ``{"prompt", "completion"}`` or ``{"text"}``, ``{"text", "text_pair", "label"}``,
    ``{"tokens", "tags"}``), with the file and the line of each for messages."""

    def __init__(self, examples: Iterable[dict[str, Any]], *, path: str, lines: Sequence[int]) -> None:
        super().__init__(examples)
        self.path = path
        self.lines = list(lines)

    def where(self, index: int) -> str:
        """``file:line`` of example `index`."""
        if index < len(self.lines):
            return f"{self.path}:{self.lines[index]}"
        return f"{self.path} (example {index + 1})"


def read_split(path: Path, task: str, columns: dict[str, str] | None, role: str) -> Split:
    """Read and check one data file with the contract's reader; any error in it is a UsageError that
    lists the first errors with their lines (nothing is trained on data that `data validate` refuses)."""
    try:
        result = check_file(path, task, columns or None, keep_examples=True)
    except ContractError as error:
        raise UsageError(f"--{role}-file: {error}") from error
    warnings = result.findings.warnings
    for finding in warnings[:_WARNINGS_SHOWN]:
        log.warning("%s data: %s", role, finding.text(result.path))
    hidden = sum(result.findings.warning_counts.values()) - min(len(warnings), _WARNINGS_SHOWN)
    if hidden > 0:
        log.warning("%s data: %d more warnings (python -m validate_data lists them all)", role, hidden)
    if not result.ok:
        raise UsageError(f"{role} data: {result.error_text()}")
    return Split(result.records, path=result.path, lines=result.lines)


@dataclass
class Splits:
    """The examples of each data file, read and checked before any model is loaded."""

    train: Split
    validation: Split | None = None
    test: Split | None = None

    def named(self) -> list[tuple[str, Split]]:
        pairs = [("train", self.train), ("validation", self.validation), ("test", self.test)]
        return [(name, records) for name, records in pairs if records is not None]


def load_splits(args: Args) -> Splits:
    """Read every data file with the same column names: bad data fails in a second, not after loading.

    text-classification: validation/test examples whose label never occurs in training are left out
    (the model has no output for them), and a split left empty is dropped, each with a warning."""
    kind = args.data_kind  # the task's examples, or preference pairs (dpo, orpo)
    splits = Splits(train=read_split(args.train_file, kind, args.columns, "train"))
    if args.validation_file:
        splits.validation = read_split(args.validation_file, kind, args.columns, "validation")
    if args.test_file:
        splits.test = read_split(args.test_file, kind, args.columns, "test")
    if args.task == "text-classification":
        known = {example["label"] for example in splits.train}
        splits.validation = _known_labels(splits.validation, known, "validation")
        splits.test = _known_labels(splits.test, known, "test")
    return splits


def _known_labels(split: Split | None, known: set[str], role: str) -> Split | None:
    if split is None:
        return None
    keep = [i for i, example in enumerate(split) if example["label"] in known]
    if len(keep) == len(split):
        return split
    unseen = sorted({example["label"] for example in split} - known)
    log.warning(
        "%s data: %d examples have labels that never occur in training (%s); left out of the evaluation",
        role,
        len(split) - len(keep),
        ", ".join(repr(label) for label in unseen[:10]),
    )
    if not keep:
        log.warning("%s data: no example left to evaluate; the %s file is not used", role, role)
        return None
    return Split([split[i] for i in keep], path=split.path, lines=[split.lines[i] for i in keep])


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


def assistant_char_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], full: str
) -> list[tuple[int, int]]:
    """Character spans of `full` (the rendered conversation) that belong to the assistant turns trained on
    (every assistant message but those with ``"weight": 0``).

    Works with any chat template, with or without {% generation %} markers: the turn starts where the
    conversation rendered up to the generation prompt stops matching, and ends where the conversation
    rendered through the turn stops matching (that includes the end-of-turn token, so the model learns
    to stop). The contract refuses conversations that start with the assistant, so there is always a
    turn before the first reply to render.
    """
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        before = tokenizer.apply_chat_template(
            list(messages[:index]), tokenize=False, add_generation_prompt=True
        )
        through = tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False)
        start = _common_prefix(before, full)
        end = _common_prefix(through, full)
        if index == len(messages) - 1:
            end = len(full)  # trailing tokens after the last turn (EOS) are the model's to produce
        if end > start:
            spans.append((start, end))
    return spans


def tokenize_chat(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, mask_prompt: bool = True
) -> dict[str, list[int]]:
    """input_ids and labels for one conversation; with mask_prompt, every token outside the trained
    assistant turns is -100."""
    full: str = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = list(encoded["input_ids"])
        offsets = [tuple(o) for o in encoded["offset_mapping"]]
    else:
        input_ids = list(tokenizer(full, add_special_tokens=False)["input_ids"])
        offsets = []
    if not mask_prompt:
        return {"input_ids": input_ids, "labels": list(input_ids)}
    spans = assistant_char_spans(tokenizer, messages, full)
    labels = [IGNORE_INDEX] * len(input_ids)
    if offsets:
        # Only tokens wholly inside a turn: the matched prefix may end inside the next turn's first token.
        for position, (begin, stop) in enumerate(offsets):
            if any(start <= begin and stop <= end and begin < stop for start, end in spans):
                labels[position] = input_ids[position]
    else:
        # Slow tokenizers have no offsets: count the tokens of each rendered prefix instead.
        for start, end in spans:
            first = len(tokenizer(full[:start], add_special_tokens=False)["input_ids"])
            last = len(tokenizer(full[:end], add_special_tokens=False)["input_ids"])
            for position in range(first, min(last, len(input_ids))):
                labels[position] = input_ids[position]
    return {"input_ids": input_ids, "labels": labels}


def ensure_chat_template(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        log.warning("the tokenizer has no chat template; using a plain '### role:' template (saved with it)")
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE


def _template_errors() -> tuple[type[BaseException], ...]:
    """What a chat template raises for a conversation it refuses (raise_exception(), a bad role order)."""
    try:
        from jinja2 import TemplateError
    except ImportError:  # transformers brings jinja2 with its chat templates
        return (ValueError, TypeError, KeyError)
    return (TemplateError, ValueError, TypeError, KeyError)


def _where(records: Sequence[dict[str, Any]], index: int, name: str) -> str:
    return records.where(index) if isinstance(records, Split) else f"{name} example {index + 1}"


def chat_rows(
    records: Sequence[dict[str, Any]], tokenizer: Any, *, mask_prompt: bool, name: str
) -> list[dict[str, Any]]:
    """tokenize_chat of every conversation; one the model's chat template refuses is a UsageError with its
    line (a rule of that template, e.g. strictly alternating roles, that no data check can know)."""
    errors = _template_errors()
    rows = []
    for i, example in enumerate(records):
        try:
            rows.append(tokenize_chat(tokenizer, example["messages"], mask_prompt=mask_prompt))
        except errors as error:
            raise UsageError(
                f"{_where(records, i, name)}: the model's chat template cannot render this conversation: {error}"
            ) from error
    return rows


def causal_dataset(records: Sequence[dict[str, Any]], tokenizer: Any, args: Args, name: str) -> Any:
    """A datasets.Dataset for SFTTrainer: tokenized input_ids/labels (chat), text, or prompt+completion
    (the contract gives every example of a file the same shape)."""
    import datasets

    if args.task == "chat-completion":
        return datasets.Dataset.from_list(
            chat_rows(records, tokenizer, mask_prompt=args.mask_prompt, name=name)
        )
    if "prompt" in records[0]:
        return datasets.Dataset.from_dict(
            {"prompt": [r["prompt"] for r in records], "completion": [r["completion"] for r in records]}
        )
    return datasets.Dataset.from_dict({"text": [r["text"] for r in records]})


def preference_dataset(records: Sequence[dict[str, Any]]) -> Any:
    """A datasets.Dataset of {"prompt", "chosen", "rejected"} for DPOTrainer / ORPOTrainer: text, or message lists
    (TRL renders those with the chat template). The contract gives every pair an explicit prompt."""
    import datasets

    return datasets.Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records]
    )


def is_conversational_pairs(records: Sequence[dict[str, Any]]) -> bool:
    """Whether the pairs are message lists (one shape per file, so the first pair says)."""
    return bool(records) and isinstance(records[0]["chosen"], list)


def label_names(records: Sequence[dict[str, Any]], args: Args) -> list[str]:
    """Sorted label (or tag) names of the training examples, numbers numerically (the contract makes sure
    there are at least two)."""
    values: set[str] = set()
    if args.task == "text-classification":
        values.update(r["label"] for r in records)
    else:
        for record in records:
            values.update(record["tags"])

    def order(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return sorted(values, key=order)


def classification_dataset(
    records: Sequence[dict[str, Any]], tokenizer: Any, args: Args, label2id: dict[str, int], name: str
) -> Any:
    """Tokenized text (+ text_pair) with integer labels for AutoModelForSequenceClassification; examples
    with a label outside `label2id` are left out (with a warning): the model has no output for them."""
    import datasets

    rows = []
    for record in records:
        label = record["label"]
        if label not in label2id:
            continue
        encoded = tokenizer(
            record["text"], record["text_pair"], truncation=True, max_length=args.max_seq_length
        )
        rows.append(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": label2id[label],
            }
        )
    if len(rows) < len(records):
        log.warning(
            "%s: %d examples with labels the model does not know are left out", name, len(records) - len(rows)
        )
    return datasets.Dataset.from_list(rows)


def token_classification_dataset(
    records: Sequence[dict[str, Any]], tokenizer: Any, args: Args, label2id: dict[str, int], name: str
) -> Any:
    """Words joined by spaces, tokenized; each word's first token carries its tag, the rest -100 (so does
    a tag outside `label2id`, which only evaluation data can have)."""
    import datasets

    if not getattr(tokenizer, "is_fast", False):
        raise UsageError("token-classification needs a fast tokenizer (tokenizer.json)")
    rows = []
    unknown = 0
    for record in records:
        words, tags = record["tokens"], record["tags"]
        starts, position = [], 0
        for word in words:
            starts.append(position)
            position += len(word) + 1
        encoded = tokenizer(
            " ".join(words), truncation=True, max_length=args.max_seq_length, return_offsets_mapping=True
        )
        labels, seen = [], set()
        for begin, end in encoded["offset_mapping"]:
            word = _word_at(starts, begin) if end > begin else None
            if word is None or word in seen:
                labels.append(IGNORE_INDEX)
                continue
            seen.add(word)
            label = label2id.get(tags[word], IGNORE_INDEX)
            unknown += label == IGNORE_INDEX
            labels.append(label)
        rows.append(
            {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}
        )
    if unknown:
        log.warning("%s: %d tokens carry tags the model does not know; they are not scored", name, unknown)
    return datasets.Dataset.from_list(rows)


def _word_at(starts: list[int], char: int) -> int | None:
    # Byte-level BPE puts the separating space inside the next word's first token.
    for index in range(len(starts) - 1, -1, -1):
        if char >= starts[index] - 1:
            return index
    return None
