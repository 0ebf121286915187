"""ZeRO model states: the planner's per-GPU items and host RAM equal DeepSpeed's own estimator formulas."""

from __future__ import annotations

import pytest

from azfinetune.catalog import get_model
from azfinetune.planner import (
    ModelShape,
    TrainingSetup,
    estimate_memory,
    zero2_model_states,
    zero3_model_states,
)

GIB = 2**30


# The formulas, written out here from DeepSpeed's source (deepspeed/runtime/zero/stage_1_and_2.py and
# stage3.py, after PR #5099), independently of the planner's code.
def deepspeed_zero2(n: int, gpn: int, nodes: int, offload: bool, abf: float = 1.5) -> tuple[int, int]:
    g = gpn * nodes
    if offload:
        return int(n * max(4 * g, 16) * abf), int(2 * n)
    return int(n * 4 * gpn * abf), int(2 * n + int(18 * n / g))


def deepspeed_zero3(
    n: int, largest: int, gpn: int, nodes: int, offload_opt: bool, offload_params: bool, abf: float = 1.5
) -> tuple[int, int]:
    g = gpn * nodes
    layer = 4 * largest
    if offload_opt and offload_params:
        return int(n * 18 / nodes * abf), int(layer)
    if offload_opt:
        return int(n * 16 / nodes * abf), int(layer + int(2 * n / g))
    return int(largest * 4 * gpn * abf), int(layer + int(18 * n / g))


SHAPES = {
    "phi-3-mini": ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct")),
    "llama-65b": ModelShape.llama_like(
        hidden=8192, layers=80, heads=64, kv_heads=64, intermediate=22016, vocab=32000
    ),
}
WORLDS = [pytest.param(g, n, id=f"{n}x{g}") for g, n in ((1, 1), (8, 1), (4, 2), (8, 4))]


def _full(shape_name: str, **zero: object) -> tuple[ModelShape, TrainingSetup]:
    setup = TrainingSetup(technique="full", micro_batch=1, seq_len=512, **zero)  # type: ignore[arg-type]
    return SHAPES[shape_name], setup


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize(("gpn", "nodes"), WORLDS)
@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "offload"])
def test_zero2_model_states_equal_deepspeed(shape_name: str, gpn: int, nodes: int, offload: bool) -> None:
    shape, setup = _full(shape_name, zero_stage=2, offload_optimizer=offload, gpus_per_node=gpn, nodes=nodes)
    memory = estimate_memory(shape, setup)
    cpu, gpu = deepspeed_zero2(shape.total_parameters, gpn, nodes, offload)
    assert memory.model_states == gpu
    states = {i.name: i.bytes for i in memory.cpu_items}
    assert states["DeepSpeed model states"] == cpu
    assert zero2_model_states(shape.total_parameters, gpn, nodes, offload) == (cpu, gpu)


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize(("gpn", "nodes"), WORLDS)
@pytest.mark.parametrize(
    ("offload_opt", "offload_params"),
    [(False, False), (True, False), (True, True)],
    ids=["no-offload", "offload-optimizer", "offload-both"],
)
def test_zero3_model_states_equal_deepspeed(
    shape_name: str, gpn: int, nodes: int, offload_opt: bool, offload_params: bool
) -> None:
    shape, setup = _full(
        shape_name,
        zero_stage=3,
        offload_optimizer=offload_opt,
        offload_params=offload_params,
        gpus_per_node=gpn,
        nodes=nodes,
    )
    memory = estimate_memory(shape, setup)
    n, largest = shape.total_parameters, shape.largest_layer_parameters
    cpu, gpu = deepspeed_zero3(n, largest, gpn, nodes, offload_opt, offload_params)
    assert memory.model_states == gpu
    assert {i.name: i.bytes for i in memory.cpu_items}["DeepSpeed model states"] == cpu
    assert zero3_model_states(n, largest, gpn, nodes, offload_opt, offload_params)[:2] == (cpu, gpu)


def test_largest_layer_is_what_deepspeed_counts() -> None:
    # DeepSpeed's model_to_params(): max over modules of their direct parameters — the embedding here.
    assert SHAPES["llama-65b"].largest_layer_parameters == 32000 * 8192


@pytest.mark.parametrize(
    ("offload_opt", "offload_params", "zero_init", "cpu_gb", "gpu_gb"),
    [
        pytest.param(True, True, True, 71.71, 0.12, id="offload-both-zero-init"),
        pytest.param(True, True, False, 127.48, 0.12, id="offload-both"),
        pytest.param(True, False, True, 63.74, 0.79, id="offload-optimizer-zero-init"),
    ],
)
def test_zero3_reproduces_deepspeeds_published_output(
    offload_opt: bool, offload_params: bool, zero_init: bool, cpu_gb: float, gpu_gb: float
) -> None:
    """DeepSpeed PR #1536's printed table for t5-3b (2851M params, 32M largest layer) on 1 node × 8 GPUs."""
    cpu, gpu, _ = zero3_model_states(2_851_598_336, 32_899_072, 8, 1, offload_opt, offload_params, zero_init)
    assert round(cpu / GIB, 2) == cpu_gb
    assert round(gpu / GIB, 2) == gpu_gb


def test_zero2_offload_reproduces_deepspeeds_published_output() -> None:
    """The same table's ZeRO-2 offload line: 127.48 GB per CPU, 5.31 GB per GPU (unchanged by PR #5099)."""
    cpu, gpu = zero2_model_states(2_851_598_336, 8, 1, cpu_offload=True)
    assert (round(cpu / GIB, 2), round(gpu / GIB, 2)) == (127.48, 5.31)


def test_adapters_shard_only_what_trains() -> None:
    """LoRA under ZeRO-2: the frozen base stays whole on each GPU; DeepSpeed's formula covers N_t only."""
    shape = SHAPES["phi-3-mini"]
    setup = TrainingSetup(
        technique="lora",
        target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
        zero_stage=2,
        gpus_per_node=8,
        micro_batch=1,
        seq_len=512,
    )
    memory = estimate_memory(shape, setup)
    n_t = memory.counts.trainable
    _, gpu = deepspeed_zero2(n_t, 8, 1, False)
    base = memory.item("base weights (frozen)")
    assert base is not None and base.bytes == 2 * shape.total_parameters
    assert memory.model_states == base.bytes + gpu
    sharded = estimate_memory(shape, setup.replace(zero_stage=3))
    base3 = sharded.item("base weights (frozen)")
    assert base3 is not None and base3.bytes == 2 * shape.total_parameters // 8


def test_eight_bit_optimizer_under_zero_keeps_the_master_copy() -> None:
    shape, setup = _full("phi-3-mini", zero_stage=2, gpus_per_node=8)
    adam = estimate_memory(shape, setup)
    eight = estimate_memory(shape, setup.replace(optimizer="adamw_8bit"))
    n = shape.total_parameters
    # 12 B/param of partitioned master + AdamW states become 4 + 2.
    assert adam.model_states - eight.model_states == pytest.approx(6 * n / 8, rel=1e-6)
