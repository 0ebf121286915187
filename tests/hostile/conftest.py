"""Shared helpers for the hostile-input tests: a spec folder with data, and the CLI run in-process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult as Result

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"

BASE_SPEC = """\
name: hostile-base
description: a base spec the hostile tests mutate one line at a time
task: chat-completion
model: phi-3-mini-4k-instruct
data:
  train: data/chat-train.jsonl
method:
  technique: lora
  lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: auto}
training:
  epochs: 1
  max_steps: 10
  learning_rate: 2.0e-4
  per_device_batch_size: 4
  gradient_accumulation_steps: 4
  max_seq_length: 512
  warmup_ratio: 0.0
  logging_steps: 5
target:
  kind: command
  compute: gpu-a100
  instance_type: Standard_NC24ads_A100_v4
  nodes: 1
  gpus_per_node: 1
  max_run_minutes: 60
register: {model_name: hostile-model, description: the registered model}
tags: {team: support}
"""

GOOD_LINE = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "chat-train.jsonl", tmp_path / "data" / "chat-train.jsonl")
    return tmp_path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary

    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("AZFINETUNE_DEBUG", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = run_with_boundary(cli_package.cli, list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of `text` containing `needle` (where the test put its mutation)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the spec")


def assert_refused(result: Result, file: str, line: int | None, phrase: str) -> None:
    flat = " ".join(result.text.split())
    assert result.code == 2, result.text
    assert "internal error" not in result.text and "Traceback" not in result.text, result.text
    assert phrase.lower() in flat.lower(), result.text
    where = f"{file}:{line}:" if line is not None else file
    assert where in result.text, result.text
