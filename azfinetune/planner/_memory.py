"""Parameter counts and the itemised GPU/CPU memory of one training configuration, each formula with its source."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from azfinetune.errors import PlanError
from azfinetune.planner._assumptions import DEFAULT_ASSUMPTIONS, GIB, PlannerAssumptions
from azfinetune.planner._deepspeed import zero1_model_states, zero2_model_states, zero3_model_states
from azfinetune.planner._shape import ModelShape

__all__ = [
    "CAUSAL_TASKS",
    "MemoryEstimate",
    "MemoryItem",
    "ParameterCounts",
    "Technique",
    "TrainingSetup",
    "activation_bytes_per_token",
    "estimate_memory",
    "parameter_counts",
    "quantized_bytes_per_parameter",
    "resolve_target_modules",
    "trainable_parameters",
]

Technique = Literal["lora", "qlora", "dora", "full"]
Group = Literal["model states", "activations", "buffers", "overhead"]

#: Tasks whose loss is next-token prediction over the whole vocabulary (the logits are b·s·V).
CAUSAL_TASKS = ("chat-completion", "text-completion", "question-answering", "summarization", "translation")
_CLASSIFICATION_TASKS = ("text-classification", "token-classification")
_EIGHT_BIT_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit")


@dataclass(frozen=True)
class TrainingSetup:
    """Everything about a run that changes memory or FLOPs; `TrainingSetup.from_spec` fills it from a spec.

    `target_modules` are resolved names (see resolve_target_modules); `seq_len` is the longest sequence a
    micro-batch holds (max_seq_length, or the data's longest example when shorter and not packing).
    """

    technique: Technique = "lora"
    lora_r: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ()
    quant_bits: int = 4
    double_quant: bool = True
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_params: bool = False
    optimizer: str = "adamw_torch"
    micro_batch: int = 4
    seq_len: int = 2048
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    gradient_checkpointing: bool = True
    task: str = "chat-completion"
    num_labels: int = 2
    nodes: int = 1
    gpus_per_node: int = 1
    #: sft | dpo | orpo. A preference objective runs each pair's chosen and rejected sequence in one forward.
    objective: str = "sft"
    #: dpo's reference policy: auto (the adapter-disabled base for adapters, a frozen copy for full) | precomputed.
    reference: str = "auto"
    #: Reference forward passes per trained token: dpo 1 (every step), precomputed 1/epochs (once), else 0.
    reference_passes: float = 0.0

    @property
    def world_size(self) -> int:
        return self.nodes * max(self.gpus_per_node, 1)

    @property
    def uses_adapter(self) -> bool:
        return self.technique != "full"

    @property
    def uses_deepspeed(self) -> bool:
        return self.zero_stage > 0

    @property
    def sequences_per_example(self) -> int:
        """Sequences one example puts in the forward pass: 2 for a preference pair (chosen and rejected)."""
        return 2 if self.objective in ("dpo", "orpo") else 1

    @property
    def reference_copy(self) -> bool:
        """dpo keeps a second, frozen copy of the model: full fine-tuning with reference auto."""
        return self.objective == "dpo" and self.technique == "full" and self.reference == "auto"

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.micro_batch * self.sequences_per_example * self.seq_len

    @property
    def zero_label(self) -> str:
        if not self.zero_stage:
            return "off"
        if self.offload_optimizer and self.offload_params:
            offload = " + offload"
        elif self.offload_optimizer or self.offload_params:
            offload = " + optimizer offload" if self.offload_optimizer else " + param offload"
        else:
            offload = ""
        return f"ZeRO-{self.zero_stage}{offload}"

    def replace(self, **changes: Any) -> TrainingSetup:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class MemoryItem:
    """One line of the memory table: what it is, how many bytes, and how that number was reached."""

    name: str
    bytes: int
    note: str = ""
    group: Group = "model states"

    @property
    def gib(self) -> float:
        return self.bytes / GIB

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "gib": round(self.gib, 3),
            "note": self.note,
            "group": self.group,
        }


@dataclass(frozen=True)
class ParameterCounts:
    """N (total), N_t (trainable) and the parts memory needs (quantizable linears, base bytes)."""

    total: int
    trainable: int
    linear: int
    target_modules: tuple[str, ...]
    base_bytes: int  # frozen base weights as stored on the GPU (16/32-bit or quantized), adapters only

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "trainable": self.trainable,
            "trainable_share": round(self.trainable / self.total, 6) if self.total else None,
            "linear": self.linear,
            "target_modules": list(self.target_modules),
        }


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU items whose sum is `total`; `allocated` is what torch.cuda.max_memory_allocated() should read."""

    items: tuple[MemoryItem, ...]
    cpu_items: tuple[MemoryItem, ...]
    counts: ParameterCounts

    @functools.cached_property
    def total(self) -> int:
        return sum(item.bytes for item in self.items)

    @functools.cached_property
    def allocated(self) -> int:
        """The peak of PyTorch's allocator: every item except the CUDA context and fragmentation headroom."""
        return sum(item.bytes for item in self.items if item.group != "overhead")

    @property
    def model_states(self) -> int:
        """Weights, gradients and optimizer states (DeepSpeed's "model states")."""
        return sum(item.bytes for item in self.items if item.group == "model states")

    @functools.cached_property
    def cpu_total(self) -> int:
        return sum(item.bytes for item in self.cpu_items)

    def item(self, name: str) -> MemoryItem | None:
        return next((i for i in self.items if i.name == name), None)


def quantized_bytes_per_parameter(bits: int = 4, double_quant: bool = True, block_size: int = 64) -> float:
    """Bytes per weight of a bitsandbytes-quantized linear layer, quantization constants included.

    Source: Dettmers et al. 2023, "QLoRA", §3 "Double Quantization": 4-bit NF4/FP4 with one fp32 absmax per
    block of 64 weights costs 32/64 = 0.5 bit/param of constants; double quantization stores them as
    8-bit with one fp32 constant per 256 blocks: 8/64 + 32/(64·256) = 0.127 bit/param.
    So NF4 + double quant = (4 + 0.127)/8 = 0.5159 B; without it (4 + 0.5)/8 = 0.5625 B.
    8-bit (LLM.int8, Dettmers et al. 2022): 1 B/param plus one fp32 scale per row (counted as 4/64 here).
    """
    if bits == 8:
        return 1.0 + 4 / block_size
    constants = 8 / block_size + 32 / (block_size * 256) if double_quant else 32 / block_size
    return (4 + constants) / 8


def resolve_target_modules(shape: ModelShape, target_modules: str | Sequence[str]) -> tuple[str, ...]:
    """ "auto" = the catalog's lora_target_modules (all linears when the shape has none); "all-linear" =
    every decoder-layer linear module (peft's shorthand, which leaves the output layer out); or names,
    which must be linear modules of the model (a dotted name matches its last part, as peft does)."""
    names = [m.name for m in shape.linear_modules]
    if target_modules == "auto":
        return shape.lora_target_modules or tuple(names)
    if target_modules == "all-linear":
        return tuple(names)
    if isinstance(target_modules, str):
        wanted = [t.strip() for t in target_modules.split(",") if t.strip()]
    else:
        wanted = list(target_modules)
    resolved: list[str] = []
    for name in wanted:
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in names:
            raise PlanError(
                f"method.lora.target_modules: {shape.name} has no linear module {name!r}",
                hint=f"its modules are: {', '.join(names)} (or use auto / all-linear)",
            )
        if leaf not in resolved:
            resolved.append(leaf)
    return tuple(resolved)


def trainable_parameters(
    shape: ModelShape,
    technique: str = "lora",
    r: int = 16,
    target_modules: str | Sequence[str] = "auto",
) -> int:
    """N_t: trainable parameters of a technique.

    LoRA/QLoRA (Hu et al. 2021, "LoRA", §4.1): each targeted W ∈ R^{d_out×d_in} gains A ∈ R^{r×d_in} and
    B ∈ R^{d_out×r}, i.e. r·(d_in + d_out) parameters, in every decoder layer. DoRA (Liu et al. 2024,
    "DoRA", §4.1) adds a magnitude vector m ∈ R^{d_out} per targeted matrix (peft's lora_magnitude_vector).
    Full fine-tuning trains all N. E.g. Phi-3-mini, all four fused modules, r=16:
    32 layers × 16 × (12288 + 6144 + 19456 + 11264) = 25,165,824.
    """
    if technique == "full":
        return shape.total_parameters
    if technique not in ("lora", "qlora", "dora"):
        raise PlanError(f"unknown technique {technique!r}", hint="use lora, qlora, dora or full")
    modules = shape.modules
    names = resolve_target_modules(shape, target_modules)
    per_layer = sum(r * (modules[n].in_features + modules[n].out_features) for n in names)
    if technique == "dora":
        per_layer += sum(modules[n].out_features for n in names)
    return per_layer * shape.num_layers


def _head_parameters(shape: ModelShape, setup: TrainingSetup) -> int:
    """A classification head replaces the LM head: score = Linear(h, num_labels) (+ bias for tokens)."""
    if setup.task not in _CLASSIFICATION_TASKS:
        return 0
    bias = setup.num_labels if setup.task == "token-classification" else 0
    return shape.hidden_size * setup.num_labels + bias


def parameter_counts(
    shape: ModelShape, setup: TrainingSetup, assumptions: PlannerAssumptions = DEFAULT_ASSUMPTIONS
) -> ParameterCounts:
    """N, N_t and the frozen base's bytes on the GPU.

    For classification tasks the LM head (V·h, when untied) is replaced by a trainable head of
    h·num_labels (peft's modules_to_save). Base weights: 2 B/param in bf16/fp16, 4 B in fp32; QLoRA
    stores the decoder linears at quantized_bytes_per_parameter() and keeps embeddings, LM head and
    norms in the compute dtype (bitsandbytes quantizes nn.Linear layers only, and transformers skips the
    output layer).
    """
    head = _head_parameters(shape, setup)
    total = shape.total_parameters
    if head and not shape.tie_word_embeddings:
        total = total - shape.vocab_size * shape.hidden_size + head
    elif head:
        total += head
    targets = resolve_target_modules(shape, setup.target_modules or "auto") if setup.uses_adapter else ()
    if setup.technique == "full":
        trainable = total
    else:
        trainable = trainable_parameters(shape, setup.technique, setup.lora_r, targets) + head
    dtype_bytes = 4 if setup.precision == "fp32" else 2
    frozen = total - head
    if setup.technique == "qlora":
        linear = shape.linear_parameters
        q = quantized_bytes_per_parameter(setup.quant_bits, setup.double_quant)
        base_bytes = int(linear * q) + (frozen - linear) * dtype_bytes
    else:
        base_bytes = frozen * dtype_bytes
    return ParameterCounts(
        total=total,
        trainable=trainable,
        linear=shape.linear_parameters,
        target_modules=targets,
        base_bytes=base_bytes if setup.uses_adapter else 0,
    )


def activation_bytes_per_token(shape: ModelShape, setup: TrainingSetup) -> tuple[float, float]:
    """(bytes one decoder layer saves for backward, per token; bytes of the other saved tensors, per token).

    Source: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", §4.1:
    a GPT layer saves s·b·h·(34 + 5·a·s/h) bytes with 16-bit activations (attention 11sbh + 5as²b, MLP
    19sbh, two LayerNorms 4sbh). Adapted to LLaMA/Phi-3 layers as Hugging Face transformers runs them,
    by listing each tensor autograd keeps (act = 2 B in bf16/fp16, 4 B in fp32; i = intermediate size):

    * no s² term: attention runs through SDPA/FlashAttention, which keep q, k, v, the output and a
      per-head log-sum-exp instead of the s×s score matrix (Dao et al. 2022);
    * RMSNorm upcasts its input to fp32 and saves it: 4·h per norm, two norms (+ act·h each for the
      weight's gradient when norms train);
    * q, k, v at attention width, k and v after repeat_kv (GQA expanded): 3·act·(heads·head_dim);
      attention output: act·h;
    * SwiGLU MLP: the gate output (kept by SiLU), SiLU's output and the up output (kept by the product):
      3·act·i (with Phi-3's fused gate_up the chunked views keep the 2·i buffer alive: the same bytes);
    * linear inputs are saved only when the weight trains (PyTorch saves mm's input only if the weight
      needs a gradient — checked with torch 2.x: frozen nn.Linear keeps no input): full fine-tuning adds
      the four linear inputs (3·act·h + act·i); an adapter adds, per targeted module, its own input
      (peft casts x to the adapter dtype; autocast keeps a 16-bit copy: act·d_in), the dropout mask
      (1 B·d_in when lora_dropout > 0) and A's output (act·r); DoRA also keeps the base and LoRA outputs
      for the magnitude's gradient (2·act·d_out).

    The second number is what the rest of the network saves per token: the final norm (4·h) and, when
    the output layer trains (full fine-tuning or a classification head), its input (act·h).
    """
    act = 4 if setup.precision == "fp32" else 2
    h, i = shape.hidden_size, shape.intermediate_size
    q_dim = shape.num_heads * shape.attention_head_dim
    full = setup.technique == "full"
    per_layer = 2 * 4 * h + 3 * act * q_dim + act * h + 3 * act * i
    if full:
        per_layer += 2 * act * h + 2 * act * h + act * q_dim + act * i
    else:
        modules = shape.modules
        mask = 1 if setup.lora_dropout > 0 else 0
        for name in setup.target_modules:
            module = modules[name]
            per_layer += (act + mask) * module.in_features + act * setup.lora_r
            if setup.technique == "dora":
                per_layer += 2 * act * module.out_features
    rest = 4 * h + (act * h if full or setup.task in _CLASSIFICATION_TASKS else 0)
    return float(per_layer), float(rest)


def _logit_bytes(shape: ModelShape, setup: TrainingSetup) -> tuple[int, str]:
    """Bytes of the logits and the loss's fp32 buffers at the backward peak.

    transformers' ForCausalLMLoss upcasts the logits to fp32 before cross-entropy. Alive when backward
    starts: the log-softmax output cross-entropy saved (4 B), the fp32 gradient of it (4 B) and
    log-softmax's fp32 input gradient (4 B): 12 B per logit (Korthikanti et al. 2022 leave the output
    layer out; this is counted from PyTorch's cross_entropy = log_softmax + nll_loss).
    """
    tokens = setup.tokens_per_micro_batch
    if setup.task in CAUSAL_TASKS:
        width = shape.vocab_size
        pairs = " pairs × 2 (chosen, rejected) × " if setup.sequences_per_example == 2 else "×"
        what = f"{setup.micro_batch}{pairs}{setup.seq_len} tokens × vocab {width}"
    else:
        width = setup.num_labels
        what = f"{setup.micro_batch}×{setup.seq_len} tokens × {width} labels"
    return tokens * width * 12, f"{what} × 12 B (fp32 log-softmax, its gradient and the input gradient)"


def estimate_memory(
    shape: ModelShape, setup: TrainingSetup, assumptions: PlannerAssumptions = DEFAULT_ASSUMPTIONS
) -> MemoryEstimate:
    """Peak GPU memory per GPU, itemised, and the host RAM per node, for one training configuration.

    The peak is persistent state + max(forward/backward transients, optimizer-step transients):

    * model states — full fine-tuning without DeepSpeed: mixed precision as in Hugging Face's "Model
      training anatomy" (fp32 weights 4 B, autocast 16-bit copies 2 B during forward/backward, fp32
      gradients 4 B, AdamW m and v 8 B; 8-bit AdamW 2 B — Dettmers et al. 2022, "8-bit Optimizers"),
      or all in the training dtype when PlannerAssumptions.full_master_weights is False;
      with DeepSpeed ZeRO-1/2/3 exactly DeepSpeed's estimators (see _deepspeed.py) over N (full) or N_t
      (adapters; DeepSpeed casts trainable parameters to 16 bit and partitions them), sharded over
      nodes × gpus_per_node, with its CPU offload;
      adapters: frozen base weights (parameter_counts) — replicated under ZeRO-0/1/2, sharded by ZeRO-3,
      on the CPU with ZeRO-3 parameter offload — plus adapter weights in fp32 (peft), fp32 gradients
      and AdamW states (8 B, or 2 B for 8-bit/paged optimizers);
    * activations — activation_bytes_per_token × micro-batch × sequence length × layers; with gradient
      checkpointing (transformers checkpoints every decoder layer) only each layer's input (act·h per
      token per layer, Korthikanti et al. 2022 §5 "full recomputation": 2sbhL) is kept, and backward
      recomputes one layer at a time after the logits' buffers are gone;
    * logits — _logit_bytes; QLoRA's dequantized weight (the largest linear, in 16 bit) and DoRA's
      weight-norm buffers (peft builds B·A through an identity matrix, d_in² + d_in·d_out in fp32, then
      W + s·BA, for the largest targeted module);
    * optimizer step — torch.optim.AdamW (foreach) allocates one state-sized temporary (sqrt of v);
    * DeepSpeed buckets — reduce/prefetch buckets of h² elements in 16 bit (transformers' "auto" values);
    * overhead — CUDA context (+ NCCL when distributed) and the fragmentation headroom
      (PlannerAssumptions).
    """
    counts = parameter_counts(shape, setup, assumptions)
    if setup.uses_adapter and not setup.target_modules:
        setup = setup.replace(target_modules=counts.target_modules)  # "auto", as parameter_counts resolved it
    act = 4 if setup.precision == "fp32" else 2
    gpn, nodes, world = max(setup.gpus_per_node, 1), setup.nodes, setup.world_size
    stage = setup.zero_stage
    eight_bit = setup.optimizer in _EIGHT_BIT_OPTIMIZERS
    abf = assumptions.deepspeed_buffer_factor
    items: list[MemoryItem] = []
    cpu: list[MemoryItem] = []
    step_temp = 0
    forward_extra: list[MemoryItem] = []

    def states(n: int, what: str) -> None:
        """DeepSpeed model states of n trainable parameters, split into items that sum to its estimate."""
        if stage in (1, 2):
            estimator = zero2_model_states if stage == 2 else zero1_model_states
            cpu_mem, gpu_mem = estimator(n, gpn, nodes, setup.offload_optimizer, abf)
            weights = 2 * n
            if setup.offload_optimizer:
                grads = 0 if stage == 2 else 2 * n
            else:
                grads = 6 * n // world if stage == 2 else 2 * n + 4 * n // world
            optim = gpu_mem - weights - grads
            source = (
                "estimate_zero2_model_states_mem_needs" if stage == 2 else "ZeRO-2's estimator without P_g"
            )
            optim_note = f"4 B fp32 master + 8 B AdamW m, v, / {world} GPUs (DeepSpeed {source})"
            if eight_bit and not setup.offload_optimizer:
                optim = (4 + 2) * n // world
                optim_note = f"4 B fp32 master + 2 B 8-bit states, / {world} GPUs"
            if setup.offload_optimizer:
                grad_note = "bucketed to the CPU (offload)" if stage == 2 else "2 B × N, whole (ZeRO-1)"
                optim_note = "on the CPU (offload)"
            elif stage == 2:
                grad_note = f"2 B 16-bit + 4 B fp32, / {world} GPUs"
            else:
                grad_note = f"2 B × N whole + 4 B fp32 / {world} GPUs"
            items.append(MemoryItem(f"{what} weights (16-bit)", weights, f"2 B × {n:,}, replicated"))
            items.append(MemoryItem(f"{what} gradients", grads, grad_note))
            items.append(MemoryItem(f"{what} optimizer states", optim, optim_note))
            cpu.append(MemoryItem("DeepSpeed model states", cpu_mem, f"DeepSpeed {source} (×{abf} buffer)"))
        else:
            cpu_mem, gpu_mem, gathered = zero3_model_states(
                n,
                shape.largest_layer_parameters,
                gpn,
                nodes,
                setup.offload_optimizer,
                setup.offload_params,
                True,
                abf,
            )
            if setup.offload_optimizer and setup.offload_params:
                weights = 0
            elif setup.offload_optimizer:
                weights = int(2 * n / world)
            else:
                weights = 2 * n // world
            grads = 0 if setup.offload_optimizer else 4 * n // world
            optim = gpu_mem - gathered - weights - grads
            if eight_bit and not setup.offload_optimizer:
                optim = (4 + 2) * n // world
            items.append(
                MemoryItem(
                    f"{what} weights (16-bit)",
                    weights,
                    "on the CPU (offload)"
                    if setup.offload_params and setup.offload_optimizer
                    else f"2 B × {n:,} / {world} GPUs",
                )
            )
            items.append(
                MemoryItem(
                    f"{what} gradients",
                    grads,
                    "on the CPU (offload)" if setup.offload_optimizer else f"fp32 partition, / {world} GPUs",
                )
            )
            items.append(
                MemoryItem(
                    f"{what} optimizer states",
                    optim,
                    "on the CPU (offload)"
                    if setup.offload_optimizer
                    else f"fp32 master + AdamW m, v, / {world} GPUs",
                )
            )
            items.append(
                MemoryItem(
                    "ZeRO-3 gathered layer",
                    gathered,
                    f"4 B × largest layer {shape.largest_layer_parameters:,} (16-bit params + grads)",
                )
            )
            cpu.append(
                MemoryItem(
                    "DeepSpeed model states",
                    cpu_mem,
                    f"DeepSpeed estimate_zero3_model_states_mem_needs, zero_init (×{abf} buffer)",
                )
            )

    n_t = counts.trainable
    if setup.technique == "full":
        n = counts.total
        if stage == 0:
            dtype = 4 if setup.precision == "fp32" else 2
            optim_bytes = 2 if eight_bit else 8
            if assumptions.full_master_weights and setup.precision != "fp32":
                items.append(MemoryItem("weights (fp32 master)", 4 * n, f"4 B × {n:,} (mixed precision)"))
                forward_extra.append(
                    MemoryItem(
                        "autocast 16-bit weight copies",
                        2 * n,
                        "2 B × N, alive during forward/backward",
                        "activations",
                    )
                )
                items.append(MemoryItem("gradients", 4 * n, "fp32, 4 B × N"))
                items.append(
                    MemoryItem("optimizer states", optim_bytes * n, _optimizer_note(setup.optimizer, 4))
                )
                step_temp = 0 if eight_bit else 4 * n
            else:
                items.append(MemoryItem("weights", dtype * n, f"{dtype} B × {n:,}"))
                items.append(MemoryItem("gradients", dtype * n, f"{dtype} B × N"))
                state_bytes = 2 if eight_bit else 2 * dtype
                items.append(
                    MemoryItem("optimizer states", state_bytes * n, _optimizer_note(setup.optimizer, dtype))
                )
                step_temp = 0 if eight_bit else dtype * n
        else:
            states(n, "model")
    else:
        base = counts.base_bytes
        base_note = _base_note(setup, counts)
        if stage == 3 and setup.offload_params:
            items.append(MemoryItem("base weights (frozen)", 0, "on the CPU (ZeRO-3 parameter offload)"))
            cpu.append(
                MemoryItem("base weights (offloaded)", base // nodes, f"{base_note}, / {nodes} node(s)")
            )
        elif stage == 3:
            items.append(
                MemoryItem("base weights (frozen)", base // world, f"{base_note}, / {world} GPUs (ZeRO-3)")
            )
        else:
            items.append(MemoryItem("base weights (frozen)", base, base_note))
        if stage == 0:
            ab = assumptions.adapter_bytes
            optim_bytes = 2 if eight_bit else 8
            items.append(
                MemoryItem("adapter weights", ab * n_t, f"{ab} B × {n_t:,} (peft keeps adapters in fp32)")
            )
            items.append(MemoryItem("adapter gradients", ab * n_t, f"{ab} B × N_t"))
            items.append(
                MemoryItem("optimizer states", optim_bytes * n_t, _optimizer_note(setup.optimizer, ab))
            )
            step_temp = 0 if eight_bit else ab * n_t
        else:
            states(n_t, "adapter")

    if setup.objective == "dpo":
        items.append(_reference_item(setup, counts))

    if stage:
        h2 = shape.hidden_size**2
        buckets = int((0.9 + 1.0) * h2 * 2) if stage == 3 else 2 * h2 * 2
        items.append(
            MemoryItem(
                "DeepSpeed buckets",
                buckets,
                "reduce + prefetch buckets of h² elements, 16-bit (transformers 'auto')",
                "buffers",
            )
        )

    # -- forward/backward transients ---------------------------------------------------------------
    per_layer, rest = activation_bytes_per_token(shape, setup)
    tokens = setup.tokens_per_micro_batch
    layers = shape.num_layers
    logits, logits_note = _logit_bytes(shape, setup)
    if setup.gradient_checkpointing:
        stored = int(tokens * (layers * act * shape.hidden_size + rest))
        recompute = int(tokens * (per_layer + 2 * act * shape.hidden_size))
        forward_extra.append(
            MemoryItem(
                "activations",
                stored,
                f"checkpointed layer inputs: {layers} layers × {act} B × h × {tokens:,} tokens",
                "activations",
            )
        )
        forward_extra.append(MemoryItem("logits and loss", logits, logits_note, "activations"))
        extra = max(0, recompute - logits)
        forward_extra.append(
            MemoryItem(
                "layer recompute",
                extra,
                f"one layer recomputed in backward ({recompute / GIB:.2f} GiB), beyond the freed logits",
                "activations",
            )
        )
    else:
        stored = int(tokens * (layers * per_layer + rest))
        forward_extra.append(
            MemoryItem(
                "activations",
                stored,
                f"{layers} layers × {per_layer / 1024:.0f} KiB × {tokens:,} tokens (no checkpointing)",
                "activations",
            )
        )
        forward_extra.append(MemoryItem("logits and loss", logits, logits_note, "activations"))
    if setup.technique == "qlora":
        largest = max(shape.linear_modules, key=lambda m: m.in_features * m.out_features)
        forward_extra.append(
            MemoryItem(
                "dequantized weight",
                largest.in_features * largest.out_features * act,
                f"bitsandbytes dequantizes one weight at a time ({largest.name}, {act} B)",
                "buffers",
            )
        )
    if setup.technique == "dora" and setup.target_modules:
        modules = shape.modules
        dora = max(
            4 * modules[n].in_features ** 2 + 10 * modules[n].in_features * modules[n].out_features
            for n in setup.target_modules
        )
        forward_extra.append(
            MemoryItem(
                "DoRA weight norm",
                dora,
                "peft: B·A via an identity matrix, then ‖W + s·BA‖ (fp32)",
                "buffers",
            )
        )
    forward_total = sum(item.bytes for item in forward_extra)
    items.extend(forward_extra)
    if step_temp > forward_total:
        items.append(
            MemoryItem(
                "optimizer step",
                step_temp - forward_total,
                "AdamW's foreach temporary (one state-sized buffer), beyond the forward/backward peak",
                "buffers",
            )
        )

    # -- overhead -----------------------------------------------------------------------------------
    allocated = sum(item.bytes for item in items)
    context = assumptions.cuda_context_gib + (assumptions.nccl_gib if world > 1 else 0.0)
    items.append(
        MemoryItem(
            "CUDA context",
            int(context * GIB),
            "driver, cuBLAS/cuDNN" + (", NCCL" if world > 1 else ""),
            "overhead",
        )
    )
    items.append(
        MemoryItem(
            "fragmentation headroom",
            int(assumptions.fragmentation * allocated),
            f"{assumptions.fragmentation:.0%} of the allocated peak",
            "overhead",
        )
    )
    cpu.append(
        MemoryItem(
            "training processes",
            int(gpn * assumptions.process_cpu_gib * GIB),
            f"{gpn} process(es) × {assumptions.process_cpu_gib:g} GiB (Python, CUDA libraries, data loader)",
            "overhead",
        )
    )
    return MemoryEstimate(items=tuple(items), cpu_items=tuple(cpu), counts=counts)


def _reference_item(setup: TrainingSetup, counts: ParameterCounts) -> MemoryItem:
    """dpo's reference policy: a frozen copy of the whole model for full fine-tuning (TRL loads it in the training
    dtype, ZeRO-3 shards it like the policy, ZeRO-1/2 leave it whole); nothing for adapters, whose reference is the
    base with the adapter switched off, nor for precomputed log-probabilities."""
    if setup.uses_adapter:
        return MemoryItem("reference model", 0, "the frozen base with the adapter switched off: no copy")
    if not setup.reference_copy:
        return MemoryItem("reference model", 0, "log-probabilities precomputed before training: no copy kept")
    dtype = 4 if setup.precision == "fp32" else 2
    n = counts.total
    if setup.zero_stage == 3 and setup.offload_params:
        return MemoryItem("reference model (frozen copy)", 0, "on the CPU (ZeRO-3 parameter offload)")
    if setup.zero_stage == 3:
        world = setup.world_size
        return MemoryItem(
            "reference model (frozen copy)", dtype * n // world, f"{dtype} B × {n:,} / {world} GPUs (ZeRO-3)"
        )
    return MemoryItem(
        "reference model (frozen copy)", dtype * n, f"{dtype} B × {n:,}, no gradients or optimizer"
    )


def _optimizer_note(optimizer: str, master: int) -> str:
    if optimizer in _EIGHT_BIT_OPTIMIZERS:
        paged = "paged " if optimizer.startswith("paged") else ""
        return f"{paged}8-bit AdamW: m and v in 8 bit, 2 B × N (bitsandbytes)"
    return f"AdamW m and v: 2 × {master} B × N"


def _base_note(setup: TrainingSetup, counts: ParameterCounts) -> str:
    if setup.technique == "qlora":
        q = quantized_bytes_per_parameter(setup.quant_bits, setup.double_quant)
        kind = "NF4" if setup.quant_bits == 4 else "int8"
        dq = " + double quant" if setup.double_quant and setup.quant_bits == 4 else ""
        return f"{kind}{dq} {q:.4f} B × {counts.linear:,} linear + 16-bit embeddings/norms"
    dtype = 4 if setup.precision == "fp32" else 2
    return f"{dtype} B × {counts.total:,}"
