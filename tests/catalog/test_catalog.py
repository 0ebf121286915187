"""Tests of the model and VM-size catalogs: lookups, errors, and the internal consistency of the facts."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from azfinetune.catalog import (
    ModelInfo,
    find_model,
    get_model,
    get_sku,
    list_models,
    list_skus,
    model_aliases,
    sku_names,
)
from azfinetune.errors import CatalogError, UserInputError

EXPECTED_ALIASES = [
    "phi-3-medium-128k-instruct",
    "phi-3-medium-4k-instruct",
    "phi-3-mini-128k-instruct",
    "phi-3-mini-4k-instruct",
    "phi-3-small-128k-instruct",
    "phi-3-small-8k-instruct",
    "phi-3.5-mini-instruct",
    "phi-4-mini-instruct",
]
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
        get_model("gpt-2")
    assert caught.value.hint is not None and "hf:<org>/<name>" in caught.value.hint


def test_registry_uri_round_trips() -> None:
    for model in list_models():
        assert find_model(model.registry_uri) is model
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
    assert get_model("phi-3-small-128k-instruct").serverless is None


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
    assert any(f"huggingface.co/{model.hf_id}" in source for source in model.sources)
    if model.serverless is not None:
        assert model.serverless.source.startswith("https://")


@pytest.mark.parametrize("model", models_by_id())
def test_alias_is_the_lowercase_hf_name(model: ModelInfo) -> None:
    assert model.alias == model.hf_id.split("/")[1].lower()
    assert model.registry_asset.lower() == model.alias
    assert model.publisher == "Microsoft" and model.microsoft
    assert model.tasks == ["chat-completion"]
    assert set(model.lora_target_modules) <= set(model.linear_modules)


@pytest.mark.parametrize("model", models_by_id())
def test_linear_module_shapes_match_the_architecture(model: ModelInfo) -> None:
    arch = model.architecture
    hidden, inter = arch.hidden_size, arch.intermediate_size
    qkv_out = (arch.num_attention_heads + 2 * arch.num_key_value_heads) * arch.head_dim
    mods = model.linear_modules
    if arch.model_type == "phi3":
        assert set(mods) == FUSED_PHI3
        assert mods["qkv_proj"] == (hidden, qkv_out)
        assert mods["o_proj"] == (arch.num_attention_heads * arch.head_dim, hidden)
        assert mods["gate_up_proj"] == (hidden, 2 * inter)
        assert mods["down_proj"] == (inter, hidden)
    else:
        assert arch.model_type == "phi3small"
        assert set(mods) == PHI3_SMALL
        assert mods["query_key_value"] == (hidden, qkv_out)
        assert mods["dense"] == (hidden, hidden)
        assert mods["up_proj"] == (hidden, 2 * inter)
        assert mods["down_proj"] == (inter, hidden)


@pytest.mark.parametrize("model", models_by_id())
def test_parameter_count_reproduced_from_shapes(model: ModelInfo) -> None:
    arch = model.architecture
    linear = sum(i * o for i, o in model.linear_modules.values()) * arch.num_hidden_layers
    estimate = linear + arch.embedding_parameters
    # Norms (and phi3small's biases) are the only parameters the estimate leaves out.
    assert abs(arch.parameters - estimate) / arch.parameters < 0.01
    assert estimate <= arch.parameters


def test_gqa_models_have_narrower_qkv() -> None:
    assert get_model("phi-3-medium-4k-instruct").linear_modules["qkv_proj"] == (5120, 7680)
    assert get_model("phi-4-mini-instruct").linear_modules["qkv_proj"] == (3072, 5120)
    assert get_model("phi-3-small-8k-instruct").linear_modules["query_key_value"] == (4096, 6144)


def test_registry_pipeline_defaults_are_pipeline_strings() -> None:
    allowed = {
        "apply_lora": {"true", "false"},
        "apply_deepspeed": {"true", "false"},
        "deepspeed_stage": {"2", "3"},
        "precision": {"16", "32"},
    }
    for model in list_models():
        for key, value in model.registry_pipeline_defaults.items():
            assert value in allowed[key], (model.alias, key, value)
    assert get_model("phi-3-mini-4k-instruct").registry_pipeline_defaults["deepspeed_stage"] == "2"
    assert get_model("phi-3-medium-4k-instruct").registry_pipeline_defaults["deepspeed_stage"] == "3"


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
