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
    "SHIPPED_DIR",
    "components_dir",
    "environment_dirs",
    "generated_dir",
    "is_local_path",
    "job_code_dir",
    "project_root",
    "resolve_environment_dir",
]

#: Folder, beside the spec, where the builder writes files a job needs (DeepSpeed configs).
GENERATED_DIR = ".azfinetune"


#: Inside an installed wheel, the project folders azfinetune builds jobs from (see setup.py).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "_shipped"


def project_root() -> Path:
    """Where jobs/ and environments/ are: the wheel's shipped copy, else the project checkout."""
    if (SHIPPED_DIR / "jobs" / "src").is_dir():
        return SHIPPED_DIR
    return Path(__file__).resolve().parents[2]


def job_code_dir() -> Path:
    """jobs/src: the code every training job runs (`python -m finetune`), shipped with azfinetune."""
    folder = project_root() / "jobs" / "src"
    if not (folder / "finetune").is_dir():
        raise BuildError(
            f"the training code is missing: no {folder / 'finetune'}",
            hint="reinstall azfinetune (the wheel ships jobs/src), or install it from a project checkout",
        )
    return folder


def components_dir() -> Path:
    """jobs/components: the pipeline steps' Azure ML component YAMLs."""
    return project_root() / "jobs" / "components"


def environment_dirs(spec: FineTuneSpec, relative: str) -> list[Path]:
    """Where an environment folder named in a spec may be: beside the spec, then the shipped environments."""
    return [spec.resolve_path(relative), project_root() / relative]


def resolve_environment_dir(spec: FineTuneSpec) -> Path:
    """The environment folder a spec names: relative to the spec's folder first, then to the project."""
    relative = spec.environment
    for candidate in environment_dirs(spec, relative):
        if candidate.is_dir():
            return candidate.resolve()
    raise BuildError(
        f"environment folder {relative} not found (looked beside the spec and in {project_root()})",
        path="environment",
        hint="use environments/finetune-gpu (shipped with azfinetune), or azureml:<name>:<version>",
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
