"""The local backend: same command line as the Azure ML job, run folders, bad input, Ctrl-C, and the quickstart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azfinetune.errors import LocalRunError, SpecError
from azfinetune.local import check_train_extra, prepare_local_run
from azfinetune.spec import load_spec
from azfinetune.targets import build_job
from tests.conftest import EXAMPLES, ROOT, checked


def _fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def local_spec(tmp_path: Path, chat_file: Path) -> Path:
    _fake_model(tmp_path / "model")
    (tmp_path / "valid.jsonl").write_text(chat_file.read_text())
    spec = tmp_path / "local.yaml"
    spec.write_text(
        "name: local-run\nmodel: ./model\ndata: {train: train.jsonl, validation: valid.jsonl}\n"
        "method: {deepspeed: {stage: 2}}\n"
        "training: {max_steps: 3, precision: fp32}\nregister: {model_name: local-model}\ntarget: {kind: local}\n"
    )
    return spec


def test_local_run_executes_the_command_of_the_built_job(local_spec: Path, tmp_path: Path) -> None:
    spec = load_spec(local_spec)
    job = build_job(spec)
    plan = prepare_local_run(spec, outputs_root=tmp_path / "outputs")
    values = {
        **{f"inputs.{k}": v for k, v in plan.inputs.items()},
        **{f"outputs.{k}": v for k, v in plan.outputs.items()},
    }
    expected = re.sub(r"\$\{\{(\w+\.\w+)\}\}", lambda m: values[m.group(1)], job.command).split()
    assert expected[:3] == ["python", "-m", "finetune"]
    assert plan.command == [sys.executable, *expected[1:]]
    assert set(plan.outputs) == {"adapter", "merged_model", "mlflow_model"}
    assert json.loads(Path(plan.inputs["deepspeed"]).read_text())["zero_optimization"]["stage"] == 2
    assert plan.cwd == ROOT / "jobs" / "src"
    assert plan.env["HF_HUB_OFFLINE"] == "1" and plan.env["MLFLOW_TRACKING_URI"].startswith("file://")


def test_runs_never_overwrite_each_other(local_spec: Path, tmp_path: Path) -> None:
    spec = load_spec(local_spec)
    first = prepare_local_run(spec, outputs_root=tmp_path / "outputs")
    second = prepare_local_run(spec, outputs_root=tmp_path / "outputs")
    assert first.run_dir != second.run_dir
    assert first.run_dir.parent == second.run_dir.parent == tmp_path / "outputs" / first.name


def test_output_folder_that_cannot_be_created(local_spec: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LocalRunError, match="cannot create the output folder"):
        prepare_local_run(load_spec(local_spec), outputs_root=blocker)


def test_missing_train_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    with pytest.raises(LocalRunError, match=r"missing: peft") as caught:
        check_train_extra()
    assert "azfinetune[train]" in str(caught.value)


def test_model_folder_that_does_not_exist(tmp_path: Path, chat_file: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nmodel: ./nowhere\ndata: {train: train.jsonl}\ntarget: {kind: local}\n")
    with pytest.raises(SpecError, match="no model at"):
        checked(spec)


def test_hf_model_not_in_cache_says_how_to_fetch_it(tmp_path: Path, chat_file: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: x\nmodel: hf:contoso/not-cached\ndata: {train: train.jsonl}\ntarget: {kind: local}\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "azfinetune", "run", str(spec), "--local"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert "huggingface-cli download contoso/not-cached" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_the_run_and_says_where_the_outputs_are(local_spec: Path, tmp_path: Path) -> None:
    # The training process is replaced by one that reports progress and then waits, so Ctrl-C is the only way out.
    script = tmp_path / "drive.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "import azfinetune.local as local\n"
        "from azfinetune.spec import load_spec\n"
        "real = local.prepare_local_run\n"
        "def fake(spec, **kw):\n"
        "    plan = real(spec, **kw)\n"
        "    plan.command = [sys.executable, '-c', "
        '"import time; print(\'AZFT_PROGRESS {\\"step\\": 1, \\"max_steps\\": 3}\', flush=True); time.sleep(60)"]\n'
        "    return plan\n"
        "local.prepare_local_run = fake\n"
        "from azfinetune.errors import RunInterrupted\n"
        "try:\n"
        f"    local.run_local(load_spec({str(local_spec)!r}), outputs_root=Path({str(tmp_path / 'out')!r}),\n"
        "                    on_progress=lambda p: print('progress', p, flush=True))\n"
        "except RunInterrupted as e:\n"
        "    print('STOPPED', e, flush=True); sys.exit(e.exit_code)\n"
    )
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("progress"), line
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "STOPPED stopped; the partial outputs and the log are in" in out
    assert str(tmp_path / "out") in out


@pytest.mark.training
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    """The README's main job: demo writes the tiny model, validates, plans, builds, trains, compares replies."""
    spec = tmp_path / "quickstart.yaml"
    shutil.copy(EXAMPLES / "quickstart.yaml", spec)
    text = spec.read_text().replace("../../quickstart/", "assets/")
    spec.write_text(text)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "azfinetune",
            "demo",
            "--spec",
            str(spec),
            "--outputs",
            str(tmp_path / "outputs"),
            "--set",
            "training.max_steps=30",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "2"},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    base = re.search(r"base model: (.*)", result.stdout)
    tuned = re.search(r"fine-tuned: (.*)", result.stdout)
    assert base and tuned and base.group(1) != tuned.group(1)
    # Its validate step says what its warnings are, and why its own data has them.
    assert re.search(r"data\.train: .* warnings \(duplicate_example ×\d+\)", result.stdout), result.stdout[
        :3000
    ]
    assert "repeat a few template conversations on purpose" in result.stdout
    runs = list((tmp_path / "outputs").glob("quickstart-*/*/"))
    assert len(runs) == 1
    assert (runs[0] / "loss.png").stat().st_size > 1000
    assert (runs[0] / "adapter" / "adapter_model.safetensors").is_file()
    report = subprocess.run(
        [sys.executable, "-m", "azfinetune", "report", str(runs[0])], capture_output=True, text=True, cwd=ROOT
    )
    assert report.returncode == 0, report.stderr
    assert "train loss" in report.stdout and "loss.png" in report.stdout
