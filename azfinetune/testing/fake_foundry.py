"""FakeFoundry: Azure AI Foundry's fine-tuning API (files, fine_tuning/jobs) served in-process on 127.0.0.1.

The real `openai` client and `azure-ai-projects`' AIProjectClient talk to it unchanged: openai 3.x sends through
httpx2, which `responses` cannot intercept, so the fake is a real HTTP server on a loopback port, started and
stopped by the test (a context manager, or the `fake_foundry` pytest fixture) and never left running: it stops
itself after `lifetime_s`. It answers in the documented shapes (api.md of the research: the 2025-04-01-preview
spec's objects, the v1 paths), refuses what the service refuses (a missing or disallowed `trainingType` gets the
service's misleading "The specified base model does not support fine-tuning."), runs each job through the service's
states, and injects faults: 429 with Retry-After, 5xx, and lost responses (the request is carried out, then the
connection closes without an answer).

Under pytest-socket, mark the test `@pytest.mark.allow_hosts(["127.0.0.1"])`: sockets may then connect to the
loopback address only, which is all the fake needs."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from azfinetune.catalog import foundry_catalog
from azfinetune.testing._loopback import LoopbackRequest, LoopbackService
from azfinetune.testing.fake_workspace import FakeCredential

__all__ = [
    "BASE_MODEL_ERROR",
    "DEFAULT_FOUNDRY_PROGRESSION",
    "FakeFoundry",
    "FakeFoundryModel",
    "FoundryFault",
    "FoundryRequest",
    "validate_job_body",
]

#: What the service answers for a create without (or with a disallowed) trainingType, or an unknown model.
BASE_MODEL_ERROR = "The specified base model does not support fine-tuning."
#: A job's statuses, one step per GET of the job (Azure's vocabulary: no validating_files, no queued).
DEFAULT_FOUNDRY_PROGRESSION: tuple[str, ...] = ("pending", "running", "succeeded")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
PROJECT_AUDIENCE = "https://ai.azure.com"
RESOURCE_AUDIENCE = "https://cognitiveservices.azure.com"
PREVIEW_API_VERSION = "2025-04-01-preview"
_UNAUTHORIZED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect ({audience}), or have expired."
)
_CREATE_KEYS = frozenset(
    {
        "model",
        "training_file",
        "validation_file",
        "hyperparameters",
        "suffix",
        "seed",
        "integrations",
        "method",
        "metadata",
        "trainingType",
    }
)
_SUFFIX = re.compile(
    r"[A-Za-z0-9_-]{1,40}"
)  # the 2025-04-01-preview spec: up to 40 of a-z, A-Z, 0-9, - and _
_ROLES = frozenset({"system", "user", "assistant", "tool"})
FaultKind = Literal["status", "lost", "drop"]


@dataclass(frozen=True)
class FakeFoundryModel:
    """A base model the fake fine-tunes: its trainingType values, whether it pauses, its hyperparameter ranges."""

    id: str
    training_types: frozenset[str]
    pause: bool
    n_epochs: tuple[float | None, float | None]  # (min, max); None: unbounded
    batch_size: tuple[float | None, float | None]
    learning_rate_multiplier: tuple[float | None, float | None]  # (above, max)
    methods: frozenset[str] = frozenset({"supervised"})  # method.type values: supervised, dpo


def catalog_models() -> dict[str, FakeFoundryModel]:
    """The fake's models: azfinetune's Foundry catalog (the documented request values only)."""
    catalog = foundry_catalog()
    models: dict[str, FakeFoundryModel] = {}
    for model in catalog.models:
        ranges = catalog.ranges_of(model)
        values = {catalog.training_types[t].request_value for t in model.training_types}
        models[model.id.lower()] = FakeFoundryModel(
            id=model.id,
            training_types=frozenset(v for v in values if v),
            pause=model.pause,
            n_epochs=(ranges.n_epochs.min, ranges.n_epochs.max),
            batch_size=(ranges.batch_size.min, ranges.batch_size.max),
            learning_rate_multiplier=(
                ranges.learning_rate_multiplier.above,
                ranges.learning_rate_multiplier.max,
            ),
            methods=frozenset(model.methods),
        )
    return models


@dataclass(repr=False)
class FoundryRequest(LoopbackRequest):
    """One request the fake saw, and what it answered (`status` None: the connection was closed instead)."""

    @property
    def route(self) -> str:
        """The path after the API prefix: 'fine_tuning/jobs', 'files/file-1/content', ..."""
        match = re.search(r"/openai(?:/v1)?/(.*)$", self.path)
        return match.group(1) if match else self.path


@dataclass
class FoundryFault:
    """A fault for the next `times` requests matching method and path (a regex searched in the path)."""

    kind: FaultKind
    method: str | None = None
    path: re.Pattern[str] | None = None
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not self.path.search(path))


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    status: str = "pending"
    status_details: str | None = None
    polls_left: int = 0
    examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "file",
            "id": self.id,
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": self.status_details,
        }


@dataclass
class _Job:
    body: dict[str, Any]
    id: str
    model: FakeFoundryModel
    created_at: int
    statuses: list[str]
    error: dict[str, Any] | None = None
    index: int = 0
    status: str = "pending"
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    steps: int = 0
    started: bool = False


class FakeFoundry(LoopbackService):
    """A Foundry resource (and one project on it) answered on http://127.0.0.1:<port>, for tests that drive the real
    openai / azure-ai-projects clients or azfinetune's FoundryClient.

        with FakeFoundry() as foundry:
            client = foundry.client()                 # azfinetune's FoundryClient on the project endpoint
            openai_client = foundry.openai_client()   # AIProjectClient(...).get_openai_client()

    Tokens are checked for the audience of the endpoint form (`https://ai.azure.com` on the project endpoint,
    `https://cognitiveservices.azure.com` on the resource endpoint); an `api_key` is accepted as `api-key:` or as
    the bearer value. Each GET of a job moves it one step along `progression`; uploaded files are `pending` for
    `file_polls` GETs, then `processed` (or `error` when their content is not valid chat JSONL). While active, the
    sleeps of azure-core's transport (which azfinetune's Foundry client waits through) are recorded, not slept.
    """

    def __init__(
        self,
        *,
        project: str = "fake-project",
        api_key: str | None = None,
        models: Mapping[str, FakeFoundryModel] | None = None,
        progression: Sequence[str] = DEFAULT_FOUNDRY_PROGRESSION,
        file_polls: int = 1,
        keep_metadata: bool = True,
        events_newest_first: bool = False,
        page_size: int = 20,
        max_file_bytes: int | None = None,
        min_examples: int | None = None,
        metric_steps: int = 4,
        lifetime_s: float = 600.0,
        seed: int = 0,
    ) -> None:
        rules = foundry_catalog().data_rules
        self.project = project
        self.api_key = api_key
        self.models = dict(models) if models is not None else catalog_models()
        self.progression = list(progression)
        self.file_polls = file_polls
        self.keep_metadata = keep_metadata
        self.events_newest_first = events_newest_first
        self.page_size = page_size
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else rules.max_file_bytes
        self.min_examples = min_examples if min_examples is not None else rules.min_examples
        self.metric_steps = metric_steps
        super().__init__(lifetime_s=lifetime_s)
        self.credential = FakeCredential()
        self.requests: list[FoundryRequest] = []
        self.sleeps: list[float] = []
        self.files: dict[str, _File] = {}
        self.jobs: dict[str, _Job] = {}
        self._faults: list[FoundryFault] = []
        self._chaos_rate = 0.0
        self._chaos_kinds: tuple[str, ...] = ()
        self._rng = random.Random(seed)
        self._seed = seed
        self._counter = 0
        self._clock = int(time.time())
        self._job_progressions: dict[str, tuple[list[str], dict[str, Any] | None]] = {}
        self._lock = threading.RLock()
        self._undo: list[Callable[[], None]] = []

    # ---------------------------------------------------------------------------------------------- lifecycle

    service_name = "FakeFoundry"

    request_type = FoundryRequest
    answer_headers: ClassVar[Mapping[str, str]] = {"x-ms-region": "fake"}

    def start(self) -> None:
        """Listen on a free loopback port and serve from a background thread; zero (record) transport sleeps."""
        super().start()
        self._patch_sleep()

    def stop(self) -> None:
        """Stop serving and close the port (idempotent); transport sleeps are real again."""
        while self._undo:
            self._undo.pop()()
        super().stop()

    def _patch_sleep(self) -> None:
        from azure.core.pipeline.transport import HttpTransport

        old = HttpTransport.sleep
        sleeps = self.sleeps

        def no_sleep(transport: Any, duration: float) -> None:
            sleeps.append(float(duration))

        HttpTransport.sleep = no_sleep  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(HttpTransport, "sleep", old))

    # ---------------------------------------------------------------------------------------------- endpoints

    @property
    def project_endpoint(self) -> str:
        """What AIProjectClient takes: .../api/projects/<project> (token audience https://ai.azure.com)."""
        return f"{self.url}/api/projects/{self.project}"

    @property
    def resource_endpoint(self) -> str:
        """The resource endpoint (v1 API under /openai/v1; token audience https://cognitiveservices.azure.com)."""
        return self.url

    def client(self, *, endpoint: str | None = None, **kwargs: Any) -> Any:
        """azfinetune's FoundryClient on this fake (the project endpoint unless given), with its credential."""
        from azfinetune.client import FoundryClient

        kwargs.setdefault("credential", self.credential)
        return FoundryClient(endpoint=endpoint or self.project_endpoint, **kwargs)

    def openai_client(self, **kwargs: Any) -> Any:
        """The `openai.OpenAI` client users get from `AIProjectClient(endpoint, credential).get_openai_client()`."""
        from azure.ai.projects import AIProjectClient

        project = AIProjectClient(endpoint=self.project_endpoint, credential=self.credential)
        return project.get_openai_client(**kwargs)

    # ---------------------------------------------------------------------------------------------- faults

    def fail(
        self,
        status: int = 503,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
    ) -> FoundryFault:
        """Answer the next `times` matching requests with `status` (429: with Retry-After) instead."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        return self._add(FoundryFault("status", method, _pattern(path), status, headers, times))

    def lose(
        self, *, method: str | None = None, path: str | None = None, times: int | None = 1
    ) -> FoundryFault:
        """Carry out the next `times` matching requests, then close the connection without answering."""
        return self._add(FoundryFault("lost", method, _pattern(path), times=times))

    def drop(
        self, *, method: str | None = None, path: str | None = None, times: int | None = 1
    ) -> FoundryFault:
        """Close the connection of the next `times` matching requests without carrying them out."""
        return self._add(FoundryFault("drop", method, _pattern(path), times=times))

    def chaos(
        self, rate: float, *, kinds: Sequence[str] = ("429", "500", "503", "lost", "drop"), seed: int = 0
    ) -> None:
        """From now on, fail a share `rate` of all requests with one of `kinds` ("429", "5xx" codes, "lost",
        "drop"), drawn from a seeded generator."""
        self._chaos_rate = rate
        self._chaos_kinds = tuple(kinds)
        self._rng = random.Random(seed)

    def calm(self) -> None:
        """No more chaos (queued faults stay)."""
        self._chaos_rate = 0.0

    def _add(self, fault: FoundryFault) -> FoundryFault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str) -> FoundryFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.fired += 1
                    return fault
            if self._chaos_rate and self._rng.random() < self._chaos_rate:
                kind = self._rng.choice(self._chaos_kinds)
                if kind in ("lost", "drop"):
                    return FoundryFault(kind)  # type: ignore[arg-type]
                status = int(kind)
                headers = {"retry-after-ms": "1", "Retry-After": "1"} if status in (429, 503) else {}
                return FoundryFault("status", status=status, headers=headers)
        return None

    # ---------------------------------------------------------------------------------------------- job control

    def set_progression(
        self, statuses: Sequence[str], *, error: Mapping[str, Any] | None = None, job_id: str | None = None
    ) -> None:
        """The statuses jobs created from now on (or one job) go through; `error` for a job that ends failed."""
        with self._lock:
            if job_id is None:
                self.progression = list(statuses)
                self._job_progressions[""] = (list(statuses), dict(error) if error else None)
            else:
                job = self.jobs[job_id]
                job.statuses = [job.status, *statuses]
                job.index = 0
                job.error = dict(error) if error else job.error

    def advance(self, job_id: str, status: str) -> None:
        """Move a job to `status` now (as the service would), with its events; it then goes on through the rest of
        its progression after that status (or stays there)."""
        with self._lock:
            job = self.jobs[job_id]
            rest = job.statuses[job.index + 1 :]
            after = rest[rest.index(status) + 1 :] if status in rest else []
            if job.status == "pending" and status == "succeeded":
                self._enter(job, "running")  # a job starts before it succeeds: its events say so
            self._enter(job, status)
            job.statuses, job.index = [status, *after], 0

    def created_jobs(self) -> list[dict[str, Any]]:
        """Every job's create body, in creation order."""
        return [job.body for job in self.jobs.values()]

    def uploads(self) -> list[FoundryRequest]:
        """The file-upload requests that reached the service (a lost answer still counts: the file was made)."""
        return [r for r in self.requests if r.method == "POST" and r.route == "files" and r.fault != "drop"]

    # ---------------------------------------------------------------------------------------------- plumbing

    def _id(self, prefix: str) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{self._seed}:{prefix}:{self._counter}".encode()).hexdigest()
        return f"{prefix}-{digest[:32]}"

    def _now(self) -> int:
        self._clock += 1
        return self._clock

    def handle(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes] | None:
        """Answer one request: (status, headers, body), or None to close the connection without an answer."""
        with self._lock:
            self.requests.append(request)
            fault = self._fault_for(request.method, request.path)
            if fault is not None and fault.kind == "drop":
                request.fault = "drop"
                return None
            if fault is not None and fault.kind == "status":
                request.fault = f"status:{fault.status}"
                request.status = fault.status
                code = "tooManyRequests" if fault.status == 429 else "serviceUnavailable"
                message = (
                    "Rate limit is exceeded. Try again in 1 seconds."
                    if fault.status == 429
                    else "The service is temporarily unavailable."
                )
                return _error(fault.status, code, message, headers=fault.headers)
            status, headers, body = self._route(request)
            request.status = status
            if fault is not None:  # lost: done, but the answer never arrives
                request.fault = "lost"
                return None
            return status, headers, body

    def _route(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes]:
        form, route = _split_path(request.path, self.project)
        if form is None:
            return _error(404, "404", "Resource not found")
        if form == "preview" and request.query.get("api-version") != PREVIEW_API_VERSION:
            return _error(
                404, "404", "Resource not found (the /openai path takes ?api-version=2025-04-01-preview)"
            )
        denied = self._authorize(request, PROJECT_AUDIENCE if form == "project" else RESOURCE_AUDIENCE)
        if denied is not None:
            return denied
        method = request.method
        parts = route.strip("/").split("/")
        if parts[0] == "files":
            if len(parts) == 1:
                if method == "POST":
                    return self._upload(request)
                if method == "GET":
                    return self._list_files(request)
            elif len(parts) == 2 and method in ("GET", "DELETE"):
                return self._file(parts[1], delete=method == "DELETE")
            elif len(parts) == 3 and parts[2] == "content" and method == "GET":
                return self._file_content(parts[1])
            return _error(405 if len(parts) <= 3 else 404, "404", "Resource not found")
        if parts[:2] == ["fine_tuning", "jobs"]:
            rest = parts[2:]
            if not rest:
                if method == "POST":
                    return self._create_job(request)
                if method == "GET":
                    return self._list_jobs(request)
            elif len(rest) == 1 and method in ("GET", "DELETE"):
                return self._job(rest[0], delete=method == "DELETE")
            elif len(rest) == 2 and rest[1] in ("events", "checkpoints"):
                if method != "GET":  # the docs' curl says POST; the spec and openai-python say GET
                    return _error(405, "405", f"{method} is not allowed on {rest[1]}; use GET")
                return (
                    self._events(request, rest[0])
                    if rest[1] == "events"
                    else self._checkpoints(request, rest[0])
                )
            elif len(rest) == 2 and rest[1] in ("cancel", "pause", "resume") and method == "POST":
                return self._control(rest[0], rest[1])
        return _error(404, "404", "Resource not found")

    def _authorize(self, request: FoundryRequest, audience: str) -> tuple[int, dict[str, str], bytes] | None:
        headers = request.headers
        if self.api_key is not None and headers.get("api-key") == self.api_key:
            return None
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if token and self.api_key is not None and token == self.api_key:
            return None
        claims = _jwt_claims(token)
        if claims is not None and claims.get("aud") == audience and float(claims.get("exp", 0)) > time.time():
            return None
        return _error(401, "401", _UNAUTHORIZED.format(audience=audience))

    # -- files

    def _upload(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes]:
        content_type = request.headers.get("content-type", "")
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/form-data") or match is None:
            return _error(
                400, "invalidPayload", "A file upload is multipart/form-data with 'purpose' and 'file'."
            )
        fields, files = _multipart(request.body, match.group(1).encode())
        purpose = fields.get("purpose")
        if purpose != "fine-tune":
            return _error(
                400, "invalidPayload", f"The purpose {purpose!r} is not supported; use 'fine-tune'."
            )
        if "file" not in files:
            return _error(400, "invalidPayload", "The 'file' part is missing.")
        filename, data = files["file"]
        if len(data) >= self.max_file_bytes:
            return _error(
                400,
                "invalidPayload",
                f"The file is too large: files must be under {self.max_file_bytes} bytes.",
            )
        item = _File(
            id=self._id("file"),
            filename=filename,
            purpose=purpose,
            data=data,
            created_at=self._now(),
            polls_left=self.file_polls,
        )
        self.files[item.id] = item
        if item.polls_left <= 0:
            self._process(item)
        return _json(200, item.to_dict())

    def _process(self, item: _File) -> None:
        problem, examples = _check_jsonl(item.data)
        item.examples = examples
        item.status = "error" if problem else "processed"
        item.status_details = f"jsonlValidationFailed: {problem}" if problem else None

    def _list_files(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes]:
        purpose = request.query.get("purpose")
        items = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
        items.sort(key=lambda f: f.created_at, reverse=request.query.get("order", "desc") == "desc")
        return _json(200, _page([f.to_dict() for f in items], request.query, default_limit=10000))

    def _file(self, file_id: str, *, delete: bool) -> tuple[int, dict[str, str], bytes]:
        item = self.files.get(file_id)
        if item is None:
            return _error(404, "notFound", f"File with id '{file_id}' not found.")
        if delete:
            del self.files[file_id]
            return _json(200, {"object": "file", "id": file_id, "deleted": True})
        if item.status == "pending":
            item.polls_left -= 1
            if item.polls_left <= 0:
                self._process(item)
        return _json(200, item.to_dict())

    def _file_content(self, file_id: str) -> tuple[int, dict[str, str], bytes]:
        item = self.files.get(file_id)
        if item is None:
            return _error(404, "notFound", f"File with id '{file_id}' not found.")
        return 200, {"Content-Type": "application/octet-stream"}, item.data

    # -- jobs

    def _create_job(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.json
        problem = validate_job_body(body, self.models, self.files, min_examples=self.min_examples)
        if problem is not None:
            code, message, param = problem
            return _error(400, code, message, param=param)
        model = self.models[str(body["model"]).lower()]
        statuses, error = self._job_progressions.get("", (self.progression, None))
        job = _Job(
            body=body,
            id=self._id("ftjob"),
            model=model,
            created_at=self._now(),
            statuses=list(statuses),
            error=dict(error) if error else None,
        )
        job.status = job.statuses[0]
        self.jobs[job.id] = job
        self._event(job, "Job enqueued. Waiting for jobs ahead to complete.")
        return _json(200, self._job_dict(job))

    def _list_jobs(self, request: FoundryRequest) -> tuple[int, dict[str, str], bytes]:
        jobs = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
        return _json(200, _page([self._job_dict(j) for j in jobs], request.query, default_limit=20))

    def _job(self, job_id: str, *, delete: bool) -> tuple[int, dict[str, str], bytes]:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"The fine tuning job '{job_id}' was not found.")
        if delete:
            if job.status not in TERMINAL:
                return _error(400, "unexpectedEntityState", "Only jobs in a terminal state can be deleted.")
            del self.jobs[job_id]
            return 204, {}, b""
        if job.index < len(job.statuses) - 1:
            job.index += 1
            self._enter(job, job.statuses[job.index])
        return _json(200, self._job_dict(job))

    def _control(self, job_id: str, action: str) -> tuple[int, dict[str, str], bytes]:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"The fine tuning job '{job_id}' was not found.")
        if action == "cancel":
            if job.status in TERMINAL:
                return _error(
                    400, "unexpectedEntityState", f"The job is {job.status} and cannot be cancelled."
                )
            self._enter(job, "cancelled")
            job.statuses = job.statuses[: job.index + 1]
        elif action == "pause":
            if not job.model.pause:
                return _error(400, "invalidPayload", "Pausing is supported only for OpenAI models.")
            if job.status != "running":
                return _error(400, "unexpectedEntityState", "Only running jobs can be paused.")
            self._enter(job, "pausing")
            job.statuses = [*job.statuses[: job.index + 1], "paused"]
        else:
            if job.status != "paused":
                return _error(400, "unexpectedEntityState", "Only paused jobs can be resumed.")
            self._enter(job, "resuming")
            job.statuses = [*job.statuses[: job.index + 1], "running", "succeeded"]
        return _json(200, self._job_dict(job))

    def _enter(self, job: _Job, status: str) -> None:
        if status == job.status and job.events:
            return
        job.status = status
        if status == "running":
            self._event(job, "Job resumed." if job.started else "Job started.")
            job.started = True
        elif status == "paused":
            self._event(job, "Job paused.")
        elif status == "succeeded":
            self._train(job)
            self._event(job, "Job succeeded.")
        elif status == "failed":
            job.error = job.error or {"code": "internalFailure", "message": "The job failed.", "param": None}
            job.finished_at = self._now()
            self._event(job, f"Job failed: {job.error.get('message')}", level="error")
        elif status == "cancelled":
            job.finished_at = self._now()
            self._event(job, "Job cancelled.")

    def _train(self, job: _Job) -> None:
        """What a finished job leaves: metrics events, the three last checkpoints, results.csv, the model name."""
        epochs = _epochs(job.body)
        train = self.files.get(str(job.body.get("training_file")))
        tokens = max(1, len(train.data) // 4) if train else 1
        job.trained_tokens = tokens * epochs
        rows = []
        for step in range(1, self.metric_steps + 1):
            loss = round(2.0 / (1 + step), 4)
            rows.append(
                {"step": step, "train_loss": loss, "train_mean_token_accuracy": round(1 - loss / 3, 4)}
            )
            self._event(
                job, f"Step {step}/{self.metric_steps}: training loss={loss}", kind="metrics", data=rows[-1]
            )
        job.steps = self.metric_steps
        suffix = job.body.get("suffix")
        hex_id = job.id.split("-", 1)[1]
        job.fine_tuned_model = f"{job.model.id}.ft-{hex_id}" + (f"-{suffix}" if suffix else "")
        for row in rows[-3:]:
            job.checkpoints.append(
                {
                    "object": "fine_tuning.job.checkpoint",
                    "id": self._id("ftchkpt"),
                    "created_at": self._now(),
                    "fine_tuned_model_checkpoint": f"{job.fine_tuned_model}:ckpt-step-{row['step']}",
                    "fine_tuning_job_id": job.id,
                    "step_number": row["step"],
                    "metrics": {
                        "step": row["step"],
                        "train_loss": row["train_loss"],
                        "train_mean_token_accuracy": row["train_mean_token_accuracy"],
                    },
                }
            )
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["step", "train_loss", "train_mean_token_accuracy"])
        writer.writeheader()
        writer.writerows(rows)
        results = _File(
            self._id("file"), "results.csv", "fine-tune-results", out.getvalue().encode(), self._now()
        )
        results.status = "processed"
        self.files[results.id] = results
        job.result_files = [results.id]
        job.finished_at = self._now()

    def _event(
        self, job: _Job, message: str, *, level: str = "info", kind: str = "message", data: Any = None
    ) -> None:
        event: dict[str, Any] = {
            "object": "fine_tuning.job.event",
            "id": self._id("ftevent"),
            "created_at": self._now(),
            "level": level,
            "message": message,
            "type": kind,
        }
        if data is not None:
            event["data"] = data
        job.events.append(event)

    def _events(self, request: FoundryRequest, job_id: str) -> tuple[int, dict[str, str], bytes]:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"The fine tuning job '{job_id}' was not found.")
        events = list(reversed(job.events)) if self.events_newest_first else list(job.events)
        return _json(200, _page(events, request.query, default_limit=20))

    def _checkpoints(self, request: FoundryRequest, job_id: str) -> tuple[int, dict[str, str], bytes]:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"The fine tuning job '{job_id}' was not found.")
        items = list(reversed(job.checkpoints)) if job.status in TERMINAL else []
        return _json(200, _page(items, request.query, default_limit=10))

    def _job_dict(self, job: _Job) -> dict[str, Any]:
        body = job.body
        method = body.get("method") or {"type": "supervised"}
        hyperparameters = (
            (method.get(method.get("type", "supervised")) or {}).get("hyperparameters")
            or body.get("hyperparameters")
            or {}
        )
        out: dict[str, Any] = {
            "object": "fine_tuning.job",
            "id": job.id,
            "created_at": job.created_at,
            "status": job.status,
            "model": job.model.id,
            "fine_tuned_model": job.fine_tuned_model,
            "training_file": body.get("training_file"),
            "validation_file": body.get("validation_file"),
            "result_files": job.result_files or None,
            "finished_at": job.finished_at,
            "organisation_id": None,
            "trained_tokens": job.trained_tokens,
            "error": job.error if job.status == "failed" else None,
            "estimated_finish": None,
            "hyperparameters": {"n_epochs": hyperparameters.get("n_epochs", -1), **hyperparameters},
            "suffix": body.get("suffix"),
            "seed": body.get("seed", 42),
            "method": method,
            "trainingType": body.get("trainingType"),
        }
        if self.keep_metadata and body.get("metadata"):
            out["metadata"] = body["metadata"]
        return out


# -- validation of a create body (also usable offline: the invariant tests run it on built jobs) ----------------


def validate_job_body(
    body: Any,
    models: Mapping[str, FakeFoundryModel] | None = None,
    files: Mapping[str, Any] | None = None,
    *,
    min_examples: int = 10,
) -> tuple[str, str, str | None] | None:
    """What the service refuses in a create-job body, as (code, message, param); None when it takes it.

    With `files` None the file ids are not checked (an offline check of a built body)."""
    models = catalog_models() if models is None else models
    if not isinstance(body, dict):
        return "invalidPayload", "The request body must be a JSON object.", None
    unknown = sorted(set(body) - _CREATE_KEYS)
    if unknown:
        return "invalidPayload", f"Unknown field(s): {', '.join(unknown)}.", unknown[0]
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "invalidPayload", "The model field is required.", "model"
    if not isinstance(body.get("training_file"), str):
        return "invalidPayload", "The training_file field is required.", "training_file"
    model = models.get(body["model"].lower())
    training_type = body.get("trainingType")
    if model is None or not isinstance(training_type, str) or training_type not in model.training_types:
        return "invalidPayload", BASE_MODEL_ERROR, None
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix)):
        return "invalidPayload", "The suffix takes up to 40 of a-z, A-Z, 0-9, '-' and '_'.", "suffix"
    seed = body.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= 2**31 - 1):
        return "invalidPayload", "The seed must be a 32-bit integer.", "seed"
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or len(metadata) > 16:
            return "invalidPayload", "metadata takes at most 16 string pairs.", "metadata"
        for key, value in metadata.items():
            if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
                return (
                    "invalidPayload",
                    f"metadata {key!r}: keys up to 64 characters, string values up to 512.",
                    "metadata",
                )
    problem = _check_hyperparameters(body, model)
    if problem is not None:
        return problem
    if files is not None:
        for key in ("training_file", "validation_file"):
            file_id = body.get(key)
            if file_id is None:
                continue
            item = files.get(file_id)
            if item is None:
                return "invalidPayload", f"The file '{file_id}' was not found.", key
            if item.purpose != "fine-tune":
                return "invalidPayload", f"The file '{file_id}' was not uploaded for fine-tuning.", key
            if item.status != "processed":
                return (
                    "invalidPayload",
                    f"The file '{file_id}' is {item.status}"
                    + (f" ({item.status_details})" if item.status_details else "")
                    + "; a job needs processed files.",
                    key,
                )
            if key == "training_file" and item.examples < min_examples:
                return (
                    "invalidPayload",
                    f"The training file has {item.examples} examples; at least {min_examples} are required.",
                    key,
                )
    return None


def _check_hyperparameters(
    body: dict[str, Any], model: FakeFoundryModel
) -> tuple[str, str, str | None] | None:
    method = body.get("method")
    hyperparameters = body.get("hyperparameters") or {}
    known = {"n_epochs", "batch_size", "learning_rate_multiplier"}
    if method is not None:
        kind = method.get("type") if isinstance(method, dict) else None
        if kind not in model.methods:
            offered = " or ".join(repr(m) for m in sorted(model.methods))
            return "invalidPayload", f"method.type must be {offered} for this model.", "method"
        assert isinstance(method, dict) and isinstance(kind, str)
        hyperparameters = (method.get(kind) or {}).get("hyperparameters") or {}
        if kind == "dpo":
            known.add("beta")
            beta = hyperparameters.get("beta") if isinstance(hyperparameters, dict) else None
            if (
                beta is not None
                and beta != "auto"
                and (isinstance(beta, bool) or not isinstance(beta, int | float) or beta <= 0)
            ):
                return "invalidPayload", "beta must be a positive number or 'auto'.", "beta"
    if not isinstance(hyperparameters, dict):
        return "invalidPayload", "hyperparameters must be an object.", "hyperparameters"
    for name, bounds, integer in (
        ("n_epochs", model.n_epochs, True),
        ("batch_size", model.batch_size, True),
        ("learning_rate_multiplier", model.learning_rate_multiplier, False),
    ):
        if name not in hyperparameters:
            continue
        value = hyperparameters[name]
        if value == "auto" or value == -1:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and type(value) is not int)
        ):
            return (
                "invalidPayload",
                f"{name} must be {'an integer' if integer else 'a number'} or 'auto'.",
                name,
            )
        low, high = bounds
        too_low = low is not None and (value <= low if name == "learning_rate_multiplier" else value < low)
        if too_low or (high is not None and value > high):
            return "invalidPayload", f"{name} {value} is out of range for {model.id}.", name
    unknown = sorted(set(hyperparameters) - known)
    if unknown:
        return "invalidPayload", f"Unknown hyperparameter(s): {', '.join(unknown)}.", unknown[0]
    return None


def _check_jsonl(data: bytes) -> tuple[str | None, int]:
    """(the first problem, examples) of a chat JSONL file, as the service's file validation sees it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "the file is not UTF-8", 0
    examples = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON", examples
        if isinstance(record, dict) and "preferred_output" in record:  # a DPO example (input + two outputs)
            problem = _check_preference_line(record, number)
            if problem is not None:
                return problem, examples
            examples += 1
            continue
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            return f"line {number} has no 'messages' list", examples
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return f"line {number}: a message needs a role of {sorted(_ROLES)}", examples
            weight = message.get("weight")
            if weight is not None and (
                message.get("role") != "assistant" or weight not in (0, 1) or isinstance(weight, bool)
            ):
                return f"line {number}: weight is 0 or 1, on assistant messages only", examples
        if not any(m.get("role") == "assistant" for m in messages):
            return f"line {number} has no assistant message", examples
        examples += 1
    return None, examples


def _check_preference_line(record: dict[str, Any], number: int) -> str | None:
    """The DPO layout: input.messages, and preferred_output / non_preferred_output of assistant messages."""
    prompt = record.get("input")
    messages = prompt.get("messages") if isinstance(prompt, dict) else None
    if not isinstance(messages, list) or not messages:
        return f"line {number} has no 'input.messages' list"
    for key in ("preferred_output", "non_preferred_output"):
        output = record.get(key)
        if not isinstance(output, list) or not output:
            return f"line {number} has no '{key}' list"
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in output):
            return f"line {number}: '{key}' needs an assistant message"
    return None


def _epochs(body: Mapping[str, Any]) -> int:
    method = body.get("method") or {}
    kind = method.get("type") or "supervised"
    hyperparameters = (method.get(kind) or {}).get("hyperparameters") or body.get("hyperparameters") or {}
    value = hyperparameters.get("n_epochs", 3)
    return value if isinstance(value, int) and value > 0 else 3


# -- HTTP ----------------------------------------------------------------------------------------------------------


def _pattern(path: str | None) -> re.Pattern[str] | None:
    return re.compile(path) if path else None


def _split_path(path: str, project: str) -> tuple[str | None, str]:
    """('project' | 'resource' | 'preview', the route after the API prefix), or (None, path) off the API."""
    match = re.fullmatch(r"/api/projects/(?P<project>[^/]+)/openai/v1/(?P<route>.+)", path)
    if match:
        return ("project" if match["project"] == project else None), match["route"]
    match = re.fullmatch(r"/openai/v1/(?P<route>.+)", path)
    if match:
        return "resource", match["route"]
    match = re.fullmatch(r"/openai/(?P<route>(?:files|fine_tuning).*)", path)
    if match:
        return "preview", match["route"]
    return None, path


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _multipart(body: bytes, boundary: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition = next(
            (
                line
                for line in head.decode("utf-8", "replace").split("\r\n")
                if line.lower().startswith("content-disposition")
            ),
            "",
        )
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is None:
            continue
        if filename is not None:
            files[name.group(1)] = (filename.group(1), content)
        else:
            fields[name.group(1)] = content.decode("utf-8", "replace")
    return fields, files


def _page(items: list[dict[str, Any]], query: Mapping[str, str], *, default_limit: int) -> dict[str, Any]:
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, int(query.get("limit", default_limit)))
    except ValueError:
        limit = default_limit
    page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > limit}


def _json(
    status: int, data: Any, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode()


def _error(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": code, "message": message, "param": param, "type": None}}, headers)


def iter_events(fake: FakeFoundry, job_id: str) -> Iterator[str]:
    """The messages of a job's events, oldest first (for assertions)."""
    for event in fake.jobs[job_id].events:
        yield str(event["message"])
