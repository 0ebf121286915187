"""How the client talks to Azure ML: retry settings, attempts, the upload datastore, what is transient."""

from __future__ import annotations

from typing import Any

__all__ = ["DATASTORE", "REMOTE_PREFIXES", "RETRY_SETTINGS", "SUBMIT_ATTEMPTS", "TRANSIENT_STATUS"]

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


TRANSIENT_STATUS = frozenset({408, 500, 502, 503, 504})


REMOTE_PREFIXES = ("azureml:", "https://", "http://", "wasbs://", "abfss://", "adl://")
