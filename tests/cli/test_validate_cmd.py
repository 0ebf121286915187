"""`azfinetune validate` and the CLI's error boundary: exit codes, messages, no traceback, no azure.ai.ml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azfinetune", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_help_and_version() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "validate" in result.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and "azfinetune" in version.stdout


def test_every_example_validates() -> None:
    examples = sorted(str(p) for p in EXAMPLES.glob("*.yaml") if p.name != "quickstart.yaml")
    result = run_cli("validate", *examples)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("✓") == len(examples)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            "from azfinetune.cli import main; import sys; sys.argv=['azfinetune','--help']; main()", id="help"
        ),
        pytest.param(
            "from azfinetune.cli import main; import sys; "
            f"sys.argv=['azfinetune','validate',{str(EXAMPLES / 'phi3-mini-lora.yaml')!r}]; main()",
            id="validate",
        ),
    ],
)
def test_offline_commands_do_not_import_azure_ai_ml(command: str) -> None:
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('AZURE_AI_ML_IMPORTED=' + str('azure.ai.ml' in sys.modules)))\n"
        + command
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert "AZURE_AI_ML_IMPORTED=False" in result.stdout, result.stdout + result.stderr


def test_bad_spec_exits_2_with_location_and_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: x\nmodel: phi-3-mini-4k-instruct\ndata: {train: t.jsonl}\nmethod:\n  lora: {r: 0}\n"
    )
    result = run_cli("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:5:10: method.lora.r: must be ≥ 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_file_is_reported_with_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: x\nmodel: phi-3-mini-4k-instruct\ndata:\n  train: missing.jsonl\n"
        "target: {kind: command, compute: gpu-a100}\n"
    )
    result = run_cli("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:4:3: data.train:" in result.stderr and "does not exist" in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\n")
    result = run_cli("validate", str(spec), env={"AZFINETUNE_DEBUG": "1"})
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_missing_spec_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
