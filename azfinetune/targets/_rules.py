"""Offline rules every target applies: the model, the VM sizes and the data references, checked against the catalog.

A target's `rules(spec)` yields these and its own; nothing here probes the machine (the local target's pre-run
check does), so a spec's verdict is the same on every machine that has the same files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from azft_contract import BEST_MODEL_METRICS

from azfinetune.catalog import ModelInfo, SkuInfo, find_model, get_model, get_sku, list_models
from azfinetune.errors import CatalogError, Issue
from azfinetune.spec import FineTuneSpec, did_you_mean, model_kind

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "catalog_model",
    "common_rules",
    "is_user_set",
    "sku_of",
    "unsupported_keys",
]


def catalog_model(spec: FineTuneSpec) -> ModelInfo | None:
    """The catalog entry of the spec's model (an alias, a known hf: id or registry URI), else None."""
    return find_model(spec.model)


def sku_of(spec: FineTuneSpec) -> SkuInfo | None:
    """The catalog SKU of the target's GPU VM size, when the target names one the catalog knows."""
    name = spec.target.resources().instance_type
    if not name:
        return None
    try:
        return get_sku(name)
    except CatalogError:
        return None


def is_user_set(spec: FineTuneSpec, dotted: str) -> bool:
    """Whether the user wrote `dotted` (e.g. "method.technique") in the spec, rather than taking its default."""
    node: object = spec
    for part in dotted.split("."):
        if node is None or part not in getattr(node, "model_fields_set", ()):
            return False
        node = getattr(node, part)
    return True


def unsupported_keys(
    spec: FineTuneSpec, section: str, allowed: Iterable[str], *, what: str, hint: str | None = None
) -> Iterator[Issue]:
    """An error for every key of `section` (e.g. "training") the user set that is not in `allowed`."""
    node = getattr(spec, section)
    keep = set(allowed)
    for key in sorted(getattr(node, "model_fields_set", set()) - keep):
        yield Issue(
            f"{section}.{key}",
            f"{what} does not take this setting",
            hint=hint or (f"it takes only {', '.join(sorted(keep))}" if keep else None),
        )


def common_rules(
    spec: FineTuneSpec, *, today: dt.date | None = None, our_code: bool = False
) -> Iterator[Issue]:
    """The catalog checks every target makes (errors and warnings). `our_code`: the target runs this project's
    entry point (then azfinetune's own defaults are sent, and the entry point's own checks apply)."""
    yield from _model_known(spec)
    yield from _vm_sizes(spec, today or dt.date.today())
    yield from _precision_vs_gpu(spec, our_code=our_code)
    yield from _gpus_per_node(spec)
    yield from _sequence_length(spec)
    if our_code:
        yield from _checkpoint_selection(spec)
    yield from _target_modules(spec)
    yield from _data_refs(spec)


def _model_known(spec: FineTuneSpec) -> Iterator[Issue]:
    kind = model_kind(spec.model)
    if kind == "alias":
        try:
            get_model(spec.model)
        except CatalogError as error:
            yield Issue("model", error.message, hint=error.hint)
    elif kind == "local" and spec.target.kind != "local":
        yield Issue(
            "model",
            f"a local model folder ({spec.model}) can only be used with target.kind: local",
            hint="use a catalog alias, an azureml://registries/... model or hf:<org>/<name> for Azure",
        )


def _vm_size_fields(spec: FineTuneSpec) -> list[tuple[str, str]]:
    target = spec.target
    found: list[tuple[str, str]] = []
    for key in ("instance_type", "cpu_instance_type"):
        value = getattr(target, key, None)
        if isinstance(value, str) and value:
            found.append((f"target.{key}", value))
    for index, value in enumerate(getattr(target, "instance_types", None) or []):
        found.append((f"target.instance_types[{index}]", value))
    return found


def _vm_sizes(spec: FineTuneSpec, today: dt.date) -> Iterator[Issue]:
    for path, name in _vm_size_fields(spec):
        try:
            sku = get_sku(name)
        except CatalogError as error:
            yield Issue(path, error.message, hint=error.hint)
            continue
        if sku.is_retired(today):
            yield Issue(
                path,
                f"Azure retired the {sku.name} VM size on {sku.retirement_date}; new clusters cannot use it",
                hint="pick a current size (azfinetune plan lists them with prices)",
                severity="warning",
            )
    vm = sku_of(spec)
    resources = spec.target.resources()
    gpus = resources.gpus_per_node if resources.gpus_per_node is not None else (vm.gpus if vm else 1)
    if vm is not None and vm.gpus == 0 and resources.nodes * max(gpus, 1) > 1:
        yield Issue("target.instance_type", f"{vm.name} has no GPU for distributed training")


def _precision_vs_gpu(spec: FineTuneSpec, *, our_code: bool) -> Iterator[Issue]:
    sku = sku_of(spec)
    if sku is None or sku.gpus == 0:
        return
    if not our_code and not is_user_set(spec, "training.precision"):
        return  # Azure's code trains: azfinetune's default precision is not sent (the asset's or Azure's applies)
    if spec.training.precision.value == "bf16" and sku.compute_capability < 8.0:
        yield Issue(
            "training.precision",
            f"bf16 needs a GPU of compute capability ≥ 8.0; {sku.name} has {sku.gpu} "
            f"(compute capability {sku.compute_capability})",
            hint="use precision: fp16 on this GPU, or an A100/H100 SKU for bf16",
        )


def _gpus_per_node(spec: FineTuneSpec) -> Iterator[Issue]:
    sku = sku_of(spec)
    wanted = spec.target.resources().gpus_per_node
    if sku is None or wanted is None:
        return
    if wanted > sku.gpus:
        yield Issue(
            "target.gpus_per_node",
            f"{sku.name} has {sku.gpus} GPU(s), got gpus_per_node {wanted}",
            hint=f"set gpus_per_node ≤ {sku.gpus} or pick a larger SKU",
        )


def _sequence_length(spec: FineTuneSpec) -> Iterator[Issue]:
    info = catalog_model(spec)
    wanted = spec.training.max_seq_length
    if wanted == "auto" and info is None and spec.target.kind == "pipeline":
        yield Issue(
            "training.max_seq_length",
            f"max_seq_length: auto needs a model the catalog knows for target.kind pipeline (its data and evaluation "
            f"steps take a number); {spec.model} is not one",
            hint="set training.max_seq_length to the model's context length",
        )
    if info is None or wanted == "auto":
        return
    limit = info.max_seq_length
    # azfinetune's default is capped at the model's maximum where it is larger (entrypoint_seq_length).
    if wanted > limit and is_user_set(spec, "training.max_seq_length"):
        yield Issue(
            "training.max_seq_length",
            f"{info.display_name} has a context of {limit} tokens, got max_seq_length {wanted}",
            hint=f"set max_seq_length ≤ {limit} (or auto, the model's maximum), or use a long-context variant",
        )


def _checkpoint_selection(spec: FineTuneSpec) -> Iterator[Issue]:
    """training.metric_for_best_model for the entry point: a metric it computes, and validation data to compute it."""
    metric = spec.training.metric_for_best_model
    if metric is None:
        return
    preference = spec.method.objective.is_preference
    # dpo/orpo: the preference trainer's own eval loss (its reward metrics are not checkpoint metrics here).
    known = ("loss",) if preference else BEST_MODEL_METRICS.get(spec.task.value, ("loss",))
    what = f"{spec.method.objective.value} on {spec.task.value}" if preference else spec.task.value
    if metric not in known:
        yield Issue(
            "training.metric_for_best_model",
            f"azfinetune's trainer computes {', '.join(known)} for {what}, not {metric}",
            hint=f"use one of {', '.join(known)}, or target.kind: registry-pipeline for the registry's metrics",
        )
    if spec.data.validation is None:
        yield Issue(
            "training.metric_for_best_model",
            "choosing the best checkpoint needs data.validation: the metric is computed on it after every epoch",
            hint="add data.validation, or remove metric_for_best_model",
        )


def _target_modules(spec: FineTuneSpec) -> Iterator[Issue]:
    lora = spec.method.lora
    info = catalog_model(spec)
    if lora is None or info is None or not isinstance(lora.target_modules, list) or not info.linear_modules:
        return
    known = set(info.linear_modules)
    for index, name in enumerate(lora.target_modules):
        if name not in known:
            hint = did_you_mean(name, known) or f"{info.display_name} has: {', '.join(sorted(known))}"
            yield Issue(
                f"method.lora.target_modules[{index}]",
                f"{info.display_name} has no linear module {name!r}",
                hint=hint,
            )


def _data_refs(spec: FineTuneSpec) -> Iterator[Issue]:
    for role, ref in spec.data.files().items():
        path = f"data.{role}"
        if ref.startswith("azureml:") and not ref.startswith("azureml://"):
            if "@" in ref:
                if not re.fullmatch(r"azureml:[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+", ref):
                    yield Issue(
                        path, f"{ref!r} is not a data asset reference", hint="use azureml:<name>@latest"
                    )
                continue
            if not re.fullmatch(r"azureml:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+", ref):
                yield Issue(
                    path, f"{ref!r} is not a data asset reference", hint="use azureml:<name>:<version>"
                )
        elif ref.startswith("http://"):
            yield Issue(path, "plain http is refused", hint="use https:// or a registered data asset")


def serverless_models() -> list[str]:
    """Aliases of the catalog models whose serverless fine-tuning is offered (not retired)."""
    return [m.alias for m in list_models() if m.serverless is not None and m.serverless.retired is None]
