"""What every builder shares: the spec's fingerprint, the deterministic job name, and azfinetune's tags."""

from __future__ import annotations

import contextlib
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from azfinetune._version import __version__

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = ["TAG_PREFIX", "azfinetune_tags", "file_sha256", "folder_sha256", "job_name", "spec_fingerprint"]

TAG_PREFIX = "azfinetune."


@lru_cache(maxsize=1024)
def _file_sha256(path: str, device: int, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's content, cached within the process by (path, device, inode, size, mtime_ns, ctime_ns):
    a file rewritten with the same size and mtime still changes its ctime (or inode), so it is hashed again."""
    stat = path.stat()
    return _file_sha256(
        str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
    )


def folder_sha256(folder: Path) -> str:
    """sha256 over the names and contents of the files a folder upload takes (.amlignore/.gitignore honoured)."""
    from azfinetune.secrets import uploaded_files

    digest = hashlib.sha256()
    for path in uploaded_files(folder, lambda rel: "__pycache__" in rel.parts or rel.suffix == ".pyc"):
        digest.update(
            path.relative_to(folder).as_posix().encode() + b"\0" + file_sha256(path).encode() + b"\0"
        )
    return digest.hexdigest()


#: Target kinds whose jobs run Azure's own code, not jobs/src (filled in by TargetBase subclasses as they are
#: defined: a kind that is not here counts as running our code, so its job name sees the code).
AZURE_CODE_KINDS: set[str] = set()


def spec_fingerprint(spec: FineTuneSpec) -> str:
    """sha256 of what defines the job: the canonical spec, its description, the content of every local data
    file, and — for the kinds that run this project's code — of the environment folder and of the job code
    (jobs/src).

    The same spec with the same files always gives the same fingerprint (so the same job name); a changed data
    file, Dockerfile, training script or description gives a new one, even though the spec text is unchanged.
    A job that runs Azure's own code (registry pipelines, serverless, Foundry) keeps its name across azfinetune
    releases: a new jobs/src changes nothing it runs, so re-submitting it must find the job already there."""
    extra: list[str] = [f"description={spec.description or ''}"]
    extra.extend(_folder_fingerprints(spec))
    for role, ref in sorted(spec.data.local_files().items()):
        path = spec.resolve_path(ref)
        if path.is_file():
            extra.append(f"{role}={file_sha256(path)}")
    return spec.content_hash(*extra)


def _folder_fingerprints(spec: FineTuneSpec) -> list[str]:
    from azfinetune.errors import AzFineTuneError
    from azfinetune.targets._environment import is_environment_folder
    from azfinetune.targets._paths import job_code_dir, resolve_environment_dir

    found: list[str] = []
    if spec.target.kind in AZURE_CODE_KINDS:
        return found
    with contextlib.suppress(AzFineTuneError, OSError):
        found.append(f"code={folder_sha256(job_code_dir())}")
    environment = getattr(spec, "environment", None)
    if isinstance(environment, str) and is_environment_folder(environment):
        with contextlib.suppress(AzFineTuneError, OSError):
            found.append(f"environment={folder_sha256(resolve_environment_dir(spec))}")
    return found


def job_name(spec: FineTuneSpec, *, run_suffix: str | None = None) -> str:
    """The deterministic Azure ML job name: '<spec name>-<12 hex of the fingerprint>[-<suffix>]'."""
    name = f"{spec.name}-{spec_fingerprint(spec)[:12]}"
    return f"{name}-{run_suffix}" if run_suffix else name


def azfinetune_tags(spec: FineTuneSpec) -> dict[str, str]:
    """The user's tags plus azfinetune's own (spec hash, version, technique), on every job."""
    tags = dict(spec.tags)
    tags.update(
        {
            f"{TAG_PREFIX}spec_hash": spec_fingerprint(spec),
            f"{TAG_PREFIX}version": __version__,
            f"{TAG_PREFIX}spec_name": spec.name,
            f"{TAG_PREFIX}technique": spec.method.technique.value,
            f"{TAG_PREFIX}task": spec.task.value,
        }
    )
    return tags
