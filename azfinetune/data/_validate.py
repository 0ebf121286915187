"""validate_data: read a data file once with the contract's reader, adding bulk paths, duplicates and tokens."""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson
from azft_contract import (
    MIN_EXAMPLES,
    PREFERENCE,
    SERVERLESS_MAX_BYTES,
    ContractError,
    FileReader,
    LabelCounts,
)
from azft_contract import detect_columns as _contract_detect_columns
from azft_contract import normalize_task as _contract_normalize_task
from azft_contract.lines import BATCH_SIZE, CHUNK_SIZE, LineBatch

from azfinetune.data._fastchat import FastChat, FastChatPath
from azfinetune.data._report import DataReport, DataStats, LabelSummary
from azfinetune.data._tokens import (
    ApproxCounter,
    TextExample,
    TokenCounter,
    TokenHistogram,
    TokenizerCounter,
    load_tokenizer,
)
from azfinetune.errors import DataError, Issue, Severity

__all__ = [
    "MIN_EXAMPLES",
    "SERVERLESS_MAX_BYTES",
    "compare_formats",
    "detect_columns",
    "normalize_task",
    "validate_data",
    "validate_pair",
]

_FAST_BATCH = 1024  # lines per bulk check: one bad line sends only its own 1024 lines down the slow path
_PENDING = 256  # examples per tokenizer call
_MAX_SHAPES = 1000
# orjson decodes a line to exactly the value the contract's json decoding gives, or fails (and the contract
# explains the line), except for integers beyond 64 bits (orjson gives a float) and nesting deep enough
# for json's recursion limit: lines with 19-digit runs or 200 brackets go to the contract directly.
_LONG_DIGITS = re.compile(rb"\d{19}")
_NOT_DIGITS = bytes(sorted(set(range(256)) - set(b"0123456789")))
_MAX_BRACKETS = 200


def normalize_task(task: object) -> str:
    """'chat_completion', 'ChatCompletion', an enum member ... -> 'chat-completion'; DataError if unknown."""
    try:
        return str(_contract_normalize_task(task))
    except ContractError as error:
        raise DataError(error.message, hint=error.hint) from error


def detect_columns(
    path: str | Path, *, task: str, columns: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The column names the job will read `path` with (azft_contract.detect_columns), as DataError when the
    file cannot be read: pass them to the job as `--column KEY=NAME` and to validate_data of every file."""
    try:
        return dict(_contract_detect_columns(path, normalize_task(task), columns))
    except ContractError as error:
        raise DataError(error.message, hint=error.hint) from error


def validate_data(
    path: str | Path,
    *,
    task: str,
    model: str | None = None,
    max_seq_length: int | None = None,
    columns: Mapping[str, str] | None = None,
    serverless: bool = False,
    epochs: float | None = 1.0,
    max_errors_per_kind: int = 20,
    tokenizer: Any | None = None,
    chunk_size: int = CHUNK_SIZE,
    batch_size: int = BATCH_SIZE,
) -> DataReport:
    """Check a training or validation file for `task`, streaming it once in constant memory.

        report = validate_data("train.jsonl", task="chat-completion", max_seq_length=4096)
        report.ok, report.errors, report.warnings, report.stats.tokens.training_tokens_estimate

    The verdict, the lines and the example counts are those of the job's own reader (azft_contract,
    which every job step reads data with): this adds duplicates, token counts and bulk checks that give
    the same answers faster. Issues are `azfinetune.errors.Issue`s with stable snake_case codes
    (``invalid_json``, ``unknown_role``, ``answer_mismatch`` ...), `file` = this file and 1-based lines as
    editors show them; at most `max_errors_per_kind` are kept per code, all are counted. Tokens are
    counted with `tokenizer`, else with the tokenizer of `model` when it is on disk (a folder, or a hub id
    in the local cache), else approximated (see ApproxCounter). JSON Lines or a JSON array for every
    task; CSV/TSV/Parquet (Parquet needs pyarrow) for all but chat-completion. `chunk_size` (bytes per
    read) and `batch_size` (bytes of lines checked together) tune the streaming; results never depend on
    them.

    Raises DataError only when the file cannot be checked at all (missing, unknown task, a format the
    task does not take, Parquet without pyarrow); everything found inside the file is in the report.
    """
    task = normalize_task(task)
    file = Path(path)
    if max_seq_length is not None and max_seq_length <= 0:
        raise DataError(f"max_seq_length must be positive, got {max_seq_length}")
    report = DataReport(path=str(file), task=task, max_errors_per_kind=max_errors_per_kind)
    counter, method_note = _token_counter(model, tokenizer)
    try:
        reader = _Validator(
            report,
            task,
            columns,
            counter=counter,
            max_seq_length=max_seq_length,
            serverless=serverless,
            epochs=1.0 if epochs is None else float(epochs),
            chunk_size=chunk_size,
            batch_size=batch_size,
        )
        if method_note:
            reader.issue(
                "tokenizer_unavailable",
                None,
                f"token counts are approximate ({ApproxCounter.method}): {method_note}",
                severity="warning",
                hint="pass a local model folder with --model to count exactly",
            )
        reader.read(file)
    except ContractError as error:
        raise DataError(error.message, hint=error.hint) from error
    report.sort()
    return report


def _token_counter(model: str | None, tokenizer: Any | None) -> tuple[TokenCounter, str]:
    if tokenizer is not None:
        return TokenizerCounter(tokenizer), ""
    if model:
        loaded, why = load_tokenizer(model)
        if loaded is not None:
            return TokenizerCounter(loaded, name=model), ""
        return ApproxCounter(), why
    return ApproxCounter(), ""


class _Dedup:
    """Duplicate records by a 64-bit hash of their bytes: 16 bytes per record, resolved at the end."""

    def __init__(self) -> None:
        self.hashes = array("q")
        self.lines = array("q")

    def add_run(self, hashes: Iterable[int], first_line: int, count: int) -> None:
        self.hashes.extend(hashes)
        self.lines.extend(range(first_line, first_line + count))

    def add(self, key: int, line: int) -> None:
        self.hashes.append(key)
        self.lines.append(line)

    def duplicates(self, keep: int) -> tuple[int, list[tuple[int, int]]]:
        """(how many records repeat an earlier one, the first `keep` as (line, line it repeats))."""
        if len(self.hashes) < 2:
            return 0, []
        if len(self.hashes) < 100_000:
            # numpy's import (~0.1 s) costs more than sorting a small file's hashes in Python.
            return self._duplicates_python(keep)
        try:
            import numpy as np
        except ImportError:
            return self._duplicates_python(keep)
        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        is_new = np.empty(len(ordered), dtype=bool)
        is_new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=is_new[1:])
        repeats = ~is_new
        count = int(repeats.sum())
        if not count:
            return 0, []
        group_start = np.maximum.accumulate(np.where(is_new, np.arange(len(ordered)), 0))
        lines = np.frombuffer(self.lines, dtype=np.int64)
        dup_lines = lines[order[repeats]]
        first_lines = lines[order[group_start[repeats]]]
        pick = np.argsort(dup_lines, kind="stable")[:keep]
        return count, [(int(dup_lines[i]), int(first_lines[i])) for i in pick]

    def _duplicates_python(self, keep: int) -> tuple[int, list[tuple[int, int]]]:
        first: dict[int, int] = {}
        count = 0
        found: list[tuple[int, int]] = []
        for key, line in zip(self.hashes, self.lines, strict=True):
            seen = first.setdefault(key, line)
            if seen != line:
                count += 1
                if len(found) < keep:
                    found.append((line, seen))
        return count, found


def _completion_input(example: Mapping[str, Any]) -> TextExample:
    if "prompt" in example:
        return TextExample((example["prompt"], example["completion"]))
    return TextExample((example["text"],))


def _classification_input(example: Mapping[str, Any]) -> TextExample:
    pair = example["text_pair"]
    return (
        TextExample((example["text"], pair), "pair") if pair is not None else TextExample((example["text"],))
    )


# What the token counter reads of an example the contract returned (as the trainer tokenizes it).
_TEXT_INPUTS: dict[str, Callable[[Mapping[str, Any]], TextExample]] = {
    "text-completion": _completion_input,
    "text-classification": _classification_input,
    "token-classification": lambda example: TextExample((" ".join(example["tokens"]),)),
    "question-answering": lambda example: TextExample((example["question"], example["context"]), "pair"),
    "summarization": lambda example: TextExample((example["source"], example["target"]), "separate"),
    "translation": lambda example: TextExample((example["source"], example["target"]), "separate"),
}


def _label_summary(labels: LabelCounts | None) -> LabelSummary | None:
    if labels is None:
        return None
    return LabelSummary(
        name=labels.name,
        distinct=labels.distinct,
        counts=labels.ordered(),
        singletons=sum(1 for n in labels.counts.values() if n == 1),
        truncated=labels.truncated,
    )


# azft_contract is typed (py.typed); "misc" only fires where mypy is not pointed at jobs/src.
class _Validator(FileReader):  # type: ignore[misc]
    """The contract's reader plus what only the host does: the chat bulk path, duplicate hashes, token
    counts and the field sets of the records. Verdicts stay the reader's."""

    use_fast_path: ClassVar[bool] = True  # tests switch it off to compare with the line-by-line reader

    def __init__(
        self,
        report: DataReport,
        task: str,
        columns: Mapping[str, str] | None,
        *,
        counter: TokenCounter,
        max_seq_length: int | None,
        serverless: bool,
        epochs: float,
        chunk_size: int,
        batch_size: int,
    ) -> None:
        self.report = report
        super().__init__(
            task, columns, sink=self._add, serverless=serverless, chunk_size=chunk_size, batch_size=batch_size
        )
        self.counter = counter
        self.max_seq_length = max_seq_length
        self.epochs = epochs
        self.histogram = TokenHistogram()
        self.dedup = _Dedup()
        self.shapes: Counter[tuple[str, ...]] = Counter()
        self.pending_lines: list[int] = []
        self.pending: list[Any] = []
        self.chat = self.task == "chat-completion"
        self.preference = self.task == PREFERENCE
        self.sides = {"chosen": TokenHistogram(), "rejected": TokenHistogram()} if self.preference else None
        self.text_input = _TEXT_INPUTS.get(self.task)
        key = self.checker.columns.get("messages", "messages")
        self.fast = FastChatPath(key) if self.chat else None
        self.fast_on = self.use_fast_path and self.fast is not None and self.fast.schema is not None

    # -- findings become Issues -------------------------------------------------------------------------
    def _add(
        self,
        code: str,
        severity: str,
        line: int | None,
        message: str,
        path: str | None = None,
        hint: str | None = None,
        column: int | None = None,
        byte_offset: int | None = None,
    ) -> None:
        level: Severity = "error" if severity == "error" else "warning"
        self.report.add(
            Issue(
                path or "",
                message,
                file=self.report.path,
                line=line,
                column=column,
                hint=hint,
                severity=level,
                code=code,
                byte_offset=byte_offset,
            )
        )

    # -- the reader's hooks -----------------------------------------------------------------------------
    def read_batch(self, batch: LineBatch) -> None:
        fast = self.fast
        if not self.fast_on or fast is None:
            super().read_batch(batch)
            return
        result = (
            None
            if batch.unterminated
            else fast.chunk(batch.data, batch.start, batch.end, batch.count, batch.has_cr)
        )
        if result is not None:
            self.accept(result, batch.first_line, batch.count)
            return
        lines = batch.lines
        for start in range(0, len(lines), _FAST_BATCH):
            part = lines[start : start + _FAST_BATCH]
            result = fast.lines(part)
            if result is None:
                self.read_lines(batch, start, start + len(part))
                if self.stop:
                    return
            else:
                self.accept(result, batch.first_line + start, len(part))

    def read_lines(self, batch: LineBatch, start: int, end: int) -> None:
        super().read_lines(batch, start, end)
        self.flush()

    def decode_line(self, raw: bytes) -> Any:
        # Fewer than 19 digits in all is the common case, and a translate is much cheaper than a search.
        long_number = len(raw.translate(None, _NOT_DIGITS)) >= 19 and _LONG_DIGITS.search(raw) is not None
        if not long_number and raw.count(b"[") + raw.count(b"{") < _MAX_BRACKETS:
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # the contract's decoding says why
        return super().decode_line(raw)

    def accept(self, result: FastChat, first: int, count: int) -> None:
        """Record `count` clean chat examples starting at line `first` (what read_lines would record)."""
        key = self.checker.columns["messages"]
        if not self.checker.bound:  # every one of these objects has exactly this one key
            self.checker.bind((key,), None)
        self.examples += count
        self.valid_examples += count
        self.shapes[(key,)] += count
        self.dedup.add_run(result.keys, first, count)
        if isinstance(self.counter, ApproxCounter):
            self.tokens(self.counter.chat_lengths(result.chars, result.counts), range(first, first + count))
        else:
            self.chat_tokens(result.conversations(), list(range(first, first + count)))

    def on_shape(self, names: Iterable[str]) -> None:
        key = tuple(names)
        if key in self.shapes or len(self.shapes) < _MAX_SHAPES:
            self.shapes[key] += 1

    def on_record(self, line: int, key: bytes | int, example: dict[str, Any] | None) -> None:
        dedup = self.dedup
        if key.__class__ is bytes:
            if example is not None and self.fast is not None:  # the key the bulk path gives the same example
                dedup.hashes.append(self.fast.example_key(example["messages"]))
            else:
                dedup.hashes.append(hash(key.rstrip()))  # type: ignore[union-attr]
            dedup.lines.append(line)
        elif key:
            dedup.hashes.append(key)  # type: ignore[arg-type]
            dedup.lines.append(line)
        if example is None:
            return
        pending = self.pending
        text_input = self.text_input
        if self.preference:
            pending.append(example)
        else:
            pending.append(example["messages"] if text_input is None else text_input(example))
        self.pending_lines.append(line)
        if len(pending) >= _PENDING:
            self.flush()

    # -- tokens -----------------------------------------------------------------------------------------
    def flush(self) -> None:
        if not self.pending:
            return
        if self.chat:
            self.chat_tokens(self.pending, self.pending_lines)
        elif self.preference:
            self.pair_tokens(self.pending, self.pending_lines)
        else:
            self.tokens(self.counter.texts(self.pending), self.pending_lines)
        self.pending = []
        self.pending_lines = []

    def chat_tokens(self, conversations: list[Any], lines: list[int]) -> None:
        """Count chat tokens; with a model's tokenizer, a conversation its chat template refuses is an error
        at its line: the job's trainer renders it with the same template and exits 2 there."""
        errors = _template_errors() if isinstance(self.counter, TokenizerCounter) else ()
        try:
            self.tokens(self.counter.chat(conversations), lines)
            return
        except errors:
            pass
        for conversation, line in zip(conversations, lines, strict=True):
            try:
                lengths = self.counter.chat([conversation])
            except errors as error:
                self.valid_examples -= 1
                self.issue(
                    "chat_template_error",
                    line,
                    f"the model's chat template cannot render this conversation: {error}",
                    hint="the trainer renders every conversation with this template; follow its rules (e.g. "
                    "alternating user/assistant turns) or fine-tune another model",
                )
                continue
            self.tokens(lengths, [line])

    def pair_tokens(self, pairs: list[dict[str, Any]], lines: list[int]) -> None:
        """Count both sides of preference pairs (prompt + chosen, prompt + rejected) as the trainer renders them;
        a pair whose conversation the model's chat template refuses is an error at its line."""
        assert self.sides is not None
        counted: dict[str, list[int]] = {"chosen": [], "rejected": []}
        kept: list[int] = []
        errors = _template_errors() if isinstance(self.counter, TokenizerCounter) else ()
        for pair, line in zip(pairs, lines, strict=True):
            try:
                pair_lengths = {side: self._side_length(pair, side) for side in ("chosen", "rejected")}
            except errors as error:
                self.valid_examples -= 1
                self.issue(
                    "chat_template_error",
                    line,
                    f"the model's chat template cannot render this pair: {error}",
                    hint="the trainer renders prompt + answer with this template; follow its rules (e.g. "
                    "alternating user/assistant turns) or fine-tune another model",
                )
                continue
            kept.append(line)
            for side, n in pair_lengths.items():
                counted[side].append(n)
        for side, side_lengths in counted.items():
            self.sides[side].update(side_lengths)
            self.tokens(side_lengths, kept, what=f"prompt + {side}")

    def _side_length(self, pair: Mapping[str, Any], side: str) -> int:
        prompt, answer = pair["prompt"], pair[side]
        if isinstance(answer, list):
            return self.counter.chat([[*prompt, *answer]])[0]
        return self.counter.texts([TextExample((prompt, answer))])[0]

    def tokens(self, lengths: list[int], lines: Iterable[int] | range, *, what: str = "") -> None:
        self.histogram.update(lengths)
        limit = self.max_seq_length
        if not limit or max(lengths, default=0) <= limit:
            return
        line_list = list(lines)
        over = [(line_list[i], n) for i, n in enumerate(lengths) if n > limit]
        report = self.report
        keep = max(0, report.max_errors_per_kind - report.warning_counts.get("exceeds_max_seq_length", 0))
        for line, n in over[:keep]:
            self.issue(
                "exceeds_max_seq_length",
                line,
                f"{what + ': ' if what else ''}{n} tokens, more than max_seq_length {limit}: the trainer "
                "truncates it",
                severity="warning",
                hint="shorten or split long examples, or raise max_seq_length",
            )
        _count_rest(report, "exceeds_max_seq_length", len(over) - len(over[:keep]))

    # -- the end ----------------------------------------------------------------------------------------
    def finish(self) -> None:
        self.flush()
        super().finish()
        report, info = self.report, self.info
        stats = report.stats = DataStats(file_format=self.file_format)
        stats.bytes = info.size
        stats.lines = info.lines
        stats.bom = info.bom
        stats.crlf_lines = info.crlf_lines
        stats.final_newline = info.final_newline
        stats.examples = self.examples
        stats.valid_examples = self.valid_examples
        stats.blank_lines = self.blank_lines
        stats.columns = self.checker.used_columns()
        merged: Counter[str] = Counter()
        for names, count in self.shapes.items():
            merged[",".join(sorted(names))] += count
        stats.shapes = dict(merged.most_common())
        stats.labels = _label_summary(self.checker.labels)

        count, pairs = self.dedup.duplicates(report.max_errors_per_kind)
        stats.duplicates = count
        for line, first in pairs:
            self.issue(
                "duplicate_example",
                line,
                f"same as line {first} ({count} duplicate example{'s' if count != 1 else ''} in the file)",
                severity="warning",
                hint="duplicates weigh those examples more and leak between training and validation",
            )
        _count_rest(report, "duplicate_example", count - len(pairs))

        method = self.counter.method
        if self.chat and isinstance(self.counter, TokenizerCounter):
            method = self.counter.chat_method
        if self.preference and isinstance(self.counter, TokenizerCounter):
            method = self.counter.chat_method
        stats.tokens = self.histogram.stats(method, max_seq_length=self.max_seq_length, epochs=self.epochs)
        if self.sides is not None:
            stats.sides = {
                side: histogram.stats(method, max_seq_length=self.max_seq_length, epochs=self.epochs)
                for side, histogram in self.sides.items()
            }


def _template_errors() -> tuple[type[BaseException], ...]:
    """What a chat template raises for a conversation it refuses (raise_exception(), a bad role order)."""
    try:
        from jinja2 import TemplateError
    except ImportError:
        return (ValueError, TypeError, KeyError)
    return (TemplateError, ValueError, TypeError, KeyError)


def _count_rest(report: DataReport, code: str, n: int) -> None:
    """Count `n` more warnings of `code` without building them (they are past the per-code cap)."""
    if n > 0:
        report.warning_counts[code] = report.warning_counts.get(code, 0) + n


def _issue(
    report: DataReport, code: str, message: str, *, severity: Severity = "error", hint: str | None = None
) -> Issue:
    return Issue("", message, file=report.path, severity=severity, code=code, hint=hint)


def compare_formats(train: DataReport, validation: DataReport) -> list[Issue]:
    """Issues (reported against the validation file) where it does not match the training file."""
    issues: list[Issue] = []
    if train.task != validation.task:
        issues.append(
            _issue(
                validation,
                "format_mismatch",
                f"the validation file was checked as {validation.task}, the training file as {train.task}",
            )
        )
        return issues
    t_shape, v_shape = train.stats.shape, validation.stats.shape
    if t_shape is not None and v_shape is not None and t_shape != v_shape:
        issues.append(
            _issue(
                validation,
                "format_mismatch",
                f"the validation examples have the fields {{{v_shape}}}, the training examples {{{t_shape}}}",
                hint="write both files with the same fields (and the same column names)",
            )
        )
    if train.stats.file_format != validation.stats.file_format:
        issues.append(
            _issue(
                validation,
                "file_type_mismatch",
                f"the validation file is {validation.stats.file_format}, the training file "
                f"{train.stats.file_format}",
                severity="warning",
                hint="the registry pipelines read both files the same way; use one format",
            )
        )
    t_labels, v_labels = train.stats.labels, validation.stats.labels
    if t_labels is not None and v_labels is not None and not t_labels.truncated:
        unseen = [label for label in v_labels.counts if label not in t_labels.counts]
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
            issues.append(
                _issue(
                    validation,
                    "unseen_label",
                    f"{len(unseen)} {v_labels.name}(s) in the validation file never occur in training: {shown}",
                    severity="warning",
                    hint="the trainer leaves such examples out of the evaluation: it cannot predict a class "
                    "it was not trained on",
                )
            )
    return issues


def validate_pair(
    train: str | Path,
    validation: str | Path | None,
    **options: Any,
) -> tuple[DataReport, DataReport | None]:
    """Validate a training file and (optionally) its validation file, adding compare_formats' issues to
    the validation report."""
    train_report = validate_data(train, **options)
    if validation is None:
        return train_report, None
    validation_report = validate_data(validation, **options)
    validation_report.extend(compare_formats(train_report, validation_report))
    return train_report, validation_report
