"""`run --local` of a pipeline spec: every step of the Azure ML pipeline job, with its command lines, in order."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pytest

from azfinetune.cli import cli
from azfinetune.cli._app import run_with_boundary
from azfinetune.errors import BuildError, JobFailedError, LocalRunError
from azfinetune.local_pipeline import prepare_local_pipeline, resolve_command, run_local_pipeline
from azfinetune.spec import load_spec
from azfinetune.targets.pipeline import build_pipeline_job

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STEPS = ["validate_data", "finetune", "merge_adapter", "evaluate", "register"]


@pytest.fixture
def hf_tiny(tiny_phi3: Path, _subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny Phi-3 as `hf:azft-tests/tiny-phi3` in a Hugging Face cache, the test's environment pointing at it:
    a pipeline spec names a model Azure ML can load (a local folder is for target.kind local only)."""
    for key, value in _subprocess_env.items():
        monkeypatch.setenv(key, value)
    repo = Path(_subprocess_env["HF_HOME"]) / "hub" / "models--azft-tests--tiny-phi3"
    if not repo.is_dir():
        shutil.copytree(tiny_phi3, repo / "snapshots" / ("0" * 40))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
    return "hf:azft-tests/tiny-phi3"


def _pipeline_spec(folder: Path, model: str, data: Path, *, min_eval: str = "<= 1000") -> Path:
    spec = folder / "pipeline.yaml"
    spec.write_text(
        f"""name: tiny-pipeline
task: chat-completion
model: {model}
data: {{train: {data}, validation: {data}}}
method: {{technique: lora, lora: {{r: 4, alpha: 8, dropout: 0.0, target_modules: all-linear}}}}
training:
  max_steps: 2
  per_device_batch_size: 4
  max_seq_length: 64
  precision: fp32
  gradient_checkpointing: false
  logging_steps: 1
target: {{kind: pipeline, compute: cpu-cluster}}
register:
  model_name: tiny-pipeline-model
  description: "the tiny model's pipeline, run here"
  min_eval: {{eval_loss: "{min_eval}"}}
""",
        encoding="utf-8",
    )
    return spec


def test_optional_blocks_defaults_and_quoting() -> None:
    template = (
        "python -m evaluate_model --model ${{inputs.model}} $[[--column '${{inputs.columns}}']] "
        "$[[--test-file ${{inputs.test}}]] --batch ${{inputs.batch}} --out ${{outputs.metrics}}"
    )
    line = resolve_command(
        template,
        {"model": "/a b/model", "columns": "text=review", "test": None, "batch": "4"},
        {"metrics": "/runs/x/metrics"},
        quoted=frozenset({"model", "test"}),
    )
    assert shlex.split(line) == [
        "python", "-m", "evaluate_model", "--model", "/a b/model", "--column", "text=review",
        "--batch", "4", "--out", "/runs/x/metrics",
    ]  # fmt: skip
    with pytest.raises(BuildError, match=r"inputs\.batch"):
        resolve_command(
            template, {"model": "m", "columns": None, "test": None, "batch": None}, {}, quoted=frozenset()
        )


def test_the_steps_are_the_pipeline_jobs_nodes_wired_to_local_folders(
    tmp_path: Path, hf_tiny: str, chat_data: Path
) -> None:
    spec = load_spec(_pipeline_spec(tmp_path, hf_tiny, chat_data))
    plan = prepare_local_pipeline(spec, outputs_root=tmp_path / "outputs")
    assert [step.name for step in plan.steps] == list(build_pipeline_job(spec).jobs) == STEPS
    steps = {step.name: step for step in plan.steps}

    def flag(step: str, name: str) -> str:
        command = steps[step].command
        return command[command.index(name) + 1]

    assert flag("validate_data", "--train-file") == str(chat_data.resolve())
    # The fine-tune step reads what the validate step wrote, as in the Azure ML pipeline.
    assert flag("finetune", "--train-file") == steps["validate_data"].outputs["train_data"]
    assert flag("finetune", "--model") == flag("merge_adapter", "--base-model") == plan.inputs["model"]
    assert flag("merge_adapter", "--adapter") == plan.outputs["adapter"] == str(plan.run_dir / "adapter")
    assert flag("evaluate", "--model") == plan.outputs["merged_model"]
    assert flag("evaluate", "--max-examples") == "0"  # the component's default, as Azure ML fills it in
    assert json.loads(flag("register", "--min-eval")) == {"eval_loss": "<= 1000"}
    assert flag("register", "--mlflow-model") == plan.outputs["mlflow_model"]
    assert steps["register"].after == ["evaluate", "merge_adapter"]
    assert all(step.cwd == Path(__file__).resolve().parents[2] / "jobs" / "src" for step in plan.steps)


def test_a_pipeline_spec_runs_every_step_and_honours_min_eval(
    tmp_path: Path,
    hf_tiny: str,
    chat_data: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    spec = _pipeline_spec(tmp_path, hf_tiny, chat_data, min_eval="<= 0.001")
    code = run_with_boundary(cli, ["run", str(spec), "--local", "--outputs", str(tmp_path / "outputs")])
    output = capsys.readouterr().out
    assert code == 0, output
    for step in STEPS:
        assert f"✓ {step} completed" in output
    assert "evaluation did not pass: eval_loss <= 0.001" in output
    run_dir = next((tmp_path / "outputs").glob("*/*"))
    status = json.loads((run_dir / "pipeline.json").read_text())
    assert [s["name"] for s in status["steps"]] == STEPS and {s["status"] for s in status["steps"]} == {
        "completed"
    }
    decision = json.loads((run_dir / "decision" / "decision.json").read_text())
    evaluation = json.loads((run_dir / "metrics" / "metrics.json").read_text())
    assert decision["passed"] is False and decision["registered"] is False
    assert decision["checks"][0]["value"] == pytest.approx(evaluation["eval_loss"])
    assert (run_dir / "merged_model" / "config.json").is_file()
    assert (run_dir / "mlflow_model" / "MLmodel").is_file()
    assert run_with_boundary(cli, ["report", str(run_dir)]) == 0
    assert "loss" in capsys.readouterr().out


def test_a_failed_step_stops_the_pipeline_with_its_log(tmp_path: Path, hf_tiny: str, chat_data: Path) -> None:
    snapshot = Path(os.environ["HF_HOME"]) / "hub" / "models--azft-tests--broken" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text("{}")  # passes the host's check, not the fine-tune step's
    (snapshot.parents[1] / "refs").mkdir(exist_ok=True)
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    spec = load_spec(_pipeline_spec(tmp_path, "hf:azft-tests/broken", chat_data))
    with pytest.raises((JobFailedError, LocalRunError)) as caught:
        run_local_pipeline(spec, outputs_root=tmp_path / "outputs")
    assert "pipeline step finetune" in str(caught.value)
    assert "not run: merge_adapter, evaluate, register" in str(caught.value)
    run_dir = next((tmp_path / "outputs").glob("*/*"))
    assert str(run_dir / "logs" / "finetune.log") in (caught.value.hint or "")
    status = {s["name"]: s["status"] for s in json.loads((run_dir / "pipeline.json").read_text())["steps"]}
    assert status == {
        "validate_data": "completed",
        "finetune": "failed",
        "merge_adapter": "not run",
        "evaluate": "not run",
        "register": "not run",
    }
