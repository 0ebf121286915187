"""KaitoClient against FakeKubernetes (the real `kubernetes` client on a loopback API server): submit once under the
content-hash name, status progression, logs, cancel, list, the CLI verbs — and repeated submits under faults that
leave exactly one Workspace per spec."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfinetune.client import JobService, KaitoClient, kaito_status
from azfinetune.errors import (
    AuthError,
    AzFineTuneError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    ServiceError,
    SpecError,
    UserInputError,
)
from azfinetune.spec import load_spec
from azfinetune.targets.kaito import ANNOTATION_SPEC_HASH, build_kaito_job
from azfinetune.testing import FakeKubernetes

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
SKU = "Standard_NC24ads_A100_v4"


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(namespaces=("default", "tuning")) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(ROW) for _ in range(12)) + "\n")
    return tmp_path


def write(folder: Path, *, name: str = "bot", target: str = "", extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: phi-4-mini-instruct\ndata: {{train: train.jsonl}}\n"
        "training: {epochs: 1, mask_prompt: false}\n"
        f"target: {{kind: kaito, instance_type: {SKU}, input: {{pvc: data}}, output: {{pvc: out}}"
        f"{', ' + target if target else ''}}}\n{extra}"
    )
    return path


def client_of(cluster: FakeKubernetes, **kwargs: Any) -> KaitoClient:
    kwargs.setdefault("sleep", lambda seconds: None)
    return KaitoClient(cluster.api_client(), **kwargs)


# -- submit once ---------------------------------------------------------------------------------------------


def test_the_client_is_a_job_service() -> None:
    assert isinstance(KaitoClient(), JobService)


def test_submit_creates_the_configmap_and_the_workspace_once(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    first = client.submit(str(write(folder)))
    assert first.created and first.kind == "kaito" and first.status == "Queued"
    (workspace,) = cluster.workspaces()
    (config_map,) = cluster.config_maps()
    assert workspace["metadata"]["name"] == config_map["metadata"]["name"] == first.name
    assert workspace["tuning"]["config"] == first.name and "spec" not in workspace
    again = client.submit(str(write(folder)))
    assert not again.created and again.name == first.name
    assert len(cluster.workspaces()) == 1 and len(cluster.config_maps()) == 1
    creates = [r for r in cluster.requests if r.method == "POST"]
    assert len(creates) == 2  # one ConfigMap, one Workspace


def test_dry_run_sends_nothing(cluster: FakeKubernetes, folder: Path) -> None:
    result = client_of(cluster).submit(str(write(folder)), dry_run=True)
    assert result.dry_run and result.status is None and cluster.requests == []
    assert result.job.workspace["metadata"]["name"] == result.name


def test_offline_errors_send_nothing(cluster: FakeKubernetes, folder: Path) -> None:
    with pytest.raises(SpecError):
        client_of(cluster).submit(str(write(folder, extra="method: {technique: dora}\n")))
    assert cluster.requests == []


def test_a_workspace_of_another_spec_under_the_name_is_a_conflict(
    cluster: FakeKubernetes, folder: Path
) -> None:
    spec = load_spec(write(folder))
    job = build_kaito_job(spec)
    client = client_of(cluster)
    client.submit(spec)
    workspace = cluster.get("workspaces", "default", job.name)
    assert workspace is not None
    workspace["metadata"]["annotations"][ANNOTATION_SPEC_HASH] = "0" * 64
    with pytest.raises(ConflictError) as caught:
        client.submit(spec)
    assert "made from another spec" in caught.value.message and "000000000000" in caught.value.message
    assert "azfinetune cancel" in (caught.value.hint or "")


def test_a_configmap_with_other_content_is_a_conflict(cluster: FakeKubernetes, folder: Path) -> None:
    spec = load_spec(write(folder))
    job = build_kaito_job(spec)
    cluster.objects[("configmaps", "default", job.name)] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": job.name, "namespace": "default"},
        "data": {"training_config.yaml": "training_config: {}\n"},
    }
    with pytest.raises(ConflictError, match="other content"):
        client_of(cluster).submit(spec)
    assert cluster.workspaces() == []


def test_kaitos_admission_refusal_is_a_user_error(folder: Path) -> None:
    with FakeKubernetes(node_auto_provisioning=False) as byo:  # BYO nodes: instanceType must be empty
        with pytest.raises(UserInputError) as caught:
            client_of(byo).submit(str(write(folder)))
        assert "Kaito refused it" in caught.value.message and "resource.instanceType" in caught.value.message
        assert byo.workspaces() == [] and [r.status for r in byo.requests if r.method == "POST"] == [201, 422]


def test_a_missing_namespace(cluster: FakeKubernetes, folder: Path) -> None:
    with pytest.raises(NotFoundError) as caught:
        client_of(cluster).submit(str(write(folder, target="namespace: nowhere")))
    assert "kubectl create namespace nowhere" in (caught.value.hint or "")


def test_the_namespace_flag_wins(cluster: FakeKubernetes, folder: Path) -> None:
    result = client_of(cluster, namespace="tuning").submit(str(write(folder)))
    (workspace,) = cluster.workspaces("tuning")
    assert workspace["metadata"]["name"] == result.name and cluster.workspaces("default") == []


def test_wrong_credentials(folder: Path) -> None:
    with FakeKubernetes(token="right") as secured:
        configuration = secured.configuration()
        configuration.api_key = {"BearerToken": "wrong"}
        from kubernetes import client as k8s

        with pytest.raises(AuthError) as caught:
            KaitoClient(k8s.ApiClient(configuration), sleep=lambda s: None).submit(str(write(folder)))
        assert "wrong" not in str(caught.value)


def test_new_run_makes_another_workspace(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    first = client.submit(str(write(folder)))
    second = client.submit(str(write(folder)), run_suffix="r20260101000000")
    assert second.created and second.name != first.name and len(cluster.workspaces()) == 2


# -- follow ----------------------------------------------------------------------------------------------------


def test_status_progression_logs_and_the_job(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    name = client.submit(str(write(folder))).name
    seen = [client.get(name).status for _ in range(4)]
    assert seen == ["Provisioning", "Starting", "Running", "Completed"]
    job = cluster.get("jobs", "default", name)
    assert job is not None and job["status"]["succeeded"] == 1
    text = client.logs(name)
    assert "Model Loaded" in text and "Fine-Tuning completed" in text
    info = client.get(name)
    assert info.compute == SKU and info.spec_name == "bot" and info.spec_hash and info.terminal


def test_conditions_as_kaito_sets_them(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    name = client.submit(str(write(folder))).name
    for _ in range(4):
        client.get(name)
    workspace = cluster.get("workspaces", "default", name)
    assert workspace is not None
    conditions = {c["type"]: c["status"] for c in workspace["status"]["conditions"]}
    assert conditions == {"ResourceReady": "True", "JobStarted": "True", "WorkspaceSucceeded": "True"}
    assert kaito_status(workspace) == "Completed" and kaito_status(None) == "NotFound"


def test_stream_follows_until_done(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    name = client.submit(str(write(folder))).name
    events = list(client.stream(name, follow=True, poll_interval=0))
    statuses = [e.status for e in events if e.kind == "status"]
    assert statuses == ["Provisioning", "Starting", "Running", "Completed"]
    lines = [e.text for e in events if e.kind == "log"]
    assert lines[0].startswith("training_config:") and lines[-1] == "Fine-Tuning completed"
    assert len(lines) == len(set(lines))  # each line once


def test_a_failed_tuning(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    name = client.submit(str(write(folder))).name
    client.get(name)
    cluster.advance("default", name, "Failed", reason="CUDA out of memory")
    with pytest.raises(JobFailedError) as caught:
        client.wait(name, poll_interval=0)
    assert "CUDA out of memory" in caught.value.message
    assert "ERROR CUDA out of memory" in client.logs(name)
    with pytest.raises(JobFailedError):
        list(client.stream(name, poll_interval=0))


def test_wait_returns_the_completed_job(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    statuses: list[str | None] = []
    result = client.submit(str(write(folder)), wait=True)
    assert result.status == "Completed"
    assert client.wait(result.name, on_status=statuses.append, poll_interval=0).status == "Completed"
    assert statuses == ["Completed"]


def test_cancel_deletes_the_workspace_its_job_and_configmap(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    cluster.set_progression(
        ["Pending", "ResourceReady", "JobStarted", "JobStarted", "JobStarted", "Succeeded"]
    )
    name = client.submit(str(write(folder))).name
    for _ in range(3):
        client.get(name)  # the Job is running
    assert cluster.get("jobs", "default", name) is not None
    info = client.cancel(name)
    assert info.status == "Canceled"
    assert cluster.objects == {}
    with pytest.raises(NotFoundError):
        client.get(name)
    again = client.submit(str(write(folder)))  # a new one under the same name
    assert again.created and again.name == name


def test_cancel_leaves_a_finished_workspace(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    name = client.submit(str(write(folder)), wait=True).name
    assert client.cancel(name).status == "Completed" and len(cluster.workspaces()) == 1


def test_list_shows_azfinetunes_workspaces(cluster: FakeKubernetes, folder: Path) -> None:
    client = client_of(cluster)
    one = client.submit(str(write(folder, name="one"))).name
    two = client.submit(str(write(folder, name="two"))).name
    foreign = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "theirs", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "tuning": {},
    }
    cluster.objects[("workspaces", "default", "theirs")] = foreign
    assert {i.name for i in client.list()} == {one, two}
    assert [i.name for i in client.list(spec_name="two")] == [two]
    assert "theirs" in {i.name for i in client.list(all_jobs=True)}
    assert client.list(status="Completed") == []


# -- kubeconfig ------------------------------------------------------------------------------------------------


def test_kubeconfig_and_context(cluster: FakeKubernetes, folder: Path, tmp_path: Path) -> None:
    path = cluster.write_kubeconfig(tmp_path, context="aks-test", namespace="tuning")
    client = KaitoClient(kubeconfig=path, context="aks-test", sleep=lambda s: None)
    assert client.namespace == "tuning"
    name = client.submit(str(write(folder, target="namespace: tuning"))).name
    assert client.get(name).status == "Provisioning"
    with pytest.raises(UserInputError) as caught:
        KaitoClient(kubeconfig=path, context="nope").get(name)
    assert "aks-test" in (caught.value.hint or "")


def test_no_cluster_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UserInputError) as caught:
        KaitoClient().get("x")
    assert "az aks get-credentials" in (caught.value.hint or "")


# -- faults ----------------------------------------------------------------------------------------------------


def test_a_lost_create_answer_makes_one_workspace(cluster: FakeKubernetes, folder: Path) -> None:
    cluster.lose(method="POST", path="/workspaces$")
    result = client_of(cluster).submit(str(write(folder)))
    assert result.created and len(cluster.workspaces()) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried(cluster: FakeKubernetes, folder: Path, status: int) -> None:
    cluster.fail(status, method="POST", path="/workspaces$", times=2)
    cluster.fail(status, method="GET", times=1)
    result = client_of(cluster).submit(str(write(folder)))
    assert result.created and len(cluster.workspaces()) == 1


def test_a_409_from_a_concurrent_create(cluster: FakeKubernetes, folder: Path) -> None:
    spec = load_spec(write(folder))
    job = build_kaito_job(spec)
    cluster.fail(409, method="POST", path="/workspaces$")
    # the "concurrent" submit: the same spec's Workspace appears meanwhile
    client = client_of(cluster)
    client._ensure_config_map(job)
    client_of(cluster).submit(spec)
    assert len(cluster.workspaces()) == 1


def test_the_cluster_never_answers(folder: Path) -> None:
    with FakeKubernetes() as cluster:
        cluster.drop(times=None)
        with pytest.raises(ServiceError) as caught:
            client_of(cluster, attempts=3).submit(str(write(folder)))
        assert "cannot reach the cluster" in caught.value.message
        assert cluster.workspaces() == []


def test_soak_repeated_submits_under_faults_make_one_workspace_per_spec(
    cluster: FakeKubernetes, folder: Path
) -> None:
    specs = [write(folder, name=f"soak-{i}") for i in range(3)]
    cluster.chaos(0.3, kinds=("409", "500", "503", "lost", "drop"), seed=7)
    client = client_of(cluster, attempts=12)
    outcomes: dict[str, list[bool]] = {}
    failures = 0
    for _round in range(6):
        for path in specs:
            try:
                result = client.submit(str(path))
            except (ConflictError, ServiceError) as error:
                assert "made from another spec" not in error.message  # never a false conflict
                failures += 1
                continue
            outcomes.setdefault(result.name, []).append(result.created)
    cluster.calm()
    assert failures <= 3, failures
    names = [w["metadata"]["name"] for w in cluster.workspaces()]
    assert sorted(names) == sorted(set(names)) and len(names) == len(specs)
    assert len(cluster.config_maps()) == len(specs)
    for path in specs:
        final = client.submit(str(path))
        assert not final.created and final.name in names
        assert sum(outcomes.get(final.name, [])) <= 1  # at most one submit said it created it
    faulted = [r for r in cluster.requests if r.fault]
    assert len(faulted) > 10, "the soak must actually inject faults"


# -- the CLI verbs ---------------------------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_with_boundary(cli_package.cli, list(args))
    return code, out.getvalue() + err.getvalue()


def test_the_cli_verbs(
    cluster: FakeKubernetes, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.write_kubeconfig(tmp_path)))
    monkeypatch.setenv("COLUMNS", "250")
    spec = str(write(folder))
    code, text = _run("submit", spec)
    assert code == 0, text
    (workspace,) = cluster.workspaces()
    name = workspace["metadata"]["name"]
    assert f"submitted {name}" in text and f"azfinetune status {name} --namespace default" in text
    code, text = _run("submit", spec)
    assert code == 0 and "already submitted" in text and len(cluster.workspaces()) == 1
    code, text = _run("status", name, "--namespace", "default")
    assert code == 0 and "Starting" in text, text  # each read of the Workspace moves the fake one step
    code, text = _run("status", name, "--namespace", "default", "--json")
    assert json.loads(text)["kind"] == "kaito"
    code, text = _run("list", "--namespace", "default")
    assert code == 0 and name in text
    code, text = _run("logs", name, "--namespace", "default", "--follow")
    assert code == 0 and "Fine-Tuning completed" in text, text
    code, text = _run("cancel", name, "--namespace", "default")
    assert code == 0 and "Completed" in text  # finished: it stays
    code, text = _run("status", "nope", "--namespace", "default")
    assert code == 1 and "no Workspace nope" in text and "Traceback" not in text


def test_the_cli_dry_run_shows_the_manifests(
    cluster: FakeKubernetes, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.write_kubeconfig(tmp_path)))
    code, text = _run("submit", str(write(folder)), "--dry-run")
    assert code == 0 and '"kind": "Workspace"' in text and cluster.requests == []


def test_errors_are_ours(cluster: FakeKubernetes, folder: Path) -> None:
    """Nothing the kubernetes client raises escapes as its own type."""
    client = client_of(cluster, attempts=2)
    cluster.fail(500, times=None)
    with pytest.raises(AzFineTuneError):
        client.get("anything")
