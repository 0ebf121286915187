"""The offline check of Kaito manifests: the Workspace CRD's openAPIV3Schema (jsonschema, with kubectl's strict
field validation: an unknown key is an error) plus the admission rules Kaito's webhook adds and the schema does not
encode (api/v1beta1/workspace_validation.go, tuning_config_validation.go @ v0.12.0): top-level keys, exactly one
input and output, the data URLs, count, the preset, the method, the ConfigMap's sections, load_in_4bit/8bit and
output_dir. What Kaito admits but trains wrongly (Phi-3's default target modules) is a warning.

jsonschema is imported when a check runs (the `kaito` extra installs it)."""

from __future__ import annotations

import copy
import functools
import ipaddress
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml

from azfinetune.catalog import find_model, kaito_catalog, kaito_workspace_schema

__all__ = ["KaitoProblem", "url_problem", "validate_config_map", "validate_manifests", "validate_workspace"]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_IMAGE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)
_SERVED = ("kaito.sh/v1beta1", "kaito.sh/v1alpha1")
#: Query parameters that make a URL a credential (Azure SAS, S3/GCS presigned URLs, tokens).
_SECRET_QUERY_KEYS = frozenset(
    {
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-goog-signature",
        "x-goog-credential",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "code",
    }
)


@dataclass(frozen=True)
class KaitoProblem:
    """One thing wrong with a manifest: which document, the key path in it, what, and whether Kaito refuses it."""

    document: str  # "Workspace/<name>" or "ConfigMap/<name>"
    path: str  # dotted key path inside the document ("" for the whole document)
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.document} {self.path}".strip()
        return f"{self.severity}: {where}: {self.message}"


def _strict(schema: Any) -> Any:
    """The schema with kubectl's strict field validation: objects that list their properties take no others
    (unless the CRD preserves unknown fields there)."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _validator(version: str) -> Any:
    import jsonschema

    schema = _strict(copy.deepcopy(kaito_workspace_schema(version)))
    return jsonschema.Draft7Validator(schema)


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_problems(document: Mapping[str, Any], where: str, version: str) -> list[KaitoProblem]:
    problems = []
    for error in sorted(_validator(version).iter_errors(dict(document)), key=lambda e: list(e.absolute_path)):
        path = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for key in extra:
                known = ", ".join(sorted(error.schema.get("properties", {})))
                problems.append(
                    KaitoProblem(
                        where, _path([*error.absolute_path, key]), f"unknown field (the CRD has {known})"
                    )
                )
            continue
        if error.validator == "required" and isinstance(error.instance, Mapping):
            for key in error.validator_value:
                if key not in error.instance:
                    problems.append(
                        KaitoProblem(
                            where, _path([*error.absolute_path, key]), "CRD schema: required field missing"
                        )
                    )
            continue
        problems.append(KaitoProblem(where, path, f"CRD schema: {error.message}"))
    return problems


def url_problem(url: str) -> str | None:
    """Why Kaito (or azfinetune) refuses a data URL, else None: public https, no credentials or signatures, no
    loopback, private, link-local or metadata host. The URL is never echoed (it may carry a secret)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a URL"
    if parts.username or parts.password or "@" in parts.netloc:
        return "carries credentials (user:password@); the value was not printed"
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_QUERY_KEYS or key.lower().startswith("x-amz-security"):
            return (
                f"carries a signature or token ({key}=...): it would be stored in the Workspace for anyone who "
                "can read it; the value was not printed"
            )
    if parts.scheme.lower() != "https":
        return "is not https:// (Kaito downloads public files; plain http is refused here)"
    if not host:
        return "has no host"
    if host == "localhost" or host.endswith(".localhost") or host in kaito_catalog().metadata_hosts:
        return f"targets a local or metadata endpoint ({host})"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if address.is_loopback or address.is_private or address.is_link_local or address.is_multicast:
        return f"targets a loopback, private or link-local address ({host})"
    if address.is_unspecified or address.is_reserved:
        return f"targets a reserved address ({host})"
    return None


def _url_problem(url: str) -> str | None:
    """Kaito's validateDataSourceURL: http(s), a host, not local, metadata, loopback, private or link-local."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "invalid data source URL"
    if not parts.scheme or not parts.netloc or not host:
        return "invalid data source URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "data source URL must use HTTP or HTTPS"
    if host == "localhost" or host.endswith(".localhost") or host in kaito_catalog().metadata_hosts:
        return "data source URL must not target a local or metadata endpoint"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if address.is_loopback or address.is_private or address.is_link_local:
        return "data source URL must not target a loopback, private, or link-local address"
    return None


def _set(section: Mapping[str, Any], key: str) -> bool:
    """Whether Kaito counts the source as given: a volume that is there (even empty), a non-empty list or string."""
    if key == "volumeSource":
        return section.get(key) is not None
    return bool(section.get(key))


def _image_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(_IMAGE.fullmatch(value))


def validate_workspace(
    workspace: Mapping[str, Any],
    *,
    config_maps: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    node_auto_provisioning: bool = True,
) -> list[KaitoProblem]:
    """Every problem of one Workspace manifest: schema, admission and (with its ConfigMap among `config_maps`,
    keyed by (namespace, name)) the ConfigMap's rules for the Workspace's method."""
    metadata = workspace.get("metadata") if isinstance(workspace.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    name = str(metadata.get("name", ""))
    namespace = str(metadata.get("namespace") or "default")
    where = f"Workspace/{name or '?'}"
    problems: list[KaitoProblem] = []
    api = workspace.get("apiVersion")
    if api not in _SERVED:
        problems.append(KaitoProblem(where, "apiVersion", f"{api!r} is not served; use kaito.sh/v1beta1"))
        return problems
    if "spec" in workspace:
        problems.append(
            KaitoProblem(
                where,
                "spec",
                "a Workspace has no spec: resource and tuning (or inference) are top-level keys",
            )
        )
    problems.extend(_schema_problems(workspace, where, str(api).rsplit("/", 1)[-1]))
    if not name:
        problems.append(KaitoProblem(where, "metadata.name", "a Workspace needs a name"))
    elif len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        problems.append(
            KaitoProblem(
                where,
                "metadata.name",
                "must be a DNS label (at most 63 lowercase letters, digits, '-'): it names the tuning Job's "
                "container",
            )
        )
    tuning, inference = workspace.get("tuning"), workspace.get("inference")
    if (tuning is None) == (inference is None):
        which = "not both" if tuning is not None else "not neither"
        problems.append(KaitoProblem(where, "", f"Either Inference or Tuning must be specified, {which}"))
    resource = workspace.get("resource") if isinstance(workspace.get("resource"), Mapping) else {}
    assert isinstance(resource, Mapping)
    instance_type = resource.get("instanceType")
    if node_auto_provisioning and not instance_type:
        problems.append(
            KaitoProblem(
                where,
                "resource.instanceType",
                "instanceType is required when node auto-provisioning is enabled",
            )
        )
    if not node_auto_provisioning and instance_type:
        problems.append(
            KaitoProblem(
                where,
                "resource.instanceType",
                "instanceType must be empty when node auto-provisioning is disabled (BYO scenario)",
            )
        )
    if not isinstance(tuning, Mapping):
        return problems
    count = resource.get("count", 1)
    if isinstance(count, int) and count > kaito_catalog().max_count:
        problems.append(
            KaitoProblem(
                where,
                "resource.count",
                "Tuning does not currently support multinode configurations; set count: 1",
            )
        )
    if resource.get("partition") is not None:
        problems.append(
            KaitoProblem(
                where, "resource.partition", "GPU partitioning is not supported for tuning workloads"
            )
        )
    problems.extend(_tuning_problems(tuning, where, namespace, config_maps))
    return problems


def _tuning_problems(
    tuning: Mapping[str, Any],
    where: str,
    namespace: str,
    config_maps: Mapping[tuple[str, str], Mapping[str, Any]] | None,
) -> list[KaitoProblem]:
    catalog = kaito_catalog()
    problems: list[KaitoProblem] = []
    method = str(tuning.get("method") or "").lower()
    if method not in catalog.methods:
        problems.append(
            KaitoProblem(where, "tuning.method", f"invalid value {tuning.get('method')!r}: use lora or qlora")
        )
    source = tuning.get("input")
    if not isinstance(source, Mapping):
        problems.append(KaitoProblem(where, "tuning.input", "missing field"))
    else:
        given = [key for key in ("urls", "volumeSource", "image") if _set(source, key)]
        if len(given) != 1:
            problems.append(
                KaitoProblem(where, "tuning.input", "Exactly one of URLs, Volume, or Image must be specified")
            )
        for index, url in enumerate(source.get("urls") or []):
            problem = _url_problem(str(url))
            if problem:
                problems.append(KaitoProblem(where, f"tuning.input.urls[{index}]", problem))
            else:
                ours = url_problem(str(url))
                if ours:
                    problems.append(KaitoProblem(where, f"tuning.input.urls[{index}]", ours, "warning"))
        if source.get("image") and not _image_ok(source.get("image")):
            problems.append(
                KaitoProblem(where, "tuning.input.image", "Unable to parse input image reference")
            )
    output = tuning.get("output")
    if not isinstance(output, Mapping):
        problems.append(KaitoProblem(where, "tuning.output", "missing field"))
    else:
        given = [key for key in ("volumeSource", "image") if _set(output, key)]
        if len(given) != 1:
            problems.append(
                KaitoProblem(where, "tuning.output", "Exactly one of Volume or Image must be specified")
            )
        if output.get("image"):
            if not _image_ok(output.get("image")):
                problems.append(
                    KaitoProblem(where, "tuning.output.image", "Unable to parse output image reference")
                )
            if not output.get("imagePushSecret"):
                problems.append(
                    KaitoProblem(
                        where,
                        "tuning.output.imagePushSecret",
                        "Must specify imagePushSecret with destination image",
                    )
                )
    preset = tuning.get("preset")
    preset_name = str(preset.get("name", "")) if isinstance(preset, Mapping) else ""
    known = catalog.preset(preset_name.lower()) if preset_name else None
    if not isinstance(preset, Mapping):
        problems.append(KaitoProblem(where, "tuning.preset", "missing field"))
    elif known is None:
        problems.append(
            KaitoProblem(
                where,
                "tuning.preset.name",
                f"{preset_name!r} is not a tuning preset of Kaito {catalog.release} (it tunes "
                f"{', '.join(p.name for p in catalog.presets)})",
            )
        )
    config = tuning.get("config")
    if config:
        found = (config_maps or {}).get((namespace, str(config)))
        if found is None:
            problems.append(
                KaitoProblem(
                    where,
                    "tuning.config",
                    f"ConfigMap '{config}' specified in 'config' not found in namespace '{namespace}'",
                    "error" if config_maps is not None else "warning",
                )
            )
        else:
            problems.extend(
                validate_config_map(found, method=method or None, preset=known.name if known else None)
            )
    elif known is not None and known.name.startswith("phi-3"):
        problems.append(
            KaitoProblem(
                where,
                "tuning.config",
                "without a ConfigMap Kaito uses its default target modules for phi-3 presets ("
                f"{', '.join(catalog.phi3_default_target_modules)}), but Phi-3 fuses them into qkv_proj and "
                "gate_up_proj: only o_proj and down_proj get adapters",
                "warning",
            )
        )
    return problems


def validate_config_map(
    config_map: Mapping[str, Any], *, method: str | None = None, preset: str | None = None
) -> list[KaitoProblem]:
    """The tuning ConfigMap's rules: training_config.yaml with the top key training_config, only Kaito's six
    sections, load_in_4bit/8bit for the method, output_dir under /mnt; with the preset, its target modules."""
    catalog = kaito_catalog()
    metadata = config_map.get("metadata") if isinstance(config_map.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    where = f"ConfigMap/{metadata.get('name', '?')}"
    data = config_map.get("data") if isinstance(config_map.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    key = "data.training_config.yaml"
    text = data.get("training_config.yaml")
    if not isinstance(text, str):
        return [KaitoProblem(where, "data", "does not contain 'training_config.yaml'")]
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [KaitoProblem(where, key, f"not YAML: {error}")]
    config = raw.get("training_config") if isinstance(raw, Mapping) else None
    if not isinstance(config, Mapping):
        return [KaitoProblem(where, key, "Expected 'training_config' key to contain a map")]
    problems: list[KaitoProblem] = []
    for section in config:
        if section not in catalog.config_sections:
            problems.append(
                KaitoProblem(
                    where,
                    f"{key}.training_config.{section}",
                    f"Unrecognized section (Kaito reads {', '.join(catalog.config_sections)})",
                )
            )
    quant = config.get("QuantizationConfig")
    if quant is not None and not isinstance(quant, Mapping):
        problems.append(KaitoProblem(where, f"{key}.training_config.QuantizationConfig", "must be a map"))
        quant = {}
    flags = {}
    for flag in ("load_in_4bit", "load_in_8bit"):
        value = (quant or {}).get(flag)
        if value is not None and not isinstance(value, bool):
            problems.append(
                KaitoProblem(
                    where,
                    f"{key}.training_config.QuantizationConfig.{flag}",
                    f"value must be either nil or a boolean, got {type(value).__name__}",
                )
            )
        flags[flag] = value is True
    section = f"{key}.training_config.QuantizationConfig"
    if flags["load_in_4bit"] and flags["load_in_8bit"]:
        problems.append(
            KaitoProblem(where, section, "Cannot set both 'load_in_4bit' and 'load_in_8bit' to true")
        )
    if method == "lora" and (flags["load_in_4bit"] or flags["load_in_8bit"]):
        problems.append(
            KaitoProblem(
                where, section, "For method 'lora', 'load_in_4bit' or 'load_in_8bit' must not be true"
            )
        )
    if method == "qlora" and not (flags["load_in_4bit"] or flags["load_in_8bit"]):
        problems.append(
            KaitoProblem(
                where, section, "For method 'qlora', either 'load_in_4bit' or 'load_in_8bit' must be true"
            )
        )
    arguments = config.get("TrainingArguments")
    if isinstance(arguments, Mapping) and "output_dir" in arguments:
        output_dir = arguments["output_dir"]
        path = f"{key}.training_config.TrainingArguments.output_dir"
        base = catalog.output_base_dir
        if not isinstance(output_dir, str):
            problems.append(KaitoProblem(where, path, "output_dir is not a string"))
        else:
            # Kaito: filepath.Clean(filepath.Join("/mnt", output_dir)) must be a folder below /mnt.
            joined = posixpath.normpath(base + "/" + output_dir)
            if joined == base or not joined.startswith(base + "/"):
                problems.append(
                    KaitoProblem(
                        where, path, f"Invalid output_dir specified: '{output_dir}', must be a directory"
                    )
                )
            elif not posixpath.normpath(output_dir).startswith(base + "/"):
                problems.append(
                    KaitoProblem(
                        where,
                        path,
                        f"not under {base}/: Kaito mounts the results volume at {joined}, but the trainer writes "
                        f"to {output_dir!r} as given",
                        "warning",
                    )
                )
    if preset is not None:
        problems.extend(_module_problems(config, where, key, preset))
    return problems


def _module_problems(config: Mapping[str, Any], where: str, key: str, preset: str) -> list[KaitoProblem]:
    catalog = kaito_catalog()
    entry = catalog.preset(preset)
    info = find_model(entry.model) if entry is not None and entry.model else None
    lora = config.get("LoraConfig") if isinstance(config.get("LoraConfig"), Mapping) else {}
    assert isinstance(lora, Mapping)
    modules = lora.get("target_modules")
    path = f"{key}.training_config.LoraConfig.target_modules"
    if modules is None:
        if preset.startswith("phi-3") and info is not None:
            return [
                KaitoProblem(
                    where,
                    path,
                    f"not set: Kaito's default for phi-3 presets ({', '.join(catalog.phi3_default_target_modules)}) "
                    f"adapts only o_proj and down_proj of {info.display_name}; list "
                    f"{', '.join(info.lora_target_modules)}",
                    "warning",
                )
            ]
        return []
    if info is None or not isinstance(modules, Sequence) or isinstance(modules, str):
        return []
    missing = [str(m) for m in modules if m not in info.linear_modules]
    if not missing:
        return []
    return [
        KaitoProblem(
            where,
            path,
            f"{info.display_name} has no {', '.join(missing)} (its linear modules: {', '.join(info.linear_modules)})",
            "warning",
        )
    ]


def validate_manifests(
    documents: Iterable[Mapping[str, Any] | None], *, node_auto_provisioning: bool = True
) -> list[KaitoProblem]:
    """Every problem of a set of manifests (what `kubectl apply -f -` would get): each Workspace with the ConfigMaps
    among them. Other kinds (PersistentVolumeClaims, ...) are not Kaito's and are passed over."""
    docs = [d for d in documents if d]
    config_maps = {
        (str(d.get("metadata", {}).get("namespace") or "default"), str(d.get("metadata", {}).get("name"))): d
        for d in docs
        if d.get("kind") == "ConfigMap" and d.get("apiVersion") == "v1"
    }
    problems: list[KaitoProblem] = []
    for document in docs:
        if document.get("kind") == "Workspace":
            problems.extend(
                validate_workspace(
                    document, config_maps=config_maps, node_auto_provisioning=node_auto_provisioning
                )
            )
    referenced = {
        (str(d.get("metadata", {}).get("namespace") or "default"), str((d.get("tuning") or {}).get("config")))
        for d in docs
        if d.get("kind") == "Workspace" and isinstance(d.get("tuning"), Mapping)
    }
    for key, config_map in config_maps.items():
        data = config_map.get("data")
        if key not in referenced and isinstance(data, Mapping) and "training_config.yaml" in data:
            problems.extend(validate_config_map(config_map))
    return problems
