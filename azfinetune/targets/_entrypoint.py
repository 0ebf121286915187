"""The training entry point's command line for a spec: one function for the command job, pipeline and local runs."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from azfinetune.catalog import find_model
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, Task

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "ENTRYPOINT_MODULE",
    "ENTRYPOINT_TASKS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "command_line",
    "entrypoint_args",
    "entrypoint_inputs",
    "entrypoint_outputs",
    "our_code_rules",
    "target_modules",
]

#: `python -m <this>` with cwd (the job's code) = jobs/src.
ENTRYPOINT_MODULE = "finetune"
#: The tasks the entry point trains (its --task choices that are not refused); the registry pipelines train the rest.
ENTRYPOINT_TASKS: frozenset[Task] = frozenset(
    {Task.CHAT_COMPLETION, Task.TEXT_COMPLETION, Task.TEXT_CLASSIFICATION, Task.TOKEN_CLASSIFICATION}
)

#: Names of the entry point's inputs, as job input names and as keys of `entrypoint_args(inputs=...)`.
INPUT_NAMES = ("model", "train", "validation", "test", "deepspeed")
#: Names of its outputs: the adapter (or full model), the merged model, the MLflow model to register.
OUTPUT_NAMES = ("adapter", "merged_model", "mlflow_model")

# The flag each input/output is passed with (CONTRACTS.md, "Training entry point").
_INPUT_FLAGS = {
    "model": "--model",
    "train": "--train-file",
    "validation": "--validation-file",
    "test": "--test-file",
    "deepspeed": "--deepspeed",
}
_OUTPUT_FLAGS = {
    "adapter": "--output-dir",
    "merged_model": "--merged-output-dir",
    "mlflow_model": "--mlflow-model-dir",
}
_PLACEHOLDER = re.compile(r"^\$\{\{(inputs|outputs)\.[A-Za-z_][A-Za-z0-9_]*\}\}$")


def entrypoint_inputs(spec: FineTuneSpec) -> tuple[str, ...]:
    """The inputs a spec's run needs, in INPUT_NAMES order (validation/test/deepspeed only when set)."""
    needed = {"model", "train"}
    if spec.data.validation:
        needed.add("validation")
    if spec.data.test:
        needed.add("test")
    if spec.method.deepspeed is not None:
        needed.add("deepspeed")
    return tuple(name for name in INPUT_NAMES if name in needed)


def entrypoint_outputs(spec: FineTuneSpec) -> tuple[str, ...]:
    """The outputs a built job declares: the adapter always; merged and MLflow models when registering."""
    names = ["adapter"]
    if spec.register is not None:
        if spec.method.uses_adapter:
            names.append("merged_model")
        names.append("mlflow_model")
    return tuple(names)


def target_modules(spec: FineTuneSpec) -> str:
    """--target-modules: the spec's list, 'all-linear', or for 'auto' the catalog's modules of the model."""
    wanted = spec.method.effective_lora.target_modules
    if isinstance(wanted, list):
        return ",".join(wanted)
    if wanted == "all-linear":
        return "all-linear"
    info = find_model(spec.model)
    if info is not None and info.lora_target_modules:
        return ",".join(info.lora_target_modules)
    # A model the catalog does not know: peft's own choice of every linear layer but the head.
    return "all-linear"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _check_names(
    kind: str, given: Mapping[str, str], required: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    unknown = sorted(set(given) - set(allowed))
    missing = [name for name in required if name not in given]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"not expected {', '.join(unknown)}")
        raise BuildError(
            f"entry point {kind}: {'; '.join(parts)}",
            hint=f"this spec's run takes {kind} {', '.join(allowed)} (see entrypoint_{kind}(spec))",
        )
    for name, value in given.items():
        if not str(value).strip():
            raise BuildError(f"entry point {kind}: {name} is empty")


def entrypoint_args(
    spec: FineTuneSpec, *, inputs: Mapping[str, str], outputs: Mapping[str, str]
) -> list[str]:
    """The flags of `python -m finetune` for a spec (CONTRACTS.md), without the `python -m finetune` itself.

    `inputs` maps entrypoint_inputs(spec) to what the flag gets: `${{inputs.train}}` in an Azure ML job, a
    path in a local run. `outputs` maps "adapter" (required) and optionally "merged_model"/"mlflow_model"."""
    required_inputs = entrypoint_inputs(spec)
    _check_names("inputs", inputs, required_inputs, required_inputs)
    allowed_outputs = (
        ("adapter", "merged_model", "mlflow_model")
        if spec.method.uses_adapter
        else ("adapter", "mlflow_model")
    )
    _check_names("outputs", outputs, ("adapter",), allowed_outputs)

    method, training = spec.method, spec.training
    args = ["--task", spec.task.value, "--model", inputs["model"], "--train-file", inputs["train"]]
    for name in ("validation", "test"):
        if name in inputs:
            args += [_INPUT_FLAGS[name], inputs[name]]
    args += ["--technique", method.technique.value]
    if method.uses_adapter:
        lora = method.effective_lora
        args += [
            "--lora-r", str(lora.r),
            "--lora-alpha", str(lora.alpha),
            "--lora-dropout", _number(lora.dropout),
            "--target-modules", target_modules(spec),
        ]  # fmt: skip
    quantization = method.effective_quantization
    if method.technique.value == "qlora" and quantization is not None:
        args += [
            "--quant-bits", str(quantization.bits),
            "--quant-type", quantization.type,
            "--double-quant", _bool(quantization.double_quant),
        ]  # fmt: skip
    if "deepspeed" in inputs:
        args += ["--deepspeed", inputs["deepspeed"]]
    args += [
        "--epochs", _number(training.epochs),
        "--max-steps", str(training.max_steps),
        "--learning-rate", _number(training.learning_rate),
        "--lr-scheduler", training.lr_scheduler.value,
        "--warmup-ratio", _number(training.warmup_ratio),
        "--per-device-batch-size", str(training.per_device_batch_size),
        "--gradient-accumulation-steps", str(training.gradient_accumulation_steps),
        "--max-seq-length", str(training.max_seq_length),
        "--precision", training.precision.value,
        "--gradient-checkpointing", _bool(training.gradient_checkpointing),
        "--packing", _bool(training.packing),
        "--seed", str(training.seed),
        "--optimizer", method.optimizer.value,
    ]  # fmt: skip
    if spec.task.value == "chat-completion":
        args += ["--mask-prompt", _bool(training.mask_prompt)]
    for key, column in (spec.data.columns.as_dict() if spec.data.columns else {}).items():
        args += ["--column", f"{key}={column}"]
    # References only: the job resolves them from Key Vault with its managed identity.
    for name in sorted(spec.secrets):
        args += ["--secret", f"{name}={spec.secrets[name]}"]
    args += ["--logging-steps", str(training.logging_steps)]
    for name in OUTPUT_NAMES:
        if name in outputs:
            args += [_OUTPUT_FLAGS[name], outputs[name]]
    return args


def our_code_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """Rules of the kinds that run this project's job code in Azure ML (command, pipeline): the environment."""
    from azfinetune.targets._environment import environment_issues

    yield from environment_issues(spec)


def command_line(args: list[str], *, module: str = ENTRYPOINT_MODULE) -> str:
    """`python -m finetune ...` as one shell line; `${{inputs.x}}` placeholders stay unquoted for Azure ML."""
    words = ["python", "-m", module, *args]
    return " ".join(word if _PLACEHOLDER.match(word) else shlex.quote(word) for word in words)
