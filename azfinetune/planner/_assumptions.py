"""PlannerAssumptions: every constant the planner does not read from the spec, the catalog or the data, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DEFAULT_ASSUMPTIONS", "GIB", "PlannerAssumptions"]

GIB = 1024**3

# Model FLOPs utilisation by GPU, matched as a substring of the catalog's `gpu` name (first match wins).
# 0.35 for A100/H100-class: Hugging Face Trainer fine-tuning reaches roughly 30-45% MFU on A100 with
# bf16 and flash attention (Chowdhery et al. 2022, PaLM, report 46% MFU for a tuned pre-training stack;
# fine-tuning stacks with small micro-batches sit lower). 0.25 for V100/T4 (fp16, no flash attention 2).
_DEFAULT_MFU: Mapping[str, float] = MappingProxyType(
    {"H200": 0.35, "H100": 0.35, "A100": 0.35, "A10": 0.30, "L40": 0.30, "V100": 0.25, "T4": 0.25}
)


@dataclass(frozen=True)
class PlannerAssumptions:
    """The planner's documented constants; pass your own to plan(..., assumptions=...) to change them.

    Attributes:
        mfu: model FLOPs utilisation by GPU-name substring (see _DEFAULT_MFU's comment for the source).
        default_mfu: MFU for a GPU not in `mfu`.
        qlora_mfu_factor: bitsandbytes dequantizes each 4-bit weight before every matmul (forward,
            backward and recompute), so QLoRA runs slower than 16-bit LoRA at the same FLOPs. Planning
            assumption: 0.7× the MFU (Dettmers et al. 2023 trade speed for memory; not measured here).
        cuda_context_gib: memory the CUDA context, cuBLAS/cuDNN handles and NCCL take outside PyTorch's
            allocator: 0.5-1 GiB on current drivers; 0.75 GiB by default, +0.25 GiB when distributed (NCCL).
        fragmentation: headroom for the caching allocator's fragmentation, as a share of the allocated
            peak (10%: reserved memory typically exceeds allocated by 5-15% in LLM training).
        min_margin: the share of GPU memory that must stay free for a configuration to count as a
            recommendation ("fits with margin").
        bytes_per_token: training-file bytes per token when no data report counted them: OpenAI's rule of
            thumb "1 token ≈ 4 characters of English" (help.openai.com, "What are tokens"). It over-counts
            JSONL, whose keys and quotes are not trained on, so the time estimate errs long.
        full_master_weights: full fine-tuning without DeepSpeed keeps fp32 weights with autocast (mixed
            precision, Hugging Face "Model training anatomy": 4 B weights + 2 B 16-bit copies + 4 B
            gradients + 8 B AdamW states = 18 B/parameter). False: weights, gradients and optimizer states
            all in the training dtype (2 + 2 + 4 = 8 B/parameter in bf16).
        adapter_bytes: bytes per adapter parameter: peft keeps LoRA/DoRA weights in fp32 when the base is
            16-bit (LoraConfig autocast_adapter_dtype=True, its default).
        deepspeed_buffer_factor: DeepSpeed's `additional_buffer_factor` for CPU memory (1.5 by default in
            its estimators).
        process_cpu_gib: host RAM each training process needs besides model states (Python, CUDA libraries,
            the data loader): 3 GiB, a planning figure.
    """

    mfu: Mapping[str, float] = field(default_factory=lambda: _DEFAULT_MFU)
    default_mfu: float = 0.30
    qlora_mfu_factor: float = 0.7
    cuda_context_gib: float = 0.75
    nccl_gib: float = 0.25
    fragmentation: float = 0.10
    min_margin: float = 0.10
    bytes_per_token: float = 4.0
    full_master_weights: bool = True
    adapter_bytes: int = 4
    deepspeed_buffer_factor: float = 1.5
    process_cpu_gib: float = 3.0

    def mfu_for(self, gpu: str | None) -> float:
        """The MFU for a GPU name such as 'NVIDIA A100 80GB PCIe'."""
        if gpu:
            lowered = gpu.lower()
            # Longest key first, so "A100" is not taken for an "A10".
            for key in sorted(self.mfu, key=len, reverse=True):
                if key.lower() in lowered:
                    return self.mfu[key]
        return self.default_mfu

    def to_dict(self) -> dict[str, Any]:
        return {
            "mfu": dict(self.mfu),
            "default_mfu": self.default_mfu,
            "qlora_mfu_factor": self.qlora_mfu_factor,
            "cuda_context_gib": self.cuda_context_gib,
            "nccl_gib": self.nccl_gib,
            "fragmentation": self.fragmentation,
            "min_margin": self.min_margin,
            "bytes_per_token": self.bytes_per_token,
            "full_master_weights": self.full_master_weights,
            "adapter_bytes": self.adapter_bytes,
            "deepspeed_buffer_factor": self.deepspeed_buffer_factor,
            "process_cpu_gib": self.process_cpu_gib,
        }


DEFAULT_ASSUMPTIONS = PlannerAssumptions()
