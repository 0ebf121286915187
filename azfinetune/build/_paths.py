"""Where the project's job code and environments live, and how local paths in a spec resolve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from azfinetune.errors import BuildError

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = [
    "GENERATED_DIR",
    "generated_dir",
    "is_local_path",
    "job_code_dir",
    "project_root",
    "resolve_environment_dir",
]

#: Folder, beside the spec, where the builder writes files a job needs (DeepSpeed configs).
GENERATED_DIR = ".azfinetune"


def project_root() -> Path:
    """The azfinetune project checkout (the folder holding azfinetune/, jobs/ and environments/)."""
    import azfinetune

    return Path(azfinetune.__file__).resolve().parents[1]


def job_code_dir() -> Path:
    """jobs/src of the project: the code every training job runs (`python -m finetune`)."""
    folder = project_root() / "jobs" / "src"
    if not (folder / "finetune").is_dir():
        raise BuildError(
            f"the training code is missing: no {folder / 'finetune'}",
            hint="azfinetune builds Azure ML jobs from a project checkout (pip install -e .), "
            "which holds jobs/src",
        )
    return folder


def resolve_environment_dir(spec: FineTuneSpec) -> Path:
    """The environment folder a spec names: relative to the spec's folder first, then to the project."""
    relative = spec.environment
    for candidate in (spec.resolve_path(relative), project_root() / relative):
        if candidate.is_dir():
            return candidate.resolve()
    raise BuildError(
        f"environment folder {relative} not found (looked beside the spec and in {project_root()})",
        path="environment",
        hint="use environments/finetune-gpu from this project, or azureml:<name>:<version>",
    )


def generated_dir(spec: FineTuneSpec) -> Path:
    """Where build artefacts of this spec go: <spec folder>/.azfinetune (relative paths in exports stay valid)."""
    return (spec.base_dir / GENERATED_DIR).resolve()


def is_local_path(reference: str) -> bool:
    """Whether an input path is a local file or folder, as azure-ai-ml decides at submit time.

    Absolute paths are local; URIs (scheme://) are remote; anything else with ':' or '@' is an asset
    reference (name:version, name@label); the rest are paths relative to the job's folder."""
    if os.path.isabs(reference):
        return True
    if "://" in reference or reference.startswith("azureml:"):
        return False
    return ":" not in reference and "@" not in reference
