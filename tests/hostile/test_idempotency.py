"""The job name's fingerprint sees every change that alters what runs (issue 15)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from azfinetune.spec import load_spec
from azfinetune.targets import job_name
from tests.hostile.conftest import BASE_SPEC, EXAMPLES


def _name(spec: Path) -> str:
    return job_name(load_spec(spec))


def test_the_description_changes_the_job_name(folder: Path) -> None:
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    before = _name(spec)
    spec.write_text(BASE_SPEC.replace("a base spec", "another spec"), encoding="utf-8")
    assert _name(spec) != before


def test_a_fixed_dockerfile_changes_the_job_name(folder: Path) -> None:
    shutil.copytree(EXAMPLES.parents[1] / "environments" / "finetune-gpu", folder / "env")
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC + "environment: ./env\n", encoding="utf-8")
    before = _name(spec)
    with (folder / "env" / "Dockerfile").open("a", encoding="utf-8") as handle:
        handle.write("\nRUN echo fixed\n")
    assert _name(spec) != before


def test_a_data_file_rewritten_with_the_same_size_and_mtime_is_hashed_again(folder: Path) -> None:
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    data = folder / "data" / "chat-train.jsonl"
    before = _name(spec)
    stat = data.stat()
    text = data.read_text(encoding="utf-8")
    data.write_text(text.replace("a", "b", 1) if "a" in text else text.replace("e", "f", 1), encoding="utf-8")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.stat().st_size == stat.st_size and data.stat().st_mtime_ns == stat.st_mtime_ns
    assert _name(spec) != before


def test_an_unchanged_spec_keeps_its_job_name(folder: Path) -> None:
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    assert _name(spec) == _name(spec)


def _with_job_code(monkeypatch: pytest.MonkeyPatch, folder: Path, extra: str) -> None:
    """job_code_dir() -> a copy of jobs/src with one more line in the entry point (a new azfinetune release)."""
    import azfinetune.targets._paths as paths

    code = folder / f"code-{len(extra)}"
    shutil.copytree(EXAMPLES.parents[1] / "jobs" / "src", code, ignore=shutil.ignore_patterns("__pycache__"))
    with (code / "finetune" / "__init__.py").open("a", encoding="utf-8") as handle:
        handle.write(extra)
    monkeypatch.setattr(paths, "job_code_dir", lambda: code)


@pytest.mark.parametrize(
    ("example", "renamed"),
    [
        ("phi3-mini-lora", True),  # runs jobs/src: new code, new job
        ("pipeline-finetune-evaluate", True),
        ("registry-translation", False),  # Azure's own code: the same job as before
        ("phi4-mini-serverless", False),
        ("foundry-ministral-3b", False),
    ],
)
def test_new_job_code_renames_only_the_jobs_that_run_it(
    example: str, renamed: bool, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = EXAMPLES / f"{example}.yaml"
    _with_job_code(monkeypatch, folder, "\n# release 1\n")
    before = _name(spec)
    _with_job_code(monkeypatch, folder, "\n# release 2, changed\n")
    assert (_name(spec) != before) is renamed
