"""The one place azure-core / azure-identity / azure-ai-ml / marshmallow exceptions become azfinetune errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from azfinetune.client._settings import RETRY_SETTINGS, TRANSIENT_STATUS
from azfinetune.errors import (
    AuthError,
    AzFineTuneError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    QuotaError,
    ServiceError,
    SubmitError,
    ThrottledError,
    UserInputError,
)

__all__ = [
    "azure_core_error",
    "failed_job_error",
    "is_foreign",
    "is_name_conflict",
    "is_transient",
    "map_azure_error",
    "redact",
    "run_error_codes",
    "run_error_message",
    "status_code",
]

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


def azure_core_error(error: BaseException) -> BaseException | None:
    """The azure-core exception inside azure-ai-ml's wrappers (MlException hides it in its context)."""
    for item in _exception_chain(error):
        if type(item).__module__.startswith("azure.core") or type(item).__module__.startswith(
            "azure.identity"
        ):
            return item
    return None


def status_code(error: BaseException) -> int | None:
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
        status_code(error) == 409
        or "JobPropertyImmutable" in codes
        or "Immutable" in codes
        or "already exists" in text
        or "JobPropertyImmutable" in text
    )


def is_transient(error: BaseException) -> bool:
    """A fault worth trying the whole (idempotent) operation again for: connection errors and 408/5xx answers."""
    core = azure_core_error(error)
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
        return status_code(core) in TRANSIENT_STATUS
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
        return failed_job_error(job_name or "the job", _job_exception_message(error), codes=set())

    core = azure_core_error(error)
    status = status_code(error)
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


def failed_job_error(job_name: str, message: str, *, codes: set[str]) -> ServiceError:
    if _QUOTA.search(message) or any(_QUOTA.search(code) for code in codes):
        return _quota_error(message, job_name=job_name)
    return JobFailedError(
        f"job {job_name} failed: {message}",
        hint=f"see its logs: azfinetune logs {job_name}",
        job_name=job_name,
    )


def is_foreign(error: BaseException) -> bool:
    """An exception of the Azure SDKs (or marshmallow, or requests underneath them), which map_azure_error knows."""
    module = type(error).__module__
    return module.startswith(("azure.", "marshmallow", "msrest", "requests", "urllib3"))


def _run_error(details: Any) -> Any:
    error = getattr(details, "error", None)
    return getattr(error, "error", None) or error


def run_error_message(details: Any) -> str:
    inner = _run_error(details)
    if inner is None:
        return "the service gave no error message; see the job in Azure ML Studio"
    message = getattr(inner, "message", None) or (inner.get("message") if isinstance(inner, dict) else None)
    code = getattr(inner, "code", None) or (inner.get("code") if isinstance(inner, dict) else None)
    text = str(message or "no message")
    return redact(f"{code}: {text}" if code else text)


def run_error_codes(details: Any) -> set[str]:
    inner = _run_error(details)
    code = getattr(inner, "code", None) or (inner.get("code") if isinstance(inner, dict) else None)
    return {str(code)} if code else set()
