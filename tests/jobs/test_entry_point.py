"""The real entry point (`python -m finetune`, cwd jobs/src) trains a tiny Phi-3 on CPU with LoRA, DoRA and full."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.helpers import HAS_CUDA, EntryPointRun, contract_argv

pytestmark = pytest.mark.training

Runner = Callable[..., EntryPointRun]


def _losses(run: EntryPointRun) -> list[float]:
    return [line["loss"] for line in run.progress if "loss" in line]


def _assert_learned(run: EntryPointRun, drop: float) -> None:
    losses = _losses(run)
    assert len(losses) >= 4, run.explain()
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first - drop, f"loss did not decrease enough: {losses}"


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    prompt = [{"role": "user", "content": "What color is a banana?"}]
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def _base(tiny_phi3: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_phi3), AutoTokenizer.from_pretrained(tiny_phi3)


def _check_adapter_changes_model(tiny_phi3: Path, adapter_dir: Path) -> Any:
    import torch
    from peft import PeftModel

    base, tokenizer = _base(tiny_phi3)
    before = _logits(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, str(adapter_dir))
    after = _logits(tuned, tokenizer)
    assert not torch.allclose(before, after, atol=1e-4), "the adapter does not change the model's output"
    return after


def test_lora_trains_saves_merges_and_exports(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out, merged, mlflow_dir = tmp_path / "adapter", tmp_path / "merged", tmp_path / "mlflow"
    argv = contract_argv(
        task="chat-completion",
        model=tiny_phi3,
        train_file=chat_data,
        output_dir=out,
        validation_file=chat_data,
        eval_steps=8,
        mask_prompt="true",
        merged_output_dir=merged,
        mlflow_model_dir=mlflow_dir,
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    _assert_learned(run, drop=0.5)

    # Progress lines a parent process can follow: steps go up, train lines carry tokens/s.
    steps = [line["step"] for line in run.progress if "loss" in line]
    assert steps == sorted(steps) and steps[-1] == 16
    assert all(line["tokens_per_second"] > 0 for line in run.progress if "loss" in line)
    assert any("eval_loss" in line for line in run.progress)
    assert run.done is not None and run.done["train_steps"] == 16
    if not HAS_CUDA:
        assert run.done["precision"] == "fp32" and "not available on CPU" in run.stderr

    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "train_loss",
        "eval_loss",
        "train_runtime",
        "train_tokens",
        "tokens_per_second",
        "peak_memory_mb",
    ):
        assert metrics[key] > 0, key
    history = metrics["loss_history"]
    assert history[0]["step"] == 1 and "loss" in history[0]
    assert any("eval_loss" in entry for entry in history)
    assert (out / "mlruns").is_dir(), "no MLFLOW_TRACKING_URI: metrics go to a local file store"

    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    tuned_logits = _check_adapter_changes_model(tiny_phi3, out)

    merged_model = AutoModelForCausalLM.from_pretrained(merged)
    _, tokenizer = _base(tiny_phi3)
    # Merged on the CPU in fp32 here; a CUDA run merges into a bf16 base, which rounds the logits.
    assert torch.allclose(
        _logits(merged_model.float(), tokenizer), tuned_logits, atol=0.1 if HAS_CUDA else 1e-4
    )

    mlmodel = (mlflow_dir / "MLmodel").read_text()
    assert "transformers" in mlmodel and "text-generation" in mlmodel
    assert any(p.suffix == ".safetensors" for p in mlflow_dir.rglob("*")), (
        "the MLflow model holds the weights"
    )


def test_dora_trains_and_saves_a_dora_adapter(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    out = tmp_path / "dora"
    run = run_finetune(
        contract_argv(
            task="chat-completion", model=tiny_phi3, train_file=chat_data, output_dir=out, technique="dora"
        )
    )
    assert run.returncode == 0, run.explain()
    _assert_learned(run, drop=0.5)
    assert json.loads((out / "adapter_config.json").read_text())["use_dora"] is True
    _check_adapter_changes_model(tiny_phi3, out)


def test_full_fine_tuning_saves_the_whole_model(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "full"
    run = run_finetune(
        contract_argv(
            task="chat-completion",
            model=tiny_phi3,
            train_file=chat_data,
            output_dir=out,
            technique="full",
            learning_rate=3e-3,
            max_steps=12,
        )
    )
    assert run.returncode == 0, run.explain()
    _assert_learned(run, drop=1.0)
    assert not (out / "adapter_config.json").exists()
    base, tokenizer = _base(tiny_phi3)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    assert not torch.allclose(_logits(base, tokenizer), _logits(tuned, tokenizer), atol=1e-4)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_parameters"] == metrics["total_parameters"]


def test_text_classification_with_lora(tiny_phi3: Path, tmp_path: Path, run_finetune: Runner) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from azfinetune.tiny_model import make_classification_dataset

    data = make_classification_dataset(tmp_path / "sentiment.jsonl", n=40)
    out = tmp_path / "cls"
    argv = contract_argv(
        task="text-classification",
        model=tiny_phi3,
        train_file=data,
        validation_file=data,
        output_dir=out,
        learning_rate=1e-2,
        max_steps=12,
        column=["text=text", "label=label"],
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    assert json.loads((out / "labels.json").read_text()) == ["negative", "positive"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and metrics["eval_loss"] > 0
    labels = {
        "num_labels": 2,
        "id2label": {0: "negative", 1: "positive"},
        "label2id": {"negative": 0, "positive": 1},
    }
    base = AutoModelForSequenceClassification.from_pretrained(tiny_phi3, **labels)
    tuned = PeftModel.from_pretrained(base, str(out))
    ids = torch.tensor([[5, 6, 7, 8]])
    assert tuned(input_ids=ids).logits.shape == (1, 2)


def test_token_classification_with_lora(tiny_phi3: Path, tmp_path: Path, run_finetune: Runner) -> None:
    from azfinetune.tiny_model import make_token_classification_dataset

    data = make_token_classification_dataset(tmp_path / "ner.jsonl", n=24)
    out = tmp_path / "ner"
    argv = contract_argv(
        task="token-classification",
        model=tiny_phi3,
        train_file=data,
        output_dir=out,
        learning_rate=1e-2,
        max_steps=6,
        column="tags=tags",
    )
    run = run_finetune(argv)
    assert run.returncode == 0, run.explain()
    assert json.loads((out / "labels.json").read_text()) == ["FRUIT", "O"]
    assert (out / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.parametrize("task", ["question-answering", "summarization", "translation"])
def test_registry_only_tasks_exit_2(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner, task: str
) -> None:
    run = run_finetune(
        contract_argv(task=task, model=tiny_phi3, train_file=chat_data, output_dir=tmp_path / "o")
    )
    assert run.returncode == 2, run.explain()
    assert "not supported by this entry point — use target.kind: registry-pipeline" in run.stderr
    assert run.error is not None and run.error["exit_code"] == 2


def test_bad_data_exits_2_before_loading_the_model(
    tiny_phi3: Path, tmp_path: Path, run_finetune: Runner
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    run = run_finetune(
        contract_argv(task="chat-completion", model=tiny_phi3, train_file=data, output_dir=tmp_path / "o")
    )
    assert run.returncode == 2, run.explain()
    assert f"{data}:1: messages: no assistant message" in run.stderr
