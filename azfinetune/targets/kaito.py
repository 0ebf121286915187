"""target.kind kaito: the spec as a Kaito tuning Workspace (kaito.sh/v1beta1) and its ConfigMap, for
`kubectl apply -f -` or `azfinetune submit` (the kubernetes client).

Its fields are `KaitoTarget`; its rules check the spec against what Kaito admits and trains (catalog/kaito.yaml:
the presets, the methods, the ConfigMap sections) and refuse what Kaito would silently get wrong (Phi-3's target
modules). `build` returns a KaitoJob: the two manifests under one name taken from the spec's content hash, so
applying or submitting the same spec twice makes one Workspace. `export` writes them as multi-document YAML."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlsplit

import yaml

from azfinetune.catalog import (
    KaitoPreset,
    find_kaito_preset,
    kaito_catalog,
    kaito_preset_names,
    known_max_seq_length,
)
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, KaitoTarget, Task, Technique
from azfinetune.targets._common import file_sha256
from azfinetune.targets._export import ExportFormat
from azfinetune.targets._kaito_admission import (
    KaitoProblem,
    url_problem,
    validate_config_map,
    validate_manifests,
    validate_workspace,
)
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets._rules import catalog_model, is_user_set

__all__ = [
    "ANNOTATION_RUN",
    "ANNOTATION_SPEC_HASH",
    "LABEL_MANAGED_BY",
    "LABEL_SPEC_NAME",
    "MANAGED_BY",
    "TARGET",
    "KaitoJob",
    "KaitoProblem",
    "build_kaito_job",
    "kaito_preset",
    "kaito_spec_hash",
    "lora_target_modules",
    "resource_name",
    "spec_from_workspace",
    "training_config",
    "url_problem",
    "validate_config_map",
    "validate_manifests",
    "validate_workspace",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "azfinetune"
LABEL_SPEC_NAME = "azfinetune/spec-name"
ANNOTATION_SPEC_HASH = "azfinetune/spec-hash"
ANNOTATION_VERSION = "azfinetune/version"
ANNOTATION_RUN = "azfinetune/run"
_HASH_HEX = 12
_NAME_STEM = 40  # stem + '-' + 12 hex <= 53: the Job's pod names and the container name stay within 63

#: training.* keys Kaito's TrainingArguments (trl's SFTConfig) are given; others are refused.
_TRAINING_KEYS = frozenset(
    {
        "epochs",
        "max_steps",
        "learning_rate",
        "lr_scheduler",
        "warmup_ratio",
        "per_device_batch_size",
        "gradient_accumulation_steps",
        "max_seq_length",
        "precision",
        "gradient_checkpointing",
        "packing",
        "mask_prompt",
        "seed",
        "logging_steps",
    }
)
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


# -- what the spec maps to -------------------------------------------------------------------------------------


def kaito_preset(spec: FineTuneSpec) -> KaitoPreset | None:
    """The Kaito preset the spec tunes: target.preset when set (and known), else the preset of the spec's model."""
    target = spec.target
    assert isinstance(target, KaitoTarget)
    if target.preset is not None:
        return kaito_catalog().preset(target.preset)
    return find_kaito_preset(spec.model)


def lora_target_modules(spec: FineTuneSpec) -> list[str] | None:
    """The explicit LoraConfig.target_modules: the spec's list, or (auto / all-linear) our catalog's modules of the
    model; None when neither says (the rules then refuse the spec)."""
    lora = spec.method.effective_lora
    if isinstance(lora.target_modules, list):
        return list(lora.target_modules)
    info = catalog_model(spec)
    if info is None:
        preset = kaito_preset(spec)
        info = catalog_model_of_preset(preset)
    if info is None:
        return None
    if lora.target_modules == "all-linear":
        return list(info.linear_modules)
    return list(info.lora_target_modules) or None


def catalog_model_of_preset(preset: KaitoPreset | None) -> Any:
    from azfinetune.catalog import find_model

    return find_model(preset.model) if preset is not None and preset.model else None


def kaito_spec_hash(spec: FineTuneSpec) -> str:
    """sha256 of the canonical spec, its description and the content of its local data files: the Workspace's
    identity (the job code is not in it: Kaito runs its own)."""
    extra = [f"description={spec.description or ''}", "kind=kaito"]
    for role, ref in sorted(spec.data.local_files().items()):
        path = spec.resolve_path(ref)
        if path.is_file():
            extra.append(f"{role}={file_sha256(path)}")
    return spec.content_hash(*extra)


def resource_name(spec: FineTuneSpec, spec_hash: str | None = None) -> str:
    """'<spec name as a DNS label, at most 40>-<12 hex of the spec hash>': the Workspace's, the ConfigMap's and
    (Kaito's choice) the tuning Job's name."""
    stem = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-")[:_NAME_STEM].strip("-") or "azft"
    return f"{stem}-{(spec_hash or kaito_spec_hash(spec))[:_HASH_HEX]}"


def _dataset_file(spec: FineTuneSpec) -> str:
    """The training file's name as Kaito sees it in /mnt/data (the downloader keeps the URL's last segment)."""
    ref = spec.data.train
    if ref.startswith(("https://", "http://")):
        return PurePosixPath(urlsplit(ref).path).name
    return Path(ref).name


def _input_urls(spec: FineTuneSpec) -> list[str] | None:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    if target.input is None:
        return [spec.data.train] if spec.data.train.startswith("https://") else None
    return target.input.urls


def training_config(spec: FineTuneSpec) -> dict[str, Any]:
    """The ConfigMap's training_config.yaml as a mapping: the six sections Kaito reads, nothing else."""
    method, training = spec.method, spec.training
    lora = method.effective_lora
    dtype = _TORCH_DTYPES[training.precision.value]
    model_config: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True, "device_map": "auto"}
    quantization: dict[str, Any]
    if method.technique is Technique.QLORA:
        quant = method.effective_quantization
        assert quant is not None
        quantization = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": quant.type,
            "bnb_4bit_compute_dtype": dtype,
            "bnb_4bit_use_double_quant": quant.double_quant,
        }
    else:
        quantization = {"load_in_4bit": False, "load_in_8bit": False}
    modules = lora_target_modules(spec)
    if not modules:
        raise BuildError("no LoRA target modules for the spec (the rules should have refused it)")
    lora_config: dict[str, Any] = {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": modules,
    }
    arguments: dict[str, Any] = {
        "output_dir": kaito_catalog().default_output_dir,
        "num_train_epochs": training.epochs,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.lr_scheduler.value,
        "warmup_steps": training.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the steps
        "per_device_train_batch_size": training.per_device_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
    }
    if training.max_steps != -1:
        arguments["max_steps"] = training.max_steps
    length = known_max_seq_length(training.max_seq_length, spec.model)
    if length is None:
        info = catalog_model_of_preset(kaito_preset(spec))
        length = info.max_seq_length if info is not None and training.max_seq_length == "auto" else None
    if length is not None:
        arguments["max_length"] = length
    arguments["bf16"] = training.precision.value == "bf16"
    arguments["fp16"] = training.precision.value == "fp16"
    arguments["gradient_checkpointing"] = training.gradient_checkpointing
    arguments["packing"] = training.packing
    if spec.task is Task.TEXT_COMPLETION:
        arguments["completion_only_loss"] = training.mask_prompt
    arguments["seed"] = training.seed
    arguments["logging_steps"] = training.logging_steps
    arguments["optim"] = method.optimizer.value
    arguments["save_strategy"] = "no"  # Kaito keeps the final adapter only
    arguments["ddp_find_unused_parameters"] = False
    arguments["report_to"] = "none"
    data_dir = PurePosixPath(kaito_catalog().data_dir).relative_to(kaito_catalog().output_base_dir)
    dataset = {
        "dataset_path": str(data_dir / _dataset_file(spec)),  # Kaito joins it to /mnt
        "shuffle_dataset": True,
        "shuffle_seed": training.seed,
        "train_test_split": 1,
    }
    return {
        "training_config": {
            "ModelConfig": model_config,
            "QuantizationConfig": quantization,
            "LoraConfig": lora_config,
            "TrainingArguments": arguments,
            "DatasetConfig": dataset,
            "DataCollator": {"mlm": False},
        }
    }


def _pvc(claim: str) -> dict[str, Any]:
    return {"volumeSource": {"persistentVolumeClaim": {"claimName": claim}}}


def _workspace_input(spec: FineTuneSpec) -> dict[str, Any]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    given = target.input
    if given is not None and given.pvc:
        return _pvc(given.pvc)
    if given is not None and given.image:
        # Kaito names the pull-secret volume '<name>-tuning-input': an empty name would make an invalid volume.
        data: dict[str, Any] = {"name": "dataset", "image": given.image}
        if given.image_pull_secrets:
            data["imagePullSecrets"] = list(given.image_pull_secrets)
        return data
    urls = _input_urls(spec)
    if not urls:
        raise BuildError("no input for the Workspace (the rules should have refused the spec)")
    return {"urls": list(urls)}


def _workspace_output(spec: FineTuneSpec) -> dict[str, Any]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    out = target.output
    if out.pvc:
        return _pvc(out.pvc)
    return {"image": out.image, "imagePushSecret": out.image_push_secret}


@dataclass
class KaitoJob:
    """A Kaito tuning job before it is applied: its ConfigMap and Workspace manifests, under one name."""

    name: str
    namespace: str
    context: str | None
    spec_name: str
    spec_hash: str
    preset: str
    config_map: dict[str, Any]
    workspace: dict[str, Any]
    kind: ClassVar[str] = "kaito"
    disk: str | None = None
    warnings: list[str] = field(default_factory=list)

    def documents(self) -> list[dict[str, Any]]:
        """The manifests in the order they must be applied (the Workspace's admission reads the ConfigMap)."""
        return [self.config_map, self.workspace]

    def to_yaml(self) -> str:
        return "---\n" + "---\n".join(_dump(document) for document in self.documents())


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings as literal blocks (the ConfigMap's training_config.yaml stays readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def build_kaito_job(spec: FineTuneSpec, *, run_suffix: str | None = None) -> KaitoJob:
    """The KaitoJob of a kaito spec whose rules found no error. Pure: reads the data files' hashes only.
    `run_suffix` (submit --new-run) makes another Workspace from the same spec: its name's hash covers it."""
    from azfinetune._version import __version__

    target = spec.target
    if not isinstance(target, KaitoTarget):
        raise BuildError(f"build_kaito_job builds kaito specs, not {target.kind}")
    preset = kaito_preset(spec)
    if preset is None:
        raise BuildError(f"no Kaito preset for {spec.model} (the rules should have refused it)", path="model")
    spec_hash = kaito_spec_hash(spec)
    run_hash = hashlib.sha256(f"{spec_hash}\0{run_suffix}".encode()).hexdigest() if run_suffix else spec_hash
    name = resource_name(spec, run_hash)
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_SPEC_NAME: spec.name, **dict(spec.tags)}
    annotations = {ANNOTATION_SPEC_HASH: spec_hash, ANNOTATION_VERSION: __version__}
    if run_suffix:
        annotations[ANNOTATION_RUN] = run_suffix
    metadata = {"name": name, "namespace": target.namespace, "labels": labels, "annotations": annotations}
    config_text = yaml.safe_dump(training_config(spec), sort_keys=False, width=110)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": json.loads(json.dumps(metadata)),
        "data": {"training_config.yaml": config_text},
    }
    resource: dict[str, Any] = {}
    if target.instance_type:
        resource["instanceType"] = target.instance_type
    resource["labelSelector"] = {"matchLabels": dict(target.label_selector or {"app": name})}
    workspace = {
        "apiVersion": kaito_catalog().api_version,
        "kind": "Workspace",
        "metadata": json.loads(json.dumps(metadata)),
        "resource": resource,
        "tuning": {
            "preset": {"name": preset.name},
            "method": spec.method.technique.value,
            "config": name,
            "input": _workspace_input(spec),
            "output": _workspace_output(spec),
        },
    }
    return KaitoJob(
        name=name,
        namespace=target.namespace,
        context=target.context,
        spec_name=spec.name,
        spec_hash=spec_hash,
        preset=preset.name,
        config_map=config_map,
        workspace=workspace,
        disk=preset.disk,
    )


# -- a Kaito Workspace as a spec ---------------------------------------------------------------------------------


def _claim(source: Any) -> str | None:
    volume = source.get("volumeSource") if isinstance(source, dict) else None
    claim = (volume or {}).get("persistentVolumeClaim") if isinstance(volume, dict) else None
    name = (claim or {}).get("claimName") if isinstance(claim, dict) else None
    return str(name) if name else None


def spec_from_workspace(
    workspace: dict[str, Any], config_map: dict[str, Any] | None = None, *, data_file: str = "train.jsonl"
) -> dict[str, Any]:
    """A spec document (target.kind kaito) that says what a Kaito tuning Workspace (and its ConfigMap) says, for
    `load_spec`'s checks: what azfinetune cannot express or Kaito would refuse is then refused with the key.
    `data_file`: the local copy of the data for a volume or image input (the spec's data.train)."""
    tuning = workspace.get("tuning") or {}
    resource = workspace.get("resource") or {}
    metadata = workspace.get("metadata") or {}
    preset_name = str((tuning.get("preset") or {}).get("name", ""))
    preset = kaito_catalog().preset(preset_name.lower())
    model = (preset.model or f"hf:{preset.hf_id}") if preset is not None else preset_name
    name = re.sub(r"[^a-z0-9_-]+", "-", str(metadata.get("name") or "kaito-workspace").lower()).strip("-_")
    target: dict[str, Any] = {"kind": "kaito"}
    if metadata.get("namespace"):
        target["namespace"] = metadata["namespace"]
    if resource.get("instanceType"):
        target["instance_type"] = resource["instanceType"]
    labels = (resource.get("labelSelector") or {}).get("matchLabels")
    if labels:
        target["label_selector"] = dict(labels)
    if resource.get("count") not in (None, 1):
        target["nodes"] = resource["count"]  # not a kaito field: refused with the kinds that take it
    source = tuning.get("input") or {}
    urls = list(source.get("urls") or [])
    train = urls[0] if urls else data_file
    if len(urls) > 1:
        target["input"] = {"urls": urls}
    elif _claim(source):
        target["input"] = {"pvc": _claim(source)}
    elif source.get("image"):
        target["input"] = {"image": source["image"]}
        if source.get("imagePullSecrets"):
            target["input"]["image_pull_secrets"] = list(source["imagePullSecrets"])
    output = tuning.get("output") or {}
    if _claim(output):
        target["output"] = {"pvc": _claim(output)}
    else:
        target["output"] = {"image": output.get("image"), "image_push_secret": output.get("imagePushSecret")}
        target["output"] = {k: v for k, v in target["output"].items() if v}
    if preset is None and preset_name:
        target["preset"] = preset_name
    document: dict[str, Any] = {
        "name": name[:64] or "kaito-workspace",
        "task": "chat-completion",
        "model": model,
        "data": {"train": train},
        "method": {"technique": str(tuning.get("method") or "")},
        "training": {"mask_prompt": False},  # Kaito trains on the whole conversation
        "target": target,
    }
    if config_map is not None:
        _from_config_map(document, config_map)
    return document


def _from_config_map(document: dict[str, Any], config_map: dict[str, Any]) -> None:
    text = (config_map.get("data") or {}).get("training_config.yaml") or ""
    config = (yaml.safe_load(text) or {}).get("training_config") or {}
    lora = config.get("LoraConfig") or {}
    mapped = {"r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "target_modules"}
    if lora:
        document["method"]["lora"] = {ours: lora[theirs] for theirs, ours in mapped.items() if theirs in lora}
    quant = config.get("QuantizationConfig") or {}
    if quant.get("load_in_4bit") or quant.get("load_in_8bit"):
        document["method"]["quantization"] = {
            "bits": 8 if quant.get("load_in_8bit") else 4,
            **({"type": quant["bnb_4bit_quant_type"]} if "bnb_4bit_quant_type" in quant else {}),
            **(
                {"double_quant": quant["bnb_4bit_use_double_quant"]}
                if "bnb_4bit_use_double_quant" in quant
                else {}
            ),
        }
    arguments = config.get("TrainingArguments") or {}
    for theirs, ours in (
        ("num_train_epochs", "epochs"),
        ("per_device_train_batch_size", "per_device_batch_size"),
        ("gradient_accumulation_steps", "gradient_accumulation_steps"),
        ("learning_rate", "learning_rate"),
        ("max_steps", "max_steps"),
        ("seed", "seed"),
    ):
        if theirs in arguments:
            document["training"][ours] = arguments[theirs]
    dtype = (config.get("ModelConfig") or {}).get("torch_dtype")
    precision = {v: k for k, v in _TORCH_DTYPES.items()}.get(str(dtype))
    if precision:
        document["training"]["precision"] = precision
    dataset = config.get("DatasetConfig") or {}
    if dataset.get("train_test_split") not in (None, 1):
        # Kaito would hold part of the data out; azfinetune says so with data.validation, which kaito refuses.
        document["data"]["validation"] = document["data"]["train"]


# -- the rules ---------------------------------------------------------------------------------------------------


def _preset_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    catalog = kaito_catalog()
    names = ", ".join(kaito_preset_names())
    by_model = find_kaito_preset(spec.model)
    if target.preset is not None:
        chosen = catalog.preset(target.preset)
        if chosen is None:
            yield Issue(
                "target.preset",
                f"{target.preset!r} is not a tuning preset of Kaito {catalog.release}",
                hint=f"use one of {names}, or remove target.preset to take the model's",
            )
        elif by_model is not None and by_model.name != chosen.name:
            yield Issue(
                "target.preset",
                f"preset {chosen.name} loads {chosen.hf_id}, but model is {spec.model} (Kaito's preset "
                f"{by_model.name})",
                hint=f"remove target.preset, or set model to {chosen.model or 'hf:' + chosen.hf_id}",
            )
        return
    if by_model is None:
        models = ", ".join(p.model or f"hf:{p.hf_id}" for p in catalog.presets)
        yield Issue(
            "model",
            f"Kaito {catalog.release} has no tuning preset for {spec.model}",
            hint=f"Kaito tunes {models}; or name a preset with target.preset ({names})",
        )


def _module_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    if kaito_preset(spec) is None:
        return
    modules = lora_target_modules(spec)
    if not modules:
        yield Issue(
            "method.lora.target_modules",
            f"azfinetune's catalog does not know the modules of {spec.model}, and Kaito's own default is wrong "
            "for some models (Phi-3: q_proj, k_proj, v_proj ... where the model has fused qkv_proj)",
            hint="list them: method.lora.target_modules: [q_proj, k_proj, v_proj, o_proj] (the model's linear "
            "layers)",
        )
        return
    if catalog_model(spec) is not None:
        return  # the shared catalog rules checked the list against the model
    info = catalog_model_of_preset(kaito_preset(spec))
    for index, name in enumerate(modules):
        if info is not None and name not in info.linear_modules:
            yield Issue(
                f"method.lora.target_modules[{index}]",
                f"{info.display_name} (Kaito's preset) has no linear module {name!r}",
                hint=f"use {', '.join(info.lora_target_modules)}, or target_modules: auto",
            )


def _io_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    given = target.input
    if given is not None:
        chosen = [key for key in ("urls", "pvc", "image") if getattr(given, key)]
        if len(chosen) != 1:
            yield Issue(
                "target.input",
                "Kaito takes exactly one input: urls, pvc or image"
                + (f" (got {', '.join(chosen)})" if chosen else " (got none)"),
                hint="keep one of target.input.urls, target.input.pvc, target.input.image",
            )
        if given.image_pull_secrets and not given.image:
            yield Issue(
                "target.input.image_pull_secrets",
                "pull secrets are for an input image",
                hint="remove them, or set target.input.image",
            )
        if given.urls is not None and not given.urls:
            yield Issue("target.input.urls", "must list at least one URL")
        for index, url in enumerate(given.urls or []):
            problem = url_problem(url)
            if problem:
                yield Issue(f"target.input.urls[{index}]", f"the data URL {problem}", hint=_URL_HINT)
    out = target.output
    chosen_out = [key for key in ("image", "pvc") if getattr(out, key)]
    if len(chosen_out) != 1:
        yield Issue(
            "target.output",
            "Kaito takes exactly one output: image (with image_push_secret) or pvc"
            + (f" (got {', '.join(chosen_out)})" if chosen_out else " (got none)"),
            hint="keep one of target.output.image, target.output.pvc",
        )
    if out.image and not out.image_push_secret:
        yield Issue(
            "target.output.image_push_secret",
            "Kaito pushes the adapter image with a push secret, and refuses an output image without one",
            hint="create one (kubectl create secret docker-registry ...) and name it in target.output.image_push_secret",
        )
    if out.image_push_secret and not out.image:
        yield Issue(
            "target.output.image_push_secret",
            "a push secret is for an output image",
            hint="set target.output.image",
        )


_URL_HINT = (
    "Kaito's data downloader fetches public https files: publish the file, or use target.input.pvc or "
    "target.input.image for private data"
)


def _data_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    data = spec.data
    for role in ("validation", "test"):
        if getattr(data, role) is not None:
            yield Issue(
                f"data.{role}",
                "Kaito trains on one dataset (its DatasetConfig.train_test_split would hold part of it out)",
                hint=f"remove data.{role}",
            )
    if data.columns is not None:
        yield Issue(
            "data.columns",
            "Kaito passes the data to trl's SFTTrainer as it is: messages (chat) or prompt/completion columns",
            hint="rename the columns in the file and remove data.columns",
        )
    ref = data.train
    given = target.input
    if ref.startswith("azureml:"):
        yield Issue(
            "data.train",
            "Kaito cannot read an Azure ML data asset",
            hint="publish the file at a public https URL, or put it in a PersistentVolumeClaim (target.input.pvc)",
        )
        return
    if ref.startswith(("https://", "http://")):
        problem = url_problem(ref)
        if problem and given is None:
            yield Issue("data.train", f"the data URL {problem}", hint=_URL_HINT)
        if given is not None and (given.pvc or given.image):
            yield Issue(
                "data.train",
                "data.train is a URL, but target.input reads a volume or an image",
                hint="remove target.input (the URL is downloaded), or set data.train to the local copy of the file",
            )
        elif given is not None and given.urls and ref not in given.urls:
            yield Issue(
                "data.train",
                "data.train must be one of target.input.urls (the file Kaito trains on)",
                hint="list it in target.input.urls, or remove target.input",
            )
        if not PurePosixPath(urlsplit(ref).path).name:
            yield Issue("data.train", "the URL names no file", hint="use the URL of the data file itself")
        return
    # A local file: the copy of what the input delivers, checked here; Kaito cannot upload it.
    if given is None:
        yield Issue(
            "target.input",
            f"Kaito cannot upload the local file {ref}: the cluster reads the data from URLs, a volume or an image",
            hint="set target.input.urls (public https), target.input.pvc or target.input.image, or set data.train "
            "to the file's https URL",
        )
        return
    name = Path(ref).name
    if given.urls:
        names = [PurePosixPath(urlsplit(url).path).name for url in given.urls]
        if name not in names:
            yield Issue(
                "data.train",
                f"none of target.input.urls downloads a file named {name} (Kaito trains on /mnt/data/{name})",
                hint="name the local copy as the URL's file, or list its URL in target.input.urls",
            )


def _method_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    if method.deepspeed is not None:
        yield Issue(
            "method.deepspeed",
            "Kaito runs its own accelerate launch on one node; DeepSpeed cannot be configured",
            hint="remove method.deepspeed",
        )
    quant = method.quantization
    if quant is not None and quant.storage_dtype is not None:
        yield Issue(
            "method.quantization.storage_dtype",
            "Kaito's QuantizationConfig has no storage dtype (bnb_4bit_quant_storage)",
            hint="remove method.quantization.storage_dtype",
        )


def _training_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    training = spec.training
    for key in sorted(training.model_fields_set - _TRAINING_KEYS):
        yield Issue(
            f"training.{key}",
            "Kaito's tuning does not take this setting (it saves the final adapter only, without evaluation)",
            hint=f"remove training.{key}",
        )
    if spec.task is Task.CHAT_COMPLETION and training.mask_prompt:
        text = (
            "Kaito's trainer computes the loss on the whole conversation: trl's assistant_only_loss needs a chat "
            "template with generation markers, which the Phi templates lack"
        )
        if is_user_set(spec, "training.mask_prompt"):
            yield Issue("training.mask_prompt", text, hint="set training.mask_prompt: false")
        else:
            yield Issue("training.mask_prompt", text, severity="warning")
    if known_max_seq_length(training.max_seq_length, spec.model) is None:
        info = catalog_model_of_preset(kaito_preset(spec))
        if info is None:
            yield Issue(
                "training.max_seq_length",
                "azfinetune does not know the model's context length, so trl's default max_length (1024) applies",
                hint="set training.max_seq_length",
                severity="warning",
            )


def _spec_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    target = spec.target
    assert isinstance(target, KaitoTarget)
    if spec.register is not None:
        yield Issue(
            "register",
            "Kaito saves the adapter to target.output; it does not register models",
            hint="remove register",
        )
    if spec.secrets:
        yield Issue(
            "secrets",
            "Kaito runs its own training image; secrets cannot be passed to it",
            hint="remove secrets",
        )
    if "environment" in spec.model_fields_set:
        yield Issue("environment", "Kaito runs its own training image", hint="remove environment")
    if spec.workspace is not None:
        yield Issue(
            "workspace",
            "a kaito job goes to a Kubernetes cluster, not an Azure ML workspace",
            hint="remove workspace; target.context names the kubeconfig context",
        )
    for key, value in spec.tags.items():
        if not _is_label(key, value):
            yield Issue(
                f"tags.{key}",
                "tags become labels of the Workspace: a key of letters, digits, '-', '_', '.' (and one '/' prefix), "
                "a value of at most 63 of them",
            )
    if not target.instance_type:
        yield Issue(
            "target.instance_type",
            "Kaito provisions the GPU node (node auto-provisioning, its default) and refuses a Workspace without "
            "the node's VM size",
            hint="set target.instance_type, e.g. Standard_NC24ads_A100_v4 (azfinetune plan sizes the job for it)",
        )


_LABEL = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def _is_label(key: str, value: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", prefix):
        return False
    return (
        bool(name)
        and len(name) <= 63
        and bool(_LABEL.fullmatch(name))
        and len(value) <= 63
        and bool(_LABEL.fullmatch(value))
    )


class _Kaito(TargetBase):
    kind = "kaito"
    fields = KaitoTarget
    summary = "Kaito tuning Workspace on your Kubernetes (AKS) GPU nodes: Kaito's presets and training code"
    tasks = frozenset({Task.CHAT_COMPLETION, Task.TEXT_COMPLETION})
    techniques = frozenset({Technique.LORA, Technique.QLORA})
    service = "kaito"

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from _preset_rules(spec)
        yield from _module_rules(spec)
        yield from _io_rules(spec)
        yield from _data_rules(spec)
        yield from _method_rules(spec)
        yield from _training_rules(spec)
        yield from _spec_rules(spec)

    def build(self, spec: FineTuneSpec) -> KaitoJob:
        return build_kaito_job(spec)

    def export(self, job: Any, *, base_dir: Path, format: ExportFormat = "yaml") -> str:
        if not isinstance(job, KaitoJob):
            raise BuildError(f"the kaito target exports KaitoJob, not {type(job).__name__}")
        if format == "json":
            document = {"apiVersion": "v1", "kind": "List", "items": job.documents()}
            return json.dumps(document, indent=2) + "\n"
        if format != "yaml":
            raise BuildError(f"unknown export format {format!r}", hint="use yaml or json")
        header = (
            f"# Kaito tuning Workspace {job.name} (preset {job.preset}) and its ConfigMap, written by azfinetune "
            "build.\n"
            f"# Apply with: kubectl apply -n {job.namespace} -f -   (the same spec always gives the same name)\n"
        )
        return header + job.to_yaml()


TARGET = _Kaito()
