"""The planner: memory per GPU, fit, time and cost of a spec — per technique, ZeRO stage and SKU — before paying."""

from azfinetune.planner._assumptions import DEFAULT_ASSUMPTIONS, PlannerAssumptions
from azfinetune.planner._deepspeed import zero1_model_states, zero2_model_states, zero3_model_states
from azfinetune.planner._memory import (
    MemoryEstimate,
    MemoryItem,
    ParameterCounts,
    TrainingSetup,
    activation_bytes_per_token,
    estimate_memory,
    parameter_counts,
    quantized_bytes_per_parameter,
    resolve_target_modules,
    trainable_parameters,
)
from azfinetune.planner._plan import (
    Alternative,
    PeakMemory,
    Plan,
    plan,
    predicted_peak_memory,
    setup_from_spec,
)
from azfinetune.planner._shape import LinearModule, ModelShape, model_shape_from_spec, resolve_model_shape
from azfinetune.planner._time import (
    SkuLike,
    TokenEstimate,
    peak_tflops,
    training_flops,
    training_hours,
    training_tokens,
)
from azfinetune.planner._token_cost import TierCost, TokenPlan, token_plan

__all__ = [
    "DEFAULT_ASSUMPTIONS",
    "Alternative",
    "LinearModule",
    "MemoryEstimate",
    "MemoryItem",
    "ModelShape",
    "ParameterCounts",
    "PeakMemory",
    "Plan",
    "PlannerAssumptions",
    "SkuLike",
    "TierCost",
    "TokenEstimate",
    "TokenPlan",
    "TrainingSetup",
    "activation_bytes_per_token",
    "estimate_memory",
    "model_shape_from_spec",
    "parameter_counts",
    "peak_tflops",
    "plan",
    "predicted_peak_memory",
    "quantized_bytes_per_parameter",
    "resolve_model_shape",
    "resolve_target_modules",
    "setup_from_spec",
    "token_plan",
    "trainable_parameters",
    "training_flops",
    "training_hours",
    "training_tokens",
    "zero1_model_states",
    "zero2_model_states",
    "zero3_model_states",
]
