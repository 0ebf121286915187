"""FLOPs, peak throughput, MFU and token counts: the time side of the plan, against the stated formulas."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from azfinetune.catalog import get_model, get_sku
from azfinetune.planner import (
    DEFAULT_ASSUMPTIONS,
    ModelShape,
    TrainingSetup,
    peak_tflops,
    trainable_parameters,
    training_flops,
    training_hours,
    training_tokens,
)
from azfinetune.spec import spec_from_dict

SHAPE = ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct"))
TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


def test_full_fine_tuning_is_six_n_d_plus_attention() -> None:
    setup = TrainingSetup(technique="full", gradient_checkpointing=False)
    tokens, context = 1_000_000, 1024
    n_mm = SHAPE.linear_parameters + SHAPE.vocab_size * SHAPE.hidden_size
    attention = 2 * 32 * context * 3072
    assert training_flops(SHAPE, setup, tokens, context) == pytest.approx(3 * (2 * n_mm + attention) * tokens)
    # N_mm leaves out the embedding lookup; with it, 6·N·D would overcount by 6·V·h·D.
    assert n_mm == SHAPE.total_parameters - 32064 * 3072 - (2 * 32 + 1) * 3072
    recompute = training_flops(SHAPE, setup.replace(gradient_checkpointing=True), tokens, context)
    assert recompute == pytest.approx(4 * (2 * n_mm + attention) * tokens)


def test_frozen_base_adapters_skip_weight_gradients() -> None:
    setup = TrainingSetup(technique="lora", target_modules=TARGETS, gradient_checkpointing=False)
    tokens, context = 1_000_000, 512
    n_mm = SHAPE.matmul_parameters
    n_t = trainable_parameters(SHAPE, "lora", 16, TARGETS)
    attention = 2 * 32 * context * 3072
    expected = (4 * n_mm + 3 * attention + 6 * n_t) * tokens
    assert training_flops(SHAPE, setup, tokens, context) == pytest.approx(expected)
    full = training_flops(SHAPE, setup.replace(technique="full"), tokens, context)
    assert training_flops(SHAPE, setup, tokens, context) < full


@pytest.mark.parametrize(
    ("sku", "precision", "tflops"),
    [
        pytest.param("Standard_NC24ads_A100_v4", "bf16", 312, id="a100-bf16"),
        pytest.param("Standard_NC24ads_A100_v4", "fp32", 156, id="a100-tf32"),
        pytest.param("Standard_NC4as_T4_v3", "fp16", 65, id="t4-fp16"),
        pytest.param("Standard_NC4as_T4_v3", "fp32", 65 / 8, id="t4-fp32"),
        pytest.param("Standard_NC4as_T4_v3", "bf16", 65, id="t4-no-bf16"),
    ],
)
def test_peak_tflops(sku: str, precision: str, tflops: float) -> None:
    assert peak_tflops(get_sku(sku), precision) == pytest.approx(tflops)


def test_hours_and_mfu() -> None:
    assert training_hours(3600 * 100e12, 1, 100, 1.0) == pytest.approx(1.0)
    assert training_hours(3600 * 100e12, 4, 100, 0.5) == pytest.approx(0.5)
    assert DEFAULT_ASSUMPTIONS.mfu_for("NVIDIA A100 80GB PCIe") == 0.35
    assert DEFAULT_ASSUMPTIONS.mfu_for("NVIDIA A10") == 0.30  # not taken for an A100
    assert DEFAULT_ASSUMPTIONS.mfu_for("NVIDIA T4") == 0.25
    assert DEFAULT_ASSUMPTIONS.mfu_for("Some New GPU") == DEFAULT_ASSUMPTIONS.default_mfu


def _spec(**training: object) -> object:
    return spec_from_dict(
        {
            "name": "t",
            "model": "phi-3-mini-4k-instruct",
            "data": {"train": "azureml:train:1"},
            "training": training,
            "target": {"kind": "command", "compute": "gpu", "instance_type": "Standard_NC24ads_A100_v4"},
        }
    )


def test_tokens_from_a_report_follow_the_specs_epochs() -> None:
    spec = _spec(epochs=2, per_device_batch_size=4, gradient_accumulation_steps=2)
    setup = TrainingSetup()
    report = {
        "stats": {"tokens": {"training_tokens_estimate": 3_000_000, "epochs": 3}, "valid_examples": 1000}
    }
    tokens = training_tokens(spec, setup, report)  # type: ignore[arg-type]
    assert tokens.tokens_per_epoch == 1_000_000 and tokens.tokens == 2_000_000
    assert tokens.examples == 1000 and tokens.mean_tokens == 1000
    assert tokens.steps == 2 * 1000 // (4 * 2)


def test_no_report_and_no_local_file_means_unknown() -> None:
    tokens = training_tokens(_spec(), TrainingSetup(), None)  # type: ignore[arg-type]
    assert tokens.tokens is None and tokens.source.startswith("unknown")
    empty = training_tokens(_spec(), TrainingSetup(), SimpleNamespace(stats=None))  # type: ignore[arg-type]
    assert empty.tokens is None
