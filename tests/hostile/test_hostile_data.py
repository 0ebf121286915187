"""The hostile-data corpus: one bad line in a training file, at the start, middle or end; `validate` exits 2 and
names the data file, the line and what is wrong (issue 15). Then files that cannot be read at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import BASE_SPEC, GOOD_LINE, Result, assert_refused, line_of

_M = '{"role": "assistant", "content": "x"}'

BAD_LINES: dict[str, tuple[str, str]] = {
    "not-json": ("not json", "invalid_json"),
    "truncated": (GOOD_LINE[:-3], "invalid_json"),
    "nan": ('{"messages": NaN}', "NaN is not a JSON value"),
    "trailing-comma": ('{"messages": [],}', "invalid_json"),
    "single-quotes": ("{'messages': []}", "invalid_json"),
    "nul": ("\x00", "invalid_json"),
    "huge-int": ('{"messages": ' + "9" * 5000 + "}", "invalid_json"),
    "deep": ('{"messages": ' + "[" * 3000 + "]" * 3000 + "}", "nested too deeply"),
    "array": ("[1, 2]", "a JSON array, not an object"),
    "number": ("42", "a JSON number, not an object"),
    "string": ('"x"', "a JSON string, not an object"),
    "null": ("null", "a JSON null, not an object"),
    "messages-missing": ('{"text": "x"}', "no 'messages' key"),
    "messages-number": ('{"messages": 1}', "must be a list"),
    "messages-empty": ('{"messages": []}', "is empty"),
    "duplicate-key": ('{"messages": [], "messages": []}', "is empty"),
    "message-not-object": ('{"messages": ["hi"]}', "not an object"),
    "role-missing": ('{"messages": [{"content": "hi"}, ' + _M + "]}", "has no 'role'"),
    "role-unknown": ('{"messages": [{"role": "wizard", "content": "hi"}, ' + _M + "]}", "unknown role"),
    "content-number": ('{"messages": [{"role": "user", "content": 5}, ' + _M + "]}", "must be a string"),
    "content-null": ('{"messages": [{"role": "user", "content": null}, ' + _M + "]}", "must be a string"),
    "no-assistant": ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
}

CASES = [
    (f"{name}-at-line-{position}", line, position, phrase)
    for name, (line, phrase) in BAD_LINES.items()
    for position in (1, 2, 3)
]


def test_the_corpus_is_large() -> None:
    assert len(CASES) + len(FILE_CASES) >= 60


@pytest.mark.parametrize(("bad", "position", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_line_is_refused_with_its_place(
    folder: Path, cli: Callable[..., Result], bad: str, position: int, phrase: str
) -> None:
    lines = [GOOD_LINE, GOOD_LINE, GOOD_LINE]
    lines[position - 1] = bad
    data = folder / "data" / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC.replace("data/chat-train.jsonl", "data/bad.jsonl"), encoding="utf-8")
    result = cli("validate", str(spec))
    assert_refused(result, str(data), position, phrase)


def _long_name(folder: Path) -> str:
    return "data/" + "n" * 300 + ".jsonl"


def _loop(folder: Path) -> str:
    os.symlink(folder / "data" / "b.jsonl", folder / "data" / "a.jsonl")
    os.symlink(folder / "data" / "a.jsonl", folder / "data" / "b.jsonl")
    return "data/a.jsonl"


def _folder(folder: Path) -> str:
    (folder / "data" / "dir.jsonl").mkdir()
    return "data/dir.jsonl"


FILE_CASES: list[tuple[str, Callable[[Path], str], str]] = [
    ("name-too-long", _long_name, "cannot read"),
    ("symlink-loop", _loop, "data.train"),
    ("a-folder", _folder, "is a folder"),
    ("missing", lambda folder: "data/none.jsonl", "does not exist"),
]


@pytest.mark.parametrize(("make", "phrase"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_a_data_file_that_cannot_be_read_is_named(
    folder: Path, cli: Callable[..., Result], make: Callable[[Path], str], phrase: str
) -> None:
    ref = make(folder)
    spec = folder / "spec.yaml"
    text = BASE_SPEC.replace("data/chat-train.jsonl", ref)
    spec.write_text(text, encoding="utf-8")
    result = cli("validate", str(spec))
    assert_refused(result, str(spec), line_of(text, "train:"), phrase)
