"""Command-line flags of the entry point (the set the azfinetune job builder writes) and their checks."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azft_contract import ContractError, flags, tasks

from finetune.errors import UsageError

# The tables live in azft_contract (shared with azfinetune's job builder); these names stay for the modules
# that import them from here.
CAUSAL_TASKS = tasks.CAUSAL_TASKS
CLASSIFICATION_TASKS = tasks.CLASSIFICATION_TASKS
REGISTRY_ONLY_TASKS = tasks.REGISTRY_ONLY_TASKS
TASKS = tasks.TASKS
TECHNIQUES = flags.TECHNIQUES
PEFT_TECHNIQUES = ("lora", "qlora", "dora")
COLUMN_KEYS = tasks.COLUMN_KEYS
OPTIMIZERS = flags.OPTIMIZERS
LR_SCHEDULERS = flags.LR_SCHEDULERS
BEST_MODEL_METRICS = tasks.BEST_MODEL_METRICS
PREFERENCE_OBJECTIVES = tasks.PREFERENCE_OBJECTIVES
#: What --metric-for-best-model may name under a preference objective (the trainer's own eval loss).
PREFERENCE_BEST_MODEL_METRICS = ("loss",)
#: --beta's default per objective (TRL's DPOConfig and ORPOConfig defaults).
DEFAULT_BETA = 0.1
#: Tokens per example for --max-seq-length auto when neither the model's config nor its tokenizer says.
FALLBACK_MAX_SEQ_LENGTH = 2048
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
    objective: str
    beta: float
    loss_type: str
    reference: str
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
    max_seq_length: int | None  # None: auto, the model's own maximum (resolve_max_seq_length)
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
    metric_for_best_model: str | None
    save_total_limit: int | None
    save_steps: int | None
    checkpoint_dir: Path | None
    resume_from: Path | None
    output_dir: Path
    merged_output_dir: Path | None
    mlflow_model_dir: Path | None

    @property
    def is_peft(self) -> bool:
        return self.technique in PEFT_TECHNIQUES

    @property
    def is_preference(self) -> bool:
        """dpo or orpo: the data are prompt/chosen/rejected pairs."""
        return self.objective in PREFERENCE_OBJECTIVES

    @property
    def data_kind(self) -> str:
        """What the data files hold, as the contract's reader names it (the task, or "preference")."""
        return tasks.data_kind(self.task, self.objective)


def build_parser() -> argparse.ArgumentParser:
    """The entry point's parser, made from azft_contract's flag table."""
    parser = argparse.ArgumentParser(
        prog="python -m finetune",
        description="Fine-tune a language model with transformers + peft + trl (azfinetune's job code).",
    )
    flags.add_flags(parser)
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
    _check_objective(ns)
    try:
        columns = flags.parse_columns(ns.column, tasks.data_kind(ns.task, ns.objective))
    except ContractError as error:
        raise UsageError(str(error)) from error
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
    if ns.metric_for_best_model is not None:
        known = (
            PREFERENCE_BEST_MODEL_METRICS
            if ns.objective in PREFERENCE_OBJECTIVES
            else BEST_MODEL_METRICS.get(ns.task, ("loss",))
        )
        if ns.metric_for_best_model not in known:
            raise UsageError(
                f"--metric-for-best-model {ns.metric_for_best_model}: {ns.task} computes {', '.join(known)}"
            )
        if ns.validation_file is None:
            raise UsageError("--metric-for-best-model needs --validation-file (the metric is computed on it)")
    _check_checkpointing(ns)
    if ns.technique == "qlora" and ns.task not in CAUSAL_TASKS + CLASSIFICATION_TASKS:
        raise UsageError(f"--technique qlora does not apply to task {ns.task}")
    return Args(
        task=ns.task,
        model=ns.model,
        train_file=ns.train_file,
        validation_file=ns.validation_file,
        test_file=ns.test_file,
        technique=ns.technique,
        objective=ns.objective,
        beta=DEFAULT_BETA if ns.beta is None else ns.beta,
        loss_type=ns.loss_type or "sigmoid",
        reference=ns.reference or "auto",
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
        metric_for_best_model=ns.metric_for_best_model,
        save_total_limit=ns.save_total_limit,
        save_steps=ns.save_steps,
        checkpoint_dir=ns.checkpoint_dir,
        resume_from=ns.resume_from,
        output_dir=ns.output_dir,
        merged_output_dir=ns.merged_output_dir,
        mlflow_model_dir=ns.mlflow_model_dir,
    )


def _check_checkpointing(ns: argparse.Namespace) -> None:
    """--save-steps within the run and on the evaluation grid; --resume-from an existing folder."""
    if ns.save_steps is not None and ns.max_steps > 0 and ns.save_steps > ns.max_steps:
        raise UsageError(
            f"--save-steps {ns.save_steps} is more than --max-steps {ns.max_steps}: no checkpoint would be saved"
        )
    if (
        ns.save_steps is not None
        and ns.metric_for_best_model is not None
        and ns.eval_steps is not None
        and ns.save_steps % ns.eval_steps
    ):
        # The trainer keeps the best checkpoint only if every checkpoint has just been evaluated.
        raise UsageError(
            f"--metric-for-best-model with --save-steps {ns.save_steps} needs --eval-steps dividing it, got "
            f"{ns.eval_steps}"
        )
    if ns.resume_from is not None and not ns.resume_from.is_dir():
        raise UsageError(f"--resume-from {ns.resume_from}: no such folder")


def _check_objective(ns: argparse.Namespace) -> None:
    """--objective and its settings: a preference objective trains a causal LM on pairs; dpo's settings are its own."""
    if ns.objective not in PREFERENCE_OBJECTIVES:
        given = [
            flag
            for flag, value in (
                ("--beta", ns.beta),
                ("--loss-type", ns.loss_type),
                ("--reference", ns.reference),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{', '.join(given)}: only used by --objective dpo or orpo, not {ns.objective}")
        return
    if ns.task not in tasks.PREFERENCE_TASKS:
        raise UsageError(
            f"--objective {ns.objective} trains {' or '.join(tasks.PREFERENCE_TASKS)} on preference pairs, "
            f"not {ns.task}"
        )
    if ns.objective == "orpo":
        given = [
            flag
            for flag, value in (("--loss-type", ns.loss_type), ("--reference", ns.reference))
            if value is not None
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)}: dpo settings; orpo has no reference model and one loss of its own"
            )
    if ns.beta is not None and not 0 < ns.beta <= 100:
        raise UsageError(f"--beta {ns.beta}: expected a number in (0, 100]")
    if ns.packing:
        raise UsageError(
            f"--packing: {ns.objective} compares the two answers of each pair, which cannot be packed"
        )


def resolve_max_seq_length(args: Args, model_dir: Path | None, tokenizer: Any) -> int:
    """--max-seq-length auto: the model's own maximum, from its config.json (max_position_embeddings), else the
    tokenizer's model_max_length when it is a real limit; sets and returns args.max_seq_length."""
    if args.max_seq_length is not None:
        return args.max_seq_length
    limit: int | None = None
    config_file = model_dir / "config.json" if model_dir is not None else None
    if config_file is not None and config_file.is_file():
        import json

        config = json.loads(config_file.read_text(encoding="utf-8"))
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if isinstance(config.get(key), int) and config[key] > 0:
                limit = config[key]
                break
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if limit is None and isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10**7:
        limit = tokenizer_limit  # transformers writes ~1e30 when the tokenizer has no limit
    args.max_seq_length = limit or FALLBACK_MAX_SEQ_LENGTH
    return args.max_seq_length


def checkpoint_settings(args: Args, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments for --save-steps, --metric-for-best-model and --save-total-limit. Without any the
    trainer saves no intermediate checkpoint (the final model only). --save-steps N saves one every N steps;
    otherwise one per evaluation (every --eval-steps, else every epoch). The newest N (and the best) are kept,
    and with a metric the best one is loaded at the end (evaluated at every checkpoint)."""
    if args.metric_for_best_model is None and args.save_total_limit is None and args.save_steps is None:
        return {}
    every = "steps" if args.save_steps or args.eval_steps else "epoch"
    settings: dict[str, Any] = {
        "save_strategy": every,
        "save_steps": args.save_steps or args.eval_steps or 500,
        "save_total_limit": args.save_total_limit
        if args.save_total_limit and args.save_total_limit > 0
        else None,
    }
    if args.metric_for_best_model is not None and has_eval:
        settings.update(
            eval_strategy=every,
            eval_steps=args.eval_steps or args.save_steps,
            load_best_model_at_end=True,
            metric_for_best_model=args.metric_for_best_model,
        )
    return settings


def is_main_process() -> bool:
    """Rank 0 (or not distributed); checked from the environment so it works before torch is imported."""
    return os.environ.get("RANK", "0") == "0"
