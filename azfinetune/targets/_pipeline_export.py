"""Export of pipeline jobs (ours and the registry's): portable `az ml job create -f` YAML and a comparable REST body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azfinetune.targets._environment import environment_reference
from azfinetune.targets._paths import is_local_path
from azfinetune.targets._portable import plain, relative_path, yaml_environment

__all__ = ["PIPELINE_JOB_SCHEMA", "pipeline_rest_body", "pipeline_yaml_dict"]


PIPELINE_JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"


def _is_binding(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("${{")


def _local_input_path(value: Any, base_dir: Path, job_base: Path) -> str | None:
    """A local file input's path relative to base_dir (None for bindings, assets, URIs and literals)."""
    from azure.ai.ml import Input

    # Only an Input holds data; a PipelineInput/NodeOutput in a node is a binding that YAML keeps as is.
    path = value.path if isinstance(value, Input) else None
    if not isinstance(path, str) or _is_binding(path) or not is_local_path(path):
        return None
    return relative_path(path, job_base=job_base, base_dir=base_dir)


def _base(entity: Any) -> Path:
    """The folder an entity's relative paths are relative to: its YAML's folder when loaded, else the cwd."""
    return Path(getattr(entity, "base_path", None) or Path.cwd())


def _component_code(component: Any, base_dir: Path) -> str | None:

    code = getattr(component, "code", None)
    if not isinstance(code, str) or "://" in code or code.startswith("azureml:"):
        return code
    return relative_path(code, job_base=Path(component.base_path or Path.cwd()), base_dir=base_dir)


def _portable_environment(environment: Any, base_dir: Path) -> Any:

    return yaml_environment(environment, job_base=Path.cwd(), base_dir=base_dir)


def pipeline_yaml_dict(job: Any, *, base_dir: Path) -> dict[str, Any]:
    """A PipelineJob (either kind) as the `az ml job create -f` mapping, local paths relative to base_dir.

    From azure-ai-ml's own dump, made portable: local data files as relative paths (the dump turns them into
    `azureml:<absolute path>` asset names), each step's component inline with its code folder and
    environment build context relative too, and registry components as their `azureml://registries/` id."""
    data: dict[str, Any] = plain(job._to_dict())
    for name, value in (job.inputs or {}).items():
        path = _local_input_path(value._data, base_dir, _base(job))
        if path is not None:
            data["inputs"][name]["path"] = path
    for node_name, node in job.jobs.items():
        node_data = data["jobs"][node_name]
        for name, value in (node.inputs or {}).items():
            path = _local_input_path(value._data, base_dir, _base(node))
            if path is not None:
                node_data["inputs"][name]["path"] = path
        if node.display_name:
            node_data["display_name"] = node.display_name
        component = node.component
        if isinstance(component, str):
            node_data["component"] = component
            continue
        component_data = node_data["component"]
        component_data.pop("$schema", None)
        component_data["code"] = _component_code(component, base_dir)
        if component.environment is not None:
            component_data["environment"] = _portable_environment(component.environment, base_dir)
        if getattr(node, "environment", None) is not None:
            node_data["environment"] = _portable_environment(node.environment, base_dir)
    order = (
        "$schema",
        "type",
        "name",
        "display_name",
        "experiment_name",
        "description",
        "tags",
        "properties",
    )
    data["$schema"] = PIPELINE_JOB_SCHEMA
    ordered = {key: data.pop(key) for key in order if key in data}
    ordered.update(data)
    return ordered


def _strip_source(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_source(v) for k, v in value.items() if k != "_source"}
    if isinstance(value, list):
        return [_strip_source(v) for v in value]
    return value


def _environment_key(environment: Any, base_dir: Path) -> Any:
    """The environment a step will point at: `name:version` for a named one (azure-ai-ml registers it at
    submit, as for command jobs), a reference as it is, and an anonymous one (from a YAML's inline build
    context) as that portable context."""

    if environment is None or isinstance(environment, str):
        return environment
    named = getattr(environment, "name", None) and getattr(environment, "version", None)
    if named and not getattr(environment, "_is_anonymous", False):
        return environment_reference(environment)
    return _portable_environment(environment, base_dir)


def _component_body(component: Any, base_dir: Path) -> dict[str, Any]:
    """An inline component as it will be registered: what runs, where from, its declared inputs/outputs."""
    body = {
        "command": " ".join(str(component.command).split()),
        "code": _component_code(component, base_dir),
        "environment": _environment_key(component.environment, base_dir),
        "inputs": {
            name: {k: v for k, v in plain(value._to_dict()).items() if k != "description"}
            for name, value in (component.inputs or {}).items()
        },
        "outputs": {name: value.type for name, value in (component.outputs or {}).items()},
    }
    return body


def pipeline_rest_body(job: Any, *, base_dir: Path) -> dict[str, Any]:
    """`job._to_rest_object().as_dict()` made comparable and machine-independent (either pipeline kind).

    Before submission the body still holds local paths and, for inline steps, component objects (azure-ai-ml
    registers them at submit): paths become relative to base_dir, components their command, code,
    environment and declared inputs/outputs, and azure-ai-ml's bookkeeping `_source` keys are dropped."""
    body: dict[str, Any] = plain(job._to_rest_object().as_dict())
    properties = body.get("properties", {})
    for name, value in (properties.get("inputs") or {}).items():
        path = _local_input_path(job.inputs[name]._data, base_dir, _base(job))
        if path is not None:
            value["uri"] = path
    for node_name, node_body in (properties.get("jobs") or {}).items():
        node = job.jobs[node_name]
        for name, value in (node_body.get("inputs") or {}).items():
            path = _local_input_path(node.inputs[name]._data, base_dir, _base(node))
            if path is not None:
                value["uri"] = path
        if not isinstance(node.component, str):
            node_body["componentId"] = _component_body(node.component, base_dir)
        if node_body.get("environmentId") is not None:
            node_body["environmentId"] = _environment_key(node.environment, base_dir)
    return _strip_source(body)  # type: ignore[no-any-return]
