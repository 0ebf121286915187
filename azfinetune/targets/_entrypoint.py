"""The training entry point's command line for a spec: one function for the command job, pipeline and local runs."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azft_contract import (
    ENTRY_POINT_FLAGS,
    ENTRY_POINT_MODULE,
    ENTRY_POINT_TASKS,
    ContractError,
    command_args,
    detect_columns,
)

from azfinetune.catalog import find_model
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, Task
from azfinetune.targets._environment import environment_issues
from azfinetune.targets._provenance import AZFINETUNE_DEFAULT, SPEC, ValueSource
from azfinetune.targets._rules import is_user_set

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "ENTRYPOINT_MODULE",
    "ENTRYPOINT_TASKS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "command_line",
    "data_columns",
    "entrypoint_args",
    "entrypoint_inputs",
    "entrypoint_outputs",
    "entrypoint_seq_length",
    "entrypoint_value_sources",
    "our_code_rules",
    "target_modules",
]

#: `python -m <this>` with cwd (the job's code) = jobs/src.
ENTRYPOINT_MODULE = ENTRY_POINT_MODULE
#: The tasks the entry point trains (its --task choices that are not refused); the registry pipelines train the rest.
ENTRYPOINT_TASKS: frozenset[Task] = frozenset(Task(task) for task in ENTRY_POINT_TASKS)

#: Names of the entry point's inputs and outputs (the job's input/output names), from the contract's flag table.
INPUT_NAMES = tuple(flag.input for flag in ENTRY_POINT_FLAGS if flag.input)
OUTPUT_NAMES = tuple(flag.output for flag in ENTRY_POINT_FLAGS if flag.output)
_INPUT_DEST = {flag.input: flag.dest for flag in ENTRY_POINT_FLAGS if flag.input}
_OUTPUT_DEST = {flag.output: flag.dest for flag in ENTRY_POINT_FLAGS if flag.output}
_PLACEHOLDER = re.compile(r"^\$\{\{(inputs|outputs)\.[A-Za-z_][A-Za-z0-9_]*\}\}$")


def entrypoint_inputs(spec: FineTuneSpec) -> tuple[str, ...]:
    """The inputs a spec's run needs, in INPUT_NAMES order (validation/test/deepspeed/resume_from only when set)."""
    needed = {"model", "train"}
    if spec.training.resume_from is not None:
        needed.add("resume_from")
    if spec.data.validation:
        needed.add("validation")
    if spec.data.test:
        needed.add("test")
    if spec.method.deepspeed is not None:
        needed.add("deepspeed")
    return tuple(name for name in INPUT_NAMES if name in needed)


def entrypoint_outputs(spec: FineTuneSpec) -> tuple[str, ...]:
    """The outputs a built job declares: the adapter always; merged and MLflow models when registering; the
    checkpoints when the run saves any."""
    names = ["adapter"]
    if spec.register is not None:
        if spec.method.uses_adapter:
            names.append("merged_model")
        names.append("mlflow_model")
    if spec.training.saves_checkpoints:
        names.append("checkpoints")
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


def entrypoint_seq_length(spec: FineTuneSpec) -> int | str:
    """--max-seq-length: the spec's number (azfinetune's default capped at the model's maximum); for auto the
    catalog model's maximum, else "auto" (the job reads the model's own maximum from its config)."""
    value = spec.training.max_seq_length
    info = find_model(spec.model)
    if value == "auto":
        return info.max_seq_length if info is not None else "auto"
    if (
        info is not None
        and value > info.max_seq_length
        and "max_seq_length" not in spec.training.model_fields_set
    ):
        return info.max_seq_length  # azfinetune's default, capped at the model's maximum (e.g. BERT's 512)
    return value


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
    """The flags of `python -m finetune` for a spec (the contract's flag table), without `python -m finetune`.

    `inputs` maps entrypoint_inputs(spec) to what the flag gets: `${{inputs.train}}` in an Azure ML job, a
    path in a local run (which may add "resume_from": a folder of an earlier run's checkpoints). `outputs` maps
    "adapter" (required) and optionally "merged_model"/"mlflow_model"/"checkpoints"."""
    required_inputs = entrypoint_inputs(spec)
    _check_names("inputs", inputs, required_inputs, tuple(dict.fromkeys((*required_inputs, "resume_from"))))
    allowed_outputs = (
        ("adapter", "merged_model", "mlflow_model", "checkpoints")
        if spec.method.uses_adapter
        else ("adapter", "mlflow_model", "checkpoints")
    )
    _check_names("outputs", outputs, ("adapter",), allowed_outputs)

    method, training = spec.method, spec.training
    values: dict[str, Any] = {_INPUT_DEST[name]: value for name, value in inputs.items()}
    values.update({_OUTPUT_DEST[name]: value for name, value in outputs.items()})
    values.update(task=spec.task.value, technique=method.technique.value)
    preference = method.effective_preference
    if preference is not None:  # sft sends no objective flags: its command lines are those of before
        values.update(objective=method.objective.value, beta=preference.beta)
        if method.objective.value == "dpo":
            values.update(loss_type=preference.loss_type, reference=preference.reference)
    if method.uses_adapter:
        lora = method.effective_lora
        values.update(
            lora_r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=target_modules(spec),
        )
    quantization = method.effective_quantization
    if method.technique.value == "qlora" and quantization is not None:
        values.update(
            quant_bits=quantization.bits, quant_type=quantization.type, double_quant=quantization.double_quant
        )
    values.update(
        epochs=training.epochs,
        max_steps=training.max_steps,
        learning_rate=training.learning_rate,
        lr_scheduler=training.lr_scheduler.value,
        warmup_ratio=training.warmup_ratio,
        per_device_batch_size=training.per_device_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_seq_length=entrypoint_seq_length(spec),
        precision=training.precision.value,
        gradient_checkpointing=training.gradient_checkpointing,
        packing=training.packing,
        seed=training.seed,
        optimizer=method.optimizer.value,
        # What the data validator decided (the columns it found in the training file) reaches the job.
        column=data_columns(spec),
        # References only: the job resolves them from Key Vault with its managed identity.
        secret=[f"{name}={spec.secrets[name]}" for name in sorted(spec.secrets)],
        logging_steps=training.logging_steps,
        metric_for_best_model=training.metric_for_best_model,
        save_total_limit=training.save_total_limit,
        save_steps=training.save_steps,
    )
    if spec.task.value == "chat-completion" and preference is None:
        values["mask_prompt"] = training.mask_prompt
    try:
        return command_args(values)
    except ValueError as error:  # the spec's rules refuse every bad value first: this is our fault
        raise BuildError(f"entry point flags: {error}") from None


def data_columns(spec: FineTuneSpec) -> dict[str, str]:
    """The data columns every step of the job reads: data.columns, plus what the contract's reader finds in a
    local training file (the header or first example) — the names `data validate` used, written into the
    command line so the job never guesses differently. A remote file: data.columns only (the job's reader,
    the same code, decides there)."""
    given = spec.data.columns.as_dict() if spec.data.columns else {}
    reference = spec.data.train
    if spec.data.is_remote(reference):
        return given
    try:
        return detect_columns(spec.resolve_path(reference), spec.data_kind, given or None)
    except (ContractError, OSError):
        return given  # validate reports the unreadable file with its line; the job's reader would too


def our_code_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """Rules of the kinds that run this project's job code in Azure ML (command, pipeline): the environment, and
    step checkpoints for low-priority VMs."""
    from azfinetune.targets._checkpoints import checkpoint_rules

    yield from environment_issues(spec)
    yield from checkpoint_rules(spec)
    yield from code_folder_issues()


def code_folder_issues() -> Iterator[Issue]:
    """The job's code folder (jobs/src) is uploaded with the job, .amlignore/.gitignore honoured as azure-ai-ml
    honours them: credential files in it (.env, keys, netrc, connection strings) are refused before they go."""
    from azfinetune.secrets import credential_files, uploaded_files
    from azfinetune.targets._paths import job_code_dir

    try:
        folder = job_code_dir()
    except BuildError as error:
        yield Issue("environment", error.message, hint=error.hint)
        return
    skipped = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    files = uploaded_files(folder, always_ignored=lambda relative: bool(skipped & set(relative.parts)))
    # The Python sources are the job's code (reviewed as code); every other file is read for keys and strings.
    found = credential_files([path for path in files if path.suffix != ".py"], folder)
    if found:
        yield Issue(
            "environment",
            f"the job code folder {folder} holds credential files that would be uploaded with the job: "
            f"{', '.join(found[:5])}",
            hint=f"remove them, or list them in {folder / '.amlignore'}",
        )


def command_line(args: list[str], *, module: str = ENTRYPOINT_MODULE) -> str:
    """`python -m finetune ...` as one shell line; `${{inputs.x}}` placeholders stay unquoted for Azure ML."""
    words = ["python", "-m", module, *args]
    return " ".join(word if _PLACEHOLDER.match(word) else shlex.quote(word) for word in words)


_ENTRYPOINT_SETTINGS: tuple[tuple[str, str], ...] = (
    ("--technique", "method.technique"),
    ("--epochs", "training.epochs"),
    ("--max-steps", "training.max_steps"),
    ("--learning-rate", "training.learning_rate"),
    ("--lr-scheduler", "training.lr_scheduler"),
    ("--warmup-ratio", "training.warmup_ratio"),
    ("--per-device-batch-size", "training.per_device_batch_size"),
    ("--gradient-accumulation-steps", "training.gradient_accumulation_steps"),
    ("--max-seq-length", "training.max_seq_length"),
    ("--precision", "training.precision"),
    ("--gradient-checkpointing", "training.gradient_checkpointing"),
    ("--packing", "training.packing"),
    ("--seed", "training.seed"),
    ("--optimizer", "method.optimizer"),
    ("--logging-steps", "training.logging_steps"),
)


def spec_value(spec: FineTuneSpec, dotted: str) -> Any:
    node: Any = spec
    for part in dotted.split("."):
        node = getattr(node, part)
    return getattr(node, "value", node)  # enums as their text


def entrypoint_value_sources(spec: FineTuneSpec) -> list[ValueSource]:
    """The entry point's flags for a spec with their values and sources (the spec, or azfinetune's default)."""

    def source(key: str) -> str:
        return SPEC if is_user_set(spec, key) else AZFINETUNE_DEFAULT

    found: list[ValueSource] = []
    for flag, key in _ENTRYPOINT_SETTINGS:
        value: Any = spec_value(spec, key)
        note = None
        if key == "training.max_seq_length":
            sent = entrypoint_seq_length(spec)
            if value == "auto":
                note = "auto: the model's own maximum" + (" (read by the job)" if sent == "auto" else "")
            elif sent != value:
                note = f"azfinetune's default {value}, capped at the model's maximum"
            value = sent
        found.append(ValueSource(flag, value, source(key), True, key, note))
    if spec.method.uses_adapter:
        lora = spec.method.effective_lora
        for flag, name in (("--lora-r", "r"), ("--lora-alpha", "alpha"), ("--lora-dropout", "dropout")):
            key = f"method.lora.{name}"
            found.append(ValueSource(flag, getattr(lora, name), source(key), True, key))
        modules = target_modules(spec)
        key = "method.lora.target_modules"
        note = None if is_user_set(spec, key) else "auto: the catalog's modules of the model"
        found.append(ValueSource("--target-modules", modules, source(key), True, key, note))
    preference = spec.method.effective_preference
    if preference is not None:
        key = "method.objective"
        found.append(ValueSource("--objective", spec.method.objective.value, SPEC, True, key))
        settings = [("--beta", "beta")]
        if spec.method.objective.value == "dpo":
            settings += [("--loss-type", "loss_type"), ("--reference", "reference")]
        for flag, name in settings:
            key = f"method.preference.{name}"
            found.append(ValueSource(flag, getattr(preference, name), source(key), True, key))
    if spec.task.value == "chat-completion" and preference is None:
        key = "training.mask_prompt"
        found.append(ValueSource("--mask-prompt", spec.training.mask_prompt, source(key), True, key))
    for flag, key, unset in (
        ("--metric-for-best-model", "training.metric_for_best_model", "not sent: no checkpoints kept"),
        ("--save-total-limit", "training.save_total_limit", "not sent: no checkpoints kept"),
        ("--save-steps", "training.save_steps", "not sent: no step checkpoints"),
    ):
        value = spec_value(spec, key)
        if value is None:
            found.append(ValueSource(flag, None, AZFINETUNE_DEFAULT, False, key, unset))
        else:
            found.append(ValueSource(flag, value, SPEC, True, key))
    return found
