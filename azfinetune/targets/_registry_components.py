"""The Azure ML registry's `<task>_pipeline` components: shipped spec YAMLs, their declared inputs, and checks."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from azfinetune.errors import BuildError

__all__ = [
    "REGISTRY",
    "SPECS_DIR",
    "TASK_COMPONENTS",
    "ComponentContract",
    "InputSpec",
    "check_component_version",
    "component_id",
    "contract",
    "contract_for_task",
    "list_contracts",
    "load_registry_component",
]

#: The Azure ML system registry that publishes the fine-tuning pipeline components.
REGISTRY = "azureml"

#: Spec task -> the registry pipeline component that fine-tunes it.
TASK_COMPONENTS: dict[str, str] = {
    "chat-completion": "chat_completion_pipeline",
    "text-completion": "text_generation_pipeline",
    "text-classification": "text_classification_pipeline",
    "token-classification": "token_classification_pipeline",
    "question-answering": "question_answering_pipeline",
    "summarization": "summarization_pipeline",
    "translation": "translation_pipeline",
}

#: Copies of the registry's component specs (azureml-assets), shipped as package data: the contract.
SPECS_DIR = Path(__file__).parent / "registry_specs"

_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
# Literal (non-asset) input types and the Python values that fit them; bool is excluded from int on purpose.
_ASSET_TYPES = frozenset(
    {"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable", "triton_model"}
)


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a component: its type, whether it may be left out, its default and enum."""

    name: str
    type: str
    optional: bool
    default: Any = None
    enum: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        """Declared `optional: false`: a job must pass it (the service does not fill in the default)."""
        return not self.optional

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit this input, or None when it does."""
        if self.type in _ASSET_TYPES:
            given = getattr(value, "type", None)
            if given is None:
                return f"{self.name}: expects an Input of type {self.type}, got {type(value).__name__}"
            if given != self.type:
                return f"{self.name}: declared type {self.type}, got an Input of type {given}"
            return None
        if self.type == "string":
            if not isinstance(value, str):
                return f"{self.name}: declared type string, got {type(value).__name__} {value!r}"
            if self.enum is not None and value not in self.enum:
                return f"{self.name}: {value!r} is not one of {', '.join(self.enum)}"
            return None
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{self.name}: declared type integer, got {type(value).__name__} {value!r}"
        elif self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{self.name}: declared type number, got {type(value).__name__} {value!r}"
        elif self.type == "boolean":
            if not isinstance(value, bool):
                return f"{self.name}: declared type boolean, got {type(value).__name__} {value!r}"
            return None
        else:
            return f"{self.name}: azfinetune cannot check inputs of type {self.type}"
        if self.min is not None and value < self.min:
            return f"{self.name}: {value!r} is below the minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{self.name}: {value!r} is above the maximum {self.max:g}"
        return None


@dataclass(frozen=True)
class ComponentContract:
    """A registry component as its shipped spec declares it."""

    name: str
    version: str
    type: str
    path: Path
    inputs: dict[str, InputSpec]
    outputs: dict[str, str] = field(default_factory=dict)
    #: Per output: its declared `mode` and `description` (what the samples' pipeline-level outputs copy).
    output_details: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        """Inputs declared `optional: false`."""
        return [name for name, spec in self.inputs.items() if spec.required]

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return _version_tuple(self.version)

    def problems(self, values: dict[str, Any]) -> list[str]:
        """Every way `values` breaks this contract: undeclared names, wrong types, bad enum values, missing
        required inputs (None values count as not passed)."""
        found: list[str] = []
        for name, value in values.items():
            declared = self.inputs.get(name)
            if declared is None:
                found.append(f"{name}: not an input of {self.name} {self.version}")
            elif value is not None and (problem := declared.problem(value)) is not None:
                found.append(problem)
        for name in self.required:
            if values.get(name) is None:
                found.append(f"{name}: required by {self.name} and not passed")
        return found


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _input_spec(name: str, raw: dict[str, Any]) -> InputSpec:
    enum = raw.get("enum")
    return InputSpec(
        name=name,
        type=str(raw.get("type", "string")),
        # The YAML schema's default for `optional` is false.
        optional=bool(raw.get("optional", False)),
        default=raw.get("default"),
        enum=tuple(str(item) for item in enum) if enum is not None else None,
        min=raw.get("min"),
        max=raw.get("max"),
        description=str(raw.get("description", "")).strip(),
    )


@functools.cache
def contract(name: str) -> ComponentContract:
    """The shipped spec of a registry component, e.g. `contract("chat_completion_pipeline")`."""
    path = SPECS_DIR / f"{name}.spec.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.name.removesuffix(".spec.yaml") for p in SPECS_DIR.glob("*.spec.yaml")))
        raise BuildError(
            f"azfinetune ships no spec of the registry component {name!r}", hint=f"known: {known}"
        )
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    inputs = {key: _input_spec(key, value or {}) for key, value in (document.get("inputs") or {}).items()}
    outputs = {
        key: str((value or {}).get("type", "uri_folder"))
        for key, value in (document.get("outputs") or {}).items()
    }
    details = {
        key: {k: str(v).strip() for k, v in (value or {}).items() if k in ("mode", "description")}
        for key, value in (document.get("outputs") or {}).items()
    }
    return ComponentContract(
        name=str(document["name"]),
        version=str(document["version"]),
        type=str(document.get("type", "command")),
        path=path,
        inputs=inputs,
        outputs=outputs,
        output_details=details,
    )


def contract_for_task(task: str) -> ComponentContract:
    """The contract of the `<task>_pipeline` component that fine-tunes a spec task (e.g. chat-completion)."""
    try:
        return contract(TASK_COMPONENTS[task])
    except KeyError:
        raise BuildError(
            f"no registry pipeline component fine-tunes task {task!r}",
            path="task",
            hint=f"registry pipelines exist for: {', '.join(TASK_COMPONENTS)}",
        ) from None


def list_contracts() -> list[ComponentContract]:
    """Every shipped registry component spec, sorted by name."""
    return [contract(p.name.removesuffix(".spec.yaml")) for p in sorted(SPECS_DIR.glob("*.spec.yaml"))]


def check_component_version(name: str, version: str) -> str:
    """The version to reference ('latest' or a pinned one); BuildError for a malformed or unknown version.

    azfinetune checks every input against the shipped spec. A pinned version is accepted when it is that
    version or a later patch of it (same major.minor): the registry adds inputs over patches but keeps the
    ones azfinetune passes. An older version may lack them, and another major/minor is a new contract."""
    shipped = contract(name)
    if version == "latest":
        return version
    if not _VERSION.fullmatch(version):
        raise BuildError(
            f"{version!r} is not a component version",
            path="target.component_version",
            hint=f"use 'latest' or a version like {shipped.version}",
        )
    wanted, known = _version_tuple(version), shipped.version_tuple
    wanted = wanted + (0,) * (len(known) - len(wanted))
    if wanted[:2] != known[:2] or wanted < known:
        raise BuildError(
            f"{name} version {version} is unknown to azfinetune: it checks inputs against {name} "
            f"{shipped.version}, and accepts that version or a later {'.'.join(map(str, known[:2]))}.x",
            path="target.component_version",
            hint=f"use component_version: latest or {shipped.version}",
        )
    return version


def component_id(name: str, version: str = "latest", *, registry: str = REGISTRY) -> str:
    """`azureml://registries/<registry>/components/<name>/labels/latest` or `.../versions/<version>`."""
    base = f"azureml://registries/{registry}/components/{name}"
    return f"{base}/labels/latest" if version == "latest" else f"{base}/versions/{version}"


@functools.cache
def _load_component(name: str) -> Any:
    from azure.ai.ml import load_component

    return load_component(source=str(contract(name).path))


def load_registry_component(name: str) -> Any:
    """The component as an azure.ai.ml entity, loaded offline from the shipped spec (no HTTP request).

    Its inputs, types and enums are the registry's; a builder calls it to make a node and then points the node
    at the registry id, so the service runs the registry's own component and azure-ai-ml uploads nothing."""
    return _load_component(name)
