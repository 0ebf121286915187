"""Turns pydantic validation errors into SpecIssues that name the key, say what is wrong and what to do."""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from azfinetune.errors import SpecError, Issue

__all__ = ["did_you_mean", "format_path", "spec_error_from_validation", "split_path"]

Loc = tuple[str | int, ...]


def format_path(loc: Loc) -> str:
    """('method', 'lora', 'target_modules', 2) -> 'method.lora.target_modules[2]'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def split_path(path: str) -> Loc:
    """The inverse of format_path; numeric segments become ints."""
    parts: list[str | int] = []
    for segment in re.findall(r"[^.\[\]]+", path):
        parts.append(int(segment) if segment.isdigit() else segment)
    return tuple(parts)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str | None:
    options = list(choices)
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match and len(word) >= 3:
        match = [c for c in options if c.startswith(word) or word in c][:1]
    return f"did you mean {match[0]!r}?" if match else None


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that holds the key at `loc` (its parent), following nested fields."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _enum_choices(root: type[BaseModel], loc: Loc) -> list[str]:
    model = _model_at(root, loc)
    if model is None or not loc or isinstance(loc[-1], int):
        return []
    field = model.model_fields.get(str(loc[-1]))
    if field is None:
        return []
    for arg in (field.annotation, *typing.get_args(field.annotation)):
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [str(member.value) for member in arg]
        if typing.get_origin(arg) is typing.Literal:
            return [str(v) for v in typing.get_args(arg)]
    return []


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds union-member tags such as 'list[str]' or "literal['auto']" to the loc; drop them.
    return tuple(p for p in loc if isinstance(p, int) or not re.search(r"[\[\]()'\"]", str(p)))


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: Any, root: type[BaseModel], loc: Loc) -> tuple[str, str | None]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(root, loc)
        choices = list(model.model_fields) if model else []
        hint = did_you_mean(str(loc[-1]), choices) if loc else None
        if hint is None and choices:
            hint = "known keys here: " + ", ".join(choices)
        return f"unknown key {str(loc[-1])!r}", hint
    if kind == "missing":
        return "required key is missing", None
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        symbol, key = bounds[kind]
        return f"must be {symbol} {ctx.get(key)}, got {_got(value)}", None
    if kind in ("enum", "literal_error"):
        choices = _enum_choices(root, loc)
        if not choices:
            expected = str(ctx.get("expected", ""))
            choices = re.findall(r"'([^']*)'", expected) or [expected]
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else None
        return f"must be one of {', '.join(choices)}; got {_got(value)}", hint
    if kind == "value_error":
        text = str(error.get("msg", ""))
        return text.removeprefix("Value error, "), None
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys, got {_got(value)}", None
    if kind == "list_type":
        return f"must be a list, got {_got(value)}", None
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.split("_")[0]
        names = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string"}
        return f"must be {names.get(expected, expected)}, got {_got(value)}", None
    return f"{error.get('msg', 'invalid value')}, got {_got(value)}", None


def _collapse_union_errors(errors: list[Any]) -> list[Any]:
    """For `A | list[str]` fields pydantic reports one error per member; keep the most useful one."""
    by_field: dict[Loc, list[Any]] = {}
    for error in errors:
        by_field.setdefault(_clean_loc(error["loc"]), []).append(error)
    kept: list[Any] = []
    for group in by_field.values():
        if len(group) > 1:
            literal = [e for e in group if e["type"] == "literal_error"]
            kept.append(literal[0] if literal else group[0])
        else:
            kept.extend(group)
    return kept


def spec_error_from_validation(
    error: ValidationError, data: Any = None, *, root: type[BaseModel] | None = None, file: str | None = None
) -> SpecError:
    """A SpecError with one Issue per pydantic error (positions are added by the loader)."""
    from azfinetune.spec._models import FineTuneSpec

    root = root or FineTuneSpec
    issues: list[Issue] = []
    for item in _collapse_union_errors(list(error.errors())):
        loc = _clean_loc(item["loc"])
        message, hint = _message(item, root, loc)
        issues.append(Issue(path=format_path(loc), message=message, hint=hint, file=file))
    return SpecError(issues, file=file)
