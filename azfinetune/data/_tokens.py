"""Token counting: the model's tokenizer when it is available locally, else ``approx:chars/4``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import add, floordiv, mul
from pathlib import Path
from typing import Any, Literal, Protocol

from azfinetune import catalog
from azfinetune.data._report import TokenStats

__all__ = [
    "APPROX_CHARS_PER_TOKEN",
    "APPROX_METHOD",
    "APPROX_PER_EXAMPLE",
    "APPROX_PER_MESSAGE",
    "ApproxCounter",
    "TextExample",
    "TokenCounter",
    "TokenHistogram",
    "TokenizerCounter",
    "load_tokenizer",
]

APPROX_CHARS_PER_TOKEN = 4
APPROX_PER_MESSAGE = 4
APPROX_PER_EXAMPLE = 2
APPROX_METHOD = "approx:chars/4"

TextMode = Literal["concat", "pair", "separate"]


class TextExample:
    """The text of a non-chat example, and how the trainer tokenizes it.

    concat: one sequence, the segments joined (prompt + completion); pair: ``tokenizer(a, b)``
    (sentence pairs, question + context); separate: encoder input and target counted apart and summed.
    """

    __slots__ = ("mode", "segments")

    def __init__(self, segments: tuple[str, ...], mode: TextMode = "concat") -> None:
        self.segments = segments
        self.mode: TextMode = mode

    @property
    def chars(self) -> int:
        return sum(map(len, self.segments))


class TokenCounter(Protocol):
    """Counts tokens per example."""

    method: str

    def chat(self, conversations: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]: ...

    def texts(self, examples: Sequence[TextExample]) -> list[int]: ...


class ApproxCounter:
    """``approx:chars/4``: about 4 characters per token, the usual rule of thumb for English text with BPE
    vocabularies of 32k-200k tokens (code and non-Latin scripts run denser: there it is a lower bound).

    * chat-completion: ``ceil(characters of all contents / 4) + 4 per message`` — the 4 covers the role
      marker, separators and end-of-turn token that chat templates put around every message;
    * every other task: ``ceil(characters of the example's text fields / 4) + 2`` — the 2 covers BOS/EOS.
    """

    method = APPROX_METHOD

    def chat(self, conversations: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
        chars = [sum(len(str(m.get("content") or "")) for m in conv) for conv in conversations]
        return self.chat_lengths(chars, [len(conv) for conv in conversations])

    def chat_lengths(self, chars: list[int], message_counts: list[int]) -> list[int]:
        """Per example: ceil(content characters / 4) + 4 per message."""
        # map() with operator functions keeps the per-example work in C (this runs on the fast path).
        per = APPROX_CHARS_PER_TOKEN
        content = map(floordiv, map(add, chars, repeat(per - 1)), repeat(per))
        return list(map(add, content, map(mul, message_counts, repeat(APPROX_PER_MESSAGE))))

    def texts(self, examples: Sequence[TextExample]) -> list[int]:
        per = APPROX_CHARS_PER_TOKEN
        return [(ex.chars + per - 1) // per + APPROX_PER_EXAMPLE for ex in examples]


def _ids_length(encoded: Any) -> int:
    """Number of token ids in what a tokenizer call returned (list, BatchEncoding or dict)."""
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    if hasattr(encoded, "tolist"):
        encoded = encoded.tolist()
    if encoded and isinstance(encoded[0], list):  # a batch of one
        encoded = encoded[0]
    return len(encoded)


def _batch_ids(encoded: Any) -> list[Any]:
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    if hasattr(encoded, "tolist"):
        encoded = encoded.tolist()
    return list(encoded)


class TokenizerCounter:
    """``tokenizer:<name>``: counts with a transformers tokenizer (anything with __call__ and
    apply_chat_template). A chat example is the number of input ids of
    ``tokenizer.apply_chat_template(messages, tokenize=True)`` — exactly what the trainer feeds the model;
    other tasks are ``tokenizer(text)`` / ``tokenizer(text, text_pair)`` with special tokens."""

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        self.tokenizer = tokenizer
        label = name or str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        suffix = "" if self.has_chat_template else "(no chat template: contents +4/message)"
        self.method = f"tokenizer:{label}"
        self._chat_method = f"tokenizer:{label}{suffix}"

    @property
    def chat_method(self) -> str:
        return self._chat_method

    def chat(self, conversations: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
        if not conversations:
            return []
        convs = [[dict(m) for m in conv] for conv in conversations]
        if not self.has_chat_template:
            return [
                _ids_length(self.tokenizer("\n".join(str(m.get("content", "")) for m in conv)))
                + APPROX_PER_MESSAGE * len(conv)
                for conv in convs
            ]
        # transformers 5 returns a BatchEncoding (input_ids + attention_mask); 4.x returned a list of ids.
        encoded = self.tokenizer.apply_chat_template(convs, tokenize=True)
        ids = _batch_ids(encoded)
        if len(ids) == len(convs) and all(isinstance(x, list) for x in ids):
            return [len(x) for x in ids]
        return [_ids_length(self.tokenizer.apply_chat_template(conv, tokenize=True)) for conv in convs]

    def texts(self, examples: Sequence[TextExample]) -> list[int]:
        out: list[int] = []
        for ex in examples:
            if ex.mode == "pair" and len(ex.segments) == 2:
                out.append(_ids_length(self.tokenizer(ex.segments[0], ex.segments[1])))
            elif ex.mode == "separate":
                out.append(sum(_ids_length(self.tokenizer(s)) for s in ex.segments))
            else:
                out.append(_ids_length(self.tokenizer("".join(ex.segments))))
        return out


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
#: Files a tokenizer's vocabulary lives in (one of them must be there for any tokenizer to load).
_VOCABULARY_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "merges.txt",
    "tokenizer.tiktoken",
)


def _find_tokenizer_folder(folder: Path) -> Path | None:
    """The folder itself, or the nearest sub-folder (MLflow models: data/model, data/tokenizer) with one."""
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return folder
    for depth in ("*", "*/*", "*/*/*"):
        for candidate in sorted(folder.glob(depth)):
            if candidate.is_dir() and any((candidate / name).is_file() for name in _TOKENIZER_FILES):
                return candidate
    return None


class FileTokenizer:
    """A fast tokenizer read from its files with the `tokenizers` library and jinja2, without importing
    transformers (seconds of import on a small machine): tokenizer.json, tokenizer_config.json's special tokens
    and its chat template (or chat_template.jinja). It renders the chat template and encodes the text as
    transformers' apply_chat_template(tokenize=True) does, and `tokenizer(text)` adds special tokens through
    tokenizer.json's post-processor as transformers' fast tokenizer does (tests/data/test_tokens.py checks both
    against transformers). `load` returns None for what it cannot mirror (no tokenizer.json, a template that
    uses transformers-only tags, a Python tokenizer class), and the caller falls back to transformers."""

    def __init__(self, folder: Path, tokenizer: Any, template: Any, specials: dict[str, str]) -> None:
        self.name_or_path = str(folder)
        self._tokenizer = tokenizer
        self._template = template
        self._specials = specials
        self.chat_template = template is not None

    @classmethod
    def load(cls, folder: Path) -> FileTokenizer | None:
        import json

        file, config_file = folder / "tokenizer.json", folder / "tokenizer_config.json"
        if not file.is_file():
            return None
        try:
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(file))
        except Exception:  # unreadable or unknown format: transformers decides
            return None
        if not isinstance(config, dict) or config.get("auto_map"):  # custom (remote-code) tokenizer classes
            return None
        template_text = config.get("chat_template")
        jinja_file = folder / "chat_template.jinja"
        if jinja_file.is_file():
            template_text = jinja_file.read_text(encoding="utf-8")
        if isinstance(template_text, list):  # named templates: transformers uses "default"
            named = {t.get("name"): t.get("template") for t in template_text if isinstance(t, dict)}
            template_text = named.get("default")
        if template_text is not None and (
            not isinstance(template_text, str) or "{% generation" in template_text
        ):
            return None
        specials: dict[str, str] = {}
        for key in (
            "bos_token",
            "eos_token",
            "unk_token",
            "pad_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ):
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                specials[key] = value
        template = None
        if template_text:
            try:
                template = _compile_chat_template(template_text)
            except Exception:  # a template jinja2 cannot compile: transformers would say why
                return None
        return cls(folder, tokenizer, template, specials)

    def __call__(self, text: str, text_pair: str | None = None) -> dict[str, list[int]]:
        encoding = self._tokenizer.encode(text, text_pair, add_special_tokens=True)
        return {"input_ids": list(encoding.ids)}

    def apply_chat_template(self, conversations: Any, tokenize: bool = True) -> Any:
        batch = bool(conversations) and isinstance(conversations[0], list | tuple)
        convs = conversations if batch else [conversations]
        rendered = [
            self._template.render(
                messages=conv, add_generation_prompt=False, tools=None, documents=None, **self._specials
            )
            for conv in convs
        ]
        ids = [list(e.ids) for e in self._tokenizer.encode_batch(rendered, add_special_tokens=False)]
        return ids if batch else ids[0]


def _compile_chat_template(text: str) -> Any:
    """The chat template as transformers compiles it: a sandboxed jinja2 environment with trim_blocks and
    lstrip_blocks, loop controls, raise_exception and strftime_now."""
    import datetime as dt

    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def strftime_now(format: str) -> str:
        return dt.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(text)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    import json

    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def load_tokenizer(model: str) -> tuple[Any | None, str]:
    """(tokenizer, why-not). Loads only from disk: a folder, or a hub id already in the local cache. A local
    folder with a fast tokenizer is read by FileTokenizer (no transformers import), else by transformers."""
    folder = Path(model).expanduser()
    source: str | None = None
    if folder.is_dir():
        found = _find_tokenizer_folder(folder)
        if found is None:
            return None, f"no tokenizer files under {folder}"
        source = str(found)
        light = FileTokenizer.load(found)
        if light is not None:
            return light, ""
        if not any((found / name).is_file() for name in _VOCABULARY_FILES):
            # tokenizer_config.json alone: transformers could not load it either (and importing it costs seconds).
            return (
                None,
                f"no tokenizer vocabulary under {found} (tokenizer.json, tokenizer.model, vocab files)",
            )
    else:
        source = _hub_id(model)
        if source is None:
            return None, f"{model!r} is neither a local folder nor a known model"
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None, "transformers is not installed (pip install 'azfinetune[train]')"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as error:  # transformers raises OSError/ValueError/EnvironmentError variants
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"could not load the tokenizer from {source} ({type(error).__name__}: {first_line})"
    return tokenizer, ""


def _hub_id(model: str) -> str | None:
    ref = model.removeprefix("hf:")
    try:
        info: object | None = catalog.find_model(model)
    except Exception:  # no catalog yet, or its own errors: treat `model` as a hub id
        info = None
    hf_id = getattr(info, "hf_id", None)
    if hf_id:
        return str(hf_id)
    if "/" in ref and not ref.startswith(("azureml:", "/", ".")):
        return ref
    return None


class TokenHistogram:
    """Exact count distribution in bounded memory: one counter entry per distinct length."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def update(self, lengths: list[int]) -> None:
        self.counts.update(lengths)

    def stats(self, method: str, *, max_seq_length: int | None, epochs: float) -> TokenStats:
        out = TokenStats(method=method, max_seq_length=max_seq_length, epochs=epochs)
        if not self.counts:
            out.over_max_seq_length = 0 if max_seq_length else None
            return out
        items = sorted(self.counts.items())
        n = sum(c for _, c in items)
        total = sum(v * c for v, c in items)
        out.counted = n
        out.total = total
        out.min = items[0][0]
        out.max = items[-1][0]
        out.mean = round(total / n, 2)
        out.median = _nearest_rank(items, n, 50)
        out.p95 = _nearest_rank(items, n, 95)
        if max_seq_length:
            out.over_max_seq_length = sum(c for v, c in items if v > max_seq_length)
            out.tokens_per_epoch = sum(min(v, max_seq_length) * c for v, c in items)
        else:
            out.tokens_per_epoch = total
        out.training_tokens_estimate = round(out.tokens_per_epoch * epochs)
        return out


def _nearest_rank(items: list[tuple[int, int]], n: int, percent: int) -> int:
    rank = max(1, -(-percent * n // 100))  # ceil(percent/100 * n)
    seen = 0
    for value, count in items:
        seen += count
        if seen >= rank:
            return value
    return items[-1][0]
