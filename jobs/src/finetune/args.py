"""Command-line flags of the entry point (the set the azfinetune job builder writes) and their checks."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import UsageError

CAUSAL_TASKS = ("chat-completion", "text-completion")
CLASSIFICATION_TASKS = ("text-classification", "token-classification")
REGISTRY_ONLY_TASKS = ("question-answering", "summarization", "translation")
TASKS = CAUSAL_TASKS + CLASSIFICATION_TASKS + REGISTRY_ONLY_TASKS
TECHNIQUES = ("lora", "qlora", "dora", "full")
PEFT_TECHNIQUES = ("lora", "qlora", "dora")
COLUMN_KEYS = (
    "messages",
    "text",
    "text_pair",
    "label",
    "tokens",
    "tags",
    "prompt",
    "completion",
    "context",
    "question",
    "answers",
    "source",
    "target",
    "source_lang",
    "target_lang",
)
OPTIMIZERS = (
    "adamw_torch",
    "adamw_torch_fused",
    "paged_adamw_8bit",
    "adamw_8bit",
    "paged_adamw_32bit",
    "sgd",
)
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
_SECRET_RE = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=keyvault://(?P<vault>[A-Za-z0-9.-]+)/(?P<secret>[A-Za-z0-9-]+)$"
)


@dataclass(frozen=True)
class SecretRef:
    """`NAME=keyvault://<vault>/<secret>`: the environment variable NAME gets the secret's value."""

    name: str
    vault: str
    secret: str

    @property
    def vault_url(self) -> str:
        # A bare vault name is a public-cloud vault; a dotted name is the full host (sovereign clouds).
        host = self.vault if "." in self.vault else f"{self.vault}.vault.azure.net"
        return f"https://{host}"


@dataclass
class Args:
    """The parsed and checked command line."""

    task: str
    model: str
    train_file: Path
    validation_file: Path | None
    test_file: Path | None
    technique: str
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: str
    quant_bits: int
    quant_type: str
    double_quant: bool
    deepspeed: Path | None
    epochs: float
    max_steps: int
    learning_rate: float
    lr_scheduler: str
    warmup_ratio: float
    per_device_batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    precision: str
    gradient_checkpointing: bool
    packing: bool
    seed: int
    optimizer: str
    mask_prompt: bool
    columns: dict[str, str]
    secrets: list[SecretRef]
    logging_steps: int
    eval_steps: int | None
    output_dir: Path
    merged_output_dir: Path | None
    mlflow_model_dir: Path | None

    @property
    def is_peft(self) -> bool:
        return self.technique in PEFT_TECHNIQUES

    def column(self, key: str) -> str:
        """The data column that holds `key` (the key itself unless --column remaps it)."""
        return self.columns.get(key, key)


def _bool(value: str) -> bool:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finetune",
        description="Fine-tune a language model with transformers + peft + trl (azfinetune's job code).",
    )
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add("--model", required=True, help="HF folder, Azure ML MLflow model folder, or HF id (hf:org/name)")
    add("--train-file", required=True, type=Path)
    add("--validation-file", type=Path)
    add("--test-file", type=Path)
    add("--technique", default="lora", choices=TECHNIQUES)
    add("--lora-r", type=_positive_int, default=16)
    add("--lora-alpha", type=_positive_int, default=32)
    add("--lora-dropout", type=float, default=0.05)
    add("--target-modules", default="all-linear", help='"a,b,c" or all-linear')
    add("--quant-bits", type=int, choices=(4, 8), default=4)
    add("--quant-type", choices=("nf4", "fp4"), default="nf4")
    add("--double-quant", type=_bool, default=True)
    add("--deepspeed", type=Path, help="DeepSpeed config JSON")
    add("--epochs", type=float, default=1.0)
    add("--max-steps", type=int, default=-1, help="> 0 overrides --epochs")
    add("--learning-rate", type=float, default=2e-4)
    add("--lr-scheduler", default="linear", choices=LR_SCHEDULERS)
    add("--warmup-ratio", type=float, default=0.0)
    add("--per-device-batch-size", type=_positive_int, default=4)
    add("--gradient-accumulation-steps", type=_positive_int, default=1)
    add("--max-seq-length", type=_positive_int, default=1024)
    add("--precision", choices=("bf16", "fp16", "fp32"), default="bf16")
    add("--gradient-checkpointing", type=_bool, default=False)
    add("--packing", type=_bool, default=False)
    add("--seed", type=int, default=42)
    add("--optimizer", choices=OPTIMIZERS, default="adamw_torch")
    add("--mask-prompt", type=_bool, default=True)
    add("--column", action="append", default=[], metavar="KEY=NAME")
    add("--secret", action="append", default=[], metavar="NAME=keyvault://VAULT/SECRET")
    add("--logging-steps", type=_positive_int, default=10)
    add("--eval-steps", type=_positive_int)
    add("--output-dir", required=True, type=Path)
    add("--merged-output-dir", type=Path)
    add("--mlflow-model-dir", type=Path)
    return parser


def _check_file(flag: str, path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise UsageError(f"{flag} {path}: no such file")
    if path.is_dir() and not any(p.is_file() for p in path.iterdir()):
        raise UsageError(f"{flag} {path}: the folder holds no data file")


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse and check the flags; argparse exits 2 on syntax errors, UsageError (also 2) on bad values."""
    ns = build_parser().parse_args(argv)
    if ns.task in REGISTRY_ONLY_TASKS:
        raise UsageError(
            f"task {ns.task!r} is not supported by this entry point — use target.kind: registry-pipeline "
            "(the Azure ML registry's fine-tuning pipeline component trains it)"
        )
    columns: dict[str, str] = {}
    for item in ns.column:
        key, sep, name = item.partition("=")
        if not sep or not name or key not in COLUMN_KEYS:
            raise UsageError(f"--column {item!r}: expected KEY=NAME with KEY one of {', '.join(COLUMN_KEYS)}")
        columns[key] = name
    secrets: list[SecretRef] = []
    for item in ns.secret:
        match = _SECRET_RE.match(item)
        if match is None:
            raise UsageError(
                f"--secret {item.split('=', 1)[0]}=...: expected NAME=keyvault://<vault>/<secret>"
            )
        secrets.append(SecretRef(match["name"], match["vault"], match["secret"]))
    _check_file("--train-file", ns.train_file)
    _check_file("--validation-file", ns.validation_file)
    _check_file("--test-file", ns.test_file)
    if ns.deepspeed is not None and not ns.deepspeed.is_file():
        raise UsageError(f"--deepspeed {ns.deepspeed}: no such file")
    if not 0.0 <= ns.lora_dropout < 1.0:
        raise UsageError(f"--lora-dropout {ns.lora_dropout}: expected a value in [0, 1)")
    if not 0.0 <= ns.warmup_ratio < 1.0:
        raise UsageError(f"--warmup-ratio {ns.warmup_ratio}: expected a value in [0, 1)")
    if ns.learning_rate <= 0:
        raise UsageError(f"--learning-rate {ns.learning_rate}: expected a positive number")
    if ns.max_steps <= 0 and ns.epochs <= 0:
        raise UsageError("--epochs must be positive unless --max-steps is given")
    if not ns.target_modules.strip():
        raise UsageError('--target-modules: expected "a,b,c" or all-linear')
    if ns.merged_output_dir is not None and ns.merged_output_dir.resolve() == ns.output_dir.resolve():
        raise UsageError("--merged-output-dir must differ from --output-dir")
    if ns.technique == "qlora" and ns.task not in CAUSAL_TASKS + CLASSIFICATION_TASKS:
        raise UsageError(f"--technique qlora does not apply to task {ns.task}")
    return Args(
        task=ns.task,
        model=ns.model,
        train_file=ns.train_file,
        validation_file=ns.validation_file,
        test_file=ns.test_file,
        technique=ns.technique,
        lora_r=ns.lora_r,
        lora_alpha=ns.lora_alpha,
        lora_dropout=ns.lora_dropout,
        target_modules=ns.target_modules.strip(),
        quant_bits=ns.quant_bits,
        quant_type=ns.quant_type,
        double_quant=ns.double_quant,
        deepspeed=ns.deepspeed,
        epochs=ns.epochs,
        max_steps=ns.max_steps if ns.max_steps > 0 else -1,
        learning_rate=ns.learning_rate,
        lr_scheduler=ns.lr_scheduler,
        warmup_ratio=ns.warmup_ratio,
        per_device_batch_size=ns.per_device_batch_size,
        gradient_accumulation_steps=ns.gradient_accumulation_steps,
        max_seq_length=ns.max_seq_length,
        precision=ns.precision,
        gradient_checkpointing=ns.gradient_checkpointing,
        packing=ns.packing,
        seed=ns.seed,
        optimizer=ns.optimizer,
        mask_prompt=ns.mask_prompt,
        columns=columns,
        secrets=secrets,
        logging_steps=ns.logging_steps,
        eval_steps=ns.eval_steps,
        output_dir=ns.output_dir,
        merged_output_dir=ns.merged_output_dir,
        mlflow_model_dir=ns.mlflow_model_dir,
    )


def is_main_process() -> bool:
    """Rank 0 (or not distributed); checked from the environment so it works before torch is imported."""
    return os.environ.get("RANK", "0") == "0"
