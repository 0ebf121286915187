"""The job commands on foundry specs and Foundry job ids, in-process against FakeFoundry (no Azure login)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from azfinetune.cli import cli
from azfinetune.cli._app import run_with_boundary
from azfinetune.client import use_foundry_credential
from azfinetune.testing import FakeFoundry
from tests.cli.conftest import CliResult

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"
Run = Callable[..., CliResult]


@pytest.fixture
def fake() -> Iterator[FakeFoundry]:
    with FakeFoundry() as running:
        yield running


@pytest.fixture
def run(fake: FakeFoundry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("AZFINETUNE_DEBUG", raising=False)
    monkeypatch.delenv("AZURE_AI_PROJECT_ENDPOINT", raising=False)

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        with use_foundry_credential(fake.credential):
            code = run_with_boundary(cli, list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return invoke


@pytest.fixture
def spec(tmp_path: Path, fake: FakeFoundry) -> Path:
    """The Ministral example, pointed at the fake's project endpoint."""
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    text = (EXAMPLES / "foundry-ministral-3b.yaml").read_text()
    text = text.replace(
        "https://my-foundry.services.ai.azure.com/api/projects/my-project", fake.project_endpoint
    )
    path = tmp_path / "foundry.yaml"
    path.write_text(text)
    return path


def submitted(run: Run, spec: Path) -> str:
    result = run("submit", str(spec), "--json")
    assert result.code == 0, result.text
    return str(json.loads(result.out)["name"])


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("foundry-*.yaml")))
def test_the_examples_validate(run: Run, example: str) -> None:
    result = run("validate", str(EXAMPLES / example))
    assert result.code == 0, result.text


def test_build_prints_the_requests(run: Run, fake: FakeFoundry) -> None:
    result = run("build", str(EXAMPLES / "foundry-ministral-3b.yaml"), "--format", "json")
    assert result.code == 0, result.text
    document = json.loads(result.out)
    create = document["requests"][-1]
    assert (
        create["url"].endswith("/openai/v1/fine_tuning/jobs")
        and create["json"]["trainingType"] == "GlobalStandard"
    )
    assert [r["multipart"]["purpose"] for r in document["requests"][:-1]] == ["fine-tune", "fine-tune"]
    assert fake.requests == []


def test_submit_dry_run_shows_the_bodies_and_sends_nothing(run: Run, spec: Path, fake: FakeFoundry) -> None:
    result = run("submit", str(spec), "--dry-run")
    assert result.code == 0, result.text
    assert "dry run: support-" in result.out and "(foundry job)" in result.out
    assert '"trainingType": "GlobalStandard"' in result.out and '"n_epochs": 3' in result.out
    assert "would upload data.train" in result.out
    assert fake.requests == []


def test_submit_then_again(run: Run, spec: Path, fake: FakeFoundry) -> None:
    first = run("submit", str(spec))
    assert first.code == 0, first.text
    name = next(iter(fake.jobs))
    assert f"submitted {name} (foundry job, Queued)" in first.out
    assert f"azfinetune logs {name} --follow --foundry-endpoint {fake.project_endpoint}" in first.out
    again = run("submit", str(spec))
    assert again.code == 0 and f"already submitted: {name}" in again.out
    assert len(fake.jobs) == 1


def test_submit_wait_exit_codes(run: Run, spec: Path, fake: FakeFoundry) -> None:
    assert run("submit", str(spec), "--wait").code == 0
    fake.set_progression(("pending", "failed"), error={"code": "internalFailure", "message": "node lost"})
    failed = run("submit", str(spec), "--wait", "--new-run")
    assert failed.code == 1 and "node lost" in failed.err


def test_status_logs_cancel_list_by_job_id(run: Run, spec: Path, fake: FakeFoundry) -> None:
    name = submitted(run, spec)
    flag = ("--foundry-endpoint", fake.project_endpoint)
    status = run("status", name, *flag)
    assert status.code == 0 and "Running" in status.out and "GlobalStandard" in status.out
    logs = run("logs", name, "--follow", *flag)
    assert logs.code == 0, logs.text
    assert "Job enqueued" in logs.out and "Job succeeded." in logs.out and "Completed" in logs.err
    listed = run("list", *flag, "--json")
    assert [j["name"] for j in json.loads(listed.out)] == [name]
    cancel = run("cancel", name, *flag)
    assert cancel.code == 0 and "Completed" in cancel.out  # a finished job stays as it is


def test_a_foundry_job_id_is_routed_by_the_environment(
    run: Run, spec: Path, fake: FakeFoundry, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = submitted(run, spec)
    monkeypatch.setenv("AZURE_AI_PROJECT_ENDPOINT", fake.project_endpoint)
    result = run("status", name, "--json")
    assert result.code == 0 and json.loads(result.out)["kind"] == "foundry"
    assert "--foundry-endpoint" not in run("submit", str(spec)).out  # the environment has it


def test_a_foundry_job_id_without_an_endpoint_is_a_user_error(run: Run) -> None:
    result = run("status", "ftjob-0123")
    assert (
        result.code == 2
        and "no Azure AI Foundry endpoint" in result.err
        and "--foundry-endpoint" in result.err
    )


def test_cancel_a_running_job(run: Run, spec: Path, fake: FakeFoundry) -> None:
    fake.set_progression(("pending", "running", "running", "running", "succeeded"))
    name = submitted(run, spec)
    result = run("cancel", name, "--foundry-endpoint", fake.project_endpoint)
    assert result.code == 0 and "cancel requested" in result.out and "Canceled" in result.out
    assert fake.jobs[name].status == "cancelled"


def test_report_lists_the_checkpoints(run: Run, spec: Path, fake: FakeFoundry) -> None:
    name = submitted(run, spec)
    fake.advance(name, "succeeded")
    result = run("report", name, "--foundry-endpoint", fake.project_endpoint)
    assert result.code == 0, result.text
    assert "Checkpoints" in result.out and "ckpt-step-4" in result.out and "train_loss" in result.out
    data = json.loads(run("report", name, "--foundry-endpoint", fake.project_endpoint, "--json").out)
    assert [c["step_number"] for c in data["checkpoints"]] == [2, 3, 4]


def test_deploy_an_open_model_says_where(run: Run, spec: Path, fake: FakeFoundry) -> None:
    name = submitted(run, spec)
    flag = ("--foundry-endpoint", fake.project_endpoint)
    early = run("deploy", name, *flag)
    assert early.code == 2 and "only a job that succeeded" in early.err
    fake.advance(name, "succeeded")
    result = run("deploy", name, *flag)
    assert (
        result.code == 2 and "Foundry portal" in result.err and fake.jobs[name].fine_tuned_model in result.err
    )


def test_deploy_an_openai_model_prints_the_deployment_command(
    run: Run, spec: Path, fake: FakeFoundry
) -> None:
    text = (
        spec.read_text()
        .replace("model: Ministral-3B", "model: gpt-4.1-mini")
        .replace("  suffix: support\n", "")
    )
    spec.write_text(text.replace("learning_rate_multiplier: 1.0", "learning_rate_multiplier: 0.1"))
    name = submitted(run, spec)
    fake.advance(name, "succeeded")
    result = run("deploy", name, "--foundry-endpoint", fake.project_endpoint, "--name", "support-bot")
    assert result.code == 0, result.text
    assert (
        "az cognitiveservices account deployment create" in result.out
        and "--deployment-name support-bot" in result.out
    )
    assert "--sku-name GlobalStandard" in result.out


def test_plan_says_the_rate_is_unknown_and_takes_one(run: Run) -> None:
    example = str(EXAMPLES / "foundry-ministral-3b.yaml")
    unknown = run("plan", example)
    assert unknown.code == 0, unknown.text
    assert "billed tokens" in unknown.out and "rate unknown" in unknown.out and "2026-10-07" in unknown.out
    assert "not offered for Ministral-3B" in unknown.out
    priced = json.loads(run("plan", example, "--price", "4", "--json").out)
    assert priced["rate_usd_per_1m_tokens"] == 4 and priced["cost_usd"] == round(
        priced["billed_tokens"] / 1e6 * 4, 2
    )


def test_plan_recommends_the_developer_tier_when_it_is_cheaper(run: Run, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    path = tmp_path / "gpt.yaml"
    path.write_text(
        (EXAMPLES / "foundry-gpt-4.1-mini-developer.yaml")
        .read_text()
        .replace("training_type: developer", "training_type: global")
    )
    result = run("plan", str(path), "--price", "3")
    assert result.code == 0, result.text
    assert (
        "the Developer tier would be cheaper" in result.out
        and "target.training_type: developer" in result.out
    )


def test_an_api_key_is_never_printed(run: Run, spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_FOUNDRY_KEY", "sekret-key-0123456789")
    result = run("submit", str(spec), "--foundry-api-key-env", "MY_FOUNDRY_KEY")
    assert result.code == 1 and "refused the credentials" in result.err  # the fake takes tokens only
    assert "sekret" not in result.text
