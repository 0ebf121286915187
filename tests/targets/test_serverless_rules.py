"""Serverless / finetuning-job bad input: each a clear error before anything is sent to Azure."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from azfinetune.errors import ServerlessRegionError, ServerlessRetiredError, SpecError, UserInputError
from azfinetune.spec import FineTuneSpec, load_spec
from azfinetune.targets import target_issues
from azfinetune.targets.serverless import (
    SERVERLESS_HYPERPARAMETERS,
    check_not_retired,
    check_serverless_region,
    marketplace_model_id,
    marketplace_subscription_name,
    needs_marketplace_subscription,
    normalize_region,
)
from tests.conftest import checked, refused

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"
TODAY = dt.date(2026, 1, 15)


def spec_text(
    model: str = "phi-4-mini-instruct", *, extra: str = "", target: str = "{kind: serverless}"
) -> str:
    return f"name: s1\nmodel: {model}\ndata: {{train: train.jsonl}}\ntarget: {target}\n{extra}"


def load_error(write_spec: Any, text: str) -> SpecError:
    return refused(write_spec(text))


def spec_warnings(spec: FineTuneSpec, *, today: dt.date) -> list[Any]:
    return [issue for issue in target_issues(spec, today=today) if not issue.is_error]


def issue(error: SpecError, path: str) -> Any:
    matches = [i for i in error.issues if i.path == path]
    assert matches, f"no issue at {path}: {error}"
    return matches[0]


# -- model, technique, hyperparameters: refused when the spec is loaded -----------------------------------------


def test_model_without_serverless_fine_tuning(write_spec: Any, fake_workspace: Any) -> None:
    error = load_error(write_spec, spec_text("phi-3-small-8k-instruct"))
    problem = issue(error, "model")
    assert "Phi-3-small" in problem.message and "not offered for serverless fine-tuning" in problem.message
    assert "phi-4-mini-instruct" in (problem.hint or "")  # the alternative that is offered today
    assert "phi-3-mini-4k-instruct" not in (problem.hint or "")  # retired offers are not suggested
    assert "finetuning-job" in (problem.hint or "")
    assert isinstance(error, UserInputError)
    assert fake_workspace.requests == []


@pytest.mark.parametrize(
    ("extra", "path", "text"),
    [
        ("training: {epochs: 11}\n", "training.epochs", "1-10 whole epochs, got 11"),
        ("training: {epochs: 2.5}\n", "training.epochs", "1-10 whole epochs, got 2.5"),
        (
            "training: {per_device_batch_size: 64}\n",
            "training.per_device_batch_size",
            "batch size of 1-32, got 64",
        ),
    ],
)
def test_hyperparameter_out_of_range(
    write_spec: Any, fake_workspace: Any, extra: str, path: str, text: str
) -> None:
    problem = issue(load_error(write_spec, spec_text(extra=extra)), path)
    assert text in problem.message
    assert problem.hint
    assert fake_workspace.requests == []


def test_hyperparameter_the_service_does_not_take(write_spec: Any) -> None:
    problem = issue(
        load_error(write_spec, spec_text(extra="training: {gradient_accumulation_steps: 8}\n")),
        "training.gradient_accumulation_steps",
    )
    assert "does not take this setting" in problem.message
    for key in SERVERLESS_HYPERPARAMETERS:
        assert key in (problem.hint or "")


@pytest.mark.parametrize(
    ("extra", "path", "text"),
    [
        ("method: {technique: qlora}\n", "method.technique", "serverless cannot do qlora (it does lora)"),
        ("method: {technique: full}\n", "method.technique", "serverless cannot do full (it does lora)"),
        ("method: {deepspeed: {stage: 2}}\n", "method.deepspeed", "DeepSpeed cannot be set"),
        ("method: {lora: {r: 8}}\n", "method.lora", "adapter settings itself"),
    ],
)
def test_technique_serverless_cannot_take(
    write_spec: Any, fake_workspace: Any, extra: str, path: str, text: str
) -> None:
    problem = issue(load_error(write_spec, spec_text(extra=extra)), path)
    assert text in problem.message
    assert "command" in (problem.hint or "")
    assert fake_workspace.requests == []


def test_serverless_with_a_compute_points_to_the_twins(write_spec: Any) -> None:
    problem = issue(
        load_error(write_spec, spec_text(target="{kind: serverless, compute: gpu-a100}")), "target.compute"
    )
    assert "finetuning-job" in (problem.hint or "") and "command" in (problem.hint or "")


def test_task_the_offer_does_not_cover(write_spec: Any) -> None:
    problem = issue(load_error(write_spec, spec_text(extra="task: text-classification\n")), "task")
    assert "serverless does not train text-classification" in problem.message
    assert "registry-pipeline" in (problem.hint or "")
    problem = issue(load_error(write_spec, spec_text(extra="task: text-completion\n")), "task")
    assert "supports chat-completion, not text-completion" in problem.message  # this model's offer


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("data: {train: train.jsonl, test: train.jsonl}\n", "data.test"),
        ("data: {train: train.jsonl, columns: {messages: conversation}}\n", "data.columns"),
        ("register: {model_name: m1, min_eval: {eval_loss: '<= 1'}}\n", "register.min_eval"),
        ("secrets: {HF_TOKEN: 'keyvault://vault1/hf-token'}\n", "secrets"),
        ("environment: azureml:my-env:1\n", "environment"),
        ("target: {kind: serverless, max_run_minutes: 60}\n", "target.max_run_minutes"),
    ],
)
def test_settings_azure_fine_tuning_ignores_are_refused(write_spec: Any, extra: str, path: str) -> None:
    text = f"name: s1\nmodel: phi-4-mini-instruct\n{extra}"
    if "data:" not in extra:
        text += "data: {train: train.jsonl}\n"
    if "target:" not in extra:
        text += "target: {kind: serverless}\n"
    issue(load_error(write_spec, text), path)


def test_finetuning_job_needs_a_registry_model(write_spec: Any) -> None:
    target = "{kind: finetuning-job, compute: gpu-a100}"
    problem = issue(load_error(write_spec, spec_text("hf:someone/some-llm", target=target)), "model")
    assert "registry model" in problem.message
    # A catalog model named by its Hugging Face id maps to its registry asset, so it is fine.
    checked(write_spec(spec_text("hf:microsoft/Phi-4-mini-instruct", target=target)))
    checked(write_spec(spec_text("azureml://registries/r1/models/m1/versions/2", target=target)))


def test_finetuning_job_refuses_settings_it_would_drop(write_spec: Any) -> None:
    target = "{kind: finetuning-job, compute: gpu-a100, nodes: 2}"
    # A key the kind does not have is refused when the spec is read; a setting Azure would drop, by the rules.
    assert "finetuning-job" in str(issue(load_error(write_spec, spec_text(target=target)), "target.nodes"))
    target = "{kind: finetuning-job, compute: gpu-a100}"
    error = load_error(write_spec, spec_text(target=target, extra="training: {max_seq_length: 1024}\n"))
    assert "does not take this setting" in issue(error, "training.max_seq_length").message


def test_the_examples_pass_the_rules() -> None:
    for name in ("phi4-mini-serverless.yaml", "phi3-mini-serverless.yaml", "phi4-mini-finetuning-job.yaml"):
        checked(EXAMPLES / name)


# -- data: a non-chat file for a chat task -----------------------------------------------------------------


def _completion_file(path: Path) -> Path:
    with path.open("w") as handle:
        for i in range(12):
            handle.write(json.dumps({"prompt": f"question {i}", "completion": f"answer {i}"}) + "\n")
    return path


def test_non_chat_data_for_a_chat_task(tmp_path: Path, fake_workspace: Any) -> None:
    from azfinetune import data

    report = data.validate_data(
        _completion_file(tmp_path / "prompts.jsonl"), task="chat-completion", serverless=True
    )
    assert not report.ok
    assert report.errors
    assert any("messages" in str(e) for e in report.errors), [str(e) for e in report.errors]
    assert fake_workspace.requests == []


def test_check_spec_reports_non_chat_data_before_submit(tmp_path: Path, write_spec: Any) -> None:
    from azfinetune.targets import check_spec

    _completion_file(tmp_path / "train.jsonl")  # replaces the chat file beside the spec
    report = check_spec(write_spec(spec_text()))
    assert not report.ok
    assert not report.data_reports["train"].ok


# -- submit-time checks: region, retirement, Marketplace ------------------------------------------------------


def test_wrong_region_names_the_regions(write_spec: Any) -> None:
    from azfinetune.testing.fake_workspace import FakeWorkspace

    spec = load_spec(write_spec(spec_text()))
    with FakeWorkspace(location="westeurope") as ws:
        location = ws.ml_client().workspaces.get(ws.workspace).location
        with pytest.raises(ServerlessRegionError) as caught:
            check_serverless_region(spec, location)
        assert not [r for r in ws.requests if r.method in ("PUT", "POST")]  # nothing was uploaded or created
    message = str(caught.value)
    assert "westeurope" in message
    for region in ("eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"):
        assert region in message
    assert "finetuning-job" in message
    assert isinstance(caught.value, UserInputError) and caught.value.exit_code == 2


def test_right_region_in_any_spelling(write_spec: Any) -> None:
    spec = load_spec(write_spec(spec_text()))
    check_serverless_region(spec, "eastus2")
    check_serverless_region(spec, "East US 2")
    assert normalize_region(" West US 3 ") == "westus3"
    maap = load_spec(write_spec(spec_text(target="{kind: finetuning-job, compute: gpu-a100}")))
    check_serverless_region(maap, "westeurope")  # own compute: no region limit


def test_retired_model_refused_unless_allowed() -> None:
    spec = load_spec(EXAMPLES / "phi3-mini-serverless.yaml")
    with pytest.raises(ServerlessRetiredError) as caught:
        check_not_retired(spec, allow_retired=False, today=TODAY)
    message = str(caught.value)
    assert "2025-08-30" in message and "phi-4-mini-instruct" in message and "--allow-retired" in message
    assert "finetuning-job" in message
    assert check_not_retired(spec, allow_retired=True, today=TODAY) == "retired"
    assert check_not_retired(spec, allow_retired=False, today=dt.date(2025, 7, 1)) == "deprecated"
    assert check_not_retired(spec, allow_retired=False, today=dt.date(2025, 1, 1)) == "available"
    warnings = spec_warnings(spec, today=TODAY)
    assert any("retired on 2025-08-30" in w.message for w in warnings)


def test_available_model_passes() -> None:
    spec = load_spec(EXAMPLES / "phi4-mini-serverless.yaml")
    assert check_not_retired(spec, allow_retired=False, today=TODAY) == "available"
    assert spec_warnings(spec, today=TODAY) == []


@pytest.fixture
def third_party() -> str:
    """A non-Microsoft serverless model of the catalog: Meta's, through an Azure Marketplace offer."""
    return "llama-3.1-8b-instruct"


def test_marketplace_only_for_non_microsoft_models(write_spec: Any, third_party: str) -> None:
    phi = load_spec(write_spec(spec_text()))
    assert needs_marketplace_subscription(phi) is False
    other = load_spec(write_spec(spec_text(third_party)))
    assert needs_marketplace_subscription(other) is True
    assert (
        marketplace_model_id(other) == "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct"
    )
    assert marketplace_subscription_name(other) == "Meta-Llama-3-1-8B-Instruct-sub"
    maap = load_spec(write_spec(spec_text(third_party, target="{kind: finetuning-job, compute: gpu-a100}")))
    assert needs_marketplace_subscription(maap) is False


def test_marketplace_subscription_is_idempotent(
    write_spec: Any, third_party: str, fake_workspace: Any
) -> None:
    from azure.ai.ml.entities import MarketplaceSubscription

    spec = load_spec(write_spec(spec_text(third_party)))
    ml_client = fake_workspace.ml_client()
    subscription = MarketplaceSubscription(
        model_id=marketplace_model_id(spec), name=marketplace_subscription_name(spec)
    )
    first = ml_client.marketplace_subscriptions.begin_create_or_update(subscription).result()
    again = ml_client.marketplace_subscriptions.begin_create_or_update(subscription).result()
    assert first.name == again.name == "Meta-Llama-3-1-8B-Instruct-sub"
    assert list(fake_workspace.marketplace_subscriptions) == ["Meta-Llama-3-1-8B-Instruct-sub"]


# -- serverless beyond Phi: every model whose asset offers it, with its regions ----------------------------------


@pytest.mark.parametrize(
    ("model", "regions"),
    [
        ("llama-3.1-8b-instruct", {"westus3"}),
        ("ministral-3b", {"eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"}),
        ("phi-4", {"eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"}),
    ],
)
def test_serverless_models_beyond_phi(write_spec: Any, model: str, regions: set[str]) -> None:
    spec = checked(write_spec(spec_text(model)))
    for region in regions:
        check_serverless_region(spec, region)
    with pytest.raises(ServerlessRegionError) as caught:
        check_serverless_region(spec, "westeurope")
    assert all(region in str(caught.value) for region in regions)


def test_an_offer_the_current_docs_do_not_confirm_is_a_warning(write_spec: Any) -> None:
    spec = checked(write_spec(spec_text("mistral-nemo")))
    warning = next(i for i in spec_warnings(spec, today=TODAY) if i.path == "model")
    assert "not confirmed" in warning.message and "986720af" in warning.message
    text = checked(write_spec(spec_text("meta-llama-3-8b", extra="task: text-completion\n")))
    assert any("not confirmed" in i.message for i in spec_warnings(text, today=TODAY))


def test_the_offers_listed_in_the_hint_are_the_catalogs(write_spec: Any) -> None:
    hint = issue(load_error(write_spec, spec_text("phi-3-small-8k-instruct")), "model").hint or ""
    for alias in ("phi-4", "phi-4-mini-instruct", "llama-3.1-8b-instruct", "ministral-3b"):
        assert alias in hint


def test_finetuning_job_follows_the_asset(write_spec: Any) -> None:
    target = "{kind: finetuning-job, compute: gpu-a100}"
    problem = issue(
        load_error(
            write_spec, spec_text("phi-3-mini-4k-instruct", target=target, extra="task: text-completion\n")
        ),
        "task",
    )
    assert "lists fine-tuning for chat-completion, not text-completion" in problem.message
    checked(write_spec(spec_text("meta-llama-3-8b", target=target, extra="task: text-completion\n")))
    sizes = "{kind: finetuning-job, instance_types: [Standard_ND40rs_v2, Standard_E4s_v3]}"
    spec = checked(write_spec(spec_text("phi-3-mini-4k-instruct", target=sizes)))
    warnings = [i for i in spec_warnings(spec, today=TODAY) if i.path.startswith("target.instance_types")]
    assert [i.path for i in warnings] == ["target.instance_types[0]"]  # the CPU size is not a fine-tuning VM
    assert "Standard_NC24ads_A100_v4" in (warnings[0].hint or "")
