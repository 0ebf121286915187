"""The spec's own cross-field rules: structural only, the same on every machine (no catalog, no probes).

Rules that need the catalog, the data files or a target's knowledge live in `azfinetune.targets` (each target's
`rules(spec)`), and machine probes (the Hugging Face cache, GPUs) in the local target's pre-run check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from azft_contract import COLUMNS, PREFERENCE_TASKS, data_kind

from azfinetune.errors import Issue

if TYPE_CHECKING:
    from azfinetune.spec._models import FineTuneSpec

__all__ = ["STRUCTURAL_RULES", "cross_field_issues", "model_kind"]

Rule = Callable[["FineTuneSpec"], Iterator[Issue]]
STRUCTURAL_RULES: list[Rule] = []


def _rule(function: Rule) -> Rule:
    STRUCTURAL_RULES.append(function)
    return function


def cross_field_issues(spec: FineTuneSpec) -> list[Issue]:
    """Every structural cross-field problem of a spec whose fields are individually valid."""
    issues: list[Issue] = []
    for check in STRUCTURAL_RULES:
        issues.extend(check(spec))
    return issues


def model_kind(ref: str) -> str:
    """'registry' | 'hf' | 'alias' | 'local' for a spec's model reference."""
    if ref.startswith("azureml://"):
        return "registry"
    if ref.startswith("hf:"):
        return "hf"
    if "/" in ref or ref.startswith(".") or ref.startswith("~") or os.sep in ref:
        return "local"
    return "alias"


@_rule
def _qlora(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    if method.technique.value == "qlora":
        if method.quantization is not None and method.quantization.bits != 4:
            yield Issue(
                "method.quantization.bits",
                f"qlora needs a 4-bit base, got {method.quantization.bits}",
                hint="set method.quantization.bits: 4",
            )
    elif method.quantization is not None:
        yield Issue(
            "method.quantization",
            f"quantization is only used by technique qlora, not {method.technique.value}",
            hint="remove method.quantization or set method.technique: qlora",
        )


@_rule
def _zero3_qlora_storage(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    quant = method.quantization
    if method.technique.value != "qlora" or method.deepspeed is None or method.deepspeed.stage != 3:
        return
    compute = spec.training.precision.value
    if quant is not None and quant.storage_dtype is not None and quant.storage_dtype != compute:
        yield Issue(
            "method.quantization.storage_dtype",
            f"ZeRO-3 with QLoRA needs the quantized storage dtype to equal the compute dtype ({compute}), "
            f"got {quant.storage_dtype}",
            hint=f"set storage_dtype: {compute} or leave it unset",
        )


@_rule
def _lora_with_full(spec: FineTuneSpec) -> Iterator[Issue]:
    if spec.method.technique.value == "full" and spec.method.lora is not None:
        yield Issue(
            "method.lora",
            "LoRA settings are given but technique is full (all weights are trained, no adapter)",
            hint="remove method.lora (--set method.lora=null) or pick technique lora, qlora or dora",
        )


@_rule
def _deepspeed(spec: FineTuneSpec) -> Iterator[Issue]:
    ds = spec.method.deepspeed
    if ds is None:
        return
    if ds.offload_params and ds.stage != 3:
        yield Issue(
            "method.deepspeed.offload_params",
            f"parameter offload needs ZeRO stage 3, got stage {ds.stage}",
            hint="set method.deepspeed.stage: 3 or offload_params: false",
        )
    if ds.offload_optimizer and ds.stage == 0:
        yield Issue(
            "method.deepspeed.offload_optimizer",
            "optimizer offload needs ZeRO stage 1, 2 or 3, got stage 0",
            hint="set method.deepspeed.stage: 2",
        )
    if ds.offload_optimizer and spec.method.optimizer.value != "adamw_torch":
        # DeepSpeed refuses a client optimizer under optimizer offload (zero_force_ds_cpu_optimizer), so the
        # config names its own CPU AdamW; an 8-bit optimizer would be silently replaced.
        yield Issue(
            "method.optimizer",
            f"optimizer offload runs DeepSpeed's CPU AdamW, not {spec.method.optimizer.value}",
            hint="set method.optimizer: adamw_torch, or method.deepspeed.offload_optimizer: false",
        )


@_rule
def _preference(spec: FineTuneSpec) -> Iterator[Issue]:
    """method.objective dpo/orpo: a generative task, settings of its own objective only, no packing."""
    method, training = spec.method, spec.training
    objective = method.objective.value
    if not method.objective.is_preference:
        if method.preference is not None:
            yield Issue(
                "method.preference",
                "preference settings are only used by method.objective dpo or orpo, not sft",
                hint="remove method.preference, or set method.objective: dpo (or orpo)",
            )
        return
    if spec.task.value not in PREFERENCE_TASKS:
        yield Issue(
            "method.objective",
            f"{objective} trains a generative model on preference pairs, not {spec.task.value}",
            hint=f"use task {' or '.join(PREFERENCE_TASKS)}, or method.objective: sft",
        )
    preference = method.preference
    if objective == "orpo" and preference is not None:
        for key in ("loss_type", "reference"):
            if key in preference.model_fields_set:
                yield Issue(
                    f"method.preference.{key}",
                    f"orpo has no reference model and one loss of its own: {key} is a dpo setting",
                    hint=f"remove method.preference.{key}, or set method.objective: dpo",
                )
    if training.packing:
        yield Issue(
            "training.packing",
            f"{objective} compares the chosen and the rejected answer of each pair: pairs cannot be packed",
            hint="set training.packing: false",
        )
    if "mask_prompt" in training.model_fields_set and not training.mask_prompt:
        yield Issue(
            "training.mask_prompt",
            f"{objective} scores the chosen and rejected answers only, never the prompt",
            hint="remove training.mask_prompt",
        )


@_rule
def _columns_of_the_task(spec: FineTuneSpec) -> Iterator[Issue]:
    """data.columns may name only the logical columns of the data (the contract's table): the job refuses others."""
    if spec.data.columns is None:
        return
    kind = data_kind(spec.task.value, spec.method.objective.value)
    own = COLUMNS[kind]
    what = f"{spec.method.objective.value} preference data" if kind != spec.task.value else spec.task.value
    for key in spec.data.columns.as_dict():
        if key not in own:
            yield Issue(
                f"data.columns.{key}",
                f"{what} has no {key!r} column",
                hint=f"{what} reads: {', '.join(own)}",
            )


@_rule
def _checkpoint_interval(spec: FineTuneSpec) -> Iterator[Issue]:
    """training.save_steps within the run: a checkpoint first due after max_steps would never be written."""
    training = spec.training
    if (
        training.save_steps is not None
        and training.max_steps > 0
        and training.save_steps > training.max_steps
    ):
        yield Issue(
            "training.save_steps",
            f"no checkpoint would be saved: save_steps {training.save_steps} is more than max_steps "
            f"{training.max_steps}",
            hint=f"set save_steps ≤ {training.max_steps} (e.g. {max(1, training.max_steps // 10)}), or remove it",
        )
