"""Races (issue 15): submits of one spec from several threads, and from two processes, make exactly one job and
tell exactly one of them `created=True`; pipelines built at once from different specs keep their own inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from azfinetune.spec import load_spec
from azfinetune.targets import build_job
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project, chat_lines, job_puts, project, workspace_client, ws

__all__ = ["project", "ws"]

THREADS = 6


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZFINETUNE_LOCK_DIR", str(tmp_path / "locks"))


@pytest.mark.parametrize("kind", ["pipeline", "command"])
def test_threads_submitting_one_spec_make_one_job_and_one_creator(
    kind: str, project: Project, ws: FakeWorkspace
) -> None:
    spec = project.spec(kind, name=f"race-{kind}")
    clients = [workspace_client(ws) for _ in range(THREADS)]  # as separate programs would: own MLClients
    start = threading.Barrier(THREADS)

    def submit(client: Any) -> Any:
        start.wait()
        return client.submit(spec)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(submit, clients))
    assert len({r.name for r in results}) == 1
    assert sorted(ws.jobs) == [results[0].name]
    assert [r.created for r in results].count(True) == 1, [r.created for r in results]
    assert len([r for r in job_puts(ws) if r.status in (200, 201)]) == 1  # one create reached the service


def test_pipelines_built_at_once_keep_their_own_data(project: Project) -> None:
    """azure-ai-ml's dsl.pipeline builds on global state: built concurrently, each job still reads its own file."""
    specs = []
    for i in range(4):
        data = project.root / "data" / f"own-{i}.jsonl"
        data.write_text(chat_lines(12, tag=f"spec{i}"))
        path = project.spec("pipeline", name=f"own-data-{i}")
        path.write_text(path.read_text().replace("data/train.jsonl", f"data/own-{i}.jsonl"))
        specs.append((load_spec(path), data.resolve()))
    start = threading.Barrier(len(specs) * 3)

    def build(item: tuple[Any, Path]) -> tuple[Any, Path]:
        start.wait()
        return build_job(item[0]), item[1]

    with ThreadPoolExecutor(len(specs) * 3) as pool:
        built = list(pool.map(build, specs * 3))
    for job, data in built:
        assert Path(job.inputs["train_file"].path).resolve() == data
        assert set(job.jobs) >= {"validate_data", "finetune"}
        assert job.name == build_job(next(s for s, d in specs if d == data)).name


_HOLDER = """
import json, sys, time
from azfinetune.client._locks import submit_lock
with submit_lock("workspace-a", "job-1"):
    started = time.monotonic()
    time.sleep(0.4)
    print(json.dumps([started, time.monotonic()]))
"""


def test_two_processes_take_the_submit_lock_in_turn(tmp_path: Path) -> None:
    """The lock is a file lock: two `azfinetune submit` processes of one spec never look up and create at once."""
    import os

    env = {**os.environ, "AZFINETUNE_LOCK_DIR": str(tmp_path / "locks")}
    processes = [
        subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    spans = sorted(json.loads(p.communicate(timeout=60)[0]) for p in processes)
    assert all(p.returncode == 0 for p in processes)
    (_, first_end), (second_start, _) = spans
    assert second_start >= first_end  # the second held it only after the first let go


def test_the_lock_is_per_workspace_and_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Different jobs (or the same name in another workspace) do not wait for each other."""
    from azfinetune.client._locks import submit_lock

    monkeypatch.setenv("AZFINETUNE_LOCK_DIR", str(tmp_path / "locks"))
    entered = threading.Event()
    with submit_lock("ws-a", "job-1"):

        def other() -> None:
            with submit_lock("ws-b", "job-1"), submit_lock("ws-a", "job-2"):
                entered.set()

        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(5)
        thread.join()
