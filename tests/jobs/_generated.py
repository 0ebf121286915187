"""Hypothesis strategies for data files of every task: mostly valid examples, each rule broken now and then,
written as JSON Lines, JSON arrays, CSV, TSV or Parquet with the hard parts of each (line separators inside
strings, byte-order marks, CRLF, quoting, empty fields, mixed shapes, broken lines)."""

from __future__ import annotations

import contextvars
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from azft_contract import COLUMNS, TASK_FORMATS
from hypothesis import strategies as st

BOM = b"\xef\xbb\xbf"
# Characters readers have split, stripped or choked on: str.splitlines() boundaries (U+2028, U+2029, U+0085,
# VT, FF, FS/GS/RS), CR/LF, a BOM, quotes, delimiters and JSON-looking text.
SPECIAL = [
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\ufeff",
]
SPECIAL += ['"', "\\", ",", ";", "'", "{", "}", "[", "]", " ", "  ", "é", "東京", "😀", "a", "b", "word"]

SUFFIXES = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}
OTHER_SUFFIXES = {"jsonl": [".ndjson", ".txt"], "tsv": [".tab"], "parquet": [".pq"]}


@dataclass
class GeneratedFile:
    """One generated file: what to write, and how both sides are asked to read it."""

    task: str
    name: str
    content: bytes
    columns: dict[str, str] | None
    serverless: bool
    chunk_size: int
    batch_size: int

    def __repr__(self) -> str:  # what Hypothesis prints for a failing example
        return (
            f"GeneratedFile(task={self.task!r}, name={self.name!r}, columns={self.columns!r}, "
            f"serverless={self.serverless}, chunk_size={self.chunk_size}, batch_size={self.batch_size}, "
            f"content={self.content!r})"
        )


# Strategies are built once: building them per draw costs more than drawing from them.
_PIECES = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(min_size=1, max_size=4),
    st.characters(categories=["Cs"]).map(str),  # a lone surrogate: not text to a tokenizer
)
TEXTS = st.lists(_PIECES, max_size=5).map("".join)
WORDS = st.lists(
    st.sampled_from(["alpha", "beta", "gamma", "δ", "東", "x y", "q,r"]), min_size=1, max_size=3
).map(" ".join)
GOOD_TEXT = st.one_of(WORDS, st.lists(_PIECES, min_size=1, max_size=5).map("".join))
# Valid text (U+2028 and friends are valid): a word among them, no lone surrogates.
CLEAN_TEXT = st.tuples(
    st.lists(st.sampled_from(SPECIAL), max_size=3), WORDS, st.lists(st.sampled_from(SPECIAL), max_size=3)
).map(lambda parts: "".join(parts[0]) + parts[1] + "".join(parts[2]))
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 0.5, -0.0, 1e300, 2**70]), TEXTS
)
ANY_VALUE = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["text", "a"]), _SCALARS, max_size=2),
)
_BROKEN_TEXT = st.sampled_from(["", " \t", "\u2028", None, 5, ["a"], {"k": 1}])
ROLL = st.integers(0, 99)


# Half the files are noisy (every rule broken now and then), half clean (nothing that is an error), so
# both verdicts, the bulk paths and the line-by-line paths all get their share.
_NOISY: contextvars.ContextVar[bool] = contextvars.ContextVar("noisy", default=True)


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True `percent`% of the time in a noisy file, never in a clean one."""
    return _NOISY.get() and draw(ROLL) < percent


def roll(draw: st.DrawFn, top: int) -> int:
    """0..top in a noisy file; `top` (by convention: break nothing) in a clean one."""
    return draw(st.integers(0, top)) if _NOISY.get() else top


def good_text(draw: st.DrawFn) -> str:
    """A string that is not empty: valid text in a clean file, anything in a noisy one."""
    return draw(GOOD_TEXT if _NOISY.get() else CLEAN_TEXT)


def text_or_broken(draw: st.DrawFn) -> Any:
    """Mostly a usable string; sometimes empty, blank, missing (None) or another type."""
    if not _NOISY.get():
        return draw(CLEAN_TEXT)
    return draw(GOOD_TEXT) if not chance(draw, 12) else draw(_BROKEN_TEXT)


MISSING = object()


def _put(record: dict[str, Any], name: str, value: Any) -> None:
    if value is not MISSING:
        record[name] = value


def maybe(draw: st.DrawFn, value: Any) -> Any:
    """`value`, or now and then MISSING (the key left out)."""
    return MISSING if chance(draw, 4) else value


# -- records per task --------------------------------------------------------------------------------------
def chat_record(draw: st.DrawFn, names: dict[str, str]) -> dict[str, Any]:
    roles = draw(st.lists(st.sampled_from(["system", "user", "assistant"]), min_size=1, max_size=5))
    if roll(draw, 3):  # mostly (always in a clean file) a conversation that trains: user ... assistant
        roles = ["user", *roles[1:-1], "assistant"]
    messages: list[Any] = []
    for role in roles:
        message: dict[str, Any] = {"role": role, "content": text_or_broken(draw)}
        if message["content"] is None and draw(st.booleans()):
            del message["content"]
        pick = roll(draw, 29)
        if pick == 0:
            message["role"] = draw(st.sampled_from(["bot", "human", "tool", "developer", "", 3, None]))
        elif pick == 1:
            del message["role"]
        elif pick == 2:
            message["weight"] = draw(st.sampled_from([0, 1, 2, True, 1.0, None, "1"]))
        elif pick == 3:
            message["name"] = "n"
        elif pick in (4, 5) and role == "assistant":
            message["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(message)
    pick = roll(draw, 39)
    if pick == 0:
        return {names["messages"]: draw(st.sampled_from(["hello", [], None, {"role": "user"}]))}
    if pick == 1:
        messages.insert(draw(st.integers(0, len(messages))), draw(st.sampled_from(["hi", 3, None, []])))
    if pick == 2:
        return {"prompt": "a", "completion": "b"}
    record = {names["messages"]: messages}
    if roll(draw, 29) == 0:
        record["id"] = 7
    return record


def completion_record(draw: st.DrawFn, names: dict[str, str], shape: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if roll(draw, 14) == 0:  # the other shape, or both
        shape = draw(st.sampled_from(["pair", "text", "both", "neither"]))
    if shape in ("pair", "both"):
        _put(record, names["prompt"], maybe(draw, text_or_broken(draw)))
        _put(record, names["completion"], maybe(draw, text_or_broken(draw)))
    if shape in ("text", "both"):
        _put(record, names["text"], maybe(draw, text_or_broken(draw)))
    if shape == "neither":
        record["body"] = "x"
    return record


def classification_record(
    draw: st.DrawFn, names: dict[str, str], pair: bool, classes: list[Any]
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    _put(record, names["text"], maybe(draw, text_or_broken(draw)))
    if pair:
        _put(record, names["text_pair"], maybe(draw, text_or_broken(draw)))
    label = draw(st.sampled_from(classes)) if roll(draw, 9) else draw(ANY_VALUE)
    _put(record, names["label"], maybe(draw, label))
    return record


def token_record(draw: st.DrawFn, names: dict[str, str], tags: list[Any]) -> dict[str, Any]:
    n = draw(st.integers(0 if roll(draw, 14) == 0 else 1, 4))
    tokens: Any = [good_text(draw) for _ in range(n)]
    tag_values: Any = [draw(st.sampled_from(tags)) for _ in range(n)]
    pick = roll(draw, 14)
    if pick == 0:
        tag_values = tag_values[:-1]
    elif pick == 1:
        tokens = " ".join(map(str, tokens))
    elif pick == 2 and tag_values:
        tag_values[0] = draw(st.sampled_from([True, None, 1.5, {"t": "O"}, ["O"]]))
    elif pick == 3 and tokens:
        tokens[0] = draw(st.sampled_from([1, None]))
    record: dict[str, Any] = {}
    _put(record, names["tokens"], maybe(draw, tokens))
    _put(record, names["tags"], maybe(draw, tag_values))
    return record


def qa_record(draw: st.DrawFn, names: dict[str, str]) -> dict[str, Any]:
    context = good_text(draw)
    answers: list[tuple[Any, Any]] = []
    for _ in range(draw(st.integers(1, 2))):
        start = draw(st.integers(0, max(0, len(context) - 1)))
        end = draw(st.integers(start + 1, len(context))) if len(context) > start else start + 1
        text: Any = context[start:end] or "x"
        pick = roll(draw, 11)
        if pick == 0:
            start = start + 1
        elif pick == 1:
            start = draw(st.sampled_from([-1, 1.0, None, "0"]))
        elif pick == 2:
            text = draw(st.sampled_from(["", None, 3]))
        answers.append((text, start))
    text_key, start_key = names["answer_text"], names["answer_start"]
    layout = draw(
        st.sampled_from(["dict", "list", "single", "broken"] if _NOISY.get() else ["dict", "list", "single"])
    )
    if layout == "dict":
        value: Any = {text_key: [t for t, _ in answers], start_key: [s for _, s in answers]}
        if roll(draw, 9) == 0:
            value[start_key] = value[start_key][:-1] if len(answers) > 1 else []
    elif layout == "list":
        value = [{text_key: t, start_key: s} for t, s in answers]
    elif layout == "single":
        value = {text_key: answers[0][0], start_key: answers[0][1]}
    else:
        value = draw(st.sampled_from(["a", None, 3, {text_key: ["a"]}]))
    record: dict[str, Any] = {}
    _put(record, names["context"], maybe(draw, context))
    _put(record, names["question"], maybe(draw, text_or_broken(draw)))
    _put(record, names["answers"], maybe(draw, value))
    return record


def summarization_record(draw: st.DrawFn, names: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    _put(record, names["source"], maybe(draw, text_or_broken(draw)))
    _put(record, names["target"], maybe(draw, text_or_broken(draw)))
    return record


def translation_record(
    draw: st.DrawFn, names: dict[str, str], layout: str, codes: tuple[str, str]
) -> dict[str, Any]:
    src, tgt = codes
    pair = {src: text_or_broken(draw), tgt: text_or_broken(draw)}
    if roll(draw, 14) == 0:
        pair.pop(tgt)
    if layout == "nested":
        record: dict[str, Any] = {"translation": pair if roll(draw, 14) else "x"}
    elif layout == "codes":
        record = pair
    else:
        record = {names["source"]: pair.get(src), names["target"]: pair.get(tgt)}
        if draw(st.booleans()):
            record["source_lang"] = draw(st.sampled_from([src, "english", 5] if _NOISY.get() else [src]))
            record["target_lang"] = tgt
    return record


# -- column names --------------------------------------------------------------------------------------------
def column_names(draw: st.DrawFn, task: str) -> tuple[dict[str, str], dict[str, str] | None]:
    """(the names the records use, the columns to pass as given: None, some or all of them)."""
    names: dict[str, str] = {}
    given: dict[str, str] = {}
    for key, candidates in COLUMNS[task].items():
        if not candidates:
            continue
        choice = draw(st.integers(0, 9))
        if choice < 6 or key in ("answer_text", "answer_start"):
            names[key] = candidates[0]
        elif choice < 8:
            names[key] = draw(st.sampled_from(candidates))
        else:
            names[key] = draw(st.sampled_from([f"my {key}", f"{key}, col", f"{key}_x"]))
            given[key] = names[key]
        if key not in given and roll(draw, 9) == 0:
            given[key] = names[key]
    return names, (given or None)


# -- files ---------------------------------------------------------------------------------------------------
def _json_line(draw: st.DrawFn, record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


BROKEN_LINES = [
    b"",
    b"   \t",
    b"\x0c",
    b"{",
    b"[",
    b"[1, 2]",
    b'"text"',
    b"null",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b"{'single': 'quotes'}",
    b'{"a": "caf\xe9"}',
    b'{"a": 1} {"b": 2}',
    b'{"a": 1}{"b": 2}',
    BOM + b'{"a": 1}',
    b'{"a": "\\ud800"}',
    b'{"a": "x\xe2\x80\xa8y"}',
    b'{"a": 1, "a": 2}',
    b'{"a": 1}\r',
    b"\xef\xbb",
]


def jsonl_bytes(draw: st.DrawFn, records: list[Any]) -> bytes:
    lines = [_json_line(draw, r) for r in records]
    for _ in range(roll(draw, 2) if _NOISY.get() else 0):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(BROKEN_LINES)))
    if lines and roll(draw, 9) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(lines)))  # a duplicate
    ending = draw(st.sampled_from([b"\n", b"\r\n", b"mixed"]))
    out = b""
    for i, line in enumerate(lines):
        sep = (b"\r\n" if i % 2 else b"\n") if ending == b"mixed" else ending
        out += line + sep
    pick = roll(draw, 9)
    if pick == 0 and out:
        out = out[: draw(st.integers(0, len(out) - 1))]  # cut off anywhere
    elif pick == 1:
        out = out.rstrip(b"\r\n")
    if draw(st.integers(0, 4)) == 0:
        out = BOM + out
    return out


def json_array_bytes(draw: st.DrawFn, records: list[Any]) -> bytes:
    items: list[Any] = list(records)
    if roll(draw, 9) == 0:
        items.insert(draw(st.integers(0, len(items))), draw(st.sampled_from(["text", 3, None, [1]])))
    text = json.dumps(items, indent=draw(st.sampled_from([None, 1, 2])), ensure_ascii=draw(st.booleans()))
    out = text.encode("utf-8", "surrogatepass")
    pick = roll(draw, 14)
    if pick == 0 and out:
        out = out[: draw(st.integers(0, len(out) - 1))]
    elif pick == 1:
        out = out.replace(b"}, {", b"} {", 1)
    elif pick == 2:
        out += b" x"
    if draw(st.booleans()):
        out = out.replace(b"\n", b"\r\n")
    if draw(st.integers(0, 4)) == 0:
        out = BOM + out
    return out + draw(st.sampled_from([b"", b"\n"]))


def _cell(value: Any) -> str:
    if value is None or value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def table_bytes(draw: st.DrawFn, records: list[dict[str, Any]], delimiter: str) -> bytes:
    header: list[str] = []
    for record in records:
        header += [k for k in record if k not in header]
    if not header:
        header = ["text"]
    out = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    writer = csv.writer(
        out, delimiter=delimiter, quoting=quoting, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    writer.writerow(header)
    for record in records:
        writer.writerow([_cell(record.get(name)) for name in header])
    data = out.getvalue().encode("utf-8", "surrogatepass")
    lines = data.split(b"\n")
    pick = roll(draw, 9)
    if pick == 0 and len(lines) > 2:
        lines.insert(
            draw(st.integers(1, len(lines) - 1)), draw(st.sampled_from([b"", b"a", b'"open', b"x\xff,y"]))
        )
    elif pick == 1 and len(lines) > 2:
        i = draw(st.integers(1, len(lines) - 1))
        lines[i] = lines[i] + delimiter.encode() + b"extra"
    data = b"\n".join(lines)
    if draw(st.integers(0, 3)) == 0:
        data = BOM + data
    return data


def parquet_bytes(records: list[dict[str, Any]]) -> bytes | None:
    """The records as Parquet, or None when pyarrow cannot type a column (mixed types)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    names: list[str] = []
    for record in records:
        names += [k for k in record if k not in names]
    try:
        table = pa.table({n: [r.get(n) for r in records] for n in names}) if names else None
        if table is None:
            return None
        out = io.BytesIO()
        pq.write_table(table, out)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return out.getvalue()


def records_for(draw: st.DrawFn, task: str, names: dict[str, str]) -> list[Any]:
    n = draw(st.integers(0 if _NOISY.get() else 1, 14))
    if task == "chat-completion":
        return [chat_record(draw, names) for _ in range(n)]
    if task == "text-completion":
        shape = draw(st.sampled_from(["pair", "text"]))
        return [completion_record(draw, names, shape) for _ in range(n)]
    if task == "text-classification":
        pair = draw(st.booleans())
        classes = draw(st.sampled_from(CLASSES if _NOISY.get() else CLASSES[:3]))
        return [classification_record(draw, names, pair, classes) for _ in range(n)]
    if task == "token-classification":
        tags = draw(st.sampled_from(TAGS if _NOISY.get() else TAGS[:2]))
        return [token_record(draw, names, tags) for _ in range(n)]
    if task == "question-answering":
        return [qa_record(draw, names) for _ in range(n)]
    if task == "summarization":
        return [summarization_record(draw, names) for _ in range(n)]
    layout = draw(st.sampled_from(["nested", "codes", "columns"]))
    codes = draw(st.sampled_from([("en", "ro"), ("en", "de"), ("pt-BR", "eng_Latn"), ("en", "en")]))
    return [translation_record(draw, names, layout, codes) for _ in range(n)]


CLASSES: list[list[Any]] = [["pos", "neg"], [0, 1], [True, False], [1, "1", 1.0], ["only"], [0, "a", 2]]
TAGS: list[list[Any]] = [["O", "B-PER", "I-PER"], [0, 1, 2], ["O"], ["O", 1]]


@st.composite
def data_files(draw: st.DrawFn, task: str) -> GeneratedFile:
    """One data file for `task`, in one of the formats the task takes, and how to ask for it: a clean or a
    noisy one (see _NOISY)."""
    token = _NOISY.set(draw(st.booleans()))
    try:
        return _data_file(draw, task)
    finally:
        _NOISY.reset(token)


def _data_file(draw: st.DrawFn, task: str) -> GeneratedFile:
    names, given = column_names(draw, task)
    records = records_for(draw, task, names)
    if given and not _NOISY.get():  # a clean file is asked for with the columns it has
        used = {k for r in records if isinstance(r, dict) for k in r}
        given = {k: v for k, v in given.items() if v in used} or None
    formats = list(TASK_FORMATS[task])
    weights = {"jsonl": 5, "json": 2, "csv": 2, "tsv": 1, "parquet": 1}
    file_format = draw(st.sampled_from([f for f in formats for _ in range(weights[f])]))
    content: bytes | None = None
    if file_format == "parquet":
        content = parquet_bytes([r for r in records if isinstance(r, dict)])
        if content is None:
            file_format = "jsonl"
    if file_format == "jsonl":
        content = jsonl_bytes(draw, records)
    elif file_format == "json":
        content = json_array_bytes(draw, records) if draw(st.integers(0, 3)) else jsonl_bytes(draw, records)
    elif file_format in ("csv", "tsv"):
        content = table_bytes(draw, records, "," if file_format == "csv" else "\t")
    assert content is not None
    if task == "translation" and draw(st.integers(0, 3)) == 0:
        codes = [k for r in records if isinstance(r, dict) for k in r if len(k) <= 8][:2]
        if len(codes) == 2:
            given = {"source_lang": codes[0], "target_lang": codes[1]}
    suffix = draw(st.sampled_from([SUFFIXES[file_format], *OTHER_SUFFIXES.get(file_format, [])]))
    return GeneratedFile(
        task=task,
        name=f"data{suffix}",
        content=content,
        columns=given,
        serverless=draw(st.integers(0, 9)) == 0,
        chunk_size=draw(st.sampled_from([64, 97, 1 << 12, 1 << 23])),
        batch_size=draw(st.sampled_from([64, 1000, 1 << 17])),
    )
