"""The reader and the bulk paths: the same report whatever the chunk size, parser or path."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from azft_contract.lines import FileInfo, iter_line_batches

from azfinetune.data import _validate, validate_data
from azfinetune.data._fastchat import FastChatPath
from tests.data._corpus import BOM, chat, dumps

BAD_LINES: list[bytes] = [
    b"",
    b"   ",
    b'{"messages": [}',
    b"[1]",
    b'{"prompt": "a", "completion": "b"}',
    b'{"messages": [{"role": "bot", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 3}]}',
    b'{"messages": [{"role": "user", "content": "x", "weight": 0}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "user", '
    b'"content": "z"}]}',
    b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "id": 3}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "name": "n"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]} {"messages": []}',
    b'{"messages": [{"role": "user", "content": "x"},',
    b'{"role": "assistant", "content": "y"}]}',
    BOM + b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 1}]}',
    b'{"messages": [{"role": "user", "content": "\\u00e9t\\u00e9\\n"}, {"role": "assistant", "content": "ok"}]}',
    b'{"messages": [{"role": "assistant", "content": "first"}, {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x", "role": "assistant"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "a\xe2\x80\xa8b\xc2\x85c"}, {"role": "assistant", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 1.0}]}',
]


def _mixed_file(seed: int, n: int = 600, crlf: bool = False) -> bytes:
    rng = random.Random(seed)
    lines: list[bytes] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.08:
            lines.append(rng.choice(BAD_LINES))
        elif roll < 0.12 and lines:
            lines.append(rng.choice(lines))  # a duplicate
        else:
            long = "word " * rng.randint(0, 300)
            lines.append(dumps(chat(i, assistant=f"{long}{i}")))
    sep = b"\r\n" if crlf else b"\n"
    ending = rng.choice([sep, b""])
    return (BOM if seed % 2 else b"") + sep.join(lines) + ending


def _report(path: Path, **kwargs: Any) -> dict[str, Any]:
    out = validate_data(path, task="chat-completion", max_seq_length=200, max_errors_per_kind=1000, **kwargs)
    data = out.to_dict()
    data.pop("path")
    return data


@pytest.mark.parametrize("seed", range(6))
def test_same_report_for_every_chunk_and_batch_size(seed: int, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_mixed_file(seed, crlf=seed == 3))
    expected = _report(path)
    assert expected["error_counts"] and expected["stats"]["duplicates"]
    for chunk_size, batch_size in ((64, 64), (97, 1000), (4096, 300), (1 << 16, 8192), (1 << 20, 1 << 20)):
        assert _report(path, chunk_size=chunk_size, batch_size=batch_size) == expected, (
            chunk_size,
            batch_size,
        )


@pytest.mark.parametrize("seed", range(4))
def test_bulk_paths_match_the_line_by_line_path(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_mixed_file(seed + 10))
    bulk = _report(path)
    monkeypatch.setattr(FastChatPath, "chunk", lambda self, *a: None)
    lines_only = _report(path)
    monkeypatch.setattr(_validate._Validator, "use_fast_path", False)
    one_by_one = _report(path)
    assert bulk == lines_only == one_by_one


def test_clean_file_takes_the_bulk_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b"".join(dumps(chat(i)) + b"\n" for i in range(500)))
    from azft_contract.examples import ChatChecker

    calls: list[int] = []
    original = ChatChecker.check

    def spy(self: ChatChecker, obj: dict[str, Any], line: int) -> Any:
        calls.append(line)
        return original(self, obj, line)

    monkeypatch.setattr(ChatChecker, "check", spy)
    report = validate_data(path, task="chat-completion", batch_size=4096)
    assert report.ok and report.stats.valid_examples == 500
    assert calls == []


def test_one_object_spanning_two_lines_is_not_taken_for_two(tmp_path: Path) -> None:
    # Line 1 ends inside an object and line 2 finishes it and starts another: as many objects as lines,
    # but neither line is a JSON object on its own.
    head = b'{"messages": [{"role": "user", "content": "a"},'
    tail = b'{"role": "assistant", "content": "b"}]} {"messages": [{"role": "user", "content": "c"}, '
    tail += b'{"role": "assistant", "content": "d"}]}'
    path = tmp_path / "split.jsonl"
    path.write_bytes(head + b"\n" + tail + b"\n")
    report = validate_data(path, task="chat-completion")
    assert [(i.code, i.line) for i in report.errors] == [("invalid_json", 1), ("invalid_json", 2)]


def test_reader_lines_offsets_and_file_facts() -> None:
    data = BOM + b'{"a": 1}\r\n\n{"b": 2}\n' + b"x" * 300 + b"\nlast"
    info = FileInfo(size=len(data))
    seen: list[tuple[int, int, bytes]] = []
    for batch in iter_line_batches(io.BytesIO(data), info, chunk_size=64, batch_size=16):
        offset = batch.first_offset
        for i, line in enumerate(batch.lines):
            seen.append((batch.first_line + i, offset, line))
            offset += len(line) + 1
    assert [(n, line[:5]) for n, _, line in seen] == [
        (1, b'{"a":'),
        (2, b""),
        (3, b'{"b":'),
        (4, b"xxxxx"),
        (5, b"last"),
    ]
    for _, offset, line in seen:
        assert data[offset : offset + len(line)] == line
    assert info.bom and info.crlf_lines == 1 and info.lines == 5 and not info.final_newline


def test_bom_is_accepted_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(BOM + b"".join(dumps(chat(i)) + b"\n" for i in range(12)))
    report = validate_data(path, task="chat-completion")
    assert report.ok and not report.warnings and report.stats.bom
    path.write_bytes(path.read_bytes()[3:])
    assert not validate_data(path, task="chat-completion").stats.bom


def test_invalid_utf8_byte_offset_is_exact(tmp_path: Path) -> None:
    good = b"".join(dumps(chat(i)) + b"\n" for i in range(30))
    bad = b'{"messages": [{"role": "user", "content": "na\xefve"}, {"role": "assistant", "content": "x"}]}\n'
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(BOM + good + bad + good)
    for chunk_size in (64, 1000, 1 << 20):
        report = validate_data(path, task="chat-completion", chunk_size=chunk_size)
        (issue,) = report.errors
        assert issue.code == "invalid_utf8" and issue.line == 31
        assert issue.byte_offset == len(BOM + good) + bad.index(b"\xef")
        assert path.read_bytes()[issue.byte_offset] == 0xEF


def test_a_line_longer_than_the_chunk(tmp_path: Path) -> None:
    long_line = dumps(chat(0, assistant="x" * 200_000))
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"".join(dumps(chat(i)) + b"\n" for i in range(1, 12)) + long_line + b"\n" + b"{")
    report = validate_data(path, task="chat-completion", chunk_size=4096)
    assert report.stats.examples == 13 and report.stats.valid_examples == 12
    assert [(i.code, i.line) for i in report.errors] == [("truncated_line", 13)]
    # contents: 14 + 14 + 200,000 characters -> ceil(200,028 / 4) + 4 per message
    assert report.stats.tokens.max == 50_007 + 12


def test_max_errors_per_kind_keeps_some_and_counts_all(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    lines = [b"not json"] * 50 + [json.dumps({"messages": []}).encode()] * 3
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = validate_data(path, task="chat-completion", max_errors_per_kind=5)
    assert report.error_counts == {"invalid_json": 50, "empty_messages": 3}
    assert [i.line for i in report.errors if i.code == "invalid_json"] == [1, 2, 3, 4, 5]
    assert report.omitted() == {"invalid_json": 45}
    assert report.stats.duplicates == 49 + 2  # the repeated bad lines and the repeated empty ones


def _line(i: int, text: str = "") -> bytes:
    return dumps(chat(i, assistant=text or f"answer {i}"))


ADVERSARIAL: dict[str, bytes] = {
    "two_on_a_line_and_a_blank_line": b"\n".join(
        [_line(0), _line(1) + b" " + _line(2), b"", *[_line(i) for i in range(3, 14)]]
    )
    + b"\n",
    "adjacent_objects_and_a_blank_line": b"\n".join(
        [_line(0) + _line(1), b"", *[_line(i) for i in range(2, 14)]]
    )
    + b"\n",
    "object_spanning_lines_then_another": b"\n".join(
        [
            _line(0),
            b'{"messages": [{"role": "user", "content": "a"},',
            b'{"role": "assistant", "content": "b"}]}\t' + _line(1),
            *[_line(i) for i in range(2, 14)],
        ]
    )
    + b"\n",
    "indented_lines": b"\n".join([_line(0), *[b"  \t" + _line(i) + b"  " for i in range(1, 14)]]) + b"\n",
    "braces_inside_content": b"\n".join(
        [_line(0, "code: if (a) {} {b}"), _line(1, "x }{ y"), *[_line(i) for i in range(2, 14)]]
    )
    + b"\n",
}


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_bulk_chunk_is_never_fooled(
    name: str, crlf: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whitespace-separated objects that do not line up with the lines never pass as one-per-line."""
    content = ADVERSARIAL[name]
    path = tmp_path / "adversarial.jsonl"
    path.write_bytes(content.replace(b"\n", b"\r\n") if crlf else content)
    bulk = _report(path)
    monkeypatch.setattr(_validate._Validator, "use_fast_path", False)
    assert bulk == _report(path)
    if name in ("indented_lines", "braces_inside_content"):
        assert bulk["ok"] and bulk["stats"]["valid_examples"] == 14
    else:
        assert not bulk["ok"]
