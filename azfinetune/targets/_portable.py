"""A built job's local paths and environment as `az ml job create -f` YAML takes them: relative and portable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azfinetune.errors import BuildError
from azfinetune.targets._paths import is_local_path

__all__ = ["plain", "relative_path", "yaml_environment", "yaml_input", "yaml_reference"]


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def relative_path(path: str | os.PathLike[str], *, job_base: Path, base_dir: Path) -> str:
    """A local path of the job as a POSIX path relative to base_dir (where the export will be read from)."""
    absolute = (job_base / Path(path)).resolve()
    return Path(os.path.relpath(absolute, base_dir.resolve())).as_posix()


def yaml_reference(reference: str) -> str:
    """How the job YAML schema wants a named asset: with `azureml:` (load_job strips it again)."""
    if reference.startswith(("azureml:", "/subscriptions/")) or "://" in reference:
        return reference
    return f"azureml:{reference}"


def yaml_input(value: Any, *, job_base: Path, base_dir: Path) -> Any:
    path = getattr(value, "path", None)
    if path is None or not isinstance(path, str):
        return None
    if is_local_path(path):
        return relative_path(path, job_base=job_base, base_dir=base_dir)
    if "://" in path or path.startswith("/subscriptions/"):
        return path
    return yaml_reference(path)


def yaml_environment(environment: Any, *, job_base: Path, base_dir: Path) -> Any:
    if isinstance(environment, str):
        return yaml_reference(environment)
    build = getattr(environment, "build", None)
    env_base = Path(getattr(environment, "base_path", None) or job_base)
    # Inline, without name/version: `az ml job create` registers an inline environment anonymously
    # (versioned by its content) and warns about, then ignores, a name.
    if build is not None and build.path:
        context: dict[str, Any] = {"path": relative_path(build.path, job_base=env_base, base_dir=base_dir)}
        if build.dockerfile_path and build.dockerfile_path != "Dockerfile":
            context["dockerfile_path"] = build.dockerfile_path
        return {"build": context}
    if getattr(environment, "image", None):
        inline: dict[str, Any] = {"image": environment.image}
        conda_path = getattr(environment, "conda_file_path", None) or getattr(
            environment, "_conda_file_path", None
        )
        if conda_path:
            inline["conda_file"] = relative_path(conda_path, job_base=env_base, base_dir=base_dir)
        elif getattr(environment, "conda_file", None):
            inline["conda_file"] = environment.conda_file
        return inline
    raise BuildError("the job's environment has neither a build context nor an image")
