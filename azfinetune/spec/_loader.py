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
from azfinetune.secrets import iter_secrets
from azfinetune.spec._errors import (
    bool_for_number_issues,
    format_path,
    spec_error_from_validation,
    split_path,
)
from azfinetune.spec._models import FineTuneSpec

__all__ = [
    "apply_overrides",
    "decode_spec_bytes",
    "load_spec",
    "parse_overrides",
    "read_spec_text",
    "spec_from_dict",
]

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int]]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: Bounds on what a spec may make the loader do: a spec is a page of settings, never megabytes or a graph.
MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000
MAX_INT_DIGITS = 30


class _Bounded(SpecError):
    """Raised inside the walker; carries one located issue."""


def decode_spec_bytes(raw: bytes, file: str) -> str:
    """Spec bytes to text, the same way for every command: UTF-8 (with or without BOM), UTF-16/32 by their BOM;
    gzip, other binary or undecodable bytes are a SpecError naming the file."""
    import codecs

    def refuse(message: str, hint: str | None = None, line: int | None = None) -> SpecError:
        return SpecError([Issue("", message, file, line, 1 if line else None, hint=hint)], file=file)

    if len(raw) > MAX_SPEC_BYTES:
        raise refuse(
            f"the spec is {len(raw):,} bytes; a spec is at most {MAX_SPEC_BYTES:,} bytes",
            "a spec holds settings; put data in data files",
        )
    if raw[:2] == b"\x1f\x8b":
        raise refuse("this is a gzip file, not a YAML spec", "decompress it first (gunzip)")
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    codec = next((name for bom, name in boms if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1 if codec == "utf-8" else None
        raise refuse(
            f"not {codec.upper().removesuffix('-SIG')} text (undecodable byte at offset {error.start})",
            "save the spec as UTF-8",
            line,
        ) from None
    bad = next(
        (i for i, ch in enumerate(text) if ch == "\x00" or (ord(ch) < 32 and ch not in "\t\n\r")), None
    )
    if bad is not None:
        raise refuse(
            f"control character {text[bad]!r} in the spec: this is binary, not YAML text",
            "save the spec as UTF-8 text",
            text[:bad].count("\n") + 1,
        )
    return text


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _check_graph(root: yaml.Node, file: str) -> None:
    """Refuse alias bombs, recursive anchors, deep nesting, huge integers and non-string keys, before anything
    constructs or walks the expanded tree. Shared (aliased) nodes are counted with their expanded size once each."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def issue(node: yaml.Node, message: str, hint: str | None = None, loc: Loc = ()) -> _Bounded:
        line, column = _mark(node)
        return _Bounded([Issue(format_path(loc), message, file, line, column, hint=hint)], file=file)

    def size(node: yaml.Node, depth: int, loc: Loc = ()) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise issue(
                node, "recursive alias: this node contains itself", "remove the '*' alias that points up", loc
            )
        if depth > MAX_DEPTH:
            raise issue(
                node, f"nested more than {MAX_DEPTH} levels deep", "a spec is a few levels of keys", loc
            )
        total = 1
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:int" and len(str(node.value)) > MAX_INT_DIGITS:
                raise issue(
                    node, f"an integer of {len(str(node.value))} digits; at most {MAX_INT_DIGITS}", None, loc
                )
        else:
            on_path.add(key)
            if isinstance(node, yaml.MappingNode):
                children = []
                for key_node, value_node in node.value:
                    if not (
                        isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"
                    ):
                        shown = str(key_node.value)[:40] if isinstance(key_node, yaml.ScalarNode) else "?"
                        raise issue(
                            key_node,
                            f"key {shown!r} is not a string (YAML reads it as "
                            f"{key_node.tag.rsplit(':', 1)[-1]})",
                            f"quote it: '{shown}':",
                            loc,
                        )
                    children.append(((*loc, str(key_node.value)), value_node))
            else:
                children = [((*loc, index), item) for index, item in enumerate(node.value)]
            for child_loc, child in children:
                total += size(child, depth + 1, child_loc)
                if total > MAX_NODES:
                    raise issue(
                        node,
                        f"the spec expands to more than {MAX_NODES:,} values (YAML aliases)",
                        "write the values out; a spec needs far fewer",
                        loc,
                    )
            on_path.discard(key)
        sizes[key] = total
        return total

    try:
        size(root, 0)
    except RecursionError:
        raise issue(root, "nested too deeply") from None


def _positions(node: yaml.Node, file: str, prefix: Loc = ()) -> tuple[Positions, list[Issue]]:
    """Line/column (1-based) of every key in a composed YAML tree, and its duplicate keys. Each node is walked
    once: an aliased node's keys are positioned where the anchor is, not again for every alias."""
    positions: Positions = {}
    issues: list[Issue] = []
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(node, prefix)]
    while stack:
        current, loc_prefix = stack.pop()
        if id(current) in walked:
            continue
        walked.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in current.value:
                key = str(key_node.value)
                loc = (*loc_prefix, key)
                line, column = _mark(key_node)
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
                stack.append((value_node, loc))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                loc = (*loc_prefix, index)
                positions[loc] = _mark(item)
                stack.append((item, loc))
    issues.sort(key=lambda i: (i.line or 0, i.column or 0))
    return positions, issues


def read_spec_text(path: Path, file: str | None = None) -> str:
    """A spec file's text, decoded by `decode_spec_bytes`; OS errors (missing, a folder, a name too long, a
    symlink loop, no permission) become a SpecError naming the file."""
    file = file or str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([Issue("", "no such file", file=file)], file=file) from None
    except IsADirectoryError:
        raise SpecError([Issue("", "is a folder, not a spec file", file=file)], file=file) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SpecError([Issue("", f"cannot read the spec: {reason}", file=file)], file=file) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            [
                Issue(
                    "",
                    f"the spec is larger than {MAX_SPEC_BYTES:,} bytes",
                    file=file,
                    hint="a spec holds settings",
                )
            ],
            file=file,
        )
    return decode_spec_bytes(raw, file)


def load_yaml_file(path: Path) -> Any:
    """Any YAML file a command reads next to a spec, decoded and bounded as a spec is."""
    file = str(path)
    return _load_bounded(read_spec_text(path, file), file)[1]


def _load_bounded(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """Compose once, check the graph (`_check_graph`), then construct from the same nodes."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_graph(node, file)
        return node, loader.construct_document(node)
    except _Bounded:
        raise
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
    except RecursionError:
        raise SpecError(
            [Issue("", f"nested more than {MAX_DEPTH} levels deep", file, 1, 1)], file=file
        ) from None
    except (ValueError, TypeError, OverflowError) as error:  # e.g. a timestamp or number YAML cannot build
        raise SpecError([Issue("", f"YAML value cannot be read: {error}", file, 1, 1)], file=file) from None
    finally:
        loader.dispose()


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
        if not split_path(key):
            issues.append(Issue("", f"--set {item!r}: the key names no spec field", file="--set"))
            continue
        try:
            value = _load_bounded(raw, "--set")[1] if raw.strip() else ""
        except SpecError as error:
            if any("YAML syntax" in i.message or "YAML error" in i.message for i in error.issues):
                value = raw
            else:
                issues.extend(dataclasses.replace(i, path=key, line=None, column=None) for i in error.issues)
                continue
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
        if not parts:
            raise SpecError([Issue("", f"--set {dotted!r}: the key names no spec field", file="--set")])
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
    leaks = [
        Issue(
            format_path(loc),
            f"must not carry credentials: it holds {kind} (the value was not printed); refused so it never "
            "reaches a job, a log or an output",
            hint="keep secrets out of the spec: use a datastore, an Azure identity or a key vault reference",
        )
        for loc, kind in iter_secrets(raw)
    ]
    leaks.extend(bool_for_number_issues(FineTuneSpec, raw))
    if leaks:
        raise _locate(SpecError(leaks, file=source), positions or {}, source, overridden)
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
    text = read_spec_text(spec_path, file)
    node, data = _load_bounded(text, file)
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
