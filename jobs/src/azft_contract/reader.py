"""One pass over one data file for one task: every record read, checked and reported with its line.

`check_file` is what every job step runs (validate_data, finetune, evaluate_model) and `FileReader` is what
azfinetune's validator extends (bulk paths, duplicates, token counts), so both decide the same verdict,
lines and example counts for the same file and columns. `detect_columns` is the cheap part: the column
names the reader binds from the header or first record, to pass to the job as `--column KEY=NAME`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft_contract.errors import Findings, Sink
from azft_contract.examples import Checker, LabelCounts, make_checker
from azft_contract.formats import (
    UTF8_BOM,
    JSONValueError,
    check_format,
    decode_json,
    detect_format,
    resolve_data_file,
    unsupported_encoding,
)
from azft_contract.lines import BATCH_SIZE, CHUNK_SIZE, FileInfo, LineBatch, iter_line_batches
from azft_contract.tables import Record, iter_csv_records, iter_json_array, iter_parquet_records
from azft_contract.tasks import normalize_task

__all__ = [
    "MIN_EXAMPLES",
    "SERVERLESS_MAX_BYTES",
    "FileReader",
    "FileResult",
    "check_file",
    "detect_columns",
]

# "The file must be less than 512 MB in size" (Azure fine-tuning docs), read as MiB.
SERVERLESS_MAX_BYTES = 512 * 1024 * 1024
MIN_EXAMPLES = 10  # "Fine tuning jobs will not proceed without at least 10 training examples"
_ARRAY_SNIFF = 1 << 16  # bytes read to tell a .json array from JSON Lines
_UTF8_HINT = "save the file as UTF-8; this byte looks like Latin-1/Windows-1252 text"


def _ignore(
    code: str,
    severity: str,
    line: int | None,
    message: str,
    path: str | None = None,
    hint: str | None = None,
    column: int | None = None,
    byte_offset: int | None = None,
) -> None:
    return None


class FileReader:
    """Reads one file for one task, reporting every finding to `sink`.

    Subclasses add work, never verdicts: `read_batch` may take a batch of lines some faster way when it
    can prove the result equal; `on_record`/`on_shape` see every record that is not blank.
    """

    def __init__(
        self,
        task: str,
        columns: Mapping[str, str] | None = None,
        *,
        sink: Sink,
        serverless: bool = False,
        chunk_size: int = CHUNK_SIZE,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.task = normalize_task(task)
        self.sink = sink
        self.serverless = serverless
        self.checker: Checker = make_checker(self.task, sink, columns, serverless=serverless)
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.path: Path | None = None
        self.file_format = "jsonl"
        self.info = FileInfo()
        self.examples = 0  # records that are not blank
        self.valid_examples = 0  # records without errors
        self.blank_lines = 0
        self.first_crlf_line: int | None = None
        self.array = False  # a .json file holding one JSON array
        self.stop = False  # stop reading: the file cannot be read further
        self.unreadable = False  # stopped by a file-level error (no "no examples" on top of it)
        self.bind_only = False  # stop once the columns are bound (detect_columns)

    # -- hooks for subclasses --------------------------------------------------------------------------
    def on_record(self, line: int, key: bytes | int, example: dict[str, Any] | None) -> None:
        """Every record that is not blank, in file order: `key` is the raw line (JSON Lines) or a hash of
        the raw record (tables, arrays; 0 when it could not be read); `example` is set when it is valid."""

    def on_shape(self, names: Iterable[str]) -> None:
        """The field names of every record that parsed (a table's header once per row)."""

    def decode_line(self, raw: bytes) -> Any:
        """One line's JSON value; subclasses may decode faster when the value is provably the same.
        Raises ValueError (UnicodeDecodeError, json.JSONDecodeError, JSONValueError)."""
        return decode_json(raw.decode("utf-8"))

    def read_batch(self, batch: LineBatch) -> None:
        """Check a batch of JSON Lines; subclasses may take clean batches a faster way."""
        self.read_lines(batch, 0, batch.count)

    # -- findings --------------------------------------------------------------------------------------
    def issue(
        self,
        code: str,
        line: int | None,
        message: str,
        *,
        severity: str = "error",
        path: str | None = None,
        hint: str | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
    ) -> None:
        self.sink(code, severity, line, message, path, hint, column, byte_offset)

    # -- reading ---------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> None:
        """Read and check the whole file; ContractError when it cannot be read at all."""
        file = resolve_data_file(Path(path))
        file_format = detect_format(file)
        check_format(self.task, file_format, file)
        self.path, self.file_format = file, file_format
        self.info = FileInfo(size=file.stat().st_size)
        self.checker.tabular = file_format in ("csv", "tsv")
        if file_format == "parquet":
            self.table(iter_parquet_records(file, self.info), header_line=None)
        else:
            with file.open("rb") as stream:
                head = stream.read(_ARRAY_SNIFF)
                encoding = unsupported_encoding(head)
                if encoding is not None:
                    self._unsupported(encoding)
                elif file_format == "json" and head.removeprefix(UTF8_BOM).lstrip(b" \t\r\n")[:1] == b"[":
                    self.array = True
                    self.json_array(iter_json_array(head + stream.read(), self.info))
                else:
                    stream.seek(0)
                    if file_format in ("csv", "tsv"):
                        delimiter = "," if file_format == "csv" else "\t"
                        self.table(iter_csv_records(stream, self.info, delimiter=delimiter), header_line=1)
                    else:
                        # A small file needs no 8 MiB buffer (the results never depend on the chunk size).
                        chunk_size = min(self.chunk_size, max(64, self.info.size + 1))
                        self.json_lines(iter_line_batches(stream, self.info, chunk_size, self.batch_size))
        if not self.bind_only:
            self.finish()

    def _unsupported(self, encoding: str) -> None:
        self.issue(
            "unsupported_encoding",
            1,
            f"the file is {encoding} (from its byte-order mark); data files are read as UTF-8",
            hint="save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 in > out",
        )
        self.stop = self.unreadable = True

    # -- JSON Lines ------------------------------------------------------------------------------------
    def json_lines(self, batches: Iterable[LineBatch]) -> None:
        for batch in batches:
            if self.first_crlf_line is None and batch.has_cr:
                self._note_crlf(batch)
            self.read_batch(batch)
            if self.stop:
                return

    def _note_crlf(self, batch: LineBatch) -> None:
        for i, line in enumerate(batch.lines):
            if line.endswith(b"\r"):
                self.first_crlf_line = batch.first_line + i
                return

    def read_lines(self, batch: LineBatch, start: int, end: int) -> None:
        """Lines `start` to `end` of a batch, one at a time, explaining every problem."""
        lines = batch.lines
        offset = batch.first_offset + sum(map(len, lines[:start])) + start
        checker = self.checker
        for index in range(start, end):
            raw = lines[index]
            line_no = batch.first_line + index
            line_offset = offset
            offset += len(raw) + 1
            if not raw.strip():
                self.blank_lines += 1
                self.issue(
                    "blank_line",
                    line_no,
                    "blank line",
                    severity="warning",
                    hint="remove blank lines: some JSON Lines loaders stop at them",
                )
                continue
            self.examples += 1
            try:
                obj = self.decode_line(raw)
            except ValueError as error:  # UnicodeDecodeError, json.JSONDecodeError, JSONValueError
                self._bad_line(raw, line_no, line_offset, error, batch.unterminated and index == end - 1)
                self.on_record(line_no, raw, None)
                if self.stop:
                    return
                continue
            if type(obj) is not dict:
                hint = 'every line must be one JSON object, e.g. {"messages": [...]}'
                if isinstance(obj, list) and self.examples == 1:
                    hint = "the file looks like one JSON array; write one object per line (jq -c '.[]' in > out.jsonl)"
                self.issue(
                    "not_an_object",
                    line_no,
                    f"the line is a JSON {_json_kind(obj)}, not an object",
                    hint=hint,
                )
                self.on_record(line_no, raw, None)
                continue
            if not checker.bound:
                checker.bind(obj.keys(), obj)
                if self.bind_only:
                    self.stop = True
                    return
            self.on_shape(obj)
            example = checker.check(obj, line_no)
            if example is not None:
                self.valid_examples += 1
            self.on_record(line_no, raw, example)

    def _bad_line(
        self, raw: bytes, line_no: int, line_offset: int, error: ValueError, last_unterminated: bool
    ) -> None:
        stripped = raw.strip()
        if isinstance(error, UnicodeDecodeError):
            byte = raw[error.start]
            where = line_offset + error.start
            self.issue(
                "invalid_utf8",
                line_no,
                f"invalid UTF-8 byte 0x{byte:02x} at byte offset {where} (column {error.start + 1})",
                byte_offset=where,
                column=error.start + 1,
                hint=_UTF8_HINT,
            )
            return
        if stripped.startswith(UTF8_BOM):
            self.issue(
                "stray_bom",
                line_no,
                "a UTF-8 byte-order mark in the middle of the file",
                hint="files were probably concatenated; remove the BOM bytes (EF BB BF) from this line",
            )
            return
        if self.examples == 1 and stripped in (b"[", b"{"):
            self.issue(
                "not_json_lines",
                line_no,
                "the file is a pretty-printed JSON document, not JSON Lines; stopped reading",
                hint="write one object per line, e.g. jq -c '.[]' in.json > out.jsonl (or name it .json)",
            )
            self.stop = self.unreadable = True
            return
        assert isinstance(error, json.JSONDecodeError | JSONValueError)
        if isinstance(error, JSONValueError) and error.code != "invalid_json":
            self.issue(
                error.code, line_no, error.msg, column=error.colno, hint="escape the text as UTF-8 or drop it"
            )
            return
        text = raw.decode("utf-8")
        at_end = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        if last_unterminated and isinstance(error, json.JSONDecodeError) and at_end:
            self.issue(
                "truncated_line",
                line_no,
                f"the last line is cut off ({error.msg}) and has no newline",
                column=error.colno,
                hint="the file ends in the middle of an example: was a copy or upload interrupted?",
            )
            return
        self.issue(
            "invalid_json",
            line_no,
            f"not valid JSON: {error.msg} (column {error.colno})",
            column=error.colno,
            hint="each line must be one complete JSON object; a line break inside a string must be written \\n",
        )

    # -- a JSON array ----------------------------------------------------------------------------------
    def json_array(self, records: Iterable[Record]) -> None:
        checker = self.checker
        for record in records:
            self.examples += 1
            if record.error is not None:
                code, message, column, byte_offset = record.error
                hint = _UTF8_HINT if code == "invalid_utf8" else "the file must be one JSON array of objects"
                self.issue(code, record.line, message, column=column, byte_offset=byte_offset, hint=hint)
                self.on_record(record.line, record.key, None)
                continue
            obj = record.values
            if type(obj) is not dict:
                self.issue(
                    "not_an_object",
                    record.line,
                    f"the element is a JSON {_json_kind(obj)}, not an object",
                    hint='every element of the array must be one JSON object, e.g. {"messages": [...]}',
                )
                self.on_record(record.line, record.key, None)
                continue
            if not checker.bound:
                checker.bind(obj.keys(), obj)
                if self.bind_only:
                    self.stop = True
                    return
            self.on_shape(obj)
            example = checker.check(obj, record.line)
            if example is not None:
                self.valid_examples += 1
            self.on_record(record.line, record.key, example)

    # -- CSV / TSV / Parquet ---------------------------------------------------------------------------
    def table(self, records: Iterable[Record | list[str]], *, header_line: int | None) -> None:
        checker = self.checker
        header: list[str] = []
        for record in records:
            if isinstance(record, list):
                header = record
                duplicated = sorted({n for n in header if header.count(n) > 1})
                if duplicated:
                    self.issue(
                        "duplicate_column",
                        header_line,
                        f"column name(s) {', '.join(repr(n) for n in duplicated)} appear more than once",
                    )
                checker.bind(header, None, header=True, header_line=header_line)
                if self.bind_only:
                    self.stop = True
                    return
                continue
            if record.error is not None:
                code, message, column, byte_offset = record.error
                if record.values is not None:
                    self.examples += 1
                    self.on_record(record.line, record.key, None)
                hint = _UTF8_HINT if code == "invalid_utf8" else None
                self.issue(code, record.line, message, column=column, byte_offset=byte_offset, hint=hint)
                continue
            if record.values is None:
                self.blank_lines += 1
                self.issue(
                    "blank_line", record.line, "blank line", severity="warning", hint="remove blank lines"
                )
                continue
            self.examples += 1
            self.on_shape(header)
            example = checker.check(record.values, record.line)
            if example is not None:
                self.valid_examples += 1
            self.on_record(record.line, record.key, example)

    # -- the end ---------------------------------------------------------------------------------------
    def finish(self) -> None:
        """File-level findings: labels, line endings, sizes, the number of examples."""
        self.checker.finish()
        info = self.info
        if info.crlf_lines and self.file_format in ("jsonl", "json") and not self.array:
            self.issue(
                "crlf_line_endings",
                self.first_crlf_line,
                f"{info.crlf_lines} of {info.lines} lines end with CRLF (\\r\\n); accepted, the \\r is ignored",
                severity="warning",
                hint="convert to LF line endings (dos2unix) so every tool reads the file the same way",
            )
        if info.size >= SERVERLESS_MAX_BYTES and self.serverless:
            self.issue(
                "file_too_large",
                None,
                f"the file is {info.size / 2**20:.0f} MiB; serverless fine-tuning takes files under 512 MB",
                hint="split it, sample it, or fine-tune on your own compute (target: compute)",
            )
        if self.serverless and not info.bom and self.file_format != "parquet" and info.size:
            self.issue(
                "missing_bom",
                None,
                "no UTF-8 byte-order mark: the Azure fine-tuning docs ask for UTF-8 with a BOM",
                severity="warning",
                hint="files without one are generally accepted; add it if the service rejects the file",
            )
        if self.examples == 0 and not self.unreadable:
            self.issue("empty_file", None, "the file has no examples")
        elif self.examples < MIN_EXAMPLES and not self.unreadable:
            have = f"only {self.examples} example{'s' if self.examples != 1 else ''}"
            if self.serverless:
                message = f"{have}: serverless fine-tuning does not start with fewer than {MIN_EXAMPLES}"
            else:
                message = (
                    f"{have}: a model learns little from fewer than {MIN_EXAMPLES} (serverless rejects it)"
                )
            self.issue("too_few_examples", None, message, severity="error" if self.serverless else "warning")


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


# --------------------------------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What a job step learns from reading one file: the verdict, the counts, the findings, and (when
    asked for) the examples as the trainer receives them with their lines."""

    path: str
    task: str
    file_format: str
    examples: int
    valid_examples: int
    blank_lines: int
    info: FileInfo
    columns: dict[str, str]
    findings: Findings
    labels: LabelCounts | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.findings.ok

    def error_text(self, limit: int = 10) -> str:
        """The errors as a user reads them: a summary line, then up to `limit` errors with file and line."""
        counts = self.findings.error_counts
        total = sum(counts.values())
        kinds = ", ".join(f"{code} ×{n}" for code, n in sorted(counts.items()))
        lines = [f"{self.path}: {total} error{'s' if total != 1 else ''} in the data ({kinds})"]
        shown = sorted(self.findings.errors, key=lambda f: (f.line is not None, f.line or 0))[:limit]
        lines += [f"  {finding.text(self.path)}" for finding in shown]
        if total > len(shown):
            lines.append(f"  ... and {total - len(shown)} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the issue dicts have the keys of azfinetune's Issue.to_dict."""
        findings = self.findings
        return {
            "path": self.path,
            "task": self.task,
            "ok": self.ok,
            "file_format": self.file_format,
            "examples": self.examples,
            "valid_examples": self.valid_examples,
            "blank_lines": self.blank_lines,
            "lines": self.info.lines,
            "columns": dict(self.columns),
            "labels": self.labels.ordered() if self.labels is not None and self.labels.counts else None,
            "error_counts": dict(sorted(findings.error_counts.items())),
            "warning_counts": dict(sorted(findings.warning_counts.items())),
            "errors": [f.to_dict(self.path) for f in findings if f.is_error],
            "warnings": [f.to_dict(self.path) for f in findings if not f.is_error],
        }


class _KeepingReader(FileReader):
    """A FileReader that keeps the valid examples and their lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[dict[str, Any]] = []
        self.lines: list[int] = []

    def on_record(self, line: int, key: bytes | int, example: dict[str, Any] | None) -> None:
        if example is not None:
            self.records.append(example)
            self.lines.append(line)


def check_file(
    path: str | Path,
    task: str,
    columns: Mapping[str, str] | None = None,
    *,
    serverless: bool = False,
    keep_examples: bool = False,
    max_per_code: int = 20,
) -> FileResult:
    """Read and check one data file (or the one data file in a folder) as every job step does.

        result = check_file("train.jsonl", "chat-completion")
        result.ok, result.examples, result.findings.errors, result.error_text()

    `columns` maps logical keys to names in the file (`--column KEY=NAME`); the rest are detected from the
    header or first record. With `keep_examples`, `records` holds the valid examples as the trainer
    receives them and `lines` their lines. Raises ContractError when the file cannot be read at all.
    """
    findings = Findings(max_per_code)
    reader: FileReader = (_KeepingReader if keep_examples else FileReader)(
        task, columns, sink=findings, serverless=serverless
    )
    reader.read(path)
    assert reader.path is not None
    return FileResult(
        path=str(reader.path),
        task=reader.task,
        file_format=reader.file_format,
        examples=reader.examples,
        valid_examples=reader.valid_examples,
        blank_lines=reader.blank_lines,
        info=reader.info,
        columns=reader.checker.used_columns(),
        findings=findings,
        labels=reader.checker.labels,
        records=reader.records if isinstance(reader, _KeepingReader) else [],
        lines=reader.lines if isinstance(reader, _KeepingReader) else [],
    )


def detect_columns(
    path: str | Path, task: str, given_columns: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The logical columns -> names the readers use for this file: `given_columns` plus what the header
    (or the first JSON object) shows. Reads only up to that header or object.

    Passing the result to the job (`--column KEY=NAME` for each item) and to the validator of every file
    of a run makes them read each file with the same names; reading a file with its own detected columns
    gives exactly the findings of reading it with none. Raises ContractError like check_file."""
    reader = FileReader(task, given_columns, sink=_ignore, chunk_size=1 << 16, batch_size=1 << 16)
    reader.bind_only = True
    reader.read(path)
    return reader.checker.used_columns()
