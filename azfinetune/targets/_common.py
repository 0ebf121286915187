"""What every builder shares: the spec's fingerprint, the deterministic job name, and azfinetune's tags."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from azfinetune._version import __version__

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = ["TAG_PREFIX", "azfinetune_tags", "file_sha256", "job_name", "spec_fingerprint"]

TAG_PREFIX = "azfinetune."


@lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's content (cached by path, size and mtime within the process)."""
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def spec_fingerprint(spec: FineTuneSpec) -> str:
    """sha256 of what defines the job: the canonical spec plus the content of every local data file.

    The same spec with the same data always gives the same fingerprint (so the same job name); a changed
    data file gives a new one, even though the spec text is unchanged."""
    extra: list[str] = []
    for role, ref in sorted(spec.data.local_files().items()):
        path = spec.resolve_path(ref)
        if path.is_file():
            extra.append(f"{role}={file_sha256(path)}")
    return spec.content_hash(*extra)


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
