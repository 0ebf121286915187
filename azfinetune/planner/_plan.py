"""plan(): memory per GPU, fit, time, cost, the alternatives and what to change — for one spec, before paying."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

from azfinetune.catalog import (
    find_kaito_preset,
    find_model,
    get_sku,
    kaito_catalog,
    list_skus,
    resolve_max_seq_length,
)
from azfinetune.errors import CatalogError, PlanError
from azfinetune.planner._assumptions import DEFAULT_ASSUMPTIONS, GIB, PlannerAssumptions
from azfinetune.planner._memory import (
    MemoryEstimate,
    MemoryItem,
    Technique,
    TrainingSetup,
    estimate_memory,
    resolve_target_modules,
)
from azfinetune.planner._shape import ModelShape, resolve_model_shape
from azfinetune.planner._time import (
    SkuLike,
    TokenEstimate,
    peak_tflops,
    training_flops,
    training_hours,
    training_tokens,
)
from azfinetune.spec import FineTuneSpec, load_spec, spec_from_dict

__all__ = ["Alternative", "PeakMemory", "Plan", "plan", "predicted_peak_memory", "setup_from_spec"]

#: What each technique and ZeRO setting buys — the seed's table, which the alternatives put numbers on.
PURPOSE: dict[str, str] = {
    "lora": "few trainable parameters",
    "qlora": "4-bit base: least memory",
    "dora": "LoRA + magnitude",
    "full": "all weights train",
    "ZeRO-2": "shards grads + optimizer",
    "ZeRO-3": "shards weights too",
    "offload": "states in CPU RAM",
}
_TECHNIQUES = ("lora", "qlora", "dora", "full")
# (stage, offload_optimizer, offload_params) tried for the alternatives.
Zero = tuple[int, bool, bool]
_ZERO_OPTIONS: tuple[Zero, ...] = (
    (0, False, False),
    (2, False, False),
    (2, True, False),
    (3, False, False),
    (3, True, True),
)
_NODE_COUNTS = (1, 2, 4)


@dataclass(frozen=True)
class Alternative:
    """One row of the comparison table: a technique × ZeRO × SKU configuration and its numbers."""

    technique: str
    zero: str
    zero_stage: int
    offload_optimizer: bool
    offload_params: bool
    sku: str | None
    gpu: str | None
    nodes: int
    gpus_per_node: int
    trainable_parameters: int
    per_gpu_bytes: int
    capacity: int | None
    fits: bool | None
    margin: float | None
    hours: float | None
    cost_usd: float | None
    price_per_hour_usd: float | None
    cpu_ram_needed: int = 0
    cpu_ram_capacity: int | None = None
    role: str = ""  # "spec" | "on this SKU" | "memory only" | "cheapest fit"
    purpose: str = ""

    def comfortable(self, min_margin: float) -> bool:
        """Fits with at least `min_margin` of the GPU memory and of the host RAM free."""
        if not self.fits or self.margin is None or self.margin < min_margin:
            return False
        return self.cpu_ram_capacity is None or self.cpu_ram_needed <= self.cpu_ram_capacity * (
            1 - min_margin
        )

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def free_bytes(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.per_gpu_bytes

    def where(self) -> str:
        """'8× A100 80GB SXM4 (Standard_ND96amsr_A100_v4)' or '2 nodes × 8× ...'."""
        if self.sku is None:
            return "this machine" if self.gpu is None else str(self.gpu)
        nodes = f"{self.nodes} nodes × " if self.nodes > 1 else ""
        return f"{nodes}{self.gpus_per_node}× {_short_gpu(self.gpu)} ({self.sku})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "technique": self.technique,
            "zero": self.zero,
            "zero_stage": self.zero_stage,
            "offload_optimizer": self.offload_optimizer,
            "offload_params": self.offload_params,
            "sku": self.sku,
            "gpu": self.gpu,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "trainable_parameters": self.trainable_parameters,
            "per_gpu_bytes": self.per_gpu_bytes,
            "capacity": self.capacity,
            "fits": self.fits,
            "margin": _round(self.margin, 4),
            "hours": _round(self.hours, 4),
            "cost_usd": _round(self.cost_usd, 2),
            "price_per_hour_usd": self.price_per_hour_usd,
            "cpu_ram_needed": self.cpu_ram_needed,
            "cpu_ram_capacity": self.cpu_ram_capacity,
            "role": self.role,
            "purpose": self.purpose,
        }


@dataclass(frozen=True)
class PeakMemory:
    """The predicted peak of one training process on one GPU, in the three ways a GPU check can measure it.

    allocated: compare with torch.cuda.max_memory_allocated() (every item except CUDA context and
        fragmentation headroom);
    reserved: allocated + the fragmentation headroom — compare with torch.cuda.max_memory_reserved();
    device: reserved + the CUDA context — compare with the memory nvidia-smi shows the process using.
    """

    allocated: int
    reserved: int
    device: int
    items: tuple[MemoryItem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocated": self.allocated,
            "reserved": self.reserved,
            "device": self.device,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass
class Plan:
    """What a spec needs and costs: itemised memory per GPU, fit, time, cost, alternatives, advice.

    `fits` is None when there is no GPU to compare with (local runs, serverless, no instance type);
    `margin` is the share of the GPU left free ((capacity − total) / capacity).
    """

    spec_name: str
    model: str
    technique: str
    zero: str
    target_kind: str
    billing: str
    sku: str | None
    gpu: str | None
    nodes: int
    gpus_per_node: int
    setup: TrainingSetup
    parameters: int
    trainable_parameters: int
    items: list[MemoryItem]
    total: int
    allocated: int
    capacity: int | None
    fits: bool | None
    margin: float | None
    cpu_items: list[MemoryItem]
    cpu_ram_needed: int
    cpu_ram_capacity: int | None
    cpu_fits: bool | None
    token_estimate: TokenEstimate
    flops: float | None
    mfu: float | None
    peak_tflops: float | None
    hours: float | None
    gpu_hours: float | None
    vm_hours: float | None
    price_per_hour_usd: float | None
    cost_usd: float | None
    price_date: date | None
    cost_note: str
    alternatives: list[Alternative] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    assumptions: PlannerAssumptions = DEFAULT_ASSUMPTIONS
    local_ram: int | None = None
    disk: str | None = None  # the node disk the platform asks for (Kaito's preset), a Kubernetes quantity
    disk_note: str | None = None

    @property
    def tokens(self) -> int | None:
        return self.token_estimate.tokens

    @property
    def free_bytes(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.total

    @property
    def verdict(self) -> str:
        """'fits' | 'tight' (fits, less than min_margin free) | 'does not fit' | 'unknown'."""
        if self.fits is None:
            return "unknown"
        if not self.fits:
            return "does not fit"
        if self.margin is not None and self.margin < self.assumptions.min_margin:
            return "tight"
        return "fits"

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers in bytes, FLOPs, hours and USD; dates as ISO strings."""
        setup = self.setup
        return {
            "spec": self.spec_name,
            "model": self.model,
            "technique": self.technique,
            "zero": self.zero,
            "target_kind": self.target_kind,
            "billing": self.billing,
            "sku": self.sku,
            "gpu": self.gpu,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "setup": {
                "micro_batch": setup.micro_batch,
                "seq_len": setup.seq_len,
                "precision": setup.precision,
                "gradient_checkpointing": setup.gradient_checkpointing,
                "optimizer": setup.optimizer,
                "lora_r": setup.lora_r if setup.uses_adapter else None,
                "target_modules": list(setup.target_modules),
                **(
                    {"objective": setup.objective, "sequences_per_example": setup.sequences_per_example}
                    if setup.objective != "sft"
                    else {}
                ),
            },
            "parameters": self.parameters,
            "trainable_parameters": self.trainable_parameters,
            "items": [i.to_dict() for i in self.items],
            "total": self.total,
            "allocated": self.allocated,
            "capacity": self.capacity,
            "fits": self.fits,
            "verdict": self.verdict,
            "margin": _round(self.margin, 4),
            "free_bytes": self.free_bytes,
            "cpu_items": [i.to_dict() for i in self.cpu_items],
            "cpu_ram_needed": self.cpu_ram_needed,
            "cpu_ram_capacity": self.cpu_ram_capacity,
            "cpu_fits": self.cpu_fits,
            "local_ram": self.local_ram,
            "tokens": self.tokens,
            "token_estimate": self.token_estimate.to_dict(),
            "flops": self.flops,
            "mfu": self.mfu,
            "peak_tflops": self.peak_tflops,
            "hours": _round(self.hours, 4),
            "gpu_hours": _round(self.gpu_hours, 4),
            "vm_hours": _round(self.vm_hours, 4),
            "price_per_hour_usd": self.price_per_hour_usd,
            "cost_usd": _round(self.cost_usd, 2),
            "price_date": self.price_date.isoformat() if self.price_date else None,
            "cost_note": self.cost_note,
            "alternatives": [a.to_dict() for a in self.alternatives],
            "recommendations": list(self.recommendations),
            "warnings": list(self.warnings),
            "assumptions": self.assumptions.to_dict(),
            "disk": self.disk,
            "disk_note": self.disk_note,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _short_gpu(gpu: str | None) -> str:
    return (gpu or "GPU").removeprefix("NVIDIA ").strip()


def _gib(value: float) -> str:
    """GiB with one decimal; below 0.1 GiB in MiB, so a tiny model never reads "0.0 GiB"."""
    if 0 < value < GIB / 10:
        return f"{value / 2**20:.1f} MiB"
    return f"{value / GIB:.1f} GiB"


# -- spec -> setup ---------------------------------------------------------------------------------


def _spec_from(spec: FineTuneSpec | str | Path | Mapping[str, Any]) -> FineTuneSpec:
    if isinstance(spec, FineTuneSpec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_dict(dict(spec))
    return load_spec(spec)


def _labels(data_report: Any) -> int | None:
    report = data_report
    if isinstance(report, Mapping) and "train" in report and "stats" not in report:
        report = report["train"]
    stats = report.get("stats") if isinstance(report, Mapping) else getattr(report, "stats", None)
    labels = stats.get("labels") if isinstance(stats, Mapping) else getattr(stats, "labels", None)
    distinct = labels.get("distinct") if isinstance(labels, Mapping) else getattr(labels, "distinct", None)
    return int(distinct) if isinstance(distinct, int) and distinct > 1 else None


def setup_from_spec(
    spec: FineTuneSpec,
    shape: ModelShape,
    *,
    gpus_per_node: int = 1,
    nodes: int = 1,
    tokens: TokenEstimate | None = None,
    num_labels: int | None = None,
) -> TrainingSetup:
    """The TrainingSetup a spec describes (targets resolved against the shape).

    The micro-batch's sequence length is max_seq_length, or the data's longest example when it is
    shorter and packing is off (a batch is padded to its longest example, never beyond it).
    """
    method, training = spec.method, spec.training
    lora = method.effective_lora
    quant = method.effective_quantization
    ds = method.deepspeed
    technique = method.technique.value
    seq = resolve_max_seq_length(training.max_seq_length, spec.model)
    if tokens is not None and tokens.max_tokens and not training.packing:
        seq = max(1, min(seq, tokens.max_tokens))
    targets = resolve_target_modules(shape, lora.target_modules) if technique != "full" else ()
    objective = method.objective.value
    preference = method.effective_preference
    reference = preference.reference if preference is not None and objective == "dpo" else "auto"
    passes = 0.0
    if objective == "dpo":
        # Every step runs the reference forward on the same pairs; precomputed runs it once, before training.
        passes = 1.0 if reference == "auto" else 1.0 / max(training.epochs, 1.0)
    return TrainingSetup(
        technique=cast(Technique, technique),  # the spec's enum holds exactly these values
        lora_r=lora.r,
        lora_dropout=lora.dropout,
        target_modules=targets,
        quant_bits=quant.bits if quant else 4,
        double_quant=quant.double_quant if quant else True,
        zero_stage=ds.stage if ds else 0,
        offload_optimizer=bool(ds and ds.offload_optimizer),
        offload_params=bool(ds and ds.offload_params),
        optimizer=method.optimizer.value,
        micro_batch=training.per_device_batch_size,
        seq_len=seq,
        precision=training.precision.value,
        gradient_checkpointing=training.gradient_checkpointing,
        task=spec.task.value,
        num_labels=num_labels or 2,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        objective=objective,
        reference=reference,
        reference_passes=passes,
    )


def _resolve_sku(spec: FineTuneSpec, sku: SkuLike | str | None) -> SkuLike | None:
    if sku is not None and not isinstance(sku, str):
        return sku
    # finetuning-job may list several sizes; the service picks one, so plan for the first.
    name = sku or spec.target.resources().instance_type
    if not name:
        return None
    try:
        return get_sku(name)
    except CatalogError as error:
        raise PlanError(error.message, hint=error.hint) from None


def _machine_ram() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


# -- the plan ----------------------------------------------------------------------------------------


def plan(
    spec: FineTuneSpec | str | Path | Mapping[str, Any],
    *,
    data_report: Any = None,
    model_shape: ModelShape | None = None,
    sku: SkuLike | str | None = None,
    assumptions: PlannerAssumptions | None = None,
) -> Plan:
    """Plan a spec: memory per GPU (itemised), fit, training time, cost, alternatives and advice.

    Pure and fast: no torch, no azure.ai.ml, no network. `data_report` (a DataReport or anything with
    `.stats.tokens.training_tokens_estimate`, or a {role: report} mapping) gives the token counts; without
    one the training file's size is used. `model_shape` describes a model the catalog does not know (any
    decoder given by its numbers); `sku` overrides target.instance_type (a catalog name, or any object
    with SkuInfo's fields — e.g. a GPU the catalog lacks).
    """
    assume = assumptions or DEFAULT_ASSUMPTIONS
    spec = _spec_from(spec)
    if spec.target.kind == "foundry":
        # Foundry picks the hardware and bills trained tokens: there is no memory or VM to plan.
        raise PlanError(
            "a foundry job runs on the service's GPUs and is billed per trained token",
            hint="azfinetune.planner.token_plan(spec) gives its cost (what `azfinetune plan` prints for it)",
        )
    shape = model_shape or resolve_model_shape(spec)
    kind = spec.target.kind
    resources = spec.target.resources()
    vm = _resolve_sku(spec, sku)
    if vm is not None and vm.gpus == 0:
        raise PlanError(
            f"{vm.name} has no GPU", hint="pick a GPU VM size (azfinetune plan --instance-type ...)"
        )
    nodes = resources.nodes
    gpn = resources.gpus_per_node or (vm.gpus if vm is not None else 1)
    warnings: list[str] = []

    probe = setup_from_spec(spec, shape, gpus_per_node=gpn, nodes=nodes)
    tokens = training_tokens(spec, probe, data_report, assume)
    setup = setup_from_spec(
        spec, shape, gpus_per_node=gpn, nodes=nodes, tokens=tokens, num_labels=_labels(data_report)
    )
    memory = estimate_memory(shape, setup, assume)
    total, allocated = memory.total, memory.allocated
    capacity = int(vm.gpu_memory_gib * GIB) if vm is not None else None
    cpu_capacity = int(vm.ram_gib * GIB) if vm is not None else None
    cpu_needed = memory.cpu_total
    cpu_fits = None if cpu_capacity is None else cpu_needed <= cpu_capacity
    gpu_fits = None if capacity is None else total <= capacity
    fits = None if gpu_fits is None else bool(gpu_fits and cpu_fits is not False)
    margin = None if capacity is None else (capacity - total) / capacity
    local_ram = _machine_ram() if resources.on_this_machine else None

    # -- time and cost --
    flops = hours = gpu_hours = vm_hours = cost = mfu = tflops = None
    price = vm.price_per_hour_usd if vm is not None else None
    price_date = vm.price_date if vm is not None else None
    context = tokens.mean_tokens
    if tokens.tokens is not None:
        flops = training_flops(shape, setup, tokens.tokens, context)
    if vm is not None and flops is not None:
        tflops = peak_tflops(vm, setup.precision)
        mfu = assume.mfu_for(vm.gpu) * (assume.qlora_mfu_factor if setup.technique == "qlora" else 1.0)
        if tflops:
            hours = training_hours(flops, setup.world_size, tflops, mfu)
            gpu_hours = hours * setup.world_size
            vm_hours = hours * nodes
            cost = vm_hours * price if price is not None else None
    per_1k = _serverless_price(spec) if resources.billing == "serverless" else None
    if per_1k is not None and tokens.tokens is not None:
        cost = tokens.tokens / 1000 * per_1k  # the service bills trained tokens; only a catalog price counts
    cost_note = _cost_note(spec, vm, tokens, cost, price)

    model_name = shape.name
    result = Plan(
        spec_name=spec.name,
        model=model_name,
        technique=setup.technique,
        zero=setup.zero_label,
        target_kind=kind,
        billing=resources.billing,
        sku=vm.name if vm is not None else None,
        gpu=vm.gpu if vm is not None else None,
        nodes=nodes,
        gpus_per_node=gpn,
        setup=setup,
        parameters=memory.counts.total,
        trainable_parameters=memory.counts.trainable,
        items=list(memory.items),
        total=total,
        allocated=allocated,
        capacity=capacity,
        fits=fits,
        margin=margin,
        cpu_items=list(memory.cpu_items),
        cpu_ram_needed=cpu_needed,
        cpu_ram_capacity=cpu_capacity,
        cpu_fits=cpu_fits,
        token_estimate=tokens,
        flops=flops,
        mfu=mfu,
        peak_tflops=tflops,
        hours=hours,
        gpu_hours=gpu_hours,
        vm_hours=vm_hours,
        price_per_hour_usd=price,
        cost_usd=cost,
        price_date=price_date,
        cost_note=cost_note,
        warnings=warnings,
        assumptions=assume,
        local_ram=local_ram,
    )
    if kind == "kaito":
        result.disk, result.disk_note = _kaito_disk(spec)
    search = _Search(shape, setup, spec, tokens, flops, assume)
    result.alternatives = search.alternatives(result, vm)
    result.recommendations = search.recommendations(result, vm)
    result.warnings.extend(_warnings(spec, result, vm, shape, model_shape is not None))
    return result


def _kaito_disk(spec: FineTuneSpec) -> tuple[str | None, str | None]:
    """The node disk of the spec's Kaito preset (its DiskStorageRequirement)."""
    name = getattr(spec.target, "preset", None)
    catalog = kaito_catalog()
    preset = catalog.preset(name) if name else find_kaito_preset(spec.model)
    if preset is None:
        return None, None
    return preset.disk, (
        f"Kaito {catalog.release}'s preset {preset.name} asks for {preset.disk} of node disk (its weights, the data "
        "and the adapter)"
    )


def predicted_peak_memory(
    spec: FineTuneSpec | str | Path | Mapping[str, Any],
    *,
    model_shape: ModelShape | None = None,
    gpus_per_node: int | None = None,
    nodes: int | None = None,
    assumptions: PlannerAssumptions | None = None,
) -> PeakMemory:
    """The planner's predicted peak GPU memory of one training process for a spec, for a GPU check.

    A GPU check runs the spec's training (e.g. `python -m finetune ...` from the built job) and compares
    torch.cuda.max_memory_allocated() with `.allocated` (and max_memory_reserved() with `.reserved`);
    the ratio measured/predicted is the planner's accuracy (target: within ±20%). The spec is a
    FineTuneSpec, a spec file path or a spec dict; a local model folder is read from its config.json.
    Data token counts are not needed (the peak depends on micro-batch × max_seq_length, not on the data).
    """
    assume = assumptions or DEFAULT_ASSUMPTIONS
    spec = _spec_from(spec)
    shape = model_shape or resolve_model_shape(spec)
    setup = setup_from_spec(
        spec,
        shape,
        gpus_per_node=gpus_per_node or spec.target.resources().gpus_per_node or 1,
        nodes=nodes or spec.target.resources().nodes,
    )
    memory = estimate_memory(shape, setup, assume)
    headroom = sum(i.bytes for i in memory.items if i.name == "fragmentation headroom")
    return PeakMemory(
        allocated=memory.allocated,
        reserved=memory.allocated + headroom,
        device=memory.total,
        items=memory.items,
    )


def _serverless_price(spec: FineTuneSpec) -> float | None:
    """USD per 1K training tokens when the catalog records one (ServerlessInfo.price_per_1k_training_tokens_usd)."""
    info = find_model(spec.model)
    value = (
        getattr(info.serverless, "price_per_1k_training_tokens_usd", None)
        if info and info.serverless
        else None
    )
    return float(value) if isinstance(value, int | float) else None


def _cost_note(
    spec: FineTuneSpec, vm: SkuLike | None, tokens: TokenEstimate, cost: float | None, price: float | None
) -> str:
    resources = spec.target.resources()
    if resources.billing == "serverless":
        per_1k = _serverless_price(spec)
        if per_1k is not None and cost is not None:
            return f"serverless: {per_1k:g} USD per 1K training tokens (catalog)"
        return "serverless: priced by the service per training token (see the Azure AI Foundry pricing page)"
    if resources.billing == "none":
        return "local: no Azure cost"
    if vm is None:
        return "no VM size: set target.instance_type (or --instance-type) for time and cost"
    if price is None:
        return f"{vm.name}: no list price in the catalog; check the Azure pricing page"
    region = getattr(vm, "price_region", None)
    when = vm.price_date.isoformat() if vm.price_date else "undated"
    where = f"{region} " if region else ""
    note = f"{price:g} USD/h per VM, {where}pay-as-you-go list price of {when} (indicative)"
    if cost is None and tokens.tokens is None:
        note += "; no token count, so no total"
    if resources.priority == "low":
        note += "; low-priority VMs are billed below this dedicated price"
    return note


# -- alternatives and recommendations ----------------------------------------------------------------


class _Search:
    """Evaluates technique × ZeRO × SKU × nodes configurations for the alternatives and the advice.

    Ranking: the job's cost (VM-hours × price; with no token count, the cost of a nominal 1M tokens, so
    faster GPUs still count), then the simpler ZeRO setting (offload last: its slowdown is not
    modelled), then fewer GPUs. Multi-node configurations are tried on InfiniBand sizes only.
    """

    _NOMINAL_TOKENS = 1_000_000

    def __init__(
        self,
        shape: ModelShape,
        setup: TrainingSetup,
        spec: FineTuneSpec,
        tokens: TokenEstimate,
        flops: float | None,
        assumptions: PlannerAssumptions,
    ) -> None:
        self.shape = shape
        self.base = setup
        self.spec = spec
        self.tokens = tokens
        self.assume = assumptions
        self.memory_cache: dict[tuple[Any, ...], MemoryEstimate] = {}
        self.flops_cache: dict[tuple[str, bool], float | None] = {(setup.technique, False): flops}
        self._targets = setup.target_modules or resolve_target_modules(shape, "auto")
        self._skus: list[SkuLike] | None = None
        self.cheapest_cache: dict[str, Alternative | None] = {}
        self.ranks: dict[tuple[Any, ...], tuple[float, int, int]] = {}
        # Kaito tunes LoRA/QLoRA on one node with its own launcher: no DeepSpeed, no other techniques.
        self.kaito = spec.target.kind == "kaito"
        self.techniques: tuple[str, ...] = ("lora", "qlora") if self.kaito else _TECHNIQUES

    def setup_for(self, technique: str, zero: Zero, gpn: int, nodes: int) -> TrainingSetup:
        stage, off_opt, off_params = zero
        return self.base.replace(
            technique=technique,
            target_modules=() if technique == "full" else self._targets,
            zero_stage=stage,
            offload_optimizer=off_opt,
            offload_params=off_params,
            gpus_per_node=gpn,
            nodes=nodes,
        )

    def memory(self, setup: TrainingSetup) -> MemoryEstimate:
        key = (
            setup.technique,
            setup.zero_stage,
            setup.offload_optimizer,
            setup.offload_params,
            setup.gpus_per_node,
            setup.nodes,
            setup.micro_batch,
            setup.gradient_checkpointing,
        )
        found = self.memory_cache.get(key)
        if found is None:
            found = estimate_memory(self.shape, setup, self.assume)
            self.memory_cache[key] = found
        return found

    def memory_of(self, technique: str, zero: Zero, gpn: int, nodes: int) -> MemoryEstimate:
        """memory() of setup_for(...), without building the setup when the estimate is cached."""
        key = (technique, *zero, gpn, nodes, self.base.micro_batch, self.base.gradient_checkpointing)
        found = self.memory_cache.get(key)
        if found is None:
            found = self.memory(self.setup_for(technique, zero, gpn, nodes))
        return found

    def flops(self, technique: str, *, nominal: bool = False) -> float | None:
        """Training FLOPs of a technique for the run's tokens (nominal: for 1M tokens, to rank by)."""
        key = (technique, nominal)
        if key not in self.flops_cache:
            count = self._NOMINAL_TOKENS if nominal else self.tokens.tokens
            value = None
            if count is not None:
                setup = self.setup_for(technique, (0, False, False), 1, 1)
                value = training_flops(self.shape, setup, count, self.tokens.mean_tokens)
            self.flops_cache[key] = value
        return self.flops_cache[key]

    def skus(self) -> list[SkuLike]:
        if self._skus is None:
            today = date.today()
            bf16 = self.base.precision == "bf16"
            self._skus = [
                s
                for s in list_skus()
                if s.gpus > 0 and not s.is_retired(today) and (not bf16 or s.compute_capability >= 8.0)
            ]
        return self._skus

    def hours(self, technique: str, vm: SkuLike, gpus: int, *, nominal: bool = False) -> float | None:
        flops = self.flops(technique, nominal=nominal)
        tflops = peak_tflops(vm, self.base.precision)
        if flops is None or not tflops:
            return None
        mfu = self.assume.mfu_for(vm.gpu) * (self.assume.qlora_mfu_factor if technique == "qlora" else 1.0)
        return training_hours(flops, gpus, tflops, mfu)

    def rank(
        self, technique: str, zero: Zero, vm: SkuLike | None, gpn: int, nodes: int
    ) -> tuple[float, int, int]:
        key = (technique, zero, vm.name if vm is not None else None, gpn, nodes)
        found = self.ranks.get(key)
        if found is None:
            cost = math.inf
            if vm is not None and vm.price_per_hour_usd is not None:
                hours = self.hours(technique, vm, gpn * nodes, nominal=self.tokens.tokens is None)
                if hours is not None:
                    cost = hours * nodes * vm.price_per_hour_usd
            complexity = zero[0] + (3 if zero[1] else 0)
            found = (cost, complexity, gpn * nodes)
            self.ranks[key] = found
        return found

    def rank_of(self, alt: Alternative) -> tuple[float, int, int]:
        zero = (alt.zero_stage, alt.offload_optimizer, alt.offload_params)
        vm = next((s for s in self.skus() if s.name == alt.sku), None)
        return self.rank(alt.technique, zero, vm, alt.gpus_per_node, alt.nodes)

    def evaluate(
        self, technique: str, zero: Zero, vm: SkuLike | None, gpn: int, nodes: int, role: str = ""
    ) -> Alternative:
        memory = self.memory_of(technique, zero, gpn, nodes)
        total = memory.total
        capacity = int(vm.gpu_memory_gib * GIB) if vm is not None else None
        ram = int(vm.ram_gib * GIB) if vm is not None else None
        fits: bool | None = None
        margin: float | None = None
        if capacity is not None and ram is not None:
            fits = total <= capacity and memory.cpu_total <= ram
            margin = (capacity - total) / capacity
        hours = cost = None
        price = vm.price_per_hour_usd if vm is not None else None
        if vm is not None:
            hours = self.hours(technique, vm, gpn * nodes)
            cost = hours * nodes * price if hours is not None and price is not None else None
        purpose = PURPOSE[technique]
        if zero[0]:
            purpose += "; " + PURPOSE["offload" if zero[1] else "ZeRO-3" if zero[0] == 3 else "ZeRO-2"]
        return Alternative(
            technique=technique,
            zero=_zero_label(*zero),
            zero_stage=zero[0],
            offload_optimizer=zero[1],
            offload_params=zero[2],
            sku=vm.name if vm is not None else None,
            gpu=vm.gpu if vm is not None else None,
            nodes=nodes,
            gpus_per_node=gpn,
            trainable_parameters=memory.counts.trainable,
            per_gpu_bytes=total,
            capacity=capacity,
            fits=fits,
            margin=margin,
            hours=hours,
            cost_usd=cost,
            price_per_hour_usd=price,
            cpu_ram_needed=memory.cpu_total,
            cpu_ram_capacity=ram,
            role=role,
            purpose=purpose,
        )

    def zero_options(self, technique: str, world: int) -> list[Zero]:
        if self.kaito:
            return [(0, False, False)]
        options = []
        for stage, off_opt, off_params in _ZERO_OPTIONS:
            if world == 1 and stage and not off_opt:
                continue  # ZeRO without offload shards nothing on one GPU
            if technique == "qlora" and off_opt:
                continue  # bitsandbytes' 4-bit weights cannot be offloaded by DeepSpeed
            options.append((stage, off_opt, off_params))
        return options

    def cheapest(self, technique: str) -> Alternative | None:
        """The best-ranked configuration of a technique that fits with min_margin free (GPU and host RAM)."""
        if technique not in self.cheapest_cache:
            self.cheapest_cache[technique] = self._cheapest(technique)
        return self.cheapest_cache[technique]

    def _cheapest(self, technique: str) -> Alternative | None:
        # Rank every candidate first (no memory arithmetic needed), then take the first that fits.
        candidates: list[tuple[tuple[float, int, int], SkuLike, int, Zero]] = []
        for vm in self.skus():
            node_counts = _NODE_COUNTS if getattr(vm, "infiniband", False) and not self.kaito else (1,)
            for nodes in node_counts:
                for zero in self.zero_options(technique, vm.gpus * nodes):
                    candidates.append((self.rank(technique, zero, vm, vm.gpus, nodes), vm, nodes, zero))
        candidates.sort(key=lambda c: c[0])
        for _rank, vm, nodes, zero in candidates:
            alt = self.evaluate(technique, zero, vm, vm.gpus, nodes, "cheapest fit")
            if alt.comfortable(self.assume.min_margin):
                return alt
        return None

    def alternatives(self, result: Plan, vm: SkuLike | None) -> list[Alternative]:
        rows: list[Alternative] = []
        seen: set[tuple[Any, ...]] = set()

        def add(alt: Alternative) -> None:
            key = (alt.technique, alt.zero, alt.sku, alt.nodes, alt.gpus_per_node)
            if key not in seen:
                seen.add(key)
                rows.append(alt)

        own = (self.base.zero_stage, self.base.offload_optimizer, self.base.offload_params)
        add(self.evaluate(self.base.technique, own, vm, result.gpus_per_node, result.nodes, "spec"))
        gpn = vm.gpus if vm is not None else result.gpus_per_node
        nodes = result.nodes
        role = "on this SKU" if vm is not None else "memory only"
        for technique in self.techniques:
            # Without a VM size the rows only compare memory, so ZeRO settings (which need GPUs) are left out.
            zeros = self.zero_options(technique, gpn * nodes) if vm is not None else [(0, False, False)]
            for zero in zeros:
                add(self.evaluate(technique, zero, vm, gpn, nodes, role))
        for technique in self.techniques:
            best = self.cheapest(technique)
            if best is not None:
                add(best)
        return rows

    def recommendations(self, result: Plan, vm: SkuLike | None) -> list[str]:
        recs: list[str] = []
        need = self.assume.min_margin
        verdict = result.verdict
        if vm is None:
            if result.billing == "none" and result.local_ram is not None:
                recs.append(
                    f"local run: {_gib(result.total)} per GPU; on CPU it needs about "
                    f"{_gib(result.allocated)} of RAM (weights, gradients, optimizer states and activations), "
                    f"and this machine has {_gib(result.local_ram)}"
                )
            elif result.billing == "serverless":
                recs.append("serverless: the service picks the GPUs; memory is shown for reference only")
            else:
                recs.append("no VM size: set target.instance_type (or --instance-type) to check the fit")
        elif verdict == "fits":
            recs.append(
                f"fits: {_gib(result.total)} of {_gib(result.capacity or 0)} per GPU, "
                f"{_gib(result.free_bytes or 0)} free ({(result.margin or 0):.0%})"
            )
        else:
            if verdict == "tight":
                recs.append(
                    f"tight: fits with only {_gib(result.free_bytes or 0)} ({(result.margin or 0):.0%}) free per "
                    f"GPU; keep at least {need:.0%} free for allocator spikes"
                )
            else:
                if result.cpu_fits is False:
                    recs.append(
                        f"does not fit: needs {_gib(result.cpu_ram_needed)} of host RAM per node, "
                        f"{vm.name} has {_gib(result.cpu_ram_capacity or 0)}"
                    )
                short = result.total - (result.capacity or 0)
                if short > 0:
                    recs.append(
                        f"does not fit: needs {_gib(result.total)} per GPU, {vm.name} has "
                        f"{_gib(result.capacity or 0)} ({_gib(short)} short)"
                    )
            recs.extend(self._fixes(result, vm))
        recs.extend(self._cheapest_line(result, vm))
        return recs

    def _fits(self, setup: TrainingSetup, vm: SkuLike) -> tuple[bool, int]:
        memory = self.memory(setup)
        capacity = int(vm.gpu_memory_gib * GIB)
        keep = 1 - self.assume.min_margin
        ok = memory.total <= capacity * keep and memory.cpu_total <= vm.ram_gib * GIB * keep
        return ok, capacity - memory.total

    def _fixes(self, result: Plan, vm: SkuLike) -> list[str]:
        """What to change, smallest change first: settings, ZeRO on the same VM, technique, VM size."""
        fixes: list[str] = []
        base = self.base
        training = self.spec.training
        if not base.gradient_checkpointing:
            ok, free = self._fits(base.replace(gradient_checkpointing=True), vm)
            if ok:
                fixes.append(f"set training.gradient_checkpointing: true ({_gib(free)} free per GPU)")
        for batch in range(base.micro_batch - 1, 0, -1):
            ok, free = self._fits(base.replace(micro_batch=batch), vm)
            if ok:
                accumulation = math.ceil(training.gradient_accumulation_steps * base.micro_batch / batch)
                fixes.append(
                    f"set training.per_device_batch_size: {batch} and gradient_accumulation_steps: "
                    f"{accumulation} (same global batch; {_gib(free)} free per GPU)"
                )
                break
        world = vm.gpus * result.nodes
        own = (base.zero_stage, base.offload_optimizer, base.offload_params)
        for zero in self.zero_options(base.technique, world):
            if zero == own and result.gpus_per_node == vm.gpus:
                continue
            ok, free = self._fits(self.setup_for(base.technique, zero, vm.gpus, result.nodes), vm)
            if ok:
                how = f"{_zero_label(*zero)} on" if zero[0] else "use"
                fixes.append(
                    f"{how} all {world} GPU(s) of {vm.name} ({_gib(free)} free per GPU; method.deepspeed)"
                )
                break
        for technique in self.techniques:
            if technique == base.technique:
                continue
            for zero in self.zero_options(technique, world):
                ok, free = self._fits(self.setup_for(technique, zero, vm.gpus, result.nodes), vm)
                if ok:
                    alt = self.evaluate(technique, zero, vm, vm.gpus, result.nodes)
                    fixes.append(_fit_text(alt) + f" (method.technique: {technique})")
                    break
        best = self.cheapest(base.technique)
        if best is not None:
            fixes.append(_fit_text(best))
        else:
            fixes.append(
                f"{_technique_name(base.technique)} fits on no catalog GPU size with "
                f"{self.assume.min_margin:.0%} free"
            )
        return fixes

    def _cheapest_line(self, result: Plan, vm: SkuLike | None) -> list[str]:
        best: Alternative | None = None
        for technique in self.techniques:
            alt = self.cheapest(technique)
            if alt is not None and (best is None or self.rank_of(alt) < self.rank_of(best)):
                best = alt
        if best is None:
            return []
        own = (self.base.zero_stage, self.base.offload_optimizer, self.base.offload_params)
        if vm is not None and result.verdict == "fits":
            spec_rank = self.rank(self.base.technique, own, vm, result.gpus_per_node, result.nodes)
            if self.rank_of(best)[0] >= spec_rank[0] * 0.95:
                return []  # the spec is (nearly) the cheapest already
        where = "cheapest" if vm is not None else "on Azure ML compute, the cheapest"
        return [f"{where} with ≥{self.assume.min_margin:.0%} free: {_fit_text(best)}"]


def _zero_label(stage: int, offload_optimizer: bool, offload_params: bool) -> str:
    return TrainingSetup(
        zero_stage=stage, offload_optimizer=offload_optimizer, offload_params=offload_params
    ).zero_label


def _technique_name(technique: str) -> str:
    return {"lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA", "full": "full fine-tuning"}[technique]


def _fit_text(alt: Alternative) -> str:
    """'QLoRA fits on 1× A100 80GB PCIe (Standard_NC24ads_A100_v4) with 31.2 GiB free, about 4.10 USD (1.1 h)'
    or 'full fine-tuning needs ZeRO-3 on 8× A100 80GB SXM4 (...) with 12.0 GiB free per GPU, ...'."""
    name = _technique_name(alt.technique)
    free = _gib(alt.free_bytes or 0)
    if alt.zero_stage == 0 and alt.gpus == 1:
        text = f"{name} fits on {alt.where()} with {free} free"
    else:
        zero = f"{alt.zero} on " if alt.zero_stage else ""
        text = f"{name} needs {zero}{alt.where()}, {free} free per GPU"
    if alt.cost_usd is not None:
        text += f", about {_usd(alt.cost_usd)} ({_hours(alt.hours)})"
    elif alt.price_per_hour_usd is not None:
        text += f", {alt.price_per_hour_usd * alt.nodes:g} USD/h"
    return text


def _usd(value: float) -> str:
    return "< 0.01 USD" if value < 0.01 else f"{value:,.2f} USD"


def _hours(value: float | None) -> str:
    if value is None:
        return "? h"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:.1f} h"


def _warnings(
    spec: FineTuneSpec, result: Plan, vm: SkuLike | None, shape: ModelShape, given_shape: bool
) -> list[str]:
    out: list[str] = []
    setup = result.setup
    if setup.offload_optimizer or setup.offload_params:
        out.append(
            "CPU offload slows every step (PCIe transfers, CPU Adam); the time estimate assumes no slowdown"
        )
    if setup.offload_params and not setup.offload_optimizer:
        out.append(
            "parameter offload without optimizer offload: DeepSpeed's estimator has no such case; planned as "
            "no offload"
        )
    if setup.zero_stage and setup.precision == "fp32":
        out.append("DeepSpeed's estimators assume 16-bit training; fp32 with ZeRO needs more than shown")
    if setup.technique == "qlora" and setup.zero_stage == 3:
        out.append("QLoRA with ZeRO-3 stores the 4-bit weights in the compute dtype (bnb_4bit_quant_storage)")
    tokens = result.token_estimate
    if tokens.tokens is None:
        out.append(f"training tokens unknown ({tokens.source}): no time or cost; pass a data report")
    elif tokens.source.startswith("file size"):
        out.append(
            "tokens estimated from the file size (4 bytes per token, JSON keys included): run "
            "`azfinetune data validate` for a count"
        )
    if vm is not None:
        wanted = spec.target.resources().gpus_per_node
        if wanted and wanted < vm.gpus:
            out.append(f"using {wanted} of {vm.name}'s {vm.gpus} GPUs: the VM is billed whole")
        retired = getattr(vm, "is_retired", None)
        if callable(retired) and retired():
            out.append(f"{vm.name} is retired by Azure; pick a current size")
        note = getattr(vm, "note", None)
        if isinstance(note, str) and "UNVERIFIED" in note:
            out.append(f"{vm.name}: the catalog marks its price as unverified")
    if (
        result.hours is not None
        and (limit := spec.target.resources().max_run_minutes) is not None
        and result.hours * 60 > limit
    ):
        out.append(
            f"the estimated {result.hours:.1f} h exceeds target.max_run_minutes ({limit}): "
            "the job would be stopped first"
        )
    if result.billing == "none" and result.local_ram is not None and result.allocated > result.local_ram:
        out.append(
            f"a local run needs about {_gib(result.allocated)}, more than this machine's {_gib(result.local_ram)}"
        )
    if given_shape or shape.parameters is None:
        out.append(f"model numbers: {shape.describe()}")
    return out
