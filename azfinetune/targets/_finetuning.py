"""What serverless and finetuning-job share: Azure's fine-tuning job (REST jobType FineTuning) and its rules."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import find_model
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, FinetuningJobTarget, Technique, model_kind
from azfinetune.targets._common import azfinetune_tags, job_name
from azfinetune.targets._protocol import TargetBase, WorkspaceSession
from azfinetune.targets._provenance import SERVICE_DEFAULT, SPEC, ValueSource
from azfinetune.targets._rules import unsupported_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import CustomModelFineTuningJob

__all__ = [
    "REGISTERED_MODEL_OUTPUT",
    "SERVERLESS_HYPERPARAMETERS",
    "TASK_TYPES",
    "FineTuningTargetBase",
    "build_finetuning_job",
    "finetuning_hyperparameters",
    "finetuning_model_uri",
    "latest_model_reference",
    "pin_model_version",
    "registered_model_name",
]

#: spec task -> Azure's FineTuningTaskType. The entity lower-cases the first letter, which is what the wire carries
#: (chatCompletion); azure-ai-ml's YAML schema accepts the same values in snake_case (chat_completion).
TASK_TYPES: dict[str, str] = {
    "chat-completion": "ChatCompletion",
    "text-completion": "TextCompletion",
    "text-classification": "TextClassification",
    "token-classification": "TokenClassification",
    "question-answering": "QuestionAnswering",
    "summarization": "TextSummarization",
    "translation": "TextTranslation",
}

#: training.* keys Azure's fine-tuning job (serverless and finetuning-job) accepts, and the hyperparameter name it
#: takes them as (strings on the wire). Sources: Azure/azureml-examples sdk/python/jobs/finetuning/standalone
#: (model-as-a-service and model-as-a-platform notebooks, text-generation-finetuning-amlcompute.yaml) and the
#: CLI sample in MicrosoftDocs/azure-ai-docs articles/ai-foundry/how-to/fine-tune-serverless.md, which all pass
#: exactly these three.
SERVERLESS_HYPERPARAMETERS: dict[str, str] = {
    "epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "per_device_batch_size": "per_device_train_batch_size",
}

#: The one output a fine-tuning job has: the MLflow model it registers.
REGISTERED_MODEL_OUTPUT = "registered_model"

_LATEST = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<asset>[^/]+)/labels/latest$")


def finetuning_model_uri(spec: FineTuneSpec) -> str:
    """The registry asset id of the base model: a catalog alias (or an hf: id the catalog knows) becomes
    ``azureml://registries/<registry>/models/<asset>/versions/<v>``; a registry URI is used as given.

    A catalog entry without a pinned version gives ``.../labels/latest``: resolving it is a network call, so it
    is left to submit time (see `latest_model_reference`), never done silently here."""
    kind = model_kind(spec.model)
    if kind == "registry":
        return spec.model
    info = find_model(spec.model)
    if info is None:
        raise BuildError(
            f"{spec.model} is not an Azure ML registry model, which a fine-tuning job needs",
            path="model",
            hint="use a catalog alias or azureml://registries/<registry>/models/<name>/versions/<v>, "
            "or target.kind: command to fine-tune a Hugging Face model on your own compute",
        )
    return info.registry_uri


def finetuning_hyperparameters(spec: FineTuneSpec) -> dict[str, str]:
    """The training settings the user set, under the service's names, as the strings the service takes.

    Settings the spec leaves at their defaults are not sent: the service then picks its model-specific defaults
    (azfinetune's defaults are tuned for its own training code, not for Azure's)."""
    training = spec.training
    values: dict[str, str] = {}
    for key in sorted(training.model_fields_set & set(SERVERLESS_HYPERPARAMETERS)):
        values[SERVERLESS_HYPERPARAMETERS[key]] = _as_string(getattr(training, key))
    return dict(sorted(values.items()))


def _as_string(value: object) -> str:
    """2.0 -> "2", 2e-05 -> "0.00002": plain decimals, as Azure's own samples write them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if hasattr(value, "value"):  # an enum
        return str(value.value)
    return str(value)


def registered_model_name(spec: FineTuneSpec) -> str:
    """register.model_name, else the job name (spec name + fingerprint): one model name per distinct spec+data,
    so the first registration is version 1 and `azfinetune deploy` can find it."""
    if spec.register is not None:
        return spec.register.model_name
    return job_name(spec)


def _data_input(spec: FineTuneSpec, ref: str) -> Any:
    from azure.ai.ml import Input

    # Local files become absolute paths so the job uploads the same file whatever the current directory is.
    path = ref if spec.data.is_remote(ref) else str(spec.resolve_path(ref))
    return Input(type="uri_file", path=path)


def build_finetuning_job(spec: FineTuneSpec) -> CustomModelFineTuningJob:
    """The CustomModelFineTuningJob for a serverless or finetuning-job spec. Pure: no network.

    Built directly rather than through azure.ai.ml.finetuning.create_finetuning_job, which raises
    UnboundLocalError in azure-ai-ml 1.35 when there is no validation data."""
    from azure.ai.ml import Input, Output
    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import CustomModelFineTuningJob
    from azure.ai.ml.entities._job.job_resources import JobResources
    from azure.ai.ml.entities._job.queue_settings import QueueSettings

    kind = spec.target.kind
    if kind not in ("serverless", "finetuning-job"):
        raise BuildError(f"build_finetuning_job builds serverless and finetuning-job specs, not {kind}")
    task = TASK_TYPES.get(spec.task.value)
    if task is None:  # pragma: no cover - every spec task is mapped
        raise BuildError(f"no Azure fine-tuning task type for {spec.task.value}", path="task")

    output_description = spec.register.description if spec.register is not None else None
    outputs = {
        REGISTERED_MODEL_OUTPUT: Output(
            type="mlflow_model", name=registered_model_name(spec), description=output_description
        )
    }
    target = spec.target
    compute: str | None = None
    resources = None
    queue_settings = None
    if isinstance(target, FinetuningJobTarget):
        compute = target.compute
        if target.instance_types:
            resources = JobResources(instance_types=list(target.instance_types))
        if target.job_tier:
            queue_settings = QueueSettings(job_tier=target.job_tier)

    job = CustomModelFineTuningJob(
        name=job_name(spec),
        display_name=spec.name,
        experiment_name=spec.name,
        description=spec.description,
        tags=azfinetune_tags(spec),
        task=task,
        model=Input(type="mlflow_model", path=finetuning_model_uri(spec)),
        training_data=_data_input(spec, spec.data.train),
        validation_data=_data_input(spec, spec.data.validation) if spec.data.validation else None,
        hyperparameters=finetuning_hyperparameters(spec),
        outputs=outputs,
        compute=compute,
        resources=resources,
        queue_settings=queue_settings,
    )
    return job


def latest_model_reference(job: Any) -> tuple[str, str] | None:
    """(registry, asset) when the job's model is ``.../labels/latest``, which must be pinned before submitting:
    the client asks the registry for the latest version and calls `pin_model_version`. None when pinned."""
    model = getattr(job, "model", None)
    path = getattr(model, "path", None)
    match = _LATEST.match(path) if isinstance(path, str) else None
    return (match["registry"], match["asset"]) if match else None


def pin_model_version(job: Any, version: str | int) -> None:
    """Replace ``labels/latest`` in the job's model with a fixed version (resolved by the client at submit)."""
    from azure.ai.ml import Input

    reference = latest_model_reference(job)
    if reference is None:
        raise BuildError("the job's model is already pinned to a version")
    registry, asset = reference
    job.model = Input(
        type="mlflow_model", path=f"azureml://registries/{registry}/models/{asset}/versions/{version}"
    )


def finetuning_value_sources(spec: FineTuneSpec) -> list[ValueSource]:
    """The service's hyperparameters for a spec: the spec's value, or the model's default in Azure."""

    sent = finetuning_hyperparameters(spec)
    found = []
    for key, name in sorted(SERVERLESS_HYPERPARAMETERS.items(), key=lambda item: item[1]):
        if name in sent:
            found.append(ValueSource(name, sent[name], SPEC, True, f"training.{key}"))
        else:
            found.append(
                ValueSource(
                    name, None, SERVICE_DEFAULT, False, f"training.{key}", "the model's default in Azure"
                )
            )
    return found


def _pin_latest_model(session: WorkspaceSession, job: Any) -> None:
    """A `labels/latest` model is pinned to the version the registry names now (one request)."""
    reference = latest_model_reference(job)
    if reference is None:
        return
    registry, asset = reference
    model = session.registry_client(registry).models.get(asset, label="latest")
    pin_model_version(job, model.version)


class FineTuningTargetBase(TargetBase):
    """Azure's fine-tuning job: Azure picks the technique (LoRA), its settings and the environment."""

    what: str = "a fine-tuning job"
    techniques = frozenset({Technique.LORA})

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        what = self.what
        # Azure's fine-tuning code picks the technique (LoRA: the target's only technique) and its settings.
        if spec.method.quantization is not None:
            yield Issue("method.quantization", f"{what} does not take a quantization setting")
        if spec.method.lora is not None:
            yield Issue(
                "method.lora",
                f"{what} chooses the adapter settings itself",
                hint="remove method.lora, or use target.kind: command to set r/alpha/target modules",
            )
        if "optimizer" in spec.method.model_fields_set:
            yield Issue(
                "method.optimizer", f"{what} chooses the optimizer itself", hint="remove method.optimizer"
            )
        if spec.method.deepspeed is not None:
            yield Issue(
                "method.deepspeed",
                f"{what} chooses its own distribution; DeepSpeed cannot be set",
                hint="remove method.deepspeed, or use target.kind: command to control DeepSpeed",
            )
        # Only train and validation files reach the service, as JSONL in its own format.
        if spec.data.test is not None:
            yield Issue(
                "data.test",
                f"{what} takes training and validation data only",
                hint="remove data.test or evaluate it afterwards",
            )
        if spec.data.columns is not None:
            yield Issue(
                "data.columns",
                f"{what} reads its fixed JSONL format ('messages' for chat, 'prompt'/'completion' for text); "
                "columns cannot be renamed",
                hint="rename the keys in the data files and remove data.columns",
            )
        if spec.secrets:
            yield Issue("secrets", f"{what} runs Azure's own code; secrets cannot be passed to it")
        if "environment" in spec.model_fields_set:
            yield Issue("environment", f"{what} runs in Azure's own environment; remove environment")
        if spec.register is not None and spec.register.min_eval:
            yield Issue(
                "register.min_eval",
                f"{what} registers the model itself, whatever its evaluation",
                hint="remove min_eval, or use target.kind: pipeline for a gated registration",
            )
        yield from unsupported_keys(
            spec,
            "training",
            SERVERLESS_HYPERPARAMETERS,
            what=what,
            hint=f"it takes only {', '.join(sorted(SERVERLESS_HYPERPARAMETERS))}; use target.kind: command "
            "for full control",
        )

    def build(self, spec: FineTuneSpec) -> CustomModelFineTuningJob:
        return build_finetuning_job(spec)

    def presubmit(self, session: WorkspaceSession, spec: FineTuneSpec, job: Any) -> None:
        _pin_latest_model(session, job)

    def value_sources(self, spec: FineTuneSpec) -> list[ValueSource]:
        return finetuning_value_sources(spec)
