"""The planner for dpo and orpo: two sequences per pair, the reference forward, and the reference model's memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from azfinetune.catalog import get_model
from azfinetune.planner import ModelShape, TrainingSetup, estimate_memory, plan
from azfinetune.planner._time import training_flops
from azfinetune.spec import load_spec
from tests.planner.test_plan_cmd import _invoke

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
GIB = 2**30
SHAPE = ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct"))


def _reference(setup: TrainingSetup) -> int | None:
    item = estimate_memory(SHAPE, setup).item("reference model (frozen copy)") or estimate_memory(
        SHAPE, setup
    ).item("reference model")
    return None if item is None else item.bytes


def test_adapters_keep_no_reference_copy_and_full_fine_tuning_keeps_one() -> None:
    lora = TrainingSetup(technique="lora", objective="dpo", reference_passes=1.0)
    assert _reference(lora) == 0
    full = TrainingSetup(technique="full", objective="dpo", reference_passes=1.0)
    n = estimate_memory(SHAPE, full).counts.total
    assert _reference(full) == 2 * n  # a bf16 copy, no gradients or optimizer states
    assert _reference(full.replace(precision="fp32")) == 4 * n
    assert _reference(full.replace(zero_stage=3, gpus_per_node=4)) == 2 * n // 4  # sharded like the policy
    assert _reference(full.replace(reference="precomputed", reference_passes=0.5)) == 0
    assert _reference(TrainingSetup(technique="full", objective="orpo")) is None  # orpo has no reference
    assert _reference(TrainingSetup(technique="full")) is None
    # The copy is what separates dpo from orpo for full fine-tuning (same pairs in each forward).
    dpo_total = estimate_memory(SHAPE, full).total
    orpo_total = estimate_memory(SHAPE, full.replace(objective="orpo", reference_passes=0.0)).total
    assert dpo_total - orpo_total >= 2 * n


def test_a_pair_is_two_sequences_in_the_forward() -> None:
    sft = TrainingSetup(technique="lora", micro_batch=2, seq_len=1024, gradient_checkpointing=False)
    pairs = sft.replace(objective="orpo")
    assert pairs.tokens_per_micro_batch == 2 * sft.tokens_per_micro_batch
    sft_memory, pair_memory = estimate_memory(SHAPE, sft), estimate_memory(SHAPE, pairs)
    for name in ("activations", "logits and loss"):
        item_sft, item_pairs = sft_memory.item(name), pair_memory.item(name)
        assert item_sft is not None and item_pairs is not None
        assert item_pairs.bytes == pytest.approx(2 * item_sft.bytes, rel=1e-6), name


def test_dpo_adds_the_reference_forward_to_the_flops() -> None:
    tokens = 1_000_000
    orpo = TrainingSetup(technique="full", objective="orpo", gradient_checkpointing=False, seq_len=512)
    dpo = orpo.replace(objective="dpo", reference_passes=1.0)
    once = orpo.replace(objective="dpo", reference="precomputed", reference_passes=1 / 3)
    forward = training_flops(SHAPE, orpo, tokens) / 3  # full fine-tuning without checkpointing is 3 forwards
    assert training_flops(SHAPE, dpo, tokens) == pytest.approx(4 * forward)
    assert training_flops(SHAPE, once, tokens) == pytest.approx((3 + 1 / 3) * forward)


@pytest.mark.parametrize("example", ["phi3-mini-dpo", "phi3-mini-orpo"])
def test_the_examples_plan_offline(example: str) -> None:
    spec = load_spec(EXAMPLES / f"{example}.yaml")
    result = plan(spec)
    assert result.fits is True and result.setup.sequences_per_example == 2
    assert result.to_dict()["setup"]["objective"] == spec.method.objective.value
    names = [item.name for item in result.items]
    assert ("reference model" in names) == (example == "phi3-mini-dpo")

    code, out, err = _invoke(str(EXAMPLES / f"{example}.yaml"))
    assert code == 0, err
    assert "Memory per GPU" in out and f"objective: {spec.method.objective.value}" in out
    assert ("the frozen base with the adapter switched off: no copy" in out) == (example == "phi3-mini-dpo")


def test_steps_count_pairs_not_sequences() -> None:
    spec = load_spec(
        EXAMPLES / "phi3-mini-dpo.yaml",
        overrides=[
            "training.epochs=1",
            "training.per_device_batch_size=2",
            "training.gradient_accumulation_steps=1",
        ],
    )
    from azfinetune.targets._check import check_spec

    report = check_spec(spec)
    result = plan(spec, data_report=report.data_reports["train"])
    assert result.token_estimate.steps == 6  # 12 pairs, 2 per step; the report counts 24 sequences
