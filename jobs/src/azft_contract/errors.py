"""What reading a data file can find: ContractError (the file cannot be read at all) and Findings (per line)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ContractError", "Finding", "Findings", "Sink"]


class ContractError(ValueError):
    """The file cannot be checked at all: missing, an unknown task, a format the task does not take, Parquet
    without pyarrow. Everything wrong *inside* a readable file is a Finding instead."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Sink(Protocol):
    """Receives every problem a reader finds, in file order. azfinetune's validator turns each into its
    `Issue`; the job steps collect them in `Findings`."""

    def __call__(
        self,
        code: str,
        severity: str,
        line: int | None,
        message: str,
        path: str | None = None,
        hint: str | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a data file. `code` is stable snake_case; `line` is 1-based as editors show it (Parquet:
    the row); `path` is the field inside the example (``messages[2].role``); `column` is the 1-based
    character in the line; `byte_offset` points into the file."""

    code: str
    severity: str
    line: int | None
    message: str
    path: str | None = None
    hint: str | None = None
    column: int | None = None
    byte_offset: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self, file: str | None = None) -> dict[str, Any]:
        """The keys of azfinetune's Issue.to_dict: severity, path, message, then the known ones of code, file,
        line, column, hint, byte_offset."""
        out: dict[str, Any] = {"severity": self.severity, "path": self.path or "", "message": self.message}
        values = {
            "code": self.code,
            "file": file,
            "line": self.line,
            "column": self.column,
            "hint": self.hint,
            "byte_offset": self.byte_offset,
        }
        out.update((key, value) for key, value in values.items() if value is not None)
        return out

    def text(self, file: str | None = None) -> str:
        """``file:line:column: path: message [code] (hint)``, the parts that are known: how azfinetune's
        Issue prints, so the job's errors read like `data validate`'s."""
        if file is None and self.line is not None:
            where = f"line {self.line}"
        else:
            where = ":".join(str(p) for p in (file, self.line, self.column) if p is not None)
        head = f"{where}: " if where else ""
        key = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{head}{key}{self.message} [{self.code}]{hint}"

    def __str__(self) -> str:
        return self.text()


class Findings:
    """A Sink that keeps the first `max_per_code` findings of each code and counts them all."""

    def __init__(self, max_per_code: int = 20) -> None:
        self.max_per_code = max_per_code
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.error_counts: dict[str, int] = {}
        self.warning_counts: dict[str, int] = {}

    def __call__(
        self,
        code: str,
        severity: str,
        line: int | None,
        message: str,
        path: str | None = None,
        hint: str | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
    ) -> None:
        counts = self.error_counts if severity == "error" else self.warning_counts
        seen = counts.get(code, 0)
        counts[code] = seen + 1
        if seen < self.max_per_code:
            found = Finding(code, severity, line, message, path, hint, column, byte_offset)
            (self.errors if severity == "error" else self.warnings).append(found)

    @property
    def ok(self) -> bool:
        return not self.error_counts

    def __iter__(self) -> Iterator[Finding]:
        """Errors then warnings, each in line order (file-level findings first)."""
        order = _finding_order
        return iter([*sorted(self.errors, key=order), *sorted(self.warnings, key=order)])


def _finding_order(finding: Finding) -> tuple[int, int]:
    return (0, 0) if finding.line is None else (1, finding.line)
