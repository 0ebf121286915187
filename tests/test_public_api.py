"""The public API: a sorted __all__ whose every name resolves, and a light `import azfinetune`."""

from __future__ import annotations

import subprocess
import sys

import azfinetune


def test_all_is_sorted_and_complete() -> None:
    assert azfinetune.__all__ == sorted(azfinetune.__all__)
    assert set(azfinetune.__all__) == {*azfinetune._EXPORTS, "__version__"}
    for name in azfinetune.__all__:
        assert getattr(azfinetune, name) is not None


def test_import_is_light() -> None:
    code = "import sys, azfinetune; print(sorted(m for m in ('azure.ai.ml', 'torch', 'pydantic') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_cli_commands_are_sorted_and_all_load() -> None:
    from azfinetune.cli import COMMANDS, cli

    assert list(COMMANDS) == sorted(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(None, name) is not None  # type: ignore[arg-type]
