"""The azfinetune error tree; every error says what went wrong and what to do next.

    AzFineTuneError                 base of everything azfinetune raises on purpose
    ├── UserInputError              bad input: the CLI exits 2, nothing was sent
    │   ├── SpecError               a spec file or FineTuneSpec(...) failed its checks (one or more issues)
    │   ├── CatalogError            an unknown model alias or GPU SKU
    │   ├── DataError               a training/validation file failed its checks
    │   ├── PlanError               a spec cannot be planned (e.g. a model with no architecture numbers)
    │   ├── BuildError              a spec cannot become an Azure ML job (e.g. a technique a target cannot do)
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

Every error renders with `str()` as the text a user reads; structured fields (`path`, `line`,
`status_code`, `job_name`, ...) are attributes for programs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AuthError",
    "AzFineTuneError",
    "BuildError",
    "CatalogError",
    "ConflictError",
    "DataError",
    "JobFailedError",
    "LocalRunError",
    "NotFoundError",
    "PlanError",
    "QuotaError",
    "RunInterrupted",
    "ServiceError",
    "SpecError",
    "SpecIssue",
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


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where it is and what to do about it."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    severity: str = field(default="error")

    @property
    def location(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        key = f"{self.path}: " if self.path else ""
        text = f"{where}{key}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(UserInputError):
    """A spec failed its checks. `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[SpecIssue], *, file: str | None = None) -> None:
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
