"""target.kind finetuning-job: Azure's fine-tuning job (its training code) on the user's own compute."""

from __future__ import annotations

from collections.abc import Iterator

from azfinetune.errors import Issue
from azfinetune.spec import FineTuneSpec, FinetuningJobTarget, Task, model_kind
from azfinetune.targets._asset_rules import asset_compute_rules, asset_retirement_rules, asset_task_rules
from azfinetune.targets._finetuning import FineTuningTargetBase
from azfinetune.targets._rules import catalog_model

__all__ = ["TARGET"]


class _FinetuningJob(FineTuningTargetBase):
    kind = "finetuning-job"
    fields = FinetuningJobTarget
    summary = "FineTuningJob on your compute: Azure's training code, your cluster"
    what = "a finetuning-job (Azure's fine-tuning job)"
    tasks = frozenset({Task.CHAT_COMPLETION, Task.TEXT_COMPLETION})

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        target = spec.target
        if isinstance(target, FinetuningJobTarget) and not (target.compute or target.instance_types):
            yield Issue(
                "target.compute",
                "a finetuning-job needs a compute cluster or instance_types",
                hint="set target.compute, or target.instance_types: [Standard_NC24ads_A100_v4]",
            )
        if catalog_model(spec) is None and model_kind(spec.model) != "registry":
            yield Issue(
                "model",
                f"a finetuning-job fine-tunes an Azure ML registry model; {spec.model} is not one",
                hint="use a catalog alias or azureml://registries/<registry>/models/<name>/versions/<v>, "
                "or target.kind: command for other models",
            )
        info = catalog_model(spec)
        yield from asset_task_rules(spec, info, what="Azure's fine-tuning job", hf_way_out=False)
        if isinstance(target, FinetuningJobTarget):
            sizes = [("target.instance_type", target.instance_type)] if target.instance_type else []
            sizes += [
                (f"target.instance_types[{i}]", name) for i, name in enumerate(target.instance_types or [])
            ]
            yield from asset_compute_rules(info, sizes)
        yield from asset_retirement_rules(info, self.today())
        yield from super().own_rules(spec)


TARGET = _FinetuningJob()
