"""Turns pydantic validation errors into SpecIssues that name the key, say what is wrong and what to do."""

from __future__ import annotations

import contextvars
import difflib
import enum
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from azfinetune.errors import Issue, SpecError
from azfinetune.spec._targets import TARGET_MODELS, kinds_with_field

__all__ = ["did_you_mean", "format_path", "spec_error_from_validation", "split_path"]

Loc = tuple[str | int, ...]

# The model of the target kind an error is about, while that error's message is written.
_TARGET_MODEL: contextvars.ContextVar[type[BaseModel] | None] = contextvars.ContextVar(
    "azfinetune_target_model", default=None
)


def _target_model(kind: str | None) -> type[BaseModel] | None:
    return TARGET_MODELS.get(kind) if kind else None


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
    """The pydantic model class that holds the key at `loc` (its parent), following nested fields; `target`
    resolves to the model of the target kind named in the data (see `_target_model`)."""
    model: type[BaseModel] | None = root
    for index, part in enumerate(loc[:-1]):
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        if model is root and part == "target" and index == 0:
            model = _TARGET_MODEL.get()
            continue
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
    # pydantic adds union-member tags such as 'list[str]' or "literal['auto']" to the loc, and the target kind
    # (e.g. 'command') after 'target'; drop them.
    parts = [p for p in loc if isinstance(p, int) or not re.search(r"[\[\]()'\"]", str(p))]
    if len(parts) > 1 and parts[0] == "target" and parts[1] in TARGET_MODELS:
        del parts[1]
    return tuple(parts)


def _kind_in_loc(loc: tuple[Any, ...]) -> str | None:
    if len(loc) > 1 and loc[0] == "target" and loc[1] in TARGET_MODELS:
        return str(loc[1])
    return None


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
    if kind == "extra_forbidden" and len(loc) == 2 and loc[0] == "target" and _TARGET_MODEL.get() is not None:
        return _unknown_target_key(str(loc[1]))
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc == ("target",):
        return _bad_target_kind(value)
    if kind == "extra_forbidden" and loc in _MOVED_KEYS:
        return f"unknown key {str(loc[-1])!r}", _MOVED_KEYS[loc]
    if kind == "extra_forbidden" and not loc:
        return "unknown key", None
    if kind == "extra_forbidden":
        model = _model_at(root, loc)
        choices = list(model.model_fields) if model else []
        hint = did_you_mean(str(loc[-1]), choices) if loc else None
        if hint is None and choices:
            hint = "known keys here: " + ", ".join(choices)
        return f"unknown key {str(loc[-1])!r}", hint
    if kind == "missing":
        return "required key is missing", _MISSING_HINTS.get(loc)
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
    if kind == "int_from_float":
        return f"must be a whole number, got {_got(value)}", None
    if kind in ("finite_number", "float_parsing") and isinstance(value, float):
        return f"must be a finite number, got {_got(value)}", None
    if kind == "multiple_of":
        return f"must be a multiple of {ctx.get('multiple_of')}, got {_got(value)}", None
    lengths = {
        "string_too_short": ("at least", "min_length", "characters"),
        "string_too_long": ("at most", "max_length", "characters"),
        "too_short": ("at least", "min_length", "items"),
        "too_long": ("at most", "max_length", "items"),
    }
    if kind in lengths:
        bound, key, unit = lengths[kind]
        size = len(value) if isinstance(value, str | list | tuple | dict) else None
        actual = f", got {size}" if size is not None else ""
        return f"must have {bound} {ctx.get(key)} {unit}{actual}", None
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}, got {_got(value)}", None
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.split("_")[0]
        names = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string"}
        return f"must be {names.get(expected, expected)}, got {_got(value)}", None
    # Any other check: pydantic's sentence in this tool's words ("Input should be ..." -> "must be ...").
    text = re.sub(r"^Input should\b", "must", str(error.get("msg") or "is not valid"))
    text = re.sub(r"^Input\b", "the value", text)
    return f"{text}, got {_got(value)}", None


#: Keys that moved: where they are now.
_MOVED_KEYS: dict[Loc, str] = {
    (
        "method",
        "onnxruntime",
    ): "it is target.apply_ort now (target.kind registry-pipeline only; no effect today)",
}

_MISSING_HINTS: dict[Loc, str] = {
    (
        "target",
        "compute",
    ): "set target.compute to your AmlCompute cluster (az ml compute list), or 'serverless'",
    ("name",): "name the job: lowercase letters, digits, '-' and '_', starting with a letter",
    (
        "model",
    ): "a catalog alias (azfinetune catalog), azureml://registries/..., hf:<org>/<name> or a local folder",
    ("data", "train"): "the training file, relative to the spec's folder",
}


def _unknown_target_key(key: str) -> tuple[str, str | None]:
    model = _TARGET_MODEL.get()
    kind = str(model.model_fields["kind"].default) if model is not None else "?"
    others = [k for k in kinds_with_field(key) if k != kind]
    own = [name for name in (model.model_fields if model is not None else {}) if name != "kind"]
    if others:
        hint = f"{key} is a key of target.kind {_and(others)}"
    else:
        hint = did_you_mean(key, [*own, "kind"]) or (
            f"target.kind {kind} takes: {', '.join(own)}"
            if own
            else f"target.kind {kind} takes no other keys"
        )
    return f"unknown key {key!r} for target.kind {kind}", hint


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _bad_target_kind(value: Any) -> tuple[str, str | None]:
    kinds = list(TARGET_MODELS)
    if not isinstance(value, dict):
        return f"must be a mapping with a kind (one of {', '.join(kinds)}), got {_got(value)}", None
    given = value.get("kind")
    hint = did_you_mean(str(given), kinds) if isinstance(given, str) else None
    return f"kind must be one of {', '.join(kinds)}; got {_got(given)}", hint


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
    error: ValidationError, root: type[BaseModel], data: Any = None, *, file: str | None = None
) -> SpecError:
    """A SpecError with one Issue per pydantic error (positions are added by the loader)."""

    issues: list[Issue] = []
    for item in _collapse_union_errors(list(error.errors())):
        loc = _clean_loc(item["loc"])
        if item["type"] == "extra_forbidden" and item["loc"]:
            # The last part is the user's own key, whatever characters it has ('[', "a'b"): keep it as written.
            loc = (*_clean_loc(item["loc"][:-1]), str(item["loc"][-1]))
        if item["type"] in ("union_tag_invalid", "union_tag_not_found") and loc == ("target",):
            loc = ("target", "kind") if isinstance(item.get("input"), dict) else loc
            message, hint = _bad_target_kind(item.get("input"))
            issues.append(Issue(path=format_path(loc), message=message, hint=hint, file=file))
            continue
        kind = _kind_in_loc(item["loc"])
        token = _TARGET_MODEL.set(_target_model(kind))
        try:
            message, hint = _message(item, root, loc)
        finally:
            _TARGET_MODEL.reset(token)
        issues.append(Issue(path=format_path(loc), message=message, hint=hint, file=file))
    return SpecError(issues, file=file)


def _scalar_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_scalar_types(arg) for arg in typing.get_args(annotation)))
    if origin is typing.Annotated:
        return _scalar_types(typing.get_args(annotation)[0])
    return {annotation}


def bool_for_number_issues(root: type[BaseModel], data: Any) -> list[Issue]:
    """`nodes: true` is not 1: a YAML boolean given where the field takes a number (and not a boolean)."""
    issues: list[Issue] = []
    target = data.get("target") if isinstance(data, dict) else None
    kind = target.get("kind") if isinstance(target, dict) else None
    token = _TARGET_MODEL.set(_target_model(kind if isinstance(kind, str) else None))
    try:
        stack: list[tuple[Loc, Any]] = [((), data)]
        while stack:
            loc, value = stack.pop()
            if isinstance(value, dict):
                stack.extend(((*loc, str(k)), v) for k, v in value.items())
            elif isinstance(value, bool) and loc and not isinstance(loc[-1], int):
                model = _model_at(root, loc)
                field = model.model_fields.get(str(loc[-1])) if model is not None else None
                kinds = _scalar_types(field.annotation) if field is not None else set()
                if bool not in kinds and kinds & {int, float}:
                    word = "an integer" if int in kinds else "a number"
                    issues.append(
                        Issue(
                            format_path(loc),
                            f"must be {word}, got {str(value).lower()}",
                            hint="write the number",
                        )
                    )
    finally:
        _TARGET_MODEL.reset(token)
    return issues
