"""FineTuneClient: submit a spec to an Azure ML workspace exactly once, then follow, list and cancel its jobs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azfinetune.client._errors import (
    azure_core_error,
    failed_job_error,
    is_foreign,
    is_name_conflict,
    is_transient,
    map_azure_error,
    redact,
    run_error_codes,
    run_error_message,
    status_code,
)
from azfinetune.client._locks import submit_lock
from azfinetune.client._results import (
    SPEC_HASH_TAG,
    TERMINAL_STATUSES,
    JobEvent,
    JobInfo,
    SubmittedJob,
    UploadedFile,
    job_status,
)
from azfinetune.client._settings import DATASTORE, RETRY_SETTINGS, SUBMIT_ATTEMPTS, TRANSIENT_STATUS
from azfinetune.client._uploads import (
    container_client,
    data_inputs,
    is_local_file,
    local_data_files,
    upload_blob,
)
from azfinetune.client._workspace import WORKSPACE_VARIABLES, WorkspaceConfig, resolve_workspace
from azfinetune.errors import (
    AzFineTuneError,
    ConflictError,
    DataError,
    Issue,
    ServiceError,
    SpecError,
)
from azfinetune.spec import FineTuneSpec, load_spec, parse_overrides, spec_from_dict
from azfinetune.targets import (
    CheckReport,
    check_spec,
    file_sha256,
    get_target,
    job_name,
    resume_source_issues,
    spec_fingerprint,
)
from azfinetune.targets.serverless import check_not_retired

__all__ = ["FineTuneClient", "use_ml_client"]

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)


_ML_CLIENT_OVERRIDE: ContextVar[Any | None] = ContextVar("azfinetune_ml_client_override", default=None)


@contextlib.contextmanager
def use_ml_client(ml_client: Any) -> Iterator[Any]:
    """Make every `FineTuneClient.from_config()` inside the block use `ml_client`, ignoring flags and config.

    This is how tests point the CLI at a FakeWorkspace without touching the environment::

        with FakeWorkspace() as ws, use_ml_client(ws.ml_client()):
            run_with_boundary(cli, ["submit", "spec.yaml"])
    """
    token = _ML_CLIENT_OVERRIDE.set(ml_client)
    try:
        yield ml_client
    finally:
        _ML_CLIENT_OVERRIDE.reset(token)


def _sleep(seconds: float) -> None:
    """Every wait of this module goes through azure-core's transport sleep, the one hook the SDK's own retry and
    polling sleeps use, so a test fake that zeroes those (FakeWorkspace does) zeroes ours too."""
    if seconds <= 0:
        return
    from azure.core.pipeline.transport import HttpTransport

    HttpTransport.sleep(None, seconds)  # type: ignore[arg-type]


def _submittable(job: Any) -> Any:
    """azure-ai-ml 1.35's jobs.create_or_update refuses CommandJob entities ("Non supported job type") and takes
    the Command node instead; the node is built field by field, so the REST body is the same."""
    from azure.ai.ml.entities import CommandJob

    if not isinstance(job, CommandJob):
        return job
    from azure.ai.ml import command

    source: Any = job  # azure-ai-ml's own annotations disagree between CommandJob and command()

    node = command(
        name=source.name,
        display_name=source.display_name,
        experiment_name=source.experiment_name,
        description=source.description,
        tags=dict(source.tags or {}),
        properties=dict(source.properties or {}),
        code=source.code,
        command=source.command,
        inputs=dict(source.inputs or {}),
        outputs=dict(source.outputs or {}),
        environment=source.environment,
        environment_variables=dict(source.environment_variables or {}),
        compute=source.compute,
        distribution=source.distribution,
        identity=source.identity,
        services=source.services,
    )
    node.resources = source.resources
    node.limits = source.limits
    node.queue_settings = source.queue_settings
    return node


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """azure-ai-ml prints colour resets (and, through logging's last resort, warnings) to stderr while it uploads,
    whatever show_progress says; nothing below the CLI prints, so that text is kept for the debug log instead."""
    buffer = io.StringIO()
    # azure-ai-ml's package logger has its own stderr StreamHandler (bound at import, so redirecting sys.stderr
    # misses it): point it at the buffer too, for the duration.
    handlers = [h for h in logging.getLogger("azure.ai.ml").handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.setStream(buffer) for h in handlers]
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)
    text = re.sub(r"\x1b\[[0-9;]*m", "", buffer.getvalue())
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip() and "%|" not in line]
    if lines:
        logger.debug("azure-ai-ml printed: %s", redact("\n".join(lines)))


_SPEC_CONFLICT = "jobs are immutable: submit with --new-run to make a new job from this spec"


def _check_offline(spec: FineTuneSpec, *, allow_retired: bool) -> CheckReport:
    """check_spec (fields, rules, files, data) and the retired-model refusal: any error raises, nothing is sent."""
    report = check_spec(spec, data=True)
    report.raise_for_errors()
    for role, data_report in report.data_reports.items():
        if not getattr(data_report, "ok", True):
            problems = getattr(data_report, "errors", [])[:5]
            summary = data_report.summary() if hasattr(data_report, "summary") else "invalid"
            details = "".join(f"\n  {problem}" for problem in problems)
            raise DataError(
                f"data.{role}: {summary}{details}",
                report=data_report,
                hint=f"run `azfinetune data validate {spec.data.files()[role]} --task {spec.data_kind}`",
            )
    check_not_retired(spec, allow_retired=allow_retired)
    return report


class FineTuneClient:
    """One Azure ML workspace: submit specs (idempotently), follow, list and cancel their jobs.

    Constructing it makes no network call; `DefaultAzureCredential` is used unless a credential or an MLClient is
    given. HTTP logging (`logging_enable`) is never turned on: it would log bearer tokens and request bodies."""

    def __init__(
        self,
        credential: TokenCredential | None = None,
        *,
        ml_client: Any | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        workspace: WorkspaceConfig | None = None,
    ) -> None:
        self._credential = credential
        self._ml_client = ml_client
        if workspace is None:
            workspace = WorkspaceConfig(
                subscription_id=subscription_id,
                resource_group=resource_group,
                workspace_name=workspace_name,
                sources={
                    k: "argument"
                    for k, v in _given(subscription_id, resource_group, workspace_name).items()
                    if v
                },
            )
        if ml_client is not None:
            workspace = WorkspaceConfig(
                subscription_id=getattr(ml_client, "subscription_id", None),
                resource_group=getattr(ml_client, "resource_group_name", None),
                workspace_name=getattr(ml_client, "workspace_name", None),
                sources=dict.fromkeys(WORKSPACE_VARIABLES, "ml_client"),
            )
        self.workspace = workspace

    @classmethod
    def from_config(
        cls,
        *,
        path: str | os.PathLike[str] | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        credential: TokenCredential | None = None,
        spec: FineTuneSpec | None = None,
    ) -> FineTuneClient:
        """A client for the workspace found in this precedence, value by value: the arguments (CLI flags) > the
        spec's `workspace:` > AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME > config.json
        (as `MLClient.from_config` finds it). No network; a missing value is reported on first use, so a dry run
        needs no workspace at all."""
        override = _ML_CLIENT_OVERRIDE.get()
        if override is not None:
            return cls(ml_client=override)
        workspace = resolve_workspace(
            path=path,
            subscription_id=subscription_id,
            resource_group=resource_group,
            workspace_name=workspace_name,
            spec=spec,
        )
        return cls(credential, workspace=workspace)

    # ------------------------------------------------------------------------------------------ plumbing

    @property
    def ml_client(self) -> Any:
        """The azure.ai.ml MLClient (created on first use, with azfinetune's explicit retry settings)."""
        if self._ml_client is None:
            self.workspace.require()
            from azure.ai.ml import MLClient

            from azfinetune._version import __version__

            self._ml_client = MLClient(
                credential=self.credential,
                subscription_id=self.workspace.subscription_id,
                resource_group_name=self.workspace.resource_group,
                workspace_name=self.workspace.workspace_name,
                user_agent=f"azfinetune/{__version__}",
                # show_progress must stay on: with it off, azure-ai-ml 1.35 drops the errors of a folder upload's
                # worker threads and then waits forever for the failed files (_blob_storage_helper.upload). The bars
                # go to stderr, which _quiet_stderr captures: nothing below the CLI prints.
                show_progress=True,
                enable_telemetry=False,
                **RETRY_SETTINGS,
            )
        return self._ml_client

    @property
    def credential(self) -> Any:
        if self._credential is None:
            injected = getattr(self._ml_client, "_credential", None) if self._ml_client is not None else None
            if injected is not None:
                self._credential = injected
            else:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
        return self._credential

    def studio_url(self, name: str) -> str:
        """The job's page in Azure ML Studio (built from the workspace; no network)."""
        self.workspace.require()
        wsid = (
            f"/subscriptions/{self.workspace.subscription_id}/resourcegroups/{self.workspace.resource_group}"
            f"/workspaces/{self.workspace.workspace_name}"
        )
        return f"https://ml.azure.com/runs/{quote(name, safe='')}?wsid={wsid}"

    def _call(self, what: str, function: Any, *args: Any, job_name: str | None = None, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AzFineTuneError:
            raise
        except Exception as error:
            if not is_foreign(error):
                raise
            raise map_azure_error(error, job_name=job_name, during=what) from error

    # ------------------------------------------------------------------------------------------ submit

    def registry_client(self, registry: str) -> Any:
        """An MLClient of an Azure ML registry (e.g. `azureml`), with the same credential and retry settings."""
        from azure.ai.ml import MLClient

        return MLClient(
            credential=self.credential,
            registry_name=registry,
            show_progress=False,
            enable_telemetry=False,
            **RETRY_SETTINGS,
        )

    def submit(
        self,
        spec_or_path: FineTuneSpec | str | os.PathLike[str],
        *,
        dry_run: bool = False,
        wait: bool = False,
        run_suffix: str | None = None,
        allow_retired: bool = False,
        overrides: Sequence[str] | Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SubmittedJob:
        """Check, build and submit a spec under its deterministic name, once.

        Every offline check runs first (spec, files, data, retired models); any error raises and nothing is sent.
        Then the job is looked up by name: if it exists with the same spec hash it is returned as is (one request,
        no upload). Otherwise the target's pre-submit step runs (serverless: workspace region, marketplace
        subscription; pinning a `labels/latest` model), local data files are uploaded content-addressed (skipped
        when already there), and the job is created. A lost answer or an "already exists" error is settled by
        reading the job back: same spec hash → success, another → ConflictError. `run_suffix` makes a new job from
        the same spec on purpose; `dry_run` builds and returns the job without any request; `wait` waits for it
        to finish (`timeout` seconds)."""
        spec = _load(spec_or_path, overrides)
        report = _check_offline(spec, allow_retired=allow_retired)
        name = job_name(spec, run_suffix=run_suffix)
        spec_hash = spec_fingerprint(spec)
        target = get_target(spec.target.kind)
        if dry_run:
            job = target.build(spec)
            job.name = name
            return SubmittedJob(
                name=name,
                kind=spec.target.kind,
                spec_name=spec.name,
                spec_hash=spec_hash,
                status=None,
                studio_url=None,
                created=False,
                dry_run=True,
                uploads=[
                    UploadedFile(role, str(path), str(path), sha, uploaded=False)
                    for role, path, sha in local_data_files(spec)
                ],
                warnings=list(report.warnings),
                job=job,
            )

        def prepare() -> tuple[Any, list[UploadedFile]]:
            self._check_resume_source(spec)
            job = target.build(spec)
            job.name = name
            target.presubmit(self, spec, job)
            uploads = self._upload_data(spec, job)
            return _submittable(job), uploads

        submitted = self._create_once(
            name, spec_hash, prepare, kind=spec.target.kind, spec_name=spec.name, conflict_hint=_SPEC_CONFLICT
        )
        submitted.warnings = list(report.warnings)
        if wait:
            info = self.wait(name, timeout=timeout)
            submitted.status = info.status
        return submitted

    def submit_job_file(
        self,
        path: str | os.PathLike[str],
        *,
        overrides: Sequence[str] | Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> SubmittedJob:
        """Submit an Azure ML job YAML (e.g. jobs/pipelines/finetune-evaluate-register.yaml) as
        `az ml job create -f --set` would, once: its name comes from its content (after the overrides and with
        its local files' content), so a repeat returns the existing job. The same create-once path as `submit`."""
        from azure.ai.ml import load_job

        file = Path(path)
        override_map = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides or [])
        try:
            job = load_job(file, params_override=[{key: value} for key, value in override_map.items()])
        except Exception as error:  # marshmallow / azure-ai-ml validation: the file or an override is wrong
            first = redact(str(error)).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SpecError(
                [Issue("", f"not a valid Azure ML job: {first}", file=str(file))], file=str(file)
            ) from None
        digest = hashlib.sha256(json.dumps(job._to_dict(), sort_keys=True, default=str).encode())
        for value in (getattr(job, "inputs", None) or {}).values():
            try:
                input_path = value.path  # literal inputs raise instead of answering None
            except Exception:
                continue
            local = Path(file.parent, str(input_path or ""))
            if input_path and is_local_file(input_path) and local.is_file():
                digest.update(file_sha256(local).encode())
        spec_hash = digest.hexdigest()
        stem = re.sub(r"[^a-z0-9_-]+", "-", file.stem.lower()).strip("-") or "job"
        name = f"{stem}-{spec_hash[:12]}"
        job.name = name
        job.tags = {**(job.tags or {}), SPEC_HASH_TAG: spec_hash}
        kind = str(getattr(job, "type", "job"))
        if dry_run:
            return SubmittedJob(name, kind, stem, spec_hash, None, None, created=False, dry_run=True, job=job)
        return self._create_once(
            name,
            spec_hash,
            lambda: (job, []),
            kind=kind,
            spec_name=stem,
            conflict_hint="jobs are immutable: change the file or an override to make a new job",
        )

    def _create_once(
        self,
        name: str,
        spec_hash: str,
        prepare: Callable[[], tuple[Any, list[UploadedFile]]],
        *,
        kind: str,
        spec_name: str,
        conflict_hint: str,
    ) -> SubmittedJob:
        """The one way a job is created: look it up by its content-derived name, else prepare and create it, and
        settle a lost answer or a race by reading it back; whole attempts are repeated on transient faults."""
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                return self._create_attempt(
                    name, spec_hash, prepare, kind=kind, spec_name=spec_name, conflict_hint=conflict_hint
                )
            except AzFineTuneError:
                raise  # deliberate (conflict, region, ...): never tried again
            except Exception as error:
                if attempt == SUBMIT_ATTEMPTS or not is_transient(error):
                    if not is_foreign(error):
                        raise
                    raise map_azure_error(error, job_name=name, during=f"submitting {name}") from error
                delay = min(30.0, 2.0**attempt) * random.uniform(0.5, 1.0)
                logger.info(
                    "submit of %s hit a transient fault (%s); trying again in %.1f s",
                    name,
                    redact(str(error)),
                    delay,
                )
                _sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _create_attempt(
        self,
        name: str,
        spec_hash: str,
        prepare: Callable[[], tuple[Any, list[UploadedFile]]],
        *,
        kind: str,
        spec_name: str,
        conflict_hint: str,
    ) -> SubmittedJob:

        def settled(job: Any, *, created: bool, uploads: list[UploadedFile]) -> SubmittedJob:
            found = (getattr(job, "tags", None) or {}).get(SPEC_HASH_TAG)
            if found != spec_hash:
                raise ConflictError(
                    f"a job named {name} already exists and was made from "
                    + (
                        f"another spec (spec hash {found[:12]})"
                        if found
                        else "something other than azfinetune"
                    ),
                    hint=conflict_hint,
                    job_name=name,
                )
            return SubmittedJob(
                name=str(job.name),
                kind=kind,
                spec_name=spec_name,
                spec_hash=spec_hash,
                status=job_status(getattr(job, "status", None)),
                studio_url=getattr(job, "studio_url", None) or self.studio_url(name),
                created=created,
                uploads=uploads,
                job=job,
            )

        with submit_lock(self._lock_scope(), name):
            return self._look_up_or_create(name, prepare, settled)

    def _lock_scope(self) -> str:
        """The workspace a job name lives in, for submit_lock (the same name in two workspaces is two jobs)."""
        client = self.ml_client
        return "/".join(
            str(getattr(client, attr, None) or "")
            for attr in ("subscription_id", "resource_group_name", "workspace_name")
        )

    def _look_up_or_create(
        self,
        name: str,
        prepare: Callable[[], tuple[Any, list[UploadedFile]]],
        settled: Callable[..., SubmittedJob],
    ) -> SubmittedJob:
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        existing = self._find_job(name)
        if existing is not None:
            logger.info("job %s already exists; not submitting again", name)
            return settled(existing, created=False, uploads=[])
        job, uploads = prepare()
        logger.info("creating job %s", name)
        try:
            with _quiet_stderr():
                created = self.ml_client.jobs.create_or_update(job)
        except Exception as error:
            conflict = is_name_conflict(error)
            core = azure_core_error(error)
            ambiguous = isinstance(core, ServiceResponseError | ServiceRequestError) or (
                isinstance(core, HttpResponseError) and (status_code(error) or 0) in TRANSIENT_STATUS
            )
            if not (conflict or ambiguous):
                raise
            # The PUT may have reached the service (a lost answer) or raced another submit of this spec.
            existing = self._find_job(name)
            if existing is None:
                raise
            return settled(existing, created=True, uploads=uploads)
        return settled(created, created=True, uploads=uploads)

    def _check_resume_source(self, spec: FineTuneSpec) -> None:
        """training.resume_from: the job it names is here, settled, with checkpoints of the same task and technique
        (one GET); a SpecError naming the key otherwise."""
        source = spec.training.resume_from
        if source is None:
            return
        issues = resume_source_issues(spec, self._find_job(source))
        if issues:
            raise SpecError(issues)

    def _find_job(self, name: str) -> Any | None:
        """The job, or None when the workspace has no job of this name (a missing workspace raises)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.ml_client.jobs.get(name)
        except ResourceNotFoundError as error:
            # A missing workspace (or group, subscription) answers 404 too; only a missing job means "not yet".
            mapped = map_azure_error(error, job_name=name)
            if mapped.message.startswith(("workspace", "resource group", "subscription")):
                raise mapped from error
            return None

    def _upload_data(self, spec: FineTuneSpec, job: Any) -> list[UploadedFile]:
        """Upload the job's local data files to the default datastore under `azfinetune/data/<sha256>/<file>`
        and point the job's inputs there. One datastore lookup for all files; per file one HEAD, and one PUT
        only when that content is not there yet — so an unchanged file is never uploaded twice."""
        inputs = [item for item in data_inputs(job) if is_local_file(item.path) and item.type == "uri_file"]
        if not inputs:
            return []
        roles = {str(path.resolve()): role for role, path, _ in local_data_files(spec)}
        datastore = self.ml_client.datastores.get(DATASTORE, include_secrets=True)
        if type(datastore).__name__ != "AzureBlobDatastore":
            return []  # ADLS etc.: azure-ai-ml uploads the files itself with the job
        container = container_client(datastore, self.credential)
        uploads: dict[str, UploadedFile] = {}
        for item in inputs:
            path = Path(item.path).resolve()
            key = str(path)
            if key not in uploads:
                sha = file_sha256(path)
                blob_path = f"azfinetune/data/{sha}/{path.name}"
                uploaded = upload_blob(container, blob_path, path, sha)
                uploads[key] = UploadedFile(
                    roles.get(key, "input"),
                    key,
                    f"azureml://datastores/{datastore.name}/paths/{blob_path}",
                    sha,
                    uploaded=uploaded,
                )
            item.path = uploads[key].uri
        return list(uploads.values())

    # ------------------------------------------------------------------------------------------ jobs

    def get(self, name: str) -> JobInfo:
        """The job now (with the service's error message when it failed)."""
        job = self._call(f"reading job {name}", self.ml_client.jobs.get, name, job_name=name)
        error = self._failure_message(name) if job_status(getattr(job, "status", None)) == "Failed" else None
        return JobInfo.from_job(job, error=error)

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        spec_name: str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = None,
        all_jobs: bool = False,
    ) -> list[JobInfo]:
        """Jobs made by azfinetune (every job with `all_jobs`), newest first, filtered by status (one or several,
        case-insensitive), spec name and creation time (a datetime, or a timedelta back from now)."""
        wanted = {status.lower()} if isinstance(status, str) else {s.lower() for s in status or ()}
        cutoff: datetime | None = None
        if isinstance(since, timedelta):
            cutoff = datetime.now(timezone.utc) - since
        elif isinstance(since, datetime):
            cutoff = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        kwargs: dict[str, Any] = {} if all_jobs else {"tag": SPEC_HASH_TAG}
        pages = self._call("listing jobs", self.ml_client.jobs.list, **kwargs)
        found: list[JobInfo] = []
        iterator = iter(pages)
        while limit is None or len(found) < limit:
            try:
                job = self._call("listing jobs", next, iterator)
            except StopIteration:
                break
            if job is None:
                continue
            info = JobInfo.from_job(job)
            if not all_jobs and info.spec_hash is None:
                continue
            if cutoff is not None and info.created_at is not None and info.created_at < cutoff:
                break  # newest first: everything after is older
            if wanted and (info.status or "").lower() not in wanted:
                continue
            if spec_name is not None and info.spec_name != spec_name:
                continue
            found.append(info)
        return found

    def cancel(self, name: str, *, timeout: float = 300.0) -> JobInfo:
        """Ask the service to cancel the job and wait (at most `timeout` s) until it has accepted; returns the job."""
        poller = self._call(
            f"canceling job {name}", self.ml_client.jobs.begin_cancel, name, polling_interval=5, job_name=name
        )
        self._call(f"canceling job {name}", poller.result, timeout=timeout, job_name=name)
        return self.get(name)

    def _poll(
        self,
        read: Callable[[], Any],
        *,
        timeout: float | None,
        first_delay: float,
        poll_interval: float,
    ) -> Iterator[tuple[Any, str | None, bool]]:
        """The one poll loop behind `wait` and `stream`: yields (what `read` returned, its status, timed out)
        until the status is terminal or `timeout` seconds have passed, waiting ×1.5 longer each time up to
        `poll_interval`. Time is counted both ways, real and asked-to-sleep, so a test whose sleeps are zeroed
        still reaches its timeout after a bounded number of polls."""
        started = time.monotonic()
        slept = 0.0
        delay = first_delay
        while True:
            value = read()
            status = job_status(getattr(value, "status", None))
            elapsed = max(time.monotonic() - started, slept)
            timed_out = status not in TERMINAL_STATUSES and timeout is not None and elapsed >= timeout
            yield value, status, timed_out
            if status in TERMINAL_STATUSES or timed_out:
                return
            pause = delay if timeout is None else max(0.0, min(delay, timeout - elapsed))
            _sleep(pause)
            slept += max(pause, 1e-3)
            delay = min(poll_interval, delay * 1.5)

    def wait(
        self,
        name: str,
        *,
        timeout: float | None = 24 * 3600.0,
        poll_interval: float = 30.0,
        on_status: Callable[[str | None], None] | None = None,
    ) -> JobInfo:
        """Poll the job until it finishes; at most `timeout` seconds (None: no limit — not recommended).
        `on_status` is called with each new status (for progress displays).

        Failed → JobFailedError (QuotaError for quota failures) with the service's message; Completed, Canceled,
        Paused … → the JobInfo; still running at the timeout → ServiceError (the job keeps running)."""
        last: str | None = None
        job: Any = None
        status: str | None = None

        def read() -> Any:
            return self._call(f"reading job {name}", self.ml_client.jobs.get, name, job_name=name)

        for job, status, timed_out in self._poll(  # noqa: B007 - the last job is the answer
            read, timeout=timeout, first_delay=min(5.0, poll_interval), poll_interval=poll_interval
        ):
            if on_status is not None and status != last:
                on_status(status)
            last = status
            if timed_out:
                raise ServiceError(
                    f"job {name} is still {status} after {timeout:g} s",
                    hint=f"it keeps running: `azfinetune status {name}`, or `azfinetune cancel {name}`",
                    job_name=name,
                )
        if status == "Failed":
            raise self._failure(name)
        return JobInfo.from_job(job)

    def stream(
        self,
        name: str,
        *,
        follow: bool = True,
        timeout: float | None = None,
        poll_interval: float = 30.0,
        raise_on_failure: bool = True,
    ) -> Iterator[JobEvent]:
        """Status changes and new log lines of the job, as they appear, until it finishes (`follow`) or once.

        Log files are downloaded from the links run history gives (those SAS links are never yielded or logged).
        A Failed job ends the stream with JobFailedError (or QuotaError) carrying the service's message."""
        runs = self._runs()
        self._call(f"reading job {name}", self.ml_client.jobs.get, name, job_name=name)
        printed: dict[str, int] = {}
        last_status: str | None = None
        details: Any = None

        def read() -> Any:
            return self._call(f"reading the run of {name}", runs.get_run_details, name, job_name=name)

        for details, status, _ in self._poll(
            read, timeout=timeout, first_delay=2.0, poll_interval=poll_interval
        ):
            if status != last_status:
                last_status = status
                yield JobEvent("status", name, status)
            for log_name, url in _streamable_logs(getattr(details, "log_files", None) or {}):
                lines = self._download_text(url).splitlines()
                for line in lines[printed.get(log_name, 0) :]:
                    yield JobEvent("log", name, status, text=line, log_file=log_name)
                printed[log_name] = len(lines)
            if not follow:
                return
        if follow and raise_on_failure and last_status == "Failed":
            raise failed_job_error(name, run_error_message(details), codes=run_error_codes(details))

    def _runs(self) -> Any:
        # azure-ai-ml exposes run history (status, errors, log links) only through jobs.stream, which prints to
        # stdout; its RunOperations is the same client, used here without the printing.
        return self.ml_client.jobs._runs_operations

    def _download_text(self, url: str) -> str:
        from azure.storage.blob import BlobClient, ExponentialRetry

        blob = BlobClient.from_blob_url(
            url,
            retry_policy=ExponentialRetry(
                initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1
            ),
        )
        try:
            data: bytes = blob.download_blob().readall()
        except Exception as error:
            if not is_foreign(error):
                raise
            logger.info("could not download a log file: %s", redact(str(error)))
            return ""
        return data.decode("utf-8", errors="replace")

    def _failure_message(self, name: str) -> str:
        try:
            details = self._runs().get_run_details(name)
        except Exception as error:
            if not is_foreign(error):
                raise
            logger.info("could not read the run error of %s: %s", name, redact(str(error)))
            return "the service gave no error message; see the job in Azure ML Studio"
        return run_error_message(details)

    def _failure(self, name: str) -> ServiceError:
        try:
            details = self._runs().get_run_details(name)
        except Exception as error:
            if not is_foreign(error):
                raise
            return failed_job_error(
                name, "the service gave no error message; see the job in Studio", codes=set()
            )
        return failed_job_error(name, run_error_message(details), codes=run_error_codes(details))


def _given(
    subscription_id: str | None, resource_group: str | None, workspace_name: str | None
) -> dict[str, Any]:
    return {
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace_name": workspace_name,
    }


_STD_LOG = re.compile(r"^user_logs/std_log[^/]*\.txt$")


def _streamable_logs(log_files: Mapping[str, str]) -> list[tuple[str, str]]:
    """The user's logs: Common Runtime's user_logs/std_log*.txt, else (older runtimes) every .txt log."""
    names = sorted(log_files)
    chosen = [n for n in names if _STD_LOG.match(n)] or [n for n in names if n.endswith(".txt")]
    return [(n, log_files[n]) for n in chosen]


def _load(
    spec_or_path: FineTuneSpec | str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] | None
) -> FineTuneSpec:
    if isinstance(spec_or_path, FineTuneSpec):
        if not overrides:
            return spec_or_path
        override_map = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
        # exclude_unset keeps which keys the user set (serverless rules depend on it).
        data = spec_or_path.model_dump(mode="json", exclude_unset=True, by_alias=True)
        return spec_from_dict(
            data, base_dir=spec_or_path.base_dir, source=spec_or_path.source, overrides=override_map
        )
    return load_spec(Path(spec_or_path), overrides=overrides)
