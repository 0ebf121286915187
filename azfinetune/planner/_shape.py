"""ModelShape: the architecture numbers memory and FLOP arithmetic need, from the catalog, a config.json or by hand."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import find_model
from azfinetune.errors import PlanError
from azfinetune.hf_cache import cached_config

if TYPE_CHECKING:
    from azfinetune.catalog import ModelInfo
    from azfinetune.spec import FineTuneSpec

__all__ = ["LinearModule", "ModelShape", "model_shape_from_spec", "resolve_model_shape"]

# Decoder-layer linear modules per config.json model_type, as the transformers modeling code names them.
_LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_LLAMA_FAMILY = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo",
    "olmo2",
    "granite",
)
# Models whose q/k/v projections carry a bias (Qwen2's attention).
_QKV_BIAS = ("qwen2",)


@dataclass(frozen=True)
class LinearModule:
    """One linear layer of a decoder block: its name (the suffix peft matches) and its shape."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def parameters(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer described by its numbers; any model given this way can be planned.

    `linear_modules` are the linear layers of ONE decoder layer (LoRA targets), e.g. Phi-3's fused
    ``qkv_proj`` (hidden -> hidden + 2·kv_dim) and ``gate_up_proj`` (hidden -> 2·intermediate).
    `parameters` is the total count when known (the catalog's figure, which includes every norm and
    bias); otherwise it is computed as embeddings + layers × (linear + norm parameters) + final norm
    (+ an untied LM head).
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    linear_modules: tuple[LinearModule, ...]
    tie_word_embeddings: bool = False
    head_dim: int | None = None
    lora_target_modules: tuple[str, ...] = ()
    parameters: int | None = None
    # Two RMSNorms per layer by default (weight only); LayerNorm models have weight + bias.
    norm_parameters_per_layer: int | None = None
    final_norm_parameters: int | None = None
    name: str = "custom"
    model_type: str = "llama"
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        numbers = {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
        }
        bad = [k for k, v in numbers.items() if not isinstance(v, int) or v <= 0]
        if bad:
            raise PlanError(f"model shape {self.name}: {', '.join(bad)} must be positive integers")
        if self.num_heads % self.num_kv_heads:
            raise PlanError(f"model shape {self.name}: num_heads must be a multiple of num_kv_heads")
        if not self.linear_modules:
            raise PlanError(f"model shape {self.name}: no linear modules given")
        names = [m.name for m in self.linear_modules]
        if len(set(names)) != len(names):
            raise PlanError(f"model shape {self.name}: linear module names repeat: {names}")
        unknown = sorted(set(self.lora_target_modules) - set(names))
        if unknown:
            raise PlanError(f"model shape {self.name}: lora_target_modules {unknown} are not linear modules")

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def llama_like(
        cls,
        *,
        hidden: int,
        layers: int,
        heads: int,
        kv_heads: int | None = None,
        intermediate: int,
        vocab: int,
        tied: bool = False,
        head_dim: int | None = None,
        name: str = "llama-like",
        parameters: int | None = None,
    ) -> ModelShape:
        """A LLaMA-style decoder (separate q/k/v/o, SwiGLU gate/up/down, RMSNorm, no biases).

        E.g. LLaMA-65B: ``ModelShape.llama_like(hidden=8192, layers=80, heads=64, kv_heads=64,
        intermediate=22016, vocab=32000)`` (Touvron et al. 2023, Table 2; 65.3 B parameters).
        """
        kv = kv_heads or heads
        dim = head_dim or hidden // heads
        modules = _llama_modules(hidden, heads * dim, kv * dim, intermediate)
        return cls(
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv,
            intermediate_size=intermediate,
            vocab_size=vocab,
            linear_modules=modules,
            tie_word_embeddings=tied,
            head_dim=head_dim,
            lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
            parameters=parameters,
            name=name,
        )

    @classmethod
    def from_model_info(cls, info: ModelInfo) -> ModelShape:
        """From a catalog entry: its architecture numbers, linear modules and LoRA targets."""
        arch = info.architecture
        if arch is None:
            raise PlanError(
                f"the catalog does not record the architecture of {info.display_name}, so its memory is unknown",
                hint="pass model_shape=ModelShape(...) to plan() with its numbers, if you know them",
            )
        layernorm = arch.model_type == "phi3small"  # LayerNorm (weight + bias) instead of RMSNorm
        biased = arch.model_type == "phi3small"  # every phi3small linear has a bias
        modules = tuple(
            LinearModule(name, shape[0], shape[1], bias=biased) for name, shape in info.linear_modules.items()
        )
        return cls(
            hidden_size=arch.hidden_size,
            num_layers=arch.num_hidden_layers,
            num_heads=arch.num_attention_heads,
            num_kv_heads=arch.num_key_value_heads,
            intermediate_size=arch.intermediate_size,
            vocab_size=arch.vocab_size,
            linear_modules=modules,
            tie_word_embeddings=arch.tie_word_embeddings,
            head_dim=arch.head_dim if arch.head_dim * arch.num_attention_heads != arch.hidden_size else None,
            lora_target_modules=tuple(info.lora_target_modules),
            parameters=arch.parameters,
            norm_parameters_per_layer=(4 if layernorm else 2) * arch.hidden_size,
            final_norm_parameters=(2 if layernorm else 1) * arch.hidden_size,
            name=info.alias,
            model_type=arch.model_type,
            sources=tuple(info.sources),
        )

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], *, name: str | None = None) -> ModelShape:
        """From a transformers config.json (as a dict) of a LLaMA-family or Phi-3 model.

        Known model types: phi3 (fused qkv_proj and gate_up_proj), llama, mistral, qwen2 (q/k/v bias),
        qwen3, gemma, gemma2, olmo, granite. Others raise PlanError: give a ModelShape by hand.
        """
        model_type = str(config.get("model_type", ""))
        label = name or str(config.get("_name_or_path") or model_type or "config.json")
        if model_type in _ENCODERS:
            return cls._from_encoder_config(config, model_type, label)
        try:
            hidden = int(config["hidden_size"])
            layers = int(config["num_hidden_layers"])
            heads = int(config["num_attention_heads"])
            kv = int(config.get("num_key_value_heads") or heads)
            intermediate = int(config["intermediate_size"])
            vocab = int(config["vocab_size"])
        except (KeyError, TypeError, ValueError) as error:
            raise PlanError(
                f"{label}: config.json lacks {error} (hidden_size, num_hidden_layers, num_attention_heads, "
                "intermediate_size and vocab_size are needed)",
                hint="pass model_shape=ModelShape.llama_like(hidden=..., layers=..., ...) to plan()",
            ) from None
        head_dim = int(config.get("head_dim") or hidden // heads)
        tied = bool(config.get("tie_word_embeddings", model_type.startswith("gemma")))
        q_dim, kv_dim = heads * head_dim, kv * head_dim
        if model_type == "phi3":
            modules: tuple[LinearModule, ...] = (
                LinearModule("qkv_proj", hidden, q_dim + 2 * kv_dim),
                LinearModule("o_proj", q_dim, hidden),
                LinearModule("gate_up_proj", hidden, 2 * intermediate),
                LinearModule("down_proj", intermediate, hidden),
            )
            targets: tuple[str, ...] = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
        elif model_type in _LLAMA_FAMILY:
            modules = _llama_modules(hidden, q_dim, kv_dim, intermediate, qkv_bias=model_type in _QKV_BIAS)
            targets = ("q_proj", "k_proj", "v_proj", "o_proj")
        else:
            known = ", ".join(sorted({"phi3", *_LLAMA_FAMILY, *_ENCODERS}))
            raise PlanError(
                f"{label}: the planner does not know the layer layout of model_type {model_type!r} "
                f"(it knows {known})",
                hint="describe the model by the config.json of a model of a known type with the same numbers "
                "(spec key model_shape, or plan --model-config), e.g. model_type: llama for a LLaMA-style decoder",
            )
        extra_norm = 2 * head_dim if model_type == "qwen3" else 0  # Qwen3's q_norm and k_norm
        return cls(
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv,
            intermediate_size=intermediate,
            vocab_size=vocab,
            linear_modules=modules,
            tie_word_embeddings=tied,
            head_dim=head_dim if head_dim != hidden // heads else None,
            lora_target_modules=targets,
            norm_parameters_per_layer=2 * hidden + extra_norm,
            name=label,
            model_type=model_type,
        )

    @classmethod
    def _from_encoder_config(cls, config: Mapping[str, Any], model_type: str, label: str) -> ModelShape:
        """BERT-family encoders (bert, roberta, xlm-roberta, distilbert) and T5 encoder-decoders, as the planner
        sizes them: one uniform stack of layers (T5: encoder + decoder layers, the decoder's cross-attention in
        the parameter count), LayerNorm with bias (T5: RMSNorm), the embedding once (heads are small)."""
        aliases = _ENCODERS[model_type]

        def number(key: str, *, default: int | None = None) -> int:
            for name in aliases.get(key, (key,)):
                value = config.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
            if default is not None:
                return default
            raise PlanError(
                f"{label}: config.json lacks {' or '.join(aliases.get(key, (key,)))} (model_type {model_type})",
                hint="give the model's own config.json (spec key model_shape, or plan --model-config)",
            )

        hidden, heads, vocab = number("hidden_size"), number("num_attention_heads"), number("vocab_size")
        layers, intermediate = number("num_hidden_layers"), number("intermediate_size")
        if model_type in ("t5", "mt5"):
            inner = number("num_attention_heads") * number("head_dim", default=hidden // heads)
            decoder_layers = number("num_decoder_layers", default=layers)
            gated = str(config.get("feed_forward_proj", "relu")).startswith("gated")
            modules: tuple[LinearModule, ...] = (
                LinearModule("q", hidden, inner),
                LinearModule("k", hidden, inner),
                LinearModule("v", hidden, inner),
                LinearModule("o", inner, hidden),
                *((LinearModule("wi_0", hidden, intermediate),) if gated else ()),
                LinearModule("wi_1" if gated else "wi", hidden, intermediate),
                LinearModule("wo", intermediate, hidden),
            )
            per_layer = sum(m.parameters for m in modules)
            tied = bool(config.get("tie_word_embeddings", True))
            parameters = (
                (1 if tied else 2) * vocab * hidden
                + (layers + decoder_layers) * per_layer
                + decoder_layers * 4 * hidden * inner  # the decoder's cross-attention q, k, v, o
                + (2 * layers + 3 * decoder_layers + 2) * hidden  # RMSNorm weights
            )
            return cls(
                hidden_size=hidden,
                num_layers=layers + decoder_layers,
                num_heads=heads,
                num_kv_heads=heads,
                intermediate_size=intermediate,
                vocab_size=vocab,
                linear_modules=modules,
                tie_word_embeddings=True,
                head_dim=inner // heads if inner != hidden else None,
                lora_target_modules=("q", "v"),
                parameters=parameters,
                name=label,
                model_type=model_type,
            )
        names = ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2") if model_type == "distilbert" else (
            "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"
        )  # fmt: skip
        dims = ((hidden, hidden),) * 4 + ((hidden, intermediate), (intermediate, hidden))
        modules = tuple(LinearModule(n, i, o, bias=True) for n, (i, o) in zip(names, dims, strict=True))
        positions = number("max_position_embeddings", default=512)
        token_types = int(config.get("type_vocab_size") or 0) if model_type != "distilbert" else 0
        embeddings = (vocab + positions + token_types) * hidden + 2 * hidden  # + the embedding LayerNorm
        parameters = embeddings + layers * (sum(m.parameters for m in modules) + 4 * hidden)
        return cls(
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=heads,
            intermediate_size=intermediate,
            vocab_size=vocab,
            linear_modules=modules,
            tie_word_embeddings=True,
            lora_target_modules=(names[0], names[2]),
            parameters=parameters,
            norm_parameters_per_layer=4 * hidden,
            final_norm_parameters=0,
            name=label,
            model_type=model_type,
        )

    @classmethod
    def from_config_file(cls, path: str | Path, *, name: str | None = None) -> ModelShape:
        """From a config.json file, or a model folder that holds one."""
        file = Path(path)
        if file.is_dir():
            file = file / "config.json"
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlanError(f"no config.json at {file}") from None
        except (OSError, ValueError) as error:
            raise PlanError(f"cannot read {file}: {error}") from None
        if not isinstance(config, dict):
            raise PlanError(f"{file}: expected a JSON object")
        return cls.from_hf_config(config, name=name or file.parent.name)

    # -- derived numbers ---------------------------------------------------------------------------

    @functools.cached_property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @functools.cached_property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.attention_head_dim

    @functools.cached_property
    def modules(self) -> dict[str, LinearModule]:
        return {m.name: m for m in self.linear_modules}

    @functools.cached_property
    def linear_parameters(self) -> int:
        """Weights (and biases) of every decoder-layer linear module: the part QLoRA quantizes."""
        return self.num_layers * sum(m.parameters for m in self.linear_modules)

    @functools.cached_property
    def embedding_parameters(self) -> int:
        """Input embedding plus LM head (one matrix when tied)."""
        return (1 if self.tie_word_embeddings else 2) * self.vocab_size * self.hidden_size

    @functools.cached_property
    def computed_parameters(self) -> int:
        norms = (
            self.norm_parameters_per_layer
            if self.norm_parameters_per_layer is not None
            else 2 * self.hidden_size
        )
        final = self.final_norm_parameters if self.final_norm_parameters is not None else self.hidden_size
        return self.embedding_parameters + self.linear_parameters + self.num_layers * norms + final

    @functools.cached_property
    def total_parameters(self) -> int:
        """N: every parameter once (tied embeddings once); the given figure when there is one."""
        return self.parameters if self.parameters is not None else self.computed_parameters

    @functools.cached_property
    def matmul_parameters(self) -> int:
        """Parameters that take part in a matrix multiply per token: decoder linears plus the LM head.

        The input embedding is a table lookup (no FLOPs), so it is left out — the N of Kaplan et al. 2020's
        C ≈ 6N·D counts non-embedding parameters; the LM head's V·h multiply is added back here.
        """
        return self.linear_parameters + self.vocab_size * self.hidden_size

    @functools.cached_property
    def largest_layer_parameters(self) -> int:
        """DeepSpeed's `largest_layer_params`: the most parameters held directly by one module.

        DeepSpeed's model_to_params() takes max over modules of sum(p.numel() for p in
        m.parameters(recurse=False)); in a decoder that is the embedding (or LM head), V·h, unless one
        linear is bigger.
        """
        return max(self.vocab_size * self.hidden_size, *(m.parameters for m in self.linear_modules))

    def describe(self) -> str:
        n = self.total_parameters
        size = f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"
        return (
            f"{self.name}: {size} parameters, {self.num_layers} layers, hidden {self.hidden_size}, "
            f"{self.num_heads} heads ({self.num_kv_heads} KV), intermediate {self.intermediate_size}, "
            f"vocab {self.vocab_size}"
        )


#: Encoder (and T5 encoder-decoder) config.json types the planner sizes, with the keys each names its numbers by.
_BERT_KEYS: dict[str, tuple[str, ...]] = {}
_ENCODERS: dict[str, dict[str, tuple[str, ...]]] = {
    "bert": _BERT_KEYS,
    "roberta": _BERT_KEYS,
    "xlm-roberta": _BERT_KEYS,
    "distilbert": {
        "hidden_size": ("dim", "hidden_size"),
        "num_hidden_layers": ("n_layers", "num_hidden_layers"),
        "num_attention_heads": ("n_heads", "num_attention_heads"),
        "intermediate_size": ("hidden_dim", "intermediate_size"),
    },
    "t5": {
        "hidden_size": ("d_model", "hidden_size"),
        "num_hidden_layers": ("num_layers", "num_hidden_layers"),
        "num_attention_heads": ("num_heads", "num_attention_heads"),
        "intermediate_size": ("d_ff", "intermediate_size"),
        "head_dim": ("d_kv",),
    },
}
_ENCODERS["mt5"] = _ENCODERS["t5"]


def _llama_modules(
    hidden: int, q_dim: int, kv_dim: int, intermediate: int, *, qkv_bias: bool = False
) -> tuple[LinearModule, ...]:
    return (
        LinearModule("q_proj", hidden, q_dim, bias=qkv_bias),
        LinearModule("k_proj", hidden, kv_dim, bias=qkv_bias),
        LinearModule("v_proj", hidden, kv_dim, bias=qkv_bias),
        LinearModule("o_proj", q_dim, hidden),
        LinearModule("gate_proj", hidden, intermediate),
        LinearModule("up_proj", hidden, intermediate),
        LinearModule("down_proj", intermediate, hidden),
    )


def _hf_cache_config(hf_id: str) -> Path | None:
    """config.json of a model in the local Hugging Face cache (no download), newest snapshot first."""
    return cached_config(hf_id)


def model_shape_from_spec(spec: FineTuneSpec) -> ModelShape:
    """The spec's model_shape: a config.json / model folder path (relative to the spec), or config.json numbers."""
    given = spec.model_shape
    label = spec.model.removeprefix("hf:")
    if isinstance(given, str):
        return ModelShape.from_config_file(spec.resolve_path(os.path.expanduser(given)), name=label)
    if isinstance(given, dict):
        return ModelShape.from_hf_config(given, name=label)
    raise PlanError("the spec has no model_shape")


def resolve_model_shape(spec: FineTuneSpec) -> ModelShape:
    """The shape of the spec's model: its model_shape, else the catalog entry, else a local config.json, else
    PlanError.

    hf:<org>/<name> models not in the catalog are read from the local Hugging Face cache when there;
    local folders from their config.json. Nothing is downloaded.
    """
    given = getattr(spec, "model_shape", None)
    if given is not None:
        return model_shape_from_spec(spec)
    info = find_model(spec.model)
    if info is not None:
        return ModelShape.from_model_info(info)
    ref = spec.model
    hint = (
        "pass model_shape=ModelShape.llama_like(hidden=..., layers=..., heads=..., kv_heads=..., "
        "intermediate=..., vocab=...) to plan(), or ModelShape.from_config_file('config.json')"
    )
    if ref.startswith("hf:"):
        config = _hf_cache_config(ref[3:])
        if config is not None:
            return ModelShape.from_config_file(config, name=ref[3:])
        raise PlanError(
            f"{ref} is not in the catalog and not in the local Hugging Face cache, so its architecture is unknown",
            hint=f"fetch its config once (huggingface-cli download {ref[3:]} config.json), or {hint}",
        )
    if ref.startswith("azureml:"):
        raise PlanError(f"{ref} is not in the catalog, so its architecture is unknown", hint=hint)
    folder = spec.resolve_path(os.path.expanduser(ref))
    if (folder / "config.json").is_file():
        return ModelShape.from_config_file(folder, name=Path(ref).name or ref)
    raise PlanError(f"model {ref!r}: no config.json at {folder}, so its architecture is unknown", hint=hint)
