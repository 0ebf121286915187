"""Interoperability with other fine-tuning tools: the AI Toolkit's Olive workflows (olive-ai 0.13)."""

from azfinetune.interop.olive import (
    OLIVE_TELEMETRY_ENV,
    OLIVE_VERSION,
    OliveExport,
    olive_run_command,
    spec_to_olive,
)

__all__ = [
    "OLIVE_TELEMETRY_ENV",
    "OLIVE_VERSION",
    "OliveExport",
    "olive_run_command",
    "spec_to_olive",
]
