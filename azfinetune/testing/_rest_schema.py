"""The Azure ML REST API's own schema of a job PUT body, per api-version, derived from azure-ai-ml's REST models.

`rest_schemas/jobs-<api-version>.schema.json` (JSON Schema 2020-12, rooted at JobBase) are derived, not written:
the preview api-versions from the AutoRest/msrest models of the azure-ai-ml 1.27.1 wheel (the last release with a
client per api-version), the stable 2025-12-01 from the TypeSpec models azure-ai-ml 1.35.2 ships. The model files
are parsed with `ast` (nothing imported). `rest_schemas/SOURCES.json` records each schema's inputs and their
sha256; `scripts/derive-rest-schemas.py` regenerates (or `--check`s) them, and tests/testing/test_rest_schema.py
re-derives them here and compares byte for byte.

Derivation rules: `_attribute_map` / `rest_field(name=...)` give the wire names; `_validation` / non-Optional
annotations give `required`, `readOnly`, `minLength`, `pattern`; enums come from the keyword annotations
(`Union[str, "JobStatus"]`); a discriminator (`_subtype_map`, `rest_discriminator`) becomes an `enum` of its
known values plus `if/then` per value, so an unknown `jobType` is refused and each subtype's `required` applies.
Optional properties also accept null (the spec marks them x-nullable; its own examples send `"description": null`).
A TypeSpec discriminator value missing from the generated enum (FineTuning at 2025-12-01: "@removed") is dropped
and listed under `x-removed-at-this-api-version`. Enums are compared case-insensitively when validating (the
generated enums are case-insensitive and azure-ai-ml itself sends `taskType: "chatCompletion"`).
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "JOB_API_VERSIONS",
    "SCHEMA_DIR",
    "Violation",
    "derive_msrest_schema",
    "derive_typespec_schema",
    "job_body_violations",
    "job_schema",
    "job_types",
    "schema_text",
]

SCHEMA_DIR = Path(__file__).parent / "rest_schemas"
#: The api-versions whose job schema is shipped (what the fake accepts a job PUT at).
JOB_API_VERSIONS: tuple[str, ...] = (
    "2023-04-01-preview",
    "2024-01-01-preview",
    "2024-10-01-preview",
    "2025-01-01-preview",
    "2025-12-01",
)


@dataclass(frozen=True)
class Violation:
    """One way a request body breaks the schema: where (a dotted path in the body) and what."""

    path: str
    message: str


def schema_text(schema: dict[str, Any]) -> str:
    """The shipped file's exact text (what the derivation writes)."""
    return json.dumps(schema, indent=1)


# -- derivation from the AutoRest/msrest models (preview api-versions) ----------------------------------------

_MSREST_PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "object": {},
    "iso-8601": {"type": "string", "format": "date-time"},
    "duration": {"type": "string", "format": "duration"},
    "bytearray": {"type": "string"},
    "base64": {"type": "string"},
}


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _class_nodes(path: Path) -> Iterator[ast.ClassDef]:
    """The top-level classes of a generated models module (msrest or typespec)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            yield node


def _enum_classes(path: Path) -> dict[str, list[str]]:
    enums: dict[str, list[str]] = {}
    for node in _class_nodes(path):
        enums[node.name] = [
            statement.value.value
            for statement in node.body
            if isinstance(statement, ast.Assign)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ]
    return enums


def _msrest_classes(path: Path) -> dict[str, dict[str, Any]]:
    classes: dict[str, dict[str, Any]] = {}
    for node in _class_nodes(path):
        record: dict[str, Any] = {
            "bases": [base.id if isinstance(base, ast.Name) else ast.unparse(base) for base in node.bases],
            "validation": {},
            "attribute_map": {},
            "subtype_map": {},
            "annotations": {},
        }
        for statement in node.body:
            if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                name = statement.targets[0].id
                if name in ("_validation", "_attribute_map", "_subtype_map"):
                    record[name[1:]] = _literal(statement.value) or {}
            if isinstance(statement, ast.FunctionDef) and statement.name == "__init__":
                for argument in statement.args.kwonlyargs:
                    if argument.annotation is not None:
                        record["annotations"][argument.arg] = ast.unparse(argument.annotation)
        classes[node.name] = record
    return classes


def _enum_of(annotation: str, enums: dict[str, list[str]]) -> tuple[str | None, list[str] | None]:
    for name, values in enums.items():
        if f'"{name}"' in annotation or f"'{name}'" in annotation:
            return name, values
    return None, None


def _msrest_type(kind: str, todo: list[str]) -> dict[str, Any]:
    if kind in _MSREST_PRIMITIVES:
        return dict(_MSREST_PRIMITIVES[kind])
    if kind.startswith("[") and kind.endswith("]"):
        return {"type": "array", "items": _msrest_type(kind[1:-1], todo)}
    if kind.startswith("{") and kind.endswith("}"):
        return {"type": "object", "additionalProperties": _msrest_type(kind[1:-1], todo)}
    todo.append(kind)
    return {"$ref": f"#/$defs/{kind}"}


def derive_msrest_schema(
    models_dir: Path, api_version: str, *, label: str, root: str = "JobBase"
) -> dict[str, Any]:
    """The job-body schema from `<models_dir>/_models_py3.py` and its enums file (azure-ai-ml 1.27.1's
    `_restclient/v<api>/models`); `label` is the models folder as `x-derived-from` names it."""
    classes = _msrest_classes(models_dir / "_models_py3.py")
    enums = _enum_classes(models_dir / "_azure_machine_learning_workspaces_enums.py")
    defs: dict[str, Any] = {}
    todo, seen = [root], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in classes:
            continue
        seen.add(name)
        record = classes[name]
        props: dict[str, Any] = {}
        required: list[str] = []
        for attr, mapping in record["attribute_map"].items():
            key = mapping["key"]
            if "." in key:  # flattened x-ms-client-flatten keys, e.g. "properties.foo"
                key = key.replace("\\.", ".")
            schema = _msrest_type(mapping["type"], todo)
            rules = record["validation"].get(attr, {})
            if rules.get("readonly"):
                schema["readOnly"] = True
            for source, target in (
                ("min_length", "minLength"),
                ("max_length", "maxLength"),
                ("pattern", "pattern"),
                ("minimum", "minimum"),
                ("maximum", "maximum"),
                ("min_items", "minItems"),
                ("max_items", "maxItems"),
            ):
                if source in rules:
                    schema[target] = rules[source]
            annotation = record["annotations"].get(attr, "")
            if not annotation and attr == "status" and "job_type" in record["attribute_map"]:
                annotation = (
                    '"JobStatus"'  # read-only, so absent from __init__; the docstring names JobStatus
                )
            enum_name, values = _enum_of(annotation, enums)
            if enum_name and values is not None and mapping["type"] == "str":
                schema["x-enum-name"] = enum_name
                schema["enum"] = values
            if enum_name and values is not None and mapping["type"] == "[str]":
                schema["items"] = {"type": "string", "x-enum-name": enum_name, "enum": values}
            if rules.get("required"):
                required.append(key)
            elif "$ref" in schema or "type" in schema:
                schema = (
                    {"anyOf": [schema, {"type": "null"}]}
                    if "$ref" in schema
                    else dict(schema, type=[schema["type"], "null"])
                )
                if "enum" in schema:
                    schema["enum"] = [*schema["enum"], None]
            props[key] = schema
        definition: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "x-msrest-class": name,
            "x-bases": record["bases"],
        }
        if required:
            definition["required"] = required
        if record["subtype_map"]:
            ((attr, mapping),) = record["subtype_map"].items()
            key = record["attribute_map"][attr]["key"]
            definition["discriminator"] = {"propertyName": key, "mapping": mapping}
            todo.extend(mapping.values())
            definition["properties"][key] = {"type": "string", "enum": list(mapping)}
            definition["allOf"] = [
                {
                    "if": {"properties": {key: {"const": value}}, "required": [key]},
                    "then": {"$ref": f"#/$defs/{sub}"},
                }
                for value, sub in mapping.items()
            ]
        for base in record["bases"]:  # a subclass pins its discriminator value
            parent = classes.get(base)
            if parent and parent["subtype_map"]:
                ((attr, mapping),) = parent["subtype_map"].items()
                for value, sub in mapping.items():
                    if sub == name:
                        key = parent["attribute_map"][attr]["key"]
                        definition["properties"][key] = {"type": "string", "const": value}
        defs[name] = definition
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Azure ML job PUT body ({root}) at api-version {api_version}",
        "x-derived-from": f"azure-ai-ml 1.27.1 wheel, {label}",
        "$ref": f"#/$defs/{root}",
        "$defs": dict(sorted(defs.items())),
    }


# -- derivation from the TypeSpec models (stable 2025-12-01) --------------------------------------------------

_TSP_PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "Any": {},
    "datetime.datetime": {"type": "string", "format": "date-time"},
    "datetime.timedelta": {"type": "string", "format": "duration"},
}


def _keyword(call: ast.Call, name: str) -> Any:
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value)
    return None


def _typespec_classes(path: Path) -> dict[str, dict[str, Any]]:
    classes: dict[str, dict[str, Any]] = {}
    for node in _class_nodes(path):
        record: dict[str, Any] = {
            "bases": [ast.unparse(base) for base in node.bases],
            "fields": {},
            "disc_value": None,
            "disc_field": None,
        }
        for keyword in node.keywords:
            if keyword.arg == "discriminator":
                record["disc_value"] = ast.literal_eval(keyword.value)
        for statement in node.body:
            if not (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.value, ast.Call)
                and isinstance(statement.target, ast.Name)
            ):
                continue
            function = ast.unparse(statement.value.func)
            if function not in ("rest_field", "rest_discriminator"):
                continue
            attr = statement.target.id
            annotation = ast.unparse(statement.annotation)
            record["fields"][attr] = {
                "wire": _keyword(statement.value, "name") or attr,
                "ann": annotation,
                "visibility": _keyword(statement.value, "visibility"),
            }
            if function == "rest_discriminator" and not annotation.startswith("Literal"):
                record["disc_field"] = attr
        classes[node.name] = record
    return classes


def _all_fields(classes: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for base in classes[name]["bases"]:
        if base in classes:
            fields.update(_all_fields(classes, base))
    fields.update(classes[name]["fields"])
    return fields


def _typespec_type(annotation: str, enums: dict[str, list[str]], todo: list[str]) -> dict[str, Any]:
    annotation = annotation.strip()
    if match := re.fullmatch(r"Optional\[(.*)\]", annotation):
        return _typespec_type(match.group(1), enums, todo)
    if re.fullmatch(r"Literal\[(.*)\]", annotation):
        return {"type": "string"}
    if match := re.fullmatch(r"Union\[str, ['\"]_models\.(\w+)['\"]\]", annotation):
        return {"type": "string", "x-enum-name": match.group(1), "enum": enums.get(match.group(1), [])}
    if match := re.fullmatch(r"list\[(.*)\]", annotation):
        return {"type": "array", "items": _typespec_type(match.group(1), enums, todo)}
    if match := re.fullmatch(r"dict\[str, (.*)\]", annotation):
        return {"type": "object", "additionalProperties": _typespec_type(match.group(1), enums, todo)}
    if match := re.fullmatch(r"['\"]_models\.(\w+)['\"]", annotation):
        todo.append(match.group(1))
        return {"$ref": f"#/$defs/{match.group(1)}"}
    return dict(_TSP_PRIMITIVES.get(annotation, {"x-unparsed-annotation": annotation}))


def derive_typespec_schema(models_dir: Path, api_version: str, *, root: str = "JobBase") -> dict[str, Any]:
    """The job-body schema from `<models_dir>/_models.py` and `_enums.py` (azure-ai-ml 1.35.2's
    `_restclient/arm_ml_service/models`, generated at api-version 2025-12-01)."""
    classes = _typespec_classes(models_dir / "_models.py")
    enums = _enum_classes(models_dir / "_enums.py")
    subclasses: dict[str, dict[str, str]] = {}
    for name, record in classes.items():
        if record["disc_value"] is not None:
            for base in record["bases"]:
                subclasses.setdefault(base, {})[record["disc_value"]] = name
    defs: dict[str, Any] = {}
    todo, seen = [root], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in classes:
            continue
        seen.add(name)
        fields = _all_fields(classes, name)
        props: dict[str, Any] = {}
        required: list[str] = []
        for field in fields.values():
            schema = _typespec_type(field["ann"], enums, todo)
            if field["visibility"] == ["read"]:
                schema["readOnly"] = True
            if not field["ann"].startswith("Optional[") and field["visibility"] != ["read"]:
                required.append(field["wire"])
            elif "$ref" in schema or "type" in schema:
                if "$ref" in schema:
                    schema = {
                        "anyOf": [schema, {"type": "null"}],
                        **({"readOnly": True} if schema.get("readOnly") else {}),
                    }
                else:
                    schema = dict(schema, type=[schema["type"], "null"])
                if "enum" in schema:
                    schema["enum"] = [*schema["enum"], None]
            props[field["wire"]] = schema
        definition: dict[str, Any] = {"type": "object", "properties": props, "x-tsp-class": name}
        if required:
            definition["required"] = required
        record = classes[name]
        if name in subclasses and record["disc_field"]:
            wire = fields[record["disc_field"]]["wire"]
            enum_name = None
            # The enum that types the discriminator: from the subclasses' Literal[Enum.X] annotations.
            for sub in subclasses[name].values():
                annotation = classes[sub]["fields"].get(record["disc_field"], {}).get("ann", "")
                if match := re.fullmatch(r"Literal\[(\w+)\.\w+\]", annotation):
                    enum_name = match.group(1)
            allowed = enums.get(enum_name) if enum_name else None
            mapping: dict[str, str] = {}
            removed: dict[str, str] = {}
            for value, sub in sorted(subclasses[name].items()):
                if allowed is not None and value not in allowed:
                    removed[value] = sub
                else:
                    mapping[value] = sub
                    todo.append(sub)
            definition["discriminator"] = {"propertyName": wire, "mapping": mapping}
            definition["properties"][wire] = {"type": "string", "enum": list(mapping)}
            definition["allOf"] = [
                {
                    "if": {"properties": {wire: {"const": value}}, "required": [wire]},
                    "then": {"$ref": f"#/$defs/{sub}"},
                }
                for value, sub in mapping.items()
            ]
            if enum_name:
                definition["discriminator"]["x-enum-name"] = enum_name
            if removed:
                definition["discriminator"]["x-removed-at-this-api-version"] = removed
        if record["disc_value"] is not None:
            for base in record["bases"]:
                if base in classes and classes[base]["disc_field"]:
                    wire = _all_fields(classes, base)[classes[base]["disc_field"]]["wire"]
                    props[wire] = {"type": "string", "const": record["disc_value"]}
        defs[name] = definition
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Azure ML job PUT body ({root}) at api-version {api_version}",
        "x-derived-from": "azure-ai-ml 1.35.2, azure/ai/ml/_restclient/arm_ml_service/models (TypeSpec-generated, "
        "default api-version 2025-12-01)",
        "$ref": f"#/$defs/{root}",
        "$defs": dict(sorted(defs.items())),
    }


# -- validation ---------------------------------------------------------------------------------------------------


@functools.cache
def job_schema(api_version: str) -> dict[str, Any]:
    """The shipped job-body schema of an api-version (KeyError for one the fake has none of)."""
    if api_version not in JOB_API_VERSIONS:
        raise KeyError(api_version)
    with (SCHEMA_DIR / f"jobs-{api_version}.schema.json").open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def job_types(api_version: str) -> list[str]:
    """The jobType values the api-version knows (FineTuning only in the previews that have it)."""
    base = job_schema(api_version)["$defs"]["JobBaseProperties"]
    return list(base["discriminator"]["mapping"])


@functools.cache
def _validator(api_version: str) -> Any:
    from jsonschema import Draft202012Validator, ValidationError, validators

    def case_insensitive_enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
        # The service's enums are case-insensitive (azure-ai-ml sends taskType "chatCompletion" for ChatCompletion);
        # discriminators use `const` and stay exact.
        if isinstance(instance, str):
            if instance.lower() not in [item.lower() for item in enums if isinstance(item, str)]:
                yield ValidationError(f"{instance!r} is not one of {enums}")
        elif instance not in enums:
            yield ValidationError(f"{instance!r} is not one of {enums}")

    strict = validators.extend(Draft202012Validator, {"enum": case_insensitive_enum})
    return strict(job_schema(api_version))


def _deepest(error: Any) -> Any:
    """The most specific of a schema error's causes (an `if/then` branch's own required property, say)."""
    while error.context:
        error = max(error.context, key=lambda item: len(item.absolute_path))
    return error


def job_body_violations(api_version: str, body: Any) -> list[Violation]:
    """Every way `body` (a job PUT body) breaks the Jobs schema of `api_version`, the most specific first."""
    found: list[Violation] = []
    for error in _validator(api_version).iter_errors(body):
        leaf = _deepest(error)
        path = ".".join(str(part) for part in leaf.absolute_path)
        found.append(Violation(path, leaf.message))
    unique = {(item.path, item.message): item for item in found}
    return sorted(unique.values(), key=lambda item: (-item.path.count("."), item.path))
