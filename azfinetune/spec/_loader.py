"""load_spec(): YAML (with --set overrides) to a FineTuneSpec, every failure a SpecError with file:line:column."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from azfinetune.errors import Issue, SpecError
from azfinetune.spec._errors import format_path, spec_error_from_validation, split_path
from azfinetune.spec._models import FineTuneSpec

__all__ = ["apply_overrides", "load_spec", "parse_overrides", "spec_from_dict"]

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int]]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _positions(node: yaml.Node, file: str, prefix: Loc = ()) -> tuple[Positions, list[Issue]]:
    """Line/column (1-based) of every key in a composed YAML tree, and its duplicate keys."""
    positions: Positions = {}
    issues: list[Issue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            loc = (*prefix, key)
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in seen:
                issues.append(
                    Issue(
                        format_path(loc),
                        "duplicate key (the later one would silently win)",
                        file,
                        line,
                        column,
                    )
                )
            seen.add(key)
            positions[loc] = (line, column)
            inner, inner_issues = _positions(value_node, file, loc)
            positions.update(inner)
            issues.extend(inner_issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            loc = (*prefix, index)
            positions[loc] = (item.start_mark.line + 1, item.start_mark.column + 1)
            inner, inner_issues = _positions(item, file, loc)
            positions.update(inner)
            issues.extend(inner_issues)
    return positions, issues


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """['training.epochs=1', 'target.kind=local'] -> {'training.epochs': 1, 'target.kind': 'local'}."""
    overrides: dict[str, Any] = {}
    issues: list[Issue] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            issues.append(Issue("", f"--set {item!r} must look like key.path=value", file="--set"))
            continue
        try:
            value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        overrides[key] = value
    if issues:
        raise SpecError(issues)
    return overrides


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy), creating mappings on the way."""
    result: dict[str, Any] = _deep_copy(data)
    for dotted, value in overrides.items():
        node: Any = result
        parts = split_path(dotted)
        for part in parts[:-1]:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise SpecError([Issue(dotted, "no such list item to set", file="--set")])
                node = node[part]
                continue
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict | list):
                child = {}
                node[part] = child
            node = child
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise SpecError([Issue(dotted, "no such list item to set", file="--set")])
            node[last] = value
        else:
            node[last] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _locate(error: SpecError, positions: Positions, file: str | None, overridden: set[Loc]) -> SpecError:
    located: list[Issue] = []
    for issue in error.issues:
        loc = split_path(issue.path)
        if any(loc[: len(o)] == o for o in overridden):
            located.append(dataclasses.replace(issue, file="--set", line=None, column=None))
            continue
        probe = loc
        while probe and probe not in positions:
            probe = probe[:-1]
        if positions:
            line, column = positions.get(probe, (1, 1))
            located.append(dataclasses.replace(issue, file=file, line=line, column=column))
        else:
            located.append(dataclasses.replace(issue, file=file))
    located.sort(key=lambda i: (i.line or 0, i.column or 0))
    return SpecError(located, file=file)


def spec_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    source: str | None = None,
    positions: Positions | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> FineTuneSpec:
    """Build and check a spec from a plain mapping; every failure becomes one SpecError."""
    overridden = {split_path(k) for k in (overrides or {})}
    raw = apply_overrides(dict(data), overrides or {})
    base = (base_dir or Path.cwd()).resolve()
    try:
        spec = FineTuneSpec.model_validate(raw)
    except ValidationError as error:
        raise _locate(
            spec_error_from_validation(error, FineTuneSpec, raw, file=source),
            positions or {},
            source,
            overridden,
        ) from None
    except SpecError as error:
        raise _locate(error, positions or {}, source, overridden) from None
    spec.with_base_dir(base, source=source)
    spec._positions = dict(positions or {})
    return spec


def _drop_adapter_settings_for_full(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """`--set method.technique=full` on a LoRA spec: its method.lora no longer applies; drop it with a note
    (unless the same command line sets method.lora itself, which then stands and is checked as usual)."""
    if str(overrides.get("method.technique", "")).lower() != "full" or "method.lora" in overrides:
        return
    method = data.get("method")
    if isinstance(method, dict) and method.get("lora") is not None:
        overrides["method.lora"] = None
        sys.stderr.write(
            "note: --set method.technique=full trains all weights: the spec's method.lora no longer applies "
            "and is left out\n"
        )


def load_spec(
    path: str | Path, *, overrides: Mapping[str, Any] | Iterable[str] | None = None
) -> FineTuneSpec:
    """Read a spec file. `overrides` are `--set` items ('a.b=value') or a {dotted key: value} mapping."""
    file = str(path)
    spec_path = Path(path)
    if isinstance(overrides, Mapping):
        override_map: dict[str, Any] = dict(overrides)
    else:
        override_map = parse_overrides(overrides or [])
    try:
        text = spec_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError([Issue("", "no such file", file=file)], file=file) from None
    except IsADirectoryError:
        raise SpecError([Issue("", "is a folder, not a spec file", file=file)], file=file) from None
    except UnicodeDecodeError as error:
        raise SpecError([Issue("", f"not UTF-8 text (byte {error.start})", file=file)], file=file) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = " ".join(str(p) for p in (error.context, error.problem) if p)
        issue = Issue(
            "", f"YAML syntax error: {problem}", file, line, column, hint="check indentation and quotes"
        )
        raise SpecError([issue], file=file) from None
    except yaml.YAMLError as error:
        raise SpecError([Issue("", f"YAML error: {error}", file=file)], file=file) from None
    if data is None:
        raise SpecError(
            [Issue("", "the spec is empty", file, 1, 1, hint="start from jobs/examples/")], file=file
        )
    if not isinstance(data, dict):
        raise SpecError(
            [Issue("", f"the spec must be a mapping of keys, got a {type(data).__name__}", file, 1, 1)],
            file=file,
        )
    positions, duplicates = _positions(node, file) if node is not None else ({}, [])
    if duplicates:
        raise SpecError(duplicates, file=file)
    _drop_adapter_settings_for_full(data, override_map)
    return spec_from_dict(
        data, base_dir=spec_path.resolve().parent, source=file, positions=positions, overrides=override_map
    )
