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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from azfinetune.errors import (
    AuthError,
    AzFineTuneError,
    ConflictError,
    DataError,
    JobFailedError,
    NotFoundError,
    QuotaError,
    ServiceError,
    SpecError,
    Issue,
    SubmitError,
    ThrottledError,
    UserInputError,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from azfinetune.checks import CheckReport
    from azfinetune.spec import FineTuneSpec

__all__ = [
    "DATASTORE",
    "RETRY_SETTINGS",
    "SUBMIT_ATTEMPTS",
    "TERMINAL_STATUSES",
    "FineTuneClient",
    "JobEvent",
    "JobInfo",
    "SubmittedJob",
    "UploadedFile",
    "WorkspaceConfig",
    "map_azure_error",
    "redact",
    "resolve_workspace",
    "use_ml_client",
]

logger = logging.getLogger(__name__)

#: azure-core retry settings for every Azure ML request, set explicitly when the MLClient is created: bounded
#: (at most 10 retries, 15 minutes per request), exponential with azure-core's jitter, Retry-After honoured.
RETRY_SETTINGS: dict[str, Any] = {
    "retry_total": 10,
    "retry_connect": 5,
    "retry_read": 5,
    "retry_status": 5,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 60,
    "timeout": 900,
}
#: Whole submissions tried at most this often. azure-core does not retry a POST that failed to connect, nor one
#: answered 502; a submit is idempotent (GET first, deterministic name), so trying it again is safe.
SUBMIT_ATTEMPTS = 5
#: The datastore local data files are uploaded to (azure-ai-ml's default for job inputs).
DATASTORE = "workspaceblobstore"
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})

_SPEC_HASH_TAG = "azfinetune.spec_hash"
_SPEC_NAME_TAG = "azfinetune.spec_name"
_REMOTE_PREFIXES = ("azureml:", "https://", "http://", "wasbs://", "abfss://", "adl://")
_TRANSIENT_STATUS = frozenset({408, 500, 502, 503, 504})
_ENV_VARS = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "workspace_name": "AZUREML_WORKSPACE_NAME",
}

# Test hook: an MLClient every FineTuneClient.from_config() in this context uses (see use_ml_client).
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


# --------------------------------------------------------------------------------------------------------------
# Results


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
        return self.tags.get(_SPEC_NAME_TAG)

    @property
    def spec_hash(self) -> str | None:
        return self.tags.get(_SPEC_HASH_TAG)

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
            status=_status(getattr(job, "status", None)),
            kind=_status(getattr(job, "type", None)),
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


# --------------------------------------------------------------------------------------------------------------
# Workspace configuration


@dataclass(frozen=True)
class WorkspaceConfig:
    """The workspace a client talks to, and where each value came from (for error messages)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [key for key in _ENV_VARS if not getattr(self, key)]

    @property
    def workspace_id(self) -> str | None:
        if self.missing:
            return None
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def require(self) -> None:
        """Raise UserInputError naming what is missing and every way to give it."""
        if not self.missing:
            return
        labels = {
            "subscription_id": "subscription id",
            "resource_group": "resource group",
            "workspace_name": "workspace",
        }
        raise UserInputError(
            f"no Azure ML workspace configured: missing {', '.join(labels[m] for m in self.missing)}",
            hint="pass --subscription/--resource-group/--workspace, set `workspace:` in the spec, set "
            "AZURE_SUBSCRIPTION_ID/AZURE_RESOURCE_GROUP/AZUREML_WORKSPACE_NAME, or put the workspace's config.json "
            "(Azure portal → the workspace → Download config.json) in this folder or .azureml/",
        )


def _find_config_file(path: str | os.PathLike[str] | None) -> Path | None:
    """config.json as MLClient.from_config finds it: `path` if it is a file, else in .azureml/, aml_config/ or the
    folder itself (config.json, then project.json), from `path` (default: the current folder) up 20 levels."""
    start = Path(path) if path is not None else Path.cwd()
    if start.is_file():
        return start
    start = start.resolve()
    for folder_name in (".azureml", "aml_config", None):
        for file_name in ("config.json", "project.json"):
            current = start
            for _ in range(21):
                candidate = current / folder_name / file_name if folder_name else current / file_name
                if candidate.is_file():
                    return candidate
                if current.parent == current:
                    break
                current = current.parent
    return None


def _read_config_file(found: Path) -> dict[str, str]:
    try:
        data = json.loads(found.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{found}: not a readable JSON workspace config ({error})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{found}: a workspace config must be a JSON object")
    scope = data.get("Scope")
    if isinstance(scope, str) and scope:
        pieces = scope.split("/")
        if len(pieces) < 9:
            raise UserInputError(f"{found}: Scope is not a workspace resource id")
        return {"subscription_id": pieces[2], "resource_group": pieces[4], "workspace_name": pieces[8]}
    return {key: str(data[key]) for key in _ENV_VARS if data.get(key)}


def resolve_workspace(
    *,
    path: str | os.PathLike[str] | None = None,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    workspace_name: str | None = None,
    spec: FineTuneSpec | None = None,
) -> WorkspaceConfig:
    """The workspace, value by value, in this precedence: arguments (CLI flags) > the spec's `workspace:` >
    AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME > config.json (found as
    `MLClient.from_config` finds it, from `path` or the current folder upwards). No network."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}

    def offer(key: str, value: str | None, source: str) -> None:
        if value and key not in values:
            values[key] = value
            sources[key] = source

    offer("subscription_id", subscription_id, "flag")
    offer("resource_group", resource_group, "flag")
    offer("workspace_name", workspace_name, "flag")
    if spec is not None and spec.workspace is not None:
        where = f"spec {spec.source}" if spec.source else "spec"
        offer("subscription_id", spec.workspace.subscription_id, where)
        offer("resource_group", spec.workspace.resource_group, where)
        offer("workspace_name", spec.workspace.name, where)
    for key, variable in _ENV_VARS.items():
        offer(key, os.environ.get(variable), f"env {variable}")
    if len(values) < len(_ENV_VARS) or path is not None:
        found = _find_config_file(path)
        if found is None and path is not None:
            raise UserInputError(f"no config.json found at or above {path}")
        if found is not None:
            for key, value in _read_config_file(found).items():
                offer(key, value, f"config {found}")
    return WorkspaceConfig(
        subscription_id=values.get("subscription_id"),
        resource_group=values.get("resource_group"),
        workspace_name=values.get("workspace_name"),
        sources=sources,
    )


# --------------------------------------------------------------------------------------------------------------
# Error mapping: the one place azure-core / azure-ai-ml / marshmallow exceptions become azfinetune errors

_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(sig|se|sv|skoid|sktid|sks|skv|st|sp|sr|spr)=([^&\s'\"]+)"), r"\1=REDACTED"),
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(SharedKey\s+[^:\s]+:)[^\s'\"]+"), r"\1REDACTED"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "REDACTED-JWT"),
    (re.compile(r"(?i)(x-azureml-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1REDACTED"),
    (
        re.compile(r"(?i)(\"?(?:key|accountKey|sasToken|primaryKey|secondaryKey)\"?\s*[:=]\s*\"?)[^\"\s,}]+"),
        r"\1REDACTED",
    ),
)


def redact(text: str) -> str:
    """`text` with SAS signatures, bearer tokens, JWTs and account keys replaced by REDACTED."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# The role that grants an ARM action azfinetune needs, for the 403 hint (first match wins).
_ROLE_FOR_ACTION: tuple[tuple[str, str], ...] = (
    ("marketplacesubscriptions", "Azure AI Developer (and permission to buy Azure Marketplace offers)"),
    ("serverlessendpoints", "Azure AI Developer"),
    ("computes/write", "AzureML Compute Operator"),
    ("workspaces/read", "Reader (or AzureML Data Scientist)"),
    ("microsoft.machinelearningservices", "AzureML Data Scientist"),
    ("microsoft.storage", "Storage Blob Data Contributor on the workspace's storage account"),
)


def _role_for(action: str | None) -> str:
    lowered = (action or "").lower()
    for needle, role in _ROLE_FOR_ACTION:
        if needle in lowered:
            return role
    return "AzureML Data Scientist"


def _exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "inner_exception", None)
        if isinstance(inner, BaseException) and id(inner) not in seen:
            current = inner
            continue
        current = current.__cause__ or current.__context__


def _azure_core_error(error: BaseException) -> BaseException | None:
    """The azure-core exception inside azure-ai-ml's wrappers (MlException hides it in its context)."""
    for item in _exception_chain(error):
        if type(item).__module__.startswith("azure.core") or type(item).__module__.startswith(
            "azure.identity"
        ):
            return item
    return None


def _status_code(error: BaseException) -> int | None:
    for item in _exception_chain(error):
        code = getattr(item, "status_code", None)
        if isinstance(code, int):
            return code
        response = getattr(item, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _service_message(error: BaseException) -> str:
    """The service's own message (not azure-core's 'Operation returned an invalid status' wrapper)."""
    for item in _exception_chain(error):
        odata = getattr(item, "error", None)
        message = getattr(odata, "message", None)
        if isinstance(message, str) and message.strip():
            return message.strip()
    for item in _exception_chain(error):
        message = getattr(item, "message", None)
        if isinstance(message, str) and message.strip():
            return message.strip()
        if str(item).strip():
            return str(item).strip()
    return type(error).__name__


def _error_codes(error: BaseException) -> set[str]:
    codes: set[str] = set()
    for item in _exception_chain(error):
        odata = getattr(item, "error", None)
        while odata is not None:
            code = getattr(odata, "code", None)
            if isinstance(code, str):
                codes.add(code)
            odata = getattr(odata, "innererror", None) or getattr(odata, "inner_error", None)
            if isinstance(odata, dict):
                code = odata.get("code")
                if isinstance(code, str):
                    codes.add(code)
                inner = odata.get("innerError") or odata.get("innererror")
                if isinstance(inner, dict) and isinstance(inner.get("code"), str):
                    codes.add(inner["code"])
                break
        code = getattr(item, "error_code", None)
        if isinstance(code, str):
            codes.add(code)
    return codes


def _all_text(error: BaseException) -> str:
    return " ".join(str(item) for item in _exception_chain(error))


def is_name_conflict(error: BaseException) -> bool:
    """The service's 'a job with this name already exists … cannot be changed' (or a plain 409)."""
    text = _all_text(error)
    codes = _error_codes(error)
    return (
        _status_code(error) == 409
        or "JobPropertyImmutable" in codes
        or "Immutable" in codes
        or "already exists" in text
        or "JobPropertyImmutable" in text
    )


def is_transient(error: BaseException) -> bool:
    """A fault worth trying the whole (idempotent) operation again for: connection errors and 408/5xx answers."""
    core = _azure_core_error(error)
    if core is None:
        return False
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(core, ClientAuthenticationError):
        return False
    if isinstance(core, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(core, HttpResponseError):
        return _status_code(core) in _TRANSIENT_STATUS
    return False


_NOT_FOUND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "subscription",
        re.compile(r"SubscriptionNotFound|subscription '?([\w-]+)'? (?:could not be|was not) found", re.I),
    ),
    (
        "resource group",
        re.compile(r"ResourceGroupNotFound|Resource group '([^']+)' could not be found", re.I),
    ),
    (
        "compute",
        re.compile(r"computes/([^/'\s]+)'|Compute '([^']+)'|compute[^.]*?'([^']+)'[^.]*not found", re.I),
    ),
    ("model", re.compile(r"Model '?([^'\s]+)'? was not found|models/([^/'\s]+)", re.I)),
    ("job", re.compile(r"Job '([^']+)' was not found|Run ([^\s]+) was not found", re.I)),
    ("datastore", re.compile(r"Datastore '([^']+)'", re.I)),
    ("data asset", re.compile(r"Data(?: version)? '([^']+)'", re.I)),
    ("environment", re.compile(r"Environment(?: version)? '([^']+)'", re.I)),
    (
        "workspace",
        re.compile(
            r"workspaces/([^/'\s]+)' under resource group|Workspace '?([^'\s]+)'? (?:was )?not found", re.I
        ),
    ),
)


def _not_found(error: BaseException, message: str, *, job_name: str | None) -> NotFoundError:
    for what, pattern in _NOT_FOUND_PATTERNS:
        match = pattern.search(message)
        if match is None:
            continue
        name = next((group for group in match.groups() if group), None)
        label = f"{what} {name}" if name else what
        hints = {
            "subscription": "check --subscription / AZURE_SUBSCRIPTION_ID (`az account list`)",
            "resource group": "check --resource-group / AZURE_RESOURCE_GROUP (`az group list`)",
            "workspace": "check --subscription/--resource-group/--workspace or config.json "
            "(`az ml workspace list -g <group>`)",
            "compute": "create the cluster or fix target.compute (`az ml compute list`)",
            "model": "check the spec's model (a catalog alias or azureml://registries/<reg>/models/<name>/versions/<v>)",
            "job": "check the name (`azfinetune list`)",
        }
        return NotFoundError(
            f"{label} not found: {message}",
            hint=hints.get(what),
            status_code=404,
            job_name=job_name,
        )
    return NotFoundError(f"not found: {message}", status_code=404, job_name=job_name)


_IDENTITY = re.compile(r"client '([^']+)'(?: with object id '([^']+)')?", re.I)
_ACTION = re.compile(r"action '([^']+)'", re.I)
_QUOTA = re.compile(r"quota|QuotaExceeded|CoreQuota|exceeds? .*limit of .*cores", re.I)


def map_azure_error(
    error: BaseException, *, job_name: str | None = None, during: str | None = None
) -> AzFineTuneError:
    """An azure-core / azure-identity / azure-ai-ml / marshmallow exception as the azfinetune error a user reads.

    401/403 → AuthError (which identity, which role); 404 → NotFoundError (workspace, compute, model, job: which);
    quota → QuotaError; 429 that outlasted the retries → ThrottledError; the immutable-name error → ConflictError;
    a failed job → JobFailedError with the service's message; invalid job definitions → UserInputError (exit 2);
    anything else → SubmitError (while submitting) or ServiceError. Messages are redacted (no SAS, token, key)."""
    if isinstance(error, AzFineTuneError):
        return error
    mapped = _map(error, job_name=job_name, during=during)
    mapped.message = redact(mapped.message)
    if mapped.hint:
        mapped.hint = redact(mapped.hint)
    mapped.args = (mapped.message,)
    return mapped


def _map(error: BaseException, *, job_name: str | None, during: str | None) -> AzFineTuneError:
    module = type(error).__module__
    name = type(error).__name__
    prefix = f"{during}: " if during else ""
    if module.startswith("marshmallow"):
        detail = getattr(error, "messages", None) or str(error)
        return UserInputError(f"{prefix}Azure ML rejected the job definition: {detail}")
    if name == "JobException":
        return _failed_job_error(job_name or "the job", _job_exception_message(error), codes=set())

    core = _azure_core_error(error)
    status = _status_code(error)
    message = _service_message(core if core is not None else error)
    if core is not None:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ResourceExistsError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if type(core).__name__ == "CredentialUnavailableError" or (
            isinstance(core, ClientAuthenticationError) and status is None
        ):
            return AuthError(
                f"{prefix}no usable Azure credential: {message}",
                hint="sign in with `az login` (DefaultAzureCredential also takes AZURE_CLIENT_ID/AZURE_TENANT_ID/"
                "AZURE_CLIENT_SECRET or a managed identity)",
            )
        if status == 401 or (isinstance(core, ClientAuthenticationError) and status != 403):
            return AuthError(
                f"{prefix}Azure rejected the access token (401): {message}",
                hint="the signed-in identity's token is invalid or expired: run `az login` again "
                "(`az account show` tells which identity DefaultAzureCredential uses)",
                status_code=401,
                job_name=job_name,
            )
        if status == 403:
            identity = _IDENTITY.search(message)
            action = _ACTION.search(message)
            who = identity.group(1) if identity else "the signed-in identity"
            if identity and identity.group(2):
                who += f" (object id {identity.group(2)})"
            role = _role_for(
                action.group(1) if action else ("microsoft.storage" if "Storage" in module else None)
            )
            what = f" to {action.group(1)}" if action else ""
            return AuthError(
                f"{prefix}{who} is not allowed{what} (403): {message}",
                hint=f"ask an Owner of the workspace to grant {who} the role '{role}' "
                "(az role assignment create --assignee <id> --role ... --scope <workspace id>)",
                status_code=403,
                job_name=job_name,
            )
        if status == 404 or isinstance(core, ResourceNotFoundError):
            return _not_found(core, message, job_name=job_name)
        if is_name_conflict(core) or isinstance(core, ResourceExistsError):
            return ConflictError(
                f"{prefix}a job named {job_name or '(this name)'} already exists with a different definition: {message}",
                hint="jobs are immutable: submit with --new-run (run_suffix=) to make a new job from this spec",
                status_code=status,
                job_name=job_name,
            )
        if status == 429:
            return ThrottledError(
                f"{prefix}Azure kept throttling the requests (429) after {RETRY_SETTINGS['retry_status']} retries: "
                f"{message}",
                hint="wait a minute and run the command again (a repeated submit does not make a second job)",
                status_code=429,
                job_name=job_name,
            )
        if _QUOTA.search(message) or any(_QUOTA.search(code) for code in _error_codes(core)):
            return _quota_error(message, job_name=job_name, status=status)
        if isinstance(core, ServiceRequestError):
            return ServiceError(
                f"{prefix}could not reach Azure: {message}",
                hint="check the network, proxy (HTTPS_PROXY) and firewall; run the command again",
                job_name=job_name,
            )
        if isinstance(core, ServiceResponseError):
            return ServiceError(
                f"{prefix}the connection to Azure dropped before it answered: {message}",
                hint="run the command again: a repeated submit returns the job if it was created",
                job_name=job_name,
            )
        if status is not None and status >= 500:
            return ServiceError(
                f"{prefix}Azure ML answered {status} after {RETRY_SETTINGS['retry_status']} retries: {message}",
                hint="a service-side problem: wait and run the command again",
                status_code=status,
                job_name=job_name,
            )
        if status is not None and 400 <= status < 500:
            return SubmitError(
                f"{prefix}Azure ML refused the request ({status}): {message}",
                status_code=status,
                job_name=job_name,
            )
    if module.startswith("azure.ai.ml"):
        text = str(error)
        if "compute" in text.lower() and (
            "not found" in text.lower() or '"path":"compute"' in text.replace(" ", "")
        ):
            return NotFoundError(
                f"{prefix}compute not found: {_first_line(text)}",
                hint="create the cluster or fix target.compute (`az ml compute list`)",
                job_name=job_name,
            )
        if name in ("ValidationException", "UserErrorException", "AssetException", "ValidationError") or (
            getattr(error, "error_category", None) == "UserError"
        ):
            return UserInputError(f"{prefix}Azure ML rejected the job definition: {_first_line(text)}")
    if _QUOTA.search(message):
        return _quota_error(message, job_name=job_name, status=status)
    cls = SubmitError if during and "submit" in during else ServiceError
    return cls(f"{prefix}{type(error).__name__}: {message}", status_code=status, job_name=job_name)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # azure-ai-ml formats errors as a numbered essay; the "(x) ..." line is the actual problem.
    for line in lines:
        if line.startswith("(x)"):
            return line[3:].strip()
    return lines[0] if lines else text


def _quota_error(message: str, *, job_name: str | None, status: int | None = None) -> QuotaError:
    return QuotaError(
        f"the subscription's quota was exceeded: {message}",
        hint="request more quota for this VM family in the workspace's region (Azure portal → Quotas), pick a "
        "smaller target.instance_type, or use target.priority: low",
        status_code=status,
        job_name=job_name,
    )


def _job_exception_message(error: BaseException) -> str:
    text = str(error)
    start = text.find("{")
    if start >= 0:
        try:
            data = json.loads(text[start : text.rfind("}") + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error") if isinstance(data.get("error"), dict) else data
            if isinstance(inner, dict) and inner.get("message"):
                code = inner.get("code")
                return f"{code}: {inner['message']}" if code else str(inner["message"])
    return _first_line(text)


def _failed_job_error(job_name: str, message: str, *, codes: set[str]) -> ServiceError:
    if _QUOTA.search(message) or any(_QUOTA.search(code) for code in codes):
        return _quota_error(message, job_name=job_name)
    return JobFailedError(
        f"job {job_name} failed: {message}",
        hint=f"see its logs: azfinetune logs {job_name}",
        job_name=job_name,
    )


# --------------------------------------------------------------------------------------------------------------
# Helpers


def _status(value: Any) -> str | None:
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


def _sleep(seconds: float) -> None:
    """Every wait of this module goes through azure-core's transport sleep, the one hook the SDK's own retry and
    polling sleeps use, so a test fake that zeroes those (FakeWorkspace does) zeroes ours too."""
    if seconds <= 0:
        return
    from azure.core.pipeline.transport import HttpTransport

    HttpTransport.sleep(None, seconds)  # type: ignore[arg-type]


def _is_local_file(path: Any) -> bool:
    if not isinstance(path, str | os.PathLike) or str(path).startswith(_REMOTE_PREFIXES):
        return False
    return Path(path).is_file()


def _data_inputs(job: Any) -> list[Any]:
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


def _kind_of(spec: FineTuneSpec) -> str:
    return str(spec.target.kind.value)


def _check_offline(spec: FineTuneSpec, *, allow_retired: bool) -> CheckReport:
    """check_spec (fields, rules, files, data) and the retired-model refusal: any error raises, nothing is sent."""
    from azfinetune.build.serverless_checks import check_not_retired
    from azfinetune.checks import check_spec

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
                hint=f"run `azfinetune data validate {spec.data.files()[role]} --task {spec.task.value}`",
            )
    check_not_retired(spec, allow_retired=allow_retired)
    return report


# --------------------------------------------------------------------------------------------------------------
# The client


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
                sources=dict.fromkeys(_ENV_VARS, "ml_client"),
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
            if not _is_foreign(error):
                raise
            raise map_azure_error(error, job_name=job_name, during=what) from error

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
        """Check, build and submit a spec under its deterministic name, once.

        Every offline check runs first (spec, files, data, retired models); any error raises and nothing is sent.
        Then the job is looked up by name: if it exists with the same spec hash it is returned as is (one request,
        no upload). Otherwise the serverless pre-submit checks run (workspace region, marketplace subscription),
        local data files are uploaded content-addressed (skipped when already there), and the job is created. A
        lost answer or an "already exists" error is settled by reading the job back: same spec hash → success,
        another → ConflictError. `run_suffix` makes a new job from the same spec on purpose; `dry_run` builds and
        returns the job without any request; `wait` waits for it to finish (`timeout` seconds)."""
        from azfinetune.build import build_job, job_name
        from azfinetune.build._common import spec_fingerprint

        spec = _load(spec_or_path, overrides)
        report = _check_offline(spec, allow_retired=allow_retired)
        name = job_name(spec, run_suffix=run_suffix)
        spec_hash = spec_fingerprint(spec)
        if dry_run:
            job = build_job(spec)
            job.name = name
            return SubmittedJob(
                name=name,
                kind=_kind_of(spec),
                spec_name=spec.name,
                spec_hash=spec_hash,
                status=None,
                studio_url=None,
                created=False,
                dry_run=True,
                uploads=[
                    UploadedFile(role, str(path), str(path), sha, uploaded=False)
                    for role, path, sha in _local_data_files(spec)
                ],
                warnings=list(report.warnings),
                job=job,
            )
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                submitted = self._submit_once(spec, name=name, spec_hash=spec_hash)
                break
            except AzFineTuneError:
                raise  # deliberate (conflict, region, ...): never tried again
            except Exception as error:
                if attempt == SUBMIT_ATTEMPTS or not is_transient(error):
                    if not _is_foreign(error):
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
        its local files' content), so a repeat returns the existing job."""
        from azure.ai.ml import load_job

        from azfinetune.build._common import file_sha256
        from azfinetune.spec import parse_overrides

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
            if input_path and _is_local_file(input_path) and local.is_file():
                digest.update(file_sha256(local).encode())
        spec_hash = digest.hexdigest()
        stem = re.sub(r"[^a-z0-9_-]+", "-", file.stem.lower()).strip("-") or "job"
        name = f"{stem}-{spec_hash[:12]}"
        job.name = name
        job.tags = {**(job.tags or {}), _SPEC_HASH_TAG: spec_hash}
        kind = str(getattr(job, "type", "job"))
        if dry_run:
            return SubmittedJob(name, kind, stem, spec_hash, None, None, created=False, dry_run=True, job=job)
        existing = self._find_job(name)
        if existing is None:
            try:
                existing = self.ml_client.jobs.create_or_update(job)
            except AzFineTuneError:
                raise
            except Exception as error:
                if not _is_foreign(error):
                    raise
                raise map_azure_error(error, job_name=name, during=f"submitting {name}") from error
            created = True
        else:
            found = (getattr(existing, "tags", None) or {}).get(_SPEC_HASH_TAG)
            if found != spec_hash:
                raise ConflictError(
                    f"a job named {name} already exists and was made from something else",
                    hint="jobs are immutable: change the file or an override to make a new job",
                    job_name=name,
                )
            created = False
        return SubmittedJob(
            name=name,
            kind=kind,
            spec_name=stem,
            spec_hash=spec_hash,
            status=_status(getattr(existing, "status", None)),
            studio_url=getattr(existing, "studio_url", None) or self.studio_url(name),
            created=created,
            job=existing,
        )

    def _submit_once(self, spec: FineTuneSpec, *, name: str, spec_hash: str) -> SubmittedJob:
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        from azfinetune.build import build_job

        existing = self._find_job(name)
        if existing is not None:
            return self._settle_existing(spec, existing, spec_hash=spec_hash, created=False)
        job = build_job(spec)
        job.name = name
        self._serverless_presubmit(spec, job)
        uploads = self._upload_data(spec, job)
        job = _submittable(job)
        logger.info("creating job %s", name)
        try:
            with _quiet_stderr():
                created = self.ml_client.jobs.create_or_update(job)
        except Exception as error:
            conflict = is_name_conflict(error)
            ambiguous = isinstance(_azure_core_error(error), ServiceResponseError | ServiceRequestError) or (
                isinstance(_azure_core_error(error), HttpResponseError)
                and (_status_code(error) or 0) in _TRANSIENT_STATUS
            )
            if not (conflict or ambiguous):
                raise
            # The PUT may have reached the service (a lost answer) or raced another submit of this spec.
            existing = self._find_job(name)
            if existing is None:
                raise
            result = self._settle_existing(spec, existing, spec_hash=spec_hash, created=True)
            result.uploads = uploads
            return result
        return SubmittedJob(
            name=str(created.name),
            kind=_kind_of(spec),
            spec_name=spec.name,
            spec_hash=spec_hash,
            status=_status(getattr(created, "status", None)),
            studio_url=getattr(created, "studio_url", None) or self.studio_url(name),
            created=True,
            uploads=uploads,
            job=created,
        )

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

    def _settle_existing(
        self, spec: FineTuneSpec, job: Any, *, spec_hash: str, created: bool
    ) -> SubmittedJob:
        name = str(job.name)
        found = (getattr(job, "tags", None) or {}).get(_SPEC_HASH_TAG)
        if found != spec_hash:
            raise ConflictError(
                f"a job named {name} already exists and was made from "
                + (f"another spec (spec hash {found[:12]})" if found else "something other than azfinetune"),
                hint="jobs are immutable: submit with --new-run to make a new job from this spec",
                job_name=name,
            )
        logger.info("job %s already exists with the same spec hash; not submitting again", name)
        return SubmittedJob(
            name=name,
            kind=_kind_of(spec),
            spec_name=spec.name,
            spec_hash=spec_hash,
            status=_status(getattr(job, "status", None)),
            studio_url=getattr(job, "studio_url", None) or self.studio_url(name),
            created=created,
            job=job,
        )

    def _serverless_presubmit(self, spec: FineTuneSpec, job: Any) -> None:
        """Serverless: the workspace's region must offer the model; non-Microsoft models need a marketplace
        subscription (created if missing). Fine-tuning jobs: a `labels/latest` model is pinned to its version."""
        from azfinetune.build import serverless_checks
        from azfinetune.build.finetuning import latest_model_reference, pin_model_version

        if _kind_of(spec) == "serverless":
            workspace = self.ml_client.workspaces.get(self.ml_client.workspace_name)
            serverless_checks.check_serverless_region(spec, str(getattr(workspace, "location", "") or ""))
            if serverless_checks.needs_marketplace_subscription(spec):
                self._ensure_marketplace_subscription(
                    serverless_checks.marketplace_subscription_name(spec),
                    serverless_checks.marketplace_model_id(spec),
                )
        reference = latest_model_reference(job)
        if reference is not None:
            registry, asset = reference
            from azure.ai.ml import MLClient

            registry_client = MLClient(
                credential=self.credential,
                registry_name=registry,
                show_progress=False,
                enable_telemetry=False,
                **RETRY_SETTINGS,
            )
            model = registry_client.models.get(asset, label="latest")
            pin_model_version(job, model.version)

    def _ensure_marketplace_subscription(self, name: str, model_id: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        operations = self.ml_client.marketplace_subscriptions
        try:
            operations.get(name)
            return
        except ResourceNotFoundError:
            pass
        from azure.ai.ml.entities import MarketplaceSubscription

        logger.info("creating the marketplace subscription %s for %s", name, model_id)
        poller = operations.begin_create_or_update(MarketplaceSubscription(name=name, model_id=model_id))
        poller.result(timeout=600)

    def _upload_data(self, spec: FineTuneSpec, job: Any) -> list[UploadedFile]:
        """Upload the job's local data files to the default datastore under `azfinetune/data/<sha256>/<file>`
        and point the job's inputs there. One datastore lookup for all files; per file one HEAD, and one PUT
        only when that content is not there yet — so an unchanged file is never uploaded twice."""
        inputs = [item for item in _data_inputs(job) if _is_local_file(item.path) and item.type == "uri_file"]
        if not inputs:
            return []
        from azfinetune.build._common import file_sha256

        roles = {str(path.resolve()): role for role, path, _ in _local_data_files(spec)}
        datastore = self.ml_client.datastores.get(DATASTORE, include_secrets=True)
        if type(datastore).__name__ != "AzureBlobDatastore":
            return []  # ADLS etc.: azure-ai-ml uploads the files itself with the job
        container = self._container_client(datastore)
        uploads: dict[str, UploadedFile] = {}
        for item in inputs:
            path = Path(item.path).resolve()
            key = str(path)
            if key not in uploads:
                sha = file_sha256(path)
                blob_path = f"azfinetune/data/{sha}/{path.name}"
                uploaded = _upload_blob(container, blob_path, path, sha)
                uploads[key] = UploadedFile(
                    roles.get(key, "input"),
                    key,
                    f"azureml://datastores/{datastore.name}/paths/{blob_path}",
                    sha,
                    uploaded=uploaded,
                )
            item.path = uploads[key].uri
        return list(uploads.values())

    def _container_client(self, datastore: Any) -> Any:
        from azure.storage.blob import ContainerClient, ExponentialRetry

        credentials = getattr(datastore, "credentials", None)
        secret = getattr(credentials, "account_key", None) or getattr(credentials, "sas_token", None)
        protocol = getattr(datastore, "protocol", None) or "https"
        endpoint = getattr(datastore, "endpoint", None) or "core.windows.net"
        return ContainerClient(
            account_url=f"{protocol}://{datastore.account_name}.blob.{endpoint}",
            container_name=datastore.container_name,
            credential=secret or self.credential,
            # Bounded: 5 retries, 2 s + 2^n s apart (± 1 s jitter); storage's default waits 15 s + 3^n s.
            retry_policy=ExponentialRetry(
                initial_backoff=2, increment_base=2, retry_total=5, random_jitter_range=1
            ),
            user_agent="azfinetune",
        )

    # ------------------------------------------------------------------------------------------ jobs

    def get(self, name: str) -> JobInfo:
        """The job now (with the service's error message when it failed)."""
        job = self._call(f"reading job {name}", self.ml_client.jobs.get, name, job_name=name)
        error = self._failure_message(name) if _status(getattr(job, "status", None)) == "Failed" else None
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
        kwargs: dict[str, Any] = {} if all_jobs else {"tag": _SPEC_HASH_TAG}
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

        Failed → JobFailedError (QuotaError for quota failures) with the service's message; Completed, Canceled →
        the JobInfo; still running at the timeout → ServiceError (the job keeps running)."""
        started = time.monotonic()
        slept = 0.0
        delay = min(5.0, poll_interval)
        last: str | None = None
        while True:
            job = self._call(f"reading job {name}", self.ml_client.jobs.get, name, job_name=name)
            status = _status(getattr(job, "status", None))
            if on_status is not None and status != last:
                on_status(status)
            last = status
            if status in TERMINAL_STATUSES:
                if status == "Failed":
                    raise self._failure(name)
                return JobInfo.from_job(job)
            # Waits are counted both ways: real time, and the time asked to sleep (so a test whose sleeps are
            # zeroed still reaches its timeout after a bounded number of polls).
            elapsed = max(time.monotonic() - started, slept)
            if timeout is not None and elapsed >= timeout:
                raise ServiceError(
                    f"job {name} is still {status} after {timeout:g} s",
                    hint=f"it keeps running: `azfinetune status {name}`, or `azfinetune cancel {name}`",
                    job_name=name,
                )
            pause = delay if timeout is None else max(0.0, min(delay, timeout - elapsed))
            _sleep(pause)
            slept += max(pause, 1e-3)
            delay = min(poll_interval, delay * 1.5)

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
        started = time.monotonic()
        slept = 0.0
        delay = 2.0
        details: Any = None
        while True:
            details = self._call(f"reading the run of {name}", runs.get_run_details, name, job_name=name)
            status = _status(getattr(details, "status", None))
            if status != last_status:
                last_status = status
                yield JobEvent("status", name, status)
            for log_name, url in _streamable_logs(getattr(details, "log_files", None) or {}):
                lines = self._download_text(url).splitlines()
                for line in lines[printed.get(log_name, 0) :]:
                    yield JobEvent("log", name, status, text=line, log_file=log_name)
                printed[log_name] = len(lines)
            if status in TERMINAL_STATUSES or not follow:
                break
            elapsed = max(time.monotonic() - started, slept)
            if timeout is not None and elapsed >= timeout:
                return
            _sleep(delay)
            slept += max(delay, 1e-3)
            delay = min(poll_interval, delay * 1.5)
        if follow and raise_on_failure and last_status == "Failed":
            raise _failed_job_error(name, _run_error_message(details), codes=_run_error_codes(details))

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
            if not _is_foreign(error):
                raise
            logger.info("could not download a log file: %s", redact(str(error)))
            return ""
        return data.decode("utf-8", errors="replace")

    def _failure_message(self, name: str) -> str:
        try:
            details = self._runs().get_run_details(name)
        except Exception as error:
            if not _is_foreign(error):
                raise
            logger.info("could not read the run error of %s: %s", name, redact(str(error)))
            return "the service gave no error message; see the job in Azure ML Studio"
        return _run_error_message(details)

    def _failure(self, name: str) -> ServiceError:
        try:
            details = self._runs().get_run_details(name)
        except Exception as error:
            if not _is_foreign(error):
                raise
            return _failed_job_error(
                name, "the service gave no error message; see the job in Studio", codes=set()
            )
        return _failed_job_error(name, _run_error_message(details), codes=_run_error_codes(details))


def _given(
    subscription_id: str | None, resource_group: str | None, workspace_name: str | None
) -> dict[str, Any]:
    return {
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace_name": workspace_name,
    }


def _is_foreign(error: BaseException) -> bool:
    """An exception of the Azure SDKs (or marshmallow, or requests underneath them), which map_azure_error knows."""
    module = type(error).__module__
    return module.startswith(("azure.", "marshmallow", "msrest", "requests", "urllib3"))


def _run_error(details: Any) -> Any:
    error = getattr(details, "error", None)
    return getattr(error, "error", None) or error


def _run_error_message(details: Any) -> str:
    inner = _run_error(details)
    if inner is None:
        return "the service gave no error message; see the job in Azure ML Studio"
    message = getattr(inner, "message", None) or (inner.get("message") if isinstance(inner, dict) else None)
    code = getattr(inner, "code", None) or (inner.get("code") if isinstance(inner, dict) else None)
    text = str(message or "no message")
    return redact(f"{code}: {text}" if code else text)


def _run_error_codes(details: Any) -> set[str]:
    inner = _run_error(details)
    code = getattr(inner, "code", None) or (inner.get("code") if isinstance(inner, dict) else None)
    return {str(code)} if code else set()


_STD_LOG = re.compile(r"^user_logs/std_log[^/]*\.txt$")


def _streamable_logs(log_files: Mapping[str, str]) -> list[tuple[str, str]]:
    """The user's logs: Common Runtime's user_logs/std_log*.txt, else (older runtimes) every .txt log."""
    names = sorted(log_files)
    chosen = [n for n in names if _STD_LOG.match(n)] or [n for n in names if n.endswith(".txt")]
    return [(n, log_files[n]) for n in chosen]


def _local_data_files(spec: FineTuneSpec) -> list[tuple[str, Path, str]]:
    """(role, absolute path, sha256) of the spec's local data files."""
    from azfinetune.build._common import file_sha256

    files = []
    for role, ref in spec.data.files().items():
        if ref.startswith(_REMOTE_PREFIXES):
            continue
        path = spec.resolve_path(ref).resolve()
        if path.is_file():
            files.append((role, path, file_sha256(path)))
    return files


def _upload_blob(container: Any, blob_path: str, path: Path, sha: str) -> bool:
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


def _load(
    spec_or_path: FineTuneSpec | str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] | None
) -> FineTuneSpec:
    from azfinetune.spec import FineTuneSpec, load_spec, parse_overrides, spec_from_dict

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
