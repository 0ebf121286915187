"""The azfinetune error tree; every error says what went wrong and what to do next.

    AzFineTuneError                 base of everything azfinetune raises on purpose
    ├── UserInputError              bad input: the CLI exits 2, nothing was sent
    │   ├── SpecError               a spec file or FineTuneSpec(...) failed its checks (one or more issues)
    │   ├── CatalogError            an unknown model alias or GPU SKU
    │   ├── DataError               a training/validation file failed its checks
    │   ├── PlanError               a spec cannot be planned (e.g. a model with no architecture numbers)
    │   ├── BuildError              an internal fault while building a job (validate refuses every user error first)
    │   ├── OfferError              the service does not offer this where the job would go, or no longer
    │   │   ├── ServerlessRegionError   the workspace's region has no serverless fine-tuning of the model
    │   │   └── ServerlessRetiredError  Azure retired the model's serverless offer (submit --allow-retired)
    │   └── LocalRunError           the local backend cannot start (missing extra, model not cached, ...)
    └── ServiceError                Azure (or the local run) failed: the CLI exits 1
        ├── AuthError               401/403: which identity, which role is missing
        ├── NotFoundError           workspace, compute, model or job not found
        ├── QuotaError              the subscription's quota was exceeded
        ├── ThrottledError          429s outlasted the retries
        ├── ConflictError           a job name exists with a different spec (jobs are immutable)
        ├── JobFailedError          the job ran and failed (carries the service's message)
        ├── RunInterrupted          the user stopped a local run (Ctrl-C): exit 130, partial outputs kept
        └── SubmitError             any other failure while submitting

    Issue                           one problem (spec key, data line, job input) with file, line, column, hint;
                                    SpecError and DataError carry lists of them

Every error renders with `str()` as the text a user reads; structured fields (`path`, `line`,
`status_code`, `job_name`, ...) are attributes for programs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AuthError",
    "AzFineTuneError",
    "BuildError",
    "CatalogError",
    "ConflictError",
    "DataError",
    "Issue",
    "JobFailedError",
    "LocalRunError",
    "NotFoundError",
    "OfferError",
    "PlanError",
    "QuotaError",
    "RunInterrupted",
    "ServerlessRegionError",
    "ServerlessRetiredError",
    "ServiceError",
    "Severity",
    "SpecError",
    "SubmitError",
    "ThrottledError",
    "UserInputError",
]


class AzFineTuneError(Exception):
    """Base of every error azfinetune raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UserInputError(AzFineTuneError):
    """Bad input (spec, data, flags); nothing was sent anywhere. The CLI exits 2."""

    exit_code = 2


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem in a spec, a data file or a job definition: where it is, what is wrong, what to do.

    `path` is the key path (``training.epochs``, ``target.compute``) or, in a data file, the field inside the
    example (``messages[2].role``); `file`, `line` and `column` are 1-based as editors show them; `code` is a
    stable snake_case code programs can match on (data checks set it); `byte_offset` points into a data file.
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    severity: Severity = field(default="error")
    code: str | None = None
    byte_offset: int | None = None

    @property
    def location(self) -> str:
        """``file:line:column`` (the parts that are known), or ``line N`` when only the line is."""
        if self.file is None and self.line is not None:
            return f"line {self.line}"
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def located(self, file: str | None, line: int | None, column: int | None = None) -> Issue:
        """The same issue at a position (kept as is when it already has a line)."""
        if self.line is not None:
            return self
        return dataclasses.replace(self, file=file, line=line, column=column)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; keys whose value is unknown are left out."""
        out: dict[str, Any] = {"severity": self.severity, "path": self.path, "message": self.message}
        for key in ("code", "file", "line", "column", "hint", "byte_offset"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        key = f"{self.path}: " if self.path else ""
        text = f"{where}{key}{self.message}"
        if self.code:
            text += f" [{self.code}]"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(UserInputError):
    """A spec failed its checks. `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[Issue], *, file: str | None = None) -> None:
        self.issues = list(issues)
        self.file = file
        count = len(self.issues)
        head = f"{file}: " if file else ""
        noun = "problem" if count == 1 else "problems"
        lines = [f"{head}{count} {noun} in the spec:"] + [f"  {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))

    @property
    def paths(self) -> list[str]:
        return [issue.path for issue in self.issues]


class CatalogError(UserInputError):
    """An unknown model alias or GPU SKU."""


class DataError(UserInputError):
    """A data file failed validation; `report` holds the full DataReport when there is one."""

    def __init__(self, message: str, *, report: object | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class PlanError(UserInputError):
    """A spec cannot be planned."""


class BuildError(UserInputError):
    """A spec cannot become an Azure ML job."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class OfferError(UserInputError):
    """The service does not offer this where the job would go (found at submit, before anything is created)."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class ServerlessRegionError(OfferError):
    """The workspace is in a region where the model's serverless fine-tuning is not offered."""


class ServerlessRetiredError(OfferError):
    """Azure retired the model's serverless fine-tuning; the user did not pass --allow-retired."""


class LocalRunError(UserInputError):
    """The local backend cannot start the job."""


class ServiceError(AzFineTuneError):
    """Azure Machine Learning (or a local run) failed. The CLI exits 1."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status_code: int | None = None,
        job_name: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.job_name = job_name


class AuthError(ServiceError):
    """401/403 from Azure."""


class NotFoundError(ServiceError):
    """A workspace, compute, model or job does not exist."""


class QuotaError(ServiceError):
    """The subscription's quota was exceeded."""


class ThrottledError(ServiceError):
    """Azure kept answering 429 after the retries."""


class ConflictError(ServiceError):
    """A job with this name exists and was made from a different spec."""


class JobFailedError(ServiceError):
    """The job ran and failed."""


class RunInterrupted(ServiceError):
    """The user stopped a local run; the partial outputs stay where the message says."""

    exit_code = 130


class SubmitError(ServiceError):
    """Any other failure while submitting."""
