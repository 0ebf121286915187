"""The flags of `python -m finetune` as a table: the entry point's parser is built from it, and the job
builder writes command lines with it (`command_args`), so a flag's name, type, default and choices are
written once. Booleans travel as the strings true/false; `--column` items are KEY=NAME.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azft_contract.errors import ContractError
from azft_contract.tasks import COLUMN_KEYS, COLUMNS, OBJECTIVES, TASKS, normalize_task

__all__ = [
    "DPO_LOSS_TYPES",
    "ENTRY_POINT_FLAGS",
    "ENTRY_POINT_MODULE",
    "FLAGS",
    "LR_SCHEDULERS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PRECISIONS",
    "REFERENCES",
    "TECHNIQUES",
    "Flag",
    "add_flags",
    "column_args",
    "command_args",
    "parse_bool",
    "parse_columns",
]

#: `python -m <this>` with cwd = jobs/src (the job's code folder).
ENTRY_POINT_MODULE = "finetune"
TECHNIQUES = ("lora", "qlora", "dora", "full")
PRECISIONS = ("bf16", "fp16", "fp32")
#: TRL DPOConfig.loss_type values that TRL 0.x and 1.x both implement (the finetune-gpu image pins trl).
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
)
#: DPO's reference policy: auto (the adapter-disabled base for PEFT, a frozen copy for full) or precomputed.
REFERENCES = ("auto", "precomputed")
OPTIMIZERS = (
    "adamw_torch",
    "adamw_torch_fused",
    "paged_adamw_8bit",
    "adamw_8bit",
    "paged_adamw_32bit",
    "sgd",
)
# transformers' SchedulerType values.
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
KINDS = ("text", "int", "positive_int", "float", "bool", "path", "seq_length", "checkpoint_limit")


@dataclass(frozen=True)
class Flag:
    """One flag: `kind` is text | int | positive_int | float | bool | path | seq_length (a positive integer or
    "auto") | checkpoint_limit (-1 or a positive integer); `input`/`output` name the job
    input or output it carries (the builder's names: model, train, ..., adapter, merged_model, ...)."""

    name: str
    kind: str
    help: str
    default: Any = None
    choices: tuple[Any, ...] = ()
    required: bool = False
    repeatable: bool = False
    metavar: str | None = None
    input: str | None = None
    output: str | None = None

    @property
    def dest(self) -> str:
        """The key of this flag in command_args' values and in the parsed namespace: --lora-r -> lora_r."""
        return self.name.removeprefix("--").replace("-", "_")

    def value_text(self, value: Any) -> str:
        """One value as the command line writes it; ValueError when it is not a valid value."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name}: expected a boolean, got {value!r}")
            return "true" if value else "false"
        if self.kind == "seq_length" and value == "auto":
            return "auto"
        if self.kind == "checkpoint_limit" and value == -1:
            return "-1"
        if self.kind in ("int", "positive_int", "seq_length", "checkpoint_limit"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name}: expected an integer, got {value!r}")
            if self.kind != "int" and value <= 0:
                raise ValueError(f"{self.name}: expected a positive integer, got {value}")
            text = str(value)
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.name}: expected a number, got {value!r}")
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
        else:
            text = str(value)
            if not text.strip():
                raise ValueError(f"{self.name}: empty value")
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        return text

    def render(self, value: Any) -> list[str]:
        """[name, value] (repeated for each item of a repeatable flag; mappings become KEY=VALUE items)."""
        if not self.repeatable:
            return [self.name, self.value_text(value)]
        items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, Mapping) else list(value)
        out: list[str] = []
        for item in items:
            out += [self.name, self.value_text(item)]
        return out


ENTRY_POINT_FLAGS: tuple[Flag, ...] = (
    Flag("--task", "text", "what the data is for", choices=TASKS, required=True),
    Flag(
        "--model",
        "text",
        "HF folder, Azure ML MLflow model folder, or HF id (hf:org/name)",
        required=True,
        input="model",
    ),
    Flag(
        "--train-file",
        "path",
        "training data (or a folder holding one data file)",
        required=True,
        input="train",
    ),
    Flag("--validation-file", "path", "evaluated every --eval-steps and at the end", input="validation"),
    Flag("--test-file", "path", "evaluated once after training", input="test"),
    Flag(
        "--technique",
        "text",
        "lora, dora, qlora (4-bit base, CUDA) or full",
        default="lora",
        choices=TECHNIQUES,
    ),
    Flag(
        "--objective",
        "text",
        "sft, or a preference objective on prompt/chosen/rejected pairs: dpo, orpo",
        default="sft",
        choices=OBJECTIVES,
    ),
    Flag("--beta", "float", "dpo: deviation from the reference; orpo: weight of the odds-ratio term"),
    Flag("--loss-type", "text", "dpo: TRL's DPO loss", choices=DPO_LOSS_TYPES),
    Flag("--reference", "text", "dpo: the reference policy (auto or precomputed)", choices=REFERENCES),
    Flag("--lora-r", "positive_int", "LoRA rank", default=16),
    Flag("--lora-alpha", "positive_int", "LoRA alpha", default=32),
    Flag("--lora-dropout", "float", "LoRA dropout in [0, 1)", default=0.05),
    Flag("--target-modules", "text", '"a,b,c" or all-linear', default="all-linear"),
    Flag("--quant-bits", "int", "qlora: 4-bit or 8-bit base", default=4, choices=(4, 8)),
    Flag("--quant-type", "text", "qlora: 4-bit data type", default="nf4", choices=("nf4", "fp4")),
    Flag("--double-quant", "bool", "qlora: double quantization", default=True),
    Flag("--deepspeed", "path", "DeepSpeed config JSON (ZeRO 1/2/3, offload)", input="deepspeed"),
    Flag("--epochs", "float", "epochs (ignored when --max-steps > 0)", default=1.0),
    Flag("--max-steps", "int", "optimizer steps; <= 0 means use --epochs", default=-1),
    Flag("--learning-rate", "float", "peak learning rate", default=2e-4),
    Flag("--lr-scheduler", "text", "transformers scheduler name", default="linear", choices=LR_SCHEDULERS),
    Flag("--warmup-ratio", "float", "warmup as a fraction of the total steps, in [0, 1)", default=0.0),
    Flag("--per-device-batch-size", "positive_int", "micro-batch per GPU", default=4),
    Flag("--gradient-accumulation-steps", "positive_int", "micro-batches per optimizer step", default=1),
    Flag(
        "--max-seq-length",
        "seq_length",
        "tokens per example (truncated) or per packed block; auto: the model's own maximum",
        default=1024,
    ),
    Flag("--precision", "text", "mixed precision (CPU: fp32)", default="bf16", choices=PRECISIONS),
    Flag("--gradient-checkpointing", "bool", "activation checkpointing", default=False),
    Flag("--packing", "bool", "pack examples into --max-seq-length blocks", default=False),
    Flag("--seed", "int", "seed for weights init, data order and dropout", default=42),
    Flag("--optimizer", "text", "optimizer", default="adamw_torch", choices=OPTIMIZERS),
    Flag("--mask-prompt", "bool", "train on assistant (completion) tokens only", default=True),
    Flag(
        "--column",
        "text",
        "map a data column: KEY=NAME (repeatable; KEY=NAME,KEY=NAME also works)",
        repeatable=True,
        metavar="KEY=NAME",
    ),
    Flag(
        "--secret",
        "text",
        "read a Key Vault secret into env var NAME at start-up (repeatable)",
        repeatable=True,
        metavar="NAME=keyvault://VAULT/SECRET",
    ),
    Flag("--logging-steps", "positive_int", "steps between progress lines and MLflow metrics", default=10),
    Flag("--eval-steps", "positive_int", "steps between evaluations of --validation-file"),
    # Checkpoint selection (the registry pipelines' inputs of the same names); finetune.args.checkpoint_settings.
    Flag("--metric-for-best-model", "text", "keep the checkpoint best on this validation metric (loss, ...)"),
    Flag("--save-total-limit", "checkpoint_limit", "save a checkpoint per evaluation; keep N (-1: all)"),
    # Checkpoints and resume (finetune.checkpoints): --checkpoint-dir is the job's read-write `checkpoints` output,
    # where a restarted (pre-empted) job finds its own checkpoints; --resume-from another job's.
    Flag("--save-steps", "positive_int", "save a resumable checkpoint every N optimizer steps"),
    Flag(
        "--checkpoint-dir",
        "path",
        "where checkpoints are written; a run resumes from the newest complete one there (default: --output-dir, "
        "no resume)",
        output="checkpoints",
    ),
    Flag(
        "--resume-from",
        "path",
        "resume from the newest complete checkpoint in this folder (another run's checkpoints, or one checkpoint)",
        input="resume_from",
    ),
    Flag(
        "--output-dir",
        "path",
        "adapter (or full model) + tokenizer + metrics.json",
        required=True,
        output="adapter",
    ),
    Flag("--merged-output-dir", "path", "the base model with the adapter merged in", output="merged_model"),
    Flag("--mlflow-model-dir", "path", "MLflow transformers model for registration", output="mlflow_model"),
)
#: dest -> Flag.
FLAGS: dict[str, Flag] = {flag.dest: flag for flag in ENTRY_POINT_FLAGS}


def parse_bool(value: str) -> bool:
    """true/false (also 1/0, yes/no), as the entry point reads boolean flags."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _seq_length(value: str) -> int | None:
    if value.strip().lower() == "auto":
        return None  # auto: the entry point reads the model's own maximum (resolve_max_seq_length)
    return _positive_int(value)


def _checkpoint_limit(value: str) -> int:
    number = int(value)
    if number == 0 or number < -1:
        raise argparse.ArgumentTypeError(f"expected -1 (keep all) or a positive integer, got {value}")
    return number


_PARSERS: dict[str, Any] = {
    "text": str,
    "int": int,
    "positive_int": _positive_int,
    "float": float,
    "bool": parse_bool,
    "path": Path,
    "seq_length": _seq_length,
    "checkpoint_limit": _checkpoint_limit,
}


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[Flag] = ENTRY_POINT_FLAGS) -> None:
    """Add the flags of the table to an argparse parser (repeatable flags collect lists)."""
    for flag in flags:
        kwargs: dict[str, Any] = {"help": flag.help, "type": _PARSERS[flag.kind]}
        if flag.repeatable:
            kwargs.update(action="append", default=[])
        else:
            kwargs.update(default=flag.default)
        if flag.choices:
            kwargs["choices"] = flag.choices
        if flag.required:
            kwargs["required"] = True
        if flag.metavar:
            kwargs["metavar"] = flag.metavar
        parser.add_argument(flag.name, **kwargs)


def command_args(values: Mapping[str, Any]) -> list[str]:
    """The entry point's arguments for `values` (dest -> value; None or absent = leave the flag out), in
    the table's order. ValueError for an unknown key, a missing required flag or an invalid value."""
    unknown = sorted(set(values) - set(FLAGS))
    if unknown:
        raise ValueError(f"not flags of the entry point: {', '.join(unknown)}")
    args: list[str] = []
    for flag in ENTRY_POINT_FLAGS:
        value = values.get(flag.dest)
        if value is None or (flag.repeatable and not value):
            if flag.required:
                raise ValueError(f"{flag.name} is required")
            continue
        args += flag.render(value)
    return args


def column_args(columns: Mapping[str, str]) -> list[str]:
    """["--column", "KEY=NAME", ...] for each item: how detect_columns' answer reaches the job."""
    return FLAGS["column"].render(dict(columns))


def _split_items(text: str, keys: Iterable[str]) -> list[str]:
    # A comma separates items only where a known KEY= follows, so a name may itself hold commas.
    pattern = "|".join(re.escape(key) for key in sorted(keys, key=len, reverse=True))
    return [part for part in re.split(rf",\s*(?=(?:{pattern})\s*=)", text) if part.strip()]


def parse_columns(items: Iterable[str], task: str | None = None) -> dict[str, str]:
    """`--column` values -> {key: name}. Each value is KEY=NAME or several, comma-separated
    (`text=review,label=stars`); KEY must be a column of `task` (of any task when None)."""
    keys = tuple(COLUMNS[normalize_task(task)]) if task is not None else COLUMN_KEYS
    columns: dict[str, str] = {}
    for item in items:
        for part in _split_items(item, keys):
            key, sep, name = part.partition("=")
            key = key.strip()
            if not sep or not name.strip() or key not in keys:
                where = f" for {task}" if task is not None else ""
                raise ContractError(
                    f"--column {part.strip()!r}: expected KEY=NAME with KEY one of {', '.join(keys)}{where}"
                )
            columns[key] = name.strip()
    return columns
