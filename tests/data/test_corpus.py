"""Every file of the bad-file corpus produces its issue code at its 1-based line, and nothing else fails;
every clean file passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from azft_contract import DATA_KINDS

from azfinetune.data import DataReport, _validate, validate_data
from tests.data._corpus import CASES, Case, Clean, clean_files

CLEAN = clean_files()


def test_corpus_is_big_and_covers_every_task() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.task for case in CASES} == set(DATA_KINDS)  # every task, and dpo/orpo preference pairs


def _run(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataReport:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    options = dict(case.options)
    limit = options.pop("limit", None)
    if limit is not None:
        monkeypatch.setattr("azft_contract.reader.SERVERLESS_MAX_BYTES", limit)
    return validate_data(path, task=case.task, **options)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_file(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _run(case, tmp_path, monkeypatch)
    issues = report.errors if case.severity == "error" else report.warnings
    found = [issue for issue in issues if issue.code == case.kind]
    assert found, f"expected {case.kind} in {[str(i) for i in report.issues]}"
    assert found[0].line == case.line, [str(i) for i in found]
    assert found[0].severity == case.severity
    assert found[0].file == str(tmp_path / case.name)
    if case.byte_offset is not None:
        assert found[0].byte_offset == case.byte_offset
    if case.field is not None:
        assert found[0].path == case.field
    if case.severity == "error":
        assert not report.ok
        # The broken line is reported once, under its own code: no knock-on errors from other rules.
        assert set(report.error_counts) == {case.kind}, report.error_counts
    else:
        assert report.ok, [str(i) for i in report.errors]


@pytest.mark.parametrize("clean", CLEAN, ids=[clean.id for clean in CLEAN])
def test_clean_file(clean: Clean, tmp_path: Path) -> None:
    path = tmp_path / clean.name
    path.write_bytes(clean.content)
    report = validate_data(path, task=clean.task, columns=clean.columns)
    assert report.ok, [str(i) for i in report.errors]
    assert report.stats.examples == report.stats.valid_examples == clean.examples


@pytest.mark.parametrize("case", [c for c in CASES if c.task == "chat-completion"], ids=lambda c: c.id)
def test_chat_corpus_same_without_the_bulk_path(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line-by-line contract reader (no msgspec) reports exactly what the bulk path reports."""
    with_bulk = _run(case, tmp_path, monkeypatch)
    monkeypatch.setattr(_validate._Validator, "use_fast_path", False)
    without = _run(case, tmp_path, monkeypatch)
    assert with_bulk.to_dict() == without.to_dict()
