"""target.kind foundry: Azure AI Foundry's fine_tuning API — open (and OpenAI) models as serverless jobs.

Its fields are `FoundryTarget`; its rules check the spec against the Foundry catalog (catalog/foundry.yaml: the
model, its training types and ranges, the data rules); `build` returns a FoundryJob: the files to upload
(content-addressed names) and the create-job request body, which `export` prints and the Foundry client sends."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from azft_contract import ContractError, detect_columns

from azfinetune.catalog import FoundryModel, find_foundry_model, foundry_catalog, foundry_model_ids
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, FoundryTarget, Objective, Task, Technique
from azfinetune.targets._common import file_sha256, spec_fingerprint
from azfinetune.targets._export import ExportFormat
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets._rules import is_user_set

#: The layout Foundry's DPO reads (its docs' "input", "preferred_output", "non_preferred_output"), by logical column.
FOUNDRY_PREFERENCE_COLUMNS = {
    "prompt": "input",
    "chosen": "preferred_output",
    "rejected": "non_preferred_output",
}

__all__ = [
    "FOUNDRY_HYPERPARAMETERS",
    "METADATA_PREFIX",
    "TARGET",
    "FoundryJob",
    "FoundryUpload",
    "build_foundry_job",
    "foundry_model",
    "job_key",
    "upload_filename",
]

#: training.* keys the service takes, and their names in method.supervised.hyperparameters (the learning rate is
#: a multiplier of the model's own rate there, so it is `target.learning_rate_multiplier`, not training.learning_rate).
FOUNDRY_HYPERPARAMETERS: dict[str, str] = {"epochs": "n_epochs", "per_device_batch_size": "batch_size"}
#: training.* keys the request carries elsewhere (seed is a top-level field).
_OTHER_TRAINING_KEYS = frozenset({"seed"})
#: Prefix of azfinetune's metadata keys on the job (metadata keys are plain strings; no dots, to be safe).
METADATA_PREFIX = "azfinetune_"
_OWN_METADATA = ("job_key", "spec_hash", "spec_name", "version", "run")
_INT32_MAX = 2**31 - 1
_KEY_HEX = 8  # hex of the job key in the suffix: 9 + 1 + 8 = the service's 18 characters


def foundry_model(spec: FineTuneSpec) -> FoundryModel | None:
    """The Foundry catalog entry of the spec's model, else None."""
    return find_foundry_model(spec.model)


def job_key(spec: FineTuneSpec, *, run_suffix: str | None = None) -> str:
    """What identifies the job: the spec's fingerprint (spec + data content), and the run suffix of --new-run."""
    fingerprint = spec_fingerprint(spec)
    if not run_suffix:
        return fingerprint
    return hashlib.sha256(f"{fingerprint}\0{run_suffix}".encode()).hexdigest()


def upload_filename(path: Path, sha256: str) -> str:
    """'chat-train-3f2a9c0d1e2b4f56.jsonl': the file's name with 16 hex of its content, the handle by which an
    earlier upload of the same content is found (files carry no metadata; the filename is all they keep)."""
    return f"{path.stem}-{sha256[:16]}{path.suffix or '.jsonl'}"


def _suffix_prefix(spec: FineTuneSpec) -> str:
    target = spec.target
    if isinstance(target, FoundryTarget) and target.suffix:
        return target.suffix
    name = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-")
    if len(name) > 9:  # cut at a word boundary when there is one: "support-bot" -> "support"
        head = name[:10]
        name = head[: head.rfind("-")] if "-" in head[1:] else name[:9]
    return name.strip("-") or "azft"


@dataclass(frozen=True)
class FoundryUpload:
    """A local data file the job needs on the Foundry resource, under its content-addressed name."""

    role: str  # "train" | "validation"
    path: Path
    filename: str
    sha256: str
    size: int

    @property
    def body_key(self) -> str:
        return "training_file" if self.role == "train" else "validation_file"

    def placeholder(self) -> str:
        return f"<id of uploaded file {self.filename}>"


@dataclass
class FoundryJob:
    """A Foundry fine-tuning job before it is sent: the uploads and the create request's body.

    `name` is the job's identity until the service assigns its id (`ftjob-...`): the suffix, which carries the
    job key, so that a second submit finds the first job (`metadata` carries the whole key as well)."""

    name: str
    endpoint: str | None
    model: str
    training_type: str
    training_type_value: str
    key: str
    spec_hash: str
    uploads: list[FoundryUpload]
    body: dict[str, Any]
    kind: ClassVar[str] = "foundry"
    metadata: dict[str, str] = field(default_factory=dict)

    def create_body(self, file_ids: Mapping[str, str]) -> dict[str, Any]:
        """The create request's JSON body with the uploaded files' ids (`{role: file id}`)."""
        body: dict[str, Any] = json.loads(json.dumps(self.body))
        for upload in self.uploads:
            if upload.role not in file_ids:
                raise BuildError(f"no uploaded file id for data.{upload.role}")
            body[upload.body_key] = file_ids[upload.role]
        return body

    def create_arguments(self, file_ids: Mapping[str, str]) -> dict[str, Any]:
        """Keyword arguments of openai's `fine_tuning.jobs.create` that send exactly `create_body`: the fields it
        names, and `trainingType` (top level, camelCase) through extra_body."""
        body = self.create_body(file_ids)
        extra = {"trainingType": body.pop("trainingType")}
        return {**body, "extra_body": extra}

    def matches(self, job: Mapping[str, Any], file_ids: Mapping[str, str] | None = None) -> bool:
        """Whether a job the service lists is this one: its metadata carries our key, or (a service that drops
        metadata) its suffix, model and — when known — training file are ours."""
        metadata = job.get("metadata") or {}
        if isinstance(metadata, Mapping) and metadata.get(f"{METADATA_PREFIX}job_key"):
            return bool(metadata.get(f"{METADATA_PREFIX}job_key") == self.key)
        suffix = job.get("suffix") or job.get("user_provided_suffix")
        if suffix != self.body["suffix"] or str(job.get("model", "")).lower() != self.model.lower():
            return False
        train = (file_ids or {}).get("train")
        return train is None or job.get("training_file") in (None, train)

    def requests(self, *, base_dir: Path) -> list[dict[str, Any]]:
        """The HTTP requests `submit` makes (after looking for earlier uploads and an earlier job), in order."""
        base = f"{self.endpoint or '<endpoint>'}/openai/v1"
        out: list[dict[str, Any]] = []
        for upload in self.uploads:
            out.append(
                {
                    "method": "POST",
                    "url": f"{base}/files",
                    "multipart": {
                        "purpose": "fine-tune",
                        "file": {
                            "filename": upload.filename,
                            "path": _relative(upload.path, base_dir),
                            "bytes": upload.size,
                            "sha256": upload.sha256,
                        },
                    },
                    "unless": f"GET {base}/files?purpose=fine-tune lists {upload.filename} ({upload.size} bytes)",
                }
            )
        body = self.create_body({u.role: u.placeholder() for u in self.uploads})
        out.append(
            {
                "method": "POST",
                "url": f"{base}/fine_tuning/jobs",
                "json": body,
                "unless": f"GET {base}/fine_tuning/jobs lists a job with metadata "
                f"{METADATA_PREFIX}job_key={self.key[:12]}… (or suffix {self.body['suffix']})",
            }
        )
        return out

    def to_document(self, *, base_dir: Path) -> dict[str, Any]:
        return {
            "service": "Azure AI Foundry fine_tuning API (v1)",
            "name": self.name,
            "endpoint": self.endpoint,
            "model": self.model,
            "training_type": self.training_type,
            "requests": self.requests(base_dir=base_dir),
        }


def _relative(path: Path, base_dir: Path) -> str:
    try:
        return path.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _metadata(spec: FineTuneSpec, key: str, run_suffix: str | None) -> dict[str, str]:
    from azfinetune._version import __version__

    own = {
        f"{METADATA_PREFIX}job_key": key,
        f"{METADATA_PREFIX}spec_hash": spec_fingerprint(spec),
        f"{METADATA_PREFIX}spec_name": spec.name,
        f"{METADATA_PREFIX}version": __version__,
    }
    if run_suffix:
        own[f"{METADATA_PREFIX}run"] = run_suffix
    return {**dict(spec.tags), **own}


def build_foundry_job(spec: FineTuneSpec, *, run_suffix: str | None = None) -> FoundryJob:
    """The FoundryJob of a foundry spec whose rules found no error. Pure: reads the data files' sizes and hashes,
    makes no request."""
    target = spec.target
    if not isinstance(target, FoundryTarget):
        raise BuildError(f"build_foundry_job builds foundry specs, not {target.kind}")
    model = foundry_model(spec)
    if model is None:
        raise BuildError(f"{spec.model} is not in the Foundry catalog", path="model")
    request_value = foundry_catalog().training_types[target.training_type].request_value
    if request_value is None:
        raise BuildError(f"training type {target.training_type} has no documented request value")
    uploads = []
    for role in ("train", "validation"):
        ref = spec.data.files().get(role)
        if ref is None:
            continue
        path = spec.resolve_path(ref).resolve()
        sha = file_sha256(path)
        uploads.append(FoundryUpload(role, path, upload_filename(path, sha), sha, path.stat().st_size))

    key = job_key(spec, run_suffix=run_suffix)
    suffix = f"{_suffix_prefix(spec)}-{key[:_KEY_HEX]}"
    training = spec.training
    hyperparameters: dict[str, Any] = {"n_epochs": int(training.epochs)}
    if is_user_set(spec, "training.per_device_batch_size"):
        hyperparameters["batch_size"] = training.per_device_batch_size
    if target.learning_rate_multiplier is not None:
        hyperparameters["learning_rate_multiplier"] = target.learning_rate_multiplier
    metadata = _metadata(spec, key, run_suffix)
    body: dict[str, Any] = {"model": model.id}
    for upload in uploads:
        body[upload.body_key] = upload.placeholder()
    body["suffix"] = suffix
    if is_user_set(spec, "training.seed"):
        body["seed"] = training.seed
    body["metadata"] = metadata
    method = "supervised"
    if spec.method.objective is Objective.DPO:
        method = "dpo"
        preference = spec.method.effective_preference
        if preference is not None and is_user_set(spec, "method.preference.beta"):
            hyperparameters["beta"] = preference.beta  # else the service's own default
    body["method"] = {"type": method, method: {"hyperparameters": hyperparameters}}
    body["trainingType"] = request_value
    return FoundryJob(
        name=suffix,
        endpoint=target.endpoint,
        model=model.id,
        training_type=target.training_type,
        training_type_value=request_value,
        key=key,
        spec_hash=spec_fingerprint(spec),
        uploads=uploads,
        body=body,
        metadata=metadata,
    )


# -- the rules -------------------------------------------------------------------------------------------------


def _model_rules(spec: FineTuneSpec, model: FoundryModel | None) -> Iterator[Issue]:
    catalog = foundry_catalog()
    if model is None:
        yield Issue(
            "model",
            f"{spec.model} is not a model Azure AI Foundry's fine_tuning API fine-tunes "
            f"(catalog of {catalog.retrieved})",
            hint=f"use one of {', '.join(foundry_model_ids())}; fine-tune other models on your own compute with "
            "target.kind: command",
        )
        return
    target = spec.target
    assert isinstance(target, FoundryTarget)
    wanted = target.training_type
    info = catalog.training_types[wanted]
    if wanted not in model.training_types:
        offered = ", ".join(t for t in model.training_types if catalog.training_types[t].request_value)
        yield Issue(
            "target.training_type",
            f"Foundry does not train {model.id} with the {info.title} training type "
            f"(it offers {', '.join(model.training_types)}; {info.source})",
            hint=f"set target.training_type to one of {offered}",
        )
    elif info.request_value is None:
        yield Issue(
            "target.training_type",
            f"the request value of the {info.title} training type is not documented ({info.source}); a guessed "
            "trainingType is refused with a misleading 'base model does not support fine-tuning' error",
            hint="use target.training_type: global (Standard where the model offers it keeps data in the region)",
        )
    elif wanted == "standard":
        yield Issue(
            "target.training_type",
            f"standard training of {model.id} runs only on a Foundry resource in "
            f"{', '.join(model.standard_regions)}",
            hint="use a resource in one of those regions, or target.training_type: global",
            severity="warning",
        )


def _training_rules(spec: FineTuneSpec, model: FoundryModel | None) -> Iterator[Issue]:
    training = spec.training
    taken = set(FOUNDRY_HYPERPARAMETERS) | _OTHER_TRAINING_KEYS
    for key in sorted(training.model_fields_set - taken):
        if key == "learning_rate":
            yield Issue(
                "training.learning_rate",
                "Foundry takes a multiplier of the model's own learning rate, not a learning rate",
                hint="remove training.learning_rate and set target.learning_rate_multiplier (e.g. 1.0; the "
                "model's base rate is not published)",
            )
        elif key == "mask_prompt" and training.mask_prompt:
            continue  # the service trains on assistant messages only, which is what mask_prompt: true asks
        else:
            yield Issue(
                f"training.{key}",
                "Foundry's fine_tuning API does not take this setting",
                hint="it takes training.epochs, training.per_device_batch_size (its batch_size), training.seed and "
                "target.learning_rate_multiplier; use target.kind: command for full control",
            )
    if training.seed > _INT32_MAX and is_user_set(spec, "training.seed"):
        yield Issue(
            "training.seed", f"the service takes a 32-bit seed (at most {_INT32_MAX}), got {training.seed}"
        )
    if model is None:
        return
    ranges = foundry_catalog().ranges_of(model)
    epochs = training.epochs
    if epochs != int(epochs) or not ranges.n_epochs.contains(epochs):
        yield Issue(
            "training.epochs",
            f"Foundry trains {model.id} for whole epochs, {ranges.n_epochs.describe()}; got {epochs:g}",
            hint=f"set training.epochs to a whole number {ranges.n_epochs.describe()} ({ranges.source})",
        )
    batch = training.per_device_batch_size
    if is_user_set(spec, "training.per_device_batch_size") and not ranges.batch_size.contains(batch):
        yield Issue(
            "training.per_device_batch_size",
            f"Foundry's batch_size for {model.id} is {ranges.batch_size.describe()}, got {batch}",
            hint=f"set training.per_device_batch_size {ranges.batch_size.describe()} ({ranges.source})",
        )
    target = spec.target
    assert isinstance(target, FoundryTarget)
    multiplier = target.learning_rate_multiplier
    if multiplier is not None and not ranges.learning_rate_multiplier.contains(multiplier):
        yield Issue(
            "target.learning_rate_multiplier",
            f"Foundry's learning_rate_multiplier for {model.id} is {ranges.learning_rate_multiplier.describe()}, "
            f"got {multiplier:g}",
            hint=f"the docs suggest 0.02-0.2 to start ({ranges.source})",
        )


def _method_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    method = spec.method
    why = "Foundry chooses how the model is trained"
    for key, what in (
        ("lora", "the adapter settings"),
        ("quantization", "the quantization"),
        ("deepspeed", "the distribution (DeepSpeed cannot be set)"),
        ("optimizer", "the optimizer"),
    ):
        if key in method.model_fields_set and getattr(method, key) is not None:
            yield Issue(
                f"method.{key}",
                f"{why}: it does not take {what}",
                hint=f"remove method.{key}, or use target.kind: command to control it",
            )


def _objective_rules(spec: FineTuneSpec, model: FoundryModel | None) -> Iterator[Issue]:
    """method.objective dpo: a model Foundry trains with DPO, beta as its only setting, data in its DPO layout."""
    if spec.method.objective is not Objective.DPO:
        return
    if model is not None and "dpo" not in model.methods:
        offering = [m.id for m in foundry_catalog().models if "dpo" in m.methods]
        yield Issue(
            "method.objective",
            f"Foundry trains {model.id} with {', '.join(model.methods)} only, not dpo "
            f"(catalog of {foundry_catalog().retrieved})",
            hint=f"use a model Foundry trains with dpo ({', '.join(offering)}), or fine-tune {spec.model} with "
            "dpo on your own compute (target.kind: command)",
        )
    for key in ("loss_type", "reference"):
        if is_user_set(spec, f"method.preference.{key}"):
            yield Issue(
                f"method.preference.{key}",
                "Foundry's dpo takes beta only: it chooses the loss and keeps the reference model itself",
                hint=f"remove method.preference.{key}, or use target.kind: command to set it",
            )
    ref = spec.data.train
    if spec.data.is_remote(ref) or not spec.resolve_path(ref).is_file():
        return  # _data_rules and file_issues report these
    try:
        found = detect_columns(spec.resolve_path(ref), spec.data_kind)
    except (ContractError, OSError):
        return  # data validation reports the unreadable file with its line
    if found != FOUNDRY_PREFERENCE_COLUMNS:
        layout = ", ".join(f"{v!r}" for v in found.values())
        yield Issue(
            "data.train",
            f'Foundry\'s dpo reads {{"input": {{"messages": [...]}}, "preferred_output": [...], '
            f'"non_preferred_output": [...]}} per line; this file has {layout}',
            hint="write the pairs in Foundry's layout (prompt -> input.messages, chosen -> preferred_output, "
            "rejected -> non_preferred_output), or train them with target.kind: command",
        )


def _data_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    rules = foundry_catalog().data_rules
    data = spec.data
    for role, ref in data.files().items():
        path = f"data.{role}"
        if role == "test":
            yield Issue(path, "Foundry takes training and validation files only", hint="remove data.test")
            continue
        if data.is_remote(ref):
            yield Issue(
                path,
                "Foundry uploads local JSONL files; a data asset or URL cannot be passed to it",
                hint="download the file and point data." + role + " at it",
            )
            continue
        file = spec.resolve_path(ref)
        if file.suffix.lower() != ".jsonl":
            yield Issue(path, f"Foundry takes {rules.format}; {file.name} is not a .jsonl file")
        try:
            size = file.stat().st_size if file.is_file() else None
        except OSError:
            size = None  # file_issues reports what cannot be read
        if size is not None and size >= rules.max_file_bytes:
            yield Issue(
                path,
                f"{file.name} is {size / 2**20:,.0f} MiB; Foundry takes files under "
                f"{rules.max_file_bytes // 2**20} MB ({rules.source})",
                hint="split or sample the file",
            )
    if data.columns is not None:
        yield Issue(
            "data.columns",
            "Foundry reads its own keys ('messages'; dpo: input, preferred_output, non_preferred_output); columns "
            "cannot be renamed",
            hint="rename the keys in the files and remove data.columns",
        )


def _spec_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    rules = foundry_catalog().data_rules
    if spec.register is not None:
        yield Issue(
            "register",
            "Foundry names the fine-tuned model itself (<model>.ft-<job>-<suffix>); it cannot be registered",
            hint="remove register; target.suffix sets the start of the model's suffix",
        )
    if spec.secrets:
        yield Issue("secrets", "Foundry runs its own training code; secrets cannot be passed to it")
    if "environment" in spec.model_fields_set:
        yield Issue("environment", "Foundry runs in its own environment; remove environment")
    if spec.workspace is not None:
        yield Issue(
            "workspace",
            "a foundry job goes to a Foundry resource, not an Azure ML workspace",
            hint="remove workspace and set target.endpoint",
        )
    own = len(_OWN_METADATA)
    if len(spec.tags) > rules.metadata_max_pairs - own:
        yield Issue(
            "tags",
            f"Foundry keeps {rules.metadata_max_pairs} metadata pairs and azfinetune uses {own}: at most "
            f"{rules.metadata_max_pairs - own} tags, got {len(spec.tags)}",
        )
    for key, value in spec.tags.items():
        if len(key) > 64 or len(str(value)) > 512 or key.startswith(METADATA_PREFIX):
            yield Issue(
                f"tags.{key}",
                "a Foundry metadata key has at most 64 characters (not starting with "
                f"{METADATA_PREFIX!r}) and its value at most 512",
            )


class _Foundry(TargetBase):
    kind = "foundry"
    fields = FoundryTarget
    summary = (
        "Azure AI Foundry fine_tuning job: open and OpenAI models on Foundry's GPUs, billed per trained token"
    )
    tasks = frozenset({Task.CHAT_COMPLETION})
    techniques = frozenset({Technique.LORA})
    objectives = frozenset({Objective.SFT, Objective.DPO})  # dpo where the model offers it (_objective_rules)
    service = "foundry"

    def rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        # Not the Azure ML catalog's rules (TargetBase.rules): the model is a Foundry model id, there is no VM.
        yield from self.own_rules(spec)

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        model = foundry_model(spec)
        yield from _model_rules(spec, model)
        yield from _training_rules(spec, model)
        yield from _method_rules(spec)
        yield from _objective_rules(spec, model)
        yield from _data_rules(spec)
        yield from _spec_rules(spec)

    def build(self, spec: FineTuneSpec) -> FoundryJob:
        return build_foundry_job(spec)

    def export(self, job: Any, *, base_dir: Path, format: ExportFormat = "yaml") -> str:
        if not isinstance(job, FoundryJob):
            raise BuildError(f"the foundry target exports FoundryJob, not {type(job).__name__}")
        document = job.to_document(base_dir=base_dir)
        if format == "json":
            return json.dumps(document, indent=2) + "\n"
        if format != "yaml":
            raise BuildError(f"unknown export format {format!r}", hint="use yaml or json")
        header = (
            f"# Azure AI Foundry fine-tuning job {job.name}, written by azfinetune build.\n"
            "# The requests azfinetune submit sends (each only when GET shows it was not made before).\n"
        )
        return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


TARGET = _Foundry()
