"""Which Azure ML workspace: flags, the spec's `workspace:`, AZURE_* variables, config.json — no network."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from azfinetune.errors import (
    UserInputError,
)

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = ["WORKSPACE_VARIABLES", "WorkspaceConfig", "resolve_workspace"]

WORKSPACE_VARIABLES = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "workspace_name": "AZUREML_WORKSPACE_NAME",
}


@dataclass(frozen=True)
class WorkspaceConfig:
    """The workspace a client talks to, and where each value came from (for error messages)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [key for key in WORKSPACE_VARIABLES if not getattr(self, key)]

    @property
    def workspace_id(self) -> str | None:
        if self.missing:
            return None
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def require(self) -> None:
        """Raise UserInputError naming what is missing and every way to give it."""
        if not self.missing:
            return
        labels = {
            "subscription_id": "subscription id",
            "resource_group": "resource group",
            "workspace_name": "workspace",
        }
        raise UserInputError(
            f"no Azure ML workspace configured: missing {', '.join(labels[m] for m in self.missing)}",
            hint="pass --subscription/--resource-group/--workspace, set `workspace:` in the spec, set "
            "AZURE_SUBSCRIPTION_ID/AZURE_RESOURCE_GROUP/AZUREML_WORKSPACE_NAME, or put the workspace's config.json "
            "(Azure portal → the workspace → Download config.json) in this folder or .azureml/",
        )


def _find_config_file(path: str | os.PathLike[str] | None) -> Path | None:
    """config.json as MLClient.from_config finds it: `path` if it is a file, else in .azureml/, aml_config/ or the
    folder itself (config.json, then project.json), from `path` (default: the current folder) up 20 levels."""
    start = Path(path) if path is not None else Path.cwd()
    if start.is_file():
        return start
    start = start.resolve()
    for folder_name in (".azureml", "aml_config", None):
        for file_name in ("config.json", "project.json"):
            current = start
            for _ in range(21):
                candidate = current / folder_name / file_name if folder_name else current / file_name
                if candidate.is_file():
                    return candidate
                if current.parent == current:
                    break
                current = current.parent
    return None


def _read_config_file(found: Path) -> dict[str, str]:
    try:
        data = json.loads(found.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{found}: not a readable JSON workspace config ({error})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{found}: a workspace config must be a JSON object")
    scope = data.get("Scope")
    if isinstance(scope, str) and scope:
        pieces = scope.split("/")
        if len(pieces) < 9:
            raise UserInputError(f"{found}: Scope is not a workspace resource id")
        return {"subscription_id": pieces[2], "resource_group": pieces[4], "workspace_name": pieces[8]}
    return {key: str(data[key]) for key in WORKSPACE_VARIABLES if data.get(key)}


def resolve_workspace(
    *,
    path: str | os.PathLike[str] | None = None,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    workspace_name: str | None = None,
    spec: FineTuneSpec | None = None,
) -> WorkspaceConfig:
    """The workspace, value by value, in this precedence: arguments (CLI flags) > the spec's `workspace:` >
    AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME > config.json (found as
    `MLClient.from_config` finds it, from `path` or the current folder upwards). No network."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}

    def offer(key: str, value: str | None, source: str) -> None:
        if value and key not in values:
            values[key] = value
            sources[key] = source

    offer("subscription_id", subscription_id, "flag")
    offer("resource_group", resource_group, "flag")
    offer("workspace_name", workspace_name, "flag")
    if spec is not None and spec.workspace is not None:
        where = f"spec {spec.source}" if spec.source else "spec"
        offer("subscription_id", spec.workspace.subscription_id, where)
        offer("resource_group", spec.workspace.resource_group, where)
        offer("workspace_name", spec.workspace.name, where)
    for key, variable in WORKSPACE_VARIABLES.items():
        offer(key, os.environ.get(variable), f"env {variable}")
    if len(values) < len(WORKSPACE_VARIABLES) or path is not None:
        found = _find_config_file(path)
        if found is None and path is not None:
            raise UserInputError(f"no config.json found at or above {path}")
        if found is not None:
            for key, value in _read_config_file(found).items():
                offer(key, value, f"config {found}")
    return WorkspaceConfig(
        subscription_id=values.get("subscription_id"),
        resource_group=values.get("resource_group"),
        workspace_name=values.get("workspace_name"),
        sources=sources,
    )
