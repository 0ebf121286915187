"""Each effective value of a spec's job and where it comes from: spec, model asset, component or our default.

Registry pipelines send what the user set, then the model asset's defaults (those the component declares), and
leave the rest to the component; our own command, pipeline and local jobs run with azfinetune's defaults; Azure's
fine-tuning jobs take only the hyperparameters the user set and pick the rest themselves."""

from __future__ import annotations

from azfinetune.spec import FineTuneSpec
from azfinetune.targets._provenance import (
    AZFINETUNE_DEFAULT,
    COMPONENT_DEFAULT,
    DERIVED,
    MODEL_ASSET,
    SERVICE_DEFAULT,
    SPEC,
    ValueSource,
)
from azfinetune.targets._registry import get_target

__all__ = [
    "AZFINETUNE_DEFAULT",
    "COMPONENT_DEFAULT",
    "DERIVED",
    "MODEL_ASSET",
    "SERVICE_DEFAULT",
    "SPEC",
    "ValueSource",
    "value_sources",
]


def value_sources(spec: FineTuneSpec) -> list[ValueSource]:
    """Every setting the spec's job carries (or leaves to the other side), with its effective value and source:
    the spec's target answers (registry-pipeline: the component's inputs; serverless and finetuning-job: the
    service's hyperparameters; our own kinds: the entry point's flags). Offline; the spec's rules are not run."""
    return get_target(spec.target.kind).value_sources(spec)
