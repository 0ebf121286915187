"""`azfinetune data validate` and the job's reader agree on every file: the verdict, the error lines, the
example counts and the columns.

The job's side runs the way the job runs: `python -m azft_contract.probe` in a subprocess with cwd =
jobs/src (the same check_file that finetune, validate_data and evaluate_model call), one process for the
whole session, answering file after file. The host side is azfinetune.data.validate_data in this process,
with its bulk paths and random chunk sizes. The files are the data corpus and Hypothesis-generated files
of every task (tests/jobs/_generated.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azft_contract import TASKS
from hypothesis import HealthCheck, given, settings

from azfinetune.data import detect_columns, validate_data
from azfinetune.errors import DataError
from tests.data._corpus import CASES, Case, clean_files
from tests.jobs._generated import GeneratedFile, data_files
from tests.jobs.helpers import JOBS_SRC

# Hypothesis-generated files per task: 7 tasks x 300 = 2,100 per run (AZFT_DIFFERENTIAL_EXAMPLES for more).
GENERATED_PER_TASK = int(os.environ.get("AZFT_DIFFERENTIAL_EXAMPLES", "300"))
_ALL = 10**9


class JobReader:
    """A `python -m azft_contract.probe` process in jobs/src: one request line in, one answer line out."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "azft_contract.probe"],
            cwd=JOBS_SRC,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.asked = 0

    def read(self, path: Path, task: str, columns: dict[str, str] | None, serverless: bool) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {
            "id": self.asked,
            "path": str(path),
            "task": task,
            "columns": columns,
            "serverless": serverless,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        assert answer["id"] == self.asked, answer
        self.asked += 1
        return answer

    def close(self) -> list[str]:
        """End the process; the top-level modules it imported."""
        out, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0
        modules: list[str] = json.loads(out.strip().splitlines()[-1])["modules"]
        return modules


@pytest.fixture(scope="module")
def job_reader() -> Iterator[JobReader]:
    reader = JobReader()
    yield reader
    modules = reader.close()
    # The job image has no azfinetune, and its reader needs no accelerator.
    assert not {"azfinetune", "orjson", "msgspec"} & set(modules), modules


def _job_verdict(answer: dict[str, Any]) -> dict[str, Any]:
    if "refused" in answer:
        return {"refused": True}
    return {
        "ok": answer["ok"],
        "errors": [tuple(e) for e in answer["errors"]],
        "examples": answer["examples"],
        "valid_examples": answer["valid_examples"],
        "columns": answer["columns"],
    }


def _host_verdict(
    path: Path,
    task: str,
    columns: dict[str, str] | None,
    serverless: bool,
    chunk_size: int = 1 << 23,
    batch_size: int = 1 << 17,
) -> dict[str, Any]:
    try:
        report = validate_data(
            path,
            task=task,
            columns=columns,
            serverless=serverless,
            max_errors_per_kind=_ALL,
            chunk_size=chunk_size,
            batch_size=batch_size,
        )
    except DataError:
        return {"refused": True}
    errors = sorted(
        ((i.code, i.line) for i in report.errors), key=lambda e: (e[0], -1 if e[1] is None else e[1])
    )
    return {
        "ok": report.ok,
        "errors": errors,
        "examples": report.stats.examples,
        "valid_examples": report.stats.valid_examples,
        "columns": report.stats.columns,
    }


def assert_agree(
    job_reader: JobReader,
    path: Path,
    task: str,
    columns: dict[str, str] | None = None,
    serverless: bool = False,
    chunk_size: int = 1 << 23,
    batch_size: int = 1 << 17,
) -> dict[str, Any]:
    """The host's and the job's verdicts on one file are equal; so are the columns detect_columns finds and
    the columns both read with, and reading with the detected columns changes nothing."""
    answer = job_reader.read(path, task, columns, serverless)
    host = _host_verdict(path, task, columns, serverless, chunk_size, batch_size)
    assert host == _job_verdict(answer)
    if "refused" in host:
        return host
    detected = detect_columns(path, task=task, columns=columns)
    assert detected == answer["detected"] == host["columns"]
    assert _host_verdict(path, task, detected, serverless) == host
    return host


# -- the corpus ----------------------------------------------------------------------------------------------
CLEAN = clean_files()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_corpus_file(case: Case, job_reader: JobReader, tmp_path: Path) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    options = case.options
    host = assert_agree(job_reader, path, case.task, options.get("columns"), options.get("serverless", False))
    if case.severity == "error" and "limit" not in options:
        assert not host["ok"] and (case.kind, case.line) in host["errors"]


@pytest.mark.parametrize("clean", CLEAN, ids=[clean.id for clean in CLEAN])
def test_clean_corpus_file(clean: Any, job_reader: JobReader, tmp_path: Path) -> None:
    path = tmp_path / clean.name
    path.write_bytes(clean.content)
    host = assert_agree(job_reader, path, clean.task, clean.columns)
    assert host["ok"] and host["examples"] == clean.examples


def test_refusals_agree(job_reader: JobReader, tmp_path: Path) -> None:
    """Files that cannot be read at all are refused by both (chat in a table, a missing file, a broken
    Parquet file)."""
    table = tmp_path / "chat.csv"
    table.write_text("messages\n[]\n")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    for path, task in (
        (table, "chat-completion"),
        (tmp_path / "missing.jsonl", "summarization"),
        (broken, "summarization"),
    ):
        assert assert_agree(job_reader, path, task) == {"refused": True}


# -- generated files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_generated_files(task: str, job_reader: JobReader) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"azft-diff-{task}-"))
    seen: list[int] = []

    @settings(
        max_examples=GENERATED_PER_TASK,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(file=data_files(task))
    def agree(file: GeneratedFile) -> None:
        path = folder / file.name
        path.write_bytes(file.content)
        assert_agree(
            job_reader, path, file.task, file.columns, file.serverless, file.chunk_size, file.batch_size
        )
        path.unlink()
        seen.append(1)

    agree()
    assert len(seen) >= GENERATED_PER_TASK
