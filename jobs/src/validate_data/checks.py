"""Self-contained data checks (no azfinetune install needed): one pass per file, line-level issues per task.

The job image does not carry the azfinetune package, so this is what runs on Azure ML; where azfinetune is
importable (a local run) its fuller validator is used instead (see cli.py). Column names follow the training
entry point: the logical key itself (`text`, `label`, `tokens`, `tags`, ...) unless `--column KEY=NAME`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_PER_KIND = 20
MIN_EXAMPLES = 10
ROLES = ("system", "user", "assistant", "tool", "developer", "function")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


@dataclass
class Issue:
    kind: str
    message: str
    line: int | None = None
    field: str | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "line": self.line,
            "field": self.field,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        key = f"{self.field}: " if self.field else ""
        return f"{where}{key}{self.message} [{self.kind}]"


@dataclass
class FileReport:
    path: str
    task: str
    examples: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not any(self.counts[kind] for kind in self.counts if not kind.startswith("warning:"))

    def add(self, issue: Issue) -> None:
        key = issue.kind if issue.severity == "error" else f"warning:{issue.kind}"
        self.counts[key] += 1
        if self.counts[key] <= MAX_PER_KIND:
            (self.errors if issue.severity == "error" else self.warnings).append(issue)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "task": self.task,
            "ok": self.ok,
            "examples": self.examples,
            "error_counts": {k: v for k, v in sorted(self.counts.items()) if not k.startswith("warning:")},
            "warning_counts": {k[8:]: v for k, v in sorted(self.counts.items()) if k.startswith("warning:")},
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "labels": dict(self.labels.most_common(50)) if self.labels else None,
        }


def data_file(path: Path) -> Path:
    """The file itself, or the one data file inside a uri_folder input."""
    if path.is_file():
        return path
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    if len(files) != 1:
        raise FileNotFoundError(f"{path}: expected one {'/'.join(DATA_SUFFIXES)} file, found {len(files)}")
    return files[0]


def _records(path: Path, report: FileReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line, record) for every parsable example; unparsable lines become issues."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        report.add(Issue("encoding", f"not UTF-8 (byte offset {error.start})", line=line))
        return
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        for row in reader:
            yield reader.line_num, dict(row)
        return
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            report.add(Issue("invalid_json", f"not valid JSON: {error.msg}", line=error.lineno))
            return
        for index, item in enumerate(items, start=1):
            if isinstance(item, dict):
                yield index, item
            else:
                report.add(Issue("not_an_object", "an example must be a JSON object", line=index))
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            report.add(
                Issue("invalid_json", f"not valid JSON: {error.msg} (column {error.colno})", line=number)
            )
            continue
        if not isinstance(record, dict):
            report.add(Issue("not_an_object", "an example must be a JSON object", line=number))
            continue
        yield number, record


def _nonempty_text(record: dict[str, Any], column: str, line: int, report: FileReport) -> bool:
    value = record.get(column)
    if value is None:
        report.add(Issue("missing_column", f"no {column!r} column", line=line, field=column))
        return False
    if not isinstance(value, str) or not value.strip():
        report.add(Issue("empty_text", f"{column!r} must be non-empty text", line=line, field=column))
        return False
    return True


def _check_chat(record: dict[str, Any], line: int, columns: dict[str, str], report: FileReport) -> None:
    column = columns.get("messages", "messages")
    messages = record.get(column)
    if isinstance(messages, str):
        with contextlib.suppress(json.JSONDecodeError):
            messages = json.loads(messages)
    if not isinstance(messages, list) or not messages:
        report.add(
            Issue(
                "missing_messages",
                f"{column!r} must be a non-empty list of messages",
                line=line,
                field=column,
            )
        )
        return
    for index, message in enumerate(messages):
        where = f"{column}[{index}]"
        if not isinstance(message, dict):
            report.add(Issue("message_not_object", "a message must be an object", line=line, field=where))
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            report.add(
                Issue(
                    "unknown_role",
                    f"role {role!r} is not one of {', '.join(ROLES)}",
                    line=line,
                    field=f"{where}.role",
                )
            )
        if not isinstance(content, str) or (not content.strip() and role == "assistant"):
            report.add(
                Issue("empty_content", "content must be non-empty text", line=line, field=f"{where}.content")
            )
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        report.add(
            Issue("no_assistant", "no assistant message: nothing to learn from", line=line, field=column)
        )
    elif roles[-1] != "assistant":
        report.add(
            Issue("last_not_assistant", "the last message is not from the assistant; it is not trained on",
                  line=line, field=column, severity="warning")
        )  # fmt: skip


def _check_qa(record: dict[str, Any], line: int, columns: dict[str, str], report: FileReport) -> None:
    question, context, answers = (columns.get(k, k) for k in ("question", "context", "answers"))
    ok = _nonempty_text(record, question, line, report) & _nonempty_text(record, context, line, report)
    value = record.get(answers)
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if not isinstance(value, dict) or "text" not in value or "answer_start" not in value:
        report.add(
            Issue(
                "bad_answers",
                f"{answers!r} must be an object with text and answer_start",
                line=line,
                field=answers,
            )
        )
        return
    texts = value["text"] if isinstance(value["text"], list) else [value["text"]]
    starts = value["answer_start"] if isinstance(value["answer_start"], list) else [value["answer_start"]]
    if len(texts) != len(starts):
        report.add(
            Issue(
                "bad_answers",
                "answers.text and answers.answer_start differ in length",
                line=line,
                field=answers,
            )
        )
        return
    if not ok:
        return
    text = record[context]
    for answer, start in zip(texts, starts, strict=True):
        if not isinstance(start, int) or text[start : start + len(str(answer))] != answer:
            report.add(
                Issue("answer_not_in_context", f"answer {answer!r} is not at offset {start} of the context",
                      line=line, field=f"{answers}.answer_start")
            )  # fmt: skip


def _check_record(
    task: str, record: dict[str, Any], line: int, columns: dict[str, str], report: FileReport
) -> None:
    col = lambda key: columns.get(key, key)  # noqa: E731 - tiny local alias keeps the table below readable
    if task == "chat-completion":
        _check_chat(record, line, columns, report)
    elif task == "text-completion":
        if col("prompt") in record or col("completion") in record:
            _nonempty_text(record, col("prompt"), line, report)
            _nonempty_text(record, col("completion"), line, report)
        else:
            _nonempty_text(record, col("text"), line, report)
    elif task == "text-classification":
        _nonempty_text(record, col("text"), line, report)
        if "text_pair" in columns:
            _nonempty_text(record, col("text_pair"), line, report)
        label = record.get(col("label"))
        if label is None or (isinstance(label, str) and not label.strip()):
            report.add(Issue("missing_label", f"no {col('label')!r} label", line=line, field=col("label")))
        else:
            report.labels[str(label)] += 1
    elif task == "token-classification":
        tokens, tags = record.get(col("tokens")), record.get(col("tags"))
        if not isinstance(tokens, list) or not tokens:
            report.add(
                Issue(
                    "bad_tokens",
                    f"{col('tokens')!r} must be a non-empty list",
                    line=line,
                    field=col("tokens"),
                )
            )
        elif not isinstance(tags, list) or len(tags) != len(tokens):
            report.add(
                Issue("tags_length", f"{col('tags')!r} must be a list as long as {col('tokens')!r} ({len(tokens)})",
                      line=line, field=col("tags"))
            )  # fmt: skip
        else:
            report.labels.update(str(tag) for tag in tags)
    elif task == "question-answering":
        _check_qa(record, line, columns, report)
    elif task in ("summarization", "translation"):
        source = col("source_lang") if task == "translation" and "source_lang" in columns else col("source")
        target = col("target_lang") if task == "translation" and "target_lang" in columns else col("target")
        _nonempty_text(record, source, line, report)
        _nonempty_text(record, target, line, report)
    else:
        raise ValueError(f"unknown task {task!r}")


def check_file(path: Path, task: str, columns: dict[str, str]) -> FileReport:
    """Every issue of one data file for a task."""
    report = FileReport(path=str(path), task=task)
    try:
        file = data_file(path)
    except FileNotFoundError as error:
        report.add(Issue("no_file", str(error)))
        return report
    for line, record in _records(file, report):
        report.examples += 1
        _check_record(task, record, line, columns, report)
    if report.examples == 0:
        report.add(Issue("no_examples", "the file holds no examples"))
    elif report.examples < MIN_EXAMPLES:
        report.add(
            Issue(
                "few_examples",
                f"only {report.examples} examples (fewer than {MIN_EXAMPLES})",
                severity="warning",
            )
        )
    if task == "text-classification":
        for label, count in report.labels.items():
            if count == 1:
                report.add(
                    Issue(
                        "label_seen_once",
                        f"label {label!r} appears once",
                        field=columns.get("label", "label"),
                        severity="warning",
                    )
                )
    return report
