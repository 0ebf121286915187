"""Export a built job: portable `az ml job create -f` YAML, or the REST body azure-ai-ml sends (as JSON)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from azfinetune.errors import BuildError, Issue
from azfinetune.targets._environment import environment_reference
from azfinetune.targets._paths import is_local_path
from azfinetune.targets._pipeline_export import pipeline_rest_body, pipeline_yaml_dict
from azfinetune.targets._portable import plain, relative_path, yaml_environment, yaml_input

if TYPE_CHECKING:
    pass

ExportFormat = Literal["yaml", "json"]

__all__ = [
    "COMMAND_JOB_SCHEMA",
    "ExportFormat",
    "ExportResult",
    "export_job",
    "finetuning_job_yaml_dict",
    "job_yaml_dict",
    "rest_body",
]


COMMAND_JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"

# Order of the keys in the exported YAML (the rest follow in azure-ai-ml's order).
_YAML_ORDER = (
    "$schema",
    "type",
    "name",
    "display_name",
    "experiment_name",
    "description",
    "tags",
    "code",
    "command",
    "inputs",
    "outputs",
    "environment",
    "environment_variables",
    "compute",
    "resources",
    "distribution",
    "queue_settings",
    "limits",
    "identity",
)


def _as_job(job: Any) -> tuple[Any, Path]:
    """(CommandJob, the folder its relative paths are relative to) from a CommandJob or a Command node.

    azure.ai.ml.command() and load_job() return Command nodes; node._to_job() forgets the node's base path
    (the YAML's folder) and falls back to the current directory, so it is taken from the node."""
    from azure.ai.ml.entities import CommandJob

    base = Path(getattr(job, "base_path", None) or Path.cwd())
    if (
        not isinstance(job, CommandJob)
        and type(job).__name__ == "Command"
        and callable(getattr(job, "_to_job", None))
    ):
        job = job._to_job()
    return job, base


def job_yaml_dict(job: Any, *, base_dir: Path) -> dict[str, Any]:
    """The job as the `az ml job create -f` mapping, with local paths relative to base_dir.

    Taken from azure-ai-ml's own schema dump, then made portable: code, data and environment paths become
    relative (the dump writes absolute paths and turns local files into `azureml:<path>` asset names)."""
    from azure.ai.ml.entities import CommandJob

    job, job_base = _as_job(job)
    if not isinstance(job, CommandJob):
        raise BuildError(
            f"YAML export is implemented for command jobs, not {type(job).__name__}",
            hint="use --format json for the REST body",
        )
    data: dict[str, Any] = plain(job._to_dict())
    data["$schema"] = COMMAND_JOB_SCHEMA

    if isinstance(job.code, str | os.PathLike) and is_local_path(str(job.code)):
        data["code"] = relative_path(job.code, job_base=job_base, base_dir=base_dir)
    for name, value in (job.inputs or {}).items():
        path = yaml_input(getattr(value, "_data", value), job_base=job_base, base_dir=base_dir)
        if path is not None:
            data["inputs"][name]["path"] = path
    if job.environment is not None:
        data["environment"] = yaml_environment(job.environment, job_base=job_base, base_dir=base_dir)
    identity = data.get("identity")
    if isinstance(identity, dict) and identity.get("type") == "managed_identity":
        identity["type"] = "managed"

    # Empty mappings and output-only keys are noise in a file people read.
    for key in ("properties", "parameters", "environment_variables", "services"):
        if not data.get(key):
            data.pop(key, None)
    resources = data.get("resources")
    if isinstance(resources, dict) and not resources.get("properties"):
        resources.pop("properties", None)

    ordered = {key: data.pop(key) for key in _YAML_ORDER if key in data}
    ordered.update(data)
    return ordered


def rest_body(job: Any, *, base_dir: Path) -> dict[str, Any]:
    """`job._to_rest_object().as_dict()`, made comparable and machine-independent.

    Before submission azure-ai-ml leaves local paths in the body (code, uploaded inputs) and an Environment
    entity as its Python repr; here paths are relative to base_dir and the environment is `name:version`."""
    job, job_base = _as_job(job)
    body: dict[str, Any] = plain(job._to_rest_object().as_dict())
    _relativize_paths(body, job_base=job_base, base_dir=base_dir)
    properties = body.get("properties", {})
    environment = getattr(job, "environment", None)
    if environment is not None and not isinstance(environment, str) and "environmentId" in properties:
        properties["environmentId"] = environment_reference(environment)
    return body


def _relativize_paths(node: Any, *, job_base: Path, base_dir: Path) -> None:
    """Every local path in a REST body (codeId, input/data `uri`s, at any depth) made relative to base_dir."""
    if isinstance(node, list):
        for item in node:
            _relativize_paths(item, job_base=job_base, base_dir=base_dir)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("codeId", "uri") and isinstance(value, str) and value and is_local_path(value):
            node[key] = relative_path(value, job_base=job_base, base_dir=base_dir)
        else:
            _relativize_paths(value, job_base=job_base, base_dir=base_dir)


def finetuning_job_yaml_dict(job: Any, *, base_dir: Path | None = None) -> dict[str, Any]:
    """The job as `az ml job create -f` takes it (a dict ready for yaml.safe_dump), loadable by `load_job`.

    azure-ai-ml's own dump writes a local data file as ``azureml:<path>`` (which `load_job` then reads as a data
    asset name) and the task in camelCase; here local files stay plain paths, relative to `base_dir` (the
    folder the YAML is written to) when they lie under it, and the task is the snake_case the YAML schema
    documents (chat_completion)."""
    document: dict[str, Any] = json.loads(json.dumps(job._to_dict()))
    for key in ("training_data", "validation_data"):
        data = document.get(key)
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            data["path"] = _portable_path(data["path"], base_dir)
    task = document.get("task")
    if isinstance(task, str):
        document["task"] = re.sub(r"(?<!^)(?=[A-Z])", "_", task).lower()
    ordered = [
        "type",
        "name",
        "display_name",
        "experiment_name",
        "description",
        "task",
        "model_provider",
        "model",
    ]
    head = {key: document.pop(key) for key in ordered if document.get(key) is not None}
    document.pop("description", None)
    return {**head, **document}


def _portable_path(path: str, base_dir: Path | None) -> str:
    local = (
        path[len("azureml:") :] if path.startswith("azureml:") and not path.startswith("azureml://") else None
    )
    if local is None or not Path(local).is_absolute():
        return path
    if base_dir is not None:
        try:
            return Path(local).resolve().relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return local


def _yaml_text(data: Mapping[str, Any], header: list[str]) -> str:
    text = yaml.safe_dump(
        dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + text


def _yaml_mapping(job: Any, *, base_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The job's `az ml job create -f` mapping and the header lines above it, for every job kind we build."""
    from azure.ai.ml.entities import PipelineJob
    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import CustomModelFineTuningJob

    command_job, _ = _as_job(job)
    submit = "Submit: az ml job create -f <this file>"
    if isinstance(command_job, PipelineJob):
        return pipeline_yaml_dict(command_job, base_dir=base_dir), [
            f"Azure ML job {command_job.name}, written by azfinetune build.",
            submit,
        ]
    if isinstance(command_job, CustomModelFineTuningJob):
        return finetuning_job_yaml_dict(command_job, base_dir=base_dir), [
            f"Azure ML job {command_job.name}, written by azfinetune build.",
            submit,
        ]
    data = job_yaml_dict(job, base_dir=base_dir)
    header = [f"Azure ML command job {command_job.name}, written by azfinetune build.", submit]
    environment = getattr(command_job, "environment", None)
    if environment is not None and not isinstance(environment, str):
        header.append(
            f"Environment {environment_reference(environment)} (azfinetune submit registers it under this name;"
        )
        header.append("az ml builds the same folder as an anonymous environment, also versioned by content).")
    return data, header


def export_job(job: Any, format: ExportFormat = "yaml", *, base_dir: Path | str) -> str:
    """The job as text: `yaml` for `az ml job create -f` / load_job, `json` for the REST body.

    base_dir is the folder the text will be read from (the output file's folder): local paths are written
    relative to it."""
    from azure.ai.ml.entities import PipelineJob

    base = Path(base_dir)
    if format == "json":
        if isinstance(job, PipelineJob):
            body = pipeline_rest_body(job, base_dir=base)
        else:
            body = rest_body(job, base_dir=base)
        return json.dumps(body, indent=2, sort_keys=True) + "\n"
    if format != "yaml":
        raise BuildError(f"unknown export format {format!r}", hint="use yaml or json")
    data, header = _yaml_mapping(job, base_dir=base)
    return _yaml_text(data, header)


@dataclass
class ExportResult:
    """What `azfinetune build` prints: the text, the job's name, and the spec's warnings."""

    text: str
    job_name: str
    warnings: list[Issue] = field(default_factory=list)
