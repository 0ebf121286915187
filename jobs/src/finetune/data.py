"""Reading the data files and turning records into model inputs for each task (chat, text, classification)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.args import Args
from finetune.errors import UsageError

log = logging.getLogger("finetune")

IGNORE_INDEX = -100
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_ROLES = ("system", "user", "assistant", "tool", "developer", "function")

# Used only when the model's tokenizer has no chat template (base models): plain role headers, EOS after
# each assistant turn so the model learns to stop.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] + ':\n' + message['content'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}"
)


def _data_file(path: Path) -> Path:
    if path.is_file():
        return path
    # A uri_folder input: take its one data file.
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _DATA_SUFFIXES)
    if len(files) != 1:
        raise UsageError(f"{path}: expected exactly one {'/'.join(_DATA_SUFFIXES)} file in the folder")
    return files[0]


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL/JSON/CSV/Parquet file; a broken line is a UsageError that names the line."""
    file = _data_file(path)
    suffix = file.suffix.lower()
    records: list[dict[str, Any]] = []
    if suffix == ".csv":
        with file.open(encoding="utf-8", newline="") as handle:
            records = [dict(row) for row in csv.DictReader(handle)]
    elif suffix == ".parquet":
        import datasets

        records = list(datasets.Dataset.from_parquet(str(file)))  # type: ignore[arg-type]
    else:
        text = file.read_text(encoding="utf-8-sig")
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{file}: not valid JSON ({exc})") from exc
            records = list(loaded)
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{file}:{number}: not valid JSON ({exc.msg})") from exc
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UsageError(f"{file}: record {index + 1} is not a JSON object")
    if not records:
        raise UsageError(f"{file}: no records")
    return records


@dataclass
class Splits:
    """The records of each data file, read and checked before any model is loaded."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]] | None = None
    test: list[dict[str, Any]] | None = None

    def named(self) -> list[tuple[str, list[dict[str, Any]]]]:
        pairs = [("train", self.train), ("validation", self.validation), ("test", self.test)]
        return [(name, records) for name, records in pairs if records is not None]


def load_splits(args: Args) -> Splits:
    """Read every data file and check each record for the task: bad data fails in a second, not after loading."""
    splits = Splits(
        train=read_records(args.train_file),
        validation=read_records(args.validation_file) if args.validation_file else None,
        test=read_records(args.test_file) if args.test_file else None,
    )
    for name, records in splits.named():
        for index, record in enumerate(records):
            _check_record(record, args, f"{name} record {index + 1}")
    return splits


def _check_record(record: dict[str, Any], args: Args, where: str) -> None:
    if args.task == "chat-completion":
        chat_messages(record, args, where)
    elif args.task == "text-completion":
        if args.column("text") in record:
            _require(record, args.column("text"), where)
        else:
            _require(record, args.column("prompt"), where)
            _require(record, args.column("completion"), where)
    elif args.task == "text-classification":
        _require(record, args.column("text"), where)
        _require(record, args.column("label"), where)
    elif args.task == "token-classification":
        words = _require(record, args.column("tokens"), where)
        tags = _require(record, args.column("tags"), where)
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags) or not words:
            raise UsageError(
                f"{where}: {args.column('tokens')!r} and {args.column('tags')!r} must be non-empty lists "
                "of equal length"
            )


def _require(record: dict[str, Any], column: str, where: str) -> Any:
    if column not in record or record[column] is None:
        raise UsageError(f"{where}: missing column {column!r} (map another with --column KEY=NAME)")
    return record[column]


def chat_messages(record: dict[str, Any], args: Args, where: str) -> list[dict[str, str]]:
    """The conversation of one chat record: `messages` (or `conversations`), else prompt + completion."""
    column = args.column("messages")
    raw: Any = record.get(column)
    if raw is None and column == "messages":
        raw = record.get("conversations")
    if raw is None and args.column("prompt") in record and args.column("completion") in record:
        prompt, completion = record[args.column("prompt")], record[args.column("completion")]
        prompt_part = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion_part = (
            completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        )
        raw = [*prompt_part, *completion_part]
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)  # a CSV cell that holds the JSON list
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: column {column!r} is not a JSON list of messages") from exc
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{where}: expected a non-empty list of messages in column {column!r}")
    messages: list[dict[str, str]] = []
    for message in raw:
        if not isinstance(message, dict):
            raise UsageError(f"{where}: every message must be an object with role and content")
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        role = {"human": "user", "gpt": "assistant"}.get(str(role), role)
        if role not in _ROLES or not isinstance(content, str):
            raise UsageError(f"{where}: a message needs a role ({', '.join(_ROLES)}) and string content")
        messages.append({"role": str(role), "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise UsageError(f"{where}: the conversation has no assistant message to learn from")
    return messages


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


def assistant_char_spans(
    tokenizer: Any, messages: Sequence[dict[str, str]], full: str
) -> list[tuple[int, int]]:
    """Character spans of `full` (the rendered conversation) that belong to assistant turns.

    Works with any chat template, with or without {% generation %} markers: the turn starts where the
    conversation rendered up to the generation prompt stops matching, and ends where the conversation
    rendered through the turn stops matching (that includes the end-of-turn token, so the model learns
    to stop).
    """
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
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
    tokenizer: Any, messages: Sequence[dict[str, str]], *, mask_prompt: bool = True
) -> dict[str, list[int]]:
    """input_ids and labels for one conversation; with mask_prompt, every non-assistant token is -100."""
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


def causal_dataset(records: list[dict[str, Any]], tokenizer: Any, args: Args, name: str) -> Any:
    """A datasets.Dataset for SFTTrainer: tokenized input_ids/labels (chat), text, or prompt+completion."""
    import datasets

    if args.task == "chat-completion":
        rows = [
            tokenize_chat(
                tokenizer, chat_messages(record, args, f"{name} record {i + 1}"), mask_prompt=args.mask_prompt
            )
            for i, record in enumerate(records)
        ]
        return datasets.Dataset.from_list(rows)
    text_col, prompt_col, completion_col = (
        args.column("text"),
        args.column("prompt"),
        args.column("completion"),
    )
    if text_col in records[0]:
        texts = [str(_require(r, text_col, f"{name} record {i + 1}")) for i, r in enumerate(records)]
        return datasets.Dataset.from_dict({"text": texts})
    if prompt_col in records[0] and completion_col in records[0]:
        prompts = [str(_require(r, prompt_col, f"{name} record {i + 1}")) for i, r in enumerate(records)]
        completions = [
            str(_require(r, completion_col, f"{name} record {i + 1}")) for i, r in enumerate(records)
        ]
        return datasets.Dataset.from_dict({"prompt": prompts, "completion": completions})
    raise UsageError(
        f"{name}: text-completion needs a {text_col!r} column or {prompt_col!r} + {completion_col!r} columns"
    )


def _label_key(value: Any) -> str:
    return str(value)


def label_names(records: list[dict[str, Any]], args: Args) -> list[str]:
    """Sorted label names found in the training records (numbers sort numerically)."""
    if args.task == "text-classification":
        values = {
            _label_key(_require(r, args.column("label"), f"train record {i + 1}"))
            for i, r in enumerate(records)
        }
    else:
        values = set()
        for i, record in enumerate(records):
            tags = _require(record, args.column("tags"), f"train record {i + 1}")
            values.update(_label_key(t) for t in tags)
    if len(values) < 2:
        raise UsageError(f"{args.task}: the training data has fewer than two distinct labels")

    def order(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return sorted(values, key=order)


def classification_dataset(
    records: list[dict[str, Any]], tokenizer: Any, args: Args, label2id: dict[str, int], name: str
) -> Any:
    """Tokenized text (+ text_pair) with integer labels for AutoModelForSequenceClassification."""
    import datasets

    text_col, pair_col, label_col = args.column("text"), args.column("text_pair"), args.column("label")
    rows = []
    for i, record in enumerate(records):
        where = f"{name} record {i + 1}"
        text = str(_require(record, text_col, where))
        pair = record.get(pair_col)
        label = _label_key(_require(record, label_col, where))
        if label not in label2id:
            raise UsageError(f"{where}: label {label!r} does not occur in the training data")
        encoded = tokenizer(
            text, str(pair) if pair is not None else None, truncation=True, max_length=args.max_seq_length
        )
        rows.append(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": label2id[label],
            }
        )
    return datasets.Dataset.from_list(rows)


def token_classification_dataset(
    records: list[dict[str, Any]], tokenizer: Any, args: Args, label2id: dict[str, int], name: str
) -> Any:
    """Words joined by spaces, tokenized; each word's first token carries its tag, the rest -100."""
    import datasets

    if not getattr(tokenizer, "is_fast", False):
        raise UsageError("token-classification needs a fast tokenizer (tokenizer.json)")
    tokens_col, tags_col = args.column("tokens"), args.column("tags")
    rows = []
    for i, record in enumerate(records):
        where = f"{name} record {i + 1}"
        words = [str(w) for w in _require(record, tokens_col, where)]
        tags = [_label_key(t) for t in _require(record, tags_col, where)]
        if len(words) != len(tags) or not words:
            raise UsageError(
                f"{where}: {tokens_col!r} and {tags_col!r} must be non-empty lists of equal length"
            )
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
            if tags[word] not in label2id:
                raise UsageError(f"{where}: tag {tags[word]!r} does not occur in the training data")
            labels.append(label2id[tags[word]])
        rows.append(
            {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}
        )
    return datasets.Dataset.from_list(rows)


def _word_at(starts: list[int], char: int) -> int | None:
    # Byte-level BPE puts the separating space inside the next word's first token.
    for index in range(len(starts) - 1, -1, -1):
        if char >= starts[index] - 1:
            return index
    return None
