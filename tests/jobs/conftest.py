"""Fixtures for the tests of jobs/src: a tiny Phi-3, its data, and the real entry point run in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from azft_contract.progress import parse_progress_line

from tests.jobs.helpers import JOBS_SRC, EntryPointRun

if str(JOBS_SRC) not in sys.path:
    sys.path.insert(0, str(JOBS_SRC))  # the unit tests import the entry point's modules (`finetune.*`)

# Keep the subprocesses small on shared 2-core CI machines.
THREADS = "2"

# Installed into every entry-point subprocess: connecting anywhere but a unix socket fails the test run,
# the subprocess twin of pytest-socket's --disable-socket.
_NO_NETWORK = """
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse(sock, address):
    if sock.family == getattr(socket, "AF_UNIX", None):
        return None
    raise OSError(f"network access is disabled in azfinetune training tests: {address!r}")


def _guarded_connect(self, address):
    _refuse(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _refuse(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
"""


@pytest.fixture(scope="session")
def tiny_phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from azfinetune.tiny_model import chat_texts, make_tiny_phi3

    torch.set_num_threads(int(THREADS))
    return make_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"), texts=chat_texts())


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from azfinetune.tiny_model import make_chat_dataset

    return make_chat_dataset(tmp_path_factory.mktemp("data") / "chat.jsonl", n=40, seed=0)


@pytest.fixture(scope="session")
def _subprocess_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    guard = tmp_path_factory.mktemp("no-network")
    (guard / "sitecustomize.py").write_text(_NO_NETWORK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZUREML_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(JOBS_SRC), str(guard)]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
            "OMP_NUM_THREADS": THREADS,
            "MKL_NUM_THREADS": THREADS,
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def run_finetune(_subprocess_env: dict[str, str]) -> Callable[..., EntryPointRun]:
    """run_finetune(argv) -> EntryPointRun: `python -m finetune ARGV` with cwd jobs/src, like the Azure ML job."""

    def run(argv: list[str], timeout: float = 240) -> EntryPointRun:
        proc = subprocess.run(
            [sys.executable, "-m", "finetune", *argv],
            cwd=JOBS_SRC,
            env=_subprocess_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = EntryPointRun(proc.returncode, proc.stdout, proc.stderr)
        for line in proc.stdout.split("\n"):
            parsed = parse_progress_line(line)
            if parsed is None:
                continue
            kind, payload = parsed
            if kind == "progress":
                result.progress.append(payload)
            elif kind == "done":
                result.done = payload
            else:
                result.error = payload
        return result

    return run
