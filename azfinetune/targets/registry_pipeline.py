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
from azfinetune.targets._asset_rules import asset_compute_rules, asset_retirement_rules, asset_task_rules
from azfinetune.targets._common import TAG_PREFIX, azfinetune_tags, job_name
from azfinetune.targets._deepspeed import deepspeed_config, write_deepspeed_config
from azfinetune.targets._paths import generated_dir
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets._provenance import COMPONENT_DEFAULT, DERIVED, MODEL_ASSET, SPEC, ValueSource
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
    from collections.abc import Callable, Iterator

__all__ = [
    "DEFAULTS_PROPERTY",
    "NODE_NAME",
    "REGISTRY_COLUMNS",
    "SOURCES_PROPERTY",
    "TARGET",
    "TRAINED_MODEL_OUTPUT",
    "AssetInput",
    "RegistryPipelinePlan",
    "asset_defaults",
    "build_registry_pipeline_job",
    "input_sources",
    "registry_pipeline_issues",
    "registry_pipeline_plan",
]

NODE_NAME = "finetune"
#: Job property listing the catalog defaults the build applied (JSON object: input name -> value).
DEFAULTS_PROPERTY = f"{TAG_PREFIX}defaults_applied"
#: Job property: where each input the spec decides comes from (JSON object: input name -> source).
SOURCES_PROPERTY = f"{TAG_PREFIX}value_sources"
#: The pipeline-level output the registry's samples bind the fine-tuned MLflow model to, and register from.
TRAINED_MODEL_OUTPUT = "trained_model"
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
    #: The model asset's defaults the job sends (input name -> the asset's value).
    defaults_applied: dict[str, str] = field(default_factory=dict)
    #: Every input the spec decides, sent or left to the component, with its effective value and source.
    sources: dict[str, ValueSource] = field(default_factory=dict)
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
    # A custom (PyTorch) registry asset is the component's pytorch_model_path, an MLflow one its mlflow_model_path.
    custom = info is not None and info.asset.model_format == "custom_model"
    name, kind = ("pytorch_model_path", "custom_model") if custom else ("mlflow_model_path", "mlflow_model")
    if ref.startswith("azureml://registries/"):
        return {name: AssetInput(kind, ref)}
    if info is not None:
        return {name: AssetInput(kind, info.registry_uri)}
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


class _Choices:
    """The registry inputs a spec decides, each from the spec when the user set it, else from the model asset's
    defaults (those the component declares), else left to the component's own default (not sent)."""

    def __init__(
        self,
        spec: FineTuneSpec,
        component: str,
        asset_defaults: dict[str, str],
        plan: RegistryPipelinePlan,
        problems: _Problems,
    ) -> None:
        self.spec = spec
        self.component = component
        self.declared = contract(component).inputs
        self.asset = dict(asset_defaults)
        self.plan = plan
        self.problems = problems
        self.inputs: dict[str, Any] = {}

    # -- recording ------------------------------------------------------------------------------------

    def send(
        self, name: str, value: Any, source: str, spec_key: str | None = None, note: str | None = None
    ) -> None:
        self.inputs[name] = value
        self.plan.sources[name] = ValueSource(name, value, source, True, spec_key, note)
        if source == MODEL_ASSET:
            self.plan.defaults_applied[name] = str(self.asset[name])

    def leave(self, name: str, spec_key: str | None = None, note: str | None = None) -> None:
        """Not sent: the component's declared default applies."""
        if name in self.declared:
            default = self.declared[name].default
            self.plan.sources[name] = ValueSource(name, default, COMPONENT_DEFAULT, False, spec_key, note)

    def effective(self, name: str) -> Any:
        """The value the job will use for `name`: what is sent, else the component's default."""
        if name in self.inputs:
            return self.inputs[name]
        declared = self.declared.get(name)
        return declared.default if declared is not None else None

    # -- the three-way choice ------------------------------------------------------------------------

    def asset_value(self, name: str) -> Any:
        """The asset's default for `name` in the component's declared type, or None when it has none usable."""
        raw = self.asset.get(name)
        declared = self.declared.get(name)
        if raw is None or declared is None:
            return None
        value: Any = raw
        try:
            if declared.type == "integer":
                value = int(raw)
            elif declared.type == "number":
                value = float(raw)
        except ValueError:
            value = None
        problem = (
            declared.problem(value) if value is not None else f"{name}: {raw!r} is not a {declared.type}"
        )
        if problem is not None:
            self.plan.notes.append(
                f"the model asset's {name} {raw!r} breaks {self.component}'s contract ({problem}): not sent, "
                "the component's default applies"
            )
            self.asset.pop(name)
            return None
        return value

    def choose(self, name: str, spec_key: str, spec_value: Callable[[], Any] | None) -> None:
        """`spec_value` (called only when the user set `spec_key`; None: the spec cannot express a value here)."""
        if spec_value is not None and is_user_set(self.spec, spec_key):
            value = spec_value()
            if value is not None:
                self.send(name, value, SPEC, spec_key)
            return
        asset = self.asset_value(name)
        if asset is not None:
            self.send(name, asset, MODEL_ASSET, spec_key)
        else:
            self.leave(name, spec_key)


def _whole_epochs(spec: FineTuneSpec, problems: _Problems) -> int | None:
    training = spec.training
    if training.epochs == int(training.epochs):
        return int(training.epochs)
    if training.max_steps > 0:
        return math.ceil(training.epochs)  # max_steps decides; epochs only bounds it
    problems.add(
        "training.epochs",
        f"the registry pipeline trains whole epochs, got {training.epochs:g}",
        "use a whole number of epochs, or set training.max_steps",
    )
    return None


def _enum_value(choices: _Choices, name: str, key: str, value: str, what: str, fix: str) -> str | None:
    """`value` when the component's enum for `name` has it; else a problem at `key` ("the registry pipeline has
    no <what>") naming the values it has."""
    allowed = choices.declared[name].enum or ()
    if value in allowed:
        return value
    choices.problems.add(
        key, f"the registry pipeline has no {what}", f"use one of {', '.join(allowed)}, {fix}"
    )
    return None


def _warmup_steps(spec: FineTuneSpec, choices: _Choices, gpus: int) -> int | None:
    """training.warmup_ratio as the registry's warmup_steps (it takes no ratio), over the job's effective epochs,
    batch size and accumulation (the asset's or the component's where the spec sets none)."""
    ratio = spec.training.warmup_ratio
    if ratio == 0:
        return 0
    max_steps = int(choices.effective("max_steps") or -1)
    if max_steps > 0:
        return math.ceil(ratio * max_steps)
    path = _local_file(spec, "train")
    examples = _count_examples(path) if path is not None else None
    if examples is None:
        choices.problems.add(
            "training.warmup_ratio",
            "the registry pipeline takes warmup steps, not a ratio, and the number of training steps is unknown "
            "for a data file that is not local",
            "set training.max_steps, use a local training file, or remove training.warmup_ratio",
        )
        return None
    if not (spec.data.validation or spec.data.test):
        # The registry splits train 80/10/10 when no validation or test file is given.
        examples = math.ceil(examples * 0.8)
    batch = int(choices.effective("per_device_train_batch_size") or 1)
    accumulation = int(choices.effective("gradient_accumulation_steps") or 1)
    epochs = int(choices.effective("num_train_epochs") or 1)
    world = max(gpus, 1) * spec.target.resources().nodes
    micro_batches = math.ceil(examples / (batch * world))
    per_epoch = max(1, math.ceil(micro_batches / accumulation))
    return math.ceil(ratio * per_epoch * epochs)


def _seq_length_input(value: int | str) -> int:
    """training.max_seq_length as the component takes it: auto is -1, "the model's max length"."""
    return -1 if value == "auto" else int(value)


def _training_inputs(spec: FineTuneSpec, choices: _Choices, gpus: int) -> None:
    training = spec.training
    choices.choose("num_train_epochs", "training.epochs", lambda: _whole_epochs(spec, choices.problems))
    choices.choose("max_steps", "training.max_steps", lambda: training.max_steps)
    choices.choose(
        "per_device_train_batch_size",
        "training.per_device_batch_size",
        lambda: training.per_device_batch_size,
    )
    choices.choose(
        "per_device_eval_batch_size", "training.per_device_batch_size", lambda: training.per_device_batch_size
    )
    choices.choose(
        "gradient_accumulation_steps",
        "training.gradient_accumulation_steps",
        lambda: training.gradient_accumulation_steps,
    )
    choices.choose("learning_rate", "training.learning_rate", lambda: training.learning_rate)
    choices.choose(
        "lr_scheduler_type",
        "training.lr_scheduler",
        lambda: _enum_value(
            choices,
            "lr_scheduler_type",
            "training.lr_scheduler",
            training.lr_scheduler.value,
            f"{training.lr_scheduler.value} schedule",
            "or target.kind: command",
        ),
    )
    choices.choose(
        "max_seq_length", "training.max_seq_length", lambda: _seq_length_input(training.max_seq_length)
    )
    choices.choose("seed", "training.seed", lambda: training.seed)
    choices.choose("logging_steps", "training.logging_steps", lambda: training.logging_steps)
    choices.choose(
        "metric_for_best_model",
        "training.metric_for_best_model",
        lambda: _enum_value(
            choices,
            "metric_for_best_model",
            "training.metric_for_best_model",
            str(training.metric_for_best_model),
            f"metric {training.metric_for_best_model} for {spec.task.value}",
            "or remove it (loss)",
        ),
    )
    choices.choose("save_total_limit", "training.save_total_limit", lambda: training.save_total_limit)
    choices.choose(
        "optim",
        "method.optimizer",
        lambda: _enum_value(
            choices,
            "optim",
            "method.optimizer",
            spec.method.optimizer.value,
            f"{spec.method.optimizer.value} optimizer: it cannot use paged or 8-bit ones",
            "or target.kind: command",
        ),
    )
    # Every step count the ratio needs is known now; warmup is derived from them.
    if is_user_set(spec, "training.warmup_ratio"):
        warmup = _warmup_steps(spec, choices, gpus)
        if warmup is not None:
            choices.send("warmup_steps", warmup, DERIVED, "training.warmup_ratio")
    else:
        choices.choose("warmup_steps", "training.warmup_ratio", None)
    if training.packing:
        choices.problems.add(
            "training.packing",
            "the registry pipeline does not pack examples",
            "set packing: false, or use target.kind: command",
        )
    if training.save_steps is not None or training.resume_from is not None:
        key = "training.save_steps" if training.save_steps is not None else "training.resume_from"
        choices.problems.add(
            key,
            "the registry pipeline checkpoints at each evaluation on its own outputs and cannot resume "
            "another job's checkpoints",
            "remove it, or use target.kind: command or pipeline (azfinetune's trainer) for step checkpoints "
            "and resume",
        )
    for key in ("gradient_checkpointing", "mask_prompt"):
        if is_user_set(spec, f"training.{key}"):
            choices.plan.notes.append(
                f"training.{key} is not an input of the registry pipeline; the component decides"
            )


def _method_inputs(spec: FineTuneSpec, choices: _Choices) -> None:
    method, plan = spec.method, choices.plan
    technique_set = is_user_set(spec, "method.technique") or is_user_set(spec, "method.lora")
    # method.technique is lora or full here (the target's techniques); LoRA settings alone mean LoRA.
    if technique_set:
        key = "method.technique" if is_user_set(spec, "method.technique") else "method.lora"
        choices.send("apply_lora", "true" if method.technique.value == "lora" else "false", SPEC, key)
    else:
        choices.choose("apply_lora", "method.technique", None)
    apply_lora = choices.effective("apply_lora") == "true"
    plan.technique = "lora" if apply_lora else "full"
    if apply_lora:
        lora = method.lora
        if lora is not None and lora.target_modules != "auto":
            choices.problems.add(
                "method.lora.target_modules",
                "the registry pipeline chooses the LoRA target modules itself",
                "remove target_modules (auto), or use target.kind: command",
            )
        choices.choose("lora_r", "method.lora.r", lambda: method.effective_lora.r)
        choices.choose("lora_alpha", "method.lora.alpha", lambda: method.effective_lora.alpha)
        choices.choose("lora_dropout", "method.lora.dropout", lambda: method.effective_lora.dropout)
        choices.choose("merge_lora_weights", "method.lora", None)
    choices.choose("precision", "training.precision", lambda: _PRECISION[spec.training.precision.value])

    ds = method.deepspeed
    if is_user_set(spec, "method.deepspeed") and ds is not None:
        if ds.stage == 0:
            choices.send("apply_deepspeed", "false", SPEC, "method.deepspeed.stage")
        elif ds.stage in (2, 3) and not (ds.offload_optimizer or ds.offload_params):
            choices.send("apply_deepspeed", "true", SPEC, "method.deepspeed")
            choices.send("deepspeed_stage", str(ds.stage), SPEC, "method.deepspeed.stage")
        else:
            # The component's deepspeed_stage offers 2 or 3 without offload; anything else travels as a config file.
            choices.send("apply_deepspeed", "true", SPEC, "method.deepspeed")
            choices.plan.sources["deepspeed"] = ValueSource(
                "deepspeed", "<the ZeRO config azfinetune writes>", DERIVED, True, "method.deepspeed"
            )
            plan.deepspeed_config = deepspeed_config(spec)
    else:
        choices.choose("apply_deepspeed", "method.deepspeed", None)
        if choices.effective("apply_deepspeed") == "true":
            choices.choose("deepspeed_stage", "method.deepspeed.stage", None)
    target = spec.target
    apply_ort = target.apply_ort if isinstance(target, RegistryPipelineTarget) else False
    choices.choose("apply_ort", "target.apply_ort", lambda: "true" if apply_ort else "false")
    if choices.effective("apply_ort") == "true":
        where = "asked for" if apply_ort else "the model asset's default"
        plan.notes.append(
            f"apply_ort ({where}) has no effect today: Azure's fine-tune code ignores it since October 2023"
        )


def _chat_082_inputs(spec: FineTuneSpec, choices: _Choices) -> None:
    """finetune_config_path and trust_remote_code: chat_completion_pipeline 0.0.82 only."""
    target = spec.target
    if not isinstance(target, RegistryPipelineTarget):
        return
    for key in ("finetune_config_path", "trust_remote_code"):
        value = getattr(target, key)
        if value is None:
            continue
        if key not in choices.declared:
            choices.problems.add(
                f"target.{key}",
                f"{choices.component} {contract(choices.component).version} has no {key} input "
                "(chat_completion_pipeline 0.0.82 added it)",
                f"remove target.{key}, or use task: chat-completion",
            )
            continue
        if key == "trust_remote_code":
            choices.send(key, "true" if value else "false", SPEC, f"target.{key}")
        else:
            choices.send(
                key, _file_input(spec, str(value), f"target.{key}", choices.problems), SPEC, f"target.{key}"
            )
    if (
        "finetune_config_path" in choices.declared
        and target.finetune_config_path is None
        and spec.model.startswith("hf:")
    ):
        choices.plan.notes.append(
            "a Hugging Face model without a bundled finetune config needs target.finetune_config_path "
            f"({choices.component} reads chat_special_tokens from it)"
        )


def _file_input(spec: FineTuneSpec, reference: str, key: str, problems: _Problems) -> AssetInput:
    if spec.data.is_remote(reference):
        return AssetInput("uri_file", normalize_data_reference(reference))
    path = spec.resolve_path(reference)
    if not path.is_file():
        problems.add(key, f"{reference}: no such file", "give the path relative to the spec file")
    return AssetInput("uri_file", str(path.resolve()))


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
    choices = _Choices(spec, name, asset_defaults(spec, info), plan, problems)

    # task_name is required and has one allowed value per component.
    choices.send("task_name", (contract(name).inputs["task_name"].enum or ("",))[0], DERIVED, "task")
    for key, value in _model_inputs(spec, info, problems).items():
        choices.send(key, value, SPEC, "model")
    for role, reference in spec.data.files().items():
        choices.send(f"{role}_file_path", _data_asset(spec, reference), SPEC, f"data.{role}")
    train = _local_file(spec, "train")
    columns = _column_inputs(spec, _first_record(train) if train is not None else None, problems)
    _check_columns_in_files(spec, columns, problems)
    named = spec.data.columns.as_dict() if spec.data.columns else {}
    for key, value in columns.items():
        spec_keys = [k for reg, keys, _ in REGISTRY_COLUMNS[task] if reg == key for k in keys if k in named]
        if spec_keys:
            choices.send(key, value, SPEC, f"data.columns.{spec_keys[0]}")
        else:
            choices.send(
                key, value, DERIVED, "data.train", "the column found in (or assumed for) the data file"
            )
    _method_inputs(spec, choices)
    compute = _compute_inputs(spec, problems)
    for key, value in compute.items():
        if key == "num_nodes_finetune" and not is_user_set(spec, "target.nodes"):
            choices.leave(key, "target.nodes")
            continue
        source = (
            DERIVED
            if key == "number_of_gpu_to_use_finetuning" and not is_user_set(spec, "target.gpus_per_node")
            else SPEC
        )
        choices.send(key, value, source, "target")
    gpus = int(compute.get("number_of_gpu_to_use_finetuning", 1))
    _training_inputs(spec, choices, gpus)
    _chat_082_inputs(spec, choices)
    if isinstance(target, RegistryPipelineTarget) and target.evaluation_config is not None:
        evaluation = _file_input(spec, target.evaluation_config, "target.evaluation_config", problems)
        choices.send("evaluation_config", evaluation, SPEC, "target.evaluation_config")
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
    # The asset's other defaults (no spec field decides them) still apply where the component declares them.
    for key in sorted(choices.asset):
        if key in choices.inputs or key in plan.sources:
            continue
        if key not in choices.declared:
            plan.notes.append(f"the model asset's {key} is not an input of {name}: not sent")
            continue
        if key == "deepspeed_stage":
            continue  # only with apply_deepspeed, decided above
        value = choices.asset_value(key)
        if value is not None:
            choices.send(key, value, MODEL_ASSET)
    plan.inputs = choices.inputs
    return plan, problems.items


def asset_defaults(spec: FineTuneSpec, info: ModelInfo | None) -> dict[str, str]:
    """The model asset's model_specific_defaults that apply to this job: the catalog's, when the job fine-tunes
    the registry asset itself (not a Hugging Face id, whose import has no asset)."""
    if info is None or spec.model.startswith("hf:"):
        return {}
    return dict(info.asset.model_specific_defaults)


def input_sources(spec: FineTuneSpec) -> list[ValueSource]:
    """Every input of the registry job the spec decides, with its effective value and where it comes from
    (spec, model asset, component default, derived), in the component's declaration order. Offline."""
    plan, _ = _map(spec)
    order = list(contract(plan.component).inputs)
    return sorted(
        plan.sources.values(), key=lambda item: order.index(item.name) if item.name in order else len(order)
    )


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
        SOURCES_PROPERTY: json.dumps(
            {name: item.source for name, item in sorted(plan.sources.items())}, separators=(",", ":")
        ),
    }
    if plan.notes:
        properties[NOTES_PROPERTY] = " | ".join(plan.notes)
    if spec.register is not None:
        properties[f"{TAG_PREFIX}registered_model_name"] = spec.register.model_name
    return tags, properties


def build_registry_pipeline_job(spec: FineTuneSpec) -> Any:
    """The PipelineJob that runs `azureml://registries/azureml/components/<task>_pipeline/...` for the spec.

    Offline: the node is made from the shipped component spec (so azure-ai-ml knows the inputs), then pointed
    at the registry id, which the service resolves; azure-ai-ml uploads only local data files at submit.

    As the registry's samples do, the node's MLflow model is bound to the pipeline-level output `trained_model`
    (`azureml://jobs/<job>/outputs/trained_model`); with `register:` that output carries the model name, so the
    service registers it when the job completes (the samples register it with a second call afterwards)."""
    from azure.ai.ml import Output
    from azure.ai.ml.entities import PipelineJob, PipelineJobSettings

    plan = registry_pipeline_plan(spec)
    node = load_registry_component(plan.component)(**plan.inputs)
    # The node keeps the inputs it was made with; the registry id replaces the local copy of the component.
    node._component = plan.component_id
    node.name = NODE_NAME
    node.display_name = f"{plan.component} ({REGISTRY} registry)"
    declared = contract(plan.component).output_details.get("mlflow_model_folder", {})
    node.outputs.mlflow_model_folder = f"${{{{parent.outputs.{TRAINED_MODEL_OUTPUT}}}}}"
    # The component's mode, as the samples' pipeline-level output has it (its description does not survive the
    # az ml YAML, so it is not copied).
    trained = Output(
        type="mlflow_model",
        mode=declared.get("mode", "rw_mount"),
        name=spec.register.model_name if spec.register is not None else None,
    )
    tags, properties = _job_identity(spec, plan)
    target = spec.target
    force_rerun = isinstance(target, RegistryPipelineTarget) and target.force_rerun
    return PipelineJob(
        name=job_name(spec),
        display_name=spec.name,
        description=spec.description,
        experiment_name=spec.name,
        jobs={NODE_NAME: node},
        outputs={TRAINED_MODEL_OUTPUT: trained},
        tags=tags,
        properties=properties,
        settings=PipelineJobSettings(force_rerun=force_rerun, continue_on_step_failure=False),
    )


class _RegistryPipeline(TargetBase):
    kind = "registry-pipeline"
    fields = RegistryPipelineTarget
    summary = "PipelineJob on the Azure ML registry's <task>_pipeline component (Azure's training code)"
    techniques = frozenset({Technique.LORA, Technique.FULL})

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from registry_pipeline_issues(spec)
        target = spec.target
        if isinstance(target, RegistryPipelineTarget) and target.apply_ort:
            yield Issue(
                "target.apply_ort",
                "apply_ort is passed, but Azure's fine-tune code has ignored it since October 2023: no effect today",
                severity="warning",
            )
        # The asset's rules bind the job only when it fine-tunes the asset (an hf: model is imported instead).
        info = find_model(spec.model) if not spec.model.startswith("hf:") else None
        yield from asset_task_rules(spec, info, what="the registry's pipeline", hf_way_out=True)
        if isinstance(target, RegistryPipelineTarget) and target.instance_type:
            yield from asset_compute_rules(info, [("target.instance_type", target.instance_type)])
        yield from asset_retirement_rules(info, self.today())
        if info is not None and not info.asset.model_specific_defaults:
            yield Issue(
                "model",
                f"the catalog has no model_specific_defaults for {info.display_name} (its registry asset is not on "
                "record): what the spec leaves unset takes the component's defaults (LoRA off, fp32, no DeepSpeed)",
                hint="set method.technique, training.precision and method.deepspeed; `azfinetune plan` shows every "
                "value and where it comes from",
                severity="warning",
            )

    def build(self, spec: FineTuneSpec) -> Any:
        return build_registry_pipeline_job(spec)

    def value_sources(self, spec: FineTuneSpec) -> list[ValueSource]:
        return input_sources(spec)


TARGET = _RegistryPipeline()
