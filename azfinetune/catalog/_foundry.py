"""The Foundry fine-tuning catalog: models, training types, ranges, data rules and dated prices (foundry.yaml)."""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from azfinetune.errors import CatalogError

__all__ = [
    "FoundryCatalog",
    "FoundryDataRules",
    "FoundryModel",
    "FoundryPrices",
    "FoundryRange",
    "FoundryRanges",
    "FoundryTrainingType",
    "TrainingTypeName",
    "find_foundry_model",
    "foundry_catalog",
    "foundry_model_ids",
]

_FILE = Path(__file__).parent / "foundry.yaml"

#: Our names of Foundry's training types (the spec's `target.training_type`).
TrainingTypeName = Literal["global", "standard", "developer", "data-zone"]


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class FoundryTrainingType(_Fact):
    """One training type: the `trainingType` value the service takes (None: undocumented, so not sendable)."""

    request_value: str | None
    title: str
    note: str
    source: str


class FoundryRange(_Fact):
    """Bounds of one hyperparameter: `min`/`max` inclusive, `above` exclusive; None = no documented bound."""

    min: float | None = None
    max: float | None = None
    above: float | None = None

    def contains(self, value: float) -> bool:
        if self.min is not None and value < self.min:
            return False
        if self.above is not None and value <= self.above:
            return False
        return self.max is None or value <= self.max

    def describe(self) -> str:
        """'1-10', 'above 0 and at most 10', 'at least 1'."""
        low = self.min if self.min is not None else self.above
        if self.min is not None and self.max is not None:
            return f"{self.min:g}-{self.max:g}"
        parts = []
        if low is not None:
            parts.append(f"at least {low:g}" if self.min is not None else f"above {low:g}")
        if self.max is not None:
            parts.append(f"at most {self.max:g}")
        return " and ".join(parts) or "any value"


class FoundryRanges(_Fact):
    """The service's hyperparameter ranges for a family of models, with their source."""

    n_epochs: FoundryRange
    batch_size: FoundryRange
    learning_rate_multiplier: FoundryRange
    source: str


class FoundryDataRules(_Fact):
    """What the service checks in a training or validation file."""

    format: str
    encoding: str
    max_file_bytes: int = Field(gt=0)
    min_examples: int = Field(gt=0)
    weight_values: list[int]
    suffix_max_chars: int = Field(gt=0)
    metadata_max_pairs: int = Field(gt=0)
    source: str


class FoundryPrices(_Fact):
    """USD per 1M training tokens by training type; None where no source gives the number."""

    global_: float | None = Field(default=None, alias="global", ge=0)
    standard: float | None = Field(default=None, ge=0)
    developer: float | None = Field(default=None, ge=0)

    def of(self, training_type: str) -> float | None:
        return {"global": self.global_, "standard": self.standard, "developer": self.developer}.get(
            training_type
        )


class FoundryModel(_Fact):
    """A model Foundry fine-tunes: its request id, methods, training types, and its dated prices."""

    id: str = Field(description="The `model` the create request takes, e.g. Ministral-3B.")
    aliases: list[str] = Field(default_factory=list)
    version: str | None = None
    hf_id: str | None = None
    publisher: str
    family: Literal["open", "openai"]
    methods: list[Literal["supervised", "dpo"]] = Field(min_length=1)
    training_types: list[TrainingTypeName] = Field(min_length=1)
    standard_regions: list[str] = Field(default_factory=list)
    pause: bool
    deploy_api: bool
    status: str
    prices: FoundryPrices
    price_as_of: date
    price_source: str
    sources: list[str] = Field(min_length=1)
    note: str | None = None

    @property
    def names(self) -> list[str]:
        """Every name that refers to this model, lowercase: id, aliases and hf: id."""
        names = [self.id.lower(), *(a.lower() for a in self.aliases)]
        if self.hf_id:
            names += [self.hf_id.lower(), f"hf:{self.hf_id.lower()}"]
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _standard_needs_regions(self) -> FoundryModel:
        if "standard" in self.training_types and not self.standard_regions:
            raise ValueError("a model with standard training lists its standard_regions")
        return self


class FoundryCatalog(_Fact):
    """foundry.yaml, checked: every model's training types, family and sources are defined in the file."""

    sources: dict[str, str]
    retrieved: date
    training_types: dict[TrainingTypeName, FoundryTrainingType]
    price_relations: dict[str, Any]
    ranges: dict[str, FoundryRanges]
    data_rules: FoundryDataRules
    models: list[FoundryModel]

    def ranges_of(self, model: FoundryModel) -> FoundryRanges:
        return self.ranges[model.family]

    @property
    def developer_of_global(self) -> float:
        """Developer's price as a share of Global's (C1: "developer (50% discount from global)")."""
        return float(self.price_relations["developer_of_global"])

    @model_validator(mode="after")
    def _references(self) -> FoundryCatalog:
        seen: dict[str, str] = {}
        for model in self.models:
            if model.family not in self.ranges:
                raise ValueError(f"{model.id}: no ranges for family {model.family!r}")
            unknown = [s for s in [*model.sources, model.price_source] if s not in self.sources]
            if unknown:
                raise ValueError(f"{model.id}: unknown sources {unknown}")
            for name in model.names:
                if name in seen:
                    raise ValueError(f"{name!r} names both {seen[name]} and {model.id}")
                seen[name] = model.id
        return self


@functools.cache
def foundry_catalog() -> FoundryCatalog:
    """The packaged Foundry catalog (read once)."""
    with _FILE.open(encoding="utf-8") as handle:
        raw = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        return FoundryCatalog.model_validate(raw)
    except ValidationError as error:
        raise CatalogError(
            f"{_FILE.name} is invalid:\n{error}", hint="the package data is damaged"
        ) from error


def find_foundry_model(ref: str) -> FoundryModel | None:
    """The Foundry model a spec's `model` names (its id, an alias or hf: id, any case), else None."""
    wanted = ref.strip().lower()
    for model in foundry_catalog().models:
        if wanted in model.names:
            return model
    return None


def foundry_model_ids() -> list[str]:
    """The request ids of every model Foundry fine-tunes, in catalog order."""
    return [model.id for model in foundry_catalog().models]
