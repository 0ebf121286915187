"""The model and GPU-SKU catalogs: sourced facts read from models.yaml and skus.yaml beside this module."""

from __future__ import annotations

import difflib
import functools
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from azfinetune.catalog._foundry import (
    FoundryCatalog,
    FoundryModel,
    FoundryRange,
    FoundryRanges,
    TrainingTypeName,
    find_foundry_model,
    foundry_catalog,
    foundry_model_ids,
)
from azfinetune.catalog._kaito import (
    KaitoCatalog,
    KaitoPreset,
    find_kaito_preset,
    kaito_catalog,
    kaito_crd,
    kaito_preset_names,
    kaito_workspace_schema,
    parse_quantity,
)
from azfinetune.errors import CatalogError

__all__ = [
    "DEFAULT_MAX_SEQ_LENGTH",
    "Architecture",
    "FoundryCatalog",
    "FoundryModel",
    "FoundryRange",
    "FoundryRanges",
    "KaitoCatalog",
    "KaitoPreset",
    "ModelInfo",
    "RegistryAsset",
    "ServerlessInfo",
    "ServerlessStatus",
    "SkuInfo",
    "TrainingTypeName",
    "find_foundry_model",
    "find_kaito_preset",
    "find_model",
    "foundry_catalog",
    "foundry_model_ids",
    "get_model",
    "get_sku",
    "kaito_catalog",
    "kaito_crd",
    "kaito_preset_names",
    "kaito_workspace_schema",
    "known_max_seq_length",
    "list_models",
    "list_skus",
    "model_aliases",
    "parse_quantity",
    "resolve_max_seq_length",
    "sku_names",
]

ServerlessStatus = Literal["available", "deprecated", "retired", "never"]

_HERE = Path(__file__).parent
_MODELS_FILE = _HERE / "models.yaml"
_SKUS_FILE = _HERE / "skus.yaml"

# Both forms the registry accepts: a pinned version or the "latest" label.
_REGISTRY_URI = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<asset>[^/]+)"
    r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))/?$",
    re.IGNORECASE,
)
_SKU_PREFIX = "standard_"
#: Tokens per example assumed for `max_seq_length: auto` when the catalog does not know the model (the planner's
#: estimate only: the job itself reads the model's own maximum from its config).
DEFAULT_MAX_SEQ_LENGTH = 2048


class _Fact(BaseModel):
    """Base of every catalog record: immutable, and a misspelt key in the YAML is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Architecture(_Fact):
    """The numbers from a model's config.json that memory and LoRA arithmetic need."""

    model_type: str = Field(description="config.json model_type, e.g. phi3 or phi3small.")
    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(
        gt=0, description="Equal to num_attention_heads unless the model uses GQA."
    )
    intermediate_size: int = Field(gt=0, description="MLP width (ff_intermediate_size for phi3small).")
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)
    tie_word_embeddings: bool
    parameters: int = Field(gt=0, description="Total parameter count, embeddings included (tied ones once).")
    head_dim: int = Field(
        default=0,
        ge=0,
        description="config.json head_dim where it is not hidden_size / num_attention_heads (Mistral-Nemo: 128).",
    )

    @model_validator(mode="after")
    def _default_head_dim(self) -> Architecture:
        if not self.head_dim:
            # Frozen: the derived default is set once, through object.__setattr__.
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        return self

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus LM head (one matrix when they are tied)."""
        matrices = 1 if self.tie_word_embeddings else 2
        return matrices * self.vocab_size * self.hidden_size

    @model_validator(mode="after")
    def _check_heads(self) -> Architecture:
        if (
            self.head_dim * self.num_attention_heads != self.hidden_size
            and "head_dim" not in self.model_fields_set
        ):
            raise ValueError(
                "hidden_size must be a multiple of num_attention_heads (or head_dim must be given)"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return self


class ServerlessInfo(_Fact):
    """Serverless (MaaS) fine-tuning availability of a model, with the dates it changed."""

    tasks: list[str] = Field(min_length=1)
    regions: list[str] = Field(min_length=1, description="Azure region names, e.g. eastus2.")
    available_from: date
    deprecated: date | None = None
    retired: date | None = None
    alternative: str | None = Field(
        default=None, description="Catalog alias to suggest once this is retired."
    )
    verified: bool = Field(
        default=True,
        description="False: the offer is on record (a sample, an older docs revision) but the current docs do not "
        "confirm it; validate warns.",
    )
    source: str
    note: str | None = None

    def status(self, on: date) -> ServerlessStatus:
        """The state of the offer on a given day; before `available_from` it was not offered at all."""
        if on < self.available_from:
            return "never"
        if self.retired is not None and on >= self.retired:
            return "retired"
        if self.deprecated is not None and on >= self.deprecated:
            return "deprecated"
        return "available"

    @model_validator(mode="after")
    def _check_dates(self) -> ServerlessInfo:
        if self.deprecated is not None and self.deprecated < self.available_from:
            raise ValueError("deprecated is before available_from")
        if self.retired is not None and self.deprecated is not None and self.retired < self.deprecated:
            raise ValueError("retired is before deprecated")
        return self


class RegistryAsset(_Fact):
    """What the Azure ML registry's model asset says about fine-tuning the model (its spec.yaml tags).

    Azure's own training code (registry pipelines, fine-tuning jobs) follows these; azfinetune's own jobs do not
    need them. `model_specific_defaults` are never applied by Azure: the samples merge them into the pipeline's
    inputs client-side, and so does azfinetune (filtered to the inputs the component declares)."""

    verified: bool = Field(
        description="True: read from the asset's spec.yaml in Azure/azureml-assets; False: the asset is not there "
        "and these facts come from samples or docs (tasks are then warned about, not refused)."
    )
    source: str = Field(description="Where the facts were read, with the commit.")
    fine_tuning_tasks: list[str] = Field(
        default_factory=list,
        description="The asset's fineTuningTasks as spec tasks (its text-generation is text-completion); empty = "
        "not on record.",
    )
    model_specific_defaults: dict[str, str] = Field(
        default_factory=dict,
        description="The asset's model_specific_defaults, exactly, as the strings azure-ai-ml sends (keys that are "
        "not pipeline inputs, e.g. learning_rate_min, included).",
    )
    finetune_compute_allow_list: list[str] = Field(
        default_factory=list, description="VM sizes the asset allows for fine-tuning; empty = not on record."
    )
    model_format: Literal["mlflow_model", "custom_model"] = Field(
        default="mlflow_model",
        description="The asset's type: an MLflow model, or a custom (PyTorch) model that registry pipelines take "
        "as pytorch_model_path.",
    )
    archived: bool = Field(default=False, description="isArchived: hidden from the catalog UI.")
    finetune_deprecated: date | None = None
    finetune_retired: date | None = None
    note: str | None = None

    def lists_task(self, task: str) -> bool | None:
        """Whether the asset lists `task` (a spec task) for fine-tuning; None when its tasks are not on record."""
        if not self.fine_tuning_tasks:
            return None
        return task in self.fine_tuning_tasks

    def allows_compute(self, vm_size: str) -> bool | None:
        """Whether `vm_size` is on the asset's fine-tuning compute allow-list (any case); None when there is none."""
        if not self.finetune_compute_allow_list:
            return None
        wanted = vm_size.strip().lower()
        if not wanted.startswith(_SKU_PREFIX):
            wanted = _SKU_PREFIX + wanted
        return wanted in {name.lower() for name in self.finetune_compute_allow_list}


class ModelInfo(_Fact):
    """One fine-tunable model: where it lives (Hugging Face, Azure ML registry), its shape and its asset's facts."""

    alias: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="Lowercase model name.")
    display_name: str
    hf_id: str | None = Field(
        default=None, pattern=r"^[^/\s]+/[^/\s]+$", description="None: no public Hugging Face weights."
    )
    registry: str = Field(description="Azure ML registry that holds the asset, e.g. azureml.")
    registry_asset: str
    registry_version: int | None = Field(default=None, description="None: refer to labels/latest.")
    publisher: str
    microsoft: bool
    asset: RegistryAsset
    max_seq_length: int = Field(
        gt=0,
        description="The model's own maximum tokens per example (its context window): max_seq_length: auto.",
    )
    architecture: Architecture | None = Field(
        default=None, description="None: no public config.json to read it from (the planner cannot size it)."
    )
    linear_modules: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="Per decoder layer: module name -> (in_features, out_features)."
    )
    lora_target_modules: list[str] = Field(default_factory=list)
    chat_template: bool
    onnx_genai_builder: bool = Field(
        default=False,
        description="onnxruntime-genai's model builder exports this architecture (export.onnx).",
    )
    serverless: ServerlessInfo | None = None
    sources: list[str] = Field(min_length=1)
    note: str | None = None

    @property
    def registry_uri(self) -> str:
        base = f"azureml://registries/{self.registry}/models/{self.registry_asset}"
        if self.registry_version is None:
            return f"{base}/labels/latest"
        return f"{base}/versions/{self.registry_version}"

    @property
    def tasks(self) -> list[str]:
        """The fine-tuning tasks the registry asset lists for the model (spec task names)."""
        return list(self.asset.fine_tuning_tasks)

    def serverless_status(self, on: date | None = None) -> ServerlessStatus:
        """ "available" | "deprecated" | "retired" | "never" for serverless fine-tuning on `on` (today)."""
        if self.serverless is None:
            return "never"
        return self.serverless.status(on or date.today())

    def lora_trainable_parameters(self, r: int, target_modules: list[str] | None = None) -> int:
        """Trainable LoRA parameters: r * (in + out) per targeted module, over every decoder layer."""
        if self.architecture is None:
            raise CatalogError(
                f"the catalog does not record the architecture of {self.display_name}",
                hint="its weights are not public; size it with the service's own limits",
            )
        modules = self.lora_target_modules if target_modules is None else target_modules
        unknown = sorted(set(modules) - set(self.linear_modules))
        if unknown:
            raise CatalogError(
                f"{self.alias} has no linear module(s) {', '.join(unknown)}",
                hint=f"its modules are: {', '.join(self.linear_modules)}",
            )
        per_layer = sum(r * (self.linear_modules[m][0] + self.linear_modules[m][1]) for m in modules)
        return per_layer * self.architecture.num_hidden_layers

    @model_validator(mode="after")
    def _check_targets(self) -> ModelInfo:
        if self.architecture is None:
            if self.linear_modules or self.lora_target_modules:
                raise ValueError("linear_modules and lora_target_modules need an architecture")
            return self
        if not self.linear_modules:
            raise ValueError("a model with an architecture lists its linear_modules")
        missing = [m for m in self.lora_target_modules if m not in self.linear_modules]
        if missing:
            raise ValueError(f"lora_target_modules not in linear_modules: {missing}")
        if self.max_seq_length > self.architecture.max_position_embeddings:
            raise ValueError("max_seq_length is above the architecture's max_position_embeddings")
        return self


class SkuInfo(_Fact):
    """One Azure VM size: its accelerators, host, peak throughput and an indicative price."""

    name: str = Field(pattern=r"^Standard_[A-Za-z0-9_]+$")
    family: str
    gpu: str | None = Field(description="GPU model; None for a CPU-only size.")
    gpus: int = Field(ge=0)
    gpu_memory_gib: float = Field(
        ge=0, description="Memory of one GPU (vendor nominal GB, as Azure lists it)."
    )
    compute_capability: float = Field(ge=0, description="CUDA compute capability; 0.0 for a CPU-only size.")
    vcpus: int = Field(gt=0)
    ram_gib: float = Field(gt=0)
    peak_bf16_tflops: float | None = Field(description="Dense peak per GPU; None where the GPU has no bf16.")
    peak_fp16_tflops: float | None = Field(description="Dense tensor-core peak per GPU.")
    nvlink: bool
    infiniband: bool
    price_per_hour_usd: float | None = Field(
        description="Indicative pay-as-you-go Linux price; None if unknown."
    )
    price_region: str
    price_date: date
    source: str
    price_source: str | None = None
    retirement_date: date | None = Field(default=None, description="Azure retires the size on this day.")
    note: str | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def supports_bf16(self) -> bool:
        return self.is_gpu and self.compute_capability >= 8.0

    @property
    def total_gpu_memory_gib(self) -> float:
        return self.gpus * self.gpu_memory_gib

    def is_retired(self, on: date | None = None) -> bool:
        return self.retirement_date is not None and (on or date.today()) >= self.retirement_date

    @model_validator(mode="after")
    def _check_gpu_fields(self) -> SkuInfo:
        if self.gpus == 0 and (self.gpu is not None or self.gpu_memory_gib or self.compute_capability):
            raise ValueError("a CPU-only size has gpu: null, gpu_memory_gib: 0 and compute_capability: 0")
        if self.gpus > 0 and (self.gpu is None or not self.gpu_memory_gib or not self.compute_capability):
            raise ValueError("a GPU size needs gpu, gpu_memory_gib and compute_capability")
        return self


def _load_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        # Safe either way: the C loader is only the faster build of SafeLoader.
        return yaml.load(handle, Loader=loader)


def _records(path: Path, key: str) -> list[dict[str, Any]]:
    document = _load_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise CatalogError(
            f"{path.name}: expected a top-level '{key}:' list", hint="the package data is damaged"
        )
    return list(document[key])


@functools.cache
def _models() -> dict[str, ModelInfo]:
    models: dict[str, ModelInfo] = {}
    for raw in _records(_MODELS_FILE, "models"):
        try:
            model = ModelInfo.model_validate(raw)
        except ValidationError as exc:
            alias = raw.get("alias", "?") if isinstance(raw, dict) else "?"
            raise CatalogError(f"{_MODELS_FILE.name}: entry {alias!r} is invalid:\n{exc}") from exc
        if model.alias in models:
            raise CatalogError(f"{_MODELS_FILE.name}: alias {model.alias!r} appears twice")
        models[model.alias] = model
    for model in models.values():
        alternative = model.serverless.alternative if model.serverless else None
        if alternative is not None and alternative not in models:
            raise CatalogError(
                f"{_MODELS_FILE.name}: {model.alias} names unknown alternative {alternative!r}"
            )
    return models


@functools.cache
def _skus() -> dict[str, SkuInfo]:
    skus: dict[str, SkuInfo] = {}
    for raw in _records(_SKUS_FILE, "skus"):
        try:
            sku = SkuInfo.model_validate(raw)
        except ValidationError as exc:
            name = raw.get("name", "?") if isinstance(raw, dict) else "?"
            raise CatalogError(f"{_SKUS_FILE.name}: entry {name!r} is invalid:\n{exc}") from exc
        key = sku.name.lower()
        if key in skus:
            raise CatalogError(f"{_SKUS_FILE.name}: size {sku.name!r} appears twice")
        skus[key] = sku
    return skus


def model_aliases() -> list[str]:
    """Every model alias in the catalog, sorted."""
    return sorted(_models())


def sku_names() -> list[str]:
    """Every VM size name in the catalog, in catalog order."""
    return [sku.name for sku in _skus().values()]


def list_models() -> list[ModelInfo]:
    """Every catalog model, sorted by alias."""
    models = _models()
    return [models[alias] for alias in sorted(models)]


def list_skus() -> list[SkuInfo]:
    """Every catalog VM size, in catalog order (CPU sizes, then GPUs from small to large)."""
    return list(_skus().values())


def find_model(ref: str) -> ModelInfo | None:
    """The catalog model a reference names, or None.

    Accepts an alias ("phi-3-mini-4k-instruct", any case), a Hugging Face id
    ("hf:microsoft/Phi-3-mini-4k-instruct" or the bare "microsoft/Phi-3-mini-4k-instruct", any case) and a
    registry URI ("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15" or
    ".../labels/latest"). Workspace assets ("azureml:<name>:<version>") and local folders are not catalog
    models.
    """
    text = ref.strip()
    lowered = text.lower()
    models = _models()
    match = _REGISTRY_URI.match(text)
    if match:
        registry, asset = match["registry"].lower(), match["asset"].lower()
        for model in models.values():
            if model.registry.lower() == registry and model.registry_asset.lower() == asset:
                return model
        return None
    if lowered.startswith("azureml:"):
        return None
    hf_id = lowered[3:].strip() if lowered.startswith("hf:") else lowered
    if "/" in hf_id:
        for model in models.values():
            if model.hf_id is not None and model.hf_id.lower() == hf_id:
                return model
        return None
    return models.get(lowered)


def get_model(alias_or_ref: str) -> ModelInfo:
    """The catalog model for an alias, hf: id or registry URI; else CatalogError naming the known aliases."""
    model = find_model(alias_or_ref)
    if model is not None:
        return model
    aliases = model_aliases()
    hint = _did_you_mean(_ref_stem(alias_or_ref), aliases)
    known = ", ".join(aliases)
    raise CatalogError(
        f"unknown model {alias_or_ref!r}; the catalog knows: {known}",
        hint=hint
        or "use a catalog alias, hf:<org>/<name> or azureml://registries/<reg>/models/<name>/versions/<v>",
    )


def get_sku(name: str) -> SkuInfo:
    """The VM size by name, any case, with or without the Standard_ prefix; CatalogError if unknown."""
    key = name.strip().lower()
    skus = _skus()
    sku = skus.get(key) or skus.get(_SKU_PREFIX + key)
    if sku is not None:
        return sku
    names = sku_names()
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(
        key if key.startswith(_SKU_PREFIX) else _SKU_PREFIX + key, by_lower, n=3
    )
    hint = f"did you mean {' or '.join(by_lower[c] for c in close)}?" if close else None
    raise CatalogError(
        f"unknown VM size {name!r}; the catalog knows: {', '.join(names)}",
        hint=hint or "pick one of the sizes above, or add yours to azfinetune/catalog/skus.yaml",
    )


def known_max_seq_length(value: int | str, model: str) -> int | None:
    """A spec's training.max_seq_length as a number: itself, or for "auto" the model's own maximum (the catalog's
    max_seq_length); None for "auto" on a model the catalog does not know (the job reads it from the model)."""
    if isinstance(value, int):
        return value
    info = find_model(model)
    return info.max_seq_length if info is not None else None


def resolve_max_seq_length(value: int | str, model: str) -> int:
    """As known_max_seq_length, with DEFAULT_MAX_SEQ_LENGTH assumed for "auto" on a model the catalog does not
    know (for estimates: the planner's)."""
    known = known_max_seq_length(value, model)
    return DEFAULT_MAX_SEQ_LENGTH if known is None else known


def _ref_stem(ref: str) -> str:
    """The part of a reference an alias can resemble: the model name of an hf: id or registry URI."""
    text = ref.strip().lower()
    match = _REGISTRY_URI.match(text)
    if match:
        return match["asset"].lower()
    if text.startswith("hf:"):
        text = text[3:]
    return text.rsplit("/", 1)[-1]


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(close)}?" if close else None
