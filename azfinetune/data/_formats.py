"""Per-task example checks: chat messages, completion pairs, labels, tags, answers, source/target texts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import accumulate, chain, permutations, repeat
from operator import attrgetter, itemgetter, sub
from typing import Any, ClassVar

import orjson

from azfinetune.data._report import DataIssue, DataReport, LabelSummary, Severity
from azfinetune.data._tokens import TextExample
from azfinetune.errors import DataError

__all__ = [
    "CHAT_ROLES",
    "DEFAULT_COLUMNS",
    "TASKS",
    "ChatChecker",
    "Checker",
    "FastChat",
    "make_checker",
    "normalize_task",
]

TASKS = (
    "chat-completion",
    "text-completion",
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
)

# Logical column -> names tried in order when the spec does not name it; the first is the default.
# The names follow the Azure ML registry pipelines' sample data (sentence1_key/label_key, token_key/tag_key
# with CoNLL "ner_tags", SQuAD context/question/answers{text, answer_start}, document_key/summary_key).
DEFAULT_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "chat-completion": {"messages": ("messages",)},
    "text-completion": {"prompt": ("prompt",), "completion": ("completion",), "text": ("text",)},
    "text-classification": {
        "text": ("text", "sentence1", "sentence"),
        "text_pair": ("text_pair", "sentence2"),
        "label": ("label", "labels"),
    },
    "token-classification": {"tokens": ("tokens",), "tags": ("ner_tags", "tags")},
    "question-answering": {
        "context": ("context",),
        "question": ("question",),
        "answers": ("answers",),
        "answer_text": ("text",),
        "answer_start": ("answer_start",),
    },
    "summarization": {
        "source": ("document", "source", "article"),
        "target": ("summary", "target", "highlights"),
    },
    "translation": {"source": ("source",), "target": ("target",), "source_lang": (), "target_lang": ()},
}

CHAT_ROLES = frozenset({"system", "user", "assistant"})
_MESSAGE_KEYS = frozenset({"role", "content", "weight"})
_OK_MESSAGE_KEYSETS = frozenset(
    chain(permutations(("role", "content")), permutations(("role", "content", "weight")))
)
_ROLE_HINTS = {
    "bot": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "gpt": "assistant",
    "human": "user",
    "customer": "user",
    "developer": "system",
}


_SAME_LINE_BOUNDARY = re.compile(rb"\}[ \t\r]*\{")
_LANG_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_MAX_LABELS = 10_000


def normalize_task(task: object) -> str:
    """'chat_completion', 'ChatCompletion', an enum member ... -> 'chat-completion'; DataError if unknown."""
    raw = str(getattr(task, "value", task))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", raw).lower().replace("_", "-").strip()
    if text not in TASKS:
        raise DataError(f"unknown task {raw!r}", hint=f"use one of: {', '.join(TASKS)}")
    return text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


class Checker:
    """Checks the examples of one task; one instance per file (it keeps label counts)."""

    task: ClassVar[str] = ""

    def __init__(
        self,
        report: DataReport,
        columns: Mapping[str, str] | None = None,
        *,
        serverless: bool = False,
        tabular: bool = False,
    ) -> None:
        self.report = report
        self.explicit = dict(columns or {})
        self.serverless = serverless
        self.tabular = tabular  # CSV/TSV: every value is a string; lists/objects arrive JSON-encoded
        defaults = DEFAULT_COLUMNS[self.task]
        unknown = sorted(set(self.explicit) - set(defaults))
        if unknown:
            raise DataError(
                f"column key(s) {', '.join(unknown)} do not apply to {self.task}",
                hint=f"{self.task} takes: {', '.join(defaults)}",
            )
        for key, name in self.explicit.items():
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"column {key!r} must name a field, got {name!r}")
        self.columns: dict[str, str] = {k: v[0] for k, v in defaults.items() if v}
        self.columns.update(self.explicit)
        self.bound = False
        self.absent: set[str] = set()  # required columns missing from a table's header (reported once)
        self._ok = True

    # -- issues ------------------------------------------------------------------------------------
    def error(
        self,
        kind: str,
        line: int | None,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        severity: Severity = "error",
    ) -> None:
        if severity == "error":
            self._ok = False
        self.report.add(
            DataIssue(kind=kind, message=message, line=line, field=field, hint=hint, severity=severity)
        )

    def warn(
        self, kind: str, line: int | None, message: str, *, field: str | None = None, hint: str | None = None
    ) -> None:
        self.error(kind, line, message, field=field, hint=hint, severity="warning")

    # -- columns -----------------------------------------------------------------------------------
    def bind(
        self,
        names: Iterable[str],
        first: Mapping[str, Any] | None = None,
        *,
        header: bool = False,
        header_line: int | None = None,
    ) -> None:
        """Resolve the columns from the first record's field names (a table's header)."""
        self.bound = True
        present = set(names)
        for key, candidates in DEFAULT_COLUMNS[self.task].items():
            if key in self.explicit or not candidates:
                continue
            found = next((c for c in candidates if c in present), None)
            if found is not None:
                self.columns[key] = found
        self._after_bind(present, first)
        if header:  # a table's columns are known up front: report a missing one once
            missing = [
                self.columns[k] for k in self.required_columns(present) if self.columns[k] not in present
            ]
            if missing:
                self.absent.update(missing)
                self.error(
                    "missing_column",
                    header_line,
                    f"no column {', '.join(repr(m) for m in missing)} (the columns are: {', '.join(sorted(present))})",
                    hint="name the columns with --columns KEY=NAME (data.columns in the spec)",
                )

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        """Task-specific column choices (optional columns, translation language codes)."""

    def required_columns(self, present: set[str]) -> list[str]:
        return []

    # -- values ------------------------------------------------------------------------------------
    def text(self, obj: Mapping[str, Any], key: str, line: int, *, allow_empty: bool = False) -> str | None:
        name = self.columns[key]
        if name not in obj or obj[name] is None:
            if name not in self.absent:
                what = "is null" if name in obj else "is missing"
                self.error("missing_field", line, f"{name!r} {what}", field=name, hint=self._field_hint(key))
            else:
                self._ok = False
            return None
        value = obj[name]
        if not isinstance(value, str):
            self.error("wrong_type", line, f"{name!r} must be a string, got {_type_name(value)}", field=name)
            return None
        if not allow_empty and not value.strip():
            self.error("empty_field", line, f"{name!r} is empty", field=name)
            return None
        return value

    def structured(self, obj: Mapping[str, Any], key: str, line: int) -> Any:
        """A list/object value; from CSV/TSV it arrives as JSON text and is decoded here."""
        name = self.columns[key]
        if name not in obj or obj[name] is None:
            if name not in self.absent:
                what = "is null" if name in obj else "is missing"
                self.error("missing_field", line, f"{name!r} {what}", field=name, hint=self._field_hint(key))
            else:
                self._ok = False
            return None
        value = obj[name]
        if isinstance(value, str) and (self.tabular or value.lstrip()[:1] in ("[", "{")):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                self.error(
                    "wrong_type",
                    line,
                    f"{name!r} must be a JSON list or object, got text that is not JSON",
                    field=name,
                    hint='write lists as JSON, e.g. ["EU", "rejects"]',
                )
                return None
        return value

    def used_columns(self) -> dict[str, str]:
        """The logical columns this file uses -> their names in it."""
        return dict(self.columns)

    def _field_hint(self, key: str) -> str | None:
        if key in self.explicit:
            return None
        return f"or name the column: --columns {key}=NAME"

    # -- examples ------------------------------------------------------------------------------------
    def check(self, obj: dict[str, Any], line: int) -> Any:
        """Issues for one example; returns what the token counter needs, or None when it has errors."""
        raise NotImplementedError

    def finish(self) -> LabelSummary | None:
        """File-level issues after the last example (label balance ...); the label summary if any."""
        return None


# --------------------------------------------------------------------------------------------------
class FastChat:
    """Outcome of a bulk chat check, per example: the messages, content characters, message count and
    the duplicate key computed from the decoded example."""

    __slots__ = ("chars", "counts", "keys", "messages", "schema")

    def __init__(
        self,
        messages: list[Any],
        chars: list[int],
        counts: list[int],
        keys: list[int],
        schema: _Schema | None = None,
    ) -> None:
        self.messages = messages  # per example: a list of message dicts, or a tuple of msgspec structs
        self.chars = chars
        self.counts = counts
        self.keys = keys
        self.schema = schema  # set when `messages` holds msgspec structs

    def conversations(self) -> list[list[dict[str, Any]]]:
        """The messages as plain dicts (what a chat template takes)."""
        if self.schema is None:
            return [list(conv) for conv in self.messages]
        as_dict = self.schema.as_dict
        return [[as_dict(m) for m in conv] for conv in self.messages]


def _dict_key(messages: list[dict[str, Any]]) -> int:
    return hash(tuple((m["role"], m["content"], m.get("weight")) for m in messages))


def _per_example_chars(lengths: list[int], counts: list[int]) -> list[int]:
    """Sum per-message lengths into per-example totals, without a Python-level loop."""
    cumulative = list(accumulate(lengths, initial=0))
    ends = list(accumulate(counts))
    return list(map(sub, map(cumulative.__getitem__, ends), map(cumulative.__getitem__, chain((0,), ends))))


class _Schema:
    """msgspec types that accept exactly the examples the per-example check finds nothing in, except for
    two cross-message rules (whitespace-only content, the last role) that ChatChecker checks after
    decoding. One struct per role (tagged by "role"), so a weight on a system or user message, an unknown
    role or key fails in C. Frozen, so a decoded example hashes: the duplicate key (the role is part of
    a struct's hash)."""

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

    def key(self, messages: list[dict[str, Any]]) -> int:
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


def _schema(key: str) -> _Schema | None:
    try:
        return _Schema(key)
    except ImportError:
        return None


_get_content = attrgetter("content")
_get_messages = attrgetter("messages")
_get_last = itemgetter(-1)


class ChatChecker(Checker):
    """{"messages": [{"role": system|user|assistant, "content": str, "weight"?: 0|1}, ...]}."""

    task = "chat-completion"
    use_msgspec: ClassVar[bool] = True  # tests switch it off to exercise the orjson path

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema: _Schema | None = _schema(self.columns["messages"]) if self.use_msgspec else None

    def required_columns(self, present: set[str]) -> list[str]:
        return ["messages"]

    def example_key(self, messages: list[dict[str, Any]]) -> int:
        """Duplicate key of a valid example checked one by one: the same as the bulk path computes, so
        examples that differ only in key order or spacing are duplicates too."""
        return self.schema.key(messages) if self.schema is not None else _dict_key(messages)

    def fast_chunk(
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

    def fast_lines(self, lines: list[bytes]) -> FastChat | None:
        """Parse and check many raw lines; None means "check them one by one".

        Both bulk paths accept lines only when the per-example check would find no issue at all in
        them, so every path reports the same thing; they record nothing themselves.
        """
        schema = self.schema
        if schema is None:
            try:
                objs = list(map(orjson.loads, lines))
            except orjson.JSONDecodeError:
                return None
            return self.fast_check(objs)
        try:
            examples = list(map(schema.decoder.decode, lines))
        except Exception:  # msgspec.DecodeError/ValidationError, UnicodeDecodeError: the slow path explains
            return None
        return self._cross_check(examples)

    def _cross_check(self, examples: list[Any]) -> FastChat | None:
        schema = self.schema
        assert schema is not None
        messages = list(map(_get_messages, examples))
        counts = list(map(len, messages))
        flat = list(chain.from_iterable(messages))
        contents = list(map(_get_content, flat))
        if any(map(str.isspace, contents)):
            return None
        if set(map(type, map(_get_last, messages))) != {schema.assistant}:
            return None
        chars = _per_example_chars(list(map(len, contents)), counts)
        return FastChat(messages, chars, counts, list(map(hash, examples)), schema)

    def fast_check(self, objs: list[Any]) -> FastChat | None:
        """The orjson flavour: all-or-nothing checks of parsed dicts with C-level builtins."""
        key = self.columns["messages"]
        try:
            if set(map(type, objs)) != {dict} or set(map(tuple, objs)) != {(key,)}:
                return None
            messages = list(map(itemgetter(key), objs))
            if set(map(type, messages)) != {list}:
                return None
            counts = list(map(len, messages))
            if min(counts) == 0:
                return None
            flat = list(chain.from_iterable(messages))
            if set(map(type, flat)) != {dict}:
                return None
            keysets = set(map(tuple, flat))
            if not keysets <= _OK_MESSAGE_KEYSETS:
                return None
            roles = list(map(itemgetter("role"), flat))
            if not set(roles) <= CHAT_ROLES:
                return None
            contents = list(map(itemgetter("content"), flat))
            if set(map(type, contents)) != {str}:
                return None
            lengths = list(map(len, contents))
            if min(lengths) == 0 or any(map(str.isspace, contents)):
                return None
            if any(len(k) == 3 for k in keysets):
                weights = list(map(dict.get, flat, repeat("weight")))
                if not set(map(type, weights)) <= {int, type(None)}:
                    return None
                for role, weight in set(zip(roles, weights, strict=True)):
                    if weight is not None and (role != "assistant" or weight not in (0, 1)):
                        return None
            if set(map(itemgetter("role"), map(_get_last, messages))) != {"assistant"}:
                return None
        except (TypeError, KeyError):  # an unhashable role and the like: the slow path explains it
            return None
        keys = list(map(_dict_key, messages))
        return FastChat(messages, _per_example_chars(lengths, counts), counts, keys)

    def check(self, obj: dict[str, Any], line: int) -> list[dict[str, Any]] | None:
        self._ok = True
        key = self.columns["messages"]
        if key not in obj:
            hint = f'each line needs {{"{key}": [{{"role": "user", "content": ...}}, {{"role": "assistant", ...}}]}}'
            if "prompt" in obj or "completion" in obj:
                hint = (
                    "this line looks like text-completion data (prompt/completion): convert it to "
                    f'{{"{key}": [...]}} or use --task text-completion'
                )
            self.error("missing_messages", line, f"no {key!r} key", field=key, hint=hint)
            return None
        extra = [k for k in obj if k != key]
        if extra:
            self.warn(
                "unknown_field",
                line,
                f"unknown top-level key(s) {', '.join(repr(k) for k in extra)}: the trainers ignore them",
                field=extra[0],
                hint=f"keep only {key!r}",
            )
        messages = obj[key]
        if not isinstance(messages, list):
            self.error(
                "messages_not_list", line, f"{key!r} must be a list, got {_type_name(messages)}", field=key
            )
            return None
        if not messages:
            self.error("empty_messages", line, f"{key!r} is empty", field=key)
            return None
        last_role: Any = None
        has_assistant = False
        roles_known = True
        for i, message in enumerate(messages):
            where = f"{key}[{i}]"
            if not isinstance(message, dict):
                self.error(
                    "message_not_object",
                    line,
                    f"message {i} is {_type_name(message)}, not an object",
                    field=where,
                )
                roles_known = False
                last_role = None
                continue
            unknown = [k for k in message if k not in _MESSAGE_KEYS]
            if unknown:
                self.error(
                    "unknown_message_key",
                    line,
                    f"message {i} has unknown key(s) {', '.join(repr(k) for k in unknown)}",
                    field=f"{where}.{unknown[0]}",
                    hint="allowed keys are role, content and weight; Azure fine-tuning rejects extra keys "
                    '("Example N contains an extra ...")',
                )
            role = message.get("role")
            if "role" not in message:
                self.error("missing_role", line, f"message {i} has no 'role'", field=f"{where}.role")
                roles_known = False
            elif not isinstance(role, str) or role not in CHAT_ROLES:
                suggestion = _ROLE_HINTS.get(str(role).lower()) if isinstance(role, str) else None
                hint = f"did you mean {suggestion!r}?" if suggestion else "use system, user or assistant"
                self.error("unknown_role", line, f"unknown role {role!r}", field=f"{where}.role", hint=hint)
                roles_known = False
            if "content" not in message:
                self.error("missing_content", line, f"message {i} has no 'content'", field=f"{where}.content")
            else:
                content = message["content"]
                if not isinstance(content, str):
                    self.error(
                        "content_not_string",
                        line,
                        f"message {i} content must be a string, got {_type_name(content)}",
                        field=f"{where}.content",
                    )
                elif not content.strip():
                    self.error(
                        "empty_content", line, f"message {i} content is empty", field=f"{where}.content"
                    )
            if "weight" in message:
                weight = message["weight"]
                if type(weight) is not int or weight not in (0, 1):
                    self.error(
                        "invalid_weight",
                        line,
                        f"message {i} weight must be 0 or 1, got {weight!r}",
                        field=f"{where}.weight",
                    )
                elif role != "assistant":
                    self.error(
                        "weight_on_non_assistant",
                        line,
                        f"message {i} is from {role!r}: only assistant messages take a weight",
                        field=f"{where}.weight",
                        hint="remove the weight; only assistant replies are trained on",
                    )
            if role == "assistant":
                has_assistant = True
            last_role = role
        if roles_known and not has_assistant:
            self.error(
                "no_assistant_message",
                line,
                "no assistant message: there is nothing to learn from this example",
                field=key,
                hint="add the reply the model should give as a final assistant message",
            )
        elif roles_known and last_role != "assistant":
            where = f"{key}[{len(messages) - 1}].role"
            if self.serverless:
                self.error(
                    "last_message_not_assistant",
                    line,
                    f"the last message is from {last_role!r}, not the assistant (an error for serverless: the "
                    "hosted fine-tuning service expects every example to end with the reply it learns)",
                    field=where,
                    hint="end the example with the assistant reply, or drop the trailing messages",
                )
            else:
                self.warn(
                    "last_message_not_assistant",
                    line,
                    f"the last message is from {last_role!r}, not the assistant (a warning: the trainer learns "
                    "only assistant replies, so the trailing messages are never trained on and only use sequence "
                    "length; serverless fine-tuning rejects such examples)",
                    field=where,
                    hint="end the example with the assistant reply, or drop the trailing messages",
                )
        return messages if self._ok else None


# --------------------------------------------------------------------------------------------------
class TextCompletionChecker(Checker):
    """{"prompt": str, "completion": str} or {"text": str}."""

    task = "text-completion"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modes: set[str] = set()

    def used_columns(self) -> dict[str, str]:
        keys = {"pair": ("prompt", "completion"), "text": ("text",)}
        wanted = {k for mode in self.modes or {"pair"} for k in keys[mode]}
        return {k: v for k, v in self.columns.items() if k in wanted}

    def required_columns(self, present: set[str]) -> list[str]:
        if "prompt" in self.explicit or "completion" in self.explicit:
            return ["prompt", "completion"]
        if self.columns["prompt"] in present or self.columns["completion"] in present:
            return ["prompt", "completion"]
        return ["text"]

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        prompt_name, completion_name, text_name = (self.columns[k] for k in ("prompt", "completion", "text"))
        pair_mode = prompt_name in obj or completion_name in obj or "prompt" in self.explicit
        self.modes.add("pair" if pair_mode else "text")
        if pair_mode:
            if text_name in obj and "text" not in self.explicit:
                self.warn(
                    "ambiguous_format",
                    line,
                    f"has both {prompt_name!r}/{completion_name!r} and {text_name!r}; {text_name!r} is ignored",
                    field=text_name,
                )
            prompt = self.text(obj, "prompt", line, allow_empty=True)
            completion = self.text(obj, "completion", line)
            if prompt is not None and not prompt.strip() and completion is not None:
                self.warn("empty_field", line, f"{prompt_name!r} is empty", field=prompt_name)
            if not self._ok or prompt is None or completion is None:
                return None
            return TextExample((prompt, completion))
        if text_name not in obj and text_name not in self.absent:
            self.error(
                "missing_field",
                line,
                f"needs {prompt_name!r} and {completion_name!r}, or {text_name!r}",
                field=text_name,
                hint='e.g. {"prompt": "Q: ...", "completion": "A: ..."}; name other columns with --columns',
            )
            return None
        text = self.text(obj, "text", line)
        return TextExample((text,)) if text is not None else None


# --------------------------------------------------------------------------------------------------
class _LabelCounter:
    """Counts labels (bounded), remembering the first line of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        self.types: set[str] = set()
        self.truncated = False

    def add(self, key: tuple[str, str], line: int) -> None:
        """Count one (label, JSON type) from `_label_key`; the type is noted even past the label bound."""
        label, json_type = key
        self.types.add(json_type)
        if label not in self.counts and len(self.counts) >= _MAX_LABELS:
            self.truncated = True
            return
        self.counts[label] += 1
        self.first_line.setdefault(label, line)

    def summary(self, name: str) -> LabelSummary:
        ordered = dict(sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))
        singletons = sum(1 for n in self.counts.values() if n == 1)
        return LabelSummary(
            name=name,
            distinct=len(self.counts),
            counts=ordered,
            singletons=singletons,
            truncated=self.truncated,
        )


def _label_key(value: Any) -> tuple[str, str] | None:
    """(label as text, its JSON type) for a valid class label, None otherwise."""
    if isinstance(value, bool):
        return ("true" if value else "false", "boolean")
    if isinstance(value, int):
        return (str(value), "number")
    if isinstance(value, float) and value.is_integer():
        return (str(int(value)), "number")
    if isinstance(value, str):
        return (value, "string")
    return None


class TextClassificationChecker(Checker):
    """A text column (two for sentence pairs) and a label column."""

    task = "text-classification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labels = _LabelCounter()
        self.pair = "text_pair" in self.explicit

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        if not self.pair and self.columns["text_pair"] in present:
            self.pair = True

    def required_columns(self, present: set[str]) -> list[str]:
        return ["text", "text_pair", "label"] if self.pair else ["text", "label"]

    def used_columns(self) -> dict[str, str]:
        return {k: v for k, v in self.columns.items() if k != "text_pair" or self.pair}

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        text = self.text(obj, "text", line)
        pair = self.text(obj, "text_pair", line) if self.pair else None
        name = self.columns["label"]
        label: tuple[str, str] | None = None
        if name not in obj or obj[name] is None or (isinstance(obj[name], str) and not obj[name].strip()):
            if name not in self.absent:
                what = "is missing" if name not in obj else ("is null" if obj[name] is None else "is empty")
                self.error(
                    "missing_label", line, f"{name!r} {what}", field=name, hint=self._field_hint("label")
                )
            else:
                self._ok = False
        else:
            label = _label_key(obj[name])
            if label is None:
                self.error(
                    "invalid_label",
                    line,
                    f"{name!r} must be a class name or an integer class id, got {obj[name]!r}",
                    field=name,
                )
        if not self._ok or text is None or label is None:
            return None
        self.labels.add(label, line)
        if pair is not None:
            return TextExample((text, pair), "pair")
        return TextExample((text,))

    def finish(self) -> LabelSummary | None:
        summary = self.labels.summary("label")
        if not self.labels.counts:
            return summary
        if len(self.labels.types) > 1:
            self.warn(
                "mixed_label_types",
                None,
                f'labels mix {" and ".join(sorted(self.labels.types))} values (e.g. 1 and "1" are different classes)',
                field=self.columns["label"],
            )
        if summary.distinct < 2:
            only = next(iter(summary.counts))
            self.warn(
                "too_few_labels",
                None,
                f"every example has the label {only!r}: a classifier needs at least two classes",
                field=self.columns["label"],
            )
        for label, count in self.labels.counts.items():
            if count == 1:
                self.warn(
                    "rare_label",
                    self.labels.first_line[label],
                    f"label {label!r} is used by this example only: the model can hardly learn it",
                    field=self.columns["label"],
                    hint="add examples of this class, merge it into another, or check it for a typo",
                )
        return summary


# --------------------------------------------------------------------------------------------------
class TokenClassificationChecker(Checker):
    """{"tokens": [str, ...], "ner_tags": [str | int, ...]} of equal length."""

    task = "token-classification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tags = _LabelCounter()

    def required_columns(self, present: set[str]) -> list[str]:
        return ["tokens", "tags"]

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        tokens = self.structured(obj, "tokens", line)
        tags = self.structured(obj, "tags", line)
        tokens_name, tags_name = self.columns["tokens"], self.columns["tags"]
        if tokens is not None:
            if not isinstance(tokens, list):
                self.error(
                    "wrong_type",
                    line,
                    f"{tokens_name!r} must be a list, got {_type_name(tokens)}",
                    field=tokens_name,
                )
            elif not tokens:
                self.error("empty_field", line, f"{tokens_name!r} is empty", field=tokens_name)
            else:
                bad = next((i for i, t in enumerate(tokens) if not isinstance(t, str)), None)
                if bad is not None:
                    self.error(
                        "wrong_type",
                        line,
                        f"token {bad} must be a string, got {_type_name(tokens[bad])}",
                        field=f"{tokens_name}[{bad}]",
                    )
        if tags is not None:
            if not isinstance(tags, list):
                self.error(
                    "wrong_type",
                    line,
                    f"{tags_name!r} must be a list, got {_type_name(tags)}",
                    field=tags_name,
                )
            else:
                bad = next(
                    (i for i, t in enumerate(tags) if _label_key(t) is None or isinstance(t, bool)), None
                )
                if bad is not None:
                    self.error(
                        "invalid_tag",
                        line,
                        f"tag {bad} must be a tag name or an integer id, got {tags[bad]!r}",
                        field=f"{tags_name}[{bad}]",
                    )
        if not self._ok or not isinstance(tokens, list) or not isinstance(tags, list):
            return None
        if len(tokens) != len(tags):
            self.error(
                "length_mismatch",
                line,
                f"{len(tokens)} tokens but {len(tags)} tags: each token needs exactly one tag",
                field=tags_name,
            )
            return None
        for tag in tags:
            key = _label_key(tag)
            if key is not None:
                self.tags.add(key, line)
        return TextExample((" ".join(tokens),))

    def finish(self) -> LabelSummary | None:
        if len(self.tags.types) > 1:
            self.warn(
                "mixed_label_types",
                None,
                f"tags mix {' and '.join(sorted(self.tags.types))} values",
                field=self.columns["tags"],
            )
        return self.tags.summary("tag")


# --------------------------------------------------------------------------------------------------
class QuestionAnsweringChecker(Checker):
    """SQuAD: context, question, answers {text: [...], answer_start: [...]} pointing into the context."""

    task = "question-answering"

    def required_columns(self, present: set[str]) -> list[str]:
        return ["context", "question", "answers"]

    def _answers(self, answers: Any, line: int) -> list[tuple[Any, Any, str]] | None:
        name = self.columns["answers"]
        text_key, start_key = self.columns["answer_text"], self.columns["answer_start"]
        if isinstance(answers, dict):
            for sub_key in (text_key, start_key):
                if sub_key not in answers:
                    self.error(
                        "missing_field", line, f"{name!r} has no {sub_key!r}", field=f"{name}.{sub_key}"
                    )
            if not self._ok:
                return None
            texts, starts = answers[text_key], answers[start_key]
            if not isinstance(texts, list) and not isinstance(starts, list):
                return [(texts, starts, name)]
            if not isinstance(texts, list) or not isinstance(starts, list):
                self.error(
                    "wrong_type",
                    line,
                    f"{name}.{text_key} and {name}.{start_key} must both be lists (or both single values)",
                    field=name,
                )
                return None
            if len(texts) != len(starts):
                self.error(
                    "length_mismatch",
                    line,
                    f"{len(texts)} answer texts but {len(starts)} answer_start values",
                    field=name,
                )
                return None
            return [
                (t, s, f"{name}.{text_key}[{i}]") for i, (t, s) in enumerate(zip(texts, starts, strict=True))
            ]
        if isinstance(answers, list):
            out: list[tuple[Any, Any, str]] = []
            for i, answer in enumerate(answers):
                if not isinstance(answer, dict) or text_key not in answer or start_key not in answer:
                    self.error(
                        "wrong_type",
                        line,
                        f"answer {i} must be an object with {text_key!r} and {start_key!r}",
                        field=f"{name}[{i}]",
                    )
                    continue
                out.append((answer[text_key], answer[start_key], f"{name}[{i}]"))
            return out if self._ok else None
        self.error(
            "wrong_type",
            line,
            f"{name!r} must be an object {{{text_key!r}: [...], {start_key!r}: [...]}}, got {_type_name(answers)}",
            field=name,
        )
        return None

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        context = self.text(obj, "context", line)
        question = self.text(obj, "question", line)
        answers_value = self.structured(obj, "answers", line)
        answers = self._answers(answers_value, line) if answers_value is not None else None
        if answers is None or context is None or question is None:
            self._ok = False
            return None
        for text, start, where in answers:
            if not isinstance(text, str) or not text:
                self.error(
                    "wrong_type", line, f"answer text must be a non-empty string, got {text!r}", field=where
                )
                continue
            if type(start) is not int or start < 0:
                self.error(
                    "invalid_answer_start",
                    line,
                    f"answer_start must be a character offset (an integer ≥ 0), got {start!r}",
                    field=where,
                )
                continue
            if context[start : start + len(text)] != text:
                found = context.find(text)
                hint = (
                    f"the text occurs at answer_start {found}"
                    if found >= 0
                    else "the answer text is not in the context"
                )
                self.error(
                    "answer_mismatch",
                    line,
                    f"context[{start}:{start + len(text)}] is {context[start : start + len(text)]!r}, not the answer {text!r}",
                    field=where,
                    hint=hint,
                )
        if not self._ok:
            return None
        return TextExample((question, context), "pair")


# --------------------------------------------------------------------------------------------------
class SummarizationChecker(Checker):
    """A source document column and a target summary column."""

    task = "summarization"

    def required_columns(self, present: set[str]) -> list[str]:
        return ["source", "target"]

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        source = self.text(obj, "source", line)
        target = self.text(obj, "target", line)
        if source is None or target is None:
            return None
        return TextExample((source, target), "separate")


class TranslationChecker(Checker):
    """Source and target text; language codes either name the columns (the registry pipeline's
    source_lang/target_lang convention, e.g. {"en": ..., "ro": ...} or {"translation": {"en": ..., "ro": ...}})
    or sit next to source/target columns (per file via --columns, or per row as source_lang/target_lang)."""

    task = "translation"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nested: str | None = None  # "translation" when the texts sit under obj["translation"][code]
        for key in ("source_lang", "target_lang"):
            code = self.explicit.get(key)
            if code is not None and not _LANG_CODE.match(code):
                self.error(
                    "invalid_language_code",
                    None,
                    f"{key} {code!r} is not a language code",
                    field=key,
                    hint="use ISO 639 codes such as en, de, ro, pt-BR or eng_Latn",
                )

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        if "source" in self.explicit or "target" in self.explicit:
            return
        src, tgt = self.explicit.get("source_lang"), self.explicit.get("target_lang")
        if "source" in present and "target" in present:
            return
        if src and tgt and _LANG_CODE.match(src) and _LANG_CODE.match(tgt):
            if src not in present and "translation" in present:
                self.nested = "translation"
            self.columns["source"], self.columns["target"] = src, tgt
            return
        nested = first.get("translation") if first is not None else None
        codes: list[str] = []
        if isinstance(nested, dict) and len(nested) == 2:
            codes = [str(k) for k in nested]
            self.nested = "translation"
        elif len(present) == 2 and all(_LANG_CODE.match(k) for k in present) and first is not None:
            codes = list(first)
        if len(codes) == 2 and all(_LANG_CODE.match(c) for c in codes):
            self.columns["source"], self.columns["target"] = codes
            self.columns.setdefault("source_lang", codes[0])
            self.columns.setdefault("target_lang", codes[1])

    def required_columns(self, present: set[str]) -> list[str]:
        return [] if self.nested else ["source", "target"]

    def check(self, obj: dict[str, Any], line: int) -> TextExample | None:
        self._ok = True
        holder: Mapping[str, Any] = obj
        if self.nested:
            inner = obj.get(self.nested)
            if not isinstance(inner, dict):
                self.error(
                    "missing_field",
                    line,
                    f"{self.nested!r} must be an object of language code -> text, got {_type_name(inner)}",
                    field=self.nested,
                )
                return None
            holder = inner
        source = self.text(holder, "source", line)
        target = self.text(holder, "target", line)
        for key in ("source_lang", "target_lang"):
            if key in obj and key not in self.explicit:
                code = obj[key]
                if not isinstance(code, str) or not _LANG_CODE.match(code):
                    self.error(
                        "invalid_language_code",
                        line,
                        f"{key} {code!r} is not a language code",
                        field=key,
                        hint="use ISO 639 codes such as en, de, ro, pt-BR or eng_Latn",
                    )
        if source is None or target is None or not self._ok:
            return None
        return TextExample((source, target), "separate")

    def finish(self) -> LabelSummary | None:
        src, tgt = self.columns.get("source_lang"), self.columns.get("target_lang")
        if src and tgt and src == tgt:
            self.warn(
                "same_language", None, f"source and target language are both {src!r}", field="target_lang"
            )
        return None


_CHECKERS: dict[str, type[Checker]] = {
    cls.task: cls
    for cls in (
        ChatChecker,
        TextCompletionChecker,
        TextClassificationChecker,
        TokenClassificationChecker,
        QuestionAnsweringChecker,
        SummarizationChecker,
        TranslationChecker,
    )
}


def make_checker(
    task: str,
    report: DataReport,
    columns: Mapping[str, str] | None = None,
    *,
    serverless: bool = False,
    tabular: bool = False,
) -> Checker:
    return _CHECKERS[task](report, columns, serverless=serverless, tabular=tabular)
