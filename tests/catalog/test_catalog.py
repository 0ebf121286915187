"""Tests of the model and VM-size catalogs: lookups, errors, and the internal consistency of the facts."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from azfinetune.catalog import (
    DEFAULT_MAX_SEQ_LENGTH,
    ModelInfo,
    find_model,
    get_model,
    get_sku,
    known_max_seq_length,
    list_models,
    list_skus,
    model_aliases,
    resolve_max_seq_length,
    sku_names,
)
from azfinetune.errors import CatalogError, UserInputError
from azfinetune.spec import Task

EXPECTED_ALIASES = [
    "bert-base-uncased",
    "gpt-oss-20b",
    "llama-2-70b",
    "llama-2-7b",
    "llama-3.1-8b-instruct",
    "meta-llama-3-8b",
    "ministral-3b",
    "mistral-nemo",
    "phi-2",
    "phi-3-medium-128k-instruct",
    "phi-3-medium-4k-instruct",
    "phi-3-mini-128k-instruct",
    "phi-3-mini-4k-instruct",
    "phi-3-small-128k-instruct",
    "phi-3-small-8k-instruct",
    "phi-3.5-mini-instruct",
    "phi-4",
    "phi-4-mini-instruct",
    "t5-small",
]
PHI3_FAMILY = [alias for alias in EXPECTED_ALIASES if alias.startswith(("phi-3", "phi-4"))]
FUSED_PHI3 = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
PHI3_SMALL = {"query_key_value", "dense", "up_proj", "down_proj"}


def models_by_id() -> list[Any]:
    return [pytest.param(model, id=model.alias) for model in list_models()]


# ---- lookups ----------------------------------------------------------------------------------------


def test_catalog_holds_the_expected_models() -> None:
    assert model_aliases() == EXPECTED_ALIASES
    assert [m.alias for m in list_models()] == EXPECTED_ALIASES


@pytest.mark.parametrize("alias", EXPECTED_ALIASES)
def test_every_alias_resolves_to_itself(alias: str) -> None:
    assert get_model(alias).alias == alias
    assert find_model(alias.upper()) is get_model(alias)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("phi-3-mini-4k-instruct", id="alias"),
        pytest.param("  Phi-3-Mini-4K-Instruct ", id="alias-any-case"),
        pytest.param("hf:microsoft/Phi-3-mini-4k-instruct", id="hf"),
        pytest.param("hf:MICROSOFT/phi-3-mini-4k-instruct", id="hf-any-case"),
        pytest.param("microsoft/Phi-3-mini-4k-instruct", id="bare-hf-id"),
        pytest.param("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15", id="registry"),
        pytest.param(
            "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/3", id="older-version"
        ),
        pytest.param("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/latest", id="label"),
    ],
)
def test_references_resolve(ref: str) -> None:
    assert get_model(ref).alias == "phi-3-mini-4k-instruct"


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("llama-3-8b", id="unknown-alias"),
        pytest.param("hf:meta-llama/Llama-3.1-8B", id="unknown-hf"),
        pytest.param(
            "azureml://registries/other/models/Phi-3-mini-4k-instruct/versions/1", id="other-registry"
        ),
        pytest.param("azureml:my-model:1", id="workspace-asset"),
        pytest.param("./models/phi", id="local-folder"),
    ],
)
def test_find_model_returns_none_for_what_it_does_not_know(ref: str) -> None:
    assert find_model(ref) is None


def test_unknown_alias_lists_known_aliases_and_suggests() -> None:
    with pytest.raises(CatalogError) as caught:
        get_model("phi-3-mini-4k-instrct")
    error = caught.value
    assert isinstance(error, UserInputError) and error.exit_code == 2
    for alias in EXPECTED_ALIASES:
        assert alias in error.message
    assert error.hint is not None and "did you mean phi-3-mini-4k-instruct" in error.hint
    assert "did you mean" in str(error)


def test_unknown_hf_id_suggests_by_model_name() -> None:
    with pytest.raises(CatalogError) as caught:
        get_model("hf:microsoft/Phi-4-mini-instrukt")
    assert caught.value.hint is not None and "phi-4-mini-instruct" in caught.value.hint


def test_unrelated_name_gets_a_how_to_hint() -> None:
    with pytest.raises(CatalogError) as caught:
        get_model("qwen")
    assert caught.value.hint is not None and "hf:<org>/<name>" in caught.value.hint


def test_registry_uri_round_trips() -> None:
    for model in list_models():
        assert find_model(model.registry_uri) is model
        if model.hf_id is not None:
            assert find_model(f"hf:{model.hf_id}") is model


def test_registry_uri_uses_latest_label_without_a_version() -> None:
    model = get_model("phi-4-mini-instruct").model_copy(update={"registry_version": None})
    assert model.registry_uri == "azureml://registries/azureml/models/Phi-4-mini-instruct/labels/latest"


def test_models_are_frozen() -> None:
    model = get_model("phi-3-mini-4k-instruct")
    with pytest.raises(Exception, match="frozen"):
        model.alias = "other"  # type: ignore[misc]


# ---- serverless availability ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "on", "status"),
    [
        pytest.param("phi-3-mini-4k-instruct", date(2026, 1, 1), "retired", id="mini-2026"),
        pytest.param("phi-3-mini-4k-instruct", date(2025, 8, 30), "retired", id="mini-retirement-day"),
        pytest.param("phi-3-mini-4k-instruct", date(2025, 7, 15), "deprecated", id="mini-deprecated"),
        pytest.param("phi-3-mini-4k-instruct", date(2025, 1, 1), "available", id="mini-2025"),
        pytest.param("phi-3-mini-4k-instruct", date(2024, 1, 1), "never", id="mini-before-offer"),
        pytest.param("phi-3-medium-128k-instruct", date(2026, 1, 1), "retired", id="medium-2026"),
        pytest.param("phi-3.5-mini-instruct", date(2026, 1, 1), "retired", id="phi35-2026"),
        pytest.param("phi-3-small-8k-instruct", date(2025, 1, 1), "never", id="small-never"),
        pytest.param("phi-4-mini-instruct", date(2026, 1, 1), "available", id="phi4-mini-2026"),
    ],
)
def test_serverless_status(alias: str, on: date, status: str) -> None:
    assert get_model(alias).serverless_status(on) == status


def test_serverless_facts() -> None:
    phi4 = get_model("phi-4-mini-instruct").serverless
    assert phi4 is not None and phi4.retired is None
    assert set(phi4.regions) == {"eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"}
    mini = get_model("phi-3-mini-4k-instruct").serverless
    assert mini is not None and mini.regions == ["eastus2"]
    assert (mini.deprecated, mini.retired) == (date(2025, 6, 30), date(2025, 8, 30))
    assert get_model(mini.alternative or "").alias == "phi-4-mini-instruct"
    phi35 = get_model("phi-3.5-mini-instruct").serverless
    assert phi35 is not None and len(phi35.regions) == 6
    assert phi35.available_from == date(2024, 10, 31)
    assert get_model("phi-3-small-128k-instruct").serverless is None


def test_serverless_beyond_phi() -> None:
    six = {"eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"}
    llama = get_model("llama-3.1-8b-instruct")
    assert llama.serverless is not None and llama.serverless.regions == ["westus3"]
    assert not llama.microsoft and llama.registry == "azureml-meta"
    for alias in ("phi-4", "ministral-3b", "mistral-nemo"):
        offer = get_model(alias).serverless
        assert offer is not None and set(offer.regions) == six, alias
    nemo = get_model("mistral-nemo").serverless
    assert nemo is not None and not nemo.verified  # dropped from the docs' later revision
    assert get_model("meta-llama-3-8b").serverless.tasks == ["text-completion"]  # type: ignore[union-attr]
    for alias in ("bert-base-uncased", "t5-small", "phi-2", "llama-2-7b", "gpt-oss-20b"):
        assert get_model(alias).serverless is None, alias


# ---- architecture consistency -----------------------------------------------------------------------


def test_phi3_mini_lora_r16_on_all_four_fused_modules() -> None:
    model = get_model("phi-3-mini-4k-instruct")
    assert model.architecture.parameters == 3_821_079_552
    assert model.lora_trainable_parameters(16) == 25_165_824
    by_hand = sum(16 * (i + o) for i, o in model.linear_modules.values()) * 32
    assert by_hand == 25_165_824


def test_lora_count_rejects_unknown_modules() -> None:
    with pytest.raises(CatalogError, match="q_proj"):
        get_model("phi-3-mini-4k-instruct").lora_trainable_parameters(8, ["q_proj"])


@pytest.mark.parametrize("model", models_by_id())
def test_every_entry_has_sources(model: ModelInfo) -> None:
    assert model.sources
    assert all(source.startswith("https://") for source in model.sources)
    if model.hf_id is not None:
        assert any(f"huggingface.co/{model.hf_id}" in source for source in model.sources)
    if model.serverless is not None:
        assert model.serverless.source.startswith("https://")
    # Every asset fact names where it was read, at a commit.
    assert model.asset.source.startswith("https://github.com/")
    assert re.search(r"/blob/[0-9a-f]{40}/", model.asset.source), model.asset.source
    if model.asset.verified:
        assert "Azure/azureml-assets" in model.asset.source


@pytest.mark.parametrize("model", models_by_id())
def test_alias_and_publisher(model: ModelInfo) -> None:
    if model.hf_id is not None and model.alias in PHI3_FAMILY:
        assert model.alias == model.hf_id.split("/")[1].lower()
        assert model.registry_asset.lower() == model.alias
    assert model.alias == model.alias.lower()
    assert model.microsoft is (model.publisher == "Microsoft")
    assert set(model.tasks) <= {task.value for task in Task}
    assert set(model.lora_target_modules) <= set(model.linear_modules)
    assert (model.architecture is None) is (not model.linear_modules)


@pytest.mark.parametrize("model", models_by_id())
def test_linear_module_shapes_match_the_architecture(model: ModelInfo) -> None:
    arch = model.architecture
    if arch is None:
        assert model.note and "architecture" in model.note
        return
    hidden, inter, heads, kv, dim = (
        arch.hidden_size,
        arch.intermediate_size,
        arch.num_attention_heads,
        arch.num_key_value_heads,
        arch.head_dim,
    )
    mods = model.linear_modules
    if arch.model_type == "phi3":
        assert set(mods) == FUSED_PHI3
        assert mods["qkv_proj"] == (hidden, (heads + 2 * kv) * dim)
        assert mods["o_proj"] == (heads * dim, hidden)
        assert mods["gate_up_proj"] == (hidden, 2 * inter)
        assert mods["down_proj"] == (inter, hidden)
    elif arch.model_type == "phi3small":
        assert set(mods) == PHI3_SMALL
        assert mods["query_key_value"] == (hidden, (heads + 2 * kv) * dim)
        assert mods["dense"] == (hidden, hidden)
        assert mods["up_proj"] == (hidden, 2 * inter)
        assert mods["down_proj"] == (inter, hidden)
    elif arch.model_type in ("llama", "mistral"):
        assert mods == {
            "q_proj": (hidden, heads * dim),
            "k_proj": (hidden, kv * dim),
            "v_proj": (hidden, kv * dim),
            "o_proj": (heads * dim, hidden),
            "gate_proj": (hidden, inter),
            "up_proj": (hidden, inter),
            "down_proj": (inter, hidden),
        }
    elif arch.model_type == "bert":  # an encoder layer: query/key/value, attention out, intermediate, output
        assert all(
            mods[name] == (hidden, hidden) for name in ("query", "key", "value", "attention.output.dense")
        )
        assert mods["intermediate.dense"] == (hidden, inter) and mods["output.dense"] == (inter, hidden)
    elif arch.model_type == "t5":  # one layer of the encoder (and the decoder's self-attention and MLP)
        assert all(mods[name] == (hidden, heads * dim) for name in ("q", "k", "v"))
        assert mods["o"] == (heads * dim, hidden)
        assert mods["wi"] == (hidden, inter) and mods["wo"] == (inter, hidden)
    else:
        assert arch.model_type == "phi"  # phi-2: q/k/v, dense, fc1/fc2
        assert mods["fc1"] == (hidden, inter) and mods["fc2"] == (inter, hidden)
        assert all(mods[name] == (hidden, hidden) for name in ("q_proj", "k_proj", "v_proj", "dense"))


@pytest.mark.parametrize("model", models_by_id())
def test_parameter_count_reproduced_from_shapes(model: ModelInfo) -> None:
    arch = model.architecture
    if arch is None:
        return
    linear = sum(i * o for i, o in model.linear_modules.values()) * arch.num_hidden_layers
    estimate = linear + arch.embedding_parameters
    tolerance = 0.01
    if arch.model_type == "t5":  # the decoder's (half the layers') cross-attention q, k, v, o
        estimate += (
            arch.num_hidden_layers // 2 * 4 * arch.hidden_size * arch.num_attention_heads * arch.head_dim
        )
    if arch.model_type == "bert":  # position and token-type embeddings, the pooler, every linear's bias
        tolerance = 0.02
    # Norms (and biases where there are any) are the only parameters the estimate leaves out.
    assert abs(arch.parameters - estimate) / arch.parameters < tolerance
    assert estimate <= arch.parameters


@pytest.mark.parametrize("model", models_by_id())
def test_max_seq_length_is_the_context_window(model: ModelInfo) -> None:
    if model.architecture is not None:
        assert model.max_seq_length <= model.architecture.max_position_embeddings
    assert resolve_max_seq_length("auto", model.alias) == model.max_seq_length
    assert resolve_max_seq_length(512, model.alias) == 512


def test_auto_sequence_length_for_unknown_models() -> None:
    assert known_max_seq_length("auto", "hf:someone/some-model") is None
    assert resolve_max_seq_length("auto", "hf:someone/some-model") == DEFAULT_MAX_SEQ_LENGTH
    assert resolve_max_seq_length("auto", "phi-3-medium-4k-instruct") == 4096
    assert resolve_max_seq_length("auto", "phi-4") == 16384


def test_gqa_models_have_narrower_qkv() -> None:
    assert get_model("phi-3-medium-4k-instruct").linear_modules["qkv_proj"] == (5120, 7680)
    assert get_model("phi-4-mini-instruct").linear_modules["qkv_proj"] == (3072, 5120)
    assert get_model("phi-3-small-8k-instruct").linear_modules["query_key_value"] == (4096, 6144)


def test_asset_defaults_are_the_assets_exactly() -> None:
    """A few values read from azureml-assets 4b41f8cc by hand (the research's models.yaml)."""
    mini = get_model("phi-3-mini-4k-instruct").asset
    assert mini.verified and mini.archived
    assert mini.model_specific_defaults["learning_rate"] == "5e-6"
    assert mini.model_specific_defaults["save_total_limit"] == "1"
    assert mini.model_specific_defaults["lr_scheduler_type"] == "cosine"
    assert {"learning_rate_min", "learning_rate_max"} <= set(
        mini.model_specific_defaults
    )  # not pipeline inputs
    assert mini.fine_tuning_tasks == ["chat-completion"]
    assert mini.finetune_compute_allow_list == [
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND96amsr_A100_v4",
    ]
    assert (mini.finetune_deprecated, mini.finetune_retired) == (date(2025, 6, 30), date(2025, 8, 30))
    medium = get_model("phi-3-medium-4k-instruct").asset.model_specific_defaults
    assert (medium["apply_lora"], medium["deepspeed_stage"], medium["max_seq_length"]) == (
        "false",
        "3",
        "4096",
    )
    assert get_model("phi-3.5-mini-instruct").asset.model_specific_defaults["max_seq_length"] == "16384"
    assert get_model("phi-3.5-mini-instruct").registry_version == 6
    assert get_model("phi-4").asset.model_specific_defaults["deepspeed_stage"] == "3"
    assert get_model("llama-2-7b").asset.model_specific_defaults["precision"] == "4"  # outside the enum
    bert = get_model("bert-base-uncased").asset
    assert bert.fine_tuning_tasks == ["text-classification", "question-answering"]
    assert get_model("phi-2").tasks == ["text-completion"]  # the asset's text-generation


def test_asset_lists_and_allows() -> None:
    mini = get_model("phi-3-mini-4k-instruct").asset
    assert mini.lists_task("chat-completion") is True and mini.lists_task("text-classification") is False
    assert mini.allows_compute("standard_nc24ads_a100_v4") is True
    assert mini.allows_compute("NC24ads_A100_v4") is True
    assert mini.allows_compute("Standard_ND40rs_v2") is False
    ministral = get_model("ministral-3b").asset
    assert not ministral.verified and ministral.allows_compute("Standard_ND40rs_v2") is None
    assert get_model("gpt-oss-20b").asset.model_specific_defaults == {}


def test_unverified_facts_say_so() -> None:
    for alias in (
        "phi-4-mini-instruct",
        "llama-3.1-8b-instruct",
        "ministral-3b",
        "mistral-nemo",
        "gpt-oss-20b",
    ):
        asset = get_model(alias).asset
        assert not asset.verified and asset.note, alias
    ministral = get_model("ministral-3b")
    assert ministral.hf_id is None and ministral.architecture is None
    assert ministral.registry_uri.endswith("/labels/latest")
    with pytest.raises(CatalogError, match="architecture"):
        ministral.lora_trainable_parameters(8)


# ---- VM sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Standard_NC24ads_A100_v4", id="exact"),
        pytest.param("standard_nc24ads_a100_v4", id="lower"),
        pytest.param("STANDARD_NC24ADS_A100_V4", id="upper"),
        pytest.param("NC24ads_A100_v4", id="no-prefix"),
    ],
)
def test_sku_lookup_is_case_insensitive(name: str) -> None:
    sku = get_sku(name)
    assert sku.name == "Standard_NC24ads_A100_v4"
    assert (sku.gpus, sku.gpu_memory_gib, sku.compute_capability) == (1, 80, 8.0)
    assert sku.supports_bf16


def test_unknown_sku_lists_known_and_suggests() -> None:
    with pytest.raises(CatalogError) as caught:
        get_sku("Standard_NC24ads_A100_v5")
    assert "Standard_ND96isr_H100_v5" in caught.value.message
    assert caught.value.hint is not None and "Standard_NC24ads_A100_v4" in caught.value.hint


def test_catalog_holds_the_expected_sizes() -> None:
    expected = {
        "Standard_NC4as_T4_v3",
        "Standard_NC8as_T4_v3",
        "Standard_NC16as_T4_v3",
        "Standard_NC64as_T4_v3",
        "Standard_NC6s_v3",
        "Standard_NC12s_v3",
        "Standard_NC24s_v3",
        "Standard_ND40rs_v2",
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND96amsr_A100_v4",
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
        "Standard_ND96isr_H100_v5",
        "Standard_ND96isr_H200_v5",
        "Standard_DS3_v2",
        "Standard_E4s_v3",
    }
    assert set(sku_names()) == expected
    assert len(sku_names()) == len(expected)


@pytest.mark.parametrize(
    ("gpu_word", "capability", "has_bf16"),
    [("T4", 7.5, False), ("V100", 7.0, False), ("A100", 8.0, True), ("H100", 9.0, True), ("H200", 9.0, True)],
)
def test_compute_capability_and_bf16_by_gpu(gpu_word: str, capability: float, has_bf16: bool) -> None:
    matching = [s for s in list_skus() if s.gpu and gpu_word in s.gpu]
    assert matching
    for sku in matching:
        assert sku.compute_capability == capability
        assert sku.supports_bf16 is has_bf16
        assert (sku.peak_bf16_tflops is not None) is has_bf16
        assert sku.peak_fp16_tflops is not None and sku.peak_fp16_tflops > 0


def test_every_sku_is_sourced_and_priced_or_explained() -> None:
    for sku in list_skus():
        assert sku.source.startswith("https://learn.microsoft.com/")
        assert sku.price_region == "eastus"
        if sku.price_per_hour_usd is None:
            assert sku.note and "price" in sku.note.lower()
        else:
            assert sku.price_per_hour_usd > 0


def test_cpu_sizes_have_no_gpu() -> None:
    cpu = [s for s in list_skus() if not s.is_gpu]
    assert {s.name for s in cpu} == {"Standard_DS3_v2", "Standard_E4s_v3"}
    for sku in cpu:
        assert sku.gpu is None and sku.total_gpu_memory_gib == 0 and not sku.supports_bf16


def test_multi_gpu_interconnects() -> None:
    assert get_sku("Standard_ND96isr_H100_v5").nvlink and get_sku("Standard_ND96isr_H100_v5").infiniband
    assert get_sku("Standard_ND96amsr_A100_v4").total_gpu_memory_gib == 640
    assert get_sku("Standard_ND96isr_H200_v5").gpu_memory_gib == 141
    assert not get_sku("Standard_NC96ads_A100_v4").infiniband


def test_retired_sizes_say_so() -> None:
    nc6 = get_sku("Standard_NC6s_v3")
    assert nc6.retirement_date == date(2025, 9, 30)
    assert nc6.is_retired(date(2026, 1, 1)) and not nc6.is_retired(date(2025, 1, 1))
    assert not get_sku("Standard_NC24ads_A100_v4").is_retired(date(2026, 1, 1))


def test_list_results_are_copies() -> None:
    first = list_skus()
    first.clear()
    assert list_skus()
