"""token_plan(): Foundry's price = training tokens × epochs × the rate of the training type, or "rate unknown"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import azfinetune.catalog as catalog
from azfinetune.catalog import FoundryModel, find_foundry_model
from azfinetune.errors import PlanError
from azfinetune.planner import token_plan
from tests.conftest import checked

REPORT = {"stats": {"examples": 100, "tokens": {"tokens_per_epoch": 250_000, "max": 900}}}


def spec(
    write_spec: Any, *, model: str = "gpt-4.1-mini", training_type: str = "global", epochs: int = 2
) -> Any:
    return checked(
        write_spec(
            f"name: p1\nmodel: {model}\ndata: {{train: train.jsonl}}\ntraining: {{epochs: {epochs}}}\n"
            f"target: {{kind: foundry, training_type: {training_type}}}\n"
        )
    )


def with_prices(monkeypatch: pytest.MonkeyPatch, model_id: str, **prices: float) -> FoundryModel:
    """The catalog as it will read once a maintainer has filled in a price (the packaged file has none)."""
    real = find_foundry_model(model_id)
    assert real is not None
    priced = real.model_copy(update={"prices": real.prices.model_copy(update=prices)})
    monkeypatch.setattr(
        catalog,
        "find_foundry_model",
        lambda ref: priced if find_foundry_model(ref) is real else find_foundry_model(ref),
    )
    return priced


def test_billed_tokens_are_training_tokens_times_epochs(write_spec: Any) -> None:
    result = token_plan(spec(write_spec, epochs=3), data_report=REPORT)
    assert result.token_estimate.tokens_per_epoch == 250_000
    assert result.billed_tokens == 750_000 and result.epochs == 3


def test_without_a_price_the_rate_is_unknown_and_no_number_is_made_up(write_spec: Any) -> None:
    result = token_plan(spec(write_spec), data_report=REPORT)
    assert result.rate_usd_per_1m is None and result.cost_usd is None
    assert result.cost_note.startswith("rate unknown") and "2026-10-07" in result.cost_note
    assert "azure.microsoft.com/pricing" in result.cost_note
    assert all(t.cost_usd is None for t in result.tiers)
    assert result.to_dict()["cost_usd"] is None


def test_a_catalog_price_gives_the_cost_with_its_date(
    write_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_prices(monkeypatch, "gpt-4.1-mini", global_=2.0)
    result = token_plan(spec(write_spec), data_report=REPORT)
    assert result.rate_usd_per_1m == 2.0 and result.rate_basis == "catalog"
    assert result.cost_usd == pytest.approx(500_000 / 1e6 * 2.0)
    assert "prices as of 2026-10-07" in result.cost_note and "500,000 billed tokens" in result.cost_note


def test_a_given_price_wins(write_spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with_prices(monkeypatch, "gpt-4.1-mini", global_=2.0)
    result = token_plan(spec(write_spec), data_report=REPORT, prices={"global": 3.0})
    assert (result.rate_usd_per_1m, result.rate_basis, result.cost_usd) == (3.0, "given", pytest.approx(1.5))
    assert "given by you" in result.cost_note


def test_the_developer_tier_is_named_when_it_would_be_cheaper(write_spec: Any) -> None:
    result = token_plan(spec(write_spec), data_report=REPORT, prices={"global": 2.0})
    developer = next(t for t in result.tiers if t.training_type == "developer")
    assert developer.rate_usd_per_1m == 1.0 and developer.rate_basis.startswith("derived: 50% of Global")
    assert developer.cost_usd == pytest.approx(0.5)
    (advice,) = [r for r in result.recommendations if "Developer" in r]
    assert "would be cheaper: about 0.50 USD instead of 1.00 USD" in advice
    assert "target.training_type: developer" in advice


def test_without_prices_the_developer_advice_is_the_documented_half(write_spec: Any) -> None:
    result = token_plan(spec(write_spec), data_report=REPORT)
    assert any("about 50% of the Global price" in r for r in result.recommendations)


def test_open_models_have_no_developer_tier_to_recommend(write_spec: Any) -> None:
    result = token_plan(spec(write_spec, model="Ministral-3B"), data_report=REPORT, prices={"global": 2.0})
    (advice,) = result.recommendations
    assert "not offered for Ministral-3B" in advice
    assert next(t for t in result.tiers if t.training_type == "developer").cost_usd is None


def test_on_the_developer_tier_the_plan_says_it_may_be_paused(write_spec: Any) -> None:
    result = token_plan(
        spec(write_spec, training_type="developer"), data_report=REPORT, prices={"developer": 1.0}
    )
    assert result.cost_usd == pytest.approx(0.5) and not result.recommendations
    assert any("paused" in w for w in result.warnings)
    globally = next(t for t in result.tiers if t.training_type == "global")
    assert globally.rate_usd_per_1m == 2.0 and "Developer / 50%" in globally.rate_basis


def test_standard_is_told_global_is_cheaper(write_spec: Any) -> None:
    result = token_plan(spec(write_spec, training_type="standard"), data_report=REPORT)
    assert any("Global training is 10-30% cheaper than Standard" in r for r in result.recommendations)


def test_without_a_report_tokens_come_from_the_file_size(write_spec: Any, tmp_path: Path) -> None:
    result = token_plan(spec(write_spec))
    size = (tmp_path / "train.jsonl").stat().st_size
    assert result.billed_tokens == round(int(size / 4) * 2)
    assert any("file size" in w for w in result.warnings)


def test_only_foundry_specs(write_spec: Any) -> None:
    serverless = checked(
        write_spec(
            "name: s\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\ntarget: {kind: serverless}\n"
        )
    )
    with pytest.raises(PlanError, match="foundry specs"):
        token_plan(serverless)


def test_to_dict_is_json_ready(write_spec: Any) -> None:
    import json

    data = token_plan(spec(write_spec), data_report=REPORT, prices={"global": 2.0}).to_dict()
    assert json.loads(json.dumps(data))["billing"] == "tokens"
    assert data["price_as_of"] == "2026-10-07" and data["formula"].startswith(
        "billed tokens = training tokens"
    )
