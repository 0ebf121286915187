"""Memory per GPU: the QLoRA paper's headline, the formulas' parts, and how settings move the total."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest

from azfinetune.catalog import get_model
from azfinetune.planner import (
    ModelShape,
    PlannerAssumptions,
    TrainingSetup,
    activation_bytes_per_token,
    estimate_memory,
    plan,
    quantized_bytes_per_parameter,
)
from azfinetune.spec import spec_from_dict

GIB = 2**30
LLAMA_65B = ModelShape.llama_like(
    hidden=8192, layers=80, heads=64, kv_heads=64, intermediate=22016, vocab=32000, name="llama-65b"
)
# A 48 GB GPU like the QLoRA paper's (an RTX A6000 / A40-class card), which the Azure catalog does not hold.
GPU_48GB = SimpleNamespace(
    name="Standard_Test_48GB",
    gpu="NVIDIA RTX A6000",
    gpus=1,
    gpu_memory_gib=48,
    ram_gib=256,
    compute_capability=8.6,
    peak_bf16_tflops=155.0,
    peak_fp16_tflops=155.0,
    price_per_hour_usd=None,
    price_date=date(2026, 1, 1),
)


def _spec(method: dict[str, Any], **training: Any) -> Any:
    return spec_from_dict(
        {
            "name": "llama-65b",
            "model": "hf:huggyllama/llama-65b",
            "data": {"train": "azureml:chat-train:1"},
            "method": method,
            "training": {
                "per_device_batch_size": 1,
                "max_seq_length": 512,
                "gradient_checkpointing": True,
                **training,
            },
            "target": {"kind": "command", "compute": "gpu-48"},
        }
    )


QLORA_PAPER = {
    "technique": "qlora",
    "lora": {"r": 64, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
    "quantization": {"bits": 4, "type": "nf4", "double_quant": True},
    "optimizer": "paged_adamw_8bit",
}


def test_qlora_65b_fits_on_one_48gb_gpu() -> None:
    """Dettmers et al. 2023: QLoRA fine-tunes a 65B model on one 48 GB GPU (r=64 on all linear layers,
    NF4 + double quantization, paged 8-bit AdamW, gradient checkpointing)."""
    result = plan(_spec(QLORA_PAPER), model_shape=LLAMA_65B, sku=GPU_48GB)
    assert result.fits is True
    assert result.total <= 48 * GIB
    base = next(i for i in result.items if i.name == "base weights (frozen)")
    # 64.76 B quantized linear weights at 0.516 B plus 0.52 B 16-bit embedding/LM-head/norm parameters.
    assert 33.0e9 < base.bytes < 35.0e9


def test_full_16bit_fine_tuning_of_65b_does_not_fit() -> None:
    for method in ({"technique": "full"}, {"technique": "full", "deepspeed": {"stage": 3}}):
        result = plan(_spec(method), model_shape=LLAMA_65B, sku=GPU_48GB)
        assert result.fits is False
        assert result.total > 10 * 48 * GIB  # model states alone are 16-18 B per parameter
        assert any("does not fit" in line for line in result.recommendations)


def test_quantized_bytes_follow_the_qlora_paper() -> None:
    assert quantized_bytes_per_parameter(4, True) == pytest.approx((4 + 8 / 64 + 32 / (64 * 256)) / 8)
    assert quantized_bytes_per_parameter(4, True) == pytest.approx(0.5159, abs=1e-4)
    assert quantized_bytes_per_parameter(4, False) == pytest.approx(0.5625)


def _phi3_setup(**changes: Any) -> tuple[ModelShape, TrainingSetup]:
    shape = ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct"))
    setup = TrainingSetup(
        technique="lora", target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), **changes
    )
    return shape, setup


def test_items_sum_to_the_total_and_allocated_leaves_out_overhead() -> None:
    shape, setup = _phi3_setup()
    memory = estimate_memory(shape, setup)
    assert memory.total == sum(i.bytes for i in memory.items)
    overhead = sum(i.bytes for i in memory.items if i.group == "overhead")
    assert memory.allocated == memory.total - overhead
    headroom = memory.item("fragmentation headroom")
    assert headroom is not None and headroom.bytes == int(0.10 * memory.allocated)


def test_lora_states_are_fp32_adapter_weights_gradients_and_adamw() -> None:
    shape, setup = _phi3_setup()
    memory = estimate_memory(shape, setup)
    n_t = 25_165_824
    assert [memory.item(n).bytes for n in ("adapter weights", "adapter gradients", "optimizer states")] == [  # type: ignore[union-attr]
        4 * n_t,
        4 * n_t,
        8 * n_t,
    ]
    base = memory.item("base weights (frozen)")
    assert base is not None and base.bytes == 2 * 3_821_079_552
    paged = estimate_memory(shape, setup.replace(optimizer="paged_adamw_8bit"))
    assert paged.item("optimizer states").bytes == 2 * n_t  # type: ignore[union-attr]


def test_full_fine_tuning_without_deepspeed_is_mixed_precision() -> None:
    shape, setup = _phi3_setup()
    full = setup.replace(technique="full", target_modules=())
    n = shape.total_parameters
    memory = estimate_memory(shape, full)
    assert memory.model_states == (4 + 4 + 8) * n  # fp32 weights, fp32 gradients, AdamW m and v
    pure = estimate_memory(shape, full, PlannerAssumptions(full_master_weights=False))
    assert pure.model_states == (2 + 2 + 4) * n


def test_gradient_checkpointing_keeps_one_input_per_layer() -> None:
    shape, setup = _phi3_setup(micro_batch=4, seq_len=2048)
    on = estimate_memory(shape, setup)
    off = estimate_memory(shape, setup.replace(gradient_checkpointing=False))
    stored = on.item("activations")
    assert stored is not None
    tokens = 4 * 2048
    rest = activation_bytes_per_token(shape, setup)[1]
    assert stored.bytes == int(tokens * (32 * 2 * 3072 + rest))  # Korthikanti et al.: 2·s·b·h per layer
    assert off.item("activations").bytes > 10 * stored.bytes  # type: ignore[union-attr]
    assert off.total > on.total


def test_activation_formula_matches_its_listing() -> None:
    """Per layer, bf16, no adapter: 2 fp32 norm inputs + q,k,v + attention output + 3 MLP tensors."""
    shape = ModelShape.llama_like(hidden=64, layers=2, heads=4, intermediate=128, vocab=100)
    setup = TrainingSetup(technique="lora", target_modules=(), lora_dropout=0.0)
    per_layer, rest = activation_bytes_per_token(shape, setup)
    assert per_layer == 2 * 4 * 64 + 3 * 2 * 64 + 2 * 64 + 3 * 2 * 128
    assert rest == 4 * 64
    lora = setup.replace(target_modules=("q_proj",), lora_dropout=0.1, lora_r=8)
    assert activation_bytes_per_token(shape, lora)[0] == per_layer + (2 + 1) * 64 + 2 * 8
    full = setup.replace(technique="full")
    assert activation_bytes_per_token(shape, full)[0] == per_layer + 4 * 2 * 64 + 2 * 64 + 2 * 128


def test_logits_are_counted_in_fp32_for_the_loss() -> None:
    shape, setup = _phi3_setup(micro_batch=2, seq_len=1024)
    logits = estimate_memory(shape, setup).item("logits and loss")
    assert logits is not None and logits.bytes == 2 * 1024 * 32064 * 12
    classification = estimate_memory(shape, setup.replace(task="text-classification", num_labels=3))
    assert classification.item("logits and loss").bytes == 2 * 1024 * 3 * 12  # type: ignore[union-attr]


def test_more_tokens_more_memory_and_fp32_doubles_the_base() -> None:
    shape, setup = _phi3_setup(micro_batch=1, seq_len=512)
    small = estimate_memory(shape, setup).total
    big = estimate_memory(shape, setup.replace(micro_batch=8)).total
    assert big > small
    fp32 = estimate_memory(shape, setup.replace(precision="fp32"))
    assert fp32.item("base weights (frozen)").bytes == 4 * shape.total_parameters  # type: ignore[union-attr]


def test_qlora_and_dora_buffers() -> None:
    shape, setup = _phi3_setup()
    qlora = estimate_memory(shape, setup.replace(technique="qlora"))
    buffer = qlora.item("dequantized weight")
    assert buffer is not None and buffer.bytes == 3072 * 16384 * 2  # gate_up_proj, the largest linear
    dora = estimate_memory(shape, setup.replace(technique="dora"))
    assert dora.item("DoRA weight norm") is not None
    assert dora.counts.trainable == 25_165_824 + 32 * (9216 + 3072 + 16384 + 3072)


def test_world_size_and_overheads() -> None:
    shape, setup = _phi3_setup()
    single = estimate_memory(shape, setup).item("CUDA context")
    multi = estimate_memory(shape, setup.replace(gpus_per_node=8, zero_stage=2)).item("CUDA context")
    assert single is not None and multi is not None and multi.bytes > single.bytes
    assert setup.replace(gpus_per_node=8, nodes=2).world_size == 16
