"""Issue 18, the first hour of a new user: hints that reproduce what was run and name real flags, tables that fit
80 columns, a mistyped local run named as such, the demo's advice that works as printed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from azfinetune.cli import COMMANDS
from azfinetune.cli._hints import hint_flags
from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.client.conftest import Project

Run = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[2]


def _flags_of(command: click.Command) -> set[str]:
    return {name for param in command.params for name in [*param.opts, *param.secondary_opts]}


def _hint_lines(text: str) -> list[str]:
    """Every printed line that advises a command: `azfinetune <cmd> ...` after 'To ...:' or in a hint."""
    lines = []
    for line in text.splitlines():
        if "azfinetune " in line and ("To " in line or "hint" in line or "pass --" in line):
            lines.append(line)
    return lines


def _check_hint_flags(line: str, default: str) -> None:
    """Each flag a hint names exists on the command it advises (or on `default`, the command that printed it)."""
    words = line.split("azfinetune ", 1)[-1].split() if "azfinetune " in line else []
    name = words[0] if words and words[0] in COMMANDS else default
    allowed = _flags_of(COMMANDS[name])
    for flag in hint_flags(line):
        assert flag in allowed, f"{flag} is not an option of `azfinetune {name}`: {line!r}"


def test_dry_run_hint_repeats_every_flag_quoted(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    spec = project.spec("command", name="t-quoted")
    spec = spec.rename(spec.with_name("my spec.yaml"))  # a space: the hint must quote it
    args = [
        "submit",
        str(spec),
        "--set",
        "training.epochs=1",
        "--set",
        "training.learning_rate=1e-4",
        "--dry-run",
    ]
    result = run_cli(*args)
    assert result.code == 0, result.err
    (line,) = [line for line in result.out.splitlines() if line.startswith("To submit it:")]
    advised = shlex.split(line.split(":", 1)[1])
    assert advised == ["azfinetune", *[a for a in args if a != "--dry-run"]]
    _check_hint_flags(line, "submit")


def test_next_steps_keep_workspace_flags(project: Project, ws: FakeWorkspace, run_cli: Run) -> None:
    flags = [
        "--subscription",
        ws.subscription_id,
        "--resource-group",
        ws.resource_group,
        "--workspace",
        ws.workspace,
    ]
    result = run_cli("submit", str(project.spec("command")), *flags)
    assert result.code == 0, result.err
    hints = [line for line in result.out.splitlines() if line.startswith("To ")]
    assert len(hints) == 3
    for line in hints:
        words = shlex.split(line.split(":", 1)[1])
        assert words[-6:] == flags
        _check_hint_flags(line, "submit")


@pytest.mark.parametrize("command", [["report", "some-job"], ["deploy", "some-job", "--serverless"]])
def test_missing_workspace_hint_names_flags_the_command_has(
    command: list[str], project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary

    code = run_with_boundary(cli_package.cli, command)
    err = capsys.readouterr().err
    assert code == 2 and "no Azure ML workspace configured" in err
    assert "--subscription" in err
    for flag in hint_flags(err):
        assert flag in _flags_of(COMMANDS[command[0]]), flag


def test_report_of_a_mistyped_local_run_lists_the_nearest(project: Project, run_cli: Run) -> None:
    run = project.root / "outputs" / "quickstart" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "command.json").write_text("{}")
    result = run_cli("report", "outputs/quickstart/20260101-00000")
    assert result.code == 2
    assert "no local run at outputs/quickstart/20260101-00000" in result.err
    assert "outputs/quickstart/20260101-000000" in result.err
    assert "workspace" not in result.err
    nothing = run_cli("report", "outputs/nope")
    assert nothing.code == 2 and "no local run at outputs/nope" in nothing.err


def _plan(width: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(width), "AZFINETUNE_DEBUG": "0"}
    return subprocess.run(
        [sys.executable, "-m", "azfinetune", "plan", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize("width", [80, 200])
def test_plan_fits_the_terminal_and_cuts_no_value(width: int) -> None:
    spec = ROOT / "jobs" / "examples" / "phi3-mini-lora.yaml"
    result = _plan(width, str(spec), "--no-data")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout  # rich's ellipsis: a cut value
    table_lines = [line for line in result.stdout.splitlines() if set(line) & set("│┃━─")]
    assert table_lines and all(len(line) <= width for line in table_lines)
    assert "Standard_NC24ads_A100_v4" in result.stdout  # the VM size whole, never `Standar…`


def test_demo_next_advice_works_as_printed(tmp_path: Path) -> None:
    """The command the demo's "Next:" prints plans the quickstart spec as an Azure ML job (after the demo's data)."""
    from azfinetune.quickstart import next_command
    from azfinetune.tiny_model import make_chat_dataset

    examples = tmp_path / "jobs" / "examples"
    examples.mkdir(parents=True)
    spec = examples / "quickstart.yaml"
    spec.write_text((ROOT / "jobs" / "examples" / "quickstart.yaml").read_text())
    data = tmp_path / "quickstart" / "data"
    data.mkdir(parents=True)
    make_chat_dataset(data / "train.jsonl", n=24, seed=0)
    make_chat_dataset(data / "valid.jsonl", n=8, seed=1)
    words = next_command(spec)
    assert words[:2] == ["azfinetune", "plan"]
    for flag in hint_flags(shlex.join(words)):
        assert flag in _flags_of(COMMANDS["plan"])
    result = _plan(200, *words[2:])
    assert result.returncode == 0, result.stderr
    assert "fits" in result.stdout


@pytest.mark.parametrize("name", ["status", "list", "logs", "cancel", "report", "deploy"])
def test_job_commands_help_does_not_mention_a_spec(name: str) -> None:
    from click.testing import CliRunner

    import azfinetune.cli as cli_package

    result = CliRunner().invoke(cli_package.cli, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "else the spec" not in result.output
    assert "AZURE_SUBSCRIPTION_ID" in result.output


def test_setup_venv_prints_one_line_per_phase_with_seconds(tmp_path: Path) -> None:
    """scripts/setup-venv.sh is never silent: each phase starts and ends with a line (pip itself is faked here)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    python.chmod(0o755)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "azure_ai_ml-1.27.1-py3-none-any.whl").write_text("")
    env = {**os.environ, "VENV": str(venv), "AZFT_WHEEL_CACHE": str(wheels)}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup-venv.sh"), "dev,train"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "setup-venv: upgrading pip…" in lines
    assert any(
        line.startswith("setup-venv: upgrading pip: done in ") and line.endswith(" s") for line in lines
    )
    assert any("installing azfinetune[dev,train] (editable)" in line and "done in" in line for line in lines)
    assert lines[-1].startswith("setup-venv: ready in ")
    assert "-e .[dev,train]" in calls.read_text()


CHAIN = "\n".join(
    [
        "DefaultAzureCredential failed to retrieve a token from the included credentials.",
        "Attempted credentials:",
    ]
    + [
        f"\tCredential{i}: not available (EnvironmentCredential, ManagedIdentityCredential, ...)"
        for i in range(11)
    ]
)


@pytest.mark.parametrize("debug", [False, True])
def test_no_login_prints_one_short_message_and_exits_2(
    debug: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.identity import CredentialUnavailableError

    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary
    from azfinetune.cli.jobs import WorkspaceFlags

    def no_credential(self: WorkspaceFlags, spec: object = None) -> object:
        raise CredentialUnavailableError(message=CHAIN)

    monkeypatch.setattr(WorkspaceFlags, "client", no_credential)
    monkeypatch.delenv("AZFINETUNE_DEBUG", raising=False)
    args = ["status", "job-1", "--subscription", "s", "--resource-group", "rg", "--workspace", "ws"]
    code = run_with_boundary(cli_package.cli, ["--debug", *args] if debug else args)
    err = capsys.readouterr().err
    assert code == 2
    first = err.strip().splitlines()[0]
    assert first.startswith("error: no usable Azure credential") and "az login" in first
    assert "AZURE_CLIENT_SECRET" in first and "--debug" in first
    assert ("Attempted credentials" in err) is debug
    assert err.count("DefaultAzureCredential failed") == (1 if debug else 0)


def test_set_technique_full_drops_the_lora_settings_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.spec import load_spec

    spec = ROOT / "jobs" / "examples" / "phi3-mini-lora.yaml"
    loaded = load_spec(spec, overrides=["method.technique=full"])
    assert loaded.method.technique.value == "full" and loaded.method.lora is None
    assert "method.lora no longer applies" in capsys.readouterr().err
    kept = load_spec(spec, overrides=["method.technique=lora"])
    assert kept.method.lora is not None


def test_unknown_model_is_described_from_the_command_line(tmp_path: Path) -> None:
    spec = ROOT / "jobs" / "examples" / "registry-question-answering.yaml"
    # The shipped example plans offline: its model_shape gives distilbert's config.json numbers.
    shipped = _plan(200, str(spec), "--no-data")
    assert shipped.returncode == 0, shipped.stderr
    assert "66,362,880" in shipped.stdout
    failed = _plan(200, str(spec), "--no-data", "--set", "model_shape=null")
    assert failed.returncode == 2
    assert "model_shape=" not in failed.stderr and "--model-config" in failed.stderr
    assert "model_shape" in failed.stderr  # the spec key is named too
    for flag in hint_flags(failed.stderr):
        assert flag in _flags_of(COMMANDS["plan"]), flag
    config = tmp_path / "config.json"
    config.write_text(
        '{"model_type": "llama", "hidden_size": 768, "num_hidden_layers": 6, "num_attention_heads": 12, '
        '"intermediate_size": 3072, "vocab_size": 30522}'
    )
    planned = _plan(200, str(spec), "--no-data", "--set", "model_shape=null", "--model-config", str(config))
    assert planned.returncode == 0, planned.stderr
    assert "Memory per GPU" in planned.stdout
    # The same file named by the spec (relative to it), and a model_shape the planner cannot read: key and line.
    by_spec = _plan(200, str(spec), "--no-data", "--set", f"model_shape={config}")
    assert by_spec.returncode == 0, by_spec.stderr
    broken = _plan(200, str(spec), "--no-data", "--set", "model_shape={model_type: distilbert}")
    assert broken.returncode == 2 and "model_shape" in broken.stderr and "Traceback" not in broken.stderr


def test_data_validate_json_does_not_point_above(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from azfinetune.cli.data_cmd import data
    from azfinetune.errors import DataError

    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    result = CliRunner().invoke(
        data, ["validate", str(path), "-t", "chat-completion", "--serverless", "--json"], terminal_width=80
    )
    assert isinstance(result.exception, DataError)
    assert "listed above" not in str(result.exception)
    assert json.loads(result.output)["ok"] is False


def test_local_plan_says_whether_it_fits_this_machine(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"model_type": "phi3", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
        '"intermediate_size": 128, "vocab_size": 512}'
    )
    (tmp_path / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    spec = tmp_path / "local.yaml"
    spec.write_text(
        "name: lp\ntask: chat-completion\nmodel: ./model\ndata:\n  train: train.jsonl\n"
        "method:\n  technique: lora\ntarget:\n  kind: local\n"
    )
    result = _plan(80, str(spec))
    assert result.returncode == 0, result.stderr
    assert "fit unknown" not in result.stdout and "fits this machine's RAM" in result.stdout
    assert " 0.0 GiB" not in result.stdout
