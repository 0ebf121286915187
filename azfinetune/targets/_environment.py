"""The job's Azure ML environment: a project folder (versioned by its content hash) or a reference passed through."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from azfinetune.errors import BuildError, Issue
from azfinetune.secrets import credential_files, uploaded_files
from azfinetune.spec import FineTuneSpec
from azfinetune.targets._paths import environment_dirs, project_root, resolve_environment_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.ai.ml.entities import Environment

__all__ = [
    "ENVIRONMENT_FILE",
    "environment_for_spec",
    "environment_from_folder",
    "environment_issues",
    "environment_reference",
    "environment_version",
    "is_environment_folder",
    "normalize_environment_reference",
]

#: The `az ml environment create -f` definition inside an environment folder (optional: a Dockerfile suffices).
ENVIRONMENT_FILE = "environment.yaml"

# Files that never define an environment: caches and editor litter would otherwise change the version.
_IGNORED_NAMES = {"__pycache__", ".git", ".DS_Store", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
_VERSION_LENGTH = 16
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
# name, name:version or name@label
_REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}([:@][A-Za-z0-9_.-]{1,64})?$")
_REGISTRY_ENV_RE = re.compile(
    r"^azureml://registries/[A-Za-z0-9_-]+/environments/[A-Za-z0-9][A-Za-z0-9_.-]*/(versions/[A-Za-z0-9_.-]+|labels/[A-Za-z0-9_.-]+)$"
)
_ARM_ENV_RE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+"
    r"/environments/[A-Za-z0-9][A-Za-z0-9_.-]*(/versions/[A-Za-z0-9_.-]+)?$",
    re.IGNORECASE,
)


def is_environment_folder(reference: str) -> bool:
    """Whether a spec's `environment` names a folder (as opposed to azureml:..., a curated or asset name)."""
    if reference.startswith(("azureml:", "/subscriptions/")):
        return False
    return "/" in reference or "\\" in reference or reference.startswith((".", "~"))


def _ignored(relative: Path) -> bool:
    return any(part in _IGNORED_NAMES for part in relative.parts) or relative.name.endswith(_IGNORED_SUFFIXES)


def _files(folder: Path) -> list[Path]:
    """The files the build context uploads (.amlignore/.gitignore honoured), which the version hashes."""
    return uploaded_files(folder, _ignored)


def _credentials_problem(folder: Path) -> str | None:
    found = credential_files(_files(folder), folder)
    if not found:
        return None
    return (
        f"the environment folder {folder} holds credential files that would be uploaded with the build context: "
        f"{', '.join(found[:5])}; remove them or list them in {folder / '.amlignore'}"
    )


def environment_version(folder: Path) -> str:
    """16 hex of the sha256 over the folder's file names and contents: unchanged folder, unchanged version.

    Azure ML builds an image once per environment version, so an unchanged folder is never rebuilt."""
    folder = folder.resolve()
    digest = hashlib.sha256()
    files = _files(folder)
    if not files:
        raise BuildError(f"environment folder {folder} is empty", path="environment")
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:_VERSION_LENGTH]


def _definition(folder: Path) -> dict[str, Any]:
    path = folder / ENVIRONMENT_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BuildError(f"{path} is not valid YAML: {error}", path="environment") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BuildError(f"{path} must be a mapping (the az ml environment schema)", path="environment")
    return data


def environment_from_folder(folder: Path, *, name: str | None = None) -> Environment:
    """The Environment entity of a project folder: its Docker build context (or image + conda file).

    Name: `name`, else environment.yaml's name, else azfinetune-<folder name>; version: environment_version."""
    from azure.ai.ml.entities import BuildContext, Environment

    folder = folder.resolve()
    definition = _definition(folder)
    refused = _credentials_problem(folder)
    if refused is not None:
        raise BuildError(refused, path="environment")
    env_name = name or str(definition.get("name") or f"azfinetune-{folder.name}")
    if not _NAME_RE.fullmatch(env_name):
        raise BuildError(f"{env_name!r} is not a valid Azure ML environment name", path="environment")
    common: dict[str, Any] = {
        "name": env_name,
        "version": environment_version(folder),
        "description": definition.get("description") or f"azfinetune training environment ({folder.name})",
        "tags": {str(k): str(v) for k, v in (definition.get("tags") or {}).items()},
    }
    if definition.get("os_type"):
        common["os_type"] = str(definition["os_type"])
    build = definition.get("build")
    if isinstance(build, dict) or (not definition.get("image") and (folder / "Dockerfile").is_file()):
        build = build if isinstance(build, dict) else {}
        context = (folder / str(build.get("path") or ".")).resolve()
        dockerfile = str(build.get("dockerfile_path") or "Dockerfile")
        if not (context / dockerfile).is_file():
            raise BuildError(
                f"no {dockerfile} in the environment's build context {context}", path="environment"
            )
        return Environment(build=BuildContext(path=str(context), dockerfile_path=dockerfile), **common)
    image = definition.get("image")
    if image:
        conda = definition.get("conda_file")
        conda_path = str((folder / str(conda)).resolve()) if conda else None
        return Environment(image=str(image), conda_file=conda_path, **common)
    raise BuildError(
        f"{folder} defines no environment: it needs a Dockerfile or an {ENVIRONMENT_FILE} with build: or image:",
        path="environment",
    )


def normalize_environment_reference(reference: str) -> str:
    """An environment reference as azure-ai-ml's Python builder needs it (and as load_job reads YAML).

    `azureml:name:version` -> `name:version`; `azureml:name@label` -> `name@label` (azure-ai-ml would look up
    an environment literally named `azureml:name`); a bare name -> `name@latest`; registry URIs
    (azureml://...) and ARM ids pass through; curated names (AzureML-...) likewise, with @latest if unlabelled."""
    ref = reference.strip()
    if not ref:
        raise BuildError("the environment reference is empty", path="environment")
    if ref.startswith("azureml://"):
        if not _REGISTRY_ENV_RE.fullmatch(ref):
            raise BuildError(
                f"{reference!r} is not a registry environment",
                path="environment",
                hint="use azureml://registries/<registry>/environments/<name>/versions/<v> (or /labels/latest)",
            )
        return ref
    if ref.startswith("azureml:"):
        ref = ref[len("azureml:") :]
    if ref.startswith("/subscriptions/"):
        if not _ARM_ENV_RE.fullmatch(ref):
            raise BuildError(f"{reference!r} is not an environment resource id", path="environment")
        return ref
    if not _REFERENCE_RE.fullmatch(ref):
        raise BuildError(
            f"{reference!r} is not an environment reference",
            path="environment",
            hint="use azureml:<name>:<version>, azureml:<name>@latest, a curated name or an environment folder",
        )
    if ":" not in ref and "@" not in ref:
        ref = f"{ref}@latest"
    return ref


def environment_for_spec(spec: FineTuneSpec) -> Environment | str:
    """What the job's `environment` is: the folder's Environment entity, or a normalised reference string."""
    if is_environment_folder(spec.environment):
        return environment_from_folder(resolve_environment_dir(spec))
    return normalize_environment_reference(spec.environment)


def environment_reference(environment: Any) -> str:
    """`name:version` of an Environment entity (what the job will point at), or a reference string as is."""
    if isinstance(environment, str):
        return environment
    name, version = getattr(environment, "name", None), getattr(environment, "version", None)
    if name and version:
        return f"{name}:{version}"
    raise BuildError("the job's environment has no name and version", path="environment")


def _folder_problem(folder: Path) -> str | None:
    """Why a folder does not define an environment (the same checks environment_from_folder makes), or None."""
    try:
        definition = _definition(folder)
    except BuildError as error:
        return error.message
    name = str(definition.get("name") or f"azfinetune-{folder.name}")
    if not _NAME_RE.fullmatch(name):
        return f"{name!r} is not a valid Azure ML environment name"
    if not _files(folder):
        return f"environment folder {folder} is empty"
    refused = _credentials_problem(folder)
    if refused is not None:
        return refused
    build = definition.get("build")
    if isinstance(build, dict) or (not definition.get("image") and (folder / "Dockerfile").is_file()):
        build = build if isinstance(build, dict) else {}
        context = (folder / str(build.get("path") or ".")).resolve()
        dockerfile = str(build.get("dockerfile_path") or "Dockerfile")
        if not (context / dockerfile).is_file():
            return f"no {dockerfile} in the environment's build context {context}"
        return None
    if definition.get("image"):
        conda = definition.get("conda_file")
        if conda and not (folder / str(conda)).is_file():
            return f"the conda file {conda} named in {ENVIRONMENT_FILE} is missing"
        return None
    return f"{folder} defines no environment: it needs a Dockerfile or an {ENVIRONMENT_FILE} with build: or image:"


def environment_issues(spec: FineTuneSpec) -> Iterator[Issue]:
    """The spec's `environment`, checked offline: a folder that defines an environment, or a valid reference."""
    reference = spec.environment
    if is_environment_folder(reference):
        folder = next((path for path in environment_dirs(spec, reference) if path.is_dir()), None)
        if folder is None:
            yield Issue(
                "environment",
                f"environment folder {reference} not found (looked beside the spec and in {project_root()})",
                hint="use environments/finetune-gpu (shipped with azfinetune), or azureml:<name>:<version>",
            )
            return
        problem = _folder_problem(folder.resolve())
        if problem is not None:
            yield Issue("environment", problem, hint="see environments/finetune-gpu for a working folder")
        return
    try:
        normalize_environment_reference(reference)
    except BuildError as error:
        yield Issue("environment", error.message, hint=error.hint)
