"""azfinetune: one spec, one command — fine-tune language models on Azure Machine Learning or locally."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azfinetune._version import __version__

# Public names -> the module that defines them. Imported on first use, so `import azfinetune` stays instant
# and azure.ai.ml is only imported by the names that need it.
_EXPORTS: dict[str, str] = {
    "AzFineTuneError": "azfinetune.errors",
    "CheckReport": "azfinetune.checks",
    "DataReport": "azfinetune.data",
    "FakeWorkspace": "azfinetune.testing",
    "FineTuneClient": "azfinetune.client",
    "FineTuneSpec": "azfinetune.spec",
    "JobInfo": "azfinetune.client",
    "Plan": "azfinetune.planner",
    "build_job": "azfinetune.build",
    "plan": "azfinetune.planner",
    "run_local": "azfinetune.local",
    "validate_data": "azfinetune.data",
    "SpecError": "azfinetune.errors",
    "SubmittedJob": "azfinetune.client",
    "check_spec": "azfinetune.checks",
    "load_spec": "azfinetune.spec",
}

__all__ = [
    "AzFineTuneError",
    "CheckReport",
    "DataReport",
    "FakeWorkspace",
    "FineTuneClient",
    "FineTuneSpec",
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

if TYPE_CHECKING:
    from azfinetune.build import build_job
    from azfinetune.checks import CheckReport, check_spec
    from azfinetune.client import FineTuneClient, JobInfo, SubmittedJob
    from azfinetune.data import DataReport, validate_data
    from azfinetune.errors import AzFineTuneError, SpecError
    from azfinetune.local import run_local
    from azfinetune.planner import Plan, plan
    from azfinetune.spec import FineTuneSpec, load_spec
    from azfinetune.testing import FakeWorkspace


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'azfinetune' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
