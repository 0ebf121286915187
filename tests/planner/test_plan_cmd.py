"""`azfinetune plan`: the tables, the verdict, --json, --set and --instance-type, and errors through the boundary."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from azfinetune.cli._app import Application, run_with_boundary
from azfinetune.cli.plan import plan
from tests.conftest import EXAMPLES


def _invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    app = Application(
        out=Console(highlight=False, soft_wrap=True, width=200, force_terminal=False),
        err=Console(stderr=True, highlight=False, soft_wrap=True, width=200, force_terminal=False),
    )
    result = runner.invoke(plan, list(args), obj=app)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_tables_verdict_time_and_alternatives() -> None:
    code, out, _err = _invoke(str(EXAMPLES / "phi3-mini-lora.yaml"), "--no-data")
    assert code == 0
    for text in (
        "Memory per GPU",
        "base weights (frozen)",
        "adapter weights",
        "fragmentation headroom",
        "✓ fits",
        "Time and cost",
        "Alternatives (technique × ZeRO × VM size)",
        "Standard_NC24ads_A100_v4",
        "qlora",
        "Recommendations",
    ):
        assert text in out, text


def test_json_is_the_plan_dict() -> None:
    code, out, _err = _invoke(str(EXAMPLES / "phi3-medium-dora-zero3.yaml"), "--json", "--no-data")
    assert code == 0
    data = json.loads(out)
    assert data["technique"] == "dora" and data["zero"] == "ZeRO-3" and data["nodes"] == 2
    assert data["verdict"] == "fits"
    assert data["items"] and data["alternatives"]


def test_set_and_instance_type() -> None:
    code, out, _err = _invoke(
        str(EXAMPLES / "phi3-mini-lora.yaml"),
        "--set",
        "method.technique=full",
        "--set",
        "method.lora=null",
        "--instance-type",
        "Standard_NC4as_T4_v3",
        "--set",
        "training.precision=fp16",
        "--json",
        "--no-data",
    )
    assert code == 0
    data = json.loads(out)
    assert data["sku"] == "Standard_NC4as_T4_v3"
    assert data["fits"] is False
    assert any("does not fit" in line for line in data["recommendations"])


def test_does_not_fit_is_red_with_advice() -> None:
    code, out, _err = _invoke(
        str(EXAMPLES / "phi3-mini-lora.yaml"),
        "--instance-type",
        "Standard_NC4as_T4_v3",
        "--set",
        "training.precision=fp16",
        "--set",
        "training.per_device_batch_size=32",
        "--no-data",
    )
    assert code == 0  # planning succeeded; the verdict is in the output
    assert "✗ does not fit" in out
    assert "per_device_batch_size" in out


def test_errors_go_through_the_boundary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    @click.group()
    def group() -> None:
        """Test group."""

    group.add_command(plan)
    assert run_with_boundary(group, ["plan", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert (
        run_with_boundary(
            group, ["plan", str(EXAMPLES / "phi3-mini-lora.yaml"), "--instance-type", "Standard_Nope"]
        )
        == 2
    )
    assert "unknown VM size" in capsys.readouterr().err
