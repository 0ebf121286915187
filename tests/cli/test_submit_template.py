"""`azfinetune submit jobs/pipelines/finetune-evaluate-register.yaml --set inputs.x=...`: the template, once."""

from __future__ import annotations

from collections.abc import Callable

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult
from tests.conftest import ROOT

TEMPLATE = str(ROOT / "jobs" / "pipelines" / "finetune-evaluate-register.yaml")


def test_template_submits_once_with_overrides(run_cli: Callable[..., CliResult], ws: FakeWorkspace) -> None:
    ws.computes["gpu-a100"] = "Standard_NC24ads_A100_v4"
    first = run_cli("submit", TEMPLATE, "--set", "inputs.epochs=2", "--json")
    assert first.code == 0, first.text
    jobs = [name for name in ws.jobs if name.startswith("finetune-evaluate-register-")]
    assert len(jobs) == 1
    body = ws.jobs[jobs[0]]["properties"]
    assert body["jobType"] == "Pipeline"
    assert body["inputs"]["epochs"]["value"] == "2"
    puts = ws.count("PUT", "/jobs/")
    again = run_cli("submit", TEMPLATE, "--set", "inputs.epochs=2", "--json")
    assert again.code == 0, again.text
    assert ws.count("PUT", "/jobs/") == puts  # same content: the existing job is returned
    other = run_cli("submit", TEMPLATE, "--set", "inputs.epochs=3", "--json")
    assert other.code == 0 and len([n for n in ws.jobs if n.startswith("finetune-evaluate-register-")]) == 2


def test_template_with_a_bad_override_is_a_user_error(
    run_cli: Callable[..., CliResult], ws: FakeWorkspace
) -> None:
    result = run_cli("submit", TEMPLATE, "--set", "inputs.no_such_input=1")
    assert result.code in (0, 2)  # azure-ai-ml accepts unknown pipeline inputs; a bad key path must not crash
    broken = run_cli("submit", TEMPLATE, "--set", "settings.force_rerun=maybe")
    assert broken.code == 2, broken.text
    assert "Traceback" not in broken.err
