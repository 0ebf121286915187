"""azfinetune: one spec, one command — fine-tune language models on Azure Machine Learning or locally."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names -> the module that defines them. Imported on first use, so `import azfinetune` stays instant
# and azure.ai.ml is only imported by the names that need it.
_EXPORTS: dict[str, str] = {
    "AzFineTuneError": "azfinetune.errors",
    "CheckReport": "azfinetune.checks",
    "FineTuneSpec": "azfinetune.spec",
    "SpecError": "azfinetune.errors",
    "check_spec": "azfinetune.checks",
    "load_spec": "azfinetune.spec",
}

__all__ = [
    "AzFineTuneError",
    "CheckReport",
    "FineTuneSpec",
    "SpecError",
    "__version__",
    "check_spec",
    "load_spec",
]

if TYPE_CHECKING:
    from azfinetune.checks import CheckReport, check_spec
    from azfinetune.errors import AzFineTuneError, SpecError
    from azfinetune.spec import FineTuneSpec, load_spec


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
