"""The spec reference in Markdown, generated from the field descriptions (README embeds it; a test keeps it in sync)."""

from __future__ import annotations

import enum
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from azfinetune.spec._models import FineTuneSpec
from azfinetune.spec._targets import TARGET_MODELS

__all__ = ["reference_markdown"]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, __import__("types").UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(str(m.value) for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`" if value not in ({}, []) else ""


def _target_rows() -> list[str]:
    """`target`: the kinds, then each field with the kinds that take it (one row per distinct definition)."""
    kinds = " \\| ".join(TARGET_MODELS)
    rows = [
        f"| `target.kind` | {kinds} | `local` | Where the job runs; each kind takes only its own fields. |"
    ]
    seen: dict[str, list[tuple[tuple[str, str, str], list[str]]]] = {}
    for kind, model in TARGET_MODELS.items():
        for name, field in model.model_fields.items():
            if name == "kind":
                continue
            definition = (_type_name(field.annotation), _default(field), field.description or "")
            entries = seen.setdefault(name, [])
            for known, owners in entries:
                if known == definition:
                    owners.append(kind)
                    break
            else:
                entries.append((definition, [kind]))
    for name, entries in seen.items():
        for (type_name, default, description), owners in entries:
            text = f"*{', '.join(owners)}*: {description}".replace("|", "\\|")
            rows.append(f"| `target.{name}` | {type_name} | {default} | {text} |")
    return rows


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if key == "target":
            rows.append(f"| `target` | mapping |  | {field.description} |")
            rows.extend(_target_rows())
            continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        nested = _nested_model(field.annotation)
        if nested is not None:
            rows.extend(_rows(nested, f"{key}."))
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def reference_markdown() -> str:
    """A Markdown table of every spec key: type, default and description."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |", *_rows(FineTuneSpec, "")]
    return "\n".join(lines) + "\n"
