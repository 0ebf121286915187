"""Rules of the kinds where Azure's own code trains (registry pipelines, fine-tuning jobs): the model asset's say.

The registry asset lists the tasks Azure fine-tunes the model for and the VM sizes it allows; azfinetune's own jobs
(command, pipeline, local) train any task the architecture supports and need neither."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from azfinetune.catalog import ModelInfo, get_sku
from azfinetune.errors import CatalogError, Issue
from azfinetune.spec import FineTuneSpec

__all__ = ["asset_compute_rules", "asset_retirement_rules", "asset_task_rules"]


def _is_cpu_only(vm_size: str) -> bool:
    try:
        return not get_sku(vm_size).is_gpu
    except CatalogError:
        return False  # a size the catalog does not know is judged as a GPU size


def asset_task_rules(
    spec: FineTuneSpec, info: ModelInfo | None, *, what: str, hf_way_out: bool
) -> Iterator[Issue]:
    """Refuse a task the asset does not list (a warning when the asset's tasks are not verified)."""
    if info is None:
        return
    task = spec.task.value
    if info.asset.lists_task(task) is not False:
        return
    listed = ", ".join(info.asset.fine_tuning_tasks)
    ways = ["target.kind: command (or pipeline, local), which trains any task the architecture supports"]
    if hf_way_out and info.hf_id:
        ways.insert(
            0, f"model: hf:{info.hf_id} (the registry imports the Hugging Face weights, not the asset)"
        )
    if info.asset.verified:
        yield Issue(
            "task",
            f"{info.display_name}'s registry asset lists fine-tuning for {listed}, not {task}; {what} follows the asset",
            hint="use " + ", or ".join(ways),
        )
    else:
        yield Issue(
            "task",
            f"{info.display_name} is on record for fine-tuning {listed}, not {task} (unverified: its asset is not in "
            "azureml-assets); Azure may refuse it",
            hint="use " + ", or ".join(ways),
            severity="warning",
        )


def asset_compute_rules(info: ModelInfo | None, vm_sizes: list[tuple[str, str]]) -> Iterator[Issue]:
    """Warn for each GPU VM size outside the asset's fine-tuning compute allow-list (the samples refuse it)."""
    if info is None:
        return
    allowed = info.asset.finetune_compute_allow_list
    for path, name in vm_sizes:
        if info.asset.allows_compute(name) is not False or _is_cpu_only(name):
            continue
        yield Issue(
            path,
            f"{name} is not on the fine-tuning compute allow-list of {info.display_name}'s registry asset",
            hint=f"the asset allows: {', '.join(allowed)}",
            severity="warning",
        )


def asset_retirement_rules(info: ModelInfo | None, today: dt.date) -> Iterator[Issue]:
    """Warn when the asset marks the model's fine-tuning deprecated or retired."""
    if info is None:
        return
    asset = info.asset
    if asset.finetune_retired is not None and today >= asset.finetune_retired:
        state, when = "retired", asset.finetune_retired
    elif asset.finetune_deprecated is not None and today >= asset.finetune_deprecated:
        state, when = "deprecated", asset.finetune_deprecated
    else:
        return
    yield Issue(
        "model",
        f"the registry asset of {info.display_name} marks its fine-tuning {state} on {when}; Azure may refuse the job",
        hint="pick a current model (azfinetune plan lists them), or train this one with target.kind: command",
        severity="warning",
    )
