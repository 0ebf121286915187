"""azfinetune: one spec, one command — fine-tune language models on Azure Machine Learning or locally.

Importing azfinetune imports only its own light modules (and pydantic): azure.ai.ml, torch and transformers are
imported inside the functions that need them. The public names load on first use (PEP 562), so a command that
needs only the spec (`azfinetune validate`) never loads the client. The HTTP-level fakes for tests are in
`azfinetune.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azfinetune._version import __version__

if TYPE_CHECKING:
    from azfinetune.client import FineTuneClient, JobInfo, SubmittedJob
    from azfinetune.data import DataReport, validate_data
    from azfinetune.errors import AzFineTuneError, Issue, SpecError
    from azfinetune.local import run_local
    from azfinetune.planner import Plan, plan
    from azfinetune.spec import FineTuneSpec, load_spec
    from azfinetune.targets import CheckReport, build_job, check_spec

__all__ = [
    "AzFineTuneError",
    "CheckReport",
    "DataReport",
    "FineTuneClient",
    "FineTuneSpec",
    "Issue",
    "JobInfo",
    "Plan",
    "SpecError",
    "SubmittedJob",
    "__version__",
    "build_job",
    "check_spec",
    "load_spec",
    "plan",
    "run_local",
    "validate_data",
]


def _load(name: str) -> Any:
    """The public name's object, imported from its module (explicit imports: no string registry)."""
    if name in ("FineTuneClient", "JobInfo", "SubmittedJob"):
        import azfinetune.client as module
    elif name in ("DataReport", "validate_data"):
        import azfinetune.data as module  # type: ignore[no-redef]
    elif name in ("AzFineTuneError", "Issue", "SpecError"):
        import azfinetune.errors as module  # type: ignore[no-redef]
    elif name == "run_local":
        import azfinetune.local as module  # type: ignore[no-redef]
    elif name in ("Plan", "plan"):
        import azfinetune.planner as module  # type: ignore[no-redef]
    elif name in ("FineTuneSpec", "load_spec"):
        import azfinetune.spec as module  # type: ignore[no-redef]
    elif name in ("CheckReport", "build_job", "check_spec"):
        import azfinetune.targets as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'azfinetune' has no attribute {name!r}")
    return getattr(module, name)


def __getattr__(name: str) -> Any:
    value = _load(name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
