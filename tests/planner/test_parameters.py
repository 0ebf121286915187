"""Parameter counts pinned to independent figures: peft on real (tiny or meta-device) models, and known totals."""

from __future__ import annotations

from typing import Any

import pytest

from azfinetune.catalog import get_model
from azfinetune.errors import PlanError
from azfinetune.planner import ModelShape, resolve_target_modules, trainable_parameters

TINY_PHI3 = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
}
LLAMA_65B = {"hidden": 8192, "layers": 80, "heads": 64, "kv_heads": 64, "intermediate": 22016, "vocab": 32000}


@pytest.fixture(scope="module")
def tiny_phi3() -> tuple[Any, dict[str, Any]]:
    """A random tiny Phi-3 built by transformers, and its config as config.json holds it."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Phi3Config(**TINY_PHI3, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    model = transformers.Phi3ForCausalLM(config)
    return model, config.to_dict()


def _peft_trainable(model: Any, **lora: Any) -> int:
    import copy

    peft = pytest.importorskip("peft")
    wrapped = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(**lora))
    trainable, _total = wrapped.get_nb_trainable_parameters()
    return int(trainable)


def test_phi3_mini_all_fused_modules_r16_is_the_known_figure() -> None:
    shape = ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct"))
    assert trainable_parameters(shape, "lora", 16, "all-linear") == 25_165_824
    assert trainable_parameters(shape, "lora", 16, "auto") == 25_165_824  # the catalog's targets are all four


def test_shape_from_config_counts_every_parameter(tiny_phi3: tuple[Any, dict[str, Any]]) -> None:
    model, config = tiny_phi3
    shape = ModelShape.from_hf_config(config)
    assert shape.total_parameters == model.num_parameters()
    assert shape.modules["qkv_proj"].out_features == 64 + 2 * 2 * 16  # GQA: q + 2 × kv heads × head_dim


@pytest.mark.parametrize(
    ("r", "targets", "dora"),
    [
        pytest.param(8, "all-linear", False, id="lora-r8-all-linear"),
        pytest.param(4, ["qkv_proj", "o_proj"], False, id="lora-r4-attention"),
        pytest.param(16, ["gate_up_proj", "down_proj"], False, id="lora-r16-mlp"),
        pytest.param(8, "all-linear", True, id="dora-r8-all-linear"),
        pytest.param(2, ["qkv_proj"], True, id="dora-r2-qkv"),
    ],
)
def test_lora_and_dora_counts_equal_peft(
    tiny_phi3: tuple[Any, dict[str, Any]], r: int, targets: Any, dora: bool
) -> None:
    model, config = tiny_phi3
    shape = ModelShape.from_hf_config(config)
    expected = _peft_trainable(model, r=r, lora_alpha=2 * r, target_modules=targets, use_dora=dora)
    assert trainable_parameters(shape, "dora" if dora else "lora", r, targets) == expected


def test_llama_65b_numbers_match_transformers_and_peft() -> None:
    """N of LLaMA-65B and its QLoRA r=64 all-linear adapter, counted by transformers/peft on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    shape = ModelShape.llama_like(**LLAMA_65B)
    config = transformers.LlamaConfig(
        hidden_size=8192,
        intermediate_size=22016,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=64,
        vocab_size=32000,
    )
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
        assert shape.total_parameters == model.num_parameters() == 65_285_660_672
        wrapped = peft.get_peft_model(model, peft.LoraConfig(r=64, target_modules="all-linear"))
    assert trainable_parameters(shape, "qlora", 64, "all-linear") == wrapped.get_nb_trainable_parameters()[0]


def test_catalog_shapes_agree_with_their_architecture() -> None:
    for alias in ("phi-3-mini-4k-instruct", "phi-3-medium-4k-instruct", "phi-4-mini-instruct"):
        info = get_model(alias)
        shape = ModelShape.from_model_info(info)
        # The catalog's total is authoritative; the computed one must agree for these bias-free models.
        assert shape.computed_parameters == info.architecture.parameters, alias
        embedding = info.architecture.vocab_size * info.architecture.hidden_size
        linears = [i * o for i, o in info.linear_modules.values()]
        assert shape.largest_layer_parameters == max(embedding, *linears)
    # Phi-3-medium's fused gate_up_proj (5120 × 35840) outgrows its embedding (32064 × 5120).
    assert (
        ModelShape.from_model_info(get_model("phi-3-medium-4k-instruct")).largest_layer_parameters
        == 5120 * 35840
    )


def test_full_fine_tuning_trains_everything() -> None:
    shape = ModelShape.llama_like(**LLAMA_65B)
    assert trainable_parameters(shape, "full") == shape.total_parameters


def test_target_module_errors_say_what_exists() -> None:
    shape = ModelShape.from_model_info(get_model("phi-3-mini-4k-instruct"))
    with pytest.raises(PlanError, match="no linear module 'q_proj'") as caught:
        resolve_target_modules(shape, ["q_proj"])
    assert "qkv_proj" in str(caught.value)
    assert resolve_target_modules(shape, ["model.layers.0.self_attn.qkv_proj"]) == ("qkv_proj",)
    with pytest.raises(PlanError, match="unknown technique"):
        trainable_parameters(shape, "ia3")


def test_unknown_architecture_asks_for_numbers() -> None:
    with pytest.raises(PlanError, match="model_type 'mamba'") as caught:
        ModelShape.from_hf_config({**TINY_PHI3, "model_type": "mamba"})
    # The hint speaks the spec and the CLI, not Python: model_shape, or plan --model-config.
    assert "model_shape" in str(caught.value) and "--model-config" in str(caught.value)
    assert "bert" in str(caught.value)  # the types it knows are named
    with pytest.raises(PlanError, match="lacks"):
        ModelShape.from_hf_config({"model_type": "llama"})


@pytest.mark.parametrize(
    ("config", "parameters"),
    [
        # bert-base-uncased's config.json: BertModel has 109,482,240 parameters, the pooler (590,592) left out.
        (
            {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2},
            109_482_240 - 590_592,
        ),
        # distilbert-base-uncased: DistilBertModel has 66,362,880 parameters.
        (
            {"model_type": "distilbert", "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
             "vocab_size": 30522, "max_position_embeddings": 512},
            66_362_880,
        ),
        # t5-small: 60,506,624 parameters (one RMSNorm weight apart).
        (
            {"model_type": "t5", "d_model": 512, "d_ff": 2048, "d_kv": 64, "num_heads": 8, "num_layers": 6,
             "vocab_size": 32128},
            60_506_624 - 512,
        ),
    ],
)  # fmt: skip
def test_encoder_configs_are_sized_to_their_published_parameter_counts(
    config: dict[str, Any], parameters: int
) -> None:
    shape = ModelShape.from_hf_config(config)
    assert shape.total_parameters == parameters


def test_llama_family_configs() -> None:
    qwen = ModelShape.from_hf_config({**TINY_PHI3, "model_type": "qwen2", "tie_word_embeddings": True})
    assert qwen.modules["q_proj"].bias and not qwen.modules["o_proj"].bias
    assert qwen.embedding_parameters == 512 * 64
    gemma = ModelShape.from_hf_config({**TINY_PHI3, "model_type": "gemma", "head_dim": 32})
    assert gemma.tie_word_embeddings and gemma.modules["q_proj"].out_features == 4 * 32
