"""Fixtures for the client tests: a FakeWorkspace, a FineTuneClient on it, and a project of specs per job kind."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from azfinetune.testing import FakeWorkspace

COMPUTE = "gpu-cluster"
SKU = "Standard_NC24ads_A100_v4"

# One spec per target kind (the YAML below `name:`); `{env}` is the command job's environment.
SPEC_BODIES: dict[str, str] = {
    "command": f"""task: chat-completion
model: phi-3-mini-4k-instruct
data: {{train: data/train.jsonl, validation: data/valid.jsonl}}
method: {{technique: lora}}
training: {{epochs: 1, max_seq_length: 1024}}
target: {{kind: command, compute: {COMPUTE}, instance_type: {SKU}}}
environment: {{env}}
secrets: {{HF_TOKEN: "keyvault://kv-test/hf-token"}}
tags: {{team: tests}}
""",
    "pipeline": f"""task: chat-completion
model: phi-3-mini-4k-instruct
data: {{train: data/train.jsonl, validation: data/valid.jsonl}}
training: {{epochs: 1, max_seq_length: 1024}}
target: {{kind: pipeline, compute: {COMPUTE}, instance_type: {SKU}}}
environment: {{env}}
""",
    "registry-pipeline": f"""task: chat-completion
model: phi-3-mini-4k-instruct
data: {{train: data/train.jsonl, validation: data/valid.jsonl}}
method: {{technique: lora, lora: {{r: 8, alpha: 16, dropout: 0.1}}}}
training: {{epochs: 1, per_device_batch_size: 1, max_seq_length: 1024}}
target: {{kind: registry-pipeline, compute: {COMPUTE}, instance_type: {SKU}}}
""",
    "serverless": """task: chat-completion
model: phi-4-mini-instruct
data: {train: data/train.jsonl, validation: data/valid.jsonl}
training: {epochs: 2, per_device_batch_size: 2}
target: {kind: serverless}
""",
    "finetuning-job": f"""task: chat-completion
model: phi-4-mini-instruct
data: {{train: data/train.jsonl, validation: data/valid.jsonl}}
training: {{epochs: 2, per_device_batch_size: 2}}
target: {{kind: finetuning-job, compute: {COMPUTE}, instance_type: {SKU}}}
""",
}

KINDS = list(SPEC_BODIES)


def kind_params() -> list[Any]:
    return [pytest.param(kind, id=kind) for kind in KINDS]


def chat_lines(count: int, *, tag: str = "") -> str:
    lines = []
    for i in range(count):
        messages = [
            {"role": "user", "content": f"question {i} {tag}".strip()},
            {"role": "assistant", "content": f"answer {i} {tag}".strip()},
        ]
        lines.append(json.dumps({"messages": messages}))
    return "\n".join(lines) + "\n"


class Project:
    """A folder with data files and specs; `spec(kind, name=..., **extra)` writes one and returns its path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / "train.jsonl").write_text(chat_lines(12))
        (root / "data" / "valid.jsonl").write_text(chat_lines(10, tag="v"))

    def spec(
        self,
        kind: str = "command",
        *,
        name: str | None = None,
        env: str = "azureml:my-env:3",
        extra: str = "",
    ) -> Path:
        name = name or f"t-{kind}"
        body = SPEC_BODIES[kind].replace("{env}", env)
        path = self.root / f"{name}.yaml"
        path.write_text(f"name: {name}\n{body}{extra}")
        return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)  # azure-ai-ml names experiments after the working directory
    for variable in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(variable, raising=False)
    return Project(root)


@pytest.fixture
def ws() -> Iterator[FakeWorkspace]:
    with FakeWorkspace(computes={COMPUTE: SKU}) as fake:
        yield fake


def workspace_client(ws: FakeWorkspace) -> Any:
    """A FineTuneClient made the production way (its own MLClient, azfinetune's retry settings) on the fake."""
    from azfinetune.client import FineTuneClient

    return FineTuneClient(
        ws.credential,
        subscription_id=ws.subscription_id,
        resource_group=ws.resource_group,
        workspace_name=ws.workspace,
    )


@pytest.fixture
def client(ws: FakeWorkspace) -> Any:
    return workspace_client(ws)


def job_puts(ws: FakeWorkspace) -> list[Any]:
    return [
        r for r in ws.requests_to("PUT", "/jobs/") if "/jobs/" in r.path and r.host == "management.azure.com"
    ]


MakeSpec = Callable[..., Path]
