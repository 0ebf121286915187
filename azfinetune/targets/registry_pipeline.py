"""target.kind registry-pipeline: a PipelineJob whose one node is the Azure ML registry's `<task>_pipeline`."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import ModelInfo, find_model, get_sku
from azfinetune.errors import BuildError, CatalogError, Issue
from azfinetune.spec import FineTuneSpec, RegistryPipelineTarget, Technique, model_kind
from azfinetune.targets._common import TAG_PREFIX, azfinetune_tags, job_name
from azfinetune.targets._deepspeed import deepspeed_config, write_deepspeed_config
from azfinetune.targets._paths import generated_dir
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets._registry_components import (
    REGISTRY,
    TASK_COMPONENTS,
    check_component_version,
    component_id,
    contract,
    load_registry_component,
)
from azfinetune.targets._rules import is_user_set
from azfinetune.targets.command import normalize_data_reference

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULTS_PROPERTY",
    "NODE_NAME",
    "REGISTRY_COLUMNS",
    "TARGET",
    "AssetInput",
    "RegistryPipelinePlan",
    "build_registry_pipeline_job",
    "registry_pipeline_issues",
    "registry_pipeline_plan",
]

NODE_NAME = "finetune"
#: Job property listing the catalog defaults the build applied (JSON object: input name -> value).
DEFAULTS_PROPERTY = f"{TAG_PREFIX}defaults_applied"
NOTES_PROPERTY = f"{TAG_PREFIX}notes"

#: Per task: (registry input, spec data.columns keys that may name it (first one set wins), the column names
#: tried when the spec names none). A candidate is taken when the first example of the local training file
#: has it; otherwise the first candidate is assumed for an input the component requires (and checked against
#: local files), and an optional input is left out. The names are those of the registry's own samples and
#: component READMEs, as azfinetune's data validator uses them: text/sentence1 + label, CoNLL-2003
#: tokens + ner_tags, SQuAD question/context/answers, XSum document/summary, text + ground_truth. No
#: candidates: translation keys its columns by language code, which is read from a two-column file or must
#: be named (data.columns.source_lang / target_lang).
REGISTRY_COLUMNS: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "chat-completion": (),
    "text-completion": (
        ("text_key", ("prompt", "text"), ("text", "prompt")),
        ("ground_truth_key", ("completion",), ("ground_truth", "completion")),
    ),
    "text-classification": (
        ("sentence1_key", ("text",), ("text", "sentence1", "sentence")),
        ("sentence2_key", ("text_pair",), ("text_pair", "sentence2")),
        ("label_key", ("label",), ("label", "labels")),
    ),
    "token-classification": (
        ("token_key", ("tokens",), ("tokens",)),
        ("tag_key", ("tags",), ("ner_tags", "tags")),
    ),
    "question-answering": (
        ("question_key", ("question",), ("question",)),
        ("context_key", ("context",), ("context",)),
        ("answers_key", ("answers",), ("answers",)),
    ),
    "summarization": (
        ("document_key", ("source",), ("document", "source", "article")),
        ("summary_key", ("target",), ("summary", "target", "highlights")),
    ),
    "translation": (
        ("source_lang", ("source_lang", "source"), ()),
        ("target_lang", ("target_lang", "target"), ()),
    ),
}
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$")
# SQuAD's nested keys inside the answers column; the spec has no columns for them.
_QA_NESTED = {"answer_start_key": "answer_start", "answer_text_key": "text"}
_PRECISION = {"bf16": "16", "fp16": "16", "fp32": "32"}


@dataclass
class RegistryPipelinePlan:
    """What the registry pipeline job will be: the component reference and every input passed to it."""

    component: str
    version: str
    component_id: str
    inputs: dict[str, Any]
    defaults_applied: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    technique: str = "lora"
    deepspeed_config: dict[str, Any] | None = None


@dataclass(frozen=True)
class AssetInput:
    """An asset input of the component (model or data), before it becomes an azure.ai.ml Input at build."""

    type: str
    path: str


@dataclass
class _Problems:
    items: list[Issue] = field(default_factory=list)

    def add(self, path: str, message: str, hint: str | None = None) -> None:
        self.items.append(Issue(path, message, hint=hint))


# -- helpers ---------------------------------------------------------------------------------------------


def _local_file(spec: FineTuneSpec, role: str) -> Path | None:
    ref = spec.data.files().get(role)
    if ref is None or spec.data.is_remote(ref):
        return None
    path = spec.resolve_path(ref)
    return path if path.is_file() else None


def _first_record(path: Path) -> dict[str, Any] | None:
    """The first example of a local JSONL/JSON-lines or CSV/TSV file (None for other formats or no examples)."""
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if suffix in (".csv", ".tsv"):
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                return {name: "" for name in reader.fieldnames or []}
            if suffix not in (".jsonl", ".json"):
                return None
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return None  # the data validator reports broken files with line numbers; nothing to add here
    return None


def _count_examples(path: Path) -> int | None:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".tsv"):
        return None
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if suffix in (".csv", ".tsv") else lines


def _gpus_per_node(spec: FineTuneSpec) -> int | None:
    resources = spec.target.resources()
    if resources.gpus_per_node:
        return resources.gpus_per_node
    if resources.instance_type:
        try:
            gpus = get_sku(resources.instance_type).gpus
        except CatalogError:
            return None
        return gpus or None
    return None


# -- the mapping ------------------------------------------------------------------------------------


def _model_inputs(spec: FineTuneSpec, info: ModelInfo | None, problems: _Problems) -> dict[str, Any]:
    ref = spec.model
    if model_kind(ref) == "local":
        problems.add("model", "registry pipelines need a registry or Hugging Face model")
        return {}
    if ref.startswith("hf:"):
        return {"huggingface_id": ref[3:]}
    if ref.startswith("azureml://registries/"):
        return {"mlflow_model_path": AssetInput("mlflow_model", ref)}
    if info is not None:
        return {"mlflow_model_path": AssetInput("mlflow_model", info.registry_uri)}
    problems.add(
        "model",
        f"{ref!r} is not a registry model, a Hugging Face id or a catalog alias",
        "registry pipelines take azureml://registries/<reg>/models/<name>/versions/<v> or hf:<org>/<name>",
    )
    return {}


def _column_inputs(spec: FineTuneSpec, first: dict[str, Any] | None, problems: _Problems) -> dict[str, str]:
    """The component's column inputs: named by data.columns, else found in the first training example."""
    task = spec.task.value
    columns = spec.data.columns.as_dict() if spec.data.columns else {}
    mapping = REGISTRY_COLUMNS[task]
    component = TASK_COMPONENTS[task]
    declared = contract(component).inputs
    present = set(first or ())
    codes = [key for key in (first or {}) if _LANGUAGE_CODE.match(key)]
    inputs: dict[str, str] = {}
    used: set[str] = set()
    for index, (registry_input, keys, candidates) in enumerate(mapping):
        named = [(key, columns[key]) for key in keys if key in columns]
        used.update(key for key, _ in named)
        if len({value for _, value in named}) > 1:
            problems.add(
                f"data.columns.{named[1][0]}",
                f"{component} reads one column for {registry_input}, but data.columns names "
                + " and ".join(f"{key}: {value}" for key, value in named),
                "the registry keys translation columns by language code: name the column after the code, "
                "or use target.kind: command"
                if task == "translation"
                else f"keep only data.columns.{named[0][0]}",
            )
            continue
        value: str | None = named[0][1] if named else None
        if value is None:
            found = [name for name in candidates if name in present]
            if task == "translation" and len(present) == 2 and len(codes) == 2:
                found = [codes[index]]  # {"en": ..., "ro": ...}: source first, as the registry's samples
            if found:
                value = found[0]
            elif candidates and declared[registry_input].required:
                value = candidates[0]
        if value is None:
            if declared[registry_input].required:
                problems.add(
                    f"data.columns.{keys[0]}",
                    f"{component} needs {registry_input}: set data.columns.{keys[0]}",
                    'the registry reads translation examples like {"en": "...", "ro": "..."}: '
                    "data.columns: {source_lang: en, target_lang: ro}"
                    if task == "translation"
                    else None,
                )
            continue
        inputs[registry_input] = value
    if task == "question-answering":
        inputs.update(_QA_NESTED)
    for key in sorted(set(columns) - used):
        usable = sorted({k for _, keys, _ in mapping for k in keys})
        problems.add(
            f"data.columns.{key}",
            f"{component} has no column input that data.columns.{key} could set",
            f"it takes: {', '.join(usable)}"
            if usable
            else f"{component} reads the 'messages' column; remove data.columns",
        )
    return inputs


def _check_columns_in_files(spec: FineTuneSpec, columns: dict[str, str], problems: _Problems) -> None:
    """A column the job will read must exist in every local data file (checked on its first example)."""
    task = spec.task.value
    wanted = {"messages": "messages"} if task == "chat-completion" else {}
    key_for = {reg: keys[0] for reg, keys, _ in REGISTRY_COLUMNS[task]}
    for registry_input, column in columns.items():
        if registry_input in key_for:
            wanted[registry_input] = column
    for role in ("train", "validation", "test"):
        path = _local_file(spec, role)
        record = _first_record(path) if path is not None else None
        if path is None or record is None:
            continue
        for registry_input, column in wanted.items():
            if column in record:
                continue
            key = key_for.get(registry_input)
            where = f"data.columns.{key}" if key else f"data.{role}"
            fix = (
                f"name the column that holds it with data.columns.{key}"
                if key
                else "see the chat format in the docs"
            )
            problems.add(
                where,
                f"data.{role} ({path.name}) has no column {column!r}, which {registry_input} names; "
                f"its first example has: {', '.join(sorted(record)) or 'no columns'}",
                fix,
            )


def _compute_inputs(spec: FineTuneSpec, problems: _Problems) -> dict[str, Any]:
    target = spec.target
    inputs: dict[str, Any] = {}
    if not isinstance(target, RegistryPipelineTarget):
        problems.add(
            "target.kind",
            f"the registry pipeline mapping takes target.kind registry-pipeline, not {target.kind}",
        )
        return inputs
    gpu = target.compute
    if not gpu:
        problems.add(
            "target.compute",
            "the fine-tune step has no compute: a registry pipeline needs a GPU cluster (or 'serverless')",
            "set target.compute to your GPU cluster (az ml compute list)",
        )
        return inputs
    if gpu == "serverless" and not target.instance_type:
        problems.add(
            "target.instance_type",
            "target.compute is serverless, so the fine-tune step needs a VM size",
            "set target.instance_type, e.g. Standard_NC24ads_A100_v4",
        )
    # CPU steps (model import, preprocess): their own cluster, a serverless VM size, or the GPU cluster.
    if target.cpu_compute:
        cpu, cpu_type = target.cpu_compute, target.cpu_instance_type
    elif target.cpu_instance_type:
        cpu, cpu_type = "serverless", target.cpu_instance_type
    else:
        cpu, cpu_type = gpu, target.instance_type
    if cpu == "serverless" and not cpu_type and gpu != "serverless":
        problems.add(
            "target.cpu_instance_type",
            "target.cpu_compute is serverless, so the model-import and preprocess steps need a VM size",
            "set target.cpu_instance_type, e.g. Standard_E4s_v3",
        )
    for step in ("model_import", "preprocess"):
        inputs[f"compute_{step}"] = cpu
        if cpu == "serverless" and cpu_type:
            inputs[f"instance_type_{step}"] = cpu_type
    for step in ("finetune", "model_evaluation"):
        inputs[f"compute_{step}"] = gpu
        if gpu == "serverless" and target.instance_type:
            inputs[f"instance_type_{step}"] = target.instance_type
    inputs["num_nodes_finetune"] = target.nodes
    gpus = _gpus_per_node(spec)
    if gpus:
        inputs["number_of_gpu_to_use_finetuning"] = gpus
    return inputs


def _warmup_steps(spec: FineTuneSpec, gpus: int, problems: _Problems, notes: list[str]) -> int | None:
    """training.warmup_ratio as the registry's warmup_steps (it takes no ratio)."""
    training = spec.training
    if training.warmup_ratio == 0:
        return 0
    if training.max_steps > 0:
        total = training.max_steps
    else:
        path = _local_file(spec, "train")
        examples = _count_examples(path) if path is not None else None
        if examples is None:
            if is_user_set(spec, "training.warmup_ratio"):
                problems.add(
                    "training.warmup_ratio",
                    "the registry pipeline takes warmup steps, not a ratio, and the number of training steps "
                    "is unknown for a data file that is not local",
                    "set training.max_steps, use a local training file, or remove training.warmup_ratio",
                )
            else:
                notes.append("training.warmup_ratio (default) not passed: the training-set size is unknown")
            return None
        if not (spec.data.validation or spec.data.test):
            # The registry splits train 80/10/10 when no validation or test file is given.
            examples = math.ceil(examples * 0.8)
        world = max(gpus, 1) * spec.target.resources().nodes
        micro_batches = math.ceil(examples / (training.per_device_batch_size * world))
        per_epoch = max(1, math.ceil(micro_batches / training.gradient_accumulation_steps))
        total = math.ceil(per_epoch * training.epochs)
    return math.ceil(training.warmup_ratio * total)


def _training_inputs(spec: FineTuneSpec, gpus: int, problems: _Problems, notes: list[str]) -> dict[str, Any]:
    training = spec.training
    declared = contract(TASK_COMPONENTS[spec.task.value]).inputs
    inputs: dict[str, Any] = {}
    if training.epochs != int(training.epochs):
        if training.max_steps > 0:
            inputs["num_train_epochs"] = math.ceil(
                training.epochs
            )  # max_steps decides; epochs only bounds it
        else:
            problems.add(
                "training.epochs",
                f"the registry pipeline trains whole epochs, got {training.epochs:g}",
                "use a whole number of epochs, or set training.max_steps",
            )
    else:
        inputs["num_train_epochs"] = int(training.epochs)
    inputs["max_steps"] = training.max_steps
    inputs["per_device_train_batch_size"] = training.per_device_batch_size
    inputs["per_device_eval_batch_size"] = training.per_device_batch_size
    inputs["learning_rate"] = training.learning_rate
    scheduler = training.lr_scheduler.value
    allowed = declared["lr_scheduler_type"].enum or ()
    if scheduler in allowed:
        inputs["lr_scheduler_type"] = scheduler
    else:
        problems.add(
            "training.lr_scheduler",
            f"the registry pipeline has no {scheduler} schedule",
            f"use one of {', '.join(allowed)}, or target.kind: command",
        )
    warmup = _warmup_steps(spec, gpus, problems, notes)
    if warmup is not None:
        inputs["warmup_steps"] = warmup
    inputs["gradient_accumulation_steps"] = training.gradient_accumulation_steps
    inputs["max_seq_length"] = training.max_seq_length
    inputs["seed"] = training.seed
    inputs["logging_steps"] = training.logging_steps
    optimizer = spec.method.optimizer.value
    if optimizer in (declared["optim"].enum or ()):
        inputs["optim"] = optimizer
    else:
        problems.add(
            "method.optimizer",
            f"the registry pipeline cannot use {optimizer}",
            f"use {' or '.join(declared['optim'].enum or ())}, or target.kind: command",
        )
    if training.packing:
        problems.add(
            "training.packing",
            "the registry pipeline does not pack examples",
            "set packing: false, or use target.kind: command",
        )
    for key in ("gradient_checkpointing", "mask_prompt"):
        if is_user_set(spec, f"training.{key}"):
            notes.append(f"training.{key} is not an input of the registry pipeline; the component decides")
    return inputs


def _method_inputs(
    spec: FineTuneSpec, defaults: dict[str, str], plan: RegistryPipelinePlan, problems: _Problems
) -> dict[str, Any]:
    method = spec.method
    inputs: dict[str, Any] = {}
    technique = method.technique.value  # lora or full: the target's techniques
    technique_set = is_user_set(spec, "method.technique") or is_user_set(spec, "method.lora")
    if not technique_set and "apply_lora" in defaults:
        apply_lora = defaults["apply_lora"]
        plan.defaults_applied["apply_lora"] = apply_lora
    else:
        apply_lora = "true" if technique == "lora" else "false"
    plan.technique = "lora" if apply_lora == "true" else "full"
    inputs["apply_lora"] = apply_lora
    if apply_lora == "true":
        lora = method.effective_lora
        if lora.target_modules != "auto":
            problems.add(
                "method.lora.target_modules",
                "the registry pipeline chooses the LoRA target modules itself",
                "remove target_modules (auto), or use target.kind: command",
            )
        inputs.update(
            lora_r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, merge_lora_weights="true"
        )

    if is_user_set(spec, "training.precision") or "precision" not in defaults:
        inputs["precision"] = _PRECISION[spec.training.precision.value]
    else:
        inputs["precision"] = defaults["precision"]
        plan.defaults_applied["precision"] = defaults["precision"]

    ds = method.deepspeed
    if is_user_set(spec, "method.deepspeed") and ds is not None:
        if ds.stage == 0:
            inputs["apply_deepspeed"] = "false"
        elif ds.stage in (2, 3) and not (ds.offload_optimizer or ds.offload_params):
            inputs.update(apply_deepspeed="true", deepspeed_stage=str(ds.stage))
        else:
            # The component's deepspeed_stage offers 2 or 3 without offload; anything else travels as a config file.
            inputs["apply_deepspeed"] = "true"
            plan.deepspeed_config = deepspeed_config(spec)
    elif "apply_deepspeed" in defaults:
        inputs["apply_deepspeed"] = defaults["apply_deepspeed"]
        plan.defaults_applied["apply_deepspeed"] = defaults["apply_deepspeed"]
        if defaults["apply_deepspeed"] == "true" and "deepspeed_stage" in defaults:
            inputs["deepspeed_stage"] = defaults["deepspeed_stage"]
            plan.defaults_applied["deepspeed_stage"] = defaults["deepspeed_stage"]
    if isinstance(spec.target, RegistryPipelineTarget) and spec.target.apply_ort:
        inputs["apply_ort"] = "true"
        plan.notes.append(
            "apply_ort has no effect today: Azure's fine-tune code ignores it since October 2023"
        )
    return inputs


def _data_asset(spec: FineTuneSpec, reference: str) -> AssetInput:
    if spec.data.is_remote(reference):
        return AssetInput("uri_file", normalize_data_reference(reference))
    return AssetInput("uri_file", str(spec.resolve_path(reference).resolve()))


def _map(spec: FineTuneSpec) -> tuple[RegistryPipelinePlan, list[Issue]]:
    """The spec mapped onto the registry component's inputs, and every problem found on the way. Pure and
    offline (no azure.ai.ml): `validate` runs it for the rules, `build` for the inputs."""
    task = spec.task.value
    name = TASK_COMPONENTS[task]
    problems = _Problems()
    target = spec.target
    requested = target.component_version if isinstance(target, RegistryPipelineTarget) else "latest"
    try:
        version = check_component_version(name, requested)
    except BuildError as error:
        problems.add(error.path or "target.component_version", error.message, error.hint)
        version = "latest"
    plan = RegistryPipelinePlan(
        component=name, version=version, component_id=component_id(name, version), inputs={}
    )
    info = find_model(spec.model)
    defaults = dict(info.registry_pipeline_defaults) if info is not None else {}

    # task_name is required and has one allowed value per component.
    inputs: dict[str, Any] = {"task_name": (contract(name).inputs["task_name"].enum or ("",))[0]}
    inputs.update(_model_inputs(spec, info, problems))
    for role, reference in spec.data.files().items():
        inputs[f"{role}_file_path"] = _data_asset(spec, reference)
    train = _local_file(spec, "train")
    columns = _column_inputs(spec, _first_record(train) if train is not None else None, problems)
    _check_columns_in_files(spec, columns, problems)
    inputs.update(columns)
    inputs.update(_method_inputs(spec, defaults, plan, problems))
    compute = _compute_inputs(spec, problems)
    inputs.update(compute)
    gpus = int(compute.get("number_of_gpu_to_use_finetuning", 1))
    inputs.update(_training_inputs(spec, gpus, problems, plan.notes))
    if spec.secrets:
        problems.add(
            "secrets",
            "the registry pipeline cannot resolve Key Vault secrets in its steps",
            "remove secrets, or use target.kind: command",
        )
    if spec.register is not None and spec.register.min_eval:
        problems.add(
            "register.min_eval",
            "the registry pipeline registers its model without an evaluation gate",
            "remove min_eval, or use target.kind: pipeline (validate, fine-tune, evaluate, register if it passes)",
        )
    # Catalog defaults the mapping above has no spec field for still apply when the component declares them.
    declared = contract(name).inputs
    for key, value in sorted(defaults.items()):
        if key in declared and key not in inputs and key not in ("deepspeed_stage",):
            inputs[key] = value
            plan.defaults_applied[key] = value
    plan.inputs = inputs
    return plan, problems.items


def registry_pipeline_issues(spec: FineTuneSpec) -> list[Issue]:
    """What the registry component would refuse, or cannot express, in this spec (offline)."""
    return _map(spec)[1]


def registry_pipeline_plan(spec: FineTuneSpec) -> RegistryPipelinePlan:
    """Map the spec onto the registry component's inputs, asset inputs as azure.ai.ml Inputs (the DeepSpeed
    config written beside the spec when one is needed). The rules refuse every problem first; a problem here
    is an internal fault."""
    from azure.ai.ml import Input

    plan, problems = _map(spec)
    if problems:
        raise BuildError(
            f"the {plan.component} job cannot be built: " + "; ".join(str(issue) for issue in problems),
            path=problems[0].path,
        )
    inputs = {
        key: Input(type=value.type, path=value.path) if isinstance(value, AssetInput) else value
        for key, value in plan.inputs.items()
    }
    if plan.deepspeed_config is not None:
        # Written beside the spec (as for command jobs); azure-ai-ml uploads it at submit.
        path = write_deepspeed_config(spec, generated_dir(spec) / "deepspeed")
        inputs["deepspeed"] = Input(type="uri_file", path=str(path))
    contract_problems = contract(plan.component).problems(inputs)
    if contract_problems:  # a bug in the mapping above, never the user's: fail before anything is sent
        raise BuildError(
            f"the {plan.component} inputs break the component's contract: " + "; ".join(contract_problems)
        )
    plan.inputs = inputs
    return plan


def _job_identity(spec: FineTuneSpec, plan: RegistryPipelinePlan) -> tuple[dict[str, str], dict[str, str]]:
    tags = azfinetune_tags(spec)
    tags[f"{TAG_PREFIX}technique"] = plan.technique
    properties = {
        f"{TAG_PREFIX}component": f"{plan.component}@{plan.version}",
        f"{TAG_PREFIX}component_contract": f"{plan.component}@{contract(plan.component).version}",
        DEFAULTS_PROPERTY: json.dumps(plan.defaults_applied, sort_keys=True, separators=(",", ":")),
    }
    if plan.notes:
        properties[NOTES_PROPERTY] = " | ".join(plan.notes)
    if spec.register is not None:
        properties[f"{TAG_PREFIX}registered_model_name"] = spec.register.model_name
    return tags, properties


def build_registry_pipeline_job(spec: FineTuneSpec) -> Any:
    """The PipelineJob that runs `azureml://registries/azureml/components/<task>_pipeline/...` for the spec.

    Offline: the node is made from the shipped component spec (so azure-ai-ml knows the inputs), then pointed
    at the registry id, which the service resolves; azure-ai-ml uploads only local data files at submit."""
    from azure.ai.ml import Output
    from azure.ai.ml.entities import PipelineJob, PipelineJobSettings

    plan = registry_pipeline_plan(spec)
    node = load_registry_component(plan.component)(**plan.inputs)
    # The node keeps the inputs it was made with; the registry id replaces the local copy of the component.
    node._component = plan.component_id
    node.name = NODE_NAME
    node.display_name = f"{plan.component} ({REGISTRY} registry)"
    if spec.register is not None:
        node.outputs.mlflow_model_folder = Output(type="mlflow_model", name=spec.register.model_name)
    tags, properties = _job_identity(spec, plan)
    return PipelineJob(
        name=job_name(spec),
        display_name=spec.name,
        description=spec.description,
        experiment_name=spec.name,
        jobs={NODE_NAME: node},
        tags=tags,
        properties=properties,
        settings=PipelineJobSettings(force_rerun=False, continue_on_step_failure=False),
    )


class _RegistryPipeline(TargetBase):
    kind = "registry-pipeline"
    fields = RegistryPipelineTarget
    summary = "PipelineJob on the Azure ML registry's <task>_pipeline component (Azure's training code)"
    techniques = frozenset({Technique.LORA, Technique.FULL})

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from registry_pipeline_issues(spec)
        if isinstance(spec.target, RegistryPipelineTarget) and spec.target.apply_ort:
            yield Issue(
                "target.apply_ort",
                "apply_ort is passed, but Azure's fine-tune code has ignored it since October 2023: no effect today",
                severity="warning",
            )

    def build(self, spec: FineTuneSpec) -> Any:
        return build_registry_pipeline_job(spec)


TARGET = _RegistryPipeline()
