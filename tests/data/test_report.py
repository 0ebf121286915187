"""DataReport as objects, dicts, JSON and rich tables; comparing a validation file with its training file."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from azfinetune.data import (
    DataReport,
    compare_formats,
    render_report,
    validate_data,
    validate_pair,
)
from azfinetune.errors import Issue
from tests.data._corpus import chat, dumps


def _write(path: Path, rows: list[object]) -> Path:
    path.write_bytes(b"".join(dumps(r) + b"\n" for r in rows))
    return path


def test_report_api_and_json(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [chat(i) for i in range(11)] + [chat(3), {"messages": []}])
    report = validate_data(path, task="chat_completion", epochs=3)  # the spec's enum spelling works too
    assert report.task == "chat-completion" and not report.ok
    assert [(i.code, i.line, i.path, i.file) for i in report.errors] == [
        ("empty_messages", 13, "messages", str(path))
    ]
    assert [(i.code, i.line) for i in report.warnings] == [("duplicate_example", 12)]
    assert report.error_counts == {"empty_messages": 1}
    stats = report.stats
    assert (stats.examples, stats.valid_examples, stats.duplicates, stats.lines) == (13, 12, 1, 13)
    assert stats.shape == "messages" and stats.columns == {"messages": "messages"}
    assert stats.tokens.training_tokens_estimate == 3 * stats.tokens.total

    data = json.loads(report.to_json())
    assert data == report.to_dict() == orjson.loads(report.to_json(indent=False))
    assert data["ok"] is False
    assert data["errors"][0] == {
        "severity": "error",
        "path": "messages",
        "message": "'messages' is empty",
        "code": "empty_messages",
        "file": str(path),
        "line": 13,
    }
    assert set(data["stats"]["tokens"]) >= {
        "method",
        "total",
        "min",
        "median",
        "p95",
        "max",
        "training_tokens_estimate",
    }
    assert "empty_messages" in report.summary() and "13 examples" in report.summary()
    assert str(report.errors[0]) == f"{path}:13: messages: 'messages' is empty [empty_messages]"


def test_report_add_caps_per_kind_and_sorts() -> None:
    report = DataReport(path="x", task="chat-completion", max_errors_per_kind=2)
    report.extend(Issue("", "m", file="x", line=n, code="invalid_json") for n in (5, 3, 9))
    report.add(Issue("", "m", file="x", code="empty_file"))
    report.add(Issue("", "m", file="x", line=1, code="blank_line", severity="warning"))
    report.sort()
    assert [(i.code, i.line) for i in report.errors] == [
        ("empty_file", None),
        ("invalid_json", 3),
        ("invalid_json", 5),
    ]
    assert report.error_counts == {"invalid_json": 3, "empty_file": 1}
    assert report.omitted() == {"invalid_json": 1} and report.omitted("warning") == {}
    assert not report.ok and report.issues[-1].code == "blank_line"
    # The one-line summary says what every count counts, warnings too (the demo's "147 warnings" said nothing).
    assert report.summary().endswith("4 errors (empty_file ×1, invalid_json ×3), 1 warning (blank_line ×1)")


def test_render_report(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": ["pos", "neg"][i % 2]} for i in range(12)] + [
        {"text": "x", "label": "odd"}
    ]
    report = validate_data(_write(tmp_path / "c.jsonl", [*rows, {"text": "y"}]), task="text-classification")
    console = Console(width=120, record=True, color_system=None)
    console.print(render_report(report))
    text = console.export_text()
    for needle in (
        "missing_label",
        "rare_label",
        "Labels (3 distinct, 1 seen once)",
        "approx:chars/4",
        "pos",
    ):
        assert needle in text, needle
    assert "line" in text and "14" in text


def test_label_summary(tmp_path: Path) -> None:
    rows = [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 3} for i in range(30)]
    report = validate_data(_write(tmp_path / "p.jsonl", rows), task="text-classification")
    assert report.ok and not report.warnings
    labels = report.stats.labels
    assert labels is not None and labels.distinct == 3 and labels.counts == {"0": 10, "1": 10, "2": 10}
    assert report.stats.columns == {"text": "sentence1", "text_pair": "sentence2", "label": "label"}


def test_compare_formats_and_validate_pair(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(12)])
    valid = _write(tmp_path / "valid.jsonl", [{"text": f"q{i} a{i}"} for i in range(12)])
    train_report, valid_report = validate_pair(train, valid, task="text-completion")
    assert train_report.ok and valid_report is not None and not valid_report.ok
    (issue,) = valid_report.errors
    assert (
        issue.code == "format_mismatch" and "completion,prompt" in issue.message and "{text}" in issue.message
    )

    assert validate_pair(train, None, task="text-completion")[1] is None
    same = validate_data(train, task="text-completion")
    assert compare_formats(train_report, same) == []


def test_compare_labels_and_file_types(tmp_path: Path) -> None:
    train = _write(
        tmp_path / "train.jsonl", [{"text": f"t{i}", "label": ["a", "b"][i % 2]} for i in range(12)]
    )
    csv = tmp_path / "valid.csv"
    csv.write_text("text,label\n" + "".join(f"v{i},{['a', 'b', 'c'][i % 3]}\n" for i in range(12)))
    issues = compare_formats(
        validate_data(train, task="text-classification"), validate_data(csv, task="text-classification")
    )
    assert sorted((i.code, i.severity) for i in issues) == [
        ("file_type_mismatch", "warning"),
        ("unseen_label", "warning"),
    ]
    assert (
        compare_formats(
            validate_data(train, task="text-classification"), validate_data(train, task="text-completion")
        )[0].code
        == "format_mismatch"
    )


@pytest.mark.parametrize("epochs", [None, 0.5])
def test_epochs(tmp_path: Path, epochs: float | None) -> None:
    report = validate_data(
        _write(tmp_path / "t.jsonl", [chat(i) for i in range(12)]), task="chat-completion", epochs=epochs
    )
    assert report.stats.tokens.training_tokens_estimate == round(report.stats.tokens.total * (epochs or 1.0))
