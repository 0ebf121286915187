"""Where each value of a job comes from, for every kind: spec, model asset, component, azfinetune or service default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azfinetune.spec import spec_from_dict
from azfinetune.targets import build_job
from azfinetune.targets.provenance import value_sources


def chat(path: Path) -> Path:
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text((json.dumps(row) + "\n") * 12)
    return path


def make(tmp_path: Path, target: dict[str, Any], **sections: Any) -> Any:
    chat(tmp_path / "train.jsonl")
    chat(tmp_path / "valid.jsonl")
    data = {
        "name": "prov",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "train.jsonl", "validation": "valid.jsonl"},
        "target": target,
        "environment": "azureml:my-env:3",
    }
    data.update(sections)
    return spec_from_dict(data, base_dir=tmp_path)


COMMAND = {"kind": "command", "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}


def by_name(spec: Any) -> dict[str, Any]:
    return {item.name: item for item in value_sources(spec)}


def test_command_jobs_keep_azfinetune_defaults_and_say_so(tmp_path: Path) -> None:
    sources = by_name(make(tmp_path, COMMAND, training={"learning_rate": 1e-4}))
    assert (sources["--learning-rate"].value, sources["--learning-rate"].source) == (1e-4, "spec")
    assert (sources["--epochs"].value, sources["--epochs"].source) == (3, "azfinetune default")
    assert sources["--lr-scheduler"].value == "cosine" and sources["--lora-r"].value == 16
    assert sources["--target-modules"].note and "catalog" in sources["--target-modules"].note
    assert not sources["--metric-for-best-model"].sent
    assert all(item.sent or item.name.startswith(("--metric", "--save")) for item in sources.values())


def test_max_seq_length_auto_and_the_capped_default(tmp_path: Path) -> None:
    auto = by_name(make(tmp_path, COMMAND, training={"max_seq_length": "auto"}))["--max-seq-length"]
    assert (auto.value, auto.source) == (4096, "spec") and "model's own maximum" in (auto.note or "")
    unknown = make(tmp_path, COMMAND, model="hf:someone/some-model", training={"max_seq_length": "auto"})
    assert by_name(unknown)["--max-seq-length"].value == "auto"  # the job reads it from the model's config
    assert "--max-seq-length auto" in build_job(unknown).command
    # BERT's 512 caps azfinetune's default 2048 (a user's 2048 would be refused instead).
    rows = "".join(json.dumps({"text": f"t{i}", "label": str(i % 2)}) + "\n" for i in range(12))
    (tmp_path / "cls.jsonl").write_text(rows)
    bert = make(
        tmp_path, COMMAND, model="bert-base-uncased", task="text-classification", data={"train": "cls.jsonl"}
    )
    capped = by_name(bert)["--max-seq-length"]
    assert capped.value == 512 and "capped" in (capped.note or "")
    assert "--max-seq-length 512" in build_job(bert).command


def test_checkpoint_flags_reach_the_entry_point(tmp_path: Path) -> None:
    spec = make(tmp_path, COMMAND, training={"metric_for_best_model": "loss", "save_total_limit": 2})
    command = build_job(spec).command
    assert "--metric-for-best-model loss" in command and "--save-total-limit 2" in command
    assert by_name(spec)["--save-total-limit"].source == "spec"


def test_fine_tuning_jobs_leave_the_rest_to_the_service(tmp_path: Path) -> None:
    spec = make(tmp_path, {"kind": "serverless"}, model="phi-4-mini-instruct", training={"epochs": 2})
    sources = by_name(spec)
    assert (sources["num_train_epochs"].value, sources["num_train_epochs"].source) == ("2", "spec")
    assert sources["learning_rate"].source == "service default" and not sources["learning_rate"].sent


def test_registry_pipelines_name_the_asset_and_the_component(tmp_path: Path) -> None:
    target = {"kind": "registry-pipeline", "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}
    sources = by_name(make(tmp_path, target, training={"epochs": 2}))
    assert sources["num_train_epochs"].source == "spec"
    assert (sources["learning_rate"].value, sources["learning_rate"].source) == (5e-6, "model asset")
    assert (sources["lora_r"].value, sources["lora_r"].source) == (8, "component default")
    assert sources["task_name"].source == "derived"
    assert json.dumps([item.to_dict() for item in sources.values()])  # JSON-ready, asset inputs as text
