"""Spec -> azure.ai.ml job entities, one builder per target kind, and their export as `az ml` YAML/REST JSON."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from azfinetune.build._common import job_name, spec_fingerprint

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = ["BUILDERS", "build_job", "job_name", "spec_fingerprint"]

#: target.kind -> "module:function". Each builder takes the spec and returns an azure.ai.ml Job entity.
BUILDERS: dict[str, str] = {
    "command": "azfinetune.build.command:build_command_job",
    "local": "azfinetune.build.command:build_command_job",
    "pipeline": "azfinetune.build.pipeline:build_pipeline_job",
    "registry-pipeline": "azfinetune.build.registry_pipeline:build_registry_pipeline_job",
    "serverless": "azfinetune.build.finetuning:build_finetuning_job",
    "finetuning-job": "azfinetune.build.finetuning:build_finetuning_job",
}


def build_job(spec: FineTuneSpec) -> Any:
    """The azure.ai.ml Job entity (CommandJob, PipelineJob or FineTuningJob) for a spec. Pure: no network."""
    module_name, _, function = BUILDERS[spec.target.kind.value].partition(":")
    builder = getattr(importlib.import_module(module_name), function)
    return builder(spec)
