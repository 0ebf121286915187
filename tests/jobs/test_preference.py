"""The real entry point trains the tiny Phi-3 with TRL's DPOTrainer and ORPOTrainer on preference pairs (CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from azfinetune.data import validate_data
from tests.data._corpus import CASES
from tests.jobs.helpers import JOBS_SRC, EntryPointRun, contract_argv

Runner = Callable[..., EntryPointRun]


@pytest.fixture(scope="session")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from azfinetune.tiny_model import make_preference_dataset

    return make_preference_dataset(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", n=40, seed=0)


@pytest.fixture(scope="session")
def text_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from azfinetune.tiny_model import make_preference_dataset

    path = tmp_path_factory.mktemp("pairs") / "text-pairs.jsonl"
    return make_preference_dataset(path, n=24, seed=1, shape="text")


def _train_rows(run: EntryPointRun) -> list[dict[str, Any]]:
    return [line for line in run.progress if "loss" in line]


def _assert_preference_learned(run: EntryPointRun) -> None:
    """The loss falls and the reward margin (chosen minus rejected) rises between the first and last logged steps."""
    rows = _train_rows(run)
    assert len(rows) >= 4, run.explain()
    losses = [row["loss"] for row in rows]
    margins = [row["rewards_margins"] for row in rows]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, f"loss did not fall: {losses}"
    assert sum(margins[-2:]) / 2 > sum(margins[:2]) / 2, f"reward margin did not rise: {margins}"
    assert all("rewards_accuracies" in row for row in rows)


@pytest.fixture
def mlflow_metric(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, str], list[float]]:
    """mlflow_metric(output_dir, key): the history of one metric in the run the job logged to its local store."""
    # The job wrote a local file store (no MLFLOW_TRACKING_URI); MLflow 3 reads one only when allowed to.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return _mlflow_metric


def _mlflow_metric(output_dir: Path, key: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient((output_dir / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("azfinetune")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    return [metric.value for metric in client.get_metric_history(run.info.run_id, key)]


def _answer_logprob(model: Any, tokenizer: Any, prompt: list[dict[str, str]], answer: str) -> float:
    """log p(answer | prompt) under the chat template, as DPO scores it."""
    import torch

    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    picked = logprobs.gather(1, targets[:, None])[:, 0]
    return float(picked[len(head_ids) - 1 :].sum())


def _preference_gap(model: Any, tokenizer: Any, pairs: Path, n: int = 16) -> float:
    """Mean log p(chosen) - log p(rejected) over the first `n` pairs of the file."""
    gaps = []
    for line in pairs.read_text(encoding="utf-8").splitlines()[:n]:
        pair = json.loads(line)
        chosen = _answer_logprob(model, tokenizer, pair["prompt"], pair["chosen"][0]["content"])
        rejected = _answer_logprob(model, tokenizer, pair["prompt"], pair["rejected"][0]["content"])
        gaps.append(chosen - rejected)
    return sum(gaps) / len(gaps)


def _assert_adapter_loads_and_prefers(tiny_phi3: Path, adapter: Path, pairs: Path) -> None:
    """The saved adapter loads back onto the base with peft and prefers the chosen answers more than the base does."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_phi3).eval()
    before = _preference_gap(base, tokenizer, pairs)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_phi3), str(adapter)).eval()
    after = _preference_gap(tuned, tokenizer, pairs)
    assert after > before, f"log p(chosen) - log p(rejected): base {before:.3f}, tuned {after:.3f}"


@pytest.mark.training
def test_dpo_with_lora_trains_logs_rewards_and_its_adapter_loads_back(
    tiny_phi3: Path,
    pairs: Path,
    tmp_path: Path,
    run_finetune: Runner,
    mlflow_metric: Callable[[Path, str], list[float]],
) -> None:
    out = tmp_path / "adapter"
    argv = contract_argv(
        task="chat-completion",
        model=tiny_phi3,
        train_file=pairs,
        output_dir=out,
        max_steps=12,
        objective="dpo",
        beta=0.1,
        loss_type="sigmoid",
        reference="auto",
        mask_prompt=None,
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    _assert_preference_learned(run)
    assert "dpo reference policy: base model (adapter disabled)" in run.stderr

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == "dpo" and metrics["train_steps"] == 12
    assert metrics["reference_policy"] == "base model (adapter disabled)"
    assert metrics["final_rewards_margins"] > metrics["first_rewards_margins"]
    assert metrics["trainable_parameters"] < metrics["total_parameters"]  # no second copy is trained or saved
    # What the MLflow callback logged, step by step, to the run's store.
    margins = mlflow_metric(out, "rewards/margins")
    assert len(margins) == len(_train_rows(run)) and margins[-1] > margins[0]
    assert mlflow_metric(out, "rewards/accuracies")
    assert (out / "adapter_config.json").is_file()
    _assert_adapter_loads_and_prefers(tiny_phi3, out, pairs)


@pytest.mark.training
def test_orpo_with_lora_trains_and_its_adapter_loads_back(
    tiny_phi3: Path,
    pairs: Path,
    tmp_path: Path,
    run_finetune: Runner,
    mlflow_metric: Callable[[Path, str], list[float]],
) -> None:
    out = tmp_path / "orpo"
    argv = contract_argv(
        task="chat-completion",
        model=tiny_phi3,
        train_file=pairs,
        output_dir=out,
        max_steps=12,
        objective="orpo",
        beta=0.1,
        mask_prompt=None,
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    _assert_preference_learned(run)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == "orpo" and metrics["reference_policy"] == "none"
    assert metrics["train_tokens"] > 0
    assert mlflow_metric(out, "rewards/margins")
    _assert_adapter_loads_and_prefers(tiny_phi3, out, pairs)


@pytest.mark.training
def test_dpo_full_fine_tuning_uses_a_frozen_copy_as_reference(
    tiny_phi3: Path, text_pairs: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    out = tmp_path / "full"
    argv = contract_argv(
        task="text-completion",
        model=tiny_phi3,
        train_file=text_pairs,
        validation_file=text_pairs,
        output_dir=out,
        technique="full",
        learning_rate=1e-3,
        max_steps=8,
        objective="dpo",
        mask_prompt=None,
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reference_policy"] == "frozen copy of the model"
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    assert "eval_rewards_margins" in metrics and "eval_rewards_accuracies" in metrics
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"objective": "dpo", "packing": True}, "--packing", id="dpo-packing"),
        pytest.param({"objective": "orpo", "loss_type": "ipo"}, "--loss-type", id="orpo-loss-type"),
        pytest.param({"beta": 0.2}, "only used by --objective dpo or orpo", id="beta-with-sft"),
        pytest.param(
            {"objective": "dpo", "task": "text-classification"}, "not text-classification", id="task"
        ),
    ],
)
def test_objective_flags_are_checked_before_anything_loads(
    extra: dict[str, Any], message: str, tmp_path: Path, pairs: Path
) -> None:
    from finetune.args import parse_args
    from finetune.errors import UsageError

    values = {"task": "chat-completion", **extra}
    argv = contract_argv(
        model=tmp_path, train_file=pairs, output_dir=tmp_path / "o", mask_prompt=None, **values
    )
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


PREFERENCE_REFUSED = [c for c in CASES if c.task == "preference" and c.severity == "error"]


@pytest.mark.parametrize("case", PREFERENCE_REFUSED, ids=[c.id for c in PREFERENCE_REFUSED])
def test_dpo_exits_2_on_the_lines_the_validator_reports(case: Any, tmp_path: Path) -> None:
    """`python -m finetune --objective dpo` refuses the pairs `data validate --task preference` refuses, same lines."""
    path = tmp_path / case.name
    path.write_bytes(case.content)
    report = validate_data(path, task="preference")
    assert not report.ok
    argv = ["--task", "chat-completion", "--objective", "dpo", "--model", str(tmp_path)]
    argv += ["--train-file", str(path), "--output-dir", str(tmp_path / "o")]
    run = subprocess.run(
        [sys.executable, "-m", "finetune", *argv],
        cwd=JOBS_SRC,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    for issue in report.errors[:10]:
        assert str(issue) in run.stderr


def _step(module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=JOBS_SRC,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_validate_step_reads_pairs_with_the_objective(pairs: Path, tmp_path: Path) -> None:
    """The pipeline's validate step checks preference pairs under --objective dpo, and refuses them as chat data."""
    argv = ["--task", "chat-completion", "--train-file", str(pairs), "--report-dir", str(tmp_path / "r")]
    run = _step("validate_data", [*argv, "--objective", "dpo"])
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert (
        report["files"]["train"]["task"] == "preference" and report["files"]["train"]["valid_examples"] == 40
    )
    assert _step("validate_data", argv).returncode == 2  # the same file read as sft chat data


@pytest.mark.training
def test_the_evaluate_step_scores_preference_pairs(tiny_phi3: Path, pairs: Path, tmp_path: Path) -> None:
    run = _step(
        "evaluate_model",
        [
            "--task",
            "chat-completion",
            "--objective",
            "dpo",
            "--model",
            str(tiny_phi3),
            "--data-file",
            str(pairs),
            "--metrics-dir",
            str(tmp_path / "m"),
            "--max-seq-length",
            "64",
        ],
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["objective"] == "dpo" and metrics["examples"] == 40
    assert 0.0 <= metrics["preference_accuracy"] <= 1.0
    assert metrics["eval_loss"] > 0 and metrics["perplexity"] > 1 and "logprob_margin" in metrics
