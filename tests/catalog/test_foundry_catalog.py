"""The Foundry catalog: every fact with its source, prices dated, nothing guessed."""

from __future__ import annotations

from azfinetune.catalog import find_foundry_model, foundry_catalog, foundry_model_ids


def test_the_open_models_of_the_docs() -> None:
    ids = foundry_model_ids()
    for model in ("Ministral-3B", "Qwen-32B", "Llama-3.3-70B-Instruct", "gpt-oss-20b"):
        assert model in ids
        info = find_foundry_model(model)
        assert info is not None and info.family == "open"
        # T1: Global and the US data zone only; no Standard, no Developer; no pausing.
        assert info.training_types == ["global", "data-zone"] and not info.pause and not info.deploy_api


def test_every_model_names_its_sources_and_dates_its_prices() -> None:
    catalog = foundry_catalog()
    for model in catalog.models:
        assert model.sources and all(source in catalog.sources for source in model.sources)
        assert model.price_source in catalog.sources and model.price_as_of <= catalog.retrieved
        # Every model fine-tunes supervised; DPO where the supported-models table says "SFT, DPO".
        assert model.methods[0] == "supervised" and set(model.methods) <= {"supervised", "dpo"}


def test_no_price_is_invented() -> None:
    """No stored source gives a training price: every rate is null until a maintainer fills one in."""
    for model in foundry_catalog().models:
        assert (model.prices.global_, model.prices.standard, model.prices.developer) == (None, None, None)


def test_training_type_request_values() -> None:
    types = foundry_catalog().training_types
    assert {name: t.request_value for name, t in types.items()} == {
        "global": "GlobalStandard",
        "standard": "Standard",
        "developer": "developerTier",
        "data-zone": None,  # undocumented: never sent
    }
    assert foundry_catalog().developer_of_global == 0.5


def test_ranges_and_data_rules() -> None:
    catalog = foundry_catalog()
    open_ranges = catalog.ranges["open"]
    assert (open_ranges.n_epochs.min, open_ranges.n_epochs.max) == (1, 10)
    assert (open_ranges.batch_size.min, open_ranges.batch_size.max) == (1, 32)
    assert not open_ranges.learning_rate_multiplier.contains(
        0
    ) and open_ranges.learning_rate_multiplier.contains(10)
    rules = catalog.data_rules
    assert (rules.max_file_bytes, rules.min_examples, rules.weight_values, rules.suffix_max_chars) == (
        512 * 1024 * 1024,
        10,
        [0, 1],
        18,
    )


def test_lookup_by_alias_and_hf_id() -> None:
    assert find_foundry_model("llama-3.3-70b-instruct") is find_foundry_model(
        "hf:meta-llama/Llama-3.3-70B-Instruct"
    )
    assert find_foundry_model("gpt-4.1-mini").id == "gpt-4.1-mini-2025-04-14"  # type: ignore[union-attr]
    assert find_foundry_model("phi-4-mini-instruct") is None
