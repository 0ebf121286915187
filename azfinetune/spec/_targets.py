"""`target`: one pydantic model per target kind, parsed as a discriminated union on `kind`.

Each kind holds only the fields it takes, so a key that does not apply to the kind is an unknown-key error (the
loader's message names the kinds that do take it). The offline rules, the builder and the submit logic of each
kind live in `azfinetune.targets.<kind>`; these are only the fields, kept here because the spec is the bottom
layer of the package and FineTuneSpec needs the whole union.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator

__all__ = [
    "TARGET_MODELS",
    "CommandTarget",
    "FinetuningJobTarget",
    "FoundryTarget",
    "KaitoInput",
    "KaitoOutput",
    "KaitoTarget",
    "LocalTarget",
    "PipelineTarget",
    "Priority",
    "RegistryPipelineTarget",
    "ServerlessTarget",
    "TargetKind",
    "TargetModel",
    "TargetResources",
    "TargetSpec",
    "foundry_endpoint",
    "kinds_with_field",
    "target_kind_of",
]


class TargetKind(str, enum.Enum):
    """Where and as what the job runs."""

    COMMAND = "command"
    PIPELINE = "pipeline"
    REGISTRY_PIPELINE = "registry-pipeline"
    SERVERLESS = "serverless"
    FINETUNING_JOB = "finetuning-job"
    FOUNDRY = "foundry"
    KAITO = "kaito"
    LOCAL = "local"


class Priority(str, enum.Enum):
    """AmlCompute VM priority."""

    DEDICATED = "dedicated"
    LOW = "low"


def _no_bool(value: Any) -> Any:
    """YAML `true` is not a count: pydantic would take it as 1."""
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, got {str(value).lower()}")
    return value


#: An integer that refuses booleans (``nodes: true`` is an error, not one node).
Count = Annotated[int, BeforeValidator(_no_bool)]

_COMPUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,31}")


@dataclass(frozen=True)
class TargetResources:
    """What a target asks of the hardware, read the same way for every kind (by the planner and the runners).

    `billing` says how the work is paid: by the VM hour (`vm`), by trained token on the service's GPUs
    (`serverless`: classic MaaS and Foundry's fine_tuning API), or not at all (`none`, this machine)."""

    instance_type: str | None
    nodes: int
    gpus_per_node: int | None
    priority: str
    max_run_minutes: int | None
    billing: Literal["vm", "serverless", "none"]
    on_this_machine: bool = False


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class TargetModel(_Fields):
    """Base of every kind's model: a `kind` and the resources view."""

    kind: str

    def resources(self) -> TargetResources:
        raise NotImplementedError


def _compute_name(value: str | None) -> str | None:
    if value is not None and not _COMPUTE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an AmlCompute name (2-32 letters, digits and '-', starting with a letter)"
        )
    return value


class LocalTarget(TargetModel):
    """This machine: the job's own command line in a subprocess (no Azure account)."""

    kind: Annotated[Literal["local"], Field(description="local: this machine.")] = "local"
    gpus_per_node: Annotated[
        Count | None,
        Field(ge=1, le=16, description="GPUs used on this machine (torchrun); default one process."),
    ] = None

    def resources(self) -> TargetResources:
        return TargetResources(None, 1, self.gpus_per_node, "dedicated", None, "none", on_this_machine=True)


class _ClusterTarget(TargetModel):
    """Fields of the kinds that run on the user's AmlCompute cluster."""

    compute: Annotated[
        str,
        Field(
            description="AmlCompute cluster name, or 'serverless' (Azure ML serverless compute, with instance_type)."
        ),
    ]
    instance_type: Annotated[
        str | None, Field(description="VM size, e.g. Standard_NC24ads_A100_v4 (the cluster's, for planning).")
    ] = None
    nodes: Annotated[Count, Field(ge=1, le=128, description="Number of VMs.")] = 1
    gpus_per_node: Annotated[
        Count | None, Field(ge=1, le=16, description="GPUs used per VM; default: all of the SKU's.")
    ] = None

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: str) -> str:
        if value == "serverless":
            return value
        return _compute_name(value) or value


class _JobTarget(_ClusterTarget):
    """Fields of the kinds that run this project's job code on the cluster: priority and timeout too."""

    priority: Annotated[Priority, Field(description="dedicated | low (preemptible, cheaper).")] = (
        Priority.DEDICATED
    )
    max_run_minutes: Annotated[Count, Field(ge=1, le=60 * 24 * 30, description="Job timeout.")] = 720

    def resources(self) -> TargetResources:
        return TargetResources(
            self.instance_type,
            self.nodes,
            self.gpus_per_node,
            self.priority.value,
            self.max_run_minutes,
            "vm",
        )


class CommandTarget(_JobTarget):
    """An Azure ML command job running this project's training code on the cluster."""

    kind: Annotated[Literal["command"], Field(description="command: a CommandJob on your cluster.")] = (
        "command"
    )


class PipelineTarget(_JobTarget):
    """This project's pipeline: validate data, fine-tune, merge, evaluate, register."""

    kind: Annotated[Literal["pipeline"], Field(description="pipeline: our PipelineJob on your clusters.")] = (
        "pipeline"
    )
    cpu_compute: Annotated[
        str | None,
        Field(description="Cluster for the CPU steps (default: the GPU cluster), or 'serverless'."),
    ] = None
    cpu_instance_type: Annotated[
        str | None, Field(description="Serverless VM size for the CPU steps, e.g. Standard_E4s_v3.")
    ] = None

    force_rerun: Annotated[
        bool,
        Field(
            description="Run every step again instead of reusing an identical earlier step (submit --new-run)."
        ),
    ] = False

    @field_validator("cpu_compute")
    @classmethod
    def _cpu_compute(cls, value: str | None) -> str | None:
        return value if value == "serverless" else _compute_name(value)


class RegistryPipelineTarget(_ClusterTarget):
    """The Azure ML registry's `<task>_pipeline` component on the cluster (Azure's training code)."""

    kind: Annotated[
        Literal["registry-pipeline"], Field(description="registry-pipeline: the registry's <task>_pipeline.")
    ] = "registry-pipeline"
    cpu_compute: Annotated[
        str | None,
        Field(description="Cluster for the model-import and preprocess steps (default: the GPU cluster)."),
    ] = None
    cpu_instance_type: Annotated[
        str | None, Field(description="Serverless VM size for the CPU steps, e.g. Standard_E4s_v3.")
    ] = None
    component_version: Annotated[str, Field(description="'<task>_pipeline' version, or 'latest'.")] = "latest"
    apply_ort: Annotated[
        bool, Field(description="Pass the component's apply_ort (no effect today: Azure ignores it).")
    ] = False
    force_rerun: Annotated[
        bool,
        Field(
            description="Run every step again instead of reusing an identical earlier step (submit --new-run)."
        ),
    ] = False
    evaluation_config: Annotated[
        str | None,
        Field(
            description="JSON config of the model-evaluation step: a local file, azureml:<name>:<version> or https://."
        ),
    ] = None
    finetune_config_path: Annotated[
        str | None,
        Field(
            description="chat-completion (component 0.0.82+): a JSON finetune config, e.g. chat_special_tokens; "
            "needed for an hf: model that bundles none. A local file, azureml:<name>:<version> or https://."
        ),
    ] = None
    trust_remote_code: Annotated[
        bool | None,
        Field(
            description="chat-completion (component 0.0.82+): let preprocessing run the model repo's code."
        ),
    ] = None

    @field_validator("cpu_compute")
    @classmethod
    def _cpu_compute(cls, value: str | None) -> str | None:
        return value if value == "serverless" else _compute_name(value)

    @field_validator("component_version")
    @classmethod
    def _component_version(cls, value: str) -> str:
        if value != "latest" and not re.fullmatch(r"\d+(\.\d+){0,3}", value):
            raise ValueError(f"must be 'latest' or a version like 0.0.81, got {value!r}")
        return value

    def resources(self) -> TargetResources:
        return TargetResources(self.instance_type, self.nodes, self.gpus_per_node, "dedicated", None, "vm")


class ServerlessTarget(TargetModel):
    """Serverless fine-tuning (MaaS): Azure's compute and training code; priced per trained token."""

    kind: Annotated[
        Literal["serverless"], Field(description="serverless: a FineTuning job on Azure's GPUs.")
    ] = "serverless"

    def resources(self) -> TargetResources:
        return TargetResources(None, 1, None, "dedicated", None, "serverless")


class FinetuningJobTarget(TargetModel):
    """Azure's fine-tuning job (Azure's training code) on the user's own compute."""

    kind: Annotated[
        Literal["finetuning-job"], Field(description="finetuning-job: a FineTuning job on your compute.")
    ] = "finetuning-job"
    compute: Annotated[str | None, Field(description="AmlCompute cluster name (or set instance_types).")] = (
        None
    )
    instance_type: Annotated[
        str | None, Field(description="VM size of the cluster, e.g. Standard_NC24ads_A100_v4 (for planning).")
    ] = None
    instance_types: Annotated[
        list[str] | None, Field(description="VM sizes the service may pick from (serverless compute).")
    ] = None
    job_tier: Annotated[
        Literal["spot", "basic", "standard", "premium"] | None, Field(description="The service's job tier.")
    ] = None

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: str | None) -> str | None:
        return _compute_name(value)

    def resources(self) -> TargetResources:
        vm = self.instance_type or next(iter(self.instance_types or []), None)
        priority = "low" if self.job_tier == "spot" else "dedicated"
        return TargetResources(vm, 1, None, priority, None, "vm")


#: Spellings of Foundry's training types seen in Microsoft's docs and SDKs -> the spec's names.
_TRAINING_TYPE_SPELLINGS = {
    "global": "global",
    "globalstandard": "global",
    "global-standard": "global",
    "standard": "standard",
    "developer": "developer",
    "developertier": "developer",
    "developer-tier": "developer",
    "data-zone": "data-zone",
    "datazone": "data-zone",
    "data_zone": "data-zone",
}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_FOUNDRY_SUFFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,8}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _training_type(value: Any) -> Any:
    """GlobalStandard / developerTier / DataZone ... (the service's and the docs' spellings) -> our names."""
    if isinstance(value, str):
        return _TRAINING_TYPE_SPELLINGS.get(value.strip().lower().replace(" ", "-"), value)
    return value


def foundry_endpoint(value: str) -> str:
    """A Foundry endpoint, checked and normalized: https (http only on loopback, for local fakes and proxies), no
    credentials, query or fragment, and without a trailing `/openai/v1` (the client adds the API path)."""
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.username or parts.password or "@" in parts.netloc:
        # Checked first and never echoed: the credentials may be real.
        raise ValueError("the endpoint must not carry credentials (the value was not printed)")
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK_HOSTS):
        raise ValueError(
            f"{value!r} is not an https:// endpoint, e.g. https://<resource>.services.ai.azure.com/api/projects/"
            "<project>"
        )
    if not host:
        raise ValueError(f"{value!r} has no host name")
    if parts.query or parts.fragment:
        raise ValueError(
            "the endpoint takes no query string or fragment (no api-version: the v1 API has none)"
        )
    for tail in ("/openai/v1", "/openai"):
        if text.lower().endswith(tail):
            text = text[: -len(tail)]
            break
    return text


class FoundryTarget(TargetModel):
    """Azure AI Foundry's fine-tuning API (`fine_tuning/jobs`): the service's GPUs and training code, per token."""

    kind: Annotated[
        Literal["foundry"], Field(description="foundry: a fine_tuning job on an Azure AI Foundry resource.")
    ] = "foundry"
    endpoint: Annotated[
        str | None,
        Field(
            description="Foundry project endpoint https://<resource>.services.ai.azure.com/api/projects/<project> "
            "(or the resource endpoint); else AZURE_AI_PROJECT_ENDPOINT or --foundry-endpoint."
        ),
    ] = None
    training_type: Annotated[
        Literal["global", "standard", "developer", "data-zone"],
        BeforeValidator(_training_type),
        Field(
            description="Sent as trainingType: global (GlobalStandard), standard (the resource's region), developer "
            "(pre-emptible, about half the Global price)."
        ),
    ] = "global"
    suffix: Annotated[
        str | None,
        Field(
            description="Start of the fine-tuned model's suffix (up to 9 of a-z, 0-9, '-'); azfinetune adds 8 hex."
        ),
    ] = None
    learning_rate_multiplier: Annotated[
        float | None,
        Field(
            gt=0,
            description="Multiplier of the model's own learning rate (the service's learning_rate_multiplier).",
        ),
    ] = None
    api_key_env: Annotated[
        str | None,
        Field(description="Authenticate with the API key in this environment variable instead of Entra ID."),
    ] = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else foundry_endpoint(value)

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        if value is not None and not _FOUNDRY_SUFFIX.fullmatch(value):
            raise ValueError(
                f"{value!r}: use 1-9 lowercase letters, digits and '-' (azfinetune appends '-' and 8 hex of the spec "
                "hash, and the service takes at most 18 characters)"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            # Not echoed: a user may have pasted the key itself here.
            raise ValueError(
                "must be the NAME of an environment variable that holds the key (e.g. AZURE_OPENAI_API_KEY), never "
                "the key itself (the value was not printed)"
            )
        return value

    def resources(self) -> TargetResources:
        priority = "low" if self.training_type == "developer" else "dedicated"
        return TargetResources(None, 1, None, priority, None, "serverless")


# -- Kaito on Kubernetes (AKS) ------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
# A container image reference: [registry[:port]/]path[:tag][@digest] (docker/distribution's grammar, loosely).
_IMAGE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)


def _dns_label(value: str, what: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes {what} (at most 63 lowercase letters, digits and '-')"
        )
    return value


def _dns_subdomain(value: str, what: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes {what} name (lowercase letters, digits, '-' and '.', at most 253)"
        )
    return value


def _image(value: str) -> str:
    if len(value) > 512 or not _IMAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a container image reference such as myacr.azurecr.io/data:0.0.1")
    return value


def _label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"label key {key!r}: the prefix before '/' must be a DNS subdomain")
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"label key {key!r}: the name must be 1-63 letters, digits, '-', '_' or '.'")
    return key


class KaitoInput(_Fields):
    """Where Kaito reads the training data: exactly one of public URLs, a PersistentVolumeClaim or an image."""

    urls: Annotated[
        list[str] | None,
        Field(
            description="Public https URLs of the data files (no SAS or credentials); downloaded to /mnt/data."
        ),
    ] = None
    pvc: Annotated[
        str | None,
        Field(description="PersistentVolumeClaim (in the namespace) holding the data, mounted at /mnt/data."),
    ] = None
    image: Annotated[str | None, Field(description="Container image with the data in its /data folder.")] = (
        None
    )
    image_pull_secrets: Annotated[
        list[str] | None, Field(description="Secrets (names) for pulling the input image.")
    ] = None

    @field_validator("pvc")
    @classmethod
    def _pvc(cls, value: str | None) -> str | None:
        return None if value is None else _dns_subdomain(value, "PersistentVolumeClaim")

    @field_validator("image")
    @classmethod
    def _image_ref(cls, value: str | None) -> str | None:
        return None if value is None else _image(value)

    @field_validator("image_pull_secrets")
    @classmethod
    def _secrets(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            _dns_subdomain(name, "Secret")
        return value


class KaitoOutput(_Fields):
    """Where Kaito writes the adapter: an image pushed with a push secret, or a PersistentVolumeClaim."""

    image: Annotated[
        str | None, Field(description="Image the adapter is pushed to, e.g. myacr.azurecr.io/adapter:0.0.1.")
    ] = None
    image_push_secret: Annotated[
        str | None,
        Field(description="Secret (name, in the namespace) with the registry credentials for the push."),
    ] = None
    pvc: Annotated[
        str | None, Field(description="PersistentVolumeClaim (in the namespace) the adapter is saved to.")
    ] = None

    @field_validator("image")
    @classmethod
    def _image_ref(cls, value: str | None) -> str | None:
        return None if value is None else _image(value)

    @field_validator("image_push_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _dns_subdomain(value, "Secret")

    @field_validator("pvc")
    @classmethod
    def _pvc(cls, value: str | None) -> str | None:
        return None if value is None else _dns_subdomain(value, "PersistentVolumeClaim")


class KaitoTarget(TargetModel):
    """A Kaito tuning Workspace (kaito.sh/v1beta1) and its ConfigMap on a Kubernetes cluster (AKS's AI toolchain
    operator): Kaito's training code and preset images on the cluster's GPU nodes."""

    kind: Annotated[
        Literal["kaito"], Field(description="kaito: a Kaito tuning Workspace on your Kubernetes cluster.")
    ] = "kaito"
    namespace: Annotated[str, Field(description="Namespace of the Workspace and its ConfigMap.")] = "default"
    context: Annotated[
        str | None,
        Field(description="kubeconfig context to submit with (else the current one, or in-cluster)."),
    ] = None
    instance_type: Annotated[
        str | None,
        Field(
            description="GPU node VM size, e.g. Standard_NC24ads_A100_v4 (needed when Kaito provisions the node)."
        ),
    ] = None
    label_selector: Annotated[
        dict[str, str] | None,
        Field(description="matchLabels of the GPU nodes (default app: <the Workspace's name>)."),
    ] = None
    input: Annotated[
        KaitoInput | None,
        Field(description="Data source: urls, pvc or image (default: data.train when it is an https URL)."),
    ] = None
    output: Annotated[
        KaitoOutput, Field(description="Adapter destination: image + image_push_secret, or pvc.")
    ]
    preset: Annotated[
        str | None, Field(description="Kaito tuning preset name (default: the preset of the spec's model).")
    ] = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value, "namespace")

    @field_validator("context")
    @classmethod
    def _context(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("label_selector")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, label in (value or {}).items():
            _label_key(key)
            if not isinstance(label, str) or (
                label and (len(label) > 63 or not _LABEL_NAME.fullmatch(label))
            ):
                raise ValueError(
                    f"label {key}: {label!r} is not a label value (at most 63 letters, digits, '-', '_', '.')"
                )
        return value

    def resources(self) -> TargetResources:
        # Kaito runs one pod on one node and gives it every GPU of the node's size.
        return TargetResources(self.instance_type, 1, None, "dedicated", None, "vm")


#: kind -> its model, in the order the docs list them.
TARGET_MODELS: dict[str, type[TargetModel]] = {
    "local": LocalTarget,
    "command": CommandTarget,
    "pipeline": PipelineTarget,
    "registry-pipeline": RegistryPipelineTarget,
    "serverless": ServerlessTarget,
    "finetuning-job": FinetuningJobTarget,
    "foundry": FoundryTarget,
    "kaito": KaitoTarget,
}


def target_kind_of(value: Any) -> str | None:
    """The discriminator: a mapping's `kind` (default `local`, the spec's default target) or a model's."""
    kind = value.get("kind", "local") if isinstance(value, dict) else getattr(value, "kind", None)
    kind = getattr(kind, "value", kind)  # a TargetKind member
    return kind if isinstance(kind, str) else None


def kinds_with_field(name: str) -> list[str]:
    """The target kinds whose model has a field `name` (for "unknown key" hints)."""
    return [kind for kind, model in TARGET_MODELS.items() if name in model.model_fields]


TargetSpec = Annotated[
    Annotated[LocalTarget, Tag("local")]
    | Annotated[CommandTarget, Tag("command")]
    | Annotated[PipelineTarget, Tag("pipeline")]
    | Annotated[RegistryPipelineTarget, Tag("registry-pipeline")]
    | Annotated[ServerlessTarget, Tag("serverless")]
    | Annotated[FinetuningJobTarget, Tag("finetuning-job")]
    | Annotated[FoundryTarget, Tag("foundry")]
    | Annotated[KaitoTarget, Tag("kaito")],
    Discriminator(target_kind_of),
]
