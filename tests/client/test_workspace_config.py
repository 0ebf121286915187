"""Which workspace a client talks to: flags > spec > environment > config.json; constructors stay offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azfinetune.client import FineTuneClient, WorkspaceConfig, resolve_workspace, use_ml_client
from azfinetune.errors import UserInputError
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project


def write_config(folder: Path, **values: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(values))
    return path


def test_precedence_value_by_value(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from azfinetune.spec import load_spec

    write_config(
        project.root, subscription_id="sub-config", resource_group="rg-config", workspace_name="ws-config"
    )
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-env")
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "ws-env")
    spec = load_spec(
        project.spec(
            "serverless",
            extra="workspace: {subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg-spec, name: ws-spec}\n",
        )
    )

    assert resolve_workspace() == WorkspaceConfig(
        "sub-config",
        "rg-env",
        "ws-env",
        {
            "subscription_id": f"config {project.root / 'config.json'}",
            "resource_group": "env AZURE_RESOURCE_GROUP",
            "workspace_name": "env AZUREML_WORKSPACE_NAME",
        },
    )
    from_spec = resolve_workspace(spec=spec)
    assert (from_spec.subscription_id, from_spec.resource_group, from_spec.workspace_name) == (
        "11111111-2222-3333-4444-555555555555",
        "rg-spec",
        "ws-spec",
    )
    flagged = resolve_workspace(spec=spec, workspace_name="ws-flag")
    assert (flagged.resource_group, flagged.workspace_name) == ("rg-spec", "ws-flag")
    assert flagged.sources["workspace_name"] == "flag"


def test_config_json_is_found_as_mlclient_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(variable, raising=False)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    write_config(tmp_path / "a" / ".azureml", subscription_id="s", resource_group="g", workspace_name="w")
    monkeypatch.chdir(deep)
    assert (
        resolve_workspace().workspace_id
        == "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"
    )
    scope = "/subscriptions/s2/resourceGroups/g2/providers/Microsoft.MachineLearningServices/workspaces/w2"
    explicit = tmp_path / "other.json"
    explicit.write_text(json.dumps({"Scope": scope}))
    assert resolve_workspace(path=explicit).workspace_id == scope
    with pytest.raises(UserInputError, match=r"no config\.json"):
        resolve_workspace(path=tmp_path / "nowhere")


def test_missing_values_are_reported_on_first_use_not_at_construction(project: Project) -> None:
    client = FineTuneClient.from_config(workspace_name="w")
    assert client.workspace.missing == ["subscription_id", "resource_group"]
    with pytest.raises(UserInputError) as info:
        client.ml_client  # noqa: B018
    assert "missing subscription id, resource group" in str(info.value)
    assert "AZURE_SUBSCRIPTION_ID" in str(info.value) and "config.json" in str(info.value)


def test_constructors_make_no_network_call(ws: FakeWorkspace) -> None:
    client = FineTuneClient(ws.credential, subscription_id="s", resource_group="g", workspace_name="w")
    client.ml_client  # noqa: B018  (MLClient construction is offline too)
    FineTuneClient.from_config(subscription_id="s", resource_group="g", workspace_name="w")
    FineTuneClient(ml_client=ws.ml_client())
    assert ws.requests == []
    assert ws.credential.scopes_requested == []  # not even a token


def test_default_credential_is_default_azure_credential() -> None:
    from azure.identity import DefaultAzureCredential

    client = FineTuneClient(subscription_id="s", resource_group="g", workspace_name="w")
    assert isinstance(client.credential, DefaultAzureCredential)


def test_the_mlclient_gets_explicit_bounded_retries_and_no_http_logging(ws: FakeWorkspace) -> None:
    from azure.core.pipeline.policies import NetworkTraceLoggingPolicy, RetryPolicy

    client = FineTuneClient(ws.credential, subscription_id="s", resource_group="g", workspace_name="w")
    pipeline = client.ml_client.jobs._operation_2023_02_preview._client._pipeline
    policies = pipeline._impl_policies
    retry = next(p for p in policies if isinstance(p, RetryPolicy))
    assert (retry.total_retries, retry.status_retries, retry.connect_retries) == (10, 5, 5)
    assert retry.backoff_max == 60
    tracing = [p for p in policies if isinstance(p, NetworkTraceLoggingPolicy)]
    assert all(not p.enable_http_logger for p in tracing)


def test_use_ml_client_overrides_from_config(ws: FakeWorkspace) -> None:
    ml_client = ws.ml_client()
    with use_ml_client(ml_client):
        client = FineTuneClient.from_config(subscription_id="ignored")
        assert client.ml_client is ml_client
        assert client.workspace.workspace_name == ws.workspace
    assert FineTuneClient.from_config(subscription_id="s").workspace.subscription_id == "s"


def test_studio_url_needs_no_request(ws: FakeWorkspace) -> None:
    client = FineTuneClient(ml_client=ws.ml_client())
    url = client.studio_url("my-job")
    assert url.startswith("https://ml.azure.com/runs/my-job?wsid=/subscriptions/")
    assert ws.requests == []
