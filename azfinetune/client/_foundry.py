"""FoundryClient: submit a foundry spec to Azure AI Foundry's fine_tuning API once, then follow, list and cancel.

It talks through the real clients: `AIProjectClient(endpoint, credential).get_openai_client()` (azure-ai-projects)
on a project endpoint, `openai.OpenAI` with an Entra ID bearer-token provider on a resource endpoint. The service
chooses job ids and openai sends no idempotency key, so a create whose answer was lost may have made a job: every
POST is sent once (max_retries=0), and before any retry the job (or file) is looked up by what azfinetune tagged it
with — metadata and suffix for jobs, the content-addressed filename for files."""

from __future__ import annotations

import builtins
import contextlib
import csv
import io
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from azfinetune.client._client import _check_offline, _load
from azfinetune.client._errors import redact
from azfinetune.client._results import (
    SPEC_HASH_TAG,
    SPEC_NAME_TAG,
    JobEvent,
    JobInfo,
    SubmittedJob,
    UploadedFile,
)
from azfinetune.client._settings import SUBMIT_ATTEMPTS
from azfinetune.errors import (
    AuthError,
    AzFineTuneError,
    ConflictError,
    DataError,
    JobFailedError,
    NotFoundError,
    QuotaError,
    ServiceError,
    SubmitError,
    ThrottledError,
    UserInputError,
)
from azfinetune.spec import FineTuneSpec, FoundryTarget, foundry_endpoint
from azfinetune.targets.foundry import METADATA_PREFIX, FoundryJob, FoundryUpload, build_foundry_job

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "ENDPOINT_VARIABLE",
    "FOUNDRY_STATUSES",
    "PROJECT_SCOPE",
    "RESOURCE_SCOPE",
    "FoundryClient",
    "FoundryReport",
    "foundry_status",
    "is_foundry_job_id",
    "use_foundry_credential",
]

logger = logging.getLogger(__name__)

#: The variable azure-ai-projects' samples read the project endpoint from.
ENDPOINT_VARIABLE = "AZURE_AI_PROJECT_ENDPOINT"
#: Token scopes by endpoint form: azure-ai-projects asks for ai.azure.com; the resource endpoint's docs for
#: cognitiveservices (a token for the other audience is refused with 401).
PROJECT_SCOPE = "https://ai.azure.com/.default"
RESOURCE_SCOPE = "https://cognitiveservices.azure.com/.default"
#: The service's job statuses (Azure's vocabulary, and OpenAI's for the same API) -> the status names the CLI shows
#: for every service (Azure ML's), so tables, filters and exit codes read the same whatever ran the job.
FOUNDRY_STATUSES: dict[str, str] = {
    "created": "NotStarted",
    "validating_files": "Preparing",
    "pending": "Queued",
    "queued": "Queued",
    "running": "Running",
    "pausing": "Pausing",
    "paused": "Paused",
    "resuming": "Resuming",
    "succeeded": "Completed",
    "failed": "Failed",
    "cancelled": "Canceled",
}
_DONE = frozenset({"succeeded", "failed", "cancelled"})
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BASE_MODEL_ERROR = "does not support fine-tuning"
_DEVELOPER = "developertier"
_PAGE = 100
_MAX_PAGES = 100  # 10,000 jobs or files: a bound on every listing

_CREDENTIAL_OVERRIDE: ContextVar[Any | None] = ContextVar("azfinetune_foundry_credential", default=None)


@contextlib.contextmanager
def use_foundry_credential(credential: Any) -> Iterator[Any]:
    """Make every FoundryClient made inside the block (the CLI's too) use `credential` instead of
    DefaultAzureCredential — how tests point the CLI at a FakeFoundry without an Azure login."""
    token = _CREDENTIAL_OVERRIDE.set(credential)
    try:
        yield credential
    finally:
        _CREDENTIAL_OVERRIDE.reset(token)


def foundry_status(status: Any) -> str | None:
    """'succeeded' -> 'Completed', 'pending' -> 'Queued', ...; an unknown status is kept, capitalized."""
    if status is None:
        return None
    text = str(status)
    return FOUNDRY_STATUSES.get(text.lower(), text[:1].upper() + text[1:])


def is_foundry_job_id(name: str) -> bool:
    """Whether a job name is a Foundry fine-tuning job id (the service's `ftjob-<hex>`)."""
    return name.startswith("ftjob-")


def _sleep(seconds: float) -> None:
    """Waits go through azure-core's transport sleep, the hook FakeWorkspace and FakeFoundry zero in tests."""
    if seconds <= 0:
        return
    from azure.core.pipeline.transport import HttpTransport

    HttpTransport.sleep(None, seconds)  # type: ignore[arg-type]


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    value = getattr(item, key, None)
    if value is None:
        extra = getattr(item, "model_extra", None) or {}
        value = extra.get(key, default)
    return default if value is None else value


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    to_dict = getattr(item, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(vars(item))


class FoundryReport:
    """What `azfinetune report` shows for a Foundry job: the job, its checkpoints and its training metrics."""

    def __init__(self, info: JobInfo, checkpoints: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        self.info = info
        self.checkpoints = checkpoints
        self.metrics = metrics

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.info.to_dict(), "checkpoints": self.checkpoints, "metrics": self.metrics}


class FoundryClient:
    """One Azure AI Foundry resource (or project): submit foundry specs once, follow, list and cancel their jobs.

    `endpoint` is the project endpoint (`https://<resource>.services.ai.azure.com/api/projects/<project>`) or the
    resource endpoint; the token scope follows from it. `api_key_env` names an environment variable holding an API
    key, used instead of Entra ID only when given (never read otherwise, never printed). Constructing the client
    makes no network call."""

    def __init__(
        self,
        credential: TokenCredential | None = None,
        *,
        endpoint: str | None = None,
        api_key_env: str | None = None,
        openai_client: Any | None = None,
        attempts: int = SUBMIT_ATTEMPTS,
        request_timeout: float = 120.0,
    ) -> None:
        self._credential = credential
        self._endpoint = foundry_endpoint(endpoint) if endpoint else None
        self.api_key_env = api_key_env
        self._openai = openai_client
        self.attempts = max(1, attempts)
        self.request_timeout = request_timeout

    @classmethod
    def from_config(
        cls,
        *,
        endpoint: str | None = None,
        api_key_env: str | None = None,
        spec: FineTuneSpec | None = None,
        credential: TokenCredential | None = None,
    ) -> FoundryClient:
        """The endpoint from the argument (CLI flag) > the spec's target.endpoint > AZURE_AI_PROJECT_ENDPOINT; the
        API key variable from the argument > the spec's target.api_key_env. No network."""
        target = spec.target if spec is not None and isinstance(spec.target, FoundryTarget) else None
        endpoint = (
            endpoint or (target.endpoint if target else None) or os.environ.get(ENDPOINT_VARIABLE) or None
        )
        api_key_env = api_key_env or (target.api_key_env if target else None)
        return cls(credential or _CREDENTIAL_OVERRIDE.get(), endpoint=endpoint, api_key_env=api_key_env)

    # ------------------------------------------------------------------------------------------ plumbing

    @property
    def endpoint(self) -> str:
        if not self._endpoint:
            raise UserInputError(
                "no Azure AI Foundry endpoint",
                hint=f"set target.endpoint in the spec, {ENDPOINT_VARIABLE}, or --foundry-endpoint "
                "(https://<resource>.services.ai.azure.com/api/projects/<project>)",
            )
        return self._endpoint

    @property
    def is_project(self) -> bool:
        return "/api/projects/" in self.endpoint

    @property
    def scope(self) -> str:
        """The Entra ID token scope of this endpoint."""
        return PROJECT_SCOPE if self.is_project else RESOURCE_SCOPE

    @property
    def credential(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    @property
    def openai(self) -> Any:
        """The `openai.OpenAI` client (made on first use; max_retries=0: azfinetune retries, looking up first)."""
        if self._openai is None:
            self._openai = self._make_openai()
        return self._openai

    def _make_openai(self) -> Any:
        from azfinetune._version import __version__

        try:
            import openai
        except ImportError:
            raise UserInputError(
                "target.kind foundry needs the openai and azure-ai-projects packages",
                hint="pip install 'azfinetune[foundry]'",
            ) from None
        options: dict[str, Any] = {"max_retries": 0, "timeout": self.request_timeout}
        base_url = f"{self.endpoint}/openai/v1"
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise UserInputError(
                    f"the environment variable {self.api_key_env} (target.api_key_env) is not set",
                    hint="export it, or remove api_key_env to sign in with Entra ID (az login)",
                )
            # The v1 API takes the key as the bearer value (the docs' OpenAI(api_key=...) form).
            return openai.OpenAI(base_url=base_url, api_key=key, **options)
        if self.is_project:
            try:
                from azure.ai.projects import AIProjectClient
            except ImportError:
                raise UserInputError(
                    "a Foundry project endpoint needs the azure-ai-projects package",
                    hint="pip install 'azfinetune[foundry]'",
                ) from None
            project = AIProjectClient(
                endpoint=self.endpoint, credential=self.credential, user_agent=f"azfinetune/{__version__}"
            )
            return project.get_openai_client(**options)
        from azure.identity import get_bearer_token_provider

        provider = get_bearer_token_provider(self.credential, RESOURCE_SCOPE)
        return openai.OpenAI(base_url=base_url, api_key=provider, **options)

    def _map(self, error: Exception, *, during: str, job_name: str | None = None) -> AzFineTuneError:
        """An openai (or azure-identity) exception as azfinetune's error, with what to do next."""
        import openai

        host = self._endpoint or "the Foundry endpoint"
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            message = redact(str(getattr(error, "message", "") or error))
            body = error.body if isinstance(error.body, Mapping) else {}
            code = str(body.get("code") or getattr(error, "code", "") or "")
            if status in (401, 403):
                return AuthError(
                    f"{during}: the Foundry resource refused the credentials ({status}): {message}",
                    hint=f"sign in (az login) as an identity with the Foundry User role (formerly Azure AI User) on the "
                    f"resource; azfinetune asks for a token for {self.scope}",
                    status_code=status,
                    job_name=job_name,
                )
            if status == 404:
                return NotFoundError(
                    f"{during}: not found: {message}",
                    hint="check the job id (azfinetune list --foundry-endpoint ...) and the endpoint",
                    status_code=status,
                    job_name=job_name,
                )
            if status == 429:
                return ThrottledError(
                    f"{during}: the Foundry resource kept answering 429 (too many requests): {message}",
                    hint="try again in a few minutes",
                    status_code=status,
                    job_name=job_name,
                )
            if status == 409:
                return ConflictError(f"{during}: {message}", status_code=status, job_name=job_name)
            if "quota" in code.lower() or "quota" in message.lower():
                return QuotaError(
                    f"{during}: {message}",
                    hint="ask for more fine-tuning quota",
                    status_code=status,
                    job_name=job_name,
                )
            if status == 400 and _BASE_MODEL_ERROR in message:
                return SubmitError(
                    f"{during}: the service answered '{message}'",
                    hint="Foundry gives this answer for several causes: a missing or disallowed trainingType, a "
                    "model not offered in the resource's region, or an endpoint that is not a Foundry resource "
                    "(a classic Azure OpenAI resource cannot fine-tune open models); `azfinetune build` shows what "
                    "was sent",
                    status_code=status,
                    job_name=job_name,
                )
            return (SubmitError if status < 500 else ServiceError)(
                f"{during}: the service answered {status}: {message}", status_code=status, job_name=job_name
            )
        if isinstance(error, openai.APIConnectionError):
            return ServiceError(
                f"{during}: no answer from {host} ({type(error).__name__})",
                hint="check the endpoint and your network; the request may or may not have arrived",
                job_name=job_name,
            )
        if (
            type(error).__module__.startswith("azure.identity")
            or type(error).__name__ == "ClientAuthenticationError"
        ):
            return AuthError(
                f"{during}: no Azure credential: {redact(str(error).splitlines()[0] if str(error) else '')}",
                hint="run `az login` (or set target.api_key_env to use an API key from the environment)",
                job_name=job_name,
            )
        return ServiceError(f"{during}: {redact(str(error))}", job_name=job_name)

    def _transient(self, error: Exception) -> bool:
        import openai

        if isinstance(error, openai.APIStatusError):
            return error.status_code in _TRANSIENT_STATUS
        return isinstance(error, openai.APIConnectionError)

    @staticmethod
    def _delay(error: Exception, attempt: int) -> float:
        """Retry-After (retry-after-ms first, as openai reads it), else 1, 2, 4 … s with jitter, at most 60 s."""
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None) or {}
        for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
            value = headers.get(name) if hasattr(headers, "get") else None
            if value is not None:
                try:
                    return min(60.0, max(0.0, float(value) / scale))
                except ValueError:
                    continue
        return min(60.0, 2.0**attempt) * (0.75 + 0.25 * random.random())

    def _call(
        self,
        during: str,
        function: Callable[..., Any],
        *args: Any,
        job_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """A read (or a request safe to repeat), retried on transient failures with Retry-After honoured."""
        for attempt in range(self.attempts):
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if isinstance(error, AzFineTuneError):
                    raise
                if not self._foreign(error):
                    raise
                if attempt + 1 < self.attempts and self._transient(error):
                    logger.info("%s: %s; retrying", during, type(error).__name__)
                    _sleep(self._delay(error, attempt))
                    continue
                raise self._map(error, during=during, job_name=job_name) from error
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _foreign(error: BaseException) -> bool:
        module = type(error).__module__
        return module.startswith(("openai", "httpx", "httpcore", "azure.", "anyio"))

    def _pages(self, during: str, list_page: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        """Every item of a cursor-paged listing, page by page (each page retried), at most _MAX_PAGES pages."""
        after: str | None = None
        for _ in range(_MAX_PAGES):
            page = self._call(during, list_page, **({"after": after} if after else {}), **kwargs)
            items = list(getattr(page, "data", None) or [])
            yield from items
            if not items or getattr(page, "has_more", None) is False:
                return
            after = _get(items[-1], "id")
            if after is None:
                return

    # ------------------------------------------------------------------------------------------ submit

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
        """Check, build and submit a foundry spec, once.

        Every offline check runs first (spec, catalog, files, data); any error raises and nothing is sent. Then the
        job is looked up (metadata / suffix): if it exists it is returned as is. Otherwise each data file is found
        by its content-addressed name or uploaded, and waited for until the service has processed it, and the job
        is created — once: a lost answer is settled by looking the job up before trying again. `run_suffix` makes
        a new job from the same spec on purpose; `dry_run` builds and returns the job without any request."""
        spec = _load(spec_or_path, overrides)
        if not isinstance(spec.target, FoundryTarget):
            raise UserInputError(
                f"FoundryClient submits target.kind foundry specs, not {spec.target.kind}",
                hint="use FineTuneClient for Azure ML targets",
            )
        report = _check_offline(spec, allow_retired=allow_retired)
        job = build_foundry_job(spec, run_suffix=run_suffix)
        if dry_run:
            return self._submitted(
                job, spec, None, created=False, uploads=[], dry_run=True, warnings=report.warnings
            )
        existing = self._find_job(job, None)
        if existing is not None:
            logger.info(
                "Foundry job %s (%s) already exists; not submitting again", _get(existing, "id"), job.name
            )
            return self._submitted(job, spec, existing, created=False, uploads=[], warnings=report.warnings)
        uploads, file_ids = self._upload_all(job)
        created = self._create_once(job, file_ids)
        submitted = self._submitted(
            job, spec, created, created=True, uploads=uploads, warnings=report.warnings
        )
        if wait:
            submitted.status = self.wait(submitted.name, timeout=timeout).status
        return submitted

    def _submitted(
        self,
        job: FoundryJob,
        spec: FineTuneSpec,
        service_job: Any,
        *,
        created: bool,
        uploads: list[UploadedFile],
        dry_run: bool = False,
        warnings: Sequence[Any] = (),
    ) -> SubmittedJob:
        if service_job is None:
            uploads = [
                UploadedFile(u.role, str(u.path), u.filename, u.sha256, uploaded=False) for u in job.uploads
            ]
        return SubmittedJob(
            name=str(_get(service_job, "id")) if service_job is not None else job.name,
            kind="foundry",
            spec_name=spec.name,
            spec_hash=job.spec_hash,
            status=foundry_status(_get(service_job, "status")) if service_job is not None else None,
            studio_url=None,
            created=created,
            dry_run=dry_run,
            uploads=uploads,
            warnings=list(warnings),
            job=job if service_job is None else _as_dict(service_job),
        )

    def _find_job(self, job: FoundryJob, file_ids: Mapping[str, str] | None) -> Any | None:
        """The service's job made from this FoundryJob, or None (the newest first, so an earlier one is found)."""
        for item in self._pages("listing fine-tuning jobs", self.openai.fine_tuning.jobs.list, limit=_PAGE):
            if job.matches(_as_dict(item), file_ids):
                return item
        return None

    def _files(self) -> builtins.list[Any]:
        """Every fine-tune file on the resource (one listing, reused for all of a submit's uploads)."""
        return list(
            self._pages("listing files", self.openai.files.list, purpose="fine-tune", limit=_PAGE * 10)
        )

    @staticmethod
    def _match_file(upload: FoundryUpload, files: Sequence[Any]) -> Any | None:
        for item in files:
            if (
                _get(item, "filename") == upload.filename
                and int(_get(item, "bytes", -1)) == upload.size
                and _get(item, "status") not in ("deleted", "deleting")
            ):
                return item
        return None

    def _upload_all(self, job: FoundryJob) -> tuple[builtins.list[UploadedFile], dict[str, str]]:
        uploads: list[UploadedFile] = []
        file_ids: dict[str, str] = {}
        done: dict[
            str, tuple[str, bool]
        ] = {}  # sha256 -> (file id, uploaded now): train == validation is one file
        existing = self._files() if job.uploads else []
        for upload in job.uploads:
            if upload.sha256 not in done:
                found = self._match_file(upload, existing)
                if found is None:
                    found, uploaded = self._upload_once(upload), True
                else:
                    uploaded = False
                file_id = str(_get(found, "id"))
                self._wait_processed(upload, found)
                done[upload.sha256] = (file_id, uploaded)
            file_id, uploaded = done[upload.sha256]
            file_ids[upload.role] = file_id
            uploads.append(
                UploadedFile(upload.role, str(upload.path), file_id, upload.sha256, uploaded=uploaded)
            )
        return uploads, file_ids

    def _upload_once(self, upload: FoundryUpload) -> Any:
        """POST /files once per attempt; after an unanswered attempt the file is looked up by name and size first."""
        files = self.openai.files
        for attempt in range(self.attempts):
            try:
                with upload.path.open("rb") as handle:
                    return files.create(
                        file=(upload.filename, handle, "application/jsonl"), purpose="fine-tune"
                    )
            except Exception as error:
                if not self._foreign(error) or not self._transient(error) or attempt + 1 >= self.attempts:
                    if self._foreign(error):
                        raise self._map(error, during=f"uploading data.{upload.role}") from error
                    raise
                _sleep(self._delay(error, attempt))
                found = self._match_file(upload, self._files())
                if found is not None:
                    return found
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_processed(self, upload: FoundryUpload, item: Any, *, timeout: float = 1800.0) -> None:
        """Poll the file until the service has processed it (a job cannot use it before); refused → DataError."""
        file_id = str(_get(item, "id"))
        status = _get(item, "status")
        started, slept, delay = time.monotonic(), 0.0, 1.0
        while status not in ("processed", "error", "deleted"):
            if max(time.monotonic() - started, slept) >= timeout:
                raise ServiceError(
                    f"data.{upload.role}: the service has not processed {upload.filename} after {timeout:g} s",
                    hint="submit again later: the upload is found and not repeated",
                )
            _sleep(delay)
            slept += max(delay, 1e-3)
            delay = min(10.0, delay * 1.5)
            item = self._call(f"reading file {file_id}", self.openai.files.retrieve, file_id)
            status = _get(item, "status")
        if status != "processed":
            details = _get(item, "status_details") or "no details given"
            raise DataError(
                f"data.{upload.role}: Azure AI Foundry refused {upload.path.name} ({file_id}): {details}",
                hint=f"fix the file (azfinetune data validate {upload.path.name} --task chat-completion) and submit "
                "again; a changed file gets a new name",
            )

    def _create_once(self, job: FoundryJob, file_ids: Mapping[str, str]) -> Any:
        """POST fine_tuning/jobs with no retry of its own; an ambiguous failure is settled by looking the job up."""
        arguments = job.create_arguments(file_ids)
        jobs = self.openai.fine_tuning.jobs
        for attempt in range(self.attempts):
            try:
                return jobs.create(**arguments)
            except Exception as error:
                if not self._foreign(error):
                    raise
                if not self._transient(error) or attempt + 1 >= self.attempts:
                    found = self._find_job(job, file_ids) if self._transient(error) else None
                    if found is not None:
                        return found
                    raise self._map(error, during=f"creating fine-tuning job {job.name}") from error
                _sleep(self._delay(error, attempt))
                found = self._find_job(job, file_ids)
                if found is not None:
                    logger.info("the create of %s was answered by no one, but the job exists", job.name)
                    return found
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------------------------------ jobs

    def _retrieve(self, name: str) -> Any:
        return self._call(f"reading job {name}", self.openai.fine_tuning.jobs.retrieve, name, job_name=name)

    def info(self, job: Any) -> JobInfo:
        """A service job (openai FineTuningJob or its dict) as the JobInfo every service returns."""
        data = _as_dict(job)
        metadata = {str(k): str(v) for k, v in (data.get("metadata") or {}).items()}
        tags = dict(metadata)
        for key, tag in (("spec_hash", SPEC_HASH_TAG), ("spec_name", SPEC_NAME_TAG)):
            value = metadata.get(f"{METADATA_PREFIX}{key}")
            if value:
                tags[tag] = value
        created = data.get("created_at")
        error = data.get("error") or {}
        message = error.get("message") if isinstance(error, Mapping) else None
        return JobInfo(
            name=str(data.get("id")),
            status=foundry_status(data.get("status")),
            kind="foundry",
            display_name=data.get("fine_tuned_model") or data.get("suffix"),
            experiment_name=data.get("model"),
            created_at=datetime.fromtimestamp(created, timezone.utc)
            if isinstance(created, int | float)
            else None,
            studio_url=None,
            compute=data.get("trainingType") or None,
            tags=tags,
            error=str(message) if message else None,
            job=data,
        )

    def get(self, name: str) -> JobInfo:
        """The job now (with the service's error message when it failed)."""
        return self.info(self._retrieve(name))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        spec_name: str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = None,
        all_jobs: bool = False,
    ) -> list[JobInfo]:
        """Fine-tuning jobs azfinetune made on this resource (every job with `all_jobs`), newest first, filtered by
        status (ours or the service's names, any case), spec name and creation time."""
        wanted = {status} if isinstance(status, str) else set(status or ())
        wanted = {s.lower() for s in wanted} | {(foundry_status(s) or s).lower() for s in wanted}
        cutoff: datetime | None = None
        if isinstance(since, timedelta):
            cutoff = datetime.now(timezone.utc) - since
        elif isinstance(since, datetime):
            cutoff = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        found: list[JobInfo] = []
        for item in self._pages("listing fine-tuning jobs", self.openai.fine_tuning.jobs.list, limit=_PAGE):
            if limit is not None and len(found) >= limit:
                break
            info = self.info(item)
            if not all_jobs and info.spec_hash is None:
                continue
            if cutoff is not None and info.created_at is not None and info.created_at < cutoff:
                break  # newest first
            if wanted and (info.status or "").lower() not in wanted:
                continue
            if spec_name is not None and info.spec_name != spec_name:
                continue
            found.append(info)
        return found

    def cancel(self, name: str, *, timeout: float = 300.0) -> JobInfo:
        """Cancel the job (a finished job stays as it is); returns the job after the request."""
        import openai

        current = self._retrieve(name)
        if _get(current, "status") in _DONE:
            return self.info(current)
        try:
            self._call(f"canceling job {name}", self.openai.fine_tuning.jobs.cancel, name, job_name=name)
        except SubmitError as error:
            # A repeated cancel (its first answer lost) is refused once the job is cancelled: that is success.
            if error.status_code != 400:
                raise
        except openai.OpenAIError as error:  # pragma: no cover - _call maps every openai error
            raise self._map(error, during=f"canceling job {name}", job_name=name) from error
        return self.get(name)

    def _terminal(self, job: Any) -> bool:
        status = str(_get(job, "status", "")).lower()
        if status in _DONE:
            return True
        # The system pauses Developer-tier jobs and resumes them itself; any other pause was the user's.
        return status == "paused" and str(_get(job, "trainingType", "")).lower() != _DEVELOPER

    def _poll(
        self, name: str, *, timeout: float | None, poll_interval: float, first_delay: float
    ) -> Iterator[tuple[Any, bool]]:
        """(the job, timed out) until it is terminal or `timeout` s passed; time counted real and asked-to-sleep."""
        started, slept, delay = time.monotonic(), 0.0, first_delay
        while True:
            job = self._retrieve(name)
            elapsed = max(time.monotonic() - started, slept)
            timed_out = not self._terminal(job) and timeout is not None and elapsed >= timeout
            yield job, timed_out
            if self._terminal(job) or timed_out:
                return
            pause = delay if timeout is None else max(0.0, min(delay, timeout - elapsed))
            _sleep(pause)
            slept += max(pause, 1e-3)
            delay = min(poll_interval, delay * 1.5)

    def _failure(self, name: str, job: Any) -> ServiceError:
        error = _as_dict(job).get("error") or {}
        message = (
            error.get("message") if isinstance(error, Mapping) else None
        ) or "the service gave no error message"
        code = str(error.get("code") if isinstance(error, Mapping) else "")
        if "quota" in code.lower() or "quota" in message.lower():
            return QuotaError(
                f"job {name} failed: {message}", hint="ask for more fine-tuning quota", job_name=name
            )
        return JobFailedError(
            f"job {name} failed: {message}", hint=f"see its events: azfinetune logs {name}", job_name=name
        )

    def wait(
        self,
        name: str,
        *,
        timeout: float | None = 24 * 3600.0,
        poll_interval: float = 30.0,
        on_status: Callable[[str | None], None] | None = None,
    ) -> JobInfo:
        """Poll the job until it finishes (at most `timeout` s). Failed → JobFailedError with the service's message;
        Completed, Canceled (or Paused, unless the system paused a Developer-tier job) → the JobInfo."""
        last: str | None = None
        job: Any = None
        for job, timed_out in self._poll(name, timeout=timeout, poll_interval=poll_interval, first_delay=5.0):
            status = foundry_status(_get(job, "status"))
            if on_status is not None and status != last:
                on_status(status)
            last = status
            if timed_out:
                raise ServiceError(
                    f"job {name} is still {status} after {timeout:g} s",
                    hint=f"it keeps running: `azfinetune status {name}`, or `azfinetune cancel {name}`",
                    job_name=name,
                )
        if str(_get(job, "status")) == "failed":
            raise self._failure(name, job)
        return self.info(job)

    def events(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every event of the job, oldest first (whatever order the service lists them in)."""
        listing = self.openai.fine_tuning.jobs.list_events
        items = [
            _as_dict(e)
            for e in self._pages(
                f"reading the events of {name}", listing, fine_tuning_job_id=name, limit=_PAGE
            )
        ]
        return sorted(items, key=lambda e: (e.get("created_at") or 0, str(e.get("id"))))

    def stream(
        self,
        name: str,
        *,
        follow: bool = True,
        timeout: float | None = None,
        poll_interval: float = 30.0,
        raise_on_failure: bool = True,
    ) -> Iterator[JobEvent]:
        """Status changes and the job's events (messages and metrics) as they appear, until it finishes (`follow`)
        or once. A failed job ends the stream with JobFailedError carrying the service's message."""
        seen: set[str] = set()
        last: str | None = None
        job: Any = None
        for job, _ in self._poll(name, timeout=timeout, poll_interval=poll_interval, first_delay=2.0):
            status = foundry_status(_get(job, "status"))
            if status != last:
                last = status
                yield JobEvent("status", name, status)
            for event in self.events(name):
                key = str(event.get("id"))
                if key in seen:
                    continue
                seen.add(key)
                yield JobEvent("log", name, status, text=_event_text(event), log_file="events")
            if not follow:
                return
        if follow and raise_on_failure and str(_get(job, "status")) == "failed":
            raise self._failure(name, job)

    def checkpoints(self, name: str) -> builtins.list[dict[str, Any]]:
        """The job's checkpoints (the service keeps the three most recent, once the job is finished), by step."""
        listing = self.openai.fine_tuning.jobs.checkpoints.list
        items = [
            _as_dict(c)
            for c in self._pages(
                f"reading the checkpoints of {name}", listing, fine_tuning_job_id=name, limit=_PAGE
            )
        ]
        return sorted(items, key=lambda c: c.get("step_number") or 0)

    def metrics(self, job: Any) -> dict[str, Any]:
        """The last row of the job's results.csv (train_loss, valid_loss → eval_loss, ...), and trained_tokens."""
        data = _as_dict(job)
        metrics: dict[str, Any] = {}
        if isinstance(data.get("trained_tokens"), int):
            metrics["train_tokens"] = data["trained_tokens"]
        for file_id in data.get("result_files") or []:
            content = self._call(f"reading results of {data.get('id')}", self.openai.files.content, file_id)
            text = content.read().decode("utf-8", "replace") if hasattr(content, "read") else str(content)
            rows = list(csv.DictReader(io.StringIO(text)))
            if not rows:
                continue
            for key, value in rows[-1].items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                metrics["eval_loss" if key == "valid_loss" else key] = number
        return metrics

    def report(self, name: str) -> FoundryReport:
        """The job, its checkpoints and its last metrics (what `azfinetune report NAME` shows)."""
        job = self._retrieve(name)
        return FoundryReport(self.info(job), self.checkpoints(name), self.metrics(job))

    def pause(self, name: str) -> JobInfo:
        """Pause a running job (the service pauses OpenAI models only)."""
        return self.info(
            self._call(f"pausing job {name}", self.openai.fine_tuning.jobs.pause, name, job_name=name)
        )

    def resume(self, name: str) -> JobInfo:
        """Resume a paused job."""
        return self.info(
            self._call(f"resuming job {name}", self.openai.fine_tuning.jobs.resume, name, job_name=name)
        )


def _event_text(event: Mapping[str, Any]) -> str:
    created = event.get("created_at")
    when = (
        datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(created, int | float)
        else ""
    )
    level = str(event.get("level") or "info")
    return f"{when} {level:<5} {event.get('message', '')}".strip()
