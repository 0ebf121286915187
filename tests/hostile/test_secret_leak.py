"""Known fake secrets planted in spec fields, --set values, URLs of every encoding, the environment folder and
the environment variables: refused before anything is sent, never echoed; a clean submit with the variables set
sends and prints none of them (request bodies, headers, uploaded blobs, outputs) on FakeWorkspace (issue 15)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult, run_cli
from tests.client.conftest import COMPUTE, SKU, client, project, ws
from tests.hostile.conftest import BASE_SPEC, EXAMPLES
from tests.hostile.test_hostile_spec import FAKE_SECRETS

__all__ = ["client", "project", "run_cli", "ws"]

SET_KEYS = ["description", "tags.team", "register.description", "data.train", "name"]

ENV_SECRETS = {
    "HF_TOKEN": FAKE_SECRETS["huggingface"],
    "HUGGING_FACE_HUB_TOKEN": FAKE_SECRETS["huggingface"] + "x",
    "GITHUB_TOKEN": FAKE_SECRETS["github"],
    "GH_TOKEN": FAKE_SECRETS["github-pat"],
    "OPENAI_API_KEY": FAKE_SECRETS["openai"],
    "AZURE_OPENAI_API_KEY": "azure-openai-secret-key-for-tests-0001",
    "AWS_ACCESS_KEY_ID": FAKE_SECRETS["aws"],
    "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key-for-tests-00002",
    "AZURE_CLIENT_SECRET": "azure-client-secret-for-tests-000003",
    "AZURE_STORAGE_CONNECTION_STRING": FAKE_SECRETS["connection-string"],
    "AZURE_STORAGE_KEY": "c2VjcmV0U3RvcmFnZUtleUZvclRlc3RzMDAwNA==",
    "WANDB_API_KEY": "wandb-secret-key-for-tests-000000005",
    "MLFLOW_TRACKING_TOKEN": "mlflow-secret-token-for-tests-000006",
    "COMET_API_KEY": "comet-secret-key-for-tests-0000000007",
    "NEPTUNE_API_TOKEN": "neptune-secret-token-for-tests-00008",
    "DATABRICKS_TOKEN": "dapi-secret-token-for-tests-00000009",
}


def _clean(texts: list[str], secrets: list[str], where: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a planted secret leaked into {where}"


@pytest.mark.parametrize("key", SET_KEYS)
@pytest.mark.parametrize("secret_name", sorted(FAKE_SECRETS))
def test_a_secret_given_with_set_is_refused_and_not_echoed(
    tmp_path: Path, run_cli: Callable[..., CliResult], ws: FakeWorkspace, key: str, secret_name: str
) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "chat-train.jsonl", tmp_path / "data" / "chat-train.jsonl")
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    secret = FAKE_SECRETS[secret_name]
    for command in (("build",), ("submit", "--dry-run"), ("submit",)):
        result = run_cli(*command, str(spec), "--set", f"{key}={secret}")
        assert result.code == 2, result.text
        assert "must not carry credentials" in result.text and f"--set: {key}" in result.text
        _clean([result.text], [secret], f"`{' '.join(command)}` output")
    assert ws.requests == []


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    return list(ENV_SECRETS.values())


def test_a_clean_submit_sends_no_environment_secret(
    tmp_path: Path, run_cli: Callable[..., CliResult], ws: FakeWorkspace, secret_environment: list[str]
) -> None:
    assert len(secret_environment) >= 15
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "chat-train.jsonl", tmp_path / "data" / "chat-train.jsonl")
    spec = tmp_path / "spec.yaml"
    text = BASE_SPEC.replace("compute: gpu-a100", f"compute: {COMPUTE}")
    spec.write_text(text.replace("Standard_NC24ads_A100_v4", SKU), encoding="utf-8")
    outputs = [
        run_cli("build", str(spec)),
        run_cli("submit", "--dry-run", str(spec)),
        run_cli("submit", str(spec)),
    ]
    assert [r.code for r in outputs] == [0, 0, 0], [r.text for r in outputs]
    assert ws.requests, "the submit reached the fake"
    bodies = [r.text for r in ws.requests if r.body]
    headers = [str(dict(r.headers)) for r in ws.requests]
    blobs = [blob.decode("utf-8", errors="replace") for blob in ws.blobs.values()]
    _clean([r.text for r in outputs], secret_environment, "an output")
    _clean(bodies, secret_environment, "a request body")
    _clean(headers, secret_environment, "a request header")
    _clean(blobs, secret_environment, "an uploaded blob")


def test_an_environment_folder_with_a_dotenv_is_refused_before_upload(
    tmp_path: Path, run_cli: Callable[..., CliResult], ws: FakeWorkspace
) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "chat-train.jsonl", tmp_path / "data" / "chat-train.jsonl")
    shutil.copytree(EXAMPLES.parents[1] / "environments" / "finetune-gpu", tmp_path / "env")
    (tmp_path / "env" / ".env").write_text(f"HF_TOKEN={FAKE_SECRETS['huggingface']}\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE_SPEC + "environment: ./env\n", encoding="utf-8")
    result = run_cli("submit", str(spec))
    assert result.code == 2 and "credential files" in result.text and ".env" in result.text, result.text
    _clean([result.text], [FAKE_SECRETS["huggingface"]], "the error")
    assert ws.requests == []
    (tmp_path / "env" / ".amlignore").write_text(".env\n", encoding="utf-8")
    assert run_cli("validate", "--no-data", str(spec)).code == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".env", f"HF_TOKEN={FAKE_SECRETS['huggingface']}\n"),
        ("deploy/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"),
        ("notes.txt", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + "A" * 86 + "==;\n"),
    ],
)
def test_a_job_code_folder_with_credentials_is_refused_before_upload(
    name: str,
    content: str,
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
    ws: FakeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """jobs/src goes up with every command and pipeline job: a credential file left in it is refused (exit 2,
    the file named, its value never printed), and .amlignore lets it stay, as azure-ai-ml's upload reads it."""
    import azfinetune.targets._paths as paths

    code = tmp_path / "code"
    shutil.copytree(EXAMPLES.parents[1] / "jobs" / "src", code, ignore=shutil.ignore_patterns("__pycache__"))
    (code / name).parent.mkdir(parents=True, exist_ok=True)
    (code / name).write_text(content, encoding="utf-8")
    monkeypatch.setattr(paths, "job_code_dir", lambda: code)
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "chat-train.jsonl", tmp_path / "data" / "chat-train.jsonl")
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    result = run_cli("submit", str(spec))
    assert result.code == 2 and "job code folder" in result.text and name in result.text, result.text
    _clean([result.text], [FAKE_SECRETS["huggingface"], "A" * 86], "the error")
    assert ws.requests == []
    (code / ".amlignore").write_text(f"{name}\n", encoding="utf-8")
    assert run_cli("validate", "--no-data", str(spec)).code == 0
