"""A DataReport as rich tables (the CLI prints them; nothing here writes to the terminal)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from azfinetune.data._report import DataReport
from azfinetune.errors import Issue

__all__ = ["render_report"]

_TOP_LABELS = 20


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _num(value: int | float | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def render_report(report: DataReport) -> RenderableType:
    """Verdict line, file/token/label tables and the issues table."""
    stats, tokens = report.stats, report.stats.tokens
    n_errors = sum(report.error_counts.values())
    n_warnings = sum(report.warning_counts.values())
    verdict = Text()
    if report.ok:
        verdict.append("✓ ", style="green")
    else:
        verdict.append("✗ ", style="red")
    verdict.append(report.path, style="bold")
    verdict.append(f"  {report.task}  ")
    verdict.append(f"{n_errors} error{'s' if n_errors != 1 else ''}", style="red" if n_errors else "green")
    verdict.append(", ")
    verdict.append(
        f"{n_warnings} warning{'s' if n_warnings != 1 else ''}", style="yellow" if n_warnings else ""
    )

    facts = Table(title="File", show_header=False, title_justify="left", box=None, padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("format", stats.file_format)
    facts.add_row("size", f"{_size(stats.bytes)} ({stats.bytes:,} bytes)")
    facts.add_row("examples", f"{stats.examples:,} ({stats.valid_examples:,} valid)")
    facts.add_row("lines", f"{stats.lines:,} ({stats.blank_lines:,} blank)")
    facts.add_row("encoding", "UTF-8 with BOM" if stats.bom else "UTF-8")
    if stats.crlf_lines:
        facts.add_row("line endings", f"CRLF on {stats.crlf_lines:,} lines")
    facts.add_row("duplicates", f"{stats.duplicates:,}")
    if stats.columns:
        facts.add_row("columns", ", ".join(f"{k}={v}" for k, v in stats.columns.items()))
    if stats.shape:
        facts.add_row(
            "fields",
            stats.shape + (f" (+{len(stats.shapes) - 1} other sets)" if len(stats.shapes) > 1 else ""),
        )

    token_table = Table(title="Tokens", show_header=False, title_justify="left", box=None, padding=(0, 2))
    token_table.add_column(style="dim")
    token_table.add_column()
    token_table.add_row("counted with", tokens.method)
    token_table.add_row("sequences (both sides)" if stats.sides else "examples", _num(tokens.counted))
    token_table.add_row("total", _num(tokens.total))
    token_table.add_row(
        "per example",
        f"min {_num(tokens.min)} · median {_num(tokens.median)} · p95 {_num(tokens.p95)} · max {_num(tokens.max)}",
    )
    for side, side_tokens in (stats.sides or {}).items():
        token_table.add_row(
            f"prompt + {side}",
            f"min {_num(side_tokens.min)} · median {_num(side_tokens.median)} · p95 {_num(side_tokens.p95)} · "
            f"max {_num(side_tokens.max)}",
        )
    if tokens.max_seq_length:
        token_table.add_row(
            f"> max_seq_length {tokens.max_seq_length:,}", f"{tokens.over_max_seq_length or 0:,} (truncated)"
        )
    token_table.add_row(
        "training tokens",
        f"{tokens.training_tokens_estimate:,} ({tokens.epochs:g} epoch{'s' if tokens.epochs != 1 else ''})",
    )

    parts: list[RenderableType] = [verdict, facts, token_table]

    if stats.labels is not None and stats.labels.distinct:
        labels = stats.labels
        title = f"{labels.name.capitalize()}s ({labels.distinct:,} distinct, {labels.singletons:,} seen once)"
        label_table = Table(title=title, title_justify="left", box=None, padding=(0, 2), min_width=len(title))
        label_table.add_column(labels.name)
        label_table.add_column("examples" if labels.name == "label" else "tokens", justify="right")
        for name, count in list(labels.counts.items())[:_TOP_LABELS]:
            label_table.add_row(name, f"{count:,}")
        if labels.distinct > _TOP_LABELS:
            label_table.add_row(f"… {labels.distinct - _TOP_LABELS:,} more", "")
        parts.append(label_table)

    if report.errors or report.warnings:
        parts.append(_issues_table(report))
    return Group(*parts)


def _issues_table(report: DataReport) -> Table:
    table = Table(title="Issues", title_justify="left", padding=(0, 1))
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("field", overflow="fold")
    table.add_column("message", ratio=1)
    hinted: set[str] = set()

    def add(issue: Issue) -> None:
        style = "red" if issue.severity == "error" else "yellow"
        message = Text(issue.message)
        code = issue.code or ""
        if issue.hint and code not in hinted:  # once per code: the same advice repeats otherwise
            hinted.add(code)
            message.append(f"\n→ {issue.hint}", style="dim")
        line = "" if issue.line is None else str(issue.line)
        table.add_row(line, Text(code, style=style), issue.path, message)

    for severity, issues in (("error", report.errors), ("warning", report.warnings)):
        for issue in issues:
            add(issue)
        style = "red" if severity == "error" else "yellow"
        for code, n in sorted(report.omitted(severity).items()):  # type: ignore[arg-type]
            table.add_row("", Text(code, style=style), "", Text(f"… and {n:,} more", style="dim"))
    return table
