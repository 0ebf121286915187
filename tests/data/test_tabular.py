"""CSV, TSV and Parquet for the tabular tasks; column names; what validate_data refuses outright."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

from azfinetune.data import DEFAULT_COLUMNS, validate_data
from azfinetune.errors import DataError


def test_csv_classification_with_quoted_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    body = "".join(f'"row {i}, with comma",{["pos", "neg"][i % 2]}\n' for i in range(12))
    path.write_text('text,label\n"multi\nline",pos\n' + body)
    report = validate_data(path, task="text-classification")
    assert report.ok and not report.warnings, [str(i) for i in report.issues]
    assert (report.stats.file_format, report.stats.examples, report.stats.lines) == ("csv", 13, 15)
    assert report.stats.shape == "label,text"


def test_csv_bom_crlf_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    rows = "".join(f"s{i},{i % 2}\r\n" for i in range(12))
    path.write_bytes(b"\xef\xbb\xbf" + f"review,stars\r\n{rows}".encode())
    report = validate_data(path, task="text-classification", columns={"text": "review", "label": "stars"})
    assert report.ok and report.stats.bom and report.stats.crlf_lines == 13
    assert report.stats.columns["text"] == "review"


def test_tsv_token_classification_with_json_lists(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("tokens\tner_tags\n" + "".join(f'["EU", "x{i}"]\t["B-ORG", "O"]\n' for i in range(12)))
    report = validate_data(path, task="token-classification")
    assert report.ok, [str(i) for i in report.issues]
    assert report.stats.labels is not None and report.stats.labels.counts == {"B-ORG": 12, "O": 12}


def test_csv_blank_line_and_missing_column_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "a,1\n" * 5 + "\n" + "b,0\n" * 6)
    report = validate_data(path, task="text-classification")
    assert ("blank_line", 7) in [(w.code, w.line) for w in report.warnings]
    path.write_text("body,label\n" + "a,1\n" * 12)
    report = validate_data(path, task="text-classification")
    assert report.error_counts == {"missing_column": 1}


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "context": [f"The answer {i} is here." for i in range(12)],
            "question": [f"Where is {i}?" for i in range(12)],
            "answers": [{"text": ["here"], "answer_start": [len(f"The answer {i} is ")]} for i in range(12)],
        }
    )
    path = tmp_path / "qa.parquet"
    pq.write_table(table, path)
    report = validate_data(path, task="question-answering")
    assert report.ok and report.stats.file_format == "parquet" and report.stats.examples == 12

    bad = pa.table({"context": ["abc"] * 12, "answers": [{"text": ["b"], "answer_start": [1]}] * 12})
    pq.write_table(bad, path)
    report = validate_data(path, task="question-answering")
    assert report.error_counts == {"missing_column": 1}
    assert report.errors[0].line is None


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(DataError, match="pyarrow"):
        validate_data(path, task="summarization")


@pytest.mark.parametrize(
    ("name", "task", "columns", "match"),
    [
        ("missing.jsonl", "chat-completion", None, "no such file"),
        ("t.csv", "chat-completion", None, "must be JSON Lines"),
        ("t.jsonl", "image-classification", None, "unknown task"),
        ("t.jsonl", "text-classification", {"messages": "m"}, "do not apply"),
        ("t.jsonl", "text-classification", {"text": ""}, "must name a field"),
    ],
)
def test_refused_outright(tmp_path: Path, name: str, task: str, columns: Any, match: str) -> None:
    if name != "missing.jsonl":
        (tmp_path / name).write_text("text,label\n")
    with pytest.raises(DataError, match=match):
        validate_data(tmp_path / name, task=task, columns=columns)


def test_translation_layouts(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        "".join(json.dumps({"translation": {"en": f"hi {i}", "ro": f"salut {i}"}}) + "\n" for i in range(12))
    )
    report = validate_data(path, task="translation")
    assert report.ok and report.stats.columns["source"] == "en" and report.stats.columns["target"] == "ro"

    path.write_text("".join(json.dumps({"en": f"hi {i}", "de": f"hallo {i}"}) + "\n" for i in range(12)))
    report = validate_data(path, task="translation", columns={"source_lang": "de", "target_lang": "en"})
    assert report.ok and report.stats.columns["source"] == "de"


def test_default_columns_follow_the_registry_samples() -> None:
    assert DEFAULT_COLUMNS["text-classification"]["text"][:2] == ("text", "sentence1")
    assert DEFAULT_COLUMNS["token-classification"] == {"tokens": ("tokens",), "tags": ("ner_tags", "tags")}
    assert DEFAULT_COLUMNS["summarization"]["source"][0] == "document"
    assert DEFAULT_COLUMNS["question-answering"]["answer_start"] == ("answer_start",)


def test_detect_columns_names_what_to_pass_the_job(tmp_path: Path) -> None:
    from azfinetune.data import detect_columns

    path = tmp_path / "train.tsv"
    path.write_text("sentence1\tsentence2\tlabels\n" + "".join(f"a{i}\tb{i}\t{i % 2}\n" for i in range(12)))
    columns = detect_columns(path, task="text_classification")
    assert columns == {"text": "sentence1", "text_pair": "sentence2", "label": "labels"}
    assert validate_data(path, task="text-classification", columns=columns).stats.columns == columns
    with pytest.raises(DataError, match="do not apply to text-classification"):
        detect_columns(path, task="text-classification", columns={"messages": "m"})
    with pytest.raises(DataError, match="no such file"):
        detect_columns(tmp_path / "missing.csv", task="summarization")
