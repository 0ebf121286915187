"""A spec as an Olive workflow and an Olive workflow as a spec: the AI Toolkit (Foundry Toolkit) for VS Code
fine-tunes from an Olive workflow (`finetuning/olive-config.json`, run by `olive run --config`).

Pure functions over plain dicts; olive itself is never imported here (tests validate what `spec_to_olive`
writes with olive-ai's own `RunConfig` and pass config classes). The format is olive-ai 0.13's:

    input_model      {"type": "HfModel", "model_path": <HF id or folder>, "task": "text-generation"}
    data_configs     HuggingfaceContainer: load_dataset_config {data_name: json|csv|parquet, data_files, split}
                     and pre_process_data_config (text_generation_huggingface_pre_process's TextGenParams:
                     chat_template/message_col or text_cols/text_template, strategy, max_seq_len, pad_to_max_len)
    passes           LoRA | QLoRA | DoRA (r, alpha, lora_dropout, target_modules, torch_dtype, train/eval data
                     config names, training_args = transformers.TrainingArguments fields), then for
                     export.onnx ModelBuilder (precision; the EP comes from the system's accelerator) and, for
                     separate adapters, ExtractAdapters (.onnx_adapter)

What a workflow cannot say is refused with an Issue naming the spec key (full fine-tuning, DeepSpeed ZeRO,
non-causal tasks, Azure ML data assets, models without public weights); what it says differently, or not at all
(the target, registration, prompt masking, ...), is listed as warnings. The reverse, `olive_to_spec`, also reads
the AI Toolkit's legacy (olive-ai 0.7) project templates and names every Olive key it does not carry.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from azfinetune.catalog import ModelInfo, find_foundry_model, find_model, list_models
from azfinetune.errors import Issue, SpecError
from azfinetune.spec import FineTuneSpec, Technique, model_kind

__all__ = [
    "OLIVE_DEFAULTS",
    "OLIVE_TELEMETRY_ENV",
    "OLIVE_VERSION",
    "OliveExport",
    "OliveImport",
    "olive_run_command",
    "spec_to_olive",
]

#: The olive-ai release whose config format this module writes and reads (the `olive` extra pins it).
OLIVE_VERSION = "0.13.0"
#: Olive's telemetry off, in every `olive` command azfinetune runs or prints.
OLIVE_TELEMETRY_ENV = {"OLIVE_DISABLE_TELEMETRY": "1"}
#: The file `azfinetune export --to olive` writes, and the folder names inside the workflow's run folder.
CONFIG_FILE = "olive-config.json"
OUTPUT_DIR = "output"
CHECKPOINT_DIR = "checkpoints"

#: What olive-ai 0.13 (with transformers' TrainingArguments) uses when a key is absent: the import fills these in
#: so the spec trains as the workflow does. tests/interop checks each against the installed olive and transformers.
OLIVE_DEFAULTS: dict[str, Any] = {
    # LoRA._default_config
    "r": 64,
    "alpha": 16,
    "lora_dropout": 0.05,
    "torch_dtype": "bfloat16",
    # QLoRA._default_config
    "quant_type": "nf4",
    "double_quant": False,
    # HFTrainingArguments (olive.passes.pytorch.lora)
    "learning_rate": 0.0002,
    "lr_scheduler_type": "constant",
    "warmup_ratio": 0.03,
    "gradient_checkpointing": True,
    # QLoRATrainingArguments
    "qlora_optim": "paged_adamw_32bit",
    # transformers.TrainingArguments
    "num_train_epochs": 3.0,
    "max_steps": -1,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "seed": 42,
    "logging_steps": 500,
    "optim": "adamw_torch_fused",
    # TextGenParams (olive.data.component.text_generation)
    "max_seq_len": 1024,
    "strategy": "join",
    "message_col": "messages",
    "text_cols": ["text"],
}

_TRAINING_PASSES = {"lora": Technique.LORA, "qlora": Technique.QLORA, "dora": Technique.DORA}
_PASS_TYPES = {Technique.LORA: "LoRA", Technique.QLORA: "QLoRA", Technique.DORA: "DoRA"}
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_PRECISIONS = {value: key for key, value in _DTYPES.items()}
_PROVIDERS = {
    "cpu": ("cpu", "CPUExecutionProvider"),
    "cuda": ("gpu", "CUDAExecutionProvider"),
    "dml": ("gpu", "DmlExecutionProvider"),
    "webgpu": ("gpu", "WebGpuExecutionProvider"),
}
_PROVIDER_NAMES = {ep.lower(): name for name, (_, ep) in _PROVIDERS.items()}
#: Data file format (by suffix, as azft_contract reads it) -> the Hugging Face datasets builder and its options.
_LOADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "jsonl": ("json", {}),
    "json": ("json", {}),
    "csv": ("csv", {}),
    "tsv": ("csv", {"delimiter": "\t"}),
    "parquet": ("parquet", {}),
}
_SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class OliveExport:
    """An Olive workflow for a spec, and what it does not carry (warnings naming the spec keys)."""

    config: dict[str, Any]
    notes: list[Issue] = field(default_factory=list)

    @property
    def text(self) -> str:
        """olive-config.json's text."""
        return json.dumps(self.config, indent=2) + "\n"


@dataclass(frozen=True)
class OliveImport:
    """A spec (a plain mapping, not yet validated) for an Olive workflow, and the workflow's keys it does not
    carry (warnings, `path` = the Olive key)."""

    spec: dict[str, Any]
    notes: list[Issue] = field(default_factory=list)


def olive_run_command(config: str | Path, *, run_dir: str | Path | None = None) -> str:
    """The shell line that runs a workflow, Olive's telemetry off (the variable, and the flag for the CLI)."""
    env = " ".join(f"{key}={value}" for key, value in OLIVE_TELEMETRY_ENV.items())
    line = f"{env} olive run --config {shlex.quote(str(config))} --disable_telemetry"
    if run_dir is not None:
        return f"cd {shlex.quote(str(run_dir))} && {line}"
    return line


# -- spec -> Olive ----------------------------------------------------------------------------------------------


class _Collector:
    """Errors and notes about one spec, located at the spec's own lines."""

    def __init__(self, spec: FineTuneSpec) -> None:
        self.spec = spec
        self.errors: list[Issue] = []
        self.notes: list[Issue] = []

    def _at(self, issue: Issue) -> Issue:
        position = self.spec.position(issue.path) if issue.path else None
        if position is None:
            return issue if self.spec.source is None else issue.located(self.spec.source, None)
        return issue.located(self.spec.source, *position)

    def error(self, path: str, message: str, hint: str | None = None) -> None:
        self.errors.append(self._at(Issue(path, message, hint=hint)))

    def note(self, path: str, message: str) -> None:
        self.notes.append(self._at(Issue(path, message, severity="warning")))


def _is_set(model: Any, name: str) -> bool:
    return name in getattr(model, "model_fields_set", set())


def _posix_relpath(target: Path, start: Path) -> str:
    return PurePosixPath(Path(os.path.relpath(target, start))).as_posix()


def _model_path(spec: FineTuneSpec, out_dir: Path, info: ModelInfo | None, c: _Collector) -> str | None:
    ref = spec.model
    if info is not None:
        if info.hf_id is None:
            c.error(
                "model",
                f"{info.alias} has no public Hugging Face weights: Olive's LoRA passes fine-tune a Hugging Face "
                "model (its id or a folder)",
                hint="pick a model with open weights, or keep this spec on its Azure target",
            )
            return None
        return info.hf_id
    if ref.startswith("hf:"):
        return ref[3:]
    if ref.startswith("azureml:"):
        c.error(
            "model",
            f"{ref} is an Azure ML model asset, which Olive cannot read",
            hint="download the model and name its folder, or use hf:<org>/<name>",
        )
        return None
    if model_kind(ref) == "alias":
        what = "a model Foundry fine-tunes as a service" if find_foundry_model(ref) else "not a catalog model"
        c.error(
            "model",
            f"{ref} is {what}: Olive fine-tunes Hugging Face weights (an id or a folder)",
            hint="name the weights with hf:<org>/<name> or a folder, or keep this spec on its Azure target",
        )
        return None
    return _posix_relpath(spec.resolve_path(ref).resolve(), out_dir.resolve())


def _architecture_of(spec: FineTuneSpec) -> ModelInfo | None:
    """A local model folder's catalog twin: the catalog model of the same config.json model_type, when every
    catalog model of that type has the same modules (module names follow the architecture's code)."""
    if model_kind(spec.model) != "local":
        return None
    try:
        config = json.loads((spec.resolve_path(spec.model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    twins = [
        m for m in list_models() if m.architecture is not None and m.architecture.model_type == model_type
    ]
    shapes = {(tuple(sorted(m.linear_modules)), tuple(m.lora_target_modules)) for m in twins}
    return twins[0] if len(shapes) == 1 and twins[0].linear_modules else None


def _target_modules(spec: FineTuneSpec, info: ModelInfo | None, c: _Collector) -> list[str] | None:
    lora = spec.method.effective_lora
    modules = lora.target_modules
    if isinstance(modules, list):
        chosen: list[str] | None = list(modules)
    elif modules == "all-linear":
        if info is None or not info.linear_modules:
            c.error(
                "method.lora.target_modules",
                "all-linear needs the model's linear module names, which the catalog does not know for "
                f"{spec.model}: Olive's target_modules is a list of names",
                hint="list the module names, e.g. [q_proj, k_proj, v_proj, o_proj]",
            )
            return None
        chosen = list(info.linear_modules)
    else:  # auto
        chosen = list(info.lora_target_modules) if info is not None and info.lora_target_modules else None
        if chosen is None:
            c.note(
                "method.lora.target_modules",
                f"auto: the catalog does not know {spec.model}'s modules; Olive picks its own for the model type",
            )
    if spec.method.technique is Technique.QLORA and chosen is not None:
        every = set(info.linear_modules) if info is not None else set()
        if set(chosen) != every:
            c.note(
                "method.lora.target_modules",
                "Olive's QLoRA pass adapts every 4-bit linear layer, whatever target_modules says",
            )
    return chosen


def _data_loader(
    role: str, ref: str, spec: FineTuneSpec, out_dir: Path, c: _Collector
) -> dict[str, Any] | None:
    key = f"data.{role}"
    if ref.startswith("azureml:"):
        c.error(
            key,
            f"{ref} is an Azure ML data asset, which Olive cannot read",
            hint="download the file and name it here (a local path or an https:// URL)",
        )
        return None
    if spec.data.is_remote(ref):
        files = ref
        suffix = PurePosixPath(ref.split("?", 1)[0]).suffix.lower()
    else:
        path = spec.resolve_path(ref)
        files = _posix_relpath(path.resolve(), out_dir.resolve())
        suffix = path.suffix.lower()
    builder, options = _LOADERS[_SUFFIXES.get(suffix, "jsonl")]
    return {"data_name": builder, "data_files": files, "split": "train", **options}


def _text_columns(spec: FineTuneSpec, c: _Collector) -> dict[str, str] | None:
    """text-completion: {"prompt", "completion"} or {"text"} -> the data's column names."""
    given = spec.data.columns.as_dict() if spec.data.columns else {}
    if "prompt" in given and "completion" in given:
        return {"prompt": given["prompt"], "completion": given["completion"]}
    if "text" in given and not ({"prompt", "completion"} & set(given)):
        return {"text": given["text"]}
    train = spec.data.train
    if not spec.data.is_remote(train):
        from azft_contract import ContractError
        from azft_contract.reader import detect_columns

        try:
            found = detect_columns(spec.resolve_path(train), "text-completion", given or None)
        except (ContractError, OSError):
            found = {}
        if "prompt" in found and "completion" in found:
            return {"prompt": found["prompt"], "completion": found["completion"]}
        if "text" in found:
            return {"text": found["text"]}
    c.error(
        "data.columns",
        "text-completion: cannot tell whether the data has prompt + completion or one text column "
        "(the training file could not be read here)",
        hint="set data.columns.prompt and data.columns.completion, or data.columns.text",
    )
    return None


def _format_field(name: str) -> bool:
    return bool(name) and not any(ch in name for ch in "{}[].:!")


def _pre_process(spec: FineTuneSpec, max_seq_len: int, c: _Collector) -> dict[str, Any] | None:
    training = spec.training
    config: dict[str, Any] = {
        "strategy": "join" if training.packing else "line-by-line",
        "max_seq_len": max_seq_len,
        "pad_to_max_len": False,
    }
    if spec.task.value == "chat-completion":
        columns = spec.data.columns.as_dict() if spec.data.columns else {}
        config.update({"chat_template": True, "message_col": columns.get("messages", "messages")})
        masked = True
    else:
        text = _text_columns(spec, c)
        if text is None:
            return None
        if "text" in text:
            config["text_cols"] = [text["text"]]
            masked = False
        else:
            prompt, completion = text["prompt"], text["completion"]
            if not (_format_field(prompt) and _format_field(completion)):
                c.error(
                    "data.columns",
                    f"Olive joins prompt and completion with a Python format string; the column names {prompt!r} "
                    f"and {completion!r} cannot appear in one (no braces, brackets, '.', ':' or '!')",
                    hint="rename the columns in the data",
                )
                return None
            config["text_template"] = f"{{{prompt}}}{{{completion}}}"
            masked = True
    if masked and training.mask_prompt:
        c.note(
            "training.mask_prompt",
            "Olive computes the loss on every token, the prompt included (set mask_prompt: false to say so)",
        )
    if training.packing:
        c.note(
            "training.packing",
            "Olive's join strategy drops the last tokens that do not fill a whole max_seq_len sequence",
        )
    return config


def _training_args(spec: FineTuneSpec, has_eval: bool) -> dict[str, Any]:
    training = spec.training
    args: dict[str, Any] = {
        "seed": training.seed,
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.lr_scheduler.value,
        # transformers 5 (the project's) has no warmup_ratio: a warmup_steps below 1 is a share of the steps.
        "warmup_steps": training.warmup_ratio,
        "per_device_train_batch_size": training.per_device_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "gradient_checkpointing": training.gradient_checkpointing,
        "logging_steps": training.logging_steps,
        "optim": spec.method.optimizer.value,
        "output_dir": CHECKPOINT_DIR,
    }
    if has_eval:
        args["per_device_eval_batch_size"] = training.per_device_batch_size
    if training.save_total_limit is not None and training.save_total_limit > 0:
        args["save_total_limit"] = training.save_total_limit
    if training.metric_for_best_model is not None:
        args.update({"metric_for_best_model": training.metric_for_best_model, "load_best_model_at_end": True})
    return args


def _not_carried(spec: FineTuneSpec, c: _Collector) -> None:
    target = spec.target
    if target.kind != "local":
        c.note(
            "target",
            f"Olive trains on the machine that runs `olive run`; target.kind {target.kind} and its settings "
            "are not carried",
        )
    elif target.model_fields_set - {"kind"}:
        c.note("target", "the local target's settings are not carried (Olive has its own)")
    messages = {
        "description": "Olive workflows have no description",
        "register": "Olive does not register models; the result stays in the workflow's output folder",
        "environment": "Olive runs in the Python environment that runs it",
        "workspace": "Olive does not use an Azure ML workspace",
        "secrets": "not carried: set these variables in the shell that runs olive",
        "tags": "Olive workflows have no tags",
    }
    for key, message in messages.items():
        if _is_set(spec, key) and getattr(spec, key):
            c.note(key, message)
    if spec.data.test:
        c.note("data.test", "Olive's training passes take train and eval data only")
    quantization = spec.method.quantization
    if quantization is not None and quantization.storage_dtype is not None:
        c.note("method.quantization.storage_dtype", "Olive's QLoRA pass keeps bitsandbytes' default storage")


def _onnx_passes(spec: FineTuneSpec, c: _Collector) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(systems, passes) for export.onnx, or None when the spec has none."""
    onnx = spec.export.onnx if spec.export is not None else None
    if onnx is None:
        return None
    device, provider = _PROVIDERS[onnx.execution_provider]
    systems = {
        "local_system": {
            "type": "LocalSystem",
            "accelerators": [{"device": device, "execution_providers": [provider]}],
        }
    }
    passes: dict[str, Any] = {"builder": {"type": "ModelBuilder", "precision": onnx.precision}}
    if onnx.adapters == "separate":
        passes["adapters"] = {"type": "ExtractAdapters", "make_inputs": True, "save_format": "onnx_adapter"}
    c.note(
        "export.onnx.min_token_agreement",
        "Olive's workflow does not compare the ONNX model's tokens with PyTorch's",
    )
    return systems, passes


def spec_to_olive(spec: FineTuneSpec, *, out_dir: Path) -> OliveExport:
    """The Olive workflow that fine-tunes as `spec` says; paths in it are relative to `out_dir` (where it is
    written and where `olive run` runs). SpecError naming each spec key Olive cannot express."""
    c = _Collector(spec)
    if spec.task.value not in ("chat-completion", "text-completion"):
        c.error(
            "task",
            f"Olive's LoRA passes train causal language models (chat-completion, text-completion), not "
            f"{spec.task.value}",
            hint="keep this spec on its Azure ML target",
        )
    method = spec.method
    if method.technique is Technique.FULL:
        c.error(
            "method.technique",
            "Olive has no full fine-tuning pass; its training passes are LoRA, QLoRA, DoRA (and LoHa, LoKr, LoftQ)",
            hint="use technique lora, qlora or dora, or keep this spec on its Azure ML target",
        )
    if method.deepspeed is not None:
        c.error(
            "method.deepspeed",
            "Olive runs its training pass in one Python process, without the DeepSpeed launcher: ZeRO sharding "
            "across GPUs and nodes is not available",
            hint="remove method.deepspeed (one GPU), or keep this spec on its Azure ML target",
        )
    info = find_model(spec.model)
    model_path = _model_path(spec, out_dir, info, c)
    max_seq_len: int | None = None
    if spec.training.max_seq_length == "auto":
        if info is None:
            c.error(
                "training.max_seq_length",
                f"auto: the catalog does not know {spec.model}'s maximum, and Olive needs a number",
                hint="set training.max_seq_length to a number of tokens",
            )
        else:
            max_seq_len = info.max_seq_length
    else:
        max_seq_len = spec.training.max_seq_length
    modules = _target_modules(spec, info or _architecture_of(spec), c) if method.uses_adapter else None
    loaders = {
        role: _data_loader(role, ref, spec, out_dir, c)
        for role, ref in spec.data.files().items()
        if role in ("train", "validation")
    }
    pre = (
        _pre_process(spec, max_seq_len or 1024, c)
        if spec.task.value in ("chat-completion", "text-completion")
        else None
    )
    onnx = _onnx_passes(spec, c)
    _not_carried(spec, c)
    if c.errors:
        raise SpecError(c.errors, file=spec.source)
    assert model_path is not None and pre is not None and max_seq_len is not None  # no errors: all were found

    data_configs = [
        {
            "name": role,
            "type": "HuggingfaceContainer",
            "load_dataset_config": loader,
            "pre_process_data_config": dict(pre),
        }
        for role, loader in loaders.items()
        if loader is not None
    ]
    has_eval = "validation" in loaders
    dtype = _DTYPES[spec.training.precision.value]
    lora = method.effective_lora
    training_pass: dict[str, Any] = {
        "type": _PASS_TYPES[method.technique],
        "r": lora.r,
        "alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "torch_dtype": dtype,
        "train_data_config": "train",
    }
    if modules is not None:
        training_pass["target_modules"] = modules
    if method.technique is Technique.QLORA:
        quantization = method.effective_quantization
        assert quantization is not None
        training_pass.update(
            {
                "compute_dtype": dtype,
                "quant_type": quantization.type,
                "double_quant": quantization.double_quant,
            }
        )
    if has_eval:
        training_pass["eval_data_config"] = "validation"
    training_pass["training_args"] = _training_args(spec, has_eval)

    config: dict[str, Any] = {
        "workflow_id": spec.name,
        "input_model": {"type": "HfModel", "model_path": model_path, "task": "text-generation"},
        "data_configs": data_configs,
        "passes": {method.technique.value: training_pass},
    }
    if onnx is not None:
        systems, onnx_passes = onnx
        config["systems"] = systems
        config["passes"].update(onnx_passes)
        config.update({"host": "local_system", "target": "local_system"})
    config.update({"evaluate_input_model": False, "output_dir": OUTPUT_DIR})
    return OliveExport(config, c.notes)
