"""Where a job's effective values come from: the spec, the model's registry asset, a default (component, ours)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AZFINETUNE_DEFAULT",
    "COMPONENT_DEFAULT",
    "DERIVED",
    "MODEL_ASSET",
    "SERVICE_DEFAULT",
    "SPEC",
    "ValueSource",
]

#: The user wrote it in the spec (or with --set).
SPEC = "spec"
#: Computed from the spec and its data (warmup steps from a ratio, GPUs from the VM size, columns in the file).
DERIVED = "derived"
#: The model's registry asset (its model_specific_defaults), sent because the spec sets nothing.
MODEL_ASSET = "model asset"
#: Not sent: the registry component's declared default applies.
COMPONENT_DEFAULT = "component default"
#: azfinetune's spec default, tuned for its own training code (command, pipeline and local jobs).
AZFINETUNE_DEFAULT = "azfinetune default"
#: Not sent: Azure's fine-tuning service picks its own (model-specific) value.
SERVICE_DEFAULT = "service default"


@dataclass(frozen=True)
class ValueSource:
    """One input of a job (a registry input, an entry-point flag, a hyperparameter): its effective value and
    where it comes from. `sent` is False when the job leaves it out and a default on the other side applies;
    `value` is then that default (None when it is the service's own and not known here)."""

    name: str
    value: Any
    source: str
    sent: bool
    spec_key: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if hasattr(value, "path") and hasattr(value, "type"):  # an asset input: say what it points at
            value = f"{value.type}:{value.path}"
        return {
            "name": self.name,
            "value": value,
            "source": self.source,
            "sent": self.sent,
            "spec_key": self.spec_key,
            "note": self.note,
        }
