"""What every service's client does, whatever the platform: the interface the CLI's job commands use.

FineTuneClient (Azure ML) is one; a target whose jobs go to another service (Kubernetes for Kaito, a Foundry
resource) comes with a client of the same shape, chosen by the target's `service`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from azfinetune.client._results import JobEvent, JobInfo, SubmittedJob
from azfinetune.spec import FineTuneSpec

__all__ = ["JobService"]


@runtime_checkable
class JobService(Protocol):
    """Submit a spec once; follow, list and cancel its jobs. Constructing one makes no network call."""

    def submit(
        self,
        spec_or_path: FineTuneSpec | str,
        *,
        dry_run: bool = False,
        wait: bool = False,
        run_suffix: str | None = None,
        allow_retired: bool = False,
        overrides: Sequence[str] | Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SubmittedJob: ...

    def get(self, name: str) -> JobInfo: ...

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        spec_name: str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = None,
        all_jobs: bool = False,
    ) -> list[JobInfo]: ...

    def cancel(self, name: str, *, timeout: float = 300.0) -> JobInfo: ...

    def wait(
        self,
        name: str,
        *,
        timeout: float | None = ...,
        poll_interval: float = ...,
        on_status: Callable[[str | None], None] | None = None,
    ) -> JobInfo: ...

    def stream(
        self,
        name: str,
        *,
        follow: bool = True,
        timeout: float | None = None,
        poll_interval: float = ...,
        raise_on_failure: bool = True,
    ) -> Iterator[JobEvent]: ...
