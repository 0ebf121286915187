"""The chat bulk path: msgspec proves whole batches of chat lines clean, so the contract's reader checks
only the other lines one by one.

A batch is taken here only when every line of it is one that azft_contract's ChatChecker would accept
without a single finding: msgspec's schema refuses everything the checker reports on (unknown roles or
keys, weights off assistants, empty content, invalid UTF-8, lone surrogates, NaN, duplicate role keys),
and `_cross_check` adds the rules that span messages (whitespace-only content, the first and the last
role). Anything else falls back to the contract, so a verdict never depends on this module; the
differential tests compare both paths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import accumulate, chain
from operator import attrgetter, itemgetter, sub
from typing import Any

__all__ = ["FastChat", "FastChatPath", "message_key"]

_SAME_LINE_BOUNDARY = re.compile(rb"\}[ \t\r]*\{")
_get_content = attrgetter("content")
_get_messages = attrgetter("messages")
_get_last = itemgetter(-1)
_get_first = itemgetter(0)


class FastChat:
    """Outcome of a bulk chat check, per example: the messages, content characters, message count and
    the duplicate key computed from the decoded example."""

    __slots__ = ("chars", "counts", "keys", "messages", "schema")

    def __init__(
        self, messages: list[Any], chars: list[int], counts: list[int], keys: list[int], schema: _Schema
    ) -> None:
        self.messages = messages  # per example: a tuple of msgspec structs
        self.chars = chars
        self.counts = counts
        self.keys = keys
        self.schema = schema

    def conversations(self) -> list[list[dict[str, Any]]]:
        """The messages as plain dicts (what a chat template takes)."""
        as_dict = self.schema.as_dict
        return [[as_dict(m) for m in conv] for conv in self.messages]


def message_key(messages: Sequence[dict[str, Any]]) -> int:
    """The duplicate key of a valid example when msgspec is not installed (no bulk path to agree with)."""
    return hash(tuple((m["role"], m["content"], m.get("weight")) for m in messages))


def _per_example_chars(lengths: list[int], counts: list[int]) -> list[int]:
    """Sum per-message lengths into per-example totals, without a Python-level loop."""
    cumulative = list(accumulate(lengths, initial=0))
    ends = list(accumulate(counts))
    return list(map(sub, map(cumulative.__getitem__, ends), map(cumulative.__getitem__, chain((0,), ends))))


class _Schema:
    """msgspec types that accept exactly the examples the checker finds nothing in, except for the
    cross-message rules `_cross_check` applies after decoding. One struct per role (tagged by "role"), so
    a weight on a system or user message, an unknown role or key fails in C. Frozen, so a decoded example
    hashes: the duplicate key (the role is part of a struct's hash)."""

    def __init__(self, key: str) -> None:
        from typing import Annotated, Literal

        import msgspec

        content = Annotated[str, msgspec.Meta(min_length=1)]
        options: dict[str, Any] = {
            "forbid_unknown_fields": True,
            "frozen": True,
            "gc": False,
            "tag_field": "role",
        }
        self.roles: dict[str, Any] = {
            "system": msgspec.defstruct("SystemMessage", [("content", content)], tag="system", **options),
            "user": msgspec.defstruct("UserMessage", [("content", content)], tag="user", **options),
            "assistant": msgspec.defstruct(
                "AssistantMessage",
                [("content", content), ("weight", Literal[0, 1] | msgspec.UnsetType, msgspec.UNSET)],
                tag="assistant",
                **options,
            ),
        }
        self.assistant = self.roles["assistant"]
        self.role_of = {cls: role for role, cls in self.roles.items()}
        message = self.roles["system"] | self.roles["user"] | self.assistant
        self.example = msgspec.defstruct(
            "ChatExample",
            [("messages", Annotated[tuple[message, ...], msgspec.Meta(min_length=1)])],  # type: ignore[valid-type]
            forbid_unknown_fields=True,
            rename={"messages": key},
            frozen=True,
            gc=False,
        )
        self.decoder = msgspec.json.Decoder(self.example)
        self.unset = msgspec.UNSET

    def key(self, messages: Sequence[dict[str, Any]]) -> int:
        """The duplicate key of a valid example that was parsed as dicts (equal to the decoded one's)."""
        built = tuple(
            self.assistant(content=m["content"], weight=m.get("weight", self.unset))
            if m["role"] == "assistant"
            else self.roles[m["role"]](content=m["content"])
            for m in messages
        )
        return hash(self.example(messages=built))

    def as_dict(self, message: Any) -> dict[str, Any]:
        out = {"role": self.role_of[type(message)], "content": message.content}
        weight = getattr(message, "weight", self.unset)
        if weight is not self.unset:
            out["weight"] = weight
        return out


class FastChatPath:
    """Bulk checks of chat lines under one messages column; `None` answers mean "check one by one"."""

    def __init__(self, key: str) -> None:
        self.schema: _Schema | None
        try:
            self.schema = _Schema(key)
        except ImportError:
            self.schema = None

    def example_key(self, messages: Sequence[dict[str, Any]]) -> int:
        """Duplicate key of a valid example checked one by one: the same as the bulk path computes, so
        examples that differ only in key order or spacing are duplicates too."""
        return self.schema.key(messages) if self.schema is not None else message_key(messages)

    def chunk(
        self, data: bytes | bytearray, start: int, end: int, count: int, has_cr: bool
    ) -> FastChat | None:
        """All `count` lines of data[start:end] in one msgspec call, when each is certainly one object.

        decode_lines reads whitespace-separated values, not lines, so the lines are proven to be one object
        each: the batch starts with "{" and ends with "}" + newline, no "}" is followed by "{" with only
        spaces, tabs or CRs between them (inside a valid object that would need a comma, so a match is
        a boundary between two objects on one line, or harmless text in a string, which just sends the
        batch down the slow path), and there are as many objects as lines. Then every boundary holds a
        newline, and with `count` newlines for `count` objects, each holds exactly one and no object
        spans lines or leaves a line blank.
        """
        schema = self.schema
        if schema is None or not count or data[start : start + 1] != b"{":
            return None
        if data[end - 2 : end] != b"}\n" and not (has_cr and data[end - 3 : end] == b"}\r\n"):
            return None
        if _SAME_LINE_BOUNDARY.search(data, start, end) is not None:
            return None
        try:
            with memoryview(data) as view:
                examples = schema.decoder.decode_lines(view[start:end])
        except Exception:  # msgspec.DecodeError/ValidationError, UnicodeDecodeError: look line by line
            return None
        if len(examples) != count:
            return None
        return self._cross_check(examples)

    def lines(self, lines: list[bytes]) -> FastChat | None:
        """Parse and check many raw lines, one msgspec call each; None means "check them one by one"."""
        schema = self.schema
        if schema is None:
            return None
        try:
            examples = list(map(schema.decoder.decode, lines))
        except Exception:  # msgspec.DecodeError/ValidationError, UnicodeDecodeError: the contract explains
            return None
        return self._cross_check(examples)

    def _cross_check(self, examples: list[Any]) -> FastChat | None:
        schema = self.schema
        assert schema is not None
        messages = list(map(_get_messages, examples))
        counts = list(map(len, messages))
        flat = list(chain.from_iterable(messages))
        contents = list(map(_get_content, flat))
        if any(map(str.isspace, contents)):  # empty_content
            return None
        if set(map(type, map(_get_last, messages))) != {schema.assistant}:  # no reply last (a warning)
            return None
        if schema.assistant in set(map(type, map(_get_first, messages))):  # first_message_from_assistant
            return None
        chars = _per_example_chars(list(map(len, contents)), counts)
        return FastChat(messages, chars, counts, list(map(hash, examples)), schema)
