"""Where a job runs: one module per target kind (its rules, build, export, pre-submit) and the registry of them.

Adding a target: its fields model in `azfinetune/spec/_targets.py` (the spec's discriminated union), a module
here with a `TARGET` that satisfies `Target`, one line in `TARGETS` (_registry.py), and its tests
(docs/targets.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azfinetune.errors import SpecError
from azfinetune.spec import FineTuneSpec
from azfinetune.targets._check import ALLOW_NO_FIT, CheckReport, check_spec, file_issues
from azfinetune.targets._checkpoints import resume_source_issues
from azfinetune.targets._common import azfinetune_tags, file_sha256, job_name, spec_fingerprint
from azfinetune.targets._deepspeed import deepspeed_config, deepspeed_config_text
from azfinetune.targets._entrypoint import (
    ENTRYPOINT_MODULE,
    ENTRYPOINT_TASKS,
    command_line,
    data_columns,
    entrypoint_args,
    entrypoint_inputs,
    entrypoint_outputs,
)
from azfinetune.targets._export import ExportFormat, ExportResult, export_job, rest_body
from azfinetune.targets._paths import components_dir, job_code_dir, project_root
from azfinetune.targets._protocol import Target, TargetBase, WorkspaceSession
from azfinetune.targets._registry import TARGETS, as_local, get_target, target_issues

__all__ = [
    "ALLOW_NO_FIT",
    "ENTRYPOINT_MODULE",
    "ENTRYPOINT_TASKS",
    "TARGETS",
    "CheckReport",
    "ExportFormat",
    "ExportResult",
    "Target",
    "TargetBase",
    "WorkspaceSession",
    "as_local",
    "azfinetune_tags",
    "build_job",
    "check_spec",
    "command_line",
    "components_dir",
    "data_columns",
    "deepspeed_config",
    "deepspeed_config_text",
    "entrypoint_args",
    "entrypoint_inputs",
    "entrypoint_outputs",
    "export_job",
    "export_spec",
    "file_issues",
    "file_sha256",
    "get_target",
    "job_code_dir",
    "job_name",
    "project_root",
    "rest_body",
    "resume_source_issues",
    "spec_fingerprint",
    "target_issues",
]


def build_job(spec: FineTuneSpec) -> Any:
    """The job for a spec (an azure.ai.ml CommandJob, PipelineJob or FineTuningJob). Pure: no network.

    The spec's offline checks run first, so a user error is a SpecError with file, line and key, never a
    failure half-way through a build."""
    report = check_spec(spec, data=False)
    if report.errors:
        raise SpecError(report.errors, file=spec.source)
    return get_target(spec.target.kind).build(spec)


def export_spec(
    spec: FineTuneSpec | str | Path,
    *,
    overrides: list[str] | None = None,
    format: ExportFormat = "yaml",
    base_dir: Path | str | None = None,
) -> ExportResult:
    """Load (if a path) and check a spec, build its job and export it: `azfinetune build` in one call.

    Raises SpecError for spec problems and missing files (a BuildError is an internal fault)."""
    report = check_spec(spec, overrides=overrides, data=False)
    if report.errors:
        raise SpecError(report.errors, file=report.spec.source)
    target = get_target(report.spec.target.kind)
    job = target.build(report.spec)
    text = target.export(job, base_dir=Path(base_dir) if base_dir is not None else Path.cwd(), format=format)
    return ExportResult(text=text, job_name=str(job.name), warnings=list(report.warnings))
