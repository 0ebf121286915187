"""Record readers: CSV/TSV row by row, Parquet in row batches, a JSON array element by element."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from azft_contract.errors import ContractError
from azft_contract.formats import UTF8_BOM, JSONValueError, decode_json_at
from azft_contract.lines import FileInfo

__all__ = ["Record", "iter_csv_records", "iter_json_array", "iter_parquet_records"]


@dataclass(slots=True)
class Record:
    """One example of a table or a JSON array, with its 1-based line (CSV: where the record starts; Parquet:
    the row; JSON array: where the element starts).

    `values` is None for a blank line; `error` is (code, message, column, byte offset) for a record that
    cannot be read; `key` hashes the raw record (azfinetune's duplicate check uses it)."""

    line: int
    values: Any
    key: int = 0
    error: tuple[str, str, int | None, int | None] | None = None


class _DecodedLines:
    """Binary lines (split on b"\\n" only) -> text lines for csv.reader, recording the first invalid
    UTF-8 byte of each line."""

    def __init__(self, stream: IO[bytes], info: FileInfo) -> None:
        self._stream = stream
        self._info = info
        self.line = 0  # physical lines handed out
        self.offset = 0
        self.bad: dict[int, tuple[int, int]] = {}  # line -> (byte offset in file, column)

    def __iter__(self) -> Iterator[str]:
        first = True
        for raw in self._stream:
            self.line += 1
            start = self.offset
            self.offset += len(raw)
            if first:
                first = False
                if raw.startswith(UTF8_BOM):
                    self._info.bom = True
                    raw = raw[len(UTF8_BOM) :]
                    start += len(UTF8_BOM)
            if raw.endswith(b"\r\n"):
                self._info.crlf_lines += 1
            if not raw.endswith(b"\n"):
                self._info.final_newline = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                self.bad[self.line] = (start + error.start, error.start + 1)
                text = raw.decode("utf-8", errors="replace")
            yield text
        self._info.lines = self.line


def iter_csv_records(stream: IO[bytes], info: FileInfo, *, delimiter: str) -> Iterator[Record | list[str]]:
    """Yield the header (a list of names, stripped) first, then one Record per row. Quoted fields may hold
    delimiters, quotes ("") and line breaks."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    decoded = _DecodedLines(stream, info)
    reader = csv.reader(iter(decoded), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    previous_end = 0
    while True:
        start_line = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            previous_end = decoded.line
            yield Record(start_line, None, 0, ("invalid_csv", f"the CSV parser stopped: {error}", None, None))
            continue
        previous_end = decoded.line
        bad = next((decoded.bad[n] for n in range(start_line, previous_end + 1) if n in decoded.bad), None)
        if header is None:
            if not row or not any(cell.strip() for cell in row):
                yield Record(start_line, None, 0)
                continue
            header = [cell.strip() for cell in row]
            yield header
            if bad is not None:
                message = f"invalid UTF-8 in the header (byte offset {bad[0]})"
                yield Record(start_line, None, 0, ("invalid_utf8", message, bad[1], bad[0]))
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            yield Record(start_line, None, 0)
            continue
        if bad is not None:
            message = f"invalid UTF-8 at byte offset {bad[0]}"
            yield Record(start_line, {}, 0, ("invalid_utf8", message, bad[1], bad[0]))
            continue
        if len(row) != len(header):
            message = f"this row has {len(row)} fields, the header has {len(header)}"
            yield Record(start_line, {}, hash(tuple(row)), ("wrong_field_count", message, None, None))
            continue
        yield Record(start_line, dict(zip(header, row, strict=True)), hash(tuple(row)))


def iter_parquet_records(
    path: Path, info: FileInfo, *, batch_size: int = 4096
) -> Iterator[Record | list[str]]:
    """Yield the column names first, then one Record per row (needs pyarrow)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ContractError(
            f"{path}: reading Parquet needs pyarrow, which is not installed",
            hint="pip install pyarrow, or convert the file to JSON Lines",
        ) from error
    try:
        parquet = pq.ParquetFile(str(path))
    except Exception as error:  # pyarrow raises ArrowInvalid/OSError subclasses for a broken file
        raise ContractError(f"{path}: not a readable Parquet file: {error}") from error
    names = list(parquet.schema_arrow.names)
    yield names
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for values in batch.to_pylist():
            row += 1
            yield Record(row, values, hash(repr(values)))
    info.lines = row


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    """The position of the first non-whitespace character at or after `pos` (JSON whitespace)."""
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def iter_json_array(data: bytes, info: FileInfo) -> Iterator[Record]:
    """The elements of a file holding one JSON array, each with the line it starts on. The file is read
    whole (use JSON Lines for big files); reading stops at the first syntax error."""
    offset = 0
    if data.startswith(UTF8_BOM):
        info.bom = True
        data = data[len(UTF8_BOM) :]
        offset = len(UTF8_BOM)
    info.lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    info.crlf_lines = data.count(b"\r\n")
    info.final_newline = not data or data.endswith(b"\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        byte = data[error.start]
        where = offset + error.start
        message = f"invalid UTF-8 byte 0x{byte:02x} at byte offset {where}"
        line = data.count(b"\n", 0, error.start) + 1
        yield Record(line, None, 0, ("invalid_utf8", message, error.start - line_start + 1, where))
        return
    line, counted = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def column_at(pos: int) -> int:
        return pos - text.rfind("\n", 0, pos)

    def failed(message: str, pos: int, code: str = "invalid_json") -> Record:
        return Record(line_at(pos), None, 0, (code, message, column_at(pos), None))

    pos = _skip(text, 0)
    if text[pos : pos + 1] != "[":
        yield failed("a .json file must hold one JSON array of objects, or one object per line", pos)
        return
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decode_json_at(text, pos)
            except (json.JSONDecodeError, JSONValueError) as error:
                code = error.code if isinstance(error, JSONValueError) else "invalid_json"
                yield failed(f"not valid JSON: {error.msg}", max(error.pos, 0), code)
                return
            yield Record(line_at(pos), value, hash(text[pos:end]))
            pos = _skip(text, end)
            following = text[pos : pos + 1]
            if following == "]":
                pos += 1
                break
            if following != ",":
                problem = (
                    "the array is not closed with ]" if not following else "expected , or ] after an element"
                )
                yield failed(f"not valid JSON: {problem}", pos)
                return
            pos = _skip(text, pos + 1)
    pos = _skip(text, pos)
    if pos < len(text):
        yield failed("not valid JSON: more text after the array's closing ]", pos)
