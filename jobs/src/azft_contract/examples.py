"""Per-task example checks: what makes an example valid, and the example the trainer receives.

One Checker per file (it keeps label counts). `check(obj, line)` reports every problem of one record to the
sink and returns the example as a dict of logical keys (``{"prompt": ..., "completion": ...}``,
``{"messages": [...]}``, ``{"text": ..., "text_pair": None, "label": "pos"}``), or None when it has errors.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from azft_contract.errors import ContractError, Sink
from azft_contract.formats import JSONValueError, decode_json
from azft_contract.tasks import CHAT_ROLES, COLUMNS

__all__ = [
    "ChatChecker",
    "Checker",
    "LabelCounts",
    "PreferenceChecker",
    "label_key",
    "label_text",
    "make_checker",
    "type_name",
]

_MESSAGE_KEYS = frozenset({"role", "content", "weight"})
_ROLES = frozenset(CHAT_ROLES)
_ROLE_HINTS = {
    "bot": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "gpt": "assistant",
    "human": "user",
    "customer": "user",
    "developer": "system",
}
_LANG_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_MAX_LABELS = 10_000
_LANG_HINT = "use ISO 639 codes such as en, de, ro, pt-BR or eng_Latn"


def type_name(value: Any) -> str:
    """'a string', 'a list', 'null' ...: how a JSON value's type reads in a message."""
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


def label_key(value: Any) -> tuple[str, str] | None:
    """(label as the trainer names it, its JSON type) for a valid class label, None otherwise.

    Integers and integral floats are the same class (1, 1.0 and "1" all train as "1")."""
    if isinstance(value, bool):
        return ("true" if value else "false", "boolean")
    if isinstance(value, int):
        return (str(value), "number")
    if isinstance(value, float) and value.is_integer():
        return (str(int(value)), "number")
    if isinstance(value, str):
        return (value, "string")
    return None


def label_text(value: Any) -> str | None:
    """The class name a valid label trains as, else None."""
    key = label_key(value)
    return None if key is None else key[0]


class LabelCounts:
    """Counts the labels (text-classification) or tags (token-classification) of a file, bounded,
    remembering the first line of each and the JSON types seen."""

    def __init__(self, name: str) -> None:
        self.name = name  # "label" or "tag"
        self.counts: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        self.types: set[str] = set()
        self.truncated = False

    def add(self, key: tuple[str, str], line: int) -> None:
        """Count one (label, JSON type) from `label_key`; the type is noted even past the label bound."""
        label, json_type = key
        self.types.add(json_type)
        if label not in self.counts and len(self.counts) >= _MAX_LABELS:
            self.truncated = True
            return
        self.counts[label] += 1
        self.first_line.setdefault(label, line)

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def ordered(self) -> dict[str, int]:
        """Label -> count, most frequent first (ties by name)."""
        return dict(sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))


class Checker:
    """Checks the examples of one task; one instance per file."""

    task: ClassVar[str] = ""

    def __init__(
        self, sink: Sink, columns: Mapping[str, str] | None = None, *, serverless: bool = False
    ) -> None:
        self.sink = sink
        self.explicit = dict(columns or {})
        self.serverless = serverless
        self.tabular = False  # CSV/TSV: every value is a string; lists/objects arrive JSON-encoded
        defaults = COLUMNS[self.task]
        unknown = sorted(set(self.explicit) - set(defaults))
        if unknown:
            raise ContractError(
                f"column key(s) {', '.join(unknown)} do not apply to {self.task}",
                hint=f"{self.task} takes: {', '.join(defaults)}",
            )
        for key, name in self.explicit.items():
            if not isinstance(name, str) or not name.strip():
                raise ContractError(f"column {key!r} must name a field, got {name!r}")
        self.columns: dict[str, str] = {k: v[0] for k, v in defaults.items() if v}
        self.columns.update(self.explicit)
        self.bound = False
        self.absent: set[str] = set()  # required columns missing from a table's header (reported once)
        self._ok = True

    # -- findings ------------------------------------------------------------------------------------
    def error(
        self,
        code: str,
        line: int | None,
        message: str,
        *,
        path: str | None = None,
        hint: str | None = None,
        severity: str = "error",
    ) -> None:
        if severity == "error":
            self._ok = False
        self.sink(code, severity, line, message, path, hint)

    def warn(
        self, code: str, line: int | None, message: str, *, path: str | None = None, hint: str | None = None
    ) -> None:
        self.error(code, line, message, path=path, hint=hint, severity="warning")

    # -- columns -------------------------------------------------------------------------------------
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
        for key, candidates in COLUMNS[self.task].items():
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
                    hint="name the columns with --column KEY=NAME (data.columns in the spec)",
                )

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        """Task-specific column choices (optional columns, text-completion's shape, translation layouts)."""

    def required_columns(self, present: set[str]) -> list[str]:
        return []

    def used_columns(self) -> dict[str, str]:
        """The logical columns this file uses -> their names in it (what `--column KEY=NAME` repeats)."""
        return dict(self.columns)

    # -- values --------------------------------------------------------------------------------------
    def _missing(self, obj: Mapping[str, Any], key: str, name: str, line: int) -> None:
        if name not in self.absent:
            what = "is null" if name in obj else "is missing"
            self.error("missing_field", line, f"{name!r} {what}", path=name, hint=self._field_hint(key))
        else:
            self._ok = False

    def text(self, obj: Mapping[str, Any], key: str, line: int, *, allow_empty: bool = False) -> str | None:
        name = self.columns[key]
        value = obj.get(name)
        if value is None:
            self._missing(obj, key, name, line)
            return None
        if not isinstance(value, str):
            self.error("wrong_type", line, f"{name!r} must be a string, got {type_name(value)}", path=name)
            return None
        if not allow_empty and not value.strip():
            self.error("empty_field", line, f"{name!r} is empty", path=name)
            return None
        return value

    def structured(self, obj: Mapping[str, Any], key: str, line: int) -> Any:
        """A list/object value; from CSV/TSV (or as text that looks like JSON) it is decoded here."""
        name = self.columns[key]
        value = obj.get(name)
        if value is None:
            self._missing(obj, key, name, line)
            return None
        if isinstance(value, str) and (self.tabular or value.lstrip()[:1] in ("[", "{")):
            try:
                return decode_json(value)
            except (json.JSONDecodeError, JSONValueError):
                self.error(
                    "wrong_type",
                    line,
                    f"{name!r} must be a JSON list or object, got text that is not JSON",
                    path=name,
                    hint='write lists as JSON, e.g. ["EU", "rejects"]',
                )
                return None
        return value

    def _field_hint(self, key: str) -> str | None:
        if key in self.explicit:
            return None
        return f"or name the column: --column {key}=NAME"

    # -- examples ------------------------------------------------------------------------------------
    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        """Report the problems of one record; the example as the trainer receives it, or None."""
        raise NotImplementedError

    def finish(self) -> None:
        """File-level findings after the last example (label balance, languages)."""

    @property
    def labels(self) -> LabelCounts | None:
        """The label (or tag) counts, for the tasks that have labels."""
        return None


# --------------------------------------------------------------------------------------------------
class ChatChecker(Checker):
    """{"messages": [{"role": system|user|assistant, "content": str, "weight"?: 0|1}, ...]}.

    A conversation needs an assistant message to learn from, and must not start with one: the trainer
    masks each reply by rendering the conversation up to it, and there is nothing before a first reply."""

    task = "chat-completion"

    def required_columns(self, present: set[str]) -> list[str]:
        return ["messages"]

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        key = self.columns["messages"]
        if key not in obj:
            hint = f'each line needs {{"{key}": [{{"role": "user", "content": ...}}, {{"role": "assistant", ...}}]}}'
            if "prompt" in obj or "completion" in obj:
                hint = (
                    "this line looks like text-completion data (prompt/completion): convert it to "
                    f'{{"{key}": [...]}} or use --task text-completion'
                )
            self.error("missing_messages", line, f"no {key!r} key", path=key, hint=hint)
            return None
        extra = [k for k in obj if k != key]
        if extra:
            self.warn(
                "unknown_field",
                line,
                f"unknown top-level key(s) {', '.join(repr(k) for k in extra)}: the trainers ignore them",
                path=extra[0],
                hint=f"keep only {key!r}",
            )
        messages = obj[key]
        if not isinstance(messages, list):
            self.error(
                "messages_not_list", line, f"{key!r} must be a list, got {type_name(messages)}", path=key
            )
            return None
        if not messages:
            self.error("empty_messages", line, f"{key!r} is empty", path=key)
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
                    f"message {i} is {type_name(message)}, not an object",
                    path=where,
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
                    path=f"{where}.{unknown[0]}",
                    hint="allowed keys are role, content and weight; Azure fine-tuning rejects extra keys "
                    '("Example N contains an extra ...")',
                )
            role = message.get("role")
            if "role" not in message:
                self.error("missing_role", line, f"message {i} has no 'role'", path=f"{where}.role")
                roles_known = False
            elif not isinstance(role, str) or role not in _ROLES:
                suggestion = _ROLE_HINTS.get(role.lower()) if isinstance(role, str) else None
                hint = f"did you mean {suggestion!r}?" if suggestion else "use system, user or assistant"
                self.error("unknown_role", line, f"unknown role {role!r}", path=f"{where}.role", hint=hint)
                roles_known = False
            if "content" not in message:
                self.error("missing_content", line, f"message {i} has no 'content'", path=f"{where}.content")
            else:
                content = message["content"]
                if not isinstance(content, str):
                    self.error(
                        "content_not_string",
                        line,
                        f"message {i} content must be a string, got {type_name(content)}",
                        path=f"{where}.content",
                    )
                elif not content.strip():
                    self.error(
                        "empty_content", line, f"message {i} content is empty", path=f"{where}.content"
                    )
            if "weight" in message:
                weight = message["weight"]
                if type(weight) is not int or weight not in (0, 1):
                    self.error(
                        "invalid_weight",
                        line,
                        f"message {i} weight must be 0 or 1, got {weight!r}",
                        path=f"{where}.weight",
                    )
                elif role != "assistant":
                    self.error(
                        "weight_on_non_assistant",
                        line,
                        f"message {i} is from {role!r}: only assistant messages take a weight",
                        path=f"{where}.weight",
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
                path=key,
                hint="add the reply the model should give as a final assistant message",
            )
        elif roles_known and messages[0].get("role") == "assistant":
            self.error(
                "first_message_from_assistant",
                line,
                "the conversation starts with an assistant message: the trainer learns each reply from the "
                "turns before it, and there are none before this one",
                path=f"{key}[0].role",
                hint="add the user (or system) message the reply answers, or drop the leading assistant message",
            )
        elif roles_known and last_role != "assistant":
            self._last_not_assistant(line, last_role, f"{key}[{len(messages) - 1}].role")
        return {"messages": messages} if self._ok else None

    def _last_not_assistant(self, line: int, last_role: Any, where: str) -> None:
        hint = "end the example with the assistant reply, or drop the trailing messages"
        if self.serverless:
            self.error(
                "last_message_not_assistant",
                line,
                f"the last message is from {last_role!r}, not the assistant (an error for serverless: the "
                "hosted fine-tuning service expects every example to end with the reply it learns)",
                path=where,
                hint=hint,
            )
        else:
            self.warn(
                "last_message_not_assistant",
                line,
                f"the last message is from {last_role!r}, not the assistant (a warning: the trainer learns "
                "only assistant replies, so the trailing messages are never trained on and only use sequence "
                "length; serverless fine-tuning rejects such examples)",
                path=where,
                hint=hint,
            )


# --------------------------------------------------------------------------------------------------
class TextCompletionChecker(Checker):
    """{"prompt": str, "completion": str} or {"text": str}: one shape per file, decided by the columns
    given or else by the first example (the trainer builds one dataset with one set of columns)."""

    task = "text-completion"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = "text" if "text" in self.explicit else "pair"
        if "prompt" in self.explicit or "completion" in self.explicit:
            self.mode = "pair"

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        if not {"prompt", "completion", "text"} & set(self.explicit):
            pair = self.columns["prompt"] in present or self.columns["completion"] in present
            self.mode = "pair" if pair else "text"

    def used_columns(self) -> dict[str, str]:
        # The given ones too: they name the other shape's column that mixed_shapes looks for.
        keys = ("prompt", "completion") if self.mode == "pair" else ("text",)
        return {k: v for k, v in self.columns.items() if k in keys or k in self.explicit}

    def required_columns(self, present: set[str]) -> list[str]:
        return ["prompt", "completion"] if self.mode == "pair" else ["text"]

    def _other_shape(self, line: int, has: str, expected: str, path: str) -> None:
        self.error(
            "mixed_shapes",
            line,
            f"this example has {has} but the file's examples have {expected} (decided by the first example "
            "or the columns given): one shape per file",
            path=path,
            hint="write every example the same way, or split the file in two",
        )

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        prompt_name, completion_name, text_name = (self.columns[k] for k in ("prompt", "completion", "text"))
        if self.mode == "pair":
            if prompt_name not in obj and completion_name not in obj and text_name in obj:
                self._other_shape(
                    line, repr(text_name), f"{prompt_name!r} and {completion_name!r}", text_name
                )
                return None
            if text_name in obj and "text" not in self.explicit:
                self.warn(
                    "ambiguous_format",
                    line,
                    f"has both {prompt_name!r}/{completion_name!r} and {text_name!r}; {text_name!r} is ignored",
                    path=text_name,
                )
            prompt = self.text(obj, "prompt", line, allow_empty=True)
            completion = self.text(obj, "completion", line)
            if prompt is not None and not prompt.strip() and completion is not None:
                self.warn("empty_field", line, f"{prompt_name!r} is empty", path=prompt_name)
            if not self._ok or prompt is None or completion is None:
                return None
            return {"prompt": prompt, "completion": completion}
        if text_name not in obj and (prompt_name in obj or completion_name in obj):
            name = prompt_name if prompt_name in obj else completion_name
            self._other_shape(line, f"{prompt_name!r}/{completion_name!r}", repr(text_name), name)
            return None
        if text_name not in obj and text_name not in self.absent:
            self.error(
                "missing_field",
                line,
                f"needs {prompt_name!r} and {completion_name!r}, or {text_name!r}",
                path=text_name,
                hint='e.g. {"prompt": "Q: ...", "completion": "A: ..."}; name other columns with --column',
            )
            return None
        text = self.text(obj, "text", line)
        return {"text": text} if text is not None else None


# --------------------------------------------------------------------------------------------------
class TextClassificationChecker(Checker):
    """A text column (two for sentence pairs) and a label column; at least two classes in a file."""

    task = "text-classification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._labels = LabelCounts("label")
        self.pair = "text_pair" in self.explicit

    @property
    def labels(self) -> LabelCounts:
        return self._labels

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        if not self.pair and self.columns["text_pair"] in present:
            self.pair = True

    def required_columns(self, present: set[str]) -> list[str]:
        return ["text", "text_pair", "label"] if self.pair else ["text", "label"]

    def used_columns(self) -> dict[str, str]:
        return {k: v for k, v in self.columns.items() if k != "text_pair" or self.pair}

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        text = self.text(obj, "text", line)
        pair = self.text(obj, "text_pair", line) if self.pair else None
        name = self.columns["label"]
        value = obj.get(name)
        label: tuple[str, str] | None = None
        if value is None or (isinstance(value, str) and not value.strip()):
            if name not in self.absent:
                what = "is missing" if name not in obj else ("is null" if value is None else "is empty")
                self.error(
                    "missing_label", line, f"{name!r} {what}", path=name, hint=self._field_hint("label")
                )
            else:
                self._ok = False
        else:
            label = label_key(value)
            if label is None:
                self.error(
                    "invalid_label",
                    line,
                    f"{name!r} must be a class name or an integer class id, got {value!r}",
                    path=name,
                )
        if not self._ok or text is None or label is None:
            return None
        self._labels.add(label, line)
        return {"text": text, "text_pair": pair, "label": label[0]}

    def finish(self) -> None:
        labels = self._labels
        if not labels.counts:
            return
        name = self.columns["label"]
        if len(labels.types) > 1:
            self.warn(
                "mixed_label_types",
                None,
                f'labels mix {" and ".join(sorted(labels.types))} values: 1, 1.0 and "1" train as one class',
                path=name,
            )
        if labels.distinct < 2:
            only = next(iter(labels.counts))
            self.error(
                "too_few_labels",
                None,
                f"every example has the label {only!r}: a classifier needs at least two classes",
                path=name,
                hint="add examples of the other classes",
            )
            return
        for label, count in labels.counts.items():
            if count == 1:
                self.warn(
                    "rare_label",
                    labels.first_line[label],
                    f"label {label!r} is used by this example only: the model can hardly learn it",
                    path=name,
                    hint="add examples of this class, merge it into another, or check it for a typo",
                )


# --------------------------------------------------------------------------------------------------
class TokenClassificationChecker(Checker):
    """{"tokens": [str, ...], "ner_tags": [str | int, ...]} of equal length; at least two tags in a file."""

    task = "token-classification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tags = LabelCounts("tag")

    @property
    def labels(self) -> LabelCounts:
        return self.tags

    def required_columns(self, present: set[str]) -> list[str]:
        return ["tokens", "tags"]

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        tokens = self.structured(obj, "tokens", line)
        tags = self.structured(obj, "tags", line)
        tokens_name, tags_name = self.columns["tokens"], self.columns["tags"]
        if tokens is not None:
            if not isinstance(tokens, list):
                self.error(
                    "wrong_type",
                    line,
                    f"{tokens_name!r} must be a list, got {type_name(tokens)}",
                    path=tokens_name,
                )
            elif not tokens:
                self.error("empty_field", line, f"{tokens_name!r} is empty", path=tokens_name)
            else:
                bad = next((i for i, t in enumerate(tokens) if not isinstance(t, str)), None)
                if bad is not None:
                    self.error(
                        "wrong_type",
                        line,
                        f"token {bad} must be a string, got {type_name(tokens[bad])}",
                        path=f"{tokens_name}[{bad}]",
                    )
        keys: list[tuple[str, str] | None] = []
        if tags is not None:
            if not isinstance(tags, list):
                self.error(
                    "wrong_type", line, f"{tags_name!r} must be a list, got {type_name(tags)}", path=tags_name
                )
            else:
                keys = [None if isinstance(t, bool) else label_key(t) for t in tags]
                bad = next((i for i, k in enumerate(keys) if k is None), None)
                if bad is not None:
                    self.error(
                        "invalid_tag",
                        line,
                        f"tag {bad} must be a tag name or an integer id, got {tags[bad]!r}",
                        path=f"{tags_name}[{bad}]",
                    )
        if not self._ok or not isinstance(tokens, list) or not isinstance(tags, list):
            return None
        if len(tokens) != len(tags):
            self.error(
                "length_mismatch",
                line,
                f"{len(tokens)} tokens but {len(tags)} tags: each token needs exactly one tag",
                path=tags_name,
            )
            return None
        names: list[str] = []
        for key in keys:
            assert key is not None  # every tag was checked above
            self.tags.add(key, line)
            names.append(key[0])
        return {"tokens": tokens, "tags": names}

    def finish(self) -> None:
        tags = self.tags
        if not tags.counts:
            return
        if len(tags.types) > 1:
            self.warn(
                "mixed_label_types",
                None,
                f'tags mix {" and ".join(sorted(tags.types))} values: 1 and "1" train as one tag',
                path=self.columns["tags"],
            )
        if tags.distinct < 2:
            only = next(iter(tags.counts))
            self.error(
                "too_few_labels",
                None,
                f"every token has the tag {only!r}: a tagger needs at least two tags",
                path=self.columns["tags"],
                hint="add examples that carry the other tags",
            )


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
                        "missing_field", line, f"{name!r} has no {sub_key!r}", path=f"{name}.{sub_key}"
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
                    path=name,
                )
                return None
            if len(texts) != len(starts):
                self.error(
                    "length_mismatch",
                    line,
                    f"{len(texts)} answer texts but {len(starts)} answer_start values",
                    path=name,
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
                        path=f"{name}[{i}]",
                    )
                    continue
                out.append((answer[text_key], answer[start_key], f"{name}[{i}]"))
            return out if self._ok else None
        self.error(
            "wrong_type",
            line,
            f"{name!r} must be an object {{{text_key!r}: [...], {start_key!r}: [...]}}, got {type_name(answers)}",
            path=name,
        )
        return None

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        context = self.text(obj, "context", line)
        question = self.text(obj, "question", line)
        answers_value = self.structured(obj, "answers", line)
        answers = self._answers(answers_value, line) if answers_value is not None else None
        if answers is None or context is None or question is None:
            self._ok = False
            return None
        found: list[dict[str, Any]] = []
        for text, start, where in answers:
            if not isinstance(text, str) or not text:
                self.error(
                    "wrong_type", line, f"answer text must be a non-empty string, got {text!r}", path=where
                )
                continue
            if type(start) is not int or start < 0:
                self.error(
                    "invalid_answer_start",
                    line,
                    f"answer_start must be a character offset (an integer ≥ 0), got {start!r}",
                    path=where,
                )
                continue
            if context[start : start + len(text)] != text:
                at = context.find(text)
                hint = (
                    f"the text occurs at answer_start {at}"
                    if at >= 0
                    else "the answer text is not in the context"
                )
                self.error(
                    "answer_mismatch",
                    line,
                    f"context[{start}:{start + len(text)}] is {context[start : start + len(text)]!r}, not the answer {text!r}",
                    path=where,
                    hint=hint,
                )
                continue
            found.append({"text": text, "answer_start": start})
        if not self._ok:
            return None
        return {"context": context, "question": question, "answers": found}


# --------------------------------------------------------------------------------------------------
class SummarizationChecker(Checker):
    """A source document column and a target summary column."""

    task = "summarization"

    def required_columns(self, present: set[str]) -> list[str]:
        return ["source", "target"]

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        source = self.text(obj, "source", line)
        target = self.text(obj, "target", line)
        if source is None or target is None:
            return None
        return {"source": source, "target": target}


class TranslationChecker(Checker):
    """Source and target text; language codes either name the columns (the registry pipeline's
    source_lang/target_lang convention, e.g. {"en": ..., "ro": ...} or, under a "translation" column,
    {"translation": {"en": ..., "ro": ...}}) or sit next to source/target columns (per file via --column,
    or per row as source_lang/target_lang)."""

    task = "translation"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nested: str | None = self.explicit.get("translation")
        for key in ("source_lang", "target_lang"):
            code = self.explicit.get(key)
            if code is not None and not _LANG_CODE.match(code):
                self.error(
                    "invalid_language_code",
                    None,
                    f"{key} {code!r} is not a language code",
                    path=key,
                    hint=_LANG_HINT,
                )

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        if "source" in self.explicit or "target" in self.explicit:
            return
        src, tgt = self.explicit.get("source_lang"), self.explicit.get("target_lang")
        if self.nested is None and "source" in present and "target" in present:
            return
        if src and tgt and _LANG_CODE.match(src) and _LANG_CODE.match(tgt):
            if self.nested is None and src not in present and "translation" in present:
                self.nested = "translation"
            self.columns["source"], self.columns["target"] = src, tgt
            if self.nested is not None:
                self.columns["translation"] = self.nested
            return
        holder = self.nested or "translation"
        nested = first.get(holder) if first is not None else None
        codes: list[str] = []
        if isinstance(nested, dict) and len(nested) == 2:
            codes = [str(k) for k in nested]
            self.nested = holder
        elif (
            self.nested is None and len(present) == 2 and all(_LANG_CODE.match(k) for k in present) and first
        ):
            codes = list(first)
        if len(codes) == 2 and all(_LANG_CODE.match(c) for c in codes):
            self.columns["source"], self.columns["target"] = codes
            self.columns.setdefault("source_lang", codes[0])
            self.columns.setdefault("target_lang", codes[1])
        if self.nested is not None:
            self.columns["translation"] = self.nested

    def required_columns(self, present: set[str]) -> list[str]:
        return ["translation"] if self.nested else ["source", "target"]

    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        holder: Mapping[str, Any] = obj
        if self.nested:
            inner = obj.get(self.nested)
            if not isinstance(inner, dict):
                self.error(
                    "missing_field",
                    line,
                    f"{self.nested!r} must be an object of language code -> text, got {type_name(inner)}",
                    path=self.nested,
                )
                return None
            holder = inner
        source = self.text(holder, "source", line)
        target = self.text(holder, "target", line)
        langs: dict[str, str | None] = {}
        for key in ("source_lang", "target_lang"):
            langs[key] = self.columns.get(key)
            if key in obj:  # a row's own code wins over the file's
                code = obj[key]
                if not isinstance(code, str) or not _LANG_CODE.match(code):
                    self.error(
                        "invalid_language_code",
                        line,
                        f"{key} {code!r} is not a language code",
                        path=key,
                        hint=_LANG_HINT,
                    )
                else:
                    langs[key] = code
        if source is None or target is None or not self._ok:
            return None
        return {"source": source, "target": target, **langs}

    def finish(self) -> None:
        src, tgt = self.columns.get("source_lang"), self.columns.get("target_lang")
        if src and tgt and src == tgt:
            self.warn(
                "same_language", None, f"source and target language are both {src!r}", path="target_lang"
            )


# --------------------------------------------------------------------------------------------------
_PAIR_MESSAGE_KEYS = frozenset({"role", "content"})


class PreferenceChecker(Checker):
    """Preference pairs for dpo and orpo: a prompt and two answers to it, the chosen and the rejected one.

    One shape per file, decided by the first example: text (``{"prompt": str, "chosen": str, "rejected": str}``)
    or messages (``{"prompt": [messages], "chosen": [assistant messages], "rejected": [...]}``). With messages
    the prompt may be left out when chosen and rejected are whole conversations: everything before their last
    (assistant) message is the prompt and must be the same in both. Azure AI Foundry's layout (``input``:
    {"messages": [...]}, ``preferred_output``, ``non_preferred_output``) is read too. The trainer receives
    ``{"prompt", "chosen", "rejected"}`` with the prompt always explicit, so it never guesses where it ends."""

    task = "preference"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shape: str | None = None  # "text" | "messages", from the first example
        self.explicit_prompt = True

    def _after_bind(self, present: set[str], first: Mapping[str, Any] | None) -> None:
        self.explicit_prompt = "prompt" in self.explicit or self.columns["prompt"] in present
        if first is not None:
            self.shape = self._shape_of(first.get(self.columns["chosen"]))

    def _shape_of(self, value: Any) -> str | None:
        if isinstance(value, list) or (
            isinstance(value, str) and self.tabular and value.lstrip().startswith("[")
        ):
            return "messages"
        if isinstance(value, str):
            return "text"
        return None

    def required_columns(self, present: set[str]) -> list[str]:
        keys = ["chosen", "rejected"]
        return ["prompt", *keys] if self.explicit_prompt else keys

    def used_columns(self) -> dict[str, str]:
        return {k: v for k, v in self.columns.items() if k != "prompt" or self.explicit_prompt}

    # -- values --------------------------------------------------------------------------------------
    def _value(self, obj: Mapping[str, Any], key: str, line: int) -> Any:
        """The column's value: a string, or a list (decoded from JSON in a table cell) when the file has messages."""
        name = self.columns[key]
        if obj.get(name) is None:
            self._missing(obj, key, name, line)
            return None
        if self.shape == "messages":
            return self.structured(obj, key, line)
        return obj[name]

    def _messages(self, value: Any, where: str, line: int, *, answer: bool) -> list[dict[str, str]] | None:
        """A checked list of {"role", "content"} messages (answers: assistant messages only), or None."""
        if not isinstance(value, list):
            self.error(
                "wrong_type",
                line,
                f"{where!r} must be a list of messages, got {type_name(value)}",
                path=where,
            )
            return None
        if not value:
            self.error("empty_field", line, f"{where!r} is empty", path=where)
            return None
        out: list[dict[str, str]] = []
        ok = True
        for i, message in enumerate(value):
            at = f"{where}[{i}]"
            if not isinstance(message, dict):
                self.error(
                    "message_not_object", line, f"message {i} is {type_name(message)}, not an object", path=at
                )
                ok = False
                continue
            unknown = [k for k in message if k not in _PAIR_MESSAGE_KEYS]
            if unknown:
                self.error(
                    "unknown_message_key",
                    line,
                    f"message {i} has unknown key(s) {', '.join(repr(k) for k in unknown)}",
                    path=f"{at}.{unknown[0]}",
                    hint="preference messages take role and content only",
                )
                ok = False
            role, content = message.get("role"), message.get("content")
            if "role" not in message:
                self.error("missing_role", line, f"message {i} has no 'role'", path=f"{at}.role")
                ok = False
            elif not isinstance(role, str) or role not in _ROLES:
                suggestion = _ROLE_HINTS.get(role.lower()) if isinstance(role, str) else None
                hint = f"did you mean {suggestion!r}?" if suggestion else "use system, user or assistant"
                self.error("unknown_role", line, f"unknown role {role!r}", path=f"{at}.role", hint=hint)
                ok = False
            elif answer and role != "assistant":
                self.error(
                    "answer_not_assistant",
                    line,
                    f"message {i} of an answer is from {role!r}: chosen and rejected hold the assistant's reply",
                    path=f"{at}.role",
                    hint="move the other turns into the prompt",
                )
                ok = False
            if "content" not in message:
                self.error("missing_content", line, f"message {i} has no 'content'", path=f"{at}.content")
                ok = False
            elif not isinstance(content, str):
                self.error(
                    "content_not_string",
                    line,
                    f"message {i} content must be a string, got {type_name(content)}",
                    path=f"{at}.content",
                )
                ok = False
            elif not content.strip():
                self.error("empty_content", line, f"message {i} content is empty", path=f"{at}.content")
                ok = False
            if ok:
                out.append({"role": str(role), "content": str(content)})
        return out if ok else None

    def _prompt_messages(self, value: Any, line: int) -> list[dict[str, str]] | None:
        name = self.columns["prompt"]
        where = name
        if isinstance(value, dict):  # Foundry's {"input": {"messages": [...], "tools": [...], ...}}
            if "messages" not in value:
                self.error("missing_field", line, f"{name!r} has no 'messages'", path=f"{name}.messages")
                return None
            value, where = value["messages"], f"{name}.messages"
        messages = self._messages(value, where, line, answer=False)
        if messages is None:
            return None
        if messages[-1]["role"] == "assistant":
            self.error(
                "prompt_ends_with_assistant",
                line,
                "the prompt ends with an assistant message: the answers are the assistant's next reply",
                path=f"{where}[{len(messages) - 1}].role",
                hint="end the prompt with the user's message, or move the assistant message into both answers",
            )
            return None
        return messages

    def _split_conversations(
        self, chosen: list[dict[str, str]], rejected: list[dict[str, str]], line: int
    ) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]] | None:
        """Whole conversations without a prompt column: (prompt, chosen reply, rejected reply)."""
        names = {"chosen": self.columns["chosen"], "rejected": self.columns["rejected"]}
        for key, conversation in (("chosen", chosen), ("rejected", rejected)):
            last = len(conversation) - 1
            if conversation[last]["role"] != "assistant":
                self.error(
                    "last_message_not_assistant",
                    line,
                    f"the {key} conversation ends with a {conversation[last]['role']!r} message, not the "
                    "assistant's answer",
                    path=f"{names[key]}[{last}].role",
                    hint="end both conversations with the assistant reply being compared",
                )
                return None
            if last == 0:
                self.error(
                    "missing_prompt",
                    line,
                    f"the {key} conversation is only the answer: there is no prompt before it",
                    path=names[key],
                    hint="add the user message both answers reply to, or give it as a prompt column",
                )
                return None
        prompt = chosen[:-1]
        other = rejected[:-1]
        differs = next((i for i, (a, b) in enumerate(zip(prompt, other, strict=False)) if a != b), None)
        if differs is None and len(prompt) != len(other):
            differs = min(len(prompt), len(other))  # one prompt is the other's start, with more turns
        if differs is not None:
            self.error(
                "prompt_mismatch",
                line,
                f"chosen and rejected differ before their last message (at message {differs}): both must answer "
                "the same prompt",
                path=f"{names['rejected']}[{differs}]",
                hint="keep the turns before the compared reply identical, or give the prompt as its own column",
            )
            return None
        return prompt, chosen[-1:], rejected[-1:]

    # -- examples ------------------------------------------------------------------------------------
    def check(self, obj: dict[str, Any], line: int) -> dict[str, Any] | None:
        self._ok = True
        chosen_name, rejected_name = self.columns["chosen"], self.columns["rejected"]
        if self.shape is None:
            self.shape = self._shape_of(obj.get(chosen_name)) or self._shape_of(obj.get(rejected_name))
        prompt_value = self._value(obj, "prompt", line) if self.explicit_prompt else None
        chosen_value = self._value(obj, "chosen", line)
        rejected_value = self._value(obj, "rejected", line)
        if not self._ok:
            return None
        shapes = {self._shape_of(chosen_value), self._shape_of(rejected_value)}
        if shapes != {self.shape}:
            has = " and ".join(sorted(type_name(v) for v in (chosen_value, rejected_value)))
            self.error(
                "mixed_shapes",
                line,
                f"chosen and rejected are {has}, but this file's answers are "
                f"{'text' if self.shape == 'text' else 'message lists'} (decided by the first example)",
                path=chosen_name if self._shape_of(chosen_value) != self.shape else rejected_name,
                hint="write every answer of the file the same way: text, or a list of assistant messages",
            )
            return None
        if self.shape == "text":
            return self._check_text(prompt_value, chosen_value, rejected_value, obj, line)
        chosen = self._messages(chosen_value, chosen_name, line, answer=self.explicit_prompt)
        rejected = self._messages(rejected_value, rejected_name, line, answer=self.explicit_prompt)
        prompt = self._prompt_messages(prompt_value, line) if self.explicit_prompt else None
        if chosen is None or rejected is None or (self.explicit_prompt and prompt is None):
            self._ok = False
            return None
        if prompt is None:
            split = self._split_conversations(chosen, rejected, line)
            if split is None:
                return None
            prompt, chosen, rejected = split
        if chosen == rejected:
            self._identical(line)
            return None
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}

    def _check_text(
        self, prompt: Any, chosen: Any, rejected: Any, obj: Mapping[str, Any], line: int
    ) -> dict[str, Any] | None:
        if not self.explicit_prompt:
            name = self.columns["prompt"]
            self.error(
                "missing_field",
                line,
                f"text answers need a {name!r}: only whole conversations (message lists) can leave it out",
                path=name,
                hint=self._field_hint("prompt") or f"add {name!r}",
            )
            return None
        for key, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            name = self.columns[key]
            if not isinstance(value, str):
                self.error(
                    "wrong_type", line, f"{name!r} must be a string, got {type_name(value)}", path=name
                )
            elif key != "prompt" and not value.strip():
                self.error("empty_field", line, f"{name!r} is empty", path=name)
        if not self._ok:
            return None
        if not prompt.strip():
            self.warn(
                "empty_field", line, f"{self.columns['prompt']!r} is empty", path=self.columns["prompt"]
            )
        if chosen.strip() == rejected.strip():
            self._identical(line)
            return None
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}

    def _identical(self, line: int) -> None:
        self.error(
            "identical_answers",
            line,
            "chosen and rejected are the same answer: the pair teaches no preference",
            path=self.columns["rejected"],
            hint="fix or drop the pair",
        )


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
        PreferenceChecker,
    )
}


def make_checker(
    task: str, sink: Sink, columns: Mapping[str, str] | None = None, *, serverless: bool = False
) -> Checker:
    """The Checker of `task` (a normalized task name), reporting to `sink`."""
    return _CHECKERS[task](sink, columns, serverless=serverless)
