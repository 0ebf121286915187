"""validate_data: stream a data file once, check every example, and gather the report."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from azfinetune.data._formats import ChatChecker, Checker, FastChat, make_checker, normalize_task
from azfinetune.data._reader import (
    BATCH_SIZE,
    BOM,
    CHUNK_SIZE,
    FileInfo,
    LineBatch,
    Record,
    detect_format,
    iter_csv_records,
    iter_line_batches,
    iter_parquet_records,
)
from azfinetune.data._report import DataIssue, DataReport, DataStats, Severity
from azfinetune.data._tokens import (
    ApproxCounter,
    TextExample,
    TokenCounter,
    TokenHistogram,
    TokenizerCounter,
    load_tokenizer,
)
from azfinetune.errors import DataError

__all__ = ["MIN_EXAMPLES", "SERVERLESS_MAX_BYTES", "compare_formats", "validate_data", "validate_pair"]

# "The file must be less than 512 MB in size" (Azure fine-tuning docs), read as MiB.
SERVERLESS_MAX_BYTES = 512 * 1024 * 1024
MIN_EXAMPLES = 10  # "Fine tuning jobs will not proceed without at least 10 training examples"
_FAST_BATCH = 1024  # lines per bulk check: one bad line sends only its own 1024 lines down the slow path
_PENDING = 256  # examples per tokenizer call
_MAX_SHAPES = 1000


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

    Issues carry stable snake_case kinds (``invalid_json``, ``unknown_role``, ``answer_mismatch`` ...) and
    1-based lines as editors show them; at most `max_errors_per_kind` are kept per kind, all are counted.
    Tokens are counted with `tokenizer`, else with the tokenizer of `model` when it is on disk (a folder,
    or a hub id in the local cache), else approximated (see ApproxCounter). JSON Lines for every task;
    CSV/TSV/Parquet (Parquet needs pyarrow) for all but chat-completion. `chunk_size` (bytes per read)
    and `batch_size` (bytes of lines checked together) tune the streaming; results never depend on them.

    Raises DataError only when the file cannot be checked at all (missing, unknown task, a format the
    task does not take, Parquet without pyarrow); everything found inside the file is in the report.
    """
    task = normalize_task(task)
    file = Path(path)
    if not file.exists():
        raise DataError(f"{file}: no such file")
    if not file.is_file():
        raise DataError(f"{file}: not a file")
    file_format = detect_format(file)
    if task == "chat-completion" and file_format != "jsonl":
        raise DataError(
            f"{file}: chat-completion data must be JSON Lines (.jsonl), not {file_format}",
            hint='one {"messages": [...]} object per line',
        )
    if max_seq_length is not None and max_seq_length <= 0:
        raise DataError(f"max_seq_length must be positive, got {max_seq_length}")
    report = DataReport(path=str(file), task=task, max_errors_per_kind=max_errors_per_kind)
    report.stats = DataStats(file_format=file_format)
    counter, method_note = _token_counter(task, model, tokenizer)
    if method_note:
        report.add(
            DataIssue(
                kind="tokenizer_unavailable",
                severity="warning",
                message=f"token counts are approximate ({ApproxCounter.method}): {method_note}",
                hint="pass a local model folder with --model to count exactly",
            )
        )
    run = _Run(
        report,
        make_checker(task, report, columns, serverless=serverless, tabular=file_format in ("csv", "tsv")),
        counter,
        max_seq_length=max_seq_length,
        serverless=serverless,
    )
    info = FileInfo(size=file.stat().st_size)
    if file_format == "jsonl":
        with file.open("rb") as stream:
            run.jsonl(iter_line_batches(stream, info, chunk_size, batch_size))
    elif file_format in ("csv", "tsv"):
        with file.open("rb") as stream:
            run.table(
                iter_csv_records(stream, info, delimiter="," if file_format == "csv" else "\t"), header_line=1
            )
    else:
        run.table(iter_parquet_records(file, info), header_line=None)
    run.finish(info, epochs=1.0 if epochs is None else float(epochs))
    return report


def _token_counter(task: str, model: str | None, tokenizer: Any | None) -> tuple[TokenCounter, str]:
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


class _Run:
    """The state of one validation: checker, token histogram, duplicate hashes, counts."""

    def __init__(
        self,
        report: DataReport,
        checker: Checker,
        counter: TokenCounter,
        *,
        max_seq_length: int | None,
        serverless: bool,
    ) -> None:
        self.report = report
        self.stats = report.stats
        self.checker = checker
        self.counter = counter
        self.max_seq_length = max_seq_length
        self.serverless = serverless
        self.histogram = TokenHistogram()
        self.dedup = _Dedup()
        self.shapes: Counter[tuple[str, ...]] = Counter()
        self.pending_lines: list[int] = []
        self.pending: list[Any] = []
        self.chat = isinstance(checker, ChatChecker)
        self.first_crlf_line: int | None = None
        self.stop = False

    # -- issues ---------------------------------------------------------------------------------------
    def issue(
        self, kind: str, line: int | None, message: str, *, severity: Severity = "error", **extra: Any
    ) -> None:
        self.report.add(DataIssue(kind=kind, message=message, line=line, severity=severity, **extra))

    def bulk(self, kind: str, severity: Severity, issues: list[DataIssue], total: int) -> None:
        """Add the first issues and count the rest without building them."""
        for item in issues:
            self.report.add(item)
        if total > len(issues):
            counts = self.report.error_counts if severity == "error" else self.report.warning_counts
            counts[kind] = counts.get(kind, 0) + total - len(issues)

    def shape(self, names: Iterable[str]) -> None:
        key = tuple(names)
        if key in self.shapes or len(self.shapes) < _MAX_SHAPES:
            self.shapes[key] += 1

    # -- JSON Lines ------------------------------------------------------------------------------------
    def jsonl(self, batches: Iterable[LineBatch]) -> None:
        checker = self.checker
        chat = checker if isinstance(checker, ChatChecker) else None
        for batch in batches:
            if self.first_crlf_line is None and batch.has_cr:
                self._note_crlf(batch)
            if chat is None:
                self.slow(batch, 0, batch.count)
            else:
                result = (
                    None
                    if batch.unterminated
                    else chat.fast_chunk(batch.data, batch.start, batch.end, batch.count, batch.has_cr)
                )
                if result is not None:
                    self.accept(result, batch.first_line, batch.count)
                else:
                    lines = batch.lines
                    for start in range(0, len(lines), _FAST_BATCH):
                        part = lines[start : start + _FAST_BATCH]
                        result = chat.fast_lines(part)
                        if result is None:
                            self.slow(batch, start, start + len(part))
                        else:
                            self.accept(result, batch.first_line + start, len(part))
            if self.stop:
                return

    def accept(self, result: FastChat, first: int, count: int) -> None:
        """Record `count` clean chat examples starting at line `first`."""
        self.stats.examples += count
        self.stats.valid_examples += count
        self.shapes[(self.checker.columns["messages"],)] += count
        self.dedup.add_run(result.keys, first, count)
        if isinstance(self.counter, ApproxCounter):
            lengths = self.counter.chat_lengths(result.chars, result.counts)
        else:
            lengths = self.counter.chat(result.conversations())
        self.tokens(lengths, range(first, first + count))

    def _note_crlf(self, batch: LineBatch) -> None:
        for i, line in enumerate(batch.lines):
            if line.endswith(b"\r"):
                self.first_crlf_line = batch.first_line + i
                return

    def slow(self, batch: LineBatch, start: int, end: int) -> None:
        """One line at a time, explaining every problem."""
        lines = batch.lines
        offset = batch.first_offset + sum(map(len, lines[:start])) + start
        checker = self.checker
        chat = checker if isinstance(checker, ChatChecker) else None
        for index in range(start, end):
            raw = lines[index]
            line_no = batch.first_line + index
            line_offset = offset
            offset += len(raw) + 1
            stripped = raw.strip()
            if not stripped:
                self.stats.blank_lines += 1
                self.issue(
                    "blank_line",
                    line_no,
                    "blank line",
                    severity="warning",
                    hint="remove blank lines: some JSON Lines loaders stop at them",
                )
                continue
            self.stats.examples += 1
            key = hash(raw.rstrip())
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                self.dedup.add(key, line_no)
                self._bad_json(
                    raw, stripped, line_no, line_offset, error, batch.unterminated and index == end - 1
                )
                if self.stop:
                    return
                continue
            if type(obj) is not dict:
                self.dedup.add(key, line_no)
                hint = None
                if isinstance(obj, list) and self.stats.examples == 1:
                    hint = "the file looks like one JSON array; write one object per line (jq -c '.[]' in > out.jsonl)"
                self.issue(
                    "not_an_object",
                    line_no,
                    f"the line is a JSON {_json_kind(obj)}, not an object",
                    hint=hint or 'every line must be one JSON object, e.g. {"messages": [...]}',
                )
                continue
            if not checker.bound:
                checker.bind(obj.keys(), obj)
            self.shape(obj)
            example = checker.check(obj, line_no)
            if example is not None:
                if chat is not None:  # the key the bulk path gives the same example
                    key = chat.example_key(example)
                self.stats.valid_examples += 1
                self.pending.append(example)
                self.pending_lines.append(line_no)
                if len(self.pending) >= _PENDING:
                    self.flush()
            self.dedup.add(key, line_no)
        self.flush()

    def _bad_json(
        self,
        raw: bytes,
        stripped: bytes,
        line_no: int,
        line_offset: int,
        error: orjson.JSONDecodeError,
        last_unterminated: bool,
    ) -> None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = raw[bad.start]
            where = line_offset + bad.start
            self.issue(
                "invalid_utf8",
                line_no,
                f"invalid UTF-8 byte 0x{byte:02x} at byte offset {where} (column {bad.start + 1})",
                byte_offset=where,
                column=bad.start + 1,
                hint="save the file as UTF-8; this byte looks like Latin-1/Windows-1252 text",
            )
            return
        if stripped.startswith(BOM):
            self.issue(
                "stray_bom",
                line_no,
                "a UTF-8 byte-order mark in the middle of the file",
                hint="files were probably concatenated; remove the BOM bytes (EF BB BF) from this line",
            )
            return
        if self.stats.examples == 1 and stripped in (b"[", b"{"):
            self.issue(
                "not_json_lines",
                line_no,
                "the file is a pretty-printed JSON document, not JSON Lines; stopped reading",
                hint="write one object per line, e.g. jq -c '.[]' in.json > out.jsonl",
            )
            self.stop = True
            return
        if last_unterminated and error.pos >= len(raw.rstrip()):
            self.issue(
                "truncated_line",
                line_no,
                f"the last line is cut off ({error.msg}) and has no newline",
                column=error.colno,
                hint="the file ends in the middle of an example: was a copy or upload interrupted?",
            )
            return
        self.issue(
            "invalid_json",
            line_no,
            f"not valid JSON: {error.msg} (column {error.colno})",
            column=error.colno,
            hint="each line must be one complete JSON object; a line break inside a string must be written \\n",
        )

    # -- CSV / TSV / Parquet ----------------------------------------------------------------------------
    def table(self, records: Iterable[Record | list[str]], *, header_line: int | None) -> None:
        checker = self.checker
        header: list[str] | None = None
        for record in records:
            if isinstance(record, list):
                header = record
                duplicated = sorted({n for n in header if header.count(n) > 1})
                if duplicated:
                    self.issue(
                        "duplicate_column",
                        header_line,
                        f"column name(s) {', '.join(repr(n) for n in duplicated)} appear more than once",
                    )
                checker.bind(header, None, header=True, header_line=header_line)
                continue
            if record.error is not None:
                kind, message, byte_offset = record.error
                if record.values is not None:
                    self.stats.examples += 1
                    if record.key:
                        self.dedup.add(record.key, record.line)
                if kind == "invalid_utf8":
                    message = message or f"invalid UTF-8 at byte offset {byte_offset}"
                    self.issue(
                        kind,
                        record.line,
                        message if "offset" in message else f"{message} (byte offset {byte_offset})",
                        byte_offset=byte_offset,
                        hint="save the file as UTF-8; this byte looks like Latin-1/Windows-1252 text",
                    )
                else:
                    self.issue(kind, record.line, message)
                continue
            if record.values is None:
                self.stats.blank_lines += 1
                self.issue(
                    "blank_line", record.line, "blank line", severity="warning", hint="remove blank lines"
                )
                continue
            self.stats.examples += 1
            self.dedup.add(record.key, record.line)
            if header is not None:
                self.shapes[tuple(header)] += 1
            example = checker.check(record.values, record.line)
            if example is not None:
                self.stats.valid_examples += 1
                self.pending.append(example)
                self.pending_lines.append(record.line)
                if len(self.pending) >= _PENDING:
                    self.flush()
        self.flush()

    # -- tokens ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        if not self.pending:
            return
        if self.chat:
            lengths = self.counter.chat(self.pending)
        else:
            examples: list[TextExample] = self.pending
            lengths = self.counter.texts(examples)
        self.tokens(lengths, self.pending_lines)
        self.pending = []
        self.pending_lines = []

    def tokens(self, lengths: list[int], lines: Iterable[int] | range) -> None:
        self.histogram.update(lengths)
        limit = self.max_seq_length
        if not limit or max(lengths, default=0) <= limit:
            return
        line_list = list(lines)
        over = [(line_list[i], n) for i, n in enumerate(lengths) if n > limit]
        keep = max(
            0, self.report.max_errors_per_kind - self.report.warning_counts.get("exceeds_max_seq_length", 0)
        )
        shown = [
            DataIssue(
                kind="exceeds_max_seq_length",
                severity="warning",
                line=line,
                message=f"{n} tokens, more than max_seq_length {limit}: the trainer truncates it",
                hint="shorten or split long examples, or raise max_seq_length",
            )
            for line, n in over[:keep]
        ]
        self.bulk("exceeds_max_seq_length", "warning", shown, len(over))

    # -- the end ------------------------------------------------------------------------------------------
    def finish(self, info: FileInfo, *, epochs: float) -> None:
        stats, report = self.stats, self.report
        stats.bytes = info.size
        stats.lines = info.lines
        stats.bom = info.bom
        stats.crlf_lines = info.crlf_lines
        stats.final_newline = info.final_newline
        stats.columns = self.checker.used_columns()
        merged: Counter[str] = Counter()
        for names, count in self.shapes.items():
            merged[",".join(sorted(names))] += count
        stats.shapes = dict(merged.most_common())
        stats.labels = self.checker.finish()

        count, pairs = self.dedup.duplicates(report.max_errors_per_kind)
        stats.duplicates = count
        if count:
            self.bulk(
                "duplicate_example",
                "warning",
                [
                    DataIssue(
                        kind="duplicate_example",
                        severity="warning",
                        line=line,
                        message=f"same as line {first} ({count} duplicate example{'s' if count != 1 else ''} in the file)",
                        hint="duplicates weigh those examples more and leak between training and validation",
                    )
                    for line, first in pairs
                ],
                count,
            )

        method = self.counter.method
        if self.chat and isinstance(self.counter, TokenizerCounter):
            method = self.counter.chat_method
        stats.tokens = self.histogram.stats(method, max_seq_length=self.max_seq_length, epochs=epochs)

        if info.crlf_lines and stats.file_format == "jsonl":
            self.issue(
                "crlf_line_endings",
                self.first_crlf_line,
                f"{info.crlf_lines} of {info.lines} lines end with CRLF (\\r\\n); accepted, the \\r is ignored",
                severity="warning",
                hint="convert to LF line endings (dos2unix) so every tool reads the file the same way",
            )
        if info.size >= SERVERLESS_MAX_BYTES and self.serverless:
            self.issue(
                "file_too_large",
                None,
                f"the file is {info.size / 2**20:.0f} MiB; serverless fine-tuning takes files under 512 MB",
                hint="split it, sample it, or fine-tune on your own compute (target: compute)",
            )
        if self.serverless and not info.bom and stats.file_format != "parquet" and info.size:
            self.issue(
                "missing_bom",
                None,
                "no UTF-8 byte-order mark: the Azure fine-tuning docs ask for UTF-8 with a BOM",
                severity="warning",
                hint="files without one are generally accepted; add it if the service rejects the file",
            )
        if stats.examples == 0 and not report.error_counts.get("not_json_lines"):
            self.issue("empty_file", None, "the file has no examples")
        elif stats.examples < MIN_EXAMPLES and not self.stop:
            have = f"only {stats.examples} example{'s' if stats.examples != 1 else ''}"
            if self.serverless:
                message = f"{have}: serverless fine-tuning does not start with fewer than {MIN_EXAMPLES}"
            else:
                message = (
                    f"{have}: a model learns little from fewer than {MIN_EXAMPLES} (serverless rejects it)"
                )
            self.issue("too_few_examples", None, message, severity="error" if self.serverless else "warning")
        report.sort()


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


def compare_formats(train: DataReport, validation: DataReport) -> list[DataIssue]:
    """Issues (reported against the validation file) where it does not match the training file."""
    issues: list[DataIssue] = []
    if train.task != validation.task:
        issues.append(
            DataIssue(
                kind="format_mismatch",
                message=f"the validation file was checked as {validation.task}, the training file as {train.task}",
            )
        )
        return issues
    t_shape, v_shape = train.stats.shape, validation.stats.shape
    if t_shape is not None and v_shape is not None and t_shape != v_shape:
        issues.append(
            DataIssue(
                kind="format_mismatch",
                message=f"the validation examples have the fields {{{v_shape}}}, the training examples {{{t_shape}}}",
                hint="write both files with the same fields (and the same column names)",
            )
        )
    if train.stats.file_format != validation.stats.file_format:
        issues.append(
            DataIssue(
                kind="file_type_mismatch",
                severity="warning",
                message=f"the validation file is {validation.stats.file_format}, the training file "
                f"{train.stats.file_format}",
                hint="the registry pipelines read both files the same way; use one format",
            )
        )
    t_labels, v_labels = train.stats.labels, validation.stats.labels
    if t_labels is not None and v_labels is not None and not t_labels.truncated:
        unseen = [label for label in v_labels.counts if label not in t_labels.counts]
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
            issues.append(
                DataIssue(
                    kind="unseen_label",
                    severity="warning",
                    message=f"{len(unseen)} {v_labels.name}(s) in the validation file never occur in training: {shown}",
                    hint="the model cannot predict a class it was not trained on",
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
