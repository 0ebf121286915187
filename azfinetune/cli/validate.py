"""`azfinetune validate SPEC...`: spec, catalog, file and data checks, offline."""

from __future__ import annotations

import traceback

import click
from rich.markup import escape

from azfinetune.cli._app import Application, _print_error
from azfinetune.errors import AzFineTuneError


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key, e.g. training.epochs=1.",
)
@click.option("--no-data", is_flag=True, help="Skip the data-file checks.")
@click.option(
    "--allow-no-fit",
    is_flag=True,
    help="Accept a job the planner says cannot fit in GPU memory even optimistically (an error otherwise).",
)
@click.pass_obj
def validate(
    app: Application,
    specs: tuple[str, ...],
    overrides: tuple[str, ...],
    no_data: bool,
    allow_no_fit: bool = False,
) -> None:
    """Check one or more specs (and their data files) without touching Azure."""
    from azfinetune.targets import ALLOW_NO_FIT

    ALLOW_NO_FIT.set(allow_no_fit)
    from azfinetune.targets import check_spec

    failed = 0
    for path in specs:
        try:
            report = check_spec(path, overrides=list(overrides), data=not no_data)
        except AzFineTuneError as error:
            if app.debug:
                traceback.print_exc()
            _print_error(app, error)
            failed += 1
            continue
        for warning in report.warnings:
            app.issue(warning)
        for problem in report.errors:
            app.issue(problem)
        for role, data_report in report.data_reports.items():
            if not data_report.ok:
                app.err.print(f"[red]error:[/red] data.{role}: {escape(str(data_report.summary()))}")
                for issue in data_report.errors[:10]:
                    app.err.print(f"  {escape(str(issue))}")
        if report.ok:
            spec = report.spec
            app.out.print(
                f"[green]✓[/green] {escape(path)}: {spec.name} — {spec.task.value}, {escape(spec.model)}, "
                f"{spec.method.technique.value}, target {spec.target.kind}"
            )
        else:
            failed += 1
    if failed:
        raise SystemExit(2)
