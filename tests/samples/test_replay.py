"""Microsoft's public fine-tuning samples, replayed: each azureml-examples notebook or YAML is a spec in specs/, and
the job azfinetune builds from it matches the sample input by input, but for the differences listed here.

azureml_examples/<id>.yaml records each sample (source path and commit, every input it passes, its outputs and
settings; research for issue 16 at Azure/azureml-examples 085cd6ea and Azure/azureml-assets 4b41f8cc). Inputs are
compared by their *effective* value: an input one side leaves out has the component's declared default. A listed
difference must really differ (a stale entry fails), and every real one must be listed.

Registration, in every pipeline sample: the notebooks register `azureml://jobs/<job>/outputs/trained_model` with a
second call after the job; azfinetune names that same pipeline output (`register.model_name`), so the service
registers it when the job completes. That is the one difference all of them share (REGISTRATION)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune.catalog import get_sku
from azfinetune.spec import load_spec
from azfinetune.targets import build_job, rest_body, target_issues
from azfinetune.targets._registry_components import TASK_COMPONENTS, contract
from azfinetune.testing._rest_schema import job_body_violations

HERE = Path(__file__).parent
SAMPLES = HERE / "azureml_examples"
SPECS = HERE / "specs"
IDS = sorted(p.stem for p in SAMPLES.glob("*.yaml"))
MISSING = object()

# -- the deliberate differences, each with its reason --------------------------------------------------------

REGISTRATION = (
    "registered by naming the pipeline output trained_model (the service registers it when the job completes); "
    "the sample registers azureml://jobs/<job>/outputs/trained_model with a second call afterwards"
)
_NOT_INPUTS = (
    "the asset's learning_rate_min/max are search-range hints, not inputs of chat_completion_pipeline: azfinetune "
    "filters them; the notebook's merge passes them and azure-ai-ml refuses the call (UnexpectedKeywordError)"
)
_PRECISION_4 = (
    "precision 4 (Llama-2-7b's asset default, the .sh's override) is outside the component's enum 32|16: "
    "azfinetune does not send it, the component's 32 applies"
)
_HF_NER = (
    "bert-base-uncased's asset lists fine-tuning for text-classification and question-answering only, so "
    "azfinetune refuses the asset for NER; the replay fine-tunes the same weights from Hugging Face instead"
)
_TYPO = "the notebook's instance_type_model_evalutation (sic) is not an input: azure-ai-ml refuses the call"
_DISTILLATION = "a Distillation job (teacher-generated data, then serverless fine-tuning); azfinetune builds the fine-tuning"

DIFFERENCES: dict[str, dict[str, str]] = {
    "sdk-chat-completion-phi3-mini": {"learning_rate_min": _NOT_INPUTS, "learning_rate_max": _NOT_INPUTS},
    "sdk-llama2-7b-emotion": {"precision": _PRECISION_4},
    "sdk-llama2-7b-emotion-multinode": {"precision": _PRECISION_4},
    "sdk-llama2-7b-emotion-serverless-compute": {
        "precision": _PRECISION_4,
        "number_of_gpu_to_use_finetuning": "the notebook asks 4 GPUs of a 1-GPU Standard_NC4as_T4_v3; azfinetune "
        "refuses more GPUs than the VM has, so the replay uses its 1",
    },
    "sdk-llama2-7b-emotion-multinode-serverless": {
        "precision": _PRECISION_4,
        "instance_type_model_evalutation": _TYPO,
        "instance_type_model_evaluation": _TYPO + ", so its evaluation ran on the component's default size",
    },
    "sdk-text-generation-samsum-llama2-70b-ds3": {
        "ignore_mismatched_sizes": "the notebook fixes its optimization parameters and does not read the asset; "
        "azfinetune applies Llama-2-70b's asset default false (the component's is true)",
    },
    "sdk-token-classification-ner-bert": {"mlflow_model_path": _HF_NER, "huggingface_id": _HF_NER},
    "cli-token-classification-ner": {"mlflow_model_path": _HF_NER, "huggingface_id": _HF_NER},
    "cli-text-generation-samsum-llama2": {"precision": _PRECISION_4},
    "sdk-maas-finetuningjob-textgen-llama3-8b": {
        "resources.instance_types": "a serverless job runs on Azure's compute: the sample copies instance_types "
        "from the MaaP notebook and the service ignores them",
    },
    **{
        f"cli-distillation-{task}-llama31-8b": {
            "jobType": _DISTILLATION,
            "teacher": _DISTILLATION + "; the teacher endpoint and its settings have no spec field",
            "resources.instance_type": "the VM of the distillation's data-generation step, not of the fine-tuning",
            "hyperparameters.learning_rate_multiplier": "a multiplier of the service's learning rate: azfinetune "
            "takes an absolute training.learning_rate, and the replay leaves it to the service",
        }
        for task in ("conversation", "math", "nli", "nlu_qa", "summarization")
    },
}

#: The CLI pipelines' model once the .sh's --set is applied (its YAML names a stale `bert-based-uncased`).
CLI_MODELS = {
    "cli-question-answering-extractive": "azureml://registries/azureml/models/bert-base-uncased/versions/3",
    "cli-summarization-news": "azureml://registries/azureml/models/t5-small/versions/3",
    "cli-text-classification-emotion": "azureml://registries/azureml/models/bert-base-uncased/versions/3",
    "cli-token-classification-ner": "azureml://registries/azureml/models/bert-base-uncased/versions/3",
    "cli-translation-wmt16": "azureml://registries/azureml/models/t5-small/versions/3",
    "cli-text-generation-samsum-llama2": "azureml://registries/azureml-meta/models/Llama-2-7b/versions/5",
}
#: Distillation's hyperparameter names and the fine-tuning job's, for the same settings.
DISTILLATION_NAMES = {"n_epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size"}


def sample(sid: str) -> dict[str, Any]:
    return yaml.safe_load((SAMPLES / f"{sid}.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def built(sid: str) -> tuple[Any, Any, dict[str, Any]]:
    spec = load_spec(SPECS / f"{sid}.yaml")
    job = build_job(spec)
    return spec, job, rest_body(job, base_dir=SPECS)


# -- what the sample passes, normalized --------------------------------------------------------------------------


def _pipeline_expected(record: dict[str, Any]) -> dict[str, Any]:
    if "effective_inputs_with_asset_defaults_at_azureml_assets_HEAD" in record:
        expected = dict(record["effective_inputs_with_asset_defaults_at_azureml_assets_HEAD"])
    else:  # a CLI pipeline YAML, with the .sh's --set applied
        expected = dict(record["inputs_in_yaml"])
        for key, value in (record.get("sh_set_overrides") or {}).items():
            if "." not in key:
                expected[key] = value
        expected["mlflow_model_path"] = {"type": "mlflow_model", "path": CLI_MODELS[record["id"]]}
        for role in ("train", "validation", "test"):
            expected[f"{role}_file_path"] = {"type": "uri_file", "path": None}
    return expected


def _as_text(value: Any) -> Any:
    """A literal as the wire carries it; numbers compared as numbers ("2e-5" == 2e-05, 2 == "2")."""
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return text


def _resolve(name: str, value: Any, record: dict[str, Any], ours: dict[str, Any]) -> Any:
    """The sample's placeholders: the notebook's model id, its GPUs per node (from the cluster or the VM size)."""
    if value == "<foundation_model.id>":
        model = record["model"]
        kind = "custom_model" if name == "pytorch_model_path" else "mlflow_model"
        return ("model", kind, model["registry"], model["name"])
    if value == "gpus_per_node":
        gpus = record["compute"].get("gpus_per_node")
        if gpus is None:
            size = (
                ours.get("instance_type_finetune") or record["inputs"]["explicit"]["instance_type_finetune"]
            )
            gpus = get_sku(str(size)).gpus
        return float(gpus)
    if isinstance(value, dict):
        return ("asset", value["type"], value.get("path"))
    return _as_text(value)


def _ours(body_inputs: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, item in body_inputs.items():
        if item.get("job_input_type") == "literal":
            found[name] = _as_text(item["value"])
        else:
            found[name] = ("asset", item["job_input_type"], item["uri"])
    return found


def _same(expected: Any, ours: Any) -> bool:
    if isinstance(expected, tuple) and expected[0] == "model":
        _, kind, registry, name = expected
        return (
            isinstance(ours, tuple)
            and ours[1] == kind
            and re.match(rf"azureml://registries/{registry}/models/{name}/(versions/|labels/)", ours[2])
            is not None
        )
    if isinstance(expected, tuple) and isinstance(ours, tuple):
        _, kind, path = expected
        if kind != ours[1]:
            return False
        return path is None or str(ours[2]).endswith(str(path).removeprefix("./"))
    return expected == ours


def pipeline_differences(sid: str) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any], dict[str, Any]]:
    record = sample(sid)
    spec, _job, body = built(sid)
    component = TASK_COMPONENTS[spec.task.value]
    assert record["component"]["name"] == component
    declared = contract(component).inputs
    node = body["properties"]["jobs"]["finetune"]
    ours = _ours(node["inputs"])
    expected = {
        name: _resolve(name, value, record, ours) for name, value in _pipeline_expected(record).items()
    }

    def effective(side: dict[str, Any], name: str) -> Any:
        if name in side:
            return side[name]
        default = declared[name].default if name in declared else None
        return MISSING if default is None else _as_text(default)

    differing = {}
    for name in sorted(set(expected) | set(ours)):
        mine, theirs = effective(ours, name), effective(expected, name)
        if not _same(theirs, mine):
            differing[name] = (theirs, mine)
    return differing, body, record


# -- the replays -------------------------------------------------------------------------------------------------

PIPELINES = [sid for sid in IDS if "component" in sample(sid)]
FINETUNING = [sid for sid in IDS if sample(sid).get("job_type") == "FineTuning"]
DISTILLATION = [sid for sid in IDS if sample(sid).get("job_type") == "Distillation"]


def test_every_sample_is_replayed() -> None:
    assert len(IDS) == 37 and sorted(PIPELINES + FINETUNING + DISTILLATION) == IDS
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == IDS
    for sid in IDS:
        source = sample(sid)["source"]
        head = (SPECS / f"{sid}.yaml").read_text(encoding="utf-8").splitlines()[:2]
        assert source["path"] in head[0] and source["commit"] in head[1], sid  # the spec names its sample
    assert set(DIFFERENCES) <= set(IDS)
    for reasons in DIFFERENCES.values():
        assert all(len(reason) > 40 for reason in reasons.values())  # each says why


@pytest.mark.parametrize("sid", PIPELINES)
def test_registry_pipeline_sample(sid: str) -> None:
    differing, body, record = pipeline_differences(sid)
    listed = DIFFERENCES.get(sid, {})
    assert sorted(differing) == sorted(listed), {
        name: differing.get(name) for name in set(differing) ^ set(listed)
    }
    props = body["properties"]
    node = props["jobs"]["finetune"]
    label = record["component"]["label"]
    assert node["componentId"].endswith(f"/components/{record['component']['name']}/labels/{label}")
    # The samples' pipeline output, bound from the node's MLflow model, and their settings.
    trained = record["outputs"]["trained_model"]
    assert props["outputs"]["trained_model"]["jobOutputType"] == trained["type"]
    assert node["outputs"]["mlflow_model_folder"]["value"] == "${{parent.outputs.trained_model}}"
    if "wire" in trained:
        assert props["outputs"]["trained_model"]["mode"] == trained["wire"]["mode"]
    for key, value in record["settings"].items():
        assert props["settings"][key] == value, key
    assert record["registration"]  # every pipeline sample registers its model ...
    assert props["outputs"]["trained_model"].get("assetName"), REGISTRATION  # ... here by naming the output
    assert job_body_violations("2024-01-01-preview", body) == []  # the api-version azure-ai-ml sends it at


def _finetuning_expected(record: dict[str, Any]) -> dict[str, Any]:
    if "yaml" in record:  # az ml job create -f
        job = record["yaml"]
        validation = job.get("validation_data")
        expected = {
            "taskType": "".join(w.capitalize() if i else w for i, w in enumerate(job["task"].split("_"))),
            "model": job["model"]["path"],
            "trainingData": Path(str(job["training_data"])).name,
            "validationData": Path(validation["path"] if isinstance(validation, dict) else validation).name,
            "registered_model": job["outputs"]["registered_model"]["name"],
            "compute": job.get("compute", MISSING),
            "resources.instance_types": (job.get("resources") or {}).get("instance_types", MISSING),
        }
        hyperparameters = job["hyperparameters"]
    else:  # create_finetuning_job(...)
        call = record["create_finetuning_job"]
        task = call["task"].rsplit(".", 1)[-1].lower()
        model = record["model"]

        def data_asset(text: str) -> str:
            match = re.search(r"Data\(name='([^']+)', version='([^']+)'", text)
            assert match, text
            return f"azureml:{match[1]}:{match[2]}"

        expected = {
            "taskType": "".join(w.capitalize() if i else w for i, w in enumerate(task.split("_"))),
            "model": ("model", model["registry"], model["name"]),
            "trainingData": data_asset(call["training_data"]),
            "validationData": data_asset(call["validation_data"]),
            "registered_model": ("prefix",),  # output_model_name_prefix: the notebook's own name
            "compute": MISSING,
            "resources.instance_types": (record.get("resources") or {}).get("instance_types", MISSING),
        }
        hyperparameters = call["hyperparameters"]
    expected["jobType"] = "FineTuning"
    expected.update({f"hyperparameters.{k}": str(v) for k, v in hyperparameters.items()})
    return expected


def _finetuning_ours(body: dict[str, Any]) -> dict[str, Any]:
    props = body["properties"]
    details = props["fineTuningDetails"]
    found = {
        "jobType": props["jobType"],
        "taskType": details["taskType"],
        "model": details["model"]["uri"],
        "trainingData": details["trainingData"]["uri"],
        "validationData": (details.get("validationData") or {}).get("uri", MISSING),
        "registered_model": props["outputs"]["registered_model"]["assetName"],
        "compute": props.get("computeId", MISSING),
        "resources.instance_types": (props.get("resources") or {}).get("instanceTypes", MISSING),
    }
    found.update({f"hyperparameters.{k}": v for k, v in details["hyperParameters"].items()})
    return found


def _finetuning_same(field: str, expected: Any, ours: Any) -> bool:
    if isinstance(expected, tuple) and expected[0] == "model":
        return (
            re.match(rf"azureml://registries/{expected[1]}/models/{expected[2]}/versions/", str(ours))
            is not None
        )
    if expected == ("prefix",):
        return isinstance(ours, str) and bool(ours)
    if (
        field in ("trainingData", "validationData")
        and isinstance(ours, str)
        and not ours.startswith("azureml:")
    ):
        return Path(ours).name == expected
    return bool(expected == ours)


def _compare(expected: dict[str, Any], ours: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    differing = {}
    for field in sorted(set(expected) | set(ours)):
        theirs, mine = expected.get(field, MISSING), ours.get(field, MISSING)
        if not _finetuning_same(field, theirs, mine):
            differing[field] = (theirs, mine)
    return differing


@pytest.mark.parametrize("sid", FINETUNING)
def test_finetuning_sample(sid: str) -> None:
    _spec, _job, body = built(sid)
    differing = _compare(_finetuning_expected(sample(sid)), _finetuning_ours(body))
    listed = DIFFERENCES.get(sid, {})
    assert sorted(differing) == sorted(listed), {
        name: differing.get(name) for name in set(differing) ^ set(listed)
    }
    assert (
        job_body_violations("2024-10-01-preview", body) == []
    )  # FineTuning's api-version in azure-ai-ml 1.35


@pytest.mark.parametrize("sid", DISTILLATION)
def test_distillation_sample_as_its_serverless_fine_tuning(sid: str) -> None:
    record = sample(sid)
    spec, _job, body = built(sid)
    expected: dict[str, Any] = {
        "jobType": "Distillation",
        "taskType": "chatCompletion",
        "model": record["student_model"],
        "trainingData": "train.jsonl",
        "validationData": MISSING,
        "registered_model": record["outputs"]["registered_model"]["name"],
        "compute": MISSING,
        "resources.instance_types": MISSING,
        "resources.instance_type": record["resources"]["instance_type"],
        "teacher": record["teacher"],
    }
    for name, value in record["hyperparameters"].items():
        expected[f"hyperparameters.{DISTILLATION_NAMES.get(name, name)}"] = str(value)
    differing = _compare(expected, _finetuning_ours(body))
    assert sorted(differing) == sorted(DIFFERENCES[sid]), differing
    # West US 3 is where the sample runs; the catalog agrees.
    from azfinetune.targets.serverless import check_serverless_region

    check_serverless_region(spec, "westus3")


def test_the_samples_that_break_their_own_asset_rules_are_warned_or_refused() -> None:
    """What the samples do that the asset forbids: the replay's warnings, and the refusal the NER replays avoid."""
    chat = load_spec(SPECS / "sdk-chat-completion-phi3-mini.yaml")
    warnings = [i for i in target_issues(chat) if not i.is_error]
    compute = next(i for i in warnings if i.path == "target.instance_type")
    assert "Standard_ND40rs_v2" in compute.message and "Standard_NC24ads_A100_v4" in (compute.hint or "")
    ner = load_spec(SPECS / "sdk-token-classification-ner-bert.yaml")
    as_asset = ner.model_copy(update={"model": "bert-base-uncased"})
    refused = [i for i in target_issues(as_asset) if i.is_error and i.path == "task"]
    assert refused and "text-classification, question-answering" in refused[0].message
