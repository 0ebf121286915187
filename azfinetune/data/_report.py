"""DataStats and DataReport: what a data-file validation found (its Issues and numbers), as objects, dicts and JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from azfinetune.errors import Issue, Severity

__all__ = ["DataReport", "DataStats", "LabelSummary", "TokenStats"]


@dataclass
class TokenStats:
    """Token counts over the valid examples.

    `method` is ``tokenizer:<name>`` when a real tokenizer counted them, else ``approx:<rule>``.
    Quantiles use the nearest-rank method (the median is the lower median), computed exactly from a
    histogram, so memory does not grow with the number of examples.
    """

    method: str
    counted: int = 0
    total: int = 0
    min: int | None = None
    median: int | None = None
    p95: int | None = None
    max: int | None = None
    mean: float | None = None
    max_seq_length: int | None = None
    over_max_seq_length: int | None = None
    epochs: float = 1.0
    # Tokens one epoch trains on: each example capped at max_seq_length (the trainer truncates), else total.
    tokens_per_epoch: int = 0
    training_tokens_estimate: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "counted": self.counted,
            "total": self.total,
            "min": self.min,
            "median": self.median,
            "p95": self.p95,
            "max": self.max,
            "mean": self.mean,
            "max_seq_length": self.max_seq_length,
            "over_max_seq_length": self.over_max_seq_length,
            "epochs": self.epochs,
            "tokens_per_epoch": self.tokens_per_epoch,
            "training_tokens_estimate": self.training_tokens_estimate,
        }


@dataclass
class LabelSummary:
    """Labels (text-classification) or tags (token-classification) seen in the file."""

    name: str  # "label" or "tag"
    distinct: int
    counts: dict[str, int]  # the most frequent ones, at most `top` of them
    singletons: int  # labels seen exactly once
    truncated: bool = False  # more distinct values than were tracked

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distinct": self.distinct,
            "counts": dict(self.counts),
            "singletons": self.singletons,
            "truncated": self.truncated,
        }


@dataclass
class DataStats:
    """What is in the file: sizes, counts, shapes and tokens."""

    file_format: str = "jsonl"
    bytes: int = 0
    lines: int = 0
    examples: int = 0  # non-blank records (lines or rows)
    valid_examples: int = 0  # records with no error
    blank_lines: int = 0
    bom: bool = False
    crlf_lines: int = 0
    final_newline: bool = True
    duplicates: int = 0  # records identical to an earlier record
    columns: dict[str, str] = field(default_factory=dict)  # logical column -> name in the file
    # The field sets of the records, "a,b,c" -> count; the most common one is the file's shape.
    shapes: dict[str, int] = field(default_factory=dict)
    labels: LabelSummary | None = None
    tokens: TokenStats = field(default_factory=lambda: TokenStats(method="approx:chars/4"))
    # Preference pairs (dpo, orpo): each side counted as the trainer sees it, prompt + chosen and prompt +
    # rejected; `tokens` then counts both sequences of every pair (the trainer runs both).
    sides: dict[str, TokenStats] | None = None

    @property
    def shape(self) -> str | None:
        """The most common field set, e.g. ``"messages"`` or ``"completion,prompt"``."""
        if not self.shapes:
            return None
        return max(self.shapes.items(), key=lambda item: (item[1], item[0]))[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_format": self.file_format,
            "bytes": self.bytes,
            "lines": self.lines,
            "examples": self.examples,
            "valid_examples": self.valid_examples,
            "blank_lines": self.blank_lines,
            "bom": self.bom,
            "crlf_lines": self.crlf_lines,
            "final_newline": self.final_newline,
            "duplicates": self.duplicates,
            "columns": dict(self.columns),
            "shape": self.shape,
            "shapes": dict(self.shapes),
            "labels": self.labels.to_dict() if self.labels else None,
            "tokens": self.tokens.to_dict(),
            **({"sides": {k: v.to_dict() for k, v in self.sides.items()}} if self.sides else {}),
        }


@dataclass
class DataReport:
    """The result of validating one data file.

    `errors`/`warnings` hold at most `max_errors_per_kind` issues of each code, in line order
    (file-level issues first); `error_counts`/`warning_counts` count every issue by its `code`, including
    those beyond the cap. `ok` is true when there are no errors (warnings do not fail a file). Each issue is
    an `azfinetune.errors.Issue` with `file` = the data file, `line` (1-based; Parquet: the row), `path` =
    the field inside the example (``messages[2].role``, "" for the whole file) and a stable `code`.
    """

    path: str
    task: str
    stats: DataStats = field(default_factory=DataStats)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warning_counts: dict[str, int] = field(default_factory=dict)
    max_errors_per_kind: int = 20

    @property
    def ok(self) -> bool:
        return not self.error_counts

    @property
    def issues(self) -> list[Issue]:
        """Errors then warnings."""
        return [*self.errors, *self.warnings]

    def add(self, issue: Issue) -> None:
        """Record an issue, keeping at most `max_errors_per_kind` of each code but counting all."""
        counts = self.error_counts if issue.severity == "error" else self.warning_counts
        code = issue.code or "data"
        seen = counts.get(code, 0)
        counts[code] = seen + 1
        if seen < self.max_errors_per_kind:
            (self.errors if issue.severity == "error" else self.warnings).append(issue)

    def extend(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            self.add(issue)
        self.sort()

    def sort(self) -> None:
        """File-level issues first, then by line (stable within a line)."""
        key = _issue_order
        self.errors.sort(key=key)
        self.warnings.sort(key=key)

    def omitted(self, severity: Severity = "error") -> dict[str, int]:
        """Per code, how many issues were counted but not kept."""
        counts = self.error_counts if severity == "error" else self.warning_counts
        kept: dict[str, int] = {}
        for issue in self.errors if severity == "error" else self.warnings:
            code = issue.code or "data"
            kept[code] = kept.get(code, 0) + 1
        return {code: n - kept.get(code, 0) for code, n in counts.items() if n > kept.get(code, 0)}

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        n_errors = sum(self.error_counts.values())
        n_warnings = sum(self.warning_counts.values())
        verdict = "ok" if self.ok else "failed"

        def counted(word: str, total: int, counts: dict[str, int]) -> str:
            # Every count says what it counts: "147 warnings (duplicate_example ×147)", not a bare number.
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items()))
            text = f"{total} {word}{'s' if total != 1 else ''}"
            return f"{text} ({kinds})" if kinds else text

        return (
            f"{self.path}: {verdict} — {self.stats.examples} examples, "
            f"{counted('error', n_errors, self.error_counts)}, {counted('warning', n_warnings, self.warning_counts)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what `azfinetune data validate --json` prints): path, task, ok, error_counts and
        warning_counts (code -> count), errors and warnings (Issue.to_dict: severity, path, message, code,
        file, line, column, hint, byte_offset; unknown ones left out), max_errors_per_kind, stats."""
        return {
            "path": self.path,
            "task": self.task,
            "ok": self.ok,
            "error_counts": dict(sorted(self.error_counts.items())),
            "warning_counts": dict(sorted(self.warning_counts.items())),
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "max_errors_per_kind": self.max_errors_per_kind,
            "stats": self.stats.to_dict(),
        }

    def to_json(self, *, indent: bool = True) -> str:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(self.to_dict(), option=option).decode()


def _issue_order(issue: Issue) -> tuple[int, int]:
    return (0, 0) if issue.line is None else (1, issue.line)
