"""The Kaito catalog: its tuning presets (our models -> Kaito's preset names, disk sizes), the admission facts the
CRD schema does not encode (kaito.yaml), and the Workspace CRD itself (kaito_workspace_crd.yaml)."""

from __future__ import annotations

import functools
import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azfinetune.errors import CatalogError

__all__ = [
    "KaitoCatalog",
    "KaitoPreset",
    "find_kaito_preset",
    "kaito_catalog",
    "kaito_crd",
    "kaito_preset_names",
    "kaito_workspace_schema",
    "parse_quantity",
]

_HERE = Path(__file__).parent
_FILE = _HERE / "kaito.yaml"
_CRD_FILE = _HERE / "kaito_workspace_crd.yaml"
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_UNITS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
}


def parse_quantity(text: str) -> int:
    """A Kubernetes quantity ('80Gi', '500M') in bytes."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 80Gi")
    return int(float(match[1]) * _UNITS[match[2]])


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KaitoPreset(_Fact):
    """One Kaito preset that tunes: its name, the Hugging Face repository it loads, our catalog's alias of it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    hf_id: str = Field(pattern=r"^[^/\s]+/[^/\s]+$")
    model: str | None = Field(
        description="The alias in models.yaml; None where our catalog does not know it."
    )
    disk: str = Field(description="DiskStorageRequirement of the preset, a Kubernetes quantity.")

    @property
    def disk_bytes(self) -> int:
        return parse_quantity(self.disk)


class KaitoCatalog(_Fact):
    """kaito.yaml: the release it describes, its presets and the admission facts."""

    sources: dict[str, str]
    release: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    retrieved: date
    api_version: str
    methods: list[str]
    max_count: int = Field(ge=1)
    config_sections: list[str]
    output_base_dir: str
    default_output_dir: str
    data_dir: str
    phi3_default_target_modules: list[str]
    metadata_hosts: list[str]
    presets: list[KaitoPreset] = Field(min_length=1)

    def preset(self, name: str) -> KaitoPreset | None:
        """The preset of this (exact, lowercase) name, else None."""
        return next((p for p in self.presets if p.name == name), None)


@functools.cache
def kaito_catalog() -> KaitoCatalog:
    """The Kaito catalog, read once."""
    with _FILE.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    try:
        catalog = KaitoCatalog.model_validate(raw)
    except ValidationError as error:
        raise CatalogError(f"{_FILE.name} is invalid:\n{error}", hint="the package data is damaged") from None
    names = [p.name for p in catalog.presets]
    if len(set(names)) != len(names):
        raise CatalogError(f"{_FILE.name}: a preset appears twice")
    return catalog


def kaito_preset_names() -> list[str]:
    """Every tuning preset's name, in catalog order."""
    return [p.name for p in kaito_catalog().presets]


def find_kaito_preset(model_ref: str) -> KaitoPreset | None:
    """The Kaito preset that tunes the spec's model: by our catalog alias (any reference `find_model` takes: an
    alias, hf:<org>/<name>, a registry URI), or by the preset's own Hugging Face id; None if there is none."""
    from azfinetune.catalog import find_model

    info = find_model(model_ref)
    catalog = kaito_catalog()
    if info is not None:
        return next((p for p in catalog.presets if p.model == info.alias), None)
    text = model_ref.strip().lower()
    hf_id = text[3:] if text.startswith("hf:") else text
    return next((p for p in catalog.presets if p.hf_id.lower() == hf_id), None)


@functools.cache
def kaito_crd() -> dict[str, Any]:
    """The Workspace CustomResourceDefinition (kaito.sh), as Kaito ships it."""
    with _CRD_FILE.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
        raise CatalogError(
            f"{_CRD_FILE.name} is not a CustomResourceDefinition", hint="the package data is damaged"
        )
    return document


def kaito_workspace_schema(version: str = "v1beta1") -> dict[str, Any]:
    """The openAPIV3Schema of one served version of the Workspace CRD."""
    for entry in kaito_crd()["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    served = [entry["name"] for entry in kaito_crd()["spec"]["versions"]]
    raise CatalogError(f"the Workspace CRD has no version {version!r}", hint=f"it serves {', '.join(served)}")
