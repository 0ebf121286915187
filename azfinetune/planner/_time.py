"""Training tokens, FLOPs, wall time and cost: the time side of the plan, each formula with its source."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from azfinetune.catalog import resolve_max_seq_length
from azfinetune.planner._assumptions import DEFAULT_ASSUMPTIONS, PlannerAssumptions
from azfinetune.planner._memory import TrainingSetup, trainable_parameters
from azfinetune.planner._shape import ModelShape

if TYPE_CHECKING:
    from datetime import date

    from azfinetune.spec import FineTuneSpec

__all__ = [
    "SkuLike",
    "TokenEstimate",
    "peak_tflops",
    "training_flops",
    "training_hours",
    "training_tokens",
]


class SkuLike(Protocol):
    """What the planner reads from a VM size: the catalog's SkuInfo, or any object with these attributes."""

    @property
    def name(self) -> str: ...
    @property
    def gpu(self) -> str | None: ...
    @property
    def gpus(self) -> int: ...
    @property
    def gpu_memory_gib(self) -> float: ...
    @property
    def ram_gib(self) -> float: ...
    @property
    def compute_capability(self) -> float: ...
    @property
    def peak_bf16_tflops(self) -> float | None: ...
    @property
    def peak_fp16_tflops(self) -> float | None: ...
    @property
    def price_per_hour_usd(self) -> float | None: ...
    @property
    def price_date(self) -> date | None: ...


@dataclass(frozen=True)
class TokenEstimate:
    """How many tokens training processes, and where that number came from."""

    tokens: int | None
    tokens_per_epoch: int | None
    examples: int | None
    mean_tokens: float | None  # per example, after truncation to max_seq_length
    max_tokens: int | None
    steps: int | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "tokens_per_epoch": self.tokens_per_epoch,
            "examples": self.examples,
            "mean_tokens": self.mean_tokens,
            "max_tokens": self.max_tokens,
            "steps": self.steps,
            "source": self.source,
        }


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _report_numbers(report: Any) -> dict[str, float | None] | None:
    """Token counts from a data report, duck-typed: report.stats.tokens.<field> or report.stats.<field>,
    attributes or mapping keys; a {role: report} mapping uses its "train" entry."""
    if isinstance(report, Mapping) and "train" in report and "stats" not in report:
        report = report["train"]
    stats = _get(report, "stats")
    if stats is None:
        return None
    tokens = _get(stats, "tokens")
    fields = ("training_tokens_estimate", "tokens_per_epoch", "counted", "mean", "max", "epochs")
    found: dict[str, Any] = {}
    for key in fields:
        value = _get(tokens, key)
        found[key] = value if value is not None else _get(stats, key)
    numbers = {k: _number(v) for k, v in found.items()}
    if not numbers.get("training_tokens_estimate") and not numbers.get("tokens_per_epoch"):
        return None
    numbers["examples"] = numbers.get("counted") or _number(_get(stats, "valid_examples"))
    return numbers


def _method(report: Any) -> str | None:
    if isinstance(report, Mapping) and "train" in report and "stats" not in report:
        report = report["train"]
    stats = _get(report, "stats")
    method = _get(_get(stats, "tokens"), "method") or _get(stats, "method")
    return method if isinstance(method, str) else None


def training_tokens(
    spec: FineTuneSpec,
    setup: TrainingSetup,
    data_report: Any = None,
    assumptions: PlannerAssumptions = DEFAULT_ASSUMPTIONS,
) -> TokenEstimate:
    """Tokens the run trains on.

    From a data report: tokens_per_epoch (each example capped at max_seq_length) × training.epochs, or
    its training_tokens_estimate. Without one, from the training file's size: bytes / bytes_per_token
    per epoch (PlannerAssumptions.bytes_per_token = 4, OpenAI's "1 token ≈ 4 characters"); a file that
    is not local (azureml:, https:) gives no estimate.

    training.max_steps > 0 replaces epochs (transformers' Trainer stops after max_steps, cycling the data
    if needed): tokens = max_steps × per_device_batch × gradient_accumulation × GPUs × tokens per example
    (max_seq_length when packing or when the mean is unknown).

    Padding is not counted: without packing a batch is padded to its longest example, so the GPU
    computes somewhat more than this.
    """
    training = spec.training
    seq_limit = resolve_max_seq_length(training.max_seq_length, spec.model)
    global_batch = training.per_device_batch_size * training.gradient_accumulation_steps * setup.world_size
    # dpo/orpo: an example is a pair, two sequences (a data report counts both sides; a step takes pairs).
    sides = setup.sequences_per_example
    numbers = _report_numbers(data_report) if data_report is not None else None
    examples: int | None = None
    mean: float | None = None
    longest: int | None = None
    per_epoch: int | None = None
    tokens: int | None = None
    if numbers is not None:
        method = _method(data_report)
        source = f"data report ({method})" if method else "data report"
        per_epoch_value = numbers.get("tokens_per_epoch")
        estimate = numbers.get("training_tokens_estimate")
        if per_epoch_value:
            per_epoch = int(per_epoch_value)
            tokens = round(per_epoch * training.epochs)
        elif estimate:
            # The estimate already counts the epochs the report was made for; rescale to this spec's.
            report_epochs = numbers.get("epochs") or training.epochs
            per_epoch = round(estimate / report_epochs)
            tokens = round(estimate * training.epochs / report_epochs)
        counted = numbers.get("examples")
        examples = int(counted) if counted else None
        if examples and per_epoch:
            mean = per_epoch / examples
        max_value = numbers.get("max")
        longest = int(max_value) if max_value else None
    else:
        size = _train_file_size(spec)
        if size is None:
            source = "unknown: the training file is not local and no data report was given"
        else:
            per_epoch = int(size / assumptions.bytes_per_token)
            tokens = round(per_epoch * training.epochs)
            source = f"file size: {size:,} bytes / {assumptions.bytes_per_token:g} bytes per token"
    if training.packing:
        mean = float(seq_limit)
    elif mean is not None:
        mean = min(mean, float(seq_limit))
    steps: int | None = None
    if training.max_steps > 0:
        per_example = mean if mean is not None else float(seq_limit)
        tokens = int(training.max_steps * global_batch * sides * per_example)
        steps = training.max_steps
        what = f"{global_batch} pairs × 2 sequences" if sides == 2 else f"{global_batch} sequences"
        source += f"; max_steps {training.max_steps} × {what} × {per_example:.0f} tokens"
    elif per_epoch is not None:
        sequences = per_epoch / seq_limit if training.packing else examples
        if sequences:
            steps = max(1, math.ceil(sequences / sides * training.epochs / global_batch))
    return TokenEstimate(
        tokens=tokens,
        tokens_per_epoch=per_epoch,
        examples=examples,
        mean_tokens=round(mean, 1) if mean is not None else None,
        max_tokens=longest,
        steps=steps,
        source=source,
    )


def _train_file_size(spec: FineTuneSpec) -> int | None:
    ref = spec.data.train
    if spec.data.is_remote(ref):
        return None
    path: Path = spec.resolve_path(ref)
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def training_flops(
    shape: ModelShape, setup: TrainingSetup, tokens: int, context: float | None = None
) -> float:
    """FLOPs to train on `tokens` tokens.

    Per token, forward: F = 2·N_mm + 2·L·s·d (Kaplan et al. 2020, "Scaling Laws", Table 1: C_forward ≈
    2N + 2·n_layer·n_ctx·d_attn), N_mm = ModelShape.matmul_parameters (decoder linears + LM head; the
    embedding lookup costs no FLOPs), s = the attended context (mean example length, or max_seq_length
    when packing), d = heads·head_dim.

    * full fine-tuning: 3F (backward ≈ 2× forward: gradients of activations and of weights) — the 6·N·D
      of Kaplan et al.;
    * frozen-base adapters (LoRA/QLoRA/DoRA): forward 2·N_mm; backward only the activation gradients of
      the frozen weights, 2·N_mm (no weight gradients); attention 3× its forward either way; plus the
      adapters' own 6·N_t — i.e. (4·N_mm + 6·N_t)·D + 6·L·s·d·D;
    * gradient checkpointing recomputes the forward once more: + F (and + 2·N_t for adapters);
    * dpo: the reference policy's forward (no gradients) on the same tokens, + F per step, or + F / epochs when
      its log-probabilities are precomputed (TrainingSetup.reference_passes); orpo has no reference. The tokens
      of a preference pair are both sequences, chosen and rejected (training_tokens counts them).
    """
    s = context if context is not None else float(setup.seq_len)
    attention = 2 * shape.num_layers * s * shape.num_heads * shape.attention_head_dim
    matmul = 2 * shape.matmul_parameters
    if setup.technique == "full":
        per_token = 3 * (matmul + attention)
        if setup.gradient_checkpointing:
            per_token += matmul + attention
    else:
        n_t = trainable_parameters(shape, setup.technique, setup.lora_r, setup.target_modules or "auto")
        per_token = 2 * matmul + 3 * attention + 6 * n_t
        if setup.gradient_checkpointing:
            per_token += matmul + attention + 2 * n_t
    per_token += setup.reference_passes * (matmul + attention)
    return per_token * tokens


def peak_tflops(sku: SkuLike, precision: str) -> float | None:
    """Dense tensor-core peak of one GPU for the training precision, from the catalog's datasheet numbers.

    bf16 → peak_bf16_tflops (fp16 peak when the GPU has no bf16); fp16 → peak_fp16_tflops; fp32 → TF32,
    half the 16-bit peak on compute capability ≥ 8.0 (A100: 156 vs 312; H100 SXM: 495 vs 989), and one
    eighth on V100/T4, which have no TF32 (V100: 15.7 vs 125; T4: 8.1 vs 65) — NVIDIA datasheets.
    """
    half = sku.peak_fp16_tflops
    if precision == "bf16":
        return sku.peak_bf16_tflops or half
    if precision == "fp16":
        return half or sku.peak_bf16_tflops
    sixteen = sku.peak_bf16_tflops or half
    if sixteen is None:
        return None
    return sixteen / 2 if sku.compute_capability >= 8.0 else sixteen / 8


def training_hours(flops: float, gpus: int, tflops: float, mfu: float) -> float:
    """Wall time in hours = FLOPs / (GPUs × peak FLOP/s × MFU) / 3600 (no start-up, evaluation or saving)."""
    return flops / (gpus * tflops * 1e12 * mfu) / 3600
