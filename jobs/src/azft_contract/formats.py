"""Which file is the data, in which format and encoding, and how one JSON text is decoded."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azft_contract.errors import ContractError
from azft_contract.tasks import TASK_FORMATS

__all__ = [
    "SUFFIX_FORMATS",
    "UTF8_BOM",
    "JSONValueError",
    "check_format",
    "decode_json",
    "decode_json_at",
    "detect_format",
    "resolve_data_file",
    "unsupported_encoding",
]

UTF8_BOM = b"\xef\xbb\xbf"

#: File name suffix (lower case) -> format; any other suffix is read as JSON Lines.
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


def detect_format(path: Path) -> str:
    """jsonl | json | csv | tsv | parquet, from the file name's suffix; anything else is JSON Lines."""
    return SUFFIX_FORMATS.get(path.suffix.lower(), "jsonl")


def resolve_data_file(path: Path) -> Path:
    """The file itself, or the one data file (by suffix) inside a folder: an Azure ML uri_folder input."""
    if path.is_file():
        return path
    if not path.exists():
        raise ContractError(f"{path}: no such file")
    if not path.is_dir():
        raise ContractError(f"{path}: not a file")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIX_FORMATS)
    if len(found) != 1:
        names = ", ".join(p.name for p in found[:5]) or "none"
        raise ContractError(
            f"{path}: a data folder must hold exactly one {'/'.join(SUFFIX_FORMATS)} file (found: {names})",
            hint="pass the file itself, or a folder with only that file",
        )
    return found[0]


def check_format(task: str, file_format: str, path: Path) -> None:
    """ContractError when `task` does not take data in `file_format`."""
    allowed = TASK_FORMATS[task]
    if file_format not in allowed:
        raise ContractError(
            f"{path}: {task} data must be JSON Lines (.jsonl) or JSON (.json), not {file_format}",
            hint='one {"messages": [...]} object per line',
        )


def unsupported_encoding(head: bytes) -> str | None:
    """The name of the encoding a file's byte-order mark announces when it is not UTF-8, else None."""
    for mark, name in _OTHER_BOMS:
        if head.startswith(mark):
            return name
    return None


class JSONValueError(ValueError):
    """Text that json.loads reads but the contract refuses (NaN, lone surrogates, too deep, too long a
    number), with the 0-based character position where it is, like json.JSONDecodeError, and the code
    readers report it under."""

    def __init__(self, msg: str, pos: int, code: str = "invalid_json") -> None:
        super().__init__(msg)
        self.msg = msg
        self.pos = pos
        self.colno = pos + 1
        self.code = code


def _refuse_constant(name: str) -> Any:
    raise JSONValueError(f"{name} is not a JSON value", -1)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# The C scanner json.JSONDecoder.decode calls (typeshed does not declare it).
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_SPACE = frozenset(" \t\n\r")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONSTANT = re.compile(r"-?(?:NaN|Infinity)")


def decode_json(text: str) -> Any:
    """One JSON text as every reader decodes it: the standard library's parser, refusing what a tokenizer
    cannot take or JSON does not define. Raises json.JSONDecodeError or JSONValueError (both ValueError).

    What json.JSONDecoder.decode does, calling its C scanner directly (the per-line hot path)."""
    start = 0
    if text[:1] in _JSON_SPACE:
        start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _SCAN(text, start)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        raise _refusal(error, text, 0) from None
    if end != len(text):
        rest = text[end:]
        stripped = rest.lstrip(" \t\n\r")
        if stripped:
            raise json.JSONDecodeError("Extra data", text, end + len(rest) - len(stripped))
    if "\\u" in text:
        _check_surrogates(value, text, 0, len(text))
    return value


def decode_json_at(text: str, pos: int) -> tuple[Any, int]:
    """The JSON value that starts at `pos` (no whitespace before it) and where it ends, refusing what
    decode_json refuses."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        raise _refusal(error, text, pos) from None
    if "\\u" in text:
        _check_surrogates(value, text, pos, end)
    return value, end


def _refusal(error: BaseException, text: str, pos: int) -> JSONValueError:
    if isinstance(error, JSONValueError):  # NaN / Infinity
        found = _CONSTANT.search(text, pos)
        return JSONValueError(error.msg, found.start() if found else pos)
    if isinstance(error, RecursionError):
        return JSONValueError("the value is nested too deeply", pos)
    return JSONValueError(str(error), pos)  # e.g. an integer of more than 4300 digits


def _check_surrogates(value: Any, text: str, start: int, end: int) -> None:
    escape = _SURROGATE_ESCAPE.search(text, start, end)
    if escape is None:
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JSONValueError(
            "a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) is not text",
            escape.start(),
            "lone_surrogate",
        ) from None
