"""Wire shapes for FakeWorkspace: Azure ML error bodies, storage XML, timestamps and small parsers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree as ET

Response = tuple[int, dict[str, str], bytes]

# The exact text the service returns when a job name is reused with a different definition
# (MicrosoftDocs/azure-docs#122250; inner codes per Azure/azure-sdk-for-python#47389).
IMMUTABLE_JOB_MESSAGE = (
    "A job with this name already exists. If you are trying to create a new job, use a different name. "
    "If you are trying to update an existing job, the existing job's Settings, Inputs, Outputs, Jobs, "
    "InputBindings, OutputBindings cannot be changed. Only description, tags, displayName, properties, "
    "and isArchived can be updated."
)

STATUS_CODES: dict[int, str] = {
    400: "UserError",
    401: "InvalidAuthenticationToken",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

STORAGE_CODES: dict[int, str] = {
    400: "InvalidInput",
    401: "NoAuthenticationInformation",
    403: "AuthenticationFailed",
    404: "BlobNotFound",
    409: "BlobAlreadyExists",
    429: "ServerBusy",
    500: "InternalError",
    502: "InternalError",
    503: "ServerBusy",
    504: "OperationTimedOut",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def http_date(ts: datetime) -> str:
    return format_datetime(ts, usegmt=True)


def etag(seq: int) -> str:
    return f'"0x8DC{seq:013X}"'


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    out = {
        "Content-Type": "application/json; charset=utf-8",
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-correlation-request-id": str(uuid.uuid4()),
    }
    out.update(headers or {})
    data = b"" if body is None else json.dumps(body).encode()
    return status, out, data


def empty_response(status: int, headers: Mapping[str, str] | None = None) -> Response:
    out = {"x-ms-request-id": str(uuid.uuid4())}
    out.update(headers or {})
    return status, out, b""


def system_data(created: datetime, modified: datetime | None = None) -> dict[str, Any]:
    return {
        "createdAt": iso(created),
        "createdBy": "Fake User",
        "createdByType": "User",
        "lastModifiedAt": iso(modified or created),
        "lastModifiedBy": "Fake User",
        "lastModifiedByType": "User",
    }


def mfe_error(
    code: str,
    message: str,
    *,
    location: str,
    inner: str | None = None,
    inner_inner: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The error body Azure ML's management front end (MFE) returns: ARM shape plus its own fields."""
    error: dict[str, Any] = {"code": code, "message": message, "messageParameters": {}, "details": []}
    if target:
        error["target"] = target
    if inner:
        error["innerError"] = {
            "code": inner,
            **({"innerError": {"code": inner_inner}} if inner_inner else {}),
        }
    # Null-valued fields are left out: azure-core's ARMErrorFormat cannot parse `"additionalInfo": null` and
    # then drops the whole error (HttpResponseError.error is None, the message is just the HTTP reason).
    return {
        "error": error,
        "correlation": {"operation": uuid.uuid4().hex, "request": uuid.uuid4().hex[:16]},
        "environment": location,
        "location": location,
        "time": iso(utcnow()),
        "componentName": "managementfrontend",
    }


def invalid_request_error(
    message: str,
    violations: Sequence[tuple[str, str]],
    *,
    code: str = "UserError",
    detail_code: str = "InvalidRequestContent",
) -> dict[str, Any]:
    """The 400 body of a request the service refuses as invalid, in the ARM error shape every Jobs operation
    declares (common-types ErrorResponse): code, message, target, details[] and additionalInfo as a LIST.

    A null `additionalInfo` (Azure ML's older run-history shape) makes azure-core's ARMErrorFormat drop the whole
    error ("Operation returned an invalid status 'Bad Request'"), so it is always a list here."""
    target = violations[0][0] if violations else None
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "details": [{"code": detail_code, "message": text, "target": path} for path, text in violations],
        "additionalInfo": [{"type": "ComponentName", "info": {"value": "managementfrontend"}}],
    }
    if target:
        error["target"] = target
    return {"error": error}


def api_version_error(api_version: str | None, supported: Sequence[str], resource: str) -> dict[str, Any]:
    """ARM's answer to an api-version the resource type does not have."""
    return arm_error(
        "InvalidApiVersionParameter",
        f"The api-version '{api_version or ''}' is invalid. The supported versions are '{','.join(supported)}' "
        f"for the resource type '{resource}'.",
    )


def arm_error(code: str, message: str) -> dict[str, Any]:
    """The plain ARM error body (what ARM itself answers, e.g. for a missing workspace or an auth failure)."""
    return {"error": {"code": code, "message": message}}


def storage_error(status: int, code: str, message: str, *, method: str) -> Response:
    headers = {"x-ms-error-code": code, "x-ms-request-id": str(uuid.uuid4()), "x-ms-version": "2025-01-05"}
    # A HEAD answer must have no body: azure-storage-blob raises IncompleteRead and retries otherwise.
    if method == "HEAD":
        return status, headers, b""
    headers["Content-Type"] = "application/xml"
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{_xml_escape(code)}</Code><Message>{_xml_escape(message)}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{iso(utcnow())}</Message></Error>"
    )
    return status, headers, body.encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def block_list_ids(body: bytes) -> list[str]:
    """The block ids of a Put Block List request body, in commit order."""
    root = ET.fromstring(body)
    return [child.text or "" for child in root]


def blob_list_xml(
    account: str,
    container: str,
    *,
    prefix: str,
    delimiter: str | None,
    blobs: list[tuple[str, int, str, str, Mapping[str, str]]],
    prefixes: list[str],
    include_metadata: bool,
) -> bytes:
    """An EnumerationResults document for List Blobs; each blob is (name, size, content_type, etag, metadata)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<EnumerationResults ServiceEndpoint="https://{account}.blob.core.windows.net/" '
        f'ContainerName="{_xml_escape(container)}">',
        f"<Prefix>{_xml_escape(prefix)}</Prefix>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{_xml_escape(delimiter)}</Delimiter>")
    parts.append("<Blobs>")
    now = http_date(utcnow())
    for name, size, content_type, tag, metadata in blobs:
        parts.append(
            f"<Blob><Name>{_xml_escape(name)}</Name><Properties><Creation-Time>{now}</Creation-Time>"
            f"<Last-Modified>{now}</Last-Modified><Etag>{tag}</Etag><Content-Length>{size}</Content-Length>"
            f"<Content-Type>{_xml_escape(content_type)}</Content-Type><BlobType>BlockBlob</BlobType>"
            "<AccessTier>Hot</AccessTier><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
            "<ServerEncrypted>true</ServerEncrypted></Properties>"
        )
        if include_metadata:
            parts.append(
                "<Metadata>"
                + "".join(f"<{k}>{_xml_escape(v)}</{k}>" for k, v in metadata.items())
                + "</Metadata>"
            )
        parts.append("</Blob>")
    parts.extend(f"<BlobPrefix><Name>{_xml_escape(p)}</Name></BlobPrefix>" for p in prefixes)
    parts.append("</Blobs><NextMarker /></EnumerationResults>")
    return "".join(parts).encode()
