"""Cross-field rules of the spec, each a function that returns the issues it finds, and the spec's warnings."""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from azfinetune.errors import CatalogError, Issue

if TYPE_CHECKING:
    from azfinetune.catalog import ModelInfo, SkuInfo
    from azfinetune.spec._models import FineTuneSpec

__all__ = [
    "BASE_DIR",
    "RULES",
    "SERVERLESS_HYPERPARAMETERS",
    "cross_field_issues",
    "huggingface_cache_dir",
    "model_kind",
    "spec_warnings",
]

#: Folder that relative paths are resolved against while a spec is being validated (set by load_spec).
BASE_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("azfinetune_base_dir", default=None)

#: training.* keys Azure's fine-tuning job (serverless and finetuning-job) accepts, and the hyperparameter name it
#: takes them as (strings on the wire). Sources: Azure/azureml-examples sdk/python/jobs/finetuning/standalone
#: (model-as-a-service and model-as-a-platform notebooks, text-generation-finetuning-amlcompute.yaml) and the
#: CLI sample in MicrosoftDocs/azure-ai-docs articles/ai-foundry/how-to/fine-tune-serverless.md, which all pass
#: exactly these three. Ranges (serverless only) are checked in _serverless.
SERVERLESS_HYPERPARAMETERS: dict[str, str] = {
    "epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "per_device_batch_size": "per_device_train_batch_size",
}

#: The registry `<task>_pipeline` components can do these techniques (apply_lora on or off).
REGISTRY_PIPELINE_TECHNIQUES = ("lora", "full")

Rule = Callable[["FineTuneSpec"], Iterator[Issue]]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def cross_field_issues(spec: FineTuneSpec) -> list[Issue]:
    """Every cross-field problem of a spec whose fields are individually valid."""
    issues: list[Issue] = []
    for check in RULES:
        issues.extend(check(spec))
    return issues


def _base_dir() -> Path:
    return BASE_DIR.get() or Path.cwd()


def model_kind(ref: str) -> str:
    """'registry' | 'hf' | 'alias' | 'local' for a spec's model reference."""
    if ref.startswith("azureml://"):
        return "registry"
    if ref.startswith("hf:"):
        return "hf"
    if "/" in ref or ref.startswith(".") or ref.startswith("~") or os.sep in ref:
        return "local"
    return "alias"


def _catalog_model(spec: FineTuneSpec) -> ModelInfo | None:
    from azfinetune.catalog import find_model

    return find_model(spec.model)


def _sku(spec: FineTuneSpec) -> SkuInfo | None:
    from azfinetune.catalog import get_sku

    if not spec.target.instance_type:
        return None
    try:
        return get_sku(spec.target.instance_type)
    except CatalogError:
        return None


def huggingface_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded models (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def _hf_cached(hf_id: str) -> bool:
    folder = huggingface_cache_dir() / ("models--" + hf_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any((snapshot / "config.json").exists() for snapshot in folder.iterdir())


def _local_gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


# -- the rules -------------------------------------------------------------------------------------


@rule
def _model_known(spec: FineTuneSpec) -> Iterator[Issue]:
    kind = model_kind(spec.model)
    if kind == "alias":
        from azfinetune.catalog import get_model

        try:
            get_model(spec.model)
        except CatalogError as error:
            yield Issue("model", error.message, hint=error.hint)
    elif kind == "local":
        if spec.target.kind.value != "local":
            yield Issue(
                "model",
                f"a local model folder ({spec.model}) can only be used with target.kind: local",
                hint="use a catalog alias, an azureml://registries/... model or hf:<org>/<name> for Azure",
            )
        else:
            folder = Path(spec.model).expanduser()
            folder = folder if folder.is_absolute() else _base_dir() / folder
            if not (folder / "config.json").exists():
                yield Issue(
                    "model",
                    f"no model at {folder} (no config.json there)",
                    hint="point model at a folder saved with save_pretrained, or run `azfinetune demo` "
                    "to create the tiny quickstart model",
                )


@rule
def _local_model_available(spec: FineTuneSpec) -> Iterator[Issue]:
    if spec.target.kind.value != "local" or model_kind(spec.model) in ("local",):
        return
    hf_id: str | None = None
    if model_kind(spec.model) == "hf":
        hf_id = spec.model[3:]
    else:
        info = _catalog_model(spec)
        hf_id = info.hf_id if info else None
    if model_kind(spec.model) == "registry" and hf_id is None:
        yield Issue(
            "model",
            "the local backend cannot use a registry model that is not in the catalog",
            hint="use a local folder or hf:<org>/<name> for target.kind: local",
        )
        return
    if hf_id and not _hf_cached(hf_id) and os.environ.get("AZFINETUNE_ALLOW_DOWNLOAD") != "1":
        yield Issue(
            "model",
            f"the local backend needs {hf_id} in the Hugging Face cache ({huggingface_cache_dir()}), "
            "and it is not there",
            hint=f"fetch it once with `huggingface-cli download {hf_id}`, or set AZFINETUNE_ALLOW_DOWNLOAD=1",
        )


@rule
def _qlora(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    if method.technique.value == "qlora":
        if method.quantization is not None and method.quantization.bits != 4:
            yield Issue(
                "method.quantization.bits",
                f"qlora needs a 4-bit base, got {method.quantization.bits}",
                hint="set method.quantization.bits: 4",
            )
    elif method.quantization is not None:
        yield Issue(
            "method.quantization",
            f"quantization is only used by technique qlora, not {method.technique.value}",
            hint="remove method.quantization or set method.technique: qlora",
        )


@rule
def _zero3_qlora_storage(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    quant = method.quantization
    if method.technique.value != "qlora" or method.deepspeed is None or method.deepspeed.stage != 3:
        return
    compute = spec.training.precision.value
    if quant is not None and quant.storage_dtype is not None and quant.storage_dtype != compute:
        yield Issue(
            "method.quantization.storage_dtype",
            f"ZeRO-3 with QLoRA needs the quantized storage dtype to equal the compute dtype ({compute}), "
            f"got {quant.storage_dtype}",
            hint=f"set storage_dtype: {compute} or leave it unset",
        )


@rule
def _lora_with_full(spec: FineTuneSpec) -> Iterator[Issue]:
    if spec.method.technique.value == "full" and spec.method.lora is not None:
        yield Issue(
            "method.lora",
            "LoRA settings are given but technique is full (all weights are trained, no adapter)",
            hint="remove method.lora or pick technique lora, qlora or dora",
        )


@rule
def _deepspeed(spec: FineTuneSpec) -> Iterator[Issue]:
    ds = spec.method.deepspeed
    if ds is None:
        return
    if ds.offload_params and ds.stage != 3:
        yield Issue(
            "method.deepspeed.offload_params",
            f"parameter offload needs ZeRO stage 3, got stage {ds.stage}",
            hint="set method.deepspeed.stage: 3 or offload_params: false",
        )
    if ds.offload_optimizer and ds.stage == 0:
        yield Issue(
            "method.deepspeed.offload_optimizer",
            "optimizer offload needs ZeRO stage 1, 2 or 3, got stage 0",
            hint="set method.deepspeed.stage: 2",
        )
    if spec.target.kind.value in ("serverless", "finetuning-job"):
        yield Issue(
            "method.deepspeed",
            f"target.kind {spec.target.kind.value} chooses its own distribution; DeepSpeed cannot be set",
            hint="remove method.deepspeed, or use target.kind: command to control DeepSpeed",
        )


@rule
def _precision_vs_gpu(spec: FineTuneSpec) -> Iterator[Issue]:
    sku = _sku(spec)
    if sku is None or sku.gpus == 0:
        return
    if spec.training.precision.value == "bf16" and sku.compute_capability < 8.0:
        yield Issue(
            "training.precision",
            f"bf16 needs a GPU of compute capability ≥ 8.0; {sku.name} has {sku.gpu} "
            f"(compute capability {sku.compute_capability})",
            hint="use precision: fp16 on this GPU, or an A100/H100 SKU for bf16",
        )


@rule
def _instance_type_known(spec: FineTuneSpec) -> Iterator[Issue]:
    from azfinetune.catalog import get_sku

    names = [
        ("target.instance_type", spec.target.instance_type),
        ("target.cpu_instance_type", spec.target.cpu_instance_type),
    ]
    names += [(f"target.instance_types[{i}]", n) for i, n in enumerate(spec.target.instance_types or [])]
    for path, name in names:
        if not name:
            continue
        try:
            get_sku(name)
        except CatalogError as error:
            yield Issue(path, error.message, hint=error.hint)


@rule
def _gpus_per_node(spec: FineTuneSpec) -> Iterator[Issue]:
    sku = _sku(spec)
    wanted = spec.target.gpus_per_node
    if sku is None or wanted is None:
        return
    if wanted > sku.gpus:
        yield Issue(
            "target.gpus_per_node",
            f"{sku.name} has {sku.gpus} GPU(s), got gpus_per_node {wanted}",
            hint=f"set gpus_per_node ≤ {sku.gpus} or pick a larger SKU",
        )


@rule
def _target_shape(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    kind = target.kind.value
    if kind == "serverless":
        for key in ("compute", "instance_type", "instance_types", "job_tier"):
            if getattr(target, key):
                yield Issue(
                    f"target.{key}",
                    "serverless fine-tuning runs on the service's compute; no compute can be set",
                    hint="use target.kind: finetuning-job to run the same job on your own compute, "
                    "or target.kind: command",
                )
    if kind in ("command", "pipeline", "registry-pipeline") and not target.compute:
        yield Issue(
            "target.compute",
            f"target.kind {kind} needs an AmlCompute cluster name",
            hint="set target.compute to your GPU cluster (az ml compute list)",
        )
    if kind == "finetuning-job" and not (target.compute or target.instance_types):
        yield Issue(
            "target.compute",
            "a finetuning-job needs a compute cluster or instance_types",
            hint="set target.compute, or target.instance_types: [Standard_NC24ads_A100_v4]",
        )
    if kind == "local":
        for key in ("compute", "instance_type", "instance_types", "cpu_compute", "cpu_instance_type"):
            if getattr(target, key):
                yield Issue(
                    f"target.{key}",
                    "the local backend runs on this machine; remove Azure compute settings",
                    hint="or set target.kind: command to run on that cluster",
                )
    if kind not in ("finetuning-job",) and (target.instance_types or target.job_tier):
        key = "instance_types" if target.instance_types else "job_tier"
        if kind != "serverless":
            yield Issue(f"target.{key}", f"only used by target.kind finetuning-job, not {kind}")
    if kind not in ("pipeline", "registry-pipeline", "local") and (
        target.cpu_compute or target.cpu_instance_type
    ):
        key = "cpu_compute" if target.cpu_compute else "cpu_instance_type"
        yield Issue(
            f"target.{key}", f"only used by target.kind pipeline and registry-pipeline, not {kind}"
        )
    if target.component_version != "latest" and kind != "registry-pipeline":
        yield Issue("target.component_version", f"only used by target.kind registry-pipeline, not {kind}")


@rule
def _distributed(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    kind = target.kind.value
    sku = _sku(spec)
    gpus = target.gpus_per_node if target.gpus_per_node is not None else (sku.gpus if sku else 1)
    if kind == "local":
        if target.nodes > 1:
            yield Issue(
                "target.nodes",
                f"the local backend runs on one machine, got nodes {target.nodes}",
                hint="use target.kind: command for multi-node training",
            )
        elif (target.gpus_per_node or 0) > 1:
            available = _local_gpu_count()
            if available < (target.gpus_per_node or 0):
                yield Issue(
                    "target.gpus_per_node",
                    f"{target.gpus_per_node} GPUs requested but this machine has {available}",
                    hint="remove gpus_per_node for a single-process local run",
                )
    elif kind == "serverless" and (target.nodes > 1 or target.gpus_per_node):
        key = "nodes" if target.nodes > 1 else "gpus_per_node"
        yield Issue(f"target.{key}", "serverless fine-tuning chooses its own GPUs")
    elif target.nodes * max(gpus, 1) > 1 and sku is not None and sku.gpus == 0:
        yield Issue("target.instance_type", f"{sku.name} has no GPU for distributed training")


@rule
def _serverless(spec: FineTuneSpec) -> Iterator[Issue]:
    kind = spec.target.kind.value
    if kind not in ("serverless", "finetuning-job"):
        return
    what = "serverless fine-tuning" if kind == "serverless" else "a finetuning-job (Azure's fine-tuning job)"
    info = _catalog_model(spec)
    if kind == "serverless":
        if info is None or info.serverless is None:
            from azfinetune.catalog import list_models

            name = info.display_name if info else spec.model
            offered = [
                m.alias for m in list_models() if m.serverless is not None and m.serverless.retired is None
            ]
            yield Issue(
                "model",
                f"{name} is not offered for serverless fine-tuning",
                hint=f"models with serverless fine-tuning: {', '.join(offered) or 'none in the catalog'}; "
                "or fine-tune this model on your own compute with target.kind: finetuning-job or command",
            )
        elif spec.task.value not in info.serverless.tasks:
            yield Issue(
                "task",
                f"serverless fine-tuning of {info.display_name} supports {', '.join(info.serverless.tasks)}, "
                f"not {spec.task.value}",
                hint="use target.kind: command to fine-tune this model for other tasks on your own compute",
            )
    elif info is None and model_kind(spec.model) != "registry":
        yield Issue(
            "model",
            f"a finetuning-job fine-tunes an Azure ML registry model; {spec.model} is not one",
            hint="use a catalog alias or azureml://registries/<registry>/models/<name>/versions/<v>, "
            "or target.kind: command for other models",
        )
    if spec.task.value not in ("chat-completion", "text-completion") and kind == "finetuning-job":
        yield Issue("task", "Azure fine-tuning jobs support chat-completion and text-completion here")
    # Azure's fine-tuning code picks the technique (LoRA) and its settings; azfinetune must not pretend otherwise.
    if spec.method.technique.value not in ("lora",):
        yield Issue(
            "method.technique",
            f"{what} chooses the technique itself (LoRA); {spec.method.technique.value} cannot be set",
            hint="remove method.technique, or use target.kind: command for qlora/dora/full",
        )
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
    for key in ("priority", "max_run_minutes"):
        if key in spec.target.model_fields_set:
            tier = " (use target.job_tier: spot for low priority)" if kind == "finetuning-job" else ""
            yield Issue(f"target.{key}", f"{what} does not take this setting{tier}")
    if kind == "finetuning-job":
        for key in ("nodes", "gpus_per_node"):
            if key in spec.target.model_fields_set:
                yield Issue(f"target.{key}", f"{what} chooses its own nodes and GPUs on the compute")
    allowed = set(SERVERLESS_HYPERPARAMETERS)
    for key in sorted(spec.training.model_fields_set - allowed):
        yield Issue(
            f"training.{key}",
            f"{what} does not take this setting",
            hint=f"it takes only {', '.join(sorted(allowed))}; use target.kind: command for full control",
        )
    if kind == "serverless":
        # The service's documented ranges (Azure AI Foundry serverless fine-tuning wizard): epochs 1-10 whole,
        # batch size 1-32. The learning rate has no documented absolute range (the wizard shows a multiplier
        # 0-10 of the model's default); the spec's own bound (0, 0.1] applies.
        training = spec.training
        if not 1 <= training.epochs <= 10 or training.epochs != int(training.epochs):
            yield Issue(
                "training.epochs",
                f"serverless fine-tuning takes 1-10 whole epochs, got {training.epochs:g}",
                hint="set training.epochs to a whole number from 1 to 10",
            )
        if not 1 <= training.per_device_batch_size <= 32:
            yield Issue(
                "training.per_device_batch_size",
                f"serverless fine-tuning takes a batch size of 1-32, got {training.per_device_batch_size}",
                hint="set training.per_device_batch_size from 1 to 32",
            )


@rule
def _registry_pipeline(spec: FineTuneSpec) -> Iterator[Issue]:
    if spec.target.kind.value != "registry-pipeline":
        return
    technique = spec.method.technique.value
    if technique not in REGISTRY_PIPELINE_TECHNIQUES:
        yield Issue(
            "method.technique",
            f"the registry's <task>_pipeline components cannot do {technique} (they offer LoRA or full)",
            hint="use target.kind: command to run qlora or dora with this project's training code",
        )
    if model_kind(spec.model) == "local":
        yield Issue("model", "registry pipelines need a registry or Hugging Face model")


@rule
def _onnxruntime(spec: FineTuneSpec) -> Iterator[Issue]:
    if spec.method.onnxruntime and spec.target.kind.value != "registry-pipeline":
        yield Issue(
            "method.onnxruntime",
            f"only the registry pipelines take apply_ort, not target.kind {spec.target.kind.value}",
            hint="remove it; ONNX Runtime training is not released any more (export to ONNX for inference instead)",
        )


@rule
def _sequence_length(spec: FineTuneSpec) -> Iterator[Issue]:
    info = _catalog_model(spec)
    if info is None:
        return
    limit = info.architecture.max_position_embeddings
    if spec.training.max_seq_length > limit:
        yield Issue(
            "training.max_seq_length",
            f"{info.display_name} has a context of {limit} tokens, got max_seq_length {spec.training.max_seq_length}",
            hint=f"set max_seq_length ≤ {limit}, or use a long-context variant of the model",
        )


@rule
def _target_modules(spec: FineTuneSpec) -> Iterator[Issue]:
    lora = spec.method.lora
    info = _catalog_model(spec)
    if lora is None or info is None or not isinstance(lora.target_modules, list) or not info.linear_modules:
        return
    known = set(info.linear_modules)
    for index, name in enumerate(lora.target_modules):
        if name not in known:
            from azfinetune.spec._errors import did_you_mean

            hint = did_you_mean(name, known) or f"{info.display_name} has: {', '.join(sorted(known))}"
            yield Issue(
                f"method.lora.target_modules[{index}]",
                f"{info.display_name} has no linear module {name!r}",
                hint=hint,
            )


@rule
def _data_refs(spec: FineTuneSpec) -> Iterator[Issue]:
    for role, ref in spec.data.files().items():
        path = f"data.{role}"
        if ref.startswith("azureml:") and not ref.startswith("azureml://"):
            if "@" in ref:
                continue
            if not re.fullmatch(r"azureml:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+", ref):
                yield Issue(
                    path, f"{ref!r} is not a data asset reference", hint="use azureml:<name>:<version>"
                )
        elif ref.startswith(("http://",)):
            yield Issue(path, "plain http is refused", hint="use https:// or a registered data asset")
        elif spec.target.kind.value == "local" and ref.startswith(("azureml:", "https://")):
            yield Issue(
                path, "the local backend reads local files only", hint="download the file and point to it"
            )


# -- warnings --------------------------------------------------------------------------------------


def spec_warnings(spec: FineTuneSpec, *, today: dt.date | None = None) -> list[Issue]:
    """Things worth telling the user that do not stop the job."""
    today = today or dt.date.today()
    warnings: list[Issue] = []
    info = _catalog_model(spec)
    if spec.target.kind.value == "serverless" and info is not None and info.serverless is not None:
        status = info.serverless_status(today)
        if status in ("retired", "deprecated"):
            when = info.serverless.retired if status == "retired" else info.serverless.deprecated
            alternative = info.serverless.alternative or "phi-4-mini-instruct"
            warnings.append(
                Issue(
                    "model",
                    f"serverless fine-tuning of {info.display_name} was {status} on {when}",
                    hint=f"use model: {alternative} (serverless), or the same model on your own compute with "
                    "target.kind: command; submit refuses it unless --allow-retired",
                    severity="warning",
                )
            )
    sku = _sku(spec)
    if sku is not None and sku.is_retired(today):
        warnings.append(
            Issue(
                "target.instance_type",
                f"Azure retired the {sku.name} VM size on {sku.retirement_date}; new clusters cannot use it",
                hint="pick a current size (azfinetune plan lists them with prices)",
                severity="warning",
            )
        )
    if spec.method.onnxruntime and spec.target.kind.value == "registry-pipeline":
        warnings.append(
            Issue(
                "method.onnxruntime",
                "apply_ort is passed, but Azure's fine-tune code has ignored it since October 2023: no effect today",
                severity="warning",
            )
        )
    if (
        spec.method.technique.value == "qlora"
        and spec.target.kind.value == "local"
        and _local_gpu_count() == 0
    ):
        warnings.append(
            Issue(
                "method.technique",
                "QLoRA needs a CUDA GPU (bitsandbytes); this machine has none, so a local run will fail",
                hint="try technique: lora locally, qlora on Azure",
                severity="warning",
            )
        )
    return warnings


def file_issues(spec: FineTuneSpec) -> list[Issue]:
    """Local files the spec names that do not exist (checked by validate, build, submit and run)."""
    issues: list[Issue] = []
    for role, ref in spec.data.local_files().items():
        path = spec.resolve_path(ref)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            line_col = spec.position(f"data.{role}")
            issues.append(
                Issue(
                    f"data.{role}",
                    f"{path} {what}",
                    file=spec.source,
                    line=line_col[0] if line_col else None,
                    column=line_col[1] if line_col else None,
                    hint="paths are relative to the spec file's folder",
                )
            )
    env = spec.environment
    uses_environment = spec.target.kind.value in ("command", "pipeline")
    if uses_environment and not env.startswith("azureml:") and ("/" in env or env.startswith(".")):
        folder = spec.resolve_path(env)
        if not folder.is_dir() and not _project_path(env).is_dir():
            line_col = spec.position("environment")
            issues.append(
                Issue(
                    "environment",
                    f"environment folder {env} not found",
                    file=spec.source,
                    line=line_col[0] if line_col else None,
                    column=line_col[1] if line_col else None,
                    hint="use environments/finetune-gpu from this project, or azureml:<name>:<version>",
                )
            )
    return issues


def _project_path(relative: str) -> Path:
    """A path inside the azfinetune project checkout (environments/, jobs/)."""
    return Path(__file__).resolve().parents[2] / relative
