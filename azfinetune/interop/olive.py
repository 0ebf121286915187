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
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from azfinetune.catalog import ModelInfo, find_foundry_model, find_model, list_models
from azfinetune.errors import Issue, SpecError, UserInputError
from azfinetune.spec import FineTuneSpec, LrScheduler, Optimizer, Technique, model_kind

__all__ = [
    "OLIVE_DEFAULTS",
    "OLIVE_TELEMETRY_ENV",
    "OLIVE_VERSION",
    "OliveConfigError",
    "OliveExport",
    "OliveImport",
    "fill_ai_toolkit_template",
    "olive_run_command",
    "olive_to_spec",
    "spec_to_olive",
]

#: The olive-ai release whose config format this module writes and reads (the `olive` extra pins it).
OLIVE_VERSION = "0.13.0"
#: Olive's telemetry off, in every `olive` command azfinetune runs or prints. olive-ai 0.13.0 logs its heartbeat
#: event before it reads OLIVE_DISABLE_TELEMETRY (olive/telemetry/telemetry.py, Telemetry.__init__), so the variable
#: alone still lets one heartbeat out; its check for a CI environment (CI=1) comes first and stops that too.
#: Nothing else in olive reads CI (tests/interop/test_olive_run.py checks both, with the exporter stubbed).
OLIVE_TELEMETRY_ENV = {"OLIVE_DISABLE_TELEMETRY": "1", "CI": "1"}
#: The onnxruntime-genai of azfinetune's `onnx` extra, which olive-ai 0.13.0's ModelBuilder pass cannot drive
#: (tests/interop/test_olive_run.py shows it).
GENAI_VERSION = "0.18.0"
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
    #: spec key -> the Olive key it came from (so a spec error can name the workflow's key).
    origins: dict[str, str] = field(default_factory=dict)


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
    if training.save_steps is not None:
        args.update({"save_strategy": "steps", "save_steps": training.save_steps})
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
    c.note(
        "export.onnx",
        f"olive-ai {OLIVE_VERSION}'s ModelBuilder pass imports onnxruntime_genai.models.quantized_model, which "
        f"onnxruntime-genai {GENAI_VERSION} (azfinetune's onnx extra) no longer has: run the workflow with an "
        "older onnxruntime-genai, or drop the builder passes and export the adapter with azfinetune",
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
    objective = getattr(method.objective, "value", method.objective)
    if objective != "sft":
        c.error(
            "method.objective",
            f"Olive's LoRA/QLoRA/DoRA passes fine-tune with next-token (supervised) loss; {objective} preference "
            "training has no Olive pass",
            hint="keep this spec on its Azure ML or local target, or set method.objective: sft for Olive",
        )
    if spec.training.resume_from is not None:
        c.note(
            "training.resume_from",
            "Olive starts every run from the base model; the checkpoints are not carried",
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


# -- Olive -> spec ----------------------------------------------------------------------------------------------


class OliveConfigError(UserInputError):
    """An Olive workflow that cannot become a spec; `issues` name the Olive keys."""

    def __init__(self, issues: list[Issue], *, file: str | None = None) -> None:
        self.issues = list(issues)
        self.file = file
        head = f"{file}: " if file else ""
        count = len(self.issues)
        noun = "key" if count == 1 else "keys"
        lines = [f"{head}{count} {noun} of the Olive workflow cannot become a spec:"]
        lines += [f"  {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))

    @property
    def paths(self) -> list[str]:
        return [issue.path for issue in self.issues]


#: RunConfig's own keys, and the engine's keys RunConfig also takes at the top level (NestedConfig "engine").
_RUN_KEYS = {"workflow_id", "input_model", "systems", "data_configs", "evaluators", "engine", "passes"}
_ENGINE_KEYS = {
    "search_strategy",
    "host",
    "target",
    "evaluator",
    "plot_pareto_frontier",
    "no_artifacts",
    "evaluate_input_model",
    "output_dir",
    "packaging_config",
    "cache_config",
    "cache_dir",
    "clean_cache",
    "clean_evaluation_cache",
    "enable_shared_cache",
    "log_severity_level",
    "ort_log_severity_level",
    "ort_py_log_severity_level",
    "log_to_file",
}
#: olive-ai 0.7 names (the AI Toolkit's legacy templates) -> olive-ai 0.13 names.
_LEGACY_PASS_KEYS = {"lora_r": "r", "lora_alpha": "alpha"}
_LEGACY_PRE_KEYS = {"source_max_len": "max_seq_len", "corpus_strategy": "strategy"}
_LEGACY_TRAINING_KEYS = {"evaluation_strategy": "eval_strategy"}
_ONNX_PASSES = ("modelbuilder", "extractadapters", "onnxconversion", "orttransformersoptimization")
#: Keys that say where or how Olive runs a pass, with no bearing on what is trained.
_QUIET_PASS_KEYS = {"type", "config", "host", "evaluator", "device_map", "allow_tf32"}
_QUIET_TRAINING_KEYS = {"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "eval_strategy"}
_QUIET_PRE_KEYS = {"type", "dataset_type", "pad_to_max_len", "use_attention_mask", "padding_side", "joiner"}
_LR_SCHEDULERS = {s.value for s in LrScheduler}
_OPTIMIZERS = {o.value for o in Optimizer}


class _Reader:
    """Errors (the workflow cannot become a spec) and notes (what it does not carry) by Olive key."""

    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.notes: list[Issue] = []
        self.origins: dict[str, str] = {}

    def error(self, path: str, message: str, hint: str | None = None) -> None:
        self.errors.append(Issue(path, message, hint=hint))

    def note(self, path: str, message: str) -> None:
        self.notes.append(Issue(path, message, severity="warning"))


def _params(component: Any) -> dict[str, Any]:
    """A pass or data component's parameters: nested under config/params or flat beside `type`."""
    if not isinstance(component, Mapping):
        return {}
    nested = component.get("config") if "config" in component else component.get("params")
    flat = {k: v for k, v in component.items() if k not in ("config", "params")}
    return {**flat, **(nested if isinstance(nested, Mapping) else {})}


def _renamed(params: dict[str, Any], legacy: Mapping[str, str]) -> dict[str, Any]:
    return {legacy.get(key, key): value for key, value in params.items()}


def _hf_model_ref(model_path: str, run_dir: Path, spec_dir: Path, r: _Reader) -> str:
    """input_model.model_path -> the spec's model: a catalog alias, hf:<org>/<name>, or a folder."""
    text = model_path.strip()
    exact = find_model(text) if text.count("/") == 1 else None
    if exact is not None:
        return exact.alias
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if len(parts) >= 2:
        twin = find_model("/".join(parts[-2:]))
        if twin is not None and twin.hf_id is not None:
            r.note(
                "input_model.model_path",
                f"{text} is a download of {twin.hf_id}: the spec names the catalog model {twin.alias}",
            )
            return twin.alias
    local = Path(text) if Path(text).is_absolute() else run_dir / text
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and not local.exists():
        return f"hf:{text}"
    return _posix_relpath(local.resolve(), spec_dir.resolve())


def _systems_provider(config: Mapping[str, Any], engine: Mapping[str, Any], r: _Reader) -> str:
    """The execution provider of the workflow's target system (cpu when it names none)."""
    target = engine.get("target")
    systems = config.get("systems") or {}
    system = systems.get(target) if isinstance(target, str) else target
    accelerators = (system or {}).get("accelerators") if isinstance(system, Mapping) else None
    if isinstance(system, Mapping) and isinstance(system.get("config"), Mapping):
        accelerators = system["config"].get("accelerators", accelerators)
    if not accelerators:
        return "cpu"
    providers = accelerators[0].get("execution_providers") or []
    if not providers:
        return "cuda" if str(accelerators[0].get("device", "cpu")).lower() == "gpu" else "cpu"
    name = _PROVIDER_NAMES.get(str(providers[0]).lower())
    if name is None:
        r.error(
            "systems",
            f"execution provider {providers[0]} has no export.onnx.execution_provider "
            f"(one of {', '.join(_PROVIDERS)})",
        )
        return "cpu"
    return name


def _data_file(
    name: str, data_config: Mapping[str, Any], key: str, run_dir: Path, spec_dir: Path, r: _Reader
) -> str | None:
    if str(data_config.get("type", "")).lower() != "huggingfacecontainer":
        r.error(
            f"{key}.type", f"{data_config.get('type')!r}: azfinetune reads HuggingfaceContainer data only"
        )
        return None
    if data_config.get("user_script"):
        r.note(f"{key}.user_script", "not carried: the spec reads its data files without Python code")
    load = _params(data_config.get("load_dataset_config") or {})
    builder = str(load.get("data_name", ""))
    files = load.get("data_files")
    if builder not in ("json", "csv", "parquet"):
        r.error(
            f"{key}.load_dataset_config.data_name",
            f"{builder!r} is a Hugging Face Hub dataset; a spec names data files",
            hint="save the split as JSON Lines (datasets' Dataset.to_json) and name the file",
        )
        return None
    if isinstance(files, list) and len(files) == 1:
        files = files[0]
    if not isinstance(files, str):
        r.error(f"{key}.load_dataset_config.data_files", "a spec names one file per role (train, validation)")
        return None
    for option in ("col_filters", "subset", "data_dir"):
        if load.get(option):
            r.error(
                f"{key}.load_dataset_config.{option}",
                "selects part of the data, which a spec cannot say",
                hint="write the selected rows to their own file",
            )
    split = load.get("split", "train")
    if split not in (None, "train"):
        r.note(f"{key}.load_dataset_config.split", f"{split!r}: the spec trains on the whole file")
    if builder == "csv" and load.get("delimiter") not in (None, ",", "\t"):
        r.error(f"{key}.load_dataset_config.delimiter", "azfinetune reads comma- or tab-separated files")
    if re.match(r"^https?://", files):
        return files
    path = Path(files) if Path(files).is_absolute() else run_dir / files
    if not path.exists():
        r.note(
            f"{key}.load_dataset_config.data_files",
            f"{files} is not in {run_dir} (the folder `olive run` runs in): pass --run-dir",
        )
    return _posix_relpath(path.resolve(), spec_dir.resolve())


def _text_spec(pre: Mapping[str, Any], key: str, r: _Reader) -> tuple[str, dict[str, str]] | None:
    """pre_process_data_config -> (task, data.columns)."""
    if pre.get("chat_template"):
        if isinstance(pre["chat_template"], str):
            r.note(f"{key}.chat_template", "a custom chat template is not carried: the model's own is used")
        column = str(pre.get("message_col", OLIVE_DEFAULTS["message_col"]))
        return "chat-completion", ({} if column == "messages" else {"messages": column})
    if pre.get("text_formatting_func"):
        r.error(f"{key}.text_formatting_func", "a Python formatting function cannot become a spec")
        return None
    template = pre.get("text_template")
    if template:
        pieces = list(string.Formatter().parse(str(template)))
        fields = [name for _, name, _, _ in pieces if name]
        literal = [text for text, _, _, _ in pieces if text]
        if len(fields) not in (1, 2):
            r.error(
                f"{key}.text_template",
                f"names {len(fields)} columns; a spec trains on one text column or a prompt and a completion",
            )
            return None
        if literal:
            r.note(
                f"{key}.text_template",
                f"the literal text {' '.join(repr(t) for t in literal)} around the columns is not carried: "
                "azfinetune trains on the columns as the data has them",
            )
        if len(fields) == 1:
            return "text-completion", {"text": fields[0]}
        return "text-completion", {"prompt": fields[0], "completion": fields[1]}
    cols = pre.get("text_cols", OLIVE_DEFAULTS["text_cols"])
    cols = [cols] if isinstance(cols, str) else list(cols)
    if len(cols) == 1:
        return "text-completion", {"text": str(cols[0])}
    if len(cols) == 2:
        r.note(
            f"{key}.text_cols",
            "Olive joins the two columns with a space; the spec trains on prompt + completion",
        )
        return "text-completion", {"prompt": str(cols[0]), "completion": str(cols[1])}
    r.error(
        f"{key}.text_cols",
        f"{len(cols)} columns: a spec trains on one text column or a prompt and a completion",
    )
    return None


def _put(spec: dict[str, Any], path: str, value: Any, origin: str, r: _Reader) -> None:
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    r.origins[path] = origin


def _whole(value: Any, key: str, r: _Reader) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        r.error(key, f"{value!r}: the spec's value is a whole number")
        return None
    return int(value)


def _training(
    spec: dict[str, Any], args: Mapping[str, Any], key: str, technique: Technique, r: _Reader
) -> None:
    args = _renamed(dict(args), _LEGACY_TRAINING_KEYS)
    d = OLIVE_DEFAULTS

    def put(name: str, path: str) -> None:
        origin = f"{key}.{name}" if name in args else f"{key}.{name} (olive's default)"
        _put(spec, path, args.get(name, d[name]), origin, r)

    put("seed", "training.seed")
    put("num_train_epochs", "training.epochs")
    put("max_steps", "training.max_steps")
    put("learning_rate", "training.learning_rate")
    put("per_device_train_batch_size", "training.per_device_batch_size")
    put("gradient_accumulation_steps", "training.gradient_accumulation_steps")
    put("gradient_checkpointing", "training.gradient_checkpointing")
    put("logging_steps", "training.logging_steps")
    scheduler = str(args.get("lr_scheduler_type", d["lr_scheduler_type"]))
    if scheduler in _LR_SCHEDULERS:
        _put(spec, "training.lr_scheduler", scheduler, f"{key}.lr_scheduler_type", r)
    else:
        r.note(
            f"{key}.lr_scheduler_type",
            f"{scheduler} has no training.lr_scheduler; the spec's default is used",
        )
    if "warmup_steps" in args:
        steps = args["warmup_steps"]
        if isinstance(steps, (int, float)) and 0 <= steps < 1:
            _put(spec, "training.warmup_ratio", steps, f"{key}.warmup_steps", r)
        else:
            r.note(
                f"{key}.warmup_steps",
                f"{steps} steps: the spec's warmup is a share of the steps (warmup_ratio)",
            )
    elif "warmup_ratio" in args:
        _put(spec, "training.warmup_ratio", args["warmup_ratio"], f"{key}.warmup_ratio", r)
    else:
        # Olive's HFTrainingArguments default (0.03) never reaches transformers 5, which has no warmup_ratio.
        _put(spec, "training.warmup_ratio", 0.0, f"{key}.warmup_steps (transformers' default)", r)
    default_optim = d["qlora_optim"] if technique is Technique.QLORA else d["optim"]
    optim = str(args.get("optim", default_optim))
    if optim == "adamw_torch_fused":
        optim = "adamw_torch"
    if optim in _OPTIMIZERS:
        _put(spec, "method.optimizer", optim, f"{key}.optim", r)
    else:
        r.note(f"{key}.optim", f"{optim} has no method.optimizer; the spec's default (adamw_torch) is used")
    limit = args.get("save_total_limit")
    if limit is not None:
        _put(spec, "training.save_total_limit", limit, f"{key}.save_total_limit", r)
    save_steps = args.get("save_steps")
    if save_steps is not None and args.get("save_strategy", "steps") == "steps":
        _put(spec, "training.save_steps", save_steps, f"{key}.save_steps", r)
    metric = args.get("metric_for_best_model")
    if metric:
        metric = str(metric).removeprefix("eval_")
        _put(spec, "training.metric_for_best_model", metric, f"{key}.metric_for_best_model", r)
    if args.get("per_device_eval_batch_size") not in (None, args.get("per_device_train_batch_size")):
        r.note(
            f"{key}.per_device_eval_batch_size",
            "not carried: the spec evaluates with the training batch size",
        )
    handled = {
        "seed",
        "num_train_epochs",
        "max_steps",
        "learning_rate",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "gradient_checkpointing",
        "logging_steps",
        "lr_scheduler_type",
        "warmup_steps",
        "warmup_ratio",
        "optim",
        "save_total_limit",
        "save_steps",
        "save_strategy",
        "metric_for_best_model",
        "load_best_model_at_end",
        "per_device_eval_batch_size",
    } | _QUIET_TRAINING_KEYS
    extra = args.get("extra_args")
    leftovers = [(f"{key}.{k}", k, v) for k, v in args.items() if k not in handled and k != "extra_args"]
    if isinstance(extra, Mapping):
        leftovers += [(f"{key}.extra_args.{k}", k, v) for k, v in extra.items()]
    for path, name, value in leftovers:
        if name == "report_to" and value in ("none", None, []):
            continue
        if name == "deepspeed":
            if value:
                r.error(path, "DeepSpeed in Olive's one-process training pass has no spec equivalent")
            continue
        r.note(path, "no azfinetune setting: not carried")


def _onnx_export(
    config: Mapping[str, Any], engine: Mapping[str, Any], onnx: dict[str, dict[str, Any]], r: _Reader
) -> dict[str, Any] | None:
    """The ONNX passes -> export.onnx (precision, execution_provider, adapters)."""
    if not onnx:
        return None
    by_type = {params["type"].lower(): (name, params) for name, params in onnx.items()}
    builder = by_type.get("modelbuilder")
    conversion = by_type.get("onnxconversion")
    optimization = by_type.get("orttransformersoptimization")
    extract = by_type.get("extractadapters")
    adapters = "separate" if extract else "merged"
    if builder is not None and not builder[1].get("metadata_only"):
        precision = str(builder[1].get("precision", "fp32")).lower()
        replaced = [item for item in (conversion, optimization) if item is not None]
    elif conversion is not None:
        precision = "fp16" if optimization is not None and optimization[1].get("float16") else "fp32"
        replaced = [item for item in (conversion, optimization, builder) if item is not None]
    else:
        r.error(
            "passes", "ExtractAdapters without a model to extract from (no ModelBuilder or OnnxConversion)"
        )
        return None
    if replaced:
        names = ", ".join(f"passes.{name} ({params['type']})" for name, params in replaced)
        r.note(
            names.split(" ")[0],
            f"{names}: azfinetune builds the ONNX model with onnxruntime-genai's model builder at {precision} "
            "instead; these passes' own settings are not carried",
        )
    if precision not in ("int4", "int8", "fp16", "fp32"):
        r.error(
            f"passes.{builder[0] if builder else 'ModelBuilder'}.precision",
            f"{precision}: export.onnx takes int4, int8, fp16 or fp32",
        )
        return None
    if extract is not None and str(extract[1].get("save_format", "onnx_adapter")) != "onnx_adapter":
        r.note(f"passes.{extract[0]}.save_format", "azfinetune writes the adapter as .onnx_adapter")
    provider = _systems_provider(config, engine, r)
    return {"precision": precision, "execution_provider": provider, "adapters": adapters}


def _spec_name(config: Mapping[str, Any], model: str, technique: Technique) -> str:
    workflow = str(config.get("workflow_id") or "")
    if _NAME.fullmatch(workflow) and workflow != "default_workflow":
        return workflow
    stem = re.sub(r"[^a-z0-9_-]+", "-", model.rsplit("/", 1)[-1].lower()).strip("-_") or "olive"
    if not stem[0].isalpha():
        stem = f"m-{stem}"
    return f"{stem[:50]}-{technique.value}"


def olive_to_spec(
    config: Mapping[str, Any],
    *,
    run_dir: Path,
    spec_dir: Path,
    name: str | None = None,
    source: str | None = None,
) -> OliveImport:
    """The spec (a mapping, paths relative to `spec_dir`) for an Olive workflow whose paths are relative to
    `run_dir` (the folder `olive run` runs in). OliveConfigError naming each Olive key that cannot map."""
    r = _Reader()
    if not isinstance(config, Mapping):
        raise OliveConfigError([Issue("", "an Olive workflow is a JSON object")], file=source)
    engine = {**(config.get("engine") or {}), **{k: config[k] for k in _ENGINE_KEYS if k in config}}
    unknown = [k for k in config if k not in _RUN_KEYS | _ENGINE_KEYS]
    for key in unknown:
        r.note(key, "not an olive-ai 0.13 workflow key: not carried")
    ran = sorted(k for k in engine if k not in ("host", "target"))
    if ran:
        r.note("engine", f"Olive's engine settings ({', '.join(ran)}) say how Olive runs: not carried")
    if config.get("evaluators"):
        r.note("evaluators", "not carried: azfinetune evaluates on the validation data")

    spec: dict[str, Any] = {}
    model = config.get("input_model")
    model_ref = ""
    if not isinstance(model, Mapping) or str(model.get("type", "")).lower() != "hfmodel":
        kind = model.get("type") if isinstance(model, Mapping) else model
        r.error("input_model.type", f"{kind!r}: a spec fine-tunes a Hugging Face model (HfModel)")
    else:
        model_params = _params(model)
        if model_params.get("adapter_path"):
            r.error("input_model.adapter_path", "training on top of an existing adapter cannot become a spec")
        task = model_params.get("task", "text-generation")
        if task not in ("text-generation", "text-generation-with-past"):
            r.error("input_model.task", f"{task}: Olive's LoRA passes here train text-generation models")
        for extra in sorted(set(model_params) - {"type", "model_path", "task", "adapter_path"}):
            r.note(f"input_model.{extra}", "not carried: azfinetune loads the model its own way")
        path = model_params.get("model_path")
        if not isinstance(path, str) or not path.strip():
            r.error("input_model.model_path", "names no model")
        else:
            model_ref = _hf_model_ref(path, run_dir, spec_dir, r)

    passes = config.get("passes") or {}
    training: list[tuple[str, dict[str, Any]]] = []
    onnx: dict[str, dict[str, Any]] = {}
    refused = False
    for pass_name, raw in passes.items():
        for index, item in enumerate(raw if isinstance(raw, list) else [raw]):
            key = f"passes.{pass_name}" if not isinstance(raw, list) else f"passes.{pass_name}[{index}]"
            params = _params(item)
            kind = str(params.get("type", "")).lower()
            if kind in _TRAINING_PASSES:
                training.append((key, params))
            elif kind in ("loha", "lokr", "loftq"):
                r.error(f"{key}.type", f"{params['type']} has no method.technique (lora, qlora, dora)")
                refused = True
            elif kind in _ONNX_PASSES:
                onnx[key.removeprefix("passes.")] = params
            else:
                r.note(f"{key}.type", f"{params.get('type')}: no azfinetune equivalent, not carried")
    if not training and not refused:
        r.error("passes", "no LoRA, QLoRA or DoRA pass: nothing to fine-tune")
    elif len(training) > 1:
        r.error(training[1][0], "a second training pass: a spec trains once")
    technique = Technique.LORA
    if len(training) == 1:
        key, params = training[0]
        params = _renamed(params, _LEGACY_PASS_KEYS)
        technique = _TRAINING_PASSES[params["type"].lower()]
        _put(spec, "method.technique", technique.value, f"{key}.type", r)
        lora: dict[str, Any] = {}
        rank = _whole(params.get("r", OLIVE_DEFAULTS["r"]), f"{key}.r", r)
        alpha = _whole(params.get("alpha", OLIVE_DEFAULTS["alpha"]), f"{key}.alpha", r)
        _put(spec, "method.lora.r", rank, f"{key}.r", r)
        _put(spec, "method.lora.alpha", alpha, f"{key}.alpha", r)
        _put(
            spec,
            "method.lora.dropout",
            params.get("lora_dropout", OLIVE_DEFAULTS["lora_dropout"]),
            f"{key}.lora_dropout",
            r,
        )
        info = find_model(model_ref) if model_ref else None
        modules = params.get("target_modules")
        linear = set(info.linear_modules) if info is not None else set()
        auto = set(info.lora_target_modules) if info is not None else set()
        if technique is Technique.QLORA:
            if modules:
                r.note(
                    f"{key}.target_modules",
                    "Olive's QLoRA adapts every 4-bit linear layer whatever this says",
                )
            chosen: Any = "auto" if linear and auto == linear else "all-linear"
        elif not modules:
            chosen = "auto"
            if info is None:
                r.note(
                    f"{key}.target_modules",
                    "absent: Olive picks the modules for the model type; the spec says auto",
                )
        elif set(modules) == auto:
            chosen = "auto"
        elif linear and set(modules) == linear:
            chosen = "all-linear"
        else:
            chosen = list(modules)
        _put(spec, "method.lora.target_modules", chosen, f"{key}.target_modules", r)
        del lora
        dtype = params.get("torch_dtype", OLIVE_DEFAULTS["torch_dtype"])
        if technique is Technique.QLORA:
            compute = params.get("compute_dtype") or dtype
            if compute != dtype:
                r.note(
                    f"{key}.torch_dtype", f"{dtype}: the spec has one precision, the compute dtype {compute}"
                )
            dtype = compute
            _put(spec, "method.quantization.bits", 4, f"{key}.type", r)
            _put(
                spec,
                "method.quantization.type",
                params.get("quant_type", OLIVE_DEFAULTS["quant_type"]),
                f"{key}.quant_type",
                r,
            )
            _put(
                spec,
                "method.quantization.double_quant",
                params.get("double_quant", OLIVE_DEFAULTS["double_quant"]),
                f"{key}.double_quant",
                r,
            )
        if dtype in _PRECISIONS:
            _put(spec, "training.precision", _PRECISIONS[dtype], f"{key}.torch_dtype", r)
        else:
            r.error(f"{key}.torch_dtype", f"{dtype}: the spec trains in bfloat16, float16 or float32")
        _training(spec, params.get("training_args") or {}, f"{key}.training_args", technique, r)
        known = {
            "r",
            "alpha",
            "lora_dropout",
            "target_modules",
            "torch_dtype",
            "compute_dtype",
            "quant_type",
            "double_quant",
            "train_data_config",
            "eval_data_config",
            "training_args",
        } | _QUIET_PASS_KEYS
        for extra in sorted(set(params) - known):
            if extra == "save_quant_config":
                continue
            r.note(f"{key}.{extra}", "no azfinetune setting: not carried")
        _data(spec, config, params, key, run_dir, spec_dir, r)

    export = _onnx_export(config, engine, onnx, r)
    if r.errors:
        raise OliveConfigError(r.errors, file=source)
    out: dict[str, Any] = {"name": name or _spec_name(config, model_ref, technique)}
    out["task"] = spec.pop("task")
    out["model"] = model_ref
    for section in ("data", "method", "training"):
        if section in spec:
            out[section] = spec.pop(section)
    if export is not None:
        out["export"] = {"onnx": export}
        r.origins["export.onnx"] = "passes"
    return OliveImport(out, r.notes, dict(r.origins))


def _data(
    spec: dict[str, Any],
    config: Mapping[str, Any],
    params: Mapping[str, Any],
    key: str,
    run_dir: Path,
    spec_dir: Path,
    r: _Reader,
) -> None:
    configs = {
        str(item.get("name")): (index, item)
        for index, item in enumerate(config.get("data_configs") or [])
        if isinstance(item, Mapping)
    }
    roles = {"train": params.get("train_data_config"), "validation": params.get("eval_data_config")}
    found: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for role, ref in roles.items():
        if ref is None:
            continue
        if isinstance(ref, Mapping):
            found[role] = (f"{key}.{role}_data_config", ref)
        elif str(ref) in configs:
            index, item = configs[str(ref)]
            found[role] = (f"data_configs[{index}]", item)
        else:
            r.error(
                f"{key}.{'train' if role == 'train' else 'eval'}_data_config", f"{ref!r} names no data config"
            )
    if "train" not in found:
        if params.get("train_data_config") is None:
            r.error(f"{key}.train_data_config", "the training pass names no training data")
        return
    texts: dict[str, tuple[str, dict[str, str]]] = {}
    for role, (data_key, item) in found.items():
        path = _data_file(role, item, data_key, run_dir, spec_dir, r)
        if path is not None:
            _put(spec, f"data.{role}", path, f"{data_key}.load_dataset_config.data_files", r)
        pre_key = f"{data_key}.pre_process_data_config"
        pre = _renamed(_params(item.get("pre_process_data_config") or {}), _LEGACY_PRE_KEYS)
        kind = pre.get("type")
        if kind not in (None, "text_generation_huggingface_pre_process"):
            r.error(f"{pre_key}.type", f"{kind}: azfinetune reads text-generation data only")
            continue
        text = _text_spec(pre, pre_key, r)
        if text is None:
            continue
        texts[role] = text
        if role != "train":
            continue
        task, columns = text
        _put(spec, "task", task, pre_key, r)
        defaults = {"messages": "messages", "prompt": "prompt", "completion": "completion", "text": "text"}
        if any(defaults[k] != v for k, v in columns.items()):
            _put(spec, "data.columns", dict(columns), pre_key, r)
        if task == "chat-completion" or "prompt" in columns:
            _put(spec, "training.mask_prompt", False, f"{pre_key} (Olive's loss covers every token)", r)
        length = _whole(pre.get("max_seq_len", OLIVE_DEFAULTS["max_seq_len"]), f"{pre_key}.max_seq_len", r)
        _put(spec, "training.max_seq_length", length, f"{pre_key}.max_seq_len", r)
        strategy = str(pre.get("strategy", OLIVE_DEFAULTS["strategy"]))
        _put(spec, "training.packing", strategy.startswith("join"), f"{pre_key}.strategy", r)
        if "random" in strategy or "sliding" in strategy:
            r.note(
                f"{pre_key}.strategy", f"{strategy}: the spec packs (join) or not (line-by-line), in order"
            )
        handled = {
            "chat_template",
            "message_col",
            "text_template",
            "text_cols",
            "max_seq_len",
            "strategy",
            "model_name",
            "task",
            "trust_remote_code",
        } | _QUIET_PRE_KEYS
        for extra in sorted(set(pre) - handled):
            r.note(f"{pre_key}.{extra}", "no azfinetune setting: not carried")
    if "validation" in texts and "train" in texts and texts["validation"] != texts["train"]:
        r.note(
            found["validation"][0],
            "read with other columns than the training data: the spec uses the training data's",
        )


# -- the AI Toolkit's project templates -------------------------------------------------------------------------

_TOKEN = re.compile(r"<[a-z][a-z0-9_]*>")
_BLOCK = re.compile(
    r"^[ \t]*#(?P<name>[a-z0-9_]+)_start[ \t]*\n(?P<body>.*?)^[ \t]*#(?P=name)_end[ \t]*(\n|$)", re.M | re.S
)
_COMMENTED = re.compile(r"^(?P<indent>[ \t]*)<!--[ \t]*(?P<line>.*?)[ \t]*-->[ \t]*$", re.M)


def fill_ai_toolkit_template(template: str, settings: Any, *, values: Mapping[str, Any] | None = None) -> str:
    """An AI Toolkit project's olive-config.json with its `<token>`s filled, as the toolkit fills them when it
    creates the project: each token of `setup/project-settings.json` (groups of fields, each a replaceToken and
    a defaultValue; `values` overrides them by token) goes in as text (strings, already inside the template's
    quotes) or as JSON (numbers, booleans, arrays). The data-file block the toolkit fills itself becomes a local
    file's: `"data_name": "<file extension>"` and the `<data_files>` key `data_files`. ValueError if a token
    is left over."""
    filled: dict[str, Any] = {}
    for group in settings if isinstance(settings, list) else []:
        for entry in group.get("fields", []) if isinstance(group, Mapping) else []:
            if isinstance(entry, Mapping) and "replaceToken" in entry:
                filled[str(entry["replaceToken"])] = entry.get("defaultValue")
    filled.update(values or {})
    data_file = filled.get("<data_configs_data_files>")
    if isinstance(data_file, str):
        filled.setdefault("<data_configs_data_files_extension>", PurePosixPath(data_file).suffix.lstrip("."))
    filled.setdefault("<data_files>", "data_files")

    def block(match: re.Match[str]) -> str:
        return _COMMENTED.sub(lambda m: m["indent"] + m["line"], match["body"])

    text = _BLOCK.sub(block, template)

    def token(match: re.Match[str]) -> str:
        name = match[0]
        if name not in filled:
            return name
        value = filled[name]
        start, end = match.span()
        quoted = text[start - 1 : start] == '"' and text[end : end + 1] == '"'
        if quoted and isinstance(value, str):
            return value
        return json.dumps(value)

    left = sorted({name for name in _TOKEN.findall(text) if name not in filled})
    if left:
        raise ValueError(f"tokens with no value in the project settings: {', '.join(left)}")
    return _TOKEN.sub(token, text)
