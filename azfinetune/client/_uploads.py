"""Local data files to the workspace's default datastore, content-addressed, each uploaded at most once."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.client._settings import REMOTE_PREFIXES

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

logger = logging.getLogger("azfinetune.client")

__all__ = ["container_client", "data_inputs", "is_local_file", "local_data_files", "upload_blob"]


def is_local_file(path: Any) -> bool:
    if not isinstance(path, str | os.PathLike) or str(path).startswith(REMOTE_PREFIXES):
        return False
    return Path(path).is_file()


def data_inputs(job: Any) -> list[Any]:
    """Every azure.ai.ml Input of the job (and of its pipeline steps), wrappers unwrapped."""
    from azure.ai.ml import Input

    found: list[Any] = []
    seen: set[int] = set()

    def take(value: Any) -> None:
        value = getattr(value, "_data", value)
        if isinstance(value, Input) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)

    def visit(entity: Any, depth: int) -> None:
        if depth > 4:
            return
        inputs = getattr(entity, "inputs", None)
        if isinstance(inputs, Mapping):
            for value in inputs.values():
                take(value)
        for attribute in ("training_data", "validation_data", "test_data"):
            take(getattr(entity, attribute, None))
        steps = getattr(entity, "jobs", None)
        if isinstance(steps, Mapping):
            for step in steps.values():
                visit(step, depth + 1)

    visit(job, 0)
    return found


def local_data_files(spec: FineTuneSpec) -> list[tuple[str, Path, str]]:
    """(role, absolute path, sha256) of the spec's local data files."""
    from azfinetune.targets import file_sha256

    files = []
    for role, ref in spec.data.files().items():
        if ref.startswith(REMOTE_PREFIXES):
            continue
        path = spec.resolve_path(ref).resolve()
        if path.is_file():
            files.append((role, path, file_sha256(path)))
    return files


def upload_blob(container: Any, blob_path: str, path: Path, sha: str) -> bool:
    """Upload unless the blob exists (content-addressed: same path, same content). True when it uploaded."""
    blob = container.get_blob_client(blob_path)
    if blob.exists():
        return False
    logger.info("uploading %s (%d bytes)", path.name, path.stat().st_size)
    with path.open("rb") as handle:
        # Metadata travels with the one Put Blob (or the final Put Block List), so a blob that exists is complete.
        blob.upload_blob(
            handle,
            length=path.stat().st_size,
            overwrite=True,
            metadata={"azfinetune_sha256": sha, "upload_status": "completed"},
            max_concurrency=4,
        )
    return True


def container_client(datastore: Any, credential: Any) -> Any:
    """A ContainerClient of a blob datastore: its account key or SAS when the workspace gave one, else the
    user's credential; storage retries bounded (5 tries, 2 s + 2^n s apart, ± 1 s)."""
    from azure.storage.blob import ContainerClient, ExponentialRetry

    credentials = getattr(datastore, "credentials", None)
    secret = getattr(credentials, "account_key", None) or getattr(credentials, "sas_token", None)
    protocol = getattr(datastore, "protocol", None) or "https"
    endpoint = getattr(datastore, "endpoint", None) or "core.windows.net"
    return ContainerClient(
        account_url=f"{protocol}://{datastore.account_name}.blob.{endpoint}",
        container_name=datastore.container_name,
        credential=secret or credential,
        # Storage's default waits 15 s + 3^n s between tries.
        retry_policy=ExponentialRetry(
            initial_backoff=2, increment_base=2, retry_total=5, random_jitter_range=1
        ),
        user_agent="azfinetune",
    )
