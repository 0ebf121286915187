"""token_plan(): what a Foundry fine-tuning job costs the way Foundry bills it — training tokens × epochs × rate.

The rate comes from the Foundry catalog (per training type, with its date and source) or from the caller; where
neither gives one, the plan says the rate is unknown instead of inventing it. Tiers are compared with the relations
the cost docs state (Developer is half of Global), and the plan says when the Developer tier would be cheaper."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.errors import PlanError
from azfinetune.planner._assumptions import DEFAULT_ASSUMPTIONS, PlannerAssumptions
from azfinetune.planner._memory import TrainingSetup
from azfinetune.planner._time import TokenEstimate, training_tokens

if TYPE_CHECKING:
    from azfinetune.catalog import FoundryModel
    from azfinetune.spec import FineTuneSpec

__all__ = ["TierCost", "TokenPlan", "token_plan"]

_TIERS = ("global", "standard", "developer")


@dataclass(frozen=True)
class TierCost:
    """One training type's rate and cost for this job; `rate_basis` says where the rate came from."""

    training_type: str
    title: str
    offered: bool
    rate_usd_per_1m: float | None
    rate_basis: str  # "catalog" | "given" | "derived: ..." | "unknown"
    cost_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "training_type": self.training_type,
            "title": self.title,
            "offered": self.offered,
            "rate_usd_per_1m_tokens": self.rate_usd_per_1m,
            "rate_basis": self.rate_basis,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 2),
        }


@dataclass
class TokenPlan:
    """The cost of a token-billed job: billed tokens (training tokens × epochs), the rate, the total, the tiers."""

    spec_name: str
    model: str
    target_kind: str
    training_type: str
    epochs: int
    token_estimate: TokenEstimate
    billed_tokens: int | None
    rate_usd_per_1m: float | None
    rate_basis: str
    price_as_of: date
    price_source: str
    cost_usd: float | None
    cost_note: str
    tiers: list[TierCost] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    formula: str = "billed tokens = training tokens × epochs; cost = billed tokens × rate per token"

    @property
    def billing(self) -> str:
        return "tokens"

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_name,
            "model": self.model,
            "target_kind": self.target_kind,
            "billing": self.billing,
            "training_type": self.training_type,
            "epochs": self.epochs,
            "tokens_per_epoch": self.token_estimate.tokens_per_epoch,
            "token_estimate": self.token_estimate.to_dict(),
            "billed_tokens": self.billed_tokens,
            "rate_usd_per_1m_tokens": self.rate_usd_per_1m,
            "rate_basis": self.rate_basis,
            "price_as_of": self.price_as_of.isoformat(),
            "price_source": self.price_source,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 2),
            "cost_note": self.cost_note,
            "formula": self.formula,
            "tiers": [tier.to_dict() for tier in self.tiers],
            "recommendations": list(self.recommendations),
            "warnings": list(self.warnings),
        }


def _rates(model: FoundryModel, given: Mapping[str, float]) -> dict[str, tuple[float | None, str]]:
    """(rate, basis) per training type: given > catalog > derived from the documented relations > unknown."""
    from azfinetune.catalog import foundry_catalog

    share = foundry_catalog().developer_of_global
    rates: dict[str, tuple[float | None, str]] = {}
    for tier in _TIERS:
        if tier in given:
            rates[tier] = (float(given[tier]), "given")
        elif model.prices.of(tier) is not None:
            rates[tier] = (model.prices.of(tier), "catalog")
        else:
            rates[tier] = (None, "unknown")
    global_rate = rates["global"][0]
    if rates["developer"][0] is None and global_rate is not None:
        rates["developer"] = (global_rate * share, f"derived: {share:.0%} of Global (C1)")
    if (
        rates["global"][0] is None
        and rates["developer"][0] is not None
        and rates["developer"][1] != "unknown"
    ):
        rates["global"] = (rates["developer"][0] / share, f"derived: Developer / {share:.0%} (C1)")
    return rates


def token_plan(
    spec: FineTuneSpec | str | Path | Mapping[str, Any],
    *,
    data_report: Any = None,
    prices: Mapping[str, float] | None = None,
    assumptions: PlannerAssumptions | None = None,
) -> TokenPlan:
    """Plan a foundry spec's cost: training tokens (from `data_report`, else the file size) × epochs × the rate of
    its training type (`prices` {training type: USD per 1M tokens} override the catalog). Pure: no network."""
    from azfinetune.catalog import find_foundry_model, foundry_catalog
    from azfinetune.planner._plan import _spec_from

    assume = assumptions or DEFAULT_ASSUMPTIONS
    spec = _spec_from(spec)
    target = spec.target
    tier = str(getattr(target, "training_type", ""))
    if spec.target.kind != "foundry" or not tier:
        raise PlanError(f"token_plan plans foundry specs, not target.kind {spec.target.kind}")
    model = find_foundry_model(spec.model)
    if model is None:
        raise PlanError(
            f"{spec.model} is not in the Foundry catalog", hint="azfinetune validate lists the models"
        )
    catalog = foundry_catalog()
    types: dict[str, Any] = {str(k): v for k, v in catalog.training_types.items()}
    epochs = int(spec.training.epochs)
    tokens = training_tokens(spec, TrainingSetup(), data_report, assume)
    billed = tokens.tokens
    rates = _rates(model, prices or {})
    tiers: list[TierCost] = []
    for name in _TIERS:
        rate, basis = rates[name]
        offered = name in model.training_types
        cost = billed / 1e6 * rate if billed is not None and rate is not None and offered else None
        tiers.append(TierCost(name, types[name].title, offered, rate, basis, cost))
    own = next((t for t in tiers if t.training_type == tier), None)
    rate, basis = rates.get(tier, (None, "unknown"))
    cost = own.cost_usd if own is not None else None
    title = types[tier].title if tier in types else tier
    source = catalog.sources.get(model.price_source, model.price_source)
    url = source.split()[0] if source else model.price_source
    when = "given by you" if basis == "given" else f"{basis}, prices as of {model.price_as_of}"
    if rate is None:
        note = (
            f"rate unknown: the catalog (prices as of {model.price_as_of}) has no {title} training price for "
            f"{model.id}; see {url}, and give the rate to plan with it"
        )
    elif billed is None:
        note = f"{rate:g} USD per 1M training tokens ({title}, {when}); tokens unknown, so no total"
    else:
        note = f"{billed:,} billed tokens × {rate:g} USD per 1M ({title}, {when})"
    recommendations = _advice(model, tier, tiers, catalog.developer_of_global)
    warnings: list[str] = []
    if tokens.tokens is None:
        warnings.append(f"training tokens unknown ({tokens.source}): no billed-token count")
    elif tokens.source.startswith("file size"):
        warnings.append(
            "tokens estimated from the file size (4 bytes per token, JSON keys included): run `azfinetune data "
            "validate` for a count; the service counts with the model's own tokenizer"
        )
    if tier == "developer":
        warnings.append(
            "Developer tier jobs may be paused by the system and resumed later (paused time is free)"
        )
    return TokenPlan(
        spec_name=spec.name,
        model=model.id,
        target_kind=spec.target.kind,
        training_type=tier,
        epochs=epochs,
        token_estimate=tokens,
        billed_tokens=billed,
        rate_usd_per_1m=rate,
        rate_basis=basis,
        price_as_of=model.price_as_of,
        price_source=source,
        cost_usd=cost,
        cost_note=note,
        tiers=tiers,
        recommendations=recommendations,
        warnings=warnings,
    )


def _usd(value: float) -> str:
    return "< 0.01 USD" if value < 0.01 else f"{value:,.2f} USD"


def _advice(model: FoundryModel, tier: str, tiers: list[TierCost], developer_share: float) -> list[str]:
    by_name = {t.training_type: t for t in tiers}
    developer = by_name["developer"]
    own = by_name.get(tier)
    out: list[str] = []
    if tier != "developer":
        if not developer.offered:
            out.append(
                f"the Developer tier ({developer_share:.0%} of the Global price, pre-emptible) is not offered for "
                f"{model.id}"
            )
        elif own is not None and own.cost_usd is not None and developer.cost_usd is not None:
            if developer.cost_usd < own.cost_usd:
                out.append(
                    f"the Developer tier would be cheaper: about {_usd(developer.cost_usd)} instead of "
                    f"{_usd(own.cost_usd)} — pre-emptible spot capacity, no data residency: "
                    "target.training_type: developer"
                )
        else:
            out.append(
                f"the Developer tier would be cheaper: about {developer_share:.0%} of the Global price (C1) — "
                "pre-emptible spot capacity (paused time is not charged), no data residency: "
                "target.training_type: developer"
            )
    if tier == "standard" and by_name["global"].offered:
        out.append(
            "Global training is 10-30% cheaper than Standard (C1), but data and weights may leave the region: "
            "target.training_type: global"
        )
    return out
