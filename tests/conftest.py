"""Shared fixtures: the repository's paths and a folder with a valid minimal spec and data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import FineTuneSpec
from azfinetune.targets import check_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "jobs" / "examples"


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    with path.open("w") as handle:
        for i in range(12):
            messages = [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def write_spec(tmp_path: Path, chat_file: Path):  # type: ignore[no-untyped-def]
    """write_spec(text) -> path of a spec file beside a valid train.jsonl."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def checked(spec: object, **kwargs: object) -> FineTuneSpec:
    """load_spec + every offline check (`validate` without the data): the spec, or the SpecError."""
    report = check_spec(spec, data=False, **kwargs)  # type: ignore[arg-type]
    report.raise_for_errors()
    return report.spec


def refused(spec: object, **kwargs: object) -> SpecError:
    """The SpecError the offline checks raise for a spec (fails the test when they accept it)."""
    with pytest.raises(SpecError) as caught:
        checked(spec, **kwargs)
    return caught.value
