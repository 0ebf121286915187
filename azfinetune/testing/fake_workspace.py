"""FakeWorkspace: an offline, `responses`-based fake of the Azure ML REST API that azure-ai-ml's MLClient uses."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import requests

from azfinetune.testing._rest_schema import JOB_API_VERSIONS, job_body_violations
from azfinetune.testing._wire import (
    IMMUTABLE_JOB_MESSAGE,
    STATUS_CODES,
    STORAGE_CODES,
    Response,
    api_version_error,
    arm_error,
    blob_list_xml,
    block_list_ids,
    empty_response,
    etag,
    http_date,
    invalid_request_error,
    iso,
    json_response,
    mfe_error,
    storage_error,
    system_data,
    utcnow,
)

__all__ = [
    "DEFAULT_PROGRESSION",
    "FakeCredential",
    "FakeWorkspace",
    "Fault",
    "RecordedRequest",
]

DEFAULT_PROGRESSION: tuple[str, ...] = ("NotStarted", "Queued", "Running", "Completed")
# Paused (a JobStatus since 2024-10-01-preview) is where a job rests until a person resumes it: terminal here,
# as for azfinetune's client (a wait ends on it).
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})
ML_AUDIENCE = "https://ml.azure.com"
ARM_HOST = "management.azure.com"

# Fields of a job the service lets a second PUT change; everything else is immutable.
_MUTABLE_JOB_FIELDS = frozenset({"description", "tags", "displayName", "properties", "isArchived", "status"})
_ASSET_KINDS = ("codes", "environments", "data", "components", "models")
_FaultKind = Literal["status", "connection", "lost"]

_WS = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
# Registry assets: on ARM, and on the registry's MFE host (`.../mferp/managementfrontend/...`) found by discovery.
_REG = (
    r"(?:/mferp/managementfrontend)?/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/registries/(?P<reg>[^/]+)"
)
_ASSET = r"(?P<kind>codes|environments|data|components|models)"


# --------------------------------------------------------------------------------------------------------------
# Credential


class FakeCredential:
    """A TokenCredential whose tokens are unsigned-but-well-formed JWTs (azure-ai-ml decodes the ML-scope token).

    The audience is the scope without `/.default` (`https://ml.azure.com/.default` -> `https://ml.azure.com`),
    so the token azure-ai-ml sends as `x-azureml-token` passes its `aud == "https://ml.azure.com"` check.
    """

    def __init__(
        self,
        *,
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        object_id: str = "00000000-0000-0000-0000-0000000000bb",
        upn: str = "fake.user@contoso.com",
        lifetime_s: int = 3600,
    ) -> None:
        self.tenant_id = tenant_id
        self.object_id = object_id
        self.upn = upn
        self.lifetime_s = lifetime_s
        self.scopes_requested: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        import jwt  # PyJWT, a dependency of azure-ai-ml

        self.scopes_requested.append(scopes)
        scope = scopes[0] if scopes else ML_AUDIENCE
        audience = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        audience = audience.rstrip("/")
        now = int(time.time())
        expires = now + self.lifetime_s
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires,
            "oid": self.object_id,
            "tid": self.tenant_id,
            "upn": self.upn,
            "name": "Fake User",
        }
        token = jwt.encode(claims, "fake-workspace-signing-key-not-a-secret-000", algorithm="HS256")
        return token, expires

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        from azure.core.credentials import AccessToken

        token, expires = self._token(scopes)
        return AccessToken(token, expires)

    def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        token, expires = self._token(scopes)
        return AccessTokenInfo(token, expires)

    def close(self) -> None:
        return None

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# --------------------------------------------------------------------------------------------------------------
# Request log and faults


@dataclass
class RecordedRequest:
    """One HTTP request the fake saw. `status` is None when the fake answered with a connection error."""

    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    api_version: str | None
    headers: dict[str, str]
    body: bytes | None
    json: Any
    status: int | None = None
    fault: str | None = None  # "status:503", "connection", "lost", "chaos:503", ...

    @property
    def text(self) -> str:
        return (self.body or b"").decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<{self.method} {self.host}{self.path} api={self.api_version} -> {self.status} {self.fault or ''}>"


@dataclass
class Fault:
    """An injected fault: fires on the next `times` requests matching method/path/host (None = forever)."""

    kind: _FaultKind
    method: str | None
    path: re.Pattern[str] | None
    host: str | None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    code: str | None = None
    message: str | None = None
    times: int | None = 1
    fired: int = 0

    def matches(self, method: str, host: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.host and self.host not in host:
            return False
        return not (self.path and not self.path.search(path))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass
class _Req:
    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass
class _Job:
    name: str
    properties: dict[str, Any]
    created: datetime
    statuses: list[str]
    error: dict[str, Any] | None = None
    index: int = 0
    modified: datetime | None = None
    run_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def status(self) -> str:
        return self.statuses[self.index]

    def advance(self) -> None:
        if self.index < len(self.statuses) - 1:
            self.index += 1


@dataclass
class _Blob:
    data: bytes
    metadata: dict[str, str]
    content_type: str
    etag: str
    created: datetime


@dataclass
class _Asset:
    body: dict[str, Any]
    created: datetime
    seq: int


_Handler = Callable[[_Req, "re.Match[str]"], Response]


@dataclass
class _Route:
    methods: frozenset[str]
    hosts: frozenset[str]  # host kinds: arm, api, blob, mfe
    pattern: re.Pattern[str]
    handler: _Handler
    workspace_scoped: bool = False


def _host_kind(host: str) -> str:
    host = host.lower()
    if host == ARM_HOST:
        return "arm"
    if host.endswith(".blob.core.windows.net"):
        return "blob"
    if host.endswith(".api.azureml.ms"):
        return "api"
    if host.endswith(".experiments.azureml.net"):
        return "mfe"
    return "other"


class _NoSleepTime(SimpleNamespace):
    """Stand-in for the `time` module inside azure-ai-ml modules: everything real except `sleep`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# --------------------------------------------------------------------------------------------------------------
# The fake


class FakeWorkspace:
    """An Azure ML workspace answered in-process, for tests that drive the real `azure.ai.ml.MLClient`.

    Use as a context manager (or the `fake_workspace` pytest fixture). While active, every `requests` call is
    answered by this fake (unknown routes get a 404 and are listed in `unmatched`); sleeps in azure-core retry/LRO
    polling and azure-ai-ml's run-history polling are zero; azure-ai-ml's git properties are `{}`.
    """

    def __init__(
        self,
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        resource_group: str = "rg-fake",
        workspace: str = "ws-fake",
        location: str = "eastus2",
        computes: Mapping[str, str] | None = None,
        *,
        storage_account: str = "fakewsstorage",
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        progression: Sequence[str] = DEFAULT_PROGRESSION,
        page_size: int = 20,
        lro_polls: int = 0,
        enforce_marketplace: bool = True,
    ) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.location = location
        self.computes: dict[str, str] = dict(
            computes if computes is not None else {"gpu-cluster": "Standard_NC24ads_A100_v4"}
        )
        self.storage_account = storage_account
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.lro_polls = lro_polls
        self.enforce_marketplace = enforce_marketplace
        self.workspace_exists = True
        self.credential = FakeCredential(tenant_id=tenant_id)
        self.workspace_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_id))
        self.datastore_container = f"azureml-blobstore-{self.workspace_guid}"
        self.sleeps: list[float] = []
        self.unmatched: list[RecordedRequest] = []

        self._progression: list[str] = list(progression)
        self._progression_error: dict[str, Any] | None = None
        self._job_progressions: dict[str, tuple[list[str], dict[str, Any] | None]] = {}
        self._jobs: dict[str, _Job] = {}
        self._logs: dict[str, dict[str, str]] = {}
        self._metrics: dict[str, dict[str, list[tuple[int, float]]]] = {}
        self._assets: dict[str, dict[str, dict[str, _Asset]]] = {k: {} for k in _ASSET_KINDS}
        self._registry_assets: dict[tuple[str, str], dict[str, dict[str, _Asset]]] = {}
        self._missing_models: set[str] = set()
        self._asset_seq = 0
        self._blobs: dict[tuple[str, str, str], _Blob] = {}
        self._blocks: dict[tuple[str, str, str], dict[str, bytes]] = {}
        self._blob_seq = 0
        self._marketplace: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._operations: dict[str, int] = {}
        self._log: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._chaos_rate = 0.0
        self._chaos_rng = random.Random(0)
        self._chaos_kinds: tuple[str, ...] = ()
        self._chaos_lost_methods: frozenset[str] = frozenset()
        self._lock = threading.RLock()
        self._mock: Any = None
        self._undo: list[Callable[[], None]] = []
        self._routes = self._build_routes()

    # ---------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeWorkspace:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Activate the fake: intercept `requests`, zero the sleeps, neutralise git properties."""
        import responses

        if self._mock is not None:
            raise RuntimeError("FakeWorkspace is already active")
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        anything = re.compile(r"https?://.*")
        for method in ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            mock.add_callback(method, anything, callback=self._callback, content_type=None)
        mock.start()
        self._mock = mock
        try:
            self._patch_sleeps_and_git()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Deactivate the fake and restore everything it patched."""
        while self._undo:
            self._undo.pop()()
        if self._mock is not None:
            mock, self._mock = self._mock, None
            mock.stop()
            mock.reset()

    @property
    def active(self) -> bool:
        return self._mock is not None

    def _patch(self, target: Any, name: str, value: Any) -> None:
        old = getattr(target, name)
        setattr(target, name, value)
        self._undo.append(lambda: setattr(target, name, old))

    def _patch_sleeps_and_git(self) -> None:
        from azure.core.pipeline.transport import HttpTransport

        sleeps = self.sleeps

        def no_sleep(transport: Any, duration: float) -> None:
            sleeps.append(float(duration))

        # RetryPolicy, ARM LRO polling and azure-storage's ExponentialRetry all sleep through the transport.
        self._patch(HttpTransport, "sleep", no_sleep)

        from azure.ai.ml.operations import _job_operations, _job_ops_helper, _run_history_constants

        constants = _run_history_constants.RunHistoryConstants
        self._patch(constants, "_WAIT_COMPLETION_POLLING_INTERVAL_MIN", 0)
        self._patch(constants, "_WAIT_COMPLETION_POLLING_INTERVAL_MAX", 0)
        self._patch(_job_operations, "get_git_properties", lambda: {})

        fake_time = _NoSleepTime(sleep=lambda _s: None)
        import azure.ai.ml._artifacts._blob_storage_helper as blob_helper
        import azure.ai.ml._utils._endpoint_utils as endpoint_utils
        import azure.ai.ml._utils.utils as ml_utils

        for module in (_job_ops_helper, blob_helper, endpoint_utils, ml_utils):
            if getattr(module, "time", None) is time:
                self._patch(module, "time", fake_time)

    # ---------------------------------------------------------------------------------------------- clients

    def ml_client(self, **kwargs: Any) -> Any:
        """A real `azure.ai.ml.MLClient` for this workspace (FakeCredential, telemetry off); kwargs override."""
        from azure.ai.ml import MLClient

        options: dict[str, Any] = {
            "credential": self.credential,
            "subscription_id": self.subscription_id,
            "resource_group_name": self.resource_group,
            "workspace_name": self.workspace,
            "enable_telemetry": False,
        }
        options.update(kwargs)
        return MLClient(**options)

    def registry_client(self, registry_name: str = "azureml", **kwargs: Any) -> Any:
        """A real `MLClient` bound to an Azure ML registry served by this fake."""
        from azure.ai.ml import MLClient

        options: dict[str, Any] = {
            "credential": self.credential,
            "registry_name": registry_name,
            "enable_telemetry": False,
        }
        options.update(kwargs)
        return MLClient(**options)

    def write_config(self, folder: str | Path) -> Path:
        """Write `config.json` (as `MLClient.from_config` reads it) for this workspace into `folder`."""
        path = Path(folder) / "config.json"
        config = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace,
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    @property
    def environ(self) -> dict[str, str]:
        """Environment variables that name this workspace (AZURE_SUBSCRIPTION_ID, ...), for monkeypatch.setenv."""
        return {
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_RESOURCE_GROUP": self.resource_group,
            "AZUREML_WORKSPACE_NAME": self.workspace,
        }

    # ---------------------------------------------------------------------------------------------- identities

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    @property
    def api_host(self) -> str:
        """The regional data-plane host (run history, MLflow, discovery)."""
        return f"{self.location}.api.azureml.ms"

    @property
    def history_url(self) -> str:
        return f"https://{self.api_host}"

    @property
    def mlflow_tracking_uri(self) -> str:
        """An https MLflow tracking URI for this workspace (what azureml-mlflow resolves `azureml://` to)."""
        return f"https://{self.api_host}/mlflow/v2.0{self.workspace_id}"

    def studio_url(self, job_name: str) -> str:
        # The service answers without `&tid=`: azure-ai-ml appends it from the token's `tid` claim.
        return f"https://ml.azure.com/runs/{quote(job_name, safe='')}?wsid={self.workspace_id}"

    # ---------------------------------------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request seen so far, in order (Authorization headers removed)."""
        with self._lock:
            return list(self._log)

    def requests_to(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        host: str | None = None,
    ) -> list[RecordedRequest]:
        """Requests filtered by method, path (substring, or a compiled regex searched) and host substring."""
        out = []
        for rec in self.requests:
            if method and rec.method != method.upper():
                continue
            if host and host not in rec.host:
                continue
            if isinstance(path, re.Pattern):
                if not path.search(rec.path):
                    continue
            elif path and path not in rec.path:
                continue
            out.append(rec)
        return out

    def count(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        host: str | None = None,
    ) -> int:
        return len(self.requests_to(method, path, host=host))

    def clear_requests(self) -> None:
        """Forget the request log (state, faults and blobs stay)."""
        with self._lock:
            self._log.clear()
            self.unmatched.clear()
            self.sleeps.clear()

    @property
    def uploads(self) -> list[RecordedRequest]:
        """Blob writes that carried data (Put Blob / Put Block / Put Block List), not metadata updates."""
        return [
            r
            for r in self.requests_to("PUT", host=".blob.")
            if r.query.get("comp") in (None, "block", "blocklist") and r.query.get("restype") != "container"
        ]

    # ---------------------------------------------------------------------------------------------- state views

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """Stored jobs by name, as a GET would answer them now (reading this does not advance statuses)."""
        with self._lock:
            return {name: self._job_resource(job) for name, job in self._jobs.items()}

    def job_status(self, name: str) -> str:
        with self._lock:
            return self._jobs[name].status

    @property
    def blobs(self) -> dict[str, bytes]:
        """Stored blobs as {"<account>/<container>/<blob path>": data}."""
        with self._lock:
            return {f"{a}/{c}/{b}": blob.data for (a, c, b), blob in self._blobs.items()}

    def blob_metadata(self, container: str, blob_path: str, *, account: str | None = None) -> dict[str, str]:
        with self._lock:
            return dict(self._blobs[(account or self.storage_account, container, blob_path)].metadata)

    def assets(self, kind: str) -> dict[str, list[str]]:
        """Workspace assets of a kind ("codes", "environments", "data", "components", "models"): name -> versions."""
        with self._lock:
            return {name: list(versions) for name, versions in self._assets[kind].items()}

    def asset(self, kind: str, name: str, version: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._assets[kind][name][version].body)

    @property
    def marketplace_subscriptions(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._marketplace)

    @property
    def serverless_endpoints(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._endpoints)

    # ---------------------------------------------------------------------------------------------- job control

    def set_progression(
        self,
        statuses: Sequence[str],
        *,
        job: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """Statuses a job walks through, one step per read (job GET or run-history poll).

        Without `job` it is the default for jobs created later; with `job` it applies to that job (now, or when
        it is created). `error` ({"code", "message"}) is the run error reported when the last status is Failed.
        """
        if not statuses:
            raise ValueError("a progression needs at least one status")
        err = dict(error) if error else None
        with self._lock:
            if job is None:
                self._progression = list(statuses)
                self._progression_error = err
            elif job in self._jobs:
                stored = self._jobs[job]
                stored.statuses = list(statuses)
                stored.index = 0
                stored.error = err
            else:
                self._job_progressions[job] = (list(statuses), err)

    def fail_job(
        self,
        name: str,
        code: str = "JobNodeCountExceedsCoreQuota",
        message: str = (
            "The specified subscription has a Standard NCADSA100v4 Family vCPU quota of 0 and cannot accommodate "
            "for at least 1 requested managed compute node which maps to 24 vCPUs."
        ),
    ) -> None:
        """Make a job fail with a service error: at its next read if it exists, else after Running."""
        error = {"code": code, "message": message}
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                statuses = [s for s in self._progression if s not in TERMINAL_STATUSES] + ["Failed"]
                self._job_progressions[name] = (statuses, error)
                return
            job.statuses = job.statuses[: job.index + 1]
            if job.status in TERMINAL_STATUSES:
                job.statuses[-1] = "Failed"
            else:
                job.statuses.append("Failed")
            job.error = error

    def set_status(self, name: str, status: str) -> None:
        """Pin a job's status (it stays there until changed)."""
        with self._lock:
            job = self._jobs[name]
            job.statuses = [status]
            job.index = 0

    def advance(self, name: str, steps: int = 1) -> str:
        with self._lock:
            job = self._jobs[name]
            for _ in range(steps):
                job.advance()
            return job.status

    def set_logs(self, job_name: str, logs: Mapping[str, str]) -> None:
        """Log files run history lists for a job (name -> text), e.g. {"user_logs/std_log.txt": "..."}."""
        with self._lock:
            self._logs[job_name] = dict(logs)

    def set_metrics(self, job_name: str, metrics: Mapping[str, Iterable[tuple[int, float]]]) -> None:
        """Metrics MLflow reports for a job: {"train_loss": [(step, value), ...]}."""
        with self._lock:
            stored = self._metrics.setdefault(job_name, {})
            for key, points in metrics.items():
                stored[key] = [(int(step), float(value)) for step, value in points]

    # ---------------------------------------------------------------------------------------------- registries

    def add_registry_asset(
        self,
        kind: str,
        name: str,
        version: str,
        properties: Mapping[str, Any] | None = None,
        *,
        registry: str = "azureml",
    ) -> None:
        """Make `azureml://registries/<registry>/<kind>/<name>/versions/<version>` exist (GET answers it)."""
        if kind not in _ASSET_KINDS:
            raise ValueError(f"kind must be one of {_ASSET_KINDS}")
        with self._lock:
            store = self._registry_assets.setdefault((registry, kind), {})
            self._asset_seq += 1
            props = dict(properties or {})
            props.setdefault("isAnonymous", False)
            props.setdefault("isArchived", False)
            props.setdefault("tags", {})
            props.setdefault("properties", {})
            if kind == "models":
                props.setdefault("modelType", "mlflow_model")
                props.setdefault(
                    "modelUri", f"azureml://registries/{registry}/models/{name}/versions/{version}"
                )
                props.setdefault(
                    "flavors", {"python_function": {"data": {"loader_module": "mlflow.transformers"}}}
                )
            body = {
                "id": self._registry_arm_id(registry, kind, name, version),
                "name": version,
                "type": f"Microsoft.MachineLearningServices/registries/{kind}/versions",
                "properties": props,
                "systemData": system_data(utcnow()),
            }
            store.setdefault(name, {})[version] = _Asset(body, utcnow(), self._asset_seq)

    def add_registry_model(self, name: str, version: str | int, *, registry: str = "azureml") -> None:
        self.add_registry_asset("models", name, str(version), registry=registry)

    def add_registry_component(
        self, name: str, version: str, spec: Mapping[str, Any], *, registry: str = "azureml"
    ) -> None:
        """A registry component whose `componentSpec` is `spec` (a component YAML loaded as a dict)."""
        component_spec = dict(spec)
        component_spec.setdefault("name", name)
        component_spec.setdefault("version", version)
        self.add_registry_asset(
            "components",
            name,
            version,
            {"componentSpec": component_spec, "description": component_spec.get("description")},
            registry=registry,
        )

    def mark_model_missing(self, model: str) -> None:
        """Jobs referencing this model (a name or an azureml:// URI) are refused with 404, as are GETs of it."""
        with self._lock:
            self._missing_models.add(model)

    @staticmethod
    def _registry_arm_id(registry: str, kind: str, name: str, version: str) -> str:
        # Registry assets are identified by their azureml:// URI (what jobs reference), not an ARM id.
        return f"azureml://registries/{registry}/{kind}/{name}/versions/{version}"

    # ---------------------------------------------------------------------------------------------- faults

    def inject(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        status: int | None = None,
        error: Literal["connection", "lost"] | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        message: str | None = None,
        body: Any = None,
        host: str | None = None,
    ) -> Fault:
        """Fail the next `times` requests matching method, path (regex searched in the URL path) and host.

        Either `status` (an error answer in the service's shape; `retry_after` adds `Retry-After`) or `error`:
        "connection" (nothing reaches the service; azure-core raises ServiceRequestError) or "lost" (the service
        applies the request, then the connection drops before the answer; ServiceResponseError).
        """
        if (status is None) == (error is None):
            raise ValueError("give exactly one of status= or error=")
        fault_headers = dict(headers or {})
        if retry_after is not None:
            fault_headers["Retry-After"] = f"{retry_after:g}"
        fault = Fault(
            kind="status" if status is not None else error or "connection",
            method=method.upper() if method else None,
            path=re.compile(path) if isinstance(path, str) else path,
            host=host,
            status=status or 0,
            headers=fault_headers,
            body=body,
            code=code,
            message=message,
            times=times,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        times: int | None = 1,
        retry_after: float = 1,
    ) -> Fault:
        """429 Too Many Requests with `Retry-After`."""
        return self.inject(method, path, status=429, times=times, retry_after=retry_after)

    def server_errors(
        self,
        status: int = 503,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        times: int | None = 1,
    ) -> Fault:
        """A burst of 5xx answers (500, 502, 503, 504)."""
        return self.inject(method, path, status=status, times=times)

    def drop_connections(
        self, method: str | None = None, path: str | re.Pattern[str] | None = None, *, times: int | None = 1
    ) -> Fault:
        return self.inject(method, path, error="connection", times=times)

    def lose_response(
        self,
        method: str = "PUT",
        path: str | re.Pattern[str] | None = r"/jobs/[^/]+$",
        *,
        times: int | None = 1,
    ) -> Fault:
        """The service applies the request (e.g. creates the job), then the answer is lost."""
        return self.inject(method, path, error="lost", times=times)

    def deny(
        self,
        status: Literal[401, 403] = 403,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        times: int | None = None,
    ) -> Fault:
        """Authentication (401) or authorization (403) failures in ARM's shape."""
        return self.inject(method, path, status=status, times=times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos_rate = 0.0

    def chaos(
        self,
        rate: float = 0.3,
        seed: int = 1,
        *,
        kinds: Sequence[str] = ("503", "500", "connection", "lost"),
        lost_methods: Iterable[str] = ("PUT",),
    ) -> None:
        """Fail a seeded random `rate` of requests transiently (rate=0 stops it).

        Kinds: HTTP statuses as strings, "connection", and "lost" (applied then answer lost; only for
        `lost_methods`, PUT by default, so a job PUT is sometimes created without the client knowing).
        """
        with self._lock:
            self._chaos_rate = rate
            self._chaos_rng = random.Random(seed)
            self._chaos_kinds = tuple(kinds)
            self._chaos_lost_methods = frozenset(m.upper() for m in lost_methods)

    # ---------------------------------------------------------------------------------------------- dispatch

    def _callback(self, prepared: Any) -> Response:
        with self._lock:
            req = self._parse(prepared)
            rec = RecordedRequest(
                method=req.method,
                url=req.url,
                host=req.host,
                path=req.path,
                query=req.query,
                api_version=req.query.get("api-version"),
                headers={k: v for k, v in req.headers.items() if k.lower() != "authorization"},
                body=req.body or None,
                json=req.json,
            )
            self._log.append(rec)
            try:
                resp = self._respond(req, rec)
            except requests.exceptions.RequestException:
                rec.status = None
                raise
            rec.status = resp[0]
            return resp

    @staticmethod
    def _parse(prepared: Any) -> _Req:
        url = prepared.url or ""
        split = urlsplit(url)
        body = prepared.body
        if body is None:
            raw = b""
        elif isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        elif hasattr(body, "read"):
            # Streamed uploads (file objects) are read once here; requests will not resend them.
            raw = body.read()
            if isinstance(raw, str):
                raw = raw.encode()
        else:
            raw = b"".join(chunk if isinstance(chunk, bytes) else str(chunk).encode() for chunk in body)
        parsed: Any = None
        host = split.hostname or ""
        # Blob bodies are file contents (a one-line JSONL file would parse as JSON); only service bodies are JSON.
        if raw and _host_kind(host) != "blob":
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                parsed = None
        return _Req(
            method=(prepared.method or "GET").upper(),
            url=url,
            host=host,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=dict(prepared.headers),
            body=raw,
            json=parsed,
        )

    def _respond(self, req: _Req, rec: RecordedRequest) -> Response:
        for fault in self._faults:
            if fault.matches(req.method, req.host, req.path):
                fault.fired += 1
                rec.fault = fault.kind if fault.kind != "status" else f"status:{fault.status}"
                return self._fire(fault.kind, fault.status, req, fault)
        if self._chaos_rate > 0 and self._chaos_rng.random() < self._chaos_rate:
            kinds = [k for k in self._chaos_kinds if k != "lost" or req.method in self._chaos_lost_methods]
            if kinds:
                kind = self._chaos_rng.choice(kinds)
                rec.fault = f"chaos:{kind}"
                if kind in ("connection", "lost"):
                    return self._fire(kind, 0, req, None)
                return self._fire("status", int(kind), req, None)
        return self._route(req)

    def _fire(self, kind: str, status: int, req: _Req, fault: Fault | None) -> Response:
        if kind == "connection":
            raise requests.exceptions.ConnectionError(
                f"HTTPSConnectionPool(host='{req.host}', port=443): Max retries exceeded "
                "(Caused by NewConnectionError: Failed to establish a new connection: [Errno 111] "
                "Connection refused) [injected by FakeWorkspace]"
            )
        if kind == "lost":
            from urllib3.exceptions import ProtocolError

            self._route(req)  # the service did the work ...
            # ... and the answer never arrived: azure-core maps this to ServiceResponseError.
            raise requests.exceptions.ConnectionError(
                ProtocolError(
                    "Connection aborted. [injected by FakeWorkspace after the request was applied]",
                    ConnectionResetError(104, "Connection reset by peer"),
                )
            )
        return self._error_response(status, req, fault)

    def _error_response(self, status: int, req: _Req, fault: Fault | None) -> Response:
        headers = dict(fault.headers) if fault else {}
        if status == 429 and "Retry-After" not in headers:
            headers["Retry-After"] = "1"
        if _host_kind(req.host) == "blob":
            code = (fault.code if fault else None) or STORAGE_CODES.get(status, "InternalError")
            message = (fault.message if fault else None) or f"Injected storage failure {status}."
            s, h, b = storage_error(status, code, message, method=req.method)
            h.update(headers)
            return s, h, b
        if fault and fault.body is not None:
            return json_response(status, fault.body, headers)
        code = (fault.code if fault else None) or STATUS_CODES.get(status, "ServiceError")
        message = (fault.message if fault else None) or self._default_message(status, req)
        if status == 401:
            headers.setdefault(
                "WWW-Authenticate",
                f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", '
                'error="invalid_token", error_description="The access token is invalid."',
            )
        if status in (401, 403) or (status >= 500 and _host_kind(req.host) == "arm"):
            return json_response(status, arm_error(code, message), headers)
        return json_response(status, mfe_error(code, message, location=self.location), headers)

    def _default_message(self, status: int, req: _Req) -> str:
        if status == 401:
            return "The access token is invalid or expired."
        if status == 403:
            action = self._rbac_action(req)
            oid = self.credential.object_id
            scope = re.sub(r"/(startPendingUpload|listSecrets|cancel|listKeys)$", "", req.path)
            return (
                f"The client '{self.credential.upn}' with object id '{oid}' does not have authorization to "
                f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
                "granted, please refresh your credentials."
            )
        if status == 429:
            return "The request is being throttled as the limit has been reached for operation type."
        return f"Injected failure {status} by FakeWorkspace."

    @staticmethod
    def _rbac_action(req: _Req) -> str:
        m = re.search(r"/providers/(Microsoft\.MachineLearningServices(?:/[^/]+/[^/]+)*)", req.path, re.I)
        if not m:
            return "Microsoft.MachineLearningServices/workspaces/read"
        segments = m.group(1).split("/")
        types = [segments[0], *segments[1::2]]
        action = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(
            req.method, "action"
        )
        tail = req.path.rsplit("/", 1)[-1]
        if req.method == "POST":
            action = tail
        return "/".join(types) + "/" + action

    def _route(self, req: _Req) -> Response:
        kind = _host_kind(req.host)
        for route in self._routes:
            if req.method not in route.methods or kind not in route.hosts:
                continue
            m = route.pattern.fullmatch(req.path)
            if not m:
                continue
            if route.workspace_scoped:
                refused = self._check_workspace(m)
                if refused is not None:
                    return refused
            return route.handler(req, m)
        rec = self._log[-1] if self._log else None
        if rec is not None:
            self.unmatched.append(rec)
        if kind == "blob":
            return storage_error(
                404, "ResourceNotFound", "The specified resource does not exist.", method=req.method
            )
        return json_response(
            404,
            arm_error("NoRegisteredProviderFound", f"FakeWorkspace has no route for {req.method} {req.path}"),
        )

    def _check_workspace(self, m: re.Match[str]) -> Response | None:
        same = (
            unquote(m.group("sub")).lower() == self.subscription_id.lower()
            and unquote(m.group("rg")).lower() == self.resource_group.lower()
            and unquote(m.group("ws")).lower() == self.workspace.lower()
        )
        if same and self.workspace_exists:
            return None
        ws = unquote(m.group("ws"))
        rg = unquote(m.group("rg"))
        return json_response(
            404,
            arm_error(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{ws}' under resource group '{rg}' "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            ),
        )

    def _build_routes(self) -> list[_Route]:
        def r(methods: str, hosts: str, pattern: str, handler: _Handler, *, ws: bool = False) -> _Route:
            return _Route(
                frozenset(methods.split()),
                frozenset(hosts.split()),
                re.compile(pattern, re.IGNORECASE),
                handler,
                ws,
            )

        return [
            # ARM: workspace and its children
            r("GET", "arm", _WS, self._get_workspace, ws=True),
            r("GET", "arm", _WS + r"/computes", self._list_computes, ws=True),
            r("GET", "arm", _WS + r"/computes/(?P<name>[^/]+)", self._get_compute, ws=True),
            r("GET", "arm", _WS + r"/datastores", self._list_datastores, ws=True),
            r("GET", "arm", _WS + r"/datastores/(?P<name>[^/]+)", self._get_datastore, ws=True),
            r("POST", "arm", _WS + r"/datastores/(?P<name>[^/]+)/listSecrets", self._list_secrets, ws=True),
            r("GET", "arm", _WS + r"/jobs", self._list_jobs, ws=True),
            r("GET", "arm", _WS + r"/jobs/(?P<name>[^/]+)", self._get_job, ws=True),
            r("PUT", "arm", _WS + r"/jobs/(?P<name>[^/]+)", self._put_job, ws=True),
            r("DELETE", "arm", _WS + r"/jobs/(?P<name>[^/]+)", self._delete_job, ws=True),
            r("POST", "arm", _WS + r"/jobs/(?P<name>[^/]+)/cancel", self._cancel_job, ws=True),
            r("GET", "arm", _WS + "/" + _ASSET, self._list_asset_containers, ws=True),
            r("GET PUT", "arm", _WS + "/" + _ASSET + r"/(?P<name>[^/]+)", self._asset_container, ws=True),
            r(
                "GET",
                "arm",
                _WS + "/" + _ASSET + r"/(?P<name>[^/]+)/versions",
                self._list_asset_versions,
                ws=True,
            ),
            r(
                "GET PUT DELETE",
                "arm",
                _WS + "/" + _ASSET + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)",
                self._asset_version,
                ws=True,
            ),
            r(
                "POST",
                "arm",
                _WS + "/" + _ASSET + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload",
                self._start_pending_upload,
                ws=True,
            ),
            r("GET", "arm", _WS + r"/marketplaceSubscriptions", self._list_marketplace, ws=True),
            r(
                "GET PUT DELETE",
                "arm",
                _WS + r"/marketplaceSubscriptions/(?P<name>[^/]+)",
                self._marketplace_subscription,
                ws=True,
            ),
            r("GET", "arm", _WS + r"/serverlessEndpoints", self._list_endpoints, ws=True),
            r(
                "GET PUT DELETE",
                "arm",
                _WS + r"/serverlessEndpoints/(?P<name>[^/]+)",
                self._serverless_endpoint,
                ws=True,
            ),
            r(
                "POST",
                "arm",
                _WS + r"/serverlessEndpoints/(?P<name>[^/]+)/(?P<op>listKeys|regenerateKeys)",
                self._endpoint_keys,
                ws=True,
            ),
            r(
                "GET",
                "arm",
                r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+"
                r"/(?:mfeOperationResults|mfeOperationsStatus)/(?P<op>[^/]+)",
                self._operation_result,
            ),
            # Registries (ARM and the registry MFE host found through discovery)
            r(
                "GET",
                "api",
                r"/registrymanagement/v1\.0/registries/(?P<reg>[^/]+)/discovery",
                self._registry_discovery,
            ),
            r("GET", "arm mfe", _REG + "/" + _ASSET + r"/(?P<name>[^/]+)", self._registry_container),
            r("GET", "arm mfe", _REG + "/" + _ASSET + r"/(?P<name>[^/]+)/versions", self._registry_versions),
            r(
                "GET",
                "arm mfe",
                _REG + "/" + _ASSET + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)",
                self._registry_version,
            ),
            # Regional data plane: discovery, run history, MLflow
            r("GET", "api", r"/discovery", self._discovery),
            r(
                "GET",
                "api",
                r"/history/v1\.0"
                + _WS
                + r"(?:/experiments/[^/]+|/experimentids/[^/]+)?/runs/(?P<name>[^/]+)",
                self._get_run,
                ws=True,
            ),
            r(
                "PATCH",
                "api",
                r"/history/v1\.0"
                + _WS
                + r"(?:/experiments/[^/]+|/experimentids/[^/]+)?/runs/(?P<name>[^/]+)",
                self._patch_run,
                ws=True,
            ),
            r(
                "GET",
                "api",
                r"/history/v1\.0"
                + _WS
                + r"(?:/experiments/[^/]+|/experimentids/[^/]+)?/runs/(?P<name>[^/]+)/details",
                self._get_run_details,
                ws=True,
            ),
            r(
                "GET POST",
                "api",
                r"/history/v1\.0"
                + _WS
                + r"(?:/experiments/[^/]+|/experimentids/[^/]+)?/runs/(?P<name>[^/]+)/children",
                self._get_run_children,
                ws=True,
            ),
            r(
                "GET POST",
                "api",
                r"/mlflow/v[12]\.0" + _WS + r"/api/2\.0/mlflow/(?P<op>.+)",
                self._mlflow,
                ws=True,
            ),
            # Blob storage
            r("HEAD GET PUT DELETE", "blob", r"/(?P<container>[^/]+)/?", self._blob_container),
            r("HEAD GET PUT DELETE", "blob", r"/(?P<container>[^/]+)/(?P<blob>.+)", self._blob),
        ]

    # ---------------------------------------------------------------------------------------------- ARM handlers

    def _not_found(self, what: str, name: str, *, status: int = 404) -> Response:
        return json_response(
            status,
            mfe_error(
                "UserError",
                f"{what} '{name}' was not found in workspace '{self.workspace}'.",
                location=self.location,
                inner="NotFoundError",
            ),
        )

    def _workspace_body(self) -> dict[str, Any]:
        rg_id = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
        return {
            "id": self.workspace_id,
            "name": self.workspace,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": self.location,
            "tags": {},
            "kind": "Default",
            "sku": {"name": "Basic", "tier": "Basic"},
            "identity": {
                "type": "SystemAssigned",
                "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_id + "/identity")),
                "tenantId": self.tenant_id,
            },
            "properties": {
                "friendlyName": self.workspace,
                "description": "",
                "workspaceId": self.workspace_guid,
                "provisioningState": "Succeeded",
                "storageAccount": f"{rg_id}/providers/Microsoft.Storage/storageAccounts/{self.storage_account}",
                "keyVault": f"{rg_id}/providers/Microsoft.KeyVault/vaults/kv-{self.workspace[:16]}",
                "applicationInsights": f"{rg_id}/providers/microsoft.insights/components/ai-{self.workspace[:16]}",
                "containerRegistry": f"{rg_id}/providers/Microsoft.ContainerRegistry/registries/cr{self.workspace_guid[:8]}",
                "discoveryUrl": f"https://{self.api_host}/discovery",
                "mlFlowTrackingUri": f"azureml://{self.api_host}/mlflow/v1.0{self.workspace_id}",
                "hbiWorkspace": False,
                "v1LegacyMode": False,
                "publicNetworkAccess": "Enabled",
                "allowPublicAccessWhenBehindVnet": False,
                "privateLinkCount": 0,
                "managedNetwork": {"isolationMode": "Disabled"},
                "systemDatastoresAuthMode": "accesskey",
            },
            "systemData": system_data(utcnow() - timedelta(days=30)),
        }

    def _get_workspace(self, req: _Req, m: re.Match[str]) -> Response:
        return json_response(200, self._workspace_body())

    def _discovery(self, req: _Req, m: re.Match[str]) -> Response:
        base = f"https://{self.api_host}"
        keys = ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling")
        body: dict[str, str] = {k: base for k in keys}
        body.update({"modelmanagement": base, "pipelines": base, "studio": "https://ml.azure.com"})
        return json_response(200, body)

    def _compute_body(self, name: str, vm_size: str) -> dict[str, Any]:
        created = iso(utcnow() - timedelta(days=30))
        return {
            "id": f"{self.workspace_id}/computes/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": self.location,
            "identity": None,
            "properties": {
                "description": None,
                "createdOn": created,
                "modifiedOn": created,
                "computeType": "AmlCompute",
                "computeLocation": self.location,
                "provisioningState": "Succeeded",
                "disableLocalAuth": True,
                "properties": {
                    "vmSize": vm_size,
                    "vmPriority": "Dedicated",
                    "osType": "Linux",
                    "isolatedNetwork": False,
                    "scaleSettings": {
                        "maxNodeCount": 4,
                        "minNodeCount": 0,
                        "nodeIdleTimeBeforeScaleDown": "PT2M",
                    },
                    "remoteLoginPortPublicAccess": "Disabled",
                    "allocationState": "Steady",
                    "allocationStateTransitionTime": created,
                    "errors": None,
                    "currentNodeCount": 0,
                    "targetNodeCount": 0,
                    "nodeStateCounts": {
                        "preparingNodeCount": 0,
                        "runningNodeCount": 0,
                        "idleNodeCount": 0,
                        "unusableNodeCount": 0,
                        "leavingNodeCount": 0,
                        "preemptedNodeCount": 0,
                    },
                    "enableNodePublicIp": True,
                },
            },
        }

    def _get_compute(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        for compute, size in self.computes.items():
            if compute.lower() == name.lower():
                return json_response(200, self._compute_body(compute, size))
        return json_response(
            404,
            arm_error(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.workspace}/computes/{name}' "
                f"under resource group '{self.resource_group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            ),
        )

    def _list_computes(self, req: _Req, m: re.Match[str]) -> Response:
        value = [self._compute_body(n, s) for n, s in self.computes.items()]
        return json_response(200, {"value": value, "nextLink": None})

    def _datastore_body(self, name: str) -> dict[str, Any] | None:
        containers = {
            "workspaceblobstore": self.datastore_container,
            "workspaceartifactstore": "azureml",
            "workspaceworkingdirectory": f"code-{self.workspace_guid}",
        }
        container = containers.get(name)
        if container is None:
            return None
        return {
            "id": f"{self.workspace_id}/datastores/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isDefault": name == "workspaceblobstore",
                "credentials": {"credentialsType": "AccountKey", "secrets": None},
                "datastoreType": "AzureBlob",
                "accountName": self.storage_account,
                "containerName": container,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
            },
            "systemData": system_data(utcnow() - timedelta(days=30)),
        }

    def _get_datastore(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        body = self._datastore_body(name)
        if body is None:
            return self._not_found("Datastore", name)
        return json_response(200, body)

    def _list_datastores(self, req: _Req, m: re.Match[str]) -> Response:
        names = ["workspaceblobstore", "workspaceartifactstore", "workspaceworkingdirectory"]
        bodies = [b for b in (self._datastore_body(n) for n in names) if b is not None]
        if req.query.get("isDefault", "").lower() == "true":
            bodies = [b for b in bodies if b["properties"]["isDefault"]]
        return json_response(200, {"value": bodies, "nextLink": None})

    def _list_secrets(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        if self._datastore_body(name) is None:
            return self._not_found("Datastore", name)
        # A fake account key (base64, as the real one is) so azure-storage-blob can sign SharedKey requests.
        key = base64.b64encode(hashlib.sha512(self.workspace_guid.encode()).digest()).decode()
        return json_response(200, {"secretsType": "AccountKey", "key": key})

    # ---------------------------------------------------------------------------------------------- jobs

    def _job_resource(self, job: _Job) -> dict[str, Any]:
        props = copy.deepcopy(job.properties)
        props["status"] = job.status
        services = dict(props.get("services") or {})
        services["Studio"] = {
            "jobServiceType": "Studio",
            "port": None,
            "endpoint": self.studio_url(job.name),
            "status": None,
            "errorMessage": None,
            "properties": None,
            "nodes": None,
        }
        services["Tracking"] = {
            "jobServiceType": "Tracking",
            "port": None,
            "endpoint": f"azureml://{self.api_host}/mlflow/v1.0{self.workspace_id}?",
            "status": None,
            "errorMessage": None,
            "properties": None,
            "nodes": None,
        }
        props["services"] = services
        props.setdefault("isArchived", False)
        return {
            "id": f"{self.workspace_id}/jobs/{job.name}",
            "name": job.name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": props,
            "systemData": system_data(job.created, job.modified),
        }

    def _referenced_missing_model(self, props: Mapping[str, Any]) -> str | None:
        if not self._missing_models:
            return None
        text = json.dumps(props)
        for model in sorted(self._missing_models):
            if model in text:
                return model
        return None

    def _referenced_missing_compute(self, props: Mapping[str, Any]) -> str | None:
        """The first compute the job names that the workspace does not have: the job's computeId and, for a
        pipeline, each node's and the default compute, as an ARM id, `azureml:<name>` or a bare name."""
        known = {c.lower() for c in self.computes}
        for reference in _compute_references(props):
            name = _compute_reference_name(reference)
            if name is not None and name.lower() not in known:
                return name
        return None

    def _invalid_job_body(self, req: _Req, body: Mapping[str, Any]) -> Response | None:
        """The service's refusal of a job body, or None: an api-version without a Jobs schema, a body that breaks
        the schema of the api-version it carries, a registry component given inputs it does not declare."""
        api = req.query.get("api-version")
        if api not in JOB_API_VERSIONS:
            return json_response(
                400, api_version_error(api, JOB_API_VERSIONS, "workspaces/jobs (in FakeWorkspace's schemas)")
            )
        violations = job_body_violations(api, body)
        if violations:
            first = violations[0]
            return json_response(
                400,
                invalid_request_error(
                    f"The request body is invalid at api-version {api}: {first.path or 'body'}: {first.message}",
                    [(v.path, v.message) for v in violations[:20]],
                ),
            )
        undeclared = self._undeclared_component_inputs(body.get("properties") or {})
        if undeclared:
            first_message = undeclared[0][1]
            return json_response(
                400,
                invalid_request_error(
                    f"Pipeline validation failed: {first_message}",
                    undeclared,
                    detail_code="InvalidPipelineInput",
                ),
            )
        return None

    def _undeclared_component_inputs(self, props: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(path, message) for each node input a registry component does not declare (matched in any case)."""
        found: list[tuple[str, str]] = []
        jobs = props.get("jobs") if props.get("jobType") == "Pipeline" else None
        for node_name, node in (jobs or {}).items():
            if not isinstance(node, dict):
                continue
            declared = self._registry_component_inputs(str(node.get("componentId") or ""))
            if declared is None:
                continue
            lowered = {name.lower() for name in declared}
            for name in node.get("inputs") or {}:
                if name.lower() not in lowered:
                    found.append(
                        (
                            f"properties.jobs.{node_name}.inputs.{name}",
                            f"input '{name}' is not defined by component {node.get('componentId')}",
                        )
                    )
        return found

    def _registry_component_inputs(self, component_id: str) -> set[str] | None:
        """The input names a registry component declares: one added with add_registry_component, else the
        registry's own `<task>_pipeline` specs azfinetune ships (any version). None for other components."""
        m = _REGISTRY_COMPONENT.fullmatch(component_id)
        if m is None:
            return None
        store = self._registry_assets.get((m["reg"], "components"), {}).get(m["name"], {})
        version = m["version"] or (max(store, key=lambda v: store[v].seq) if store else None)
        if version in store:
            spec = store[version].body["properties"].get("componentSpec") or {}
            return set(spec.get("inputs") or {})
        shipped = _shipped_registry_component(m["name"]) if m["reg"] == "azureml" else None
        return set(shipped) if shipped is not None else None

    def _put_job(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        body = req.json if isinstance(req.json, dict) else {}
        props = body.get("properties")
        if not isinstance(props, dict):
            return json_response(
                400,
                mfe_error("UserError", "The request body must have 'properties'.", location=self.location),
            )
        refused = self._invalid_job_body(req, body)
        if refused is not None:
            return refused
        existing = self._jobs.get(name)
        if existing is not None:
            if _immutable_view(existing.properties) != _immutable_view(props):
                return json_response(
                    400,
                    mfe_error(
                        "UserError",
                        IMMUTABLE_JOB_MESSAGE,
                        location=self.location,
                        inner="Immutable",
                        inner_inner="JobPropertyImmutable",
                    ),
                )
            for key in ("description", "tags", "displayName", "isArchived"):
                if key in props:
                    existing.properties[key] = copy.deepcopy(props[key])
            merged = dict(existing.properties.get("properties") or {})
            for key, value in (props.get("properties") or {}).items():
                merged.setdefault(key, value)  # the service adds new properties, keeps existing ones
            existing.properties["properties"] = merged
            existing.modified = utcnow()
            return json_response(200, self._job_resource(existing))
        missing_model = self._referenced_missing_model(props)
        if missing_model:
            return self._not_found("Model", missing_model)
        missing_compute = self._referenced_missing_compute(props)
        if missing_compute:
            return self._not_found("Compute", missing_compute)
        statuses, error = self._job_progressions.pop(name, (list(self._progression), self._progression_error))
        clean = copy.deepcopy(props)
        clean.pop("status", None)
        job = _Job(name=name, properties=clean, created=utcnow(), statuses=statuses, error=error)
        self._jobs[name] = job
        return json_response(201, self._job_resource(job))

    def _get_job(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        job = self._jobs.get(name)
        if job is None:
            return self._not_found("Job", name)
        # jobs.get of a FineTuning job reads it twice (2024-01-01-preview, then 2024-10-01-preview): one step.
        prev = self._log[-2] if len(self._log) >= 2 else None
        reread = (
            prev is not None
            and prev.method == "GET"
            and prev.path == req.path
            and prev.status == 200
            and prev.api_version == "2024-01-01-preview"
            and req.query.get("api-version") == "2024-10-01-preview"
        )
        if not reread:
            job.advance()
        return json_response(200, self._job_resource(job))

    def _delete_job(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        if self._jobs.pop(name, None) is None:
            return empty_response(204)
        return self._accepted("jd")

    def _list_jobs(self, req: _Req, m: re.Match[str]) -> Response:
        view = req.query.get("listViewType", "ActiveOnly")
        job_type = req.query.get("jobType")
        tag = req.query.get("tag")
        jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
        selected = []
        for job in jobs:
            archived = bool(job.properties.get("isArchived"))
            if view == "ActiveOnly" and archived:
                continue
            if view == "ArchivedOnly" and not archived:
                continue
            if job_type and str(job.properties.get("jobType", "")).lower() != job_type.lower():
                continue
            if tag:
                tags = job.properties.get("tags") or {}
                key, _, value = tag.partition("=")
                if key not in tags or (value and tags[key] != value):
                    continue
            selected.append(job)
        start = int(req.query.get("$skipToken", "0") or 0)
        page = selected[start : start + self.page_size]
        next_link = None
        if start + self.page_size < len(selected):
            params = {k: v for k, v in req.query.items() if k != "$skipToken"}
            params["$skipToken"] = str(start + self.page_size)
            next_link = f"https://{ARM_HOST}{req.path}?{urlencode(params)}"
        return json_response(200, {"value": [self._job_resource(j) for j in page], "nextLink": next_link})

    def _cancel_job(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        job = self._jobs.get(name)
        if job is None:
            return self._not_found("Job", name)
        if job.status not in TERMINAL_STATUSES:
            # Reads advance before answering: the next one shows CancelRequested, the one after Canceled.
            job.statuses = [*job.statuses[: job.index + 1], "CancelRequested", "Canceled"]
        return self._accepted("jc")

    def _accepted(self, prefix: str) -> Response:
        op = f"{prefix}:{uuid.uuid4()}"
        self._operations[op] = self.lro_polls
        location = (
            f"https://{ARM_HOST}/subscriptions/{self.subscription_id}/providers/"
            f"Microsoft.MachineLearningServices/locations/{self.location}/mfeOperationResults/{op}"
            "?api-version=2023-04-01-preview"
        )
        return empty_response(202, {"Location": location})

    def _operation_result(self, req: _Req, m: re.Match[str]) -> Response:
        op = unquote(m.group("op"))
        if op not in self._operations:
            return self._not_found("Operation", op)
        remaining = self._operations[op]
        if remaining > 0:
            self._operations[op] = remaining - 1
            return empty_response(202, {"Location": req.url})
        return empty_response(200)

    # ---------------------------------------------------------------------------------------------- assets

    def _asset_body(self, kind: str, name: str, version: str, props: Mapping[str, Any]) -> dict[str, Any]:
        body_props = copy.deepcopy(dict(props))
        body_props.setdefault("isAnonymous", False)
        body_props.setdefault("isArchived", False)
        body_props["provisioningState"] = "Succeeded"
        return {
            "id": f"{self.workspace_id}/{kind}/{name}/versions/{version}",
            "name": version,
            "type": f"Microsoft.MachineLearningServices/workspaces/{kind}/versions",
            "properties": body_props,
            "systemData": system_data(utcnow()),
        }

    def _container_body(self, kind: str, name: str) -> dict[str, Any]:
        versions = self._assets[kind].get(name, {})
        latest = max(versions.values(), key=lambda a: a.seq, default=None)
        numeric = [int(v) for v in versions if v.isdigit()]
        return {
            "id": f"{self.workspace_id}/{kind}/{name}",
            "name": name,
            "type": f"Microsoft.MachineLearningServices/workspaces/{kind}",
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "latestVersion": latest.body["name"] if latest else None,
                "nextVersion": str(max(numeric, default=0) + 1),
                "provisioningState": "Succeeded",
            },
            "systemData": system_data(latest.created if latest else utcnow()),
        }

    def _list_asset_containers(self, req: _Req, m: re.Match[str]) -> Response:
        kind = m.group("kind").lower()
        value = [self._container_body(kind, name) for name in self._assets[kind]]
        return json_response(200, {"value": value, "nextLink": None})

    def _asset_container(self, req: _Req, m: re.Match[str]) -> Response:
        kind = m.group("kind").lower()
        name = unquote(m.group("name"))
        if req.method == "PUT":
            self._assets[kind].setdefault(name, {})
            return json_response(200, self._container_body(kind, name))
        if name not in self._assets[kind]:
            return self._not_found(_KIND_LABEL[kind], name)
        return json_response(200, self._container_body(kind, name))

    def _list_asset_versions(self, req: _Req, m: re.Match[str]) -> Response:
        kind = m.group("kind").lower()
        name = unquote(m.group("name"))
        if kind == "codes" and "hash" in req.query:
            # The service looks the hash up across all code containers (azure-ai-ml sends a fresh uuid as name).
            wanted = req.query["hash"]
            hits = [
                a
                for versions in self._assets["codes"].values()
                for a in versions.values()
                if _code_hash(a.body) == wanted
            ]
            return json_response(200, {"value": [a.body for a in hits], "nextLink": None})
        versions = list(self._assets[kind].get(name, {}).values())
        order = req.query.get("$orderBy", req.query.get("orderBy", "")).lower()
        versions.sort(key=lambda a: a.seq, reverse="desc" in order or not order)
        top = req.query.get("$top")
        if top and top.isdigit():
            versions = versions[: int(top)]
        return json_response(200, {"value": [a.body for a in versions], "nextLink": None})

    def _asset_version(self, req: _Req, m: re.Match[str]) -> Response:
        kind = m.group("kind").lower()
        name = unquote(m.group("name"))
        version = unquote(m.group("version"))
        store = self._assets[kind]
        if req.method == "GET":
            asset = store.get(name, {}).get(version)
            if asset is None:
                return self._not_found(f"{_KIND_LABEL[kind]} version", f"{name}:{version}")
            return json_response(200, asset.body)
        if req.method == "DELETE":
            store.get(name, {}).pop(version, None)
            return empty_response(200)
        body = req.json if isinstance(req.json, dict) else {}
        props = body.get("properties") or {}
        existed = version in store.get(name, {})
        self._asset_seq += 1
        asset = _Asset(self._asset_body(kind, name, version, props), utcnow(), self._asset_seq)
        if existed:
            asset.seq = store[name][version].seq
        store.setdefault(name, {})[version] = asset
        return json_response(200 if existed else 201, asset.body)

    def _start_pending_upload(self, req: _Req, m: re.Match[str]) -> Response:
        kind = m.group("kind").lower()
        name = unquote(m.group("name"))
        version = unquote(m.group("version"))
        digest = hashlib.sha1(f"{kind}/{name}/{version}".encode()).hexdigest()[:24]
        container = f"{self.workspace_guid[:12]}-{digest}"
        blob_uri = f"https://{self.storage_account}.blob.core.windows.net/{container}"
        sas = "sv=2021-10-04&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=rcwl&sig=ZmFrZS1zYXMtc2lnbmF0dXJl"
        return json_response(
            200,
            {
                "blobReferenceForConsumption": {
                    "blobUri": blob_uri,
                    "storageAccountArmId": (
                        f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                        f"/providers/Microsoft.Storage/storageAccounts/{self.storage_account}"
                    ),
                    "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
                },
                "pendingUploadId": str(uuid.uuid4()),
                "pendingUploadType": "TemporaryBlobReference",
            },
        )

    # ---------------------------------------------------------------------------------------------- registries

    def _registry_discovery(self, req: _Req, m: re.Match[str]) -> Response:
        reg = unquote(m.group("reg"))
        return json_response(
            200,
            {
                "registryName": reg,
                "primaryRegion": "eastus",
                "regions": ["eastus"],
                "subscriptionId": self.subscription_id,
                "resourceGroup": f"registry-{reg}",
                "primaryRegionResourceProviderUri": "https://cert-eastus.experiments.azureml.net/",
                "registryFqdns": {"eastus": {"primary": "https://eastus.api.azureml.ms"}},
            },
        )

    def _registry_store(self, m: re.Match[str]) -> tuple[str, str, str, dict[str, _Asset]]:
        reg = unquote(m.group("reg"))
        kind = m.group("kind").lower()
        name = unquote(m.group("name"))
        return reg, kind, name, self._registry_assets.get((reg, kind), {}).get(name, {})

    def _registry_missing(self, reg: str, kind: str, name: str, version: str | None) -> Response:
        label = f"azureml://registries/{reg}/{kind}/{name}" + (f"/versions/{version}" if version else "")
        return json_response(
            404,
            mfe_error(
                "UserError",
                f"{_KIND_LABEL[kind]} {label} was not found in registry '{reg}'.",
                location="eastus",
                inner="NotFoundError",
            ),
        )

    def _is_missing_model(self, reg: str, kind: str, name: str, version: str | None) -> bool:
        if kind != "models":
            return False
        uri = f"azureml://registries/{reg}/models/{name}"
        candidates = {name, uri, f"{uri}/versions/{version}" if version else uri}
        return bool(candidates & self._missing_models)

    def _registry_container(self, req: _Req, m: re.Match[str]) -> Response:
        reg, kind, name, versions = self._registry_store(m)
        if not versions or self._is_missing_model(reg, kind, name, None):
            return self._registry_missing(reg, kind, name, None)
        latest = max(versions.values(), key=lambda a: a.seq)
        return json_response(
            200,
            {
                "id": self._registry_arm_id(reg, kind, name, "x").rsplit("/versions/", 1)[0],
                "name": name,
                "type": f"Microsoft.MachineLearningServices/registries/{kind}",
                "properties": {"latestVersion": latest.body["name"], "isArchived": False, "tags": {}},
                "systemData": system_data(latest.created),
            },
        )

    def _registry_versions(self, req: _Req, m: re.Match[str]) -> Response:
        reg, kind, name, versions = self._registry_store(m)
        if self._is_missing_model(reg, kind, name, None):
            versions = {}
        ordered = sorted(versions.values(), key=lambda a: a.seq, reverse=True)
        top = req.query.get("$top")
        if top and top.isdigit():
            ordered = ordered[: int(top)]
        return json_response(200, {"value": [a.body for a in ordered], "nextLink": None})

    def _registry_version(self, req: _Req, m: re.Match[str]) -> Response:
        reg, kind, name, versions = self._registry_store(m)
        version = unquote(m.group("version"))
        asset = versions.get(version)
        if asset is None or self._is_missing_model(reg, kind, name, version):
            return self._registry_missing(reg, kind, name, version)
        return json_response(200, asset.body)

    # ---------------------------------------------------------------------------------------------- marketplace

    def _marketplace_body(self, name: str, model_id: str, created: datetime) -> dict[str, Any]:
        m = re.match(r"azureml://registries/(?P<reg>[^/]+)/models/(?P<model>[^/]+)", model_id)
        publisher = m.group("reg").removeprefix("azureml-") if m else "unknown"
        offer = m.group("model").lower() if m else "unknown"
        return {
            "id": f"{self.workspace_id}/marketplaceSubscriptions/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/marketplaceSubscriptions",
            "properties": {
                "modelId": model_id,
                "marketplacePlan": {"publisherId": publisher, "offerId": f"{offer}-offer", "planId": offer},
                "marketplaceSubscriptionStatus": "Subscribed",
                "provisioningState": "Succeeded",
            },
            "systemData": system_data(created),
        }

    def _marketplace_subscription(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        if req.method == "GET":
            body = self._marketplace.get(name)
            if body is None:
                return self._not_found("Marketplace subscription", name)
            return json_response(200, body)
        if req.method == "DELETE":
            self._marketplace.pop(name, None)
            return empty_response(200)
        props = (req.json or {}).get("properties") or {}
        model_id = str(props.get("modelId", ""))
        existed = name in self._marketplace
        self._marketplace[name] = self._marketplace_body(name, model_id, utcnow())
        return json_response(200 if existed else 201, self._marketplace[name])

    def _list_marketplace(self, req: _Req, m: re.Match[str]) -> Response:
        return json_response(200, {"value": list(self._marketplace.values()), "nextLink": None})

    # ---------------------------------------------------------------------------------------------- serverless

    def _serverless_endpoint(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        if req.method == "GET":
            body = self._endpoints.get(name)
            if body is None:
                return self._not_found("Serverless endpoint", name)
            return json_response(200, body)
        if req.method == "DELETE":
            self._endpoints.pop(name, None)
            return empty_response(200)
        request = req.json if isinstance(req.json, dict) else {}
        props = copy.deepcopy(request.get("properties") or {})
        model_id = str((props.get("modelSettings") or {}).get("modelId", ""))
        subscription_id = None
        reg = re.match(r"azureml://registries/([^/]+)/", model_id)
        if reg and reg.group(1) != "azureml":
            sub = next(
                (s for s in self._marketplace.values() if s["properties"]["modelId"] == model_id), None
            )
            if sub is None and self.enforce_marketplace:
                return json_response(
                    400,
                    mfe_error(
                        "UserError",
                        f"Model '{model_id}' is offered through Azure Marketplace: create a marketplace "
                        "subscription for it in this workspace before deploying it.",
                        location=self.location,
                        inner="MarketplaceSubscriptionNotFound",
                    ),
                )
            subscription_id = sub["id"] if sub else None
        props.update(
            {
                "provisioningState": "Succeeded",
                "endpointState": "Online",
                "inferenceEndpoint": {
                    "uri": f"https://{name}.{self.location}.models.ai.azure.com",
                    "headers": {},
                },
                "marketplaceSubscriptionId": subscription_id,
            }
        )
        props.setdefault("authMode", "Key")
        existed = name in self._endpoints
        body = {
            "id": f"{self.workspace_id}/serverlessEndpoints/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints",
            "location": request.get("location") or self.location,
            "sku": request.get("sku") or {"name": "Consumption"},
            "tags": request.get("tags") or {},
            "properties": props,
            "systemData": system_data(utcnow()),
        }
        self._endpoints[name] = body
        return json_response(200 if existed else 201, body)

    def _list_endpoints(self, req: _Req, m: re.Match[str]) -> Response:
        return json_response(200, {"value": list(self._endpoints.values()), "nextLink": None})

    def _endpoint_keys(self, req: _Req, m: re.Match[str]) -> Response:
        name = unquote(m.group("name"))
        if name not in self._endpoints:
            return self._not_found("Serverless endpoint", name)
        digest = hashlib.sha256(f"{self.workspace_guid}/{name}".encode()).hexdigest()
        return json_response(
            200, {"primaryKey": f"fake-primary-{digest[:24]}", "secondaryKey": f"fake-2-{digest[24:48]}"}
        )

    # ---------------------------------------------------------------------------------------------- run history

    def _run_body(self, job: _Job) -> dict[str, Any]:
        props = job.properties
        return {
            "runId": job.name,
            "runUuid": job.run_uuid,
            "rootRunId": job.name,
            "parentRunId": None,
            "experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, str(props.get("experimentName", "Default")))),
            "status": job.status,
            "displayName": props.get("displayName") or job.name,
            "description": props.get("description"),
            "name": job.name,
            "tags": dict(props.get("tags") or {}),
            "properties": dict(props.get("properties") or {}),
            "createdUtc": iso(job.created),
            "runType": "azureml.StepRun" if props.get("jobType") == "Pipeline" else "azureml.scriptrun",
            "target": _compute_name(props.get("computeId")),
            "hidden": bool(props.get("isArchived")),
        }

    def _find_job(self, m: re.Match[str]) -> _Job | Response:
        name = unquote(m.group("name"))
        job = self._jobs.get(name)
        if job is None:
            return json_response(
                404,
                mfe_error(
                    "UserError",
                    f"Run {name} was not found",
                    location=self.location,
                    inner="NotFoundError",
                ),
            )
        return job

    def _get_run(self, req: _Req, m: re.Match[str]) -> Response:
        job = self._find_job(m)
        if not isinstance(job, _Job):
            return job
        return json_response(200, self._run_body(job))

    def _patch_run(self, req: _Req, m: re.Match[str]) -> Response:
        job = self._find_job(m)
        if not isinstance(job, _Job):
            return job
        update = req.json if isinstance(req.json, dict) else {}
        if isinstance(update.get("hidden"), bool):
            # jobs.archive()/restore() PATCH run history's `hidden`, which MFE shows as properties.isArchived.
            job.properties["isArchived"] = update["hidden"]
        if update.get("displayName") is not None:
            job.properties["displayName"] = update["displayName"]
        if update.get("description") is not None:
            job.properties["description"] = update["description"]
        if isinstance(update.get("tags"), dict):
            tags = dict(job.properties.get("tags") or {})
            tags.update(update["tags"])
            job.properties["tags"] = tags
        if isinstance(update.get("properties"), dict):
            merged = dict(job.properties.get("properties") or {})
            for key, value in update["properties"].items():
                merged.setdefault(key, value)
            job.properties["properties"] = merged
        job.modified = utcnow()
        return json_response(200, self._run_body(job))

    def _log_files(self, job: _Job) -> dict[str, str]:
        logs = self._logs.get(job.name)
        if logs is None:
            if job.index == 0 and job.status in (
                "NotStarted",
                "Queued",
                "Preparing",
                "Provisioning",
                "Starting",
            ):
                return {}
            lines = [f"[fake] job {job.name} is {job.status}"]
            for key, points in sorted(self._metrics.get(job.name, {}).items()):
                lines.extend(f"[fake] step {step}: {key}={value:g}" for step, value in points)
            logs = {"user_logs/std_log.txt": "\n".join(lines) + "\n"}
        out: dict[str, str] = {}
        container = "azureml"
        for log_name, text in logs.items():
            blob_path = f"ExperimentRun/dcid.{job.name}/{log_name}"
            self._store_blob(self.storage_account, container, blob_path, text.encode(), {}, "text/plain")
            sas = "sv=2019-07-07&sr=b&sp=r&se=2099-01-01T00%3A00%3A00Z&sig=ZmFrZS1sb2ctc2Fz"
            out[log_name] = (
                f"https://{self.storage_account}.blob.core.windows.net/{container}/{quote(blob_path)}?{sas}"
            )
        return out

    def _get_run_details(self, req: _Req, m: re.Match[str]) -> Response:
        job = self._find_job(m)
        if not isinstance(job, _Job):
            return job
        job.advance()
        status = job.status
        started = status not in ("NotStarted", "Queued", "Preparing", "Provisioning", "Starting")
        body: dict[str, Any] = {
            "runId": job.name,
            "runUuid": job.run_uuid,
            "parentRunUuid": None,
            "rootRunUuid": job.run_uuid,
            "target": _compute_name(job.properties.get("computeId")),
            "status": status,
            "parentRunId": None,
            "startTimeUtc": iso(job.created + timedelta(seconds=1)) if started else None,
            "endTimeUtc": iso(utcnow()) if status in TERMINAL_STATUSES else None,
            "error": None,
            "warnings": None,
            "tags": dict(job.properties.get("tags") or {}),
            "properties": dict(job.properties.get("properties") or {}),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": {},
            "logFiles": self._log_files(job),
            "jobCost": None,
            "revision": job.index + 1,
            "runTypeV2": {
                "orchestrator": None,
                "traits": [],
                "attribution": None,
                "computeType": "AmlCompute",
            },
            "settings": {},
            "computeRequest": None,
            "compute": None,
            "createdBy": None,
            "computeDuration": None,
            "effectiveStartTimeUtc": None,
            "runNumber": None,
            "rootRunId": job.name,
            "experimentId": None,
            "userId": self.credential.object_id,
            "statusRevision": job.index,
            "currentComputeTime": None,
            "lastStartTimeUtc": None,
            "lastModifiedBy": None,
            "lastModifiedUtc": iso(utcnow()),
            "duration": None,
            "inputs": None,
            "outputs": None,
            "currentAttemptId": 1,
        }
        if status == "Failed":
            err = job.error or {"code": "ServiceError", "message": "The job failed."}
            body["error"] = {
                "error": {
                    "code": err.get("code", "UserError"),
                    "severity": None,
                    "message": err.get("message", ""),
                    "messageFormat": None,
                    "messageParameters": {},
                    "referenceCode": None,
                    "detailsUri": None,
                    "target": None,
                    "details": [],
                    "innerError": None,
                    "debugInfo": None,
                    "additionalInfo": None,
                },
                "correlation": None,
                "environment": None,
                "location": None,
                "time": iso(utcnow()),
                "componentName": "RunHistory",
            }
        return json_response(200, body)

    def _get_run_children(self, req: _Req, m: re.Match[str]) -> Response:
        job = self._find_job(m)
        if not isinstance(job, _Job):
            return job
        return json_response(200, {"value": [], "continuationToken": None, "nextLink": None})

    # ---------------------------------------------------------------------------------------------- MLflow

    def _mlflow_run(self, job: _Job) -> dict[str, Any]:
        status = {
            "Completed": "FINISHED",
            "Failed": "FAILED",
            "Canceled": "KILLED",
            "CancelRequested": "RUNNING",
            "Running": "RUNNING",
            "Finalizing": "RUNNING",
        }.get(job.status, "SCHEDULED")
        start_ms = int(job.created.timestamp() * 1000)
        metrics = []
        for key, points in sorted(self._metrics.get(job.name, {}).items()):
            if points:
                step, value = points[-1]
                metrics.append(
                    {"key": key, "value": value, "timestamp": start_ms + 1000 * step, "step": step}
                )
        props = job.properties
        experiment = str(props.get("experimentName", "Default"))
        tags = [{"key": k, "value": str(v)} for k, v in (props.get("tags") or {}).items()]
        tags.append({"key": "mlflow.runName", "value": str(props.get("displayName") or job.name)})
        return {
            "info": {
                "run_id": job.name,
                "run_uuid": job.name,
                "run_name": props.get("displayName") or job.name,
                "experiment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, experiment)),
                "user_id": self.credential.object_id,
                "status": status,
                "start_time": start_ms,
                "end_time": start_ms + 60_000 if job.status in TERMINAL_STATUSES else None,
                "artifact_uri": f"azureml://{self.api_host}/mlflow/v2.0{self.workspace_id}/experiments/"
                f"{experiment}/runs/{job.name}/artifacts",
                "lifecycle_stage": "active",
            },
            "data": {"metrics": metrics, "params": [], "tags": tags},
            "inputs": {},
        }

    def _mlflow(self, req: _Req, m: re.Match[str]) -> Response:
        op = m.group("op").rstrip("/")
        params: dict[str, Any] = dict(req.query)
        if isinstance(req.json, dict):
            params.update(req.json)

        def missing(run_id: str) -> Response:
            return json_response(
                404,
                {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run '{run_id}' not found."},
            )

        if op == "runs/get":
            run_id = str(params.get("run_id") or params.get("run_uuid") or "")
            job = self._jobs.get(run_id)
            if job is None:
                return missing(run_id)
            return json_response(200, {"run": self._mlflow_run(job)})
        if op == "metrics/get-history":
            run_id = str(params.get("run_id") or params.get("run_uuid") or "")
            key = str(params.get("metric_key", ""))
            job = self._jobs.get(run_id)
            if job is None:
                return missing(run_id)
            start_ms = int(job.created.timestamp() * 1000)
            points = self._metrics.get(run_id, {}).get(key, [])
            history = [
                {"key": key, "value": value, "timestamp": start_ms + 1000 * step, "step": step}
                for step, value in points
            ]
            return json_response(200, {"metrics": history})
        if op == "runs/search":
            runs = [
                self._mlflow_run(j)
                for j in sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
            ]
            return json_response(200, {"runs": runs})
        if op in ("experiments/get-by-name", "experiments/get"):
            name = str(params.get("experiment_name") or params.get("experiment_id") or "Default")
            exp_id = name if op == "experiments/get" else str(uuid.uuid5(uuid.NAMESPACE_URL, name))
            return json_response(
                200,
                {
                    "experiment": {
                        "experiment_id": exp_id,
                        "name": name,
                        "artifact_location": "",
                        "lifecycle_stage": "active",
                    }
                },
            )
        return json_response(
            404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"FakeWorkspace has no MLflow route {op}"}
        )

    # ---------------------------------------------------------------------------------------------- blob storage

    def _account(self, req: _Req) -> str:
        return req.host.split(".", 1)[0]

    def _store_blob(
        self,
        account: str,
        container: str,
        blob_path: str,
        data: bytes,
        metadata: Mapping[str, str],
        content_type: str,
    ) -> _Blob:
        self._blob_seq += 1
        blob = _Blob(data, dict(metadata), content_type, etag(self._blob_seq), utcnow())
        self._blobs[(account, container, blob_path)] = blob
        return blob

    @staticmethod
    def _meta_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
        return {k[len("x-ms-meta-") :]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}

    def _blob_headers(self, blob: _Blob) -> dict[str, str]:
        headers = {
            "Content-Length": str(len(blob.data)),
            "Content-Type": blob.content_type,
            "ETag": blob.etag,
            "Last-Modified": http_date(blob.created),
            "x-ms-creation-time": http_date(blob.created),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "x-ms-server-encrypted": "true",
            "x-ms-access-tier": "Hot",
            "x-ms-access-tier-inferred": "true",
            "Accept-Ranges": "bytes",
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": "2025-01-05",
        }
        headers.update({f"x-ms-meta-{k}": v for k, v in blob.metadata.items()})
        return headers

    def _blob(self, req: _Req, m: re.Match[str]) -> Response:
        account = self._account(req)
        container = unquote(m.group("container"))
        blob_path = unquote(m.group("blob"))
        key = (account, container, blob_path)
        comp = req.query.get("comp")
        blob = self._blobs.get(key)
        write_headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": "2025-01-05"}
        if req.method == "PUT" and comp == "block":
            self._blocks.setdefault(key, {})[req.query.get("blockid", "")] = req.body
            return empty_response(201, {**write_headers, "x-ms-request-server-encrypted": "true"})
        if req.method == "PUT" and comp == "blocklist":
            staged = self._blocks.pop(key, {})
            data = b"".join(staged.get(block_id, b"") for block_id in block_list_ids(req.body))
            content_type = req.headers.get("x-ms-blob-content-type", "application/octet-stream")
            stored = self._store_blob(
                account, container, blob_path, data, self._meta_from_headers(req.headers), content_type
            )
            return empty_response(
                201, {**write_headers, "ETag": stored.etag, "Last-Modified": http_date(stored.created)}
            )
        if req.method == "PUT" and comp == "metadata":
            if blob is None:
                return storage_error(404, "BlobNotFound", "The specified blob does not exist.", method="PUT")
            blob.metadata = self._meta_from_headers(req.headers)
            self._blob_seq += 1
            blob.etag = etag(self._blob_seq)
            return empty_response(
                200, {**write_headers, "ETag": blob.etag, "Last-Modified": http_date(utcnow())}
            )
        if req.method == "PUT":
            content_type = req.headers.get("x-ms-blob-content-type", "application/octet-stream")
            stored = self._store_blob(
                account, container, blob_path, req.body, self._meta_from_headers(req.headers), content_type
            )
            md5 = base64.b64encode(hashlib.md5(req.body).digest()).decode()
            return empty_response(
                201,
                {
                    **write_headers,
                    "ETag": stored.etag,
                    "Last-Modified": http_date(stored.created),
                    "Content-MD5": md5,
                    "x-ms-request-server-encrypted": "true",
                },
            )
        if req.method == "DELETE":
            if self._blobs.pop(key, None) is None:
                return storage_error(
                    404, "BlobNotFound", "The specified blob does not exist.", method="DELETE"
                )
            return empty_response(202, write_headers)
        if blob is None:
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.", method=req.method)
        headers = self._blob_headers(blob)
        if req.method == "HEAD":
            return 200, headers, b""
        wanted = req.headers.get("x-ms-range") or req.headers.get("Range")
        if wanted:
            rm = re.match(r"bytes=(\d+)-(\d*)", wanted)
            size = len(blob.data)
            if rm is None or int(rm.group(1)) >= max(size, 1):
                s, h, b = storage_error(416, "InvalidRange", "The range specified is invalid.", method="GET")
                h["Content-Range"] = f"bytes */{size}"
                return s, h, b
            start = int(rm.group(1))
            end = min(int(rm.group(2)) if rm.group(2) else size - 1, size - 1)
            chunk = blob.data[start : end + 1]
            headers["Content-Length"] = str(len(chunk))
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return 206, headers, chunk
        return 200, headers, blob.data

    def _blob_container(self, req: _Req, m: re.Match[str]) -> Response:
        account = self._account(req)
        container = unquote(m.group("container"))
        headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": "2025-01-05", "ETag": etag(0)}
        if req.query.get("comp") == "list":
            prefix = req.query.get("prefix", "")
            delimiter = req.query.get("delimiter") or None
            include_metadata = "metadata" in req.query.get("include", "")
            found: list[tuple[str, int, str, str, Mapping[str, str]]] = []
            prefixes: set[str] = set()
            for (acct, cont, name), blob in sorted(self._blobs.items()):
                if acct != account or cont != container or not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                if delimiter and delimiter in rest:
                    prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                    continue
                found.append((name, len(blob.data), blob.content_type, blob.etag, blob.metadata))
            body = blob_list_xml(
                account,
                container,
                prefix=prefix,
                delimiter=delimiter,
                blobs=found,
                prefixes=sorted(prefixes),
                include_metadata=include_metadata,
            )
            return 200, {**headers, "Content-Type": "application/xml"}, body
        if req.method == "PUT":
            return 201, headers, b""
        headers["Last-Modified"] = http_date(utcnow())
        return 200, headers, b""


_KIND_LABEL = {
    "codes": "Code",
    "environments": "Environment",
    "data": "Data",
    "components": "Component",
    "models": "Model",
}


def _immutable_view(props: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in props.items() if k not in _MUTABLE_JOB_FIELDS and k != "services" and v is not None
    }


def _code_hash(body: Mapping[str, Any]) -> str | None:
    props = body.get("properties") or {}
    inner = props.get("properties") or {}
    value = inner.get("hash_sha256") or props.get("hash_sha256")
    return str(value) if value else None


_REGISTRY_COMPONENT = re.compile(
    r"azureml://registries/(?P<reg>[^/]+)/components/(?P<name>[^/]+)/(?:versions/(?P<version>[^/]+)|labels/[^/]+)",
    re.IGNORECASE,
)
_COMPUTE_ARM_ID = re.compile(r"/workspaces/[^/]+/computes/([^/]+)$", re.IGNORECASE)
_BARE_COMPUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,31}")


def _compute_references(props: Mapping[str, Any]) -> list[str]:
    """Every compute a job body names: its computeId, and a pipeline's nodes' and default compute."""
    found = [props.get("computeId")]
    if props.get("jobType") == "Pipeline":
        for node in (props.get("jobs") or {}).values():
            if isinstance(node, dict):
                found.append(node.get("computeId") or node.get("compute"))
        settings = props.get("settings") or {}
        if isinstance(settings, dict):
            found.append(settings.get("default_compute") or settings.get("defaultCompute"))
    return [value for value in found if isinstance(value, str) and value]


def _compute_reference_name(reference: str) -> str | None:
    """The compute name in an ARM id, `azureml:<name>` or a bare name; None for serverless and bindings."""
    text = reference.strip()
    if text.lower() == "serverless" or text.startswith("${{"):
        return None
    m = _COMPUTE_ARM_ID.search(text)
    if m:
        return unquote(m.group(1))
    if text.lower().startswith("azureml:"):
        text = text[len("azureml:") :]
    return text if _BARE_COMPUTE.fullmatch(text) else None


@functools.cache
def _shipped_registry_component(name: str) -> tuple[str, ...] | None:
    """The declared inputs of the Azure ML registry's `<name>` component, from the specs azfinetune ships."""
    import yaml

    from azfinetune import targets

    path = Path(targets.__file__).parent / "registry_specs" / f"{name}.spec.yaml"
    if not path.is_file():
        return None
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(document.get("inputs") or {})


def _compute_name(compute_id: Any) -> str | None:
    if not isinstance(compute_id, str) or not compute_id:
        return None
    return compute_id.rstrip("/").rsplit("/", 1)[-1]
