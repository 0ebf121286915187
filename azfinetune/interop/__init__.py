"""Interoperability with other fine-tuning tools: the AI Toolkit's Olive workflows (olive-ai 0.13)."""

from azfinetune.interop.olive import (
    OLIVE_DEFAULTS,
    OLIVE_TELEMETRY_ENV,
    OLIVE_VERSION,
    OliveConfigError,
    OliveExport,
    OliveImport,
    fill_ai_toolkit_template,
    olive_run_command,
    olive_to_spec,
    spec_to_olive,
)

__all__ = [
    "OLIVE_DEFAULTS",
    "OLIVE_TELEMETRY_ENV",
    "OLIVE_VERSION",
    "OliveConfigError",
    "OliveExport",
    "OliveImport",
    "fill_ai_toolkit_template",
    "olive_run_command",
    "olive_to_spec",
    "spec_to_olive",
]
