"""Fixtures for the FakeWorkspace tests: a small project folder (code + data) as the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # azure-ai-ml names the experiment after the working directory, so fix it for stable bodies.
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "src" / "train.py").write_text('print("training")\n')
    chat = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    (root / "data" / "train.jsonl").write_text(chat * 12)
    (root / "data" / "valid.jsonl").write_text(chat * 3)
    monkeypatch.chdir(root)
    return root
