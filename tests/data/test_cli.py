"""`azfinetune data validate`: the report first (tables or JSON), then exit 0, or DataError (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from azfinetune.cli.data_cmd import data, parse_columns
from azfinetune.errors import DataError
from tests.data._corpus import chat, dumps


def _write(path: Path, rows: list[object], extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(dumps(r) + b"\n" for r in rows) + extra)
    return path


def test_ok_file_exits_0_with_tables(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.jsonl", [chat(i) for i in range(12)])
    result = CliRunner().invoke(
        data, ["validate", str(path), "--task", "chat-completion", "--max-seq-length", "64"]
    )
    assert result.exit_code == 0, result.output
    assert "✓" in result.output and "0 errors" in result.output and "training tokens" in result.output


def test_errors_print_the_report_then_raise_data_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "train.jsonl", [chat(i) for i in range(12)], b'{"messages": [{"role": "bot"}]}\n'
    )
    result = CliRunner().invoke(data, ["validate", str(path), "-t", "chat-completion"])
    assert isinstance(result.exception, DataError)
    assert result.exception.exit_code == 2 and result.exception.report is not None
    assert "unknown_role" in result.output and "missing_content" in result.output and "13" in result.output
    assert "2 errors in the data" in str(result.exception)


def test_json_output_even_when_failing(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.jsonl", [chat(i) for i in range(3)])
    result = CliRunner().invoke(
        data, ["validate", str(path), "-t", "chat-completion", "--serverless", "--json"]
    )
    assert isinstance(result.exception, DataError)
    report = json.loads(result.output)
    assert report["ok"] is False and report["error_counts"] == {"too_few_examples": 1}
    assert report["warning_counts"] == {"missing_bom": 1}


def test_validation_file_format_mismatch(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(12)])
    valid = _write(tmp_path / "valid.jsonl", [{"text": f"t{i}"} for i in range(12)])
    args = ["validate", str(train), "-t", "text-completion", "--validation", str(valid), "--json"]
    result = CliRunner().invoke(data, args)
    assert isinstance(result.exception, DataError)
    both = json.loads(result.output)
    assert both["train"]["ok"] is True
    assert both["validation"]["error_counts"] == {"format_mismatch": 1}


def test_columns_option(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("review,stars\n" + "".join(f"text {i},{i % 2}\n" for i in range(12)))
    args = [
        "validate",
        str(path),
        "-t",
        "text-classification",
        "--columns",
        "text=review",
        "--column",
        "label=stars",
    ]
    result = CliRunner().invoke(data, args)
    assert result.exit_code == 0, result.output
    assert parse_columns(("text=a,label=b", "text_pair = c")) == {"text": "a", "label": "b", "text_pair": "c"}
    bad = CliRunner().invoke(
        data, ["validate", str(path), "-t", "text-classification", "--columns", "review"]
    )
    assert bad.exit_code == 2 and "KEY=NAME" in bad.output


def test_exit_codes_through_the_cli_boundary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.cli import _app as app

    good = _write(tmp_path / "good.jsonl", [chat(i) for i in range(12)])
    bad = _write(tmp_path / "bad.jsonl", [chat(i) for i in range(12)], b"not json\n")
    assert app.run_with_boundary(data, ["validate", str(good), "-t", "chat-completion"]) == 0
    assert app.run_with_boundary(data, ["validate", str(bad), "-t", "chat-completion"]) == 2
    captured = capsys.readouterr()
    assert "invalid_json" in captured.out and "1 error in the data" in captured.err
    missing = str(tmp_path / "missing.jsonl")
    assert app.run_with_boundary(data, ["validate", missing, "-t", "chat-completion"]) == 2
    assert "no such file" in capsys.readouterr().err
