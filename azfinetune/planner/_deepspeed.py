"""DeepSpeed's own ZeRO model-states estimators, reproduced (DeepSpeed is not imported: it needs torch)."""

from __future__ import annotations

__all__ = ["zero1_model_states", "zero2_model_states", "zero3_model_states"]


def zero2_model_states(
    total_params: int,
    num_gpus_per_node: int = 1,
    num_nodes: int = 1,
    cpu_offload: bool = True,
    additional_buffer_factor: float = 1.5,
) -> tuple[int, int]:
    """(cpu_bytes per node, gpu_bytes per GPU) of ZeRO-2 model states: params, gradients, optimizer states.

    Source: DeepSpeed deepspeed/runtime/zero/stage_1_and_2.py, estimate_zero2_model_states_mem_needs
    (as changed by PR #5099, 2024-04), same arguments and defaults::

        total_gpus = num_nodes * num_gpus_per_node
        if cpu_offload:
            gpu_mem = 2 * total_params
            cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
        else:
            # 2 = params_16bit; 18 = 2 grads_16bit + 4 grads_32bit + 4 params_32bit + 8 optimizer states
            gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)
            cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
        return int(cpu_mem), int(gpu_mem)
    """
    total_gpus = num_nodes * num_gpus_per_node
    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
    else:
        gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)
        cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem)


def zero1_model_states(
    total_params: int,
    num_gpus_per_node: int = 1,
    num_nodes: int = 1,
    cpu_offload: bool = True,
    additional_buffer_factor: float = 1.5,
) -> tuple[int, int]:
    """(cpu_bytes per node, gpu_bytes per GPU) of ZeRO-1 model states.

    DeepSpeed ships no ZeRO-1 estimator. ZeRO-1 is ZeRO-2 without gradient partitioning (Rajbhandari et al.
    2020, "ZeRO", §5: P_os), so the 16-bit gradients stay whole on every GPU: the ZeRO-2 formula with the
    2 B/param of 16-bit gradients moved out of the partitioned term —
    gpu = 4·N + 16·N/G (no offload); gpu = 4·N (optimizer offload: 16-bit params and gradients stay);
    the CPU side is ZeRO-2's.
    """
    total_gpus = num_nodes * num_gpus_per_node
    cpu_mem, _ = zero2_model_states(
        total_params, num_gpus_per_node, num_nodes, cpu_offload, additional_buffer_factor
    )
    gpu_mem = 4 * total_params if cpu_offload else 4 * total_params + int(16 * total_params / total_gpus)
    return cpu_mem, gpu_mem


def zero3_model_states(
    total_params: int,
    largest_layer_params: int,
    num_gpus_per_node: int = 1,
    num_nodes: int = 1,
    cpu_offload: bool = True,
    cpu_offload_params: bool = True,
    zero_init: bool = True,
    additional_buffer_factor: float = 1.5,
) -> tuple[int, int, int]:
    """(cpu_bytes per node, gpu_bytes per GPU, largest_layer_memory) of ZeRO-3 model states.

    Source: DeepSpeed deepspeed/runtime/zero/stage3.py, estimate_zero3_model_states_mem_needs, same
    arguments and defaults::

        total_gpus = num_nodes * num_gpus_per_node
        gpus_factor = 1 / num_nodes
        largest_layer_memory = 4 * largest_layer_params   # 16-bit params gathered + 16-bit grads
        if cpu_offload:
            if cpu_offload_params:
                gpu_mem = largest_layer_memory
                cpu_mem = total_params * 18 * gpus_factor * abf            (zero_init)
                        | total_params * max(4 * num_gpus_per_node, 18 * gpus_factor) * abf
            else:
                gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)
                cpu_mem = total_params * 16 * gpus_factor * abf            (zero_init)
                        | total_params * max(4 * num_gpus_per_node, 16 * gpus_factor) * abf
        else:
            gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
            cpu_mem = largest_layer_params * 4 * num_gpus_per_node * abf   (zero_init)
                    | total_params * 4 * num_gpus_per_node * abf
        return int(cpu_mem), int(gpu_mem), largest_layer_memory

    Transformers' Trainer builds ZeRO-3 models under deepspeed.zero.Init, so the planner uses zero_init=True.
    """
    total_gpus = num_nodes * num_gpus_per_node
    gpus_factor = 1 / num_nodes
    largest_layer_memory = 4 * largest_layer_params
    abf = additional_buffer_factor
    if cpu_offload:
        if cpu_offload_params:
            gpu_mem = largest_layer_memory
            if zero_init:
                cpu_mem = total_params * 18 * gpus_factor * abf
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 18 * gpus_factor) * abf
        else:
            gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)
            if zero_init:
                cpu_mem = total_params * 16 * gpus_factor * abf
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 16 * gpus_factor) * abf
    else:
        gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
        if zero_init:
            cpu_mem = largest_layer_params * 4 * num_gpus_per_node * abf
        else:
            cpu_mem = total_params * 4 * num_gpus_per_node * abf
    return int(cpu_mem), int(gpu_mem), largest_layer_memory
