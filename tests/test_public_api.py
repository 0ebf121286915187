"""The public API: a sorted __all__ whose every name resolves, and a light `import azfinetune`."""

from __future__ import annotations

import subprocess
import sys

import pytest

import azfinetune


def test_all_is_sorted_and_complete() -> None:
    assert azfinetune.__all__ == sorted(azfinetune.__all__)
    for name in azfinetune.__all__:  # the names load on first use (PEP 562)
        assert getattr(azfinetune, name) is not None
    public = {name for name in vars(azfinetune) if not name.startswith("_") and not _is_module(name)}
    assert public - {"annotations", "TYPE_CHECKING", "Any"} == set(azfinetune.__all__) - {"__version__"}
    assert set(azfinetune.__all__) <= set(dir(azfinetune))
    with pytest.raises(AttributeError):
        azfinetune.no_such_name  # noqa: B018


def test_validate_loads_no_client() -> None:
    """`azfinetune validate` needs the spec, the catalog and the targets' rules: never the client modules."""
    code = (
        "import sys; from azfinetune.cli import main; sys.argv = ['azfinetune', '--help']\n"
        "import azfinetune; from azfinetune import check_spec\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azfinetune.client', 'azfinetune.local'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _is_module(name: str) -> bool:
    import types

    return isinstance(getattr(azfinetune, name), types.ModuleType)


HEAVY = ("azure.ai.ml", "torch", "transformers", "responses", "azfinetune.testing")


@pytest.mark.parametrize("module", ["azfinetune", "azfinetune.cli"])
def test_import_is_light(module: str) -> None:
    """Our own light modules import at module level; azure.ai.ml, torch and transformers only inside functions."""
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_cli_commands_are_sorted_and_all_load() -> None:
    from azfinetune.cli import COMMANDS, cli

    assert list(COMMANDS) == sorted(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(None, name) is not None  # type: ignore[arg-type]
