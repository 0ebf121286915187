"""No secret in any request body, log line, CLI output (dry runs included) or error message."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Iterable

import pytest

from azfinetune.client import FineTuneClient, redact
from azfinetune.errors import AzFineTuneError, SpecError
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project, kind_params

# Values that must never leave the process in the clear. The environment ones are set for every test here.
ENV_SECRETS = {
    "HF_TOKEN": "hf_TestSecretValue0123456789abcdef",
    "AZURE_CLIENT_SECRET": "azure-client-secret-for-tests-7d1f",
    "WANDB_API_KEY": "wandb-test-secret-key-0042",
}
FAKE_SAS_SIGNATURES = ("ZmFrZS1zYXMtc2lnbmF0dXJl", "ZmFrZS1sb2ctc2Fz")  # the fake's upload and log SAS `sig`s
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")


def account_key(ws: FakeWorkspace) -> str:
    """The datastore key the fake hands out through listSecrets (same formula as FakeWorkspace._list_secrets)."""
    return base64.b64encode(hashlib.sha512(ws.workspace_guid.encode()).digest()).decode()


def secrets_of(ws: FakeWorkspace) -> list[str]:
    return [*ENV_SECRETS.values(), *FAKE_SAS_SIGNATURES, account_key(ws)]


def assert_clean(texts: Iterable[str], secrets: list[str], *, where: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
        assert not JWT.search(text), f"a token leaked into {where}"
        assert "Bearer " not in text, f"a bearer token leaked into {where}"


@pytest.fixture(autouse=True)
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.DEBUG)  # everything every logger emits, azure-core's HTTP logging included
    return lambda: [caplog.text, *(str(record.args) for record in caplog.records)]


@pytest.mark.parametrize("kind", kind_params())
def test_submit_sends_and_logs_no_secret(
    kind: str,
    project: Project,
    ws: FakeWorkspace,
    client: FineTuneClient,
    all_logs: Callable[[], list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = project.spec(kind)
    result = client.submit(spec)
    client.submit(spec)
    client.get(result.name)
    ws.set_logs(result.name, {"user_logs/std_log.txt": "training...\n"})
    list(client.stream(result.name, timeout=600))
    bodies = [r.text for r in ws.requests if r.body]
    headers = [
        str({k: v for k, v in r.headers.items() if k.lower() != "x-azureml-token"}) for r in ws.requests
    ]
    assert_clean(bodies, secrets_of(ws), where="a request body")
    assert_clean(headers, secrets_of(ws), where="a request header")
    logs = all_logs()
    assert "Request URL" in logs[0]  # azure-core's HTTP logging was captured, so the scan means something
    assert_clean(logs, secrets_of(ws), where="the logs")
    assert_clean(capsys.readouterr(), secrets_of(ws), where="stdout/stderr")
    assert_clean([str(result.to_dict())], secrets_of(ws), where="the result")


def test_the_user_token_header_is_sent_only_with_pipeline_jobs(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    client.submit(project.spec("command"))
    assert not any("x-azureml-token" in {k.lower() for k in r.headers} for r in ws.requests)


@pytest.mark.parametrize("kind", kind_params())
def test_dry_run_output_has_no_secret(
    kind: str,
    project: Project,
    ws: FakeWorkspace,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary

    monkeypatch.setitem(cli_package.COMMANDS, "submit", "azfinetune.cli.submit:submit")
    for extra in ([], ["--json"]):
        assert (
            run_with_boundary(cli_package.cli, ["submit", str(project.spec(kind)), "--dry-run", *extra]) == 0
        )
        out, err = capsys.readouterr()
        assert_clean([out, err], secrets_of(ws), where="the dry-run output")
    assert ws.requests == []


def test_a_literal_secret_in_the_spec_is_refused_without_echoing_it(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    value = ENV_SECRETS["HF_TOKEN"]
    with pytest.raises(SpecError) as info:
        client.submit(project.spec("command"), overrides=[f"secrets.HF_TOKEN={value}"])
    assert value not in str(info.value) and "not printed" in str(info.value)
    assert ws.requests == []


def test_a_sas_uri_is_refused_without_echoing_its_signature(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    signature = "c2VjcmV0LXNhcy1zaWduYXR1cmU%3D"
    uri = f"https://acct.blob.core.windows.net/data/train.jsonl?sv=2022-11-02&sp=r&sig={signature}"
    with pytest.raises(SpecError) as info:
        client.submit(project.spec("command"), overrides=[f"data.train={uri}"])
    assert signature not in str(info.value)
    assert ws.requests == []


def test_service_errors_are_redacted(project: Project, ws: FakeWorkspace, client: FineTuneClient) -> None:
    leaked = f"https://acct.blob.core.windows.net/c/x?sv=1&sig={FAKE_SAS_SIGNATURES[0]} key={account_key(ws)}"
    ws.inject("PUT", r"/jobs/[^/]+$", status=400, code="UserError", message=f"cannot read {leaked}")
    with pytest.raises(AzFineTuneError) as info:
        client.submit(project.spec("command"))
    assert_clean([str(info.value)], secrets_of(ws), where="an error message")
    assert "sig=REDACTED" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "https://a.blob.core.windows.net/c/b?sv=2021&sig=abc%2Bdef&se=2099",
            "sv=REDACTED&sig=REDACTED&se=REDACTED",
            id="sas",
        ),
        pytest.param("Authorization: Bearer eyJhbGciOi.eyJhdWQiOi.sig", "Bearer REDACTED", id="bearer"),
        pytest.param(
            "DefaultEndpointsProtocol=https;AccountKey=abc/def==;",
            "AccountKey=REDACTED",
            id="connection-string",
        ),
        pytest.param('{"key": "c2VjcmV0"}', '"key": "REDACTED', id="json-key"),
        pytest.param("token eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.abc", "REDACTED-JWT", id="jwt"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert expected in redact(text)
