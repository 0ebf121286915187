"""What the client returns: the submitted job, a job's state, stream events, uploaded files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from azfinetune.errors import (
    Issue,
)

__all__ = [
    "SPEC_HASH_TAG",
    "SPEC_NAME_TAG",
    "TERMINAL_STATUSES",
    "JobEvent",
    "JobInfo",
    "SubmittedJob",
    "UploadedFile",
    "job_status",
]

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})


SPEC_HASH_TAG = "azfinetune.spec_hash"


SPEC_NAME_TAG = "azfinetune.spec_name"


def job_status(value: Any) -> str | None:
    """A job status as the service spells it ('Running'), whether azure-ai-ml gave a str or its JobStatus enum."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _parse_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class UploadedFile:
    """A local data file and where it lives in the workspace (content-addressed, so never uploaded twice)."""

    role: str
    local_path: str
    uri: str
    sha256: str
    uploaded: bool  # False: the same content was already there (or, for a dry run, nothing was sent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "local_path": self.local_path,
            "uri": self.uri,
            "sha256": self.sha256,
            "uploaded": self.uploaded,
        }


@dataclass
class SubmittedJob:
    """What `FineTuneClient.submit` did: the job's name and state, whether this call created it, its Studio URL."""

    name: str
    kind: str
    spec_name: str
    spec_hash: str
    status: str | None
    studio_url: str | None
    created: bool
    dry_run: bool = False
    uploads: list[UploadedFile] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    job: Any = field(
        default=None, repr=False
    )  # the azure.ai.ml Job entity (built for a dry run, else the service's)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with nothing secret in it (no tokens, keys or SAS URLs ever reach this object)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "spec_name": self.spec_name,
            "spec_hash": self.spec_hash,
            "status": self.status,
            "studio_url": self.studio_url,
            "created": self.created,
            "dry_run": self.dry_run,
            "uploads": [upload.to_dict() for upload in self.uploads],
            "warnings": [str(issue) for issue in self.warnings],
        }


@dataclass(frozen=True)
class JobInfo:
    """A job as `get`, `list`, `wait` and `cancel` return it."""

    name: str
    status: str | None
    kind: str | None
    display_name: str | None
    experiment_name: str | None
    created_at: datetime | None
    studio_url: str | None
    compute: str | None
    tags: Mapping[str, str]
    error: str | None = None
    job: Any = field(default=None, repr=False, compare=False)

    @property
    def spec_name(self) -> str | None:
        return self.tags.get(SPEC_NAME_TAG)

    @property
    def spec_hash(self) -> str | None:
        return self.tags.get(SPEC_HASH_TAG)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_job(cls, job: Any, *, error: str | None = None) -> JobInfo:
        context = getattr(job, "creation_context", None)
        created = getattr(context, "created_at", None)
        if isinstance(created, str):
            created = _parse_datetime(created)
        compute = getattr(job, "compute", None)
        if isinstance(compute, str):
            compute = compute.rstrip("/").rsplit("/", 1)[-1]
        return cls(
            name=str(job.name),
            status=job_status(getattr(job, "status", None)),
            kind=job_status(getattr(job, "type", None)),
            display_name=getattr(job, "display_name", None),
            experiment_name=getattr(job, "experiment_name", None),
            created_at=created if isinstance(created, datetime) else None,
            studio_url=getattr(job, "studio_url", None),
            compute=compute if isinstance(compute, str) else None,
            tags={str(k): str(v) for k, v in (getattr(job, "tags", None) or {}).items()},
            error=error,
            job=job,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "kind": self.kind,
            "display_name": self.display_name,
            "experiment_name": self.experiment_name,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "studio_url": self.studio_url,
            "compute": self.compute,
            "spec_name": self.spec_name,
            "spec_hash": self.spec_hash,
            "tags": dict(self.tags),
            "error": self.error,
        }


@dataclass(frozen=True)
class JobEvent:
    """One thing `stream` saw: a status change, or a line of a log file."""

    kind: Literal["status", "log"]
    job_name: str
    status: str | None
    text: str = ""
    log_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "job_name": self.job_name,
            "status": self.status,
            "text": self.text,
            "log_file": self.log_file,
        }
