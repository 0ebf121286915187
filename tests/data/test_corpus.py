"""Every file of the bad-file corpus produces its issue kind at its 1-based line, and nothing else fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from azfinetune.data import _validate, validate_data
from azfinetune.data._formats import ChatChecker
from tests.data._corpus import CASES, Case


def test_corpus_is_big_and_covers_every_task() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.task for case in CASES} == {
        "chat-completion",
        "text-completion",
        "text-classification",
        "token-classification",
        "question-answering",
        "summarization",
        "translation",
    }


def _run(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    options = dict(case.options)
    limit = options.pop("limit", None)
    if limit is not None:
        monkeypatch.setattr(_validate, "SERVERLESS_MAX_BYTES", limit)
    return validate_data(path, task=case.task, **options)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_file(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _run(case, tmp_path, monkeypatch)
    issues = report.errors if case.severity == "error" else report.warnings  # type: ignore[attr-defined]
    found = [issue for issue in issues if issue.kind == case.kind]
    assert found, f"expected {case.kind} in {[str(i) for i in report.issues]}"  # type: ignore[attr-defined]
    assert found[0].line == case.line, [str(i) for i in found]
    assert found[0].severity == case.severity
    if case.byte_offset is not None:
        assert found[0].byte_offset == case.byte_offset
    if case.field is not None:
        assert found[0].field == case.field
    if case.severity == "error":
        assert not report.ok  # type: ignore[attr-defined]
        # The broken line is reported once, under its own kind: no knock-on errors from other rules.
        assert set(report.error_counts) == {case.kind}, report.error_counts  # type: ignore[attr-defined]
    else:
        assert report.ok, [str(i) for i in report.errors]  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", [c for c in CASES if c.task == "chat-completion"], ids=lambda c: c.id)
def test_chat_corpus_same_without_msgspec(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orjson fallback (no msgspec) reports exactly what the msgspec path reports."""
    with_msgspec = _run(case, tmp_path, monkeypatch)
    monkeypatch.setattr(ChatChecker, "use_msgspec", False)
    without = _run(case, tmp_path, monkeypatch)
    assert with_msgspec.to_dict() == without.to_dict()  # type: ignore[attr-defined]
