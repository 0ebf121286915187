"""The pipeline's components run end to end on this machine, through the command lines their YAMLs declare.

validate_data -> finetune -> merge_adapter -> evaluate -> register (decision only: no Azure here), on a tiny
random Phi-3. Each step's `command:` is taken from jobs/components/<step>.yaml and ${{inputs.x}} /
${{outputs.y}} / $[[optional]] are substituted the way Azure ML does, then run with bash in jobs/src.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "jobs" / "components"
JOB_CODE = ROOT / "jobs" / "src"
_INPUT = re.compile(r"\$\{\{inputs\.([A-Za-z_][A-Za-z0-9_]*)\}\}")
_OUTPUT = re.compile(r"\$\{\{outputs\.([A-Za-z_][A-Za-z0-9_]*)\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)

# find_spec, not importorskip: importing torch/peft at collection would cost every test session seconds.
needs_training_stack = pytest.mark.skipif(
    any(
        importlib.util.find_spec(name) is None for name in ("torch", "transformers", "peft", "trl", "mlflow")
    ),
    reason="needs the `train` extra (torch, transformers, peft, trl, mlflow)",
)


@pytest.fixture
def job_code() -> Any:
    """jobs/src importable in this process, for the steps' pure functions."""
    sys.path.insert(0, str(JOB_CODE))
    yield JOB_CODE
    sys.path.remove(str(JOB_CODE))


def component(step: str) -> dict[str, Any]:
    return yaml.safe_load((COMPONENTS / f"{step}.yaml").read_text())  # type: ignore[no-any-return]


def _check_value(step: str, name: str, declared: dict[str, Any], value: Any) -> None:
    kind = declared.get("type", "string")
    if "enum" in declared:
        assert str(value) in [str(v) for v in declared["enum"]], f"{step}.{name}: {value!r} not in enum"
    if kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{step}.{name}: not an integer"
    elif kind == "number":
        assert isinstance(value, int | float), f"{step}.{name}: not a number"
    elif kind in ("uri_file", "uri_folder", "mlflow_model", "custom_model"):
        path = Path(value)
        assert path.exists(), f"{step}.{name}: {path} does not exist"
        if kind == "uri_file":
            assert path.is_file(), f"{step}.{name}: {path} is not a file"
        if kind in ("uri_folder", "mlflow_model"):
            assert path.is_dir(), f"{step}.{name}: {path} is not a folder"


def render_command(step: str, inputs: dict[str, Any], outputs: dict[str, Path]) -> str:
    """The component's command with inputs/outputs substituted as Azure ML does (defaults for unset inputs,
    $[[...]] kept only when every input inside it is given)."""
    spec = component(step)
    declared: dict[str, dict[str, Any]] = spec["inputs"]
    unknown = set(inputs) - set(declared)
    assert not unknown, f"{step}: inputs not declared by the component: {unknown}"
    assert set(outputs) == set(spec["outputs"]), f"{step}: outputs {set(outputs)} != {set(spec['outputs'])}"
    values: dict[str, Any] = {}
    for name, decl in declared.items():
        if inputs.get(name) is not None:
            values[name] = inputs[name]
            _check_value(step, name, decl, inputs[name])
        elif "default" in decl:
            values[name] = decl["default"]
        else:
            assert decl.get("optional", False), f"{step}: required input {name} not given"

    def optional(match: re.Match[str]) -> str:
        names = _INPUT.findall(match.group(1))
        return match.group(1) if all(n in values for n in names) else ""

    command = _OPTIONAL.sub(optional, " ".join(str(spec["command"]).split()))
    command = _INPUT.sub(lambda m: str(values[m.group(1)]), command)
    return _OUTPUT.sub(lambda m: str(outputs[m.group(1)]), command)


def run_step(
    step: str,
    inputs: dict[str, Any],
    outputs: dict[str, Path],
    *,
    expect: int = 0,
    env_extra: dict[str, str] | None = None,
) -> str:
    command = render_command(step, inputs, outputs)
    env = dict(os.environ)
    env.update(env_extra or {})
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="2",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=JOB_CODE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    output = result.stdout + result.stderr
    assert result.returncode == expect, (
        f"{step} exited {result.returncode} ({elapsed:.1f}s):\n{command}\n{output[-4000:]}"
    )
    return output


@needs_training_stack
@pytest.mark.training
def test_pipeline_steps_end_to_end(tmp_path: Path) -> None:
    from azfinetune.tiny_model import make_chat_dataset, make_tiny_phi3

    model = make_tiny_phi3(tmp_path / "base")
    train = make_chat_dataset(tmp_path / "data" / "train.jsonl", n=32, seed=1)
    valid = make_chat_dataset(tmp_path / "data" / "valid.jsonl", n=8, seed=2)
    out = {
        name: tmp_path / "outputs" / name
        for name in ("report", "train_data", "adapter", "merged", "mlflow", "metrics", "decision")
    }

    run_step(
        "validate_data",
        {
            "task": "chat-completion",
            "train_file": str(train),
            "validation_file": str(valid),
            "max_seq_length": 128,
        },
        {"report": out["report"], "train_data": out["train_data"]},
    )
    report = json.loads((out["report"] / "report.json").read_text())
    assert report["ok"] and set(report["files"]) == {"train", "validation"}
    assert (out["train_data"] / "train.jsonl").read_bytes() == train.read_bytes()

    run_step(
        "finetune",
        {
            "task": "chat-completion",
            "model": str(model),
            "train_file": str(out["train_data"]),
            "validation_file": str(valid),
            "technique": "lora",
            "lora_r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "target_modules": "all-linear",
            "epochs": 1,
            "max_steps": 6,
            "learning_rate": 0.005,
            "lr_scheduler": "constant",
            "warmup_ratio": 0.0,
            "per_device_batch_size": 4,
            "gradient_accumulation_steps": 1,
            "max_seq_length": 128,
            "precision": "fp32",
            "gradient_checkpointing": "false",
            "extra_args": "--logging-steps 2",
        },
        {"adapter": out["adapter"]},
    )
    assert (out["adapter"] / "adapter_config.json").is_file()

    run_step(
        "merge_adapter",
        {
            "task": "chat-completion",
            "base_model": str(model),
            "adapter": str(out["adapter"]),
            "technique": "lora",
        },
        {"merged_model": out["merged"], "mlflow_model": out["mlflow"]},
    )
    assert (out["merged"] / "config.json").is_file() and not (out["merged"] / "adapter_config.json").exists()
    assert (out["mlflow"] / "MLmodel").is_file()

    run_step(
        "evaluate",
        {
            "task": "chat-completion",
            "model": str(out["merged"]),
            "data_file": str(valid),
            "max_seq_length": 128,
        },
        {"metrics": out["metrics"]},
    )
    metrics = json.loads((out["metrics"] / "metrics.json").read_text())
    assert metrics["split"] == "validation" and metrics["examples"] == 8
    assert metrics["eval_loss"] > 0 and metrics["perplexity"] == pytest.approx(
        2.718281828 ** metrics["eval_loss"], rel=1e-6
    )

    loose = json.dumps({"eval_loss": f"<= {metrics['eval_loss'] + 1:.4f}"})
    run_step(
        "register",
        {
            "metrics": str(out["metrics"]),
            "mlflow_model": str(out["mlflow"]),
            "model_name": "tiny-phi3",
            "min_eval": loose,
        },
        {"decision": out["decision"]},
    )
    decision = json.loads((out["decision"] / "decision.json").read_text())
    assert decision["passed"] is True and decision["registered"] is False and decision["mode"] == "none"

    strict = json.dumps({"eval_loss": "<= 0.0001", "perplexity": "< 1e9"})
    run_step(
        "register",
        {
            "metrics": str(out["metrics"]),
            "mlflow_model": str(out["mlflow"]),
            "model_name": "tiny-phi3",
            "min_eval": strict,
        },
        {"decision": out["decision"]},
    )
    decision = json.loads((out["decision"] / "decision.json").read_text())
    assert decision["passed"] is False and "eval_loss" in decision["reason"]
    assert [c["passed"] for c in decision["checks"]] == [False, True]


# -- the steps on their own (no model, fast) -----------------------------------------------------------


def test_validate_data_stops_the_pipeline_with_line_numbers(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
    ]
    lines += [json.dumps(good)] * 9
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(lines) + "\n")
    out = {"report": tmp_path / "report", "train_data": tmp_path / "train_data"}
    log = run_step("validate_data", {"task": "chat-completion", "train_file": str(train)}, out, expect=2)
    report = json.loads((out["report"] / "report.json").read_text())
    assert report["ok"] is False
    errors = report["files"]["train"]["errors"]
    assert [(e["code"], e["line"], e["file"]) for e in errors] == [
        ("invalid_json", 2, str(train)),
        ("no_assistant_message", 3, str(train)),
    ]
    assert "line 2" in log
    assert not (out["train_data"] / "train.jsonl").exists()  # nothing for the fine-tune step to start on


def test_validate_data_takes_the_columns_and_formats_the_trainer_takes(tmp_path: Path) -> None:
    """A TSV with a BOM, columns given comma-separated as the component passes them: the same verdict as
    azfinetune's validator, and the training file handed on."""
    from azfinetune.data import validate_data

    train = tmp_path / "train.tsv"
    rows = "".join(f"review {i}\t{['good', 'bad'][i % 2]}\n" for i in range(12))
    train.write_bytes(b"\xef\xbb\xbf" + f"review\tstars\n{rows}".encode())
    valid = tmp_path / "valid.tsv"
    valid.write_text("review\tstars\nfine\tgood\n\tbad\n")
    out = {"report": tmp_path / "report", "train_data": tmp_path / "train_data"}
    inputs = {
        "task": "text-classification",
        "train_file": str(train),
        "validation_file": str(valid),
        "columns": "text=review,label=stars",
    }
    run_step("validate_data", inputs, out, expect=2)
    report = json.loads((out["report"] / "report.json").read_text())
    assert report["columns"] == {"text": "review", "label": "stars"}
    assert report["files"]["train"]["ok"] and report["files"]["train"]["examples"] == 12
    host = validate_data(valid, task="text-classification", columns=report["columns"])
    job = report["files"]["validation"]
    assert (
        (job["ok"], job["error_counts"])
        == (host.ok, host.error_counts)
        == (False, {"empty_field": 1, "too_few_labels": 1})
    )
    assert [e.get("line") for e in job["errors"]] == [i.line for i in host.errors]


def test_register_decides_on_thresholds(job_code: Path) -> None:
    from register.cli import UsageError, decide, parse_thresholds  # type: ignore[import-not-found]

    thresholds = parse_thresholds('{"eval_loss": "<= 1.2", "accuracy": ">= 0.8", "f1": "> 0.5"}')
    assert thresholds["eval_loss"] == ("<=", 1.2)
    passed, checks = decide({"eval_loss": 1.2, "accuracy": 0.9, "f1": 0.51}, thresholds)
    assert passed and all(c["passed"] for c in checks)
    passed, checks = decide({"eval_loss": 1.3, "accuracy": 0.9}, thresholds)
    assert not passed
    assert {c["metric"]: c["passed"] for c in checks} == {"accuracy": True, "eval_loss": False, "f1": False}
    assert decide({"eval_loss": 5.0}, {}) == (True, [])
    for bad in ('{"eval_loss": "about 1"}', "[1]", "{oops"):
        with pytest.raises(UsageError):
            parse_thresholds(bad)


def test_register_without_a_gate_passes_and_only_decides_locally(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "metrics.json").write_text(json.dumps({"eval_loss": 0.7}))
    mlflow_model = tmp_path / "mlflow"
    mlflow_model.mkdir()
    run_step(
        "register",
        {
            "metrics": str(metrics),
            "mlflow_model": str(mlflow_model),
            "model_name": "m",
            "description": "fine",
        },
        {"decision": tmp_path / "decision"},
    )
    decision = json.loads((tmp_path / "decision" / "decision.json").read_text())
    assert decision == {
        "model_name": "m",
        "registered": False,
        "model_version": None,
        "passed": True,
        "checks": [],
        "mode": "none",
        "reason": "passed; not registered: no Azure ML workspace here (decision only)",
    }


def test_task_metrics(job_code: Path) -> None:
    from evaluate_model import metrics as m  # type: ignore[import-not-found]

    assert m.accuracy([1, 0, 1], [1, 1, 1]) == pytest.approx(2 / 3)
    assert m.f1_macro(["a", "b"], ["a", "b"]) == 1.0 and m.f1_macro(["a", "a"], ["a", "b"]) == pytest.approx(
        1 / 3
    )
    assert m.f1_tags(["B-LOC", "O", "O"], ["B-LOC", "O", "B-PER"]) == pytest.approx(2 / 3)
    assert m.exact_match("The Paris!", ["paris"]) == 1.0 and m.qa_f1(
        "in Paris city", ["Paris"]
    ) == pytest.approx(0.5)
    assert m.rouge_l("the cat sat", "the cat sat") == 1.0 and m.rouge1("a b", "c d") == 0.0
    assert m.bleu(["the cat is on the mat"], ["the cat is on the mat"]) == pytest.approx(1.0)
    assert 0.0 < m.bleu(["the cat sat on a mat"], ["the cat is on the mat"]) < 1.0
    assert m.bleu([""], ["x"]) == 0.0
