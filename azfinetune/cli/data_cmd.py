"""`azfinetune data validate FILE`: check a training (and validation) file offline, with lines and fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from azft_contract import DATA_KINDS, ContractError
from azft_contract import parse_columns as parse_column_items
from rich.console import Console

from azfinetune.errors import DataError

__all__ = ["data", "parse_columns"]


def parse_columns(values: tuple[str, ...]) -> dict[str, str]:
    """("text=sentence1", "label=y,text_pair=s2") -> {"text": "sentence1", "label": "y", "text_pair": "s2"}:
    the job's own rule (azft_contract.parse_columns), so a value means the same on both sides."""
    try:
        return dict(parse_column_items(values))
    except ContractError as error:
        raise click.BadParameter(f"{error.message} (e.g. text=sentence1)", param_hint="--columns") from error


def _console(ctx: click.Context) -> Console:
    out = getattr(ctx.obj, "out", None)
    return out if isinstance(out, Console) else Console(highlight=False, soft_wrap=True)


@click.group("data")
def data() -> None:
    """Check training data files before anything is uploaded."""


@data.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--task",
    "-t",
    required=True,
    type=click.Choice(DATA_KINDS),
    help="What the data is for (preference: the prompt/chosen/rejected pairs of dpo and orpo).",
)
@click.option("--model", "-m", help="Model folder (or a cached hub id) whose tokenizer counts the tokens.")
@click.option("--max-seq-length", type=click.IntRange(min=1), help="Count the examples longer than this.")
@click.option(
    "--columns",
    "--column",
    "columns",
    multiple=True,
    metavar="KEY=NAME",
    help="Column names, e.g. --columns text=sentence1 --columns label=y (repeatable).",
)
@click.option(
    "--serverless", is_flag=True, help="Apply the serverless (MaaS) limits: ≥ 10 examples, < 512 MB."
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="For the training-token estimate.",
)
@click.option(
    "--validation",
    "validation_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check this validation file, and that its format matches FILE's.",
)
@click.option(
    "--max-errors", type=click.IntRange(min=1), default=20, show_default=True, help="Issues listed per kind."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def validate(
    ctx: click.Context,
    file: Path,
    task: str,
    model: str | None,
    max_seq_length: int | None,
    columns: tuple[str, ...],
    serverless: bool,
    epochs: float,
    validation_file: Path | None,
    max_errors: int,
    as_json: bool,
) -> None:
    """Check FILE for TASK: every problem with its line and field, token counts, duplicates.

    FILE is read exactly as the job reads it (JSON Lines, a JSON array, CSV, TSV or Parquet, by suffix).
    Exit status 0 when there are no errors (warnings are fine), 2 when there are.

    \b
    --json prints one report (with --validation: {"train": ..., "validation": ...}):
      ok, error_counts / warning_counts   code -> how many
      errors / warnings                   at most --max-errors per code, each with severity, code,
                                          message, file, line, path (the field), column, hint,
                                          byte_offset (those that are known)
      stats                               format, sizes, examples, duplicates, columns (what to pass
                                          the job as --column KEY=NAME), labels, tokens
    """
    from azfinetune.data import render_report, validate_pair

    options: dict[str, Any] = {
        "task": task,
        "model": model,
        "max_seq_length": max_seq_length,
        "columns": parse_columns(columns) or None,
        "serverless": serverless,
        "epochs": epochs,
        "max_errors_per_kind": max_errors,
    }
    train_report, validation_report = validate_pair(file, validation_file, **options)
    reports = [train_report] if validation_report is None else [train_report, validation_report]

    out = _console(ctx)
    if as_json:
        if validation_report is None:
            text = train_report.to_json()
        else:
            import orjson

            both = {"train": train_report.to_dict(), "validation": validation_report.to_dict()}
            text = orjson.dumps(both, option=orjson.OPT_INDENT_2).decode()
        click.echo(text)  # raw: rich would wrap long lines of the JSON at the terminal's width
    else:
        for i, report in enumerate(reports):
            if i:
                out.print()
            out.print(render_report(report))

    failed = [report for report in reports if not report.ok]
    if failed:
        first = failed[0]
        n_errors = sum(first.error_counts.values())
        raise DataError(
            f"{first.path}: {n_errors} error{'s' if n_errors != 1 else ''} in the data "
            f"({', '.join(sorted(first.error_counts))})",
            report=first,
            hint="fix the lines the JSON report lists under each error kind"
            if as_json
            else "fix the lines listed above; --json gives the same report for programs",
        )
