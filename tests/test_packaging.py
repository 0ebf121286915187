"""The wheel carries what a job is built from (jobs/src, the components, the environments), so a pip-installed
azfinetune builds every kind of job outside a checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (
    "jobs/src/finetune/__main__.py",
    "jobs/components/finetune.yaml",
    "environments/finetune-gpu/Dockerfile",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """azfinetune built as a wheel from this checkout and installed into a folder of its own (no network)."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (out / "dist").glob("azfinetune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for relative in SHIPPED:
        assert f"azfinetune/_shipped/{relative}" in names, relative
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    target = out / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


PROBE = """
import json, sys
import azfinetune
from azfinetune import build_job, load_spec
out = {"package": azfinetune.__file__}
command = build_job(load_spec("phi3-mini-lora.yaml"))
out["code"] = str(command.code)
out["environment"] = str(command.environment.build.path)
pipeline = build_job(load_spec("pipeline-finetune-evaluate.yaml"))
out["steps"] = sorted(pipeline.jobs)
registry = build_job(load_spec("registry-chat-completion.yaml"))  # the shipped registry component specs
out["registry"] = registry.jobs["finetune"].component
out["serverless"] = type(build_job(load_spec("phi4-mini-serverless.yaml"))).__name__
from azfinetune.testing._rest_schema import JOB_API_VERSIONS, job_types  # the shipped REST schemas
out["job_types"] = job_types("2024-10-01-preview")
print(json.dumps(out))
"""


def test_an_installed_wheel_builds_jobs_outside_a_checkout(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "jobs" / "examples", work, ignore=shutil.ignore_patterns(".azfinetune"))
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=work,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    shipped = installed / "azfinetune" / "_shipped"
    assert Path(seen["package"]).is_relative_to(installed)
    assert Path(seen["code"]) == shipped / "jobs" / "src"
    assert Path(seen["environment"]) == shipped / "environments" / "finetune-gpu"
    assert seen["steps"] == ["evaluate", "finetune", "merge_adapter", "register", "validate_data"]
    assert seen["registry"].startswith("azureml://registries/azureml/components/chat_completion_pipeline/")
    assert seen["serverless"] == "CustomModelFineTuningJob"
    assert "FineTuning" in seen["job_types"]
