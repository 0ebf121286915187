"""`azfinetune build SPEC`: the Azure ML job as `az ml job create -f` YAML, or its REST body as JSON."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from azfinetune.cli._app import Application


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec key, e.g. target.nodes=2."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="yaml: for `az ml job create -f`; json: the REST body azure-ai-ml sends.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (paths in it are relative to its folder) instead of printing.",
)
@click.pass_obj
def build(
    app: Application, spec: str, overrides: tuple[str, ...], output_format: str, output: str | None
) -> None:
    """Build the Azure ML job for SPEC without submitting it (offline)."""
    from azfinetune.targets import export_spec

    target = Path(output) if output else None
    result = export_spec(
        spec,
        overrides=list(overrides),
        format="json" if output_format == "json" else "yaml",
        base_dir=target.resolve().parent if target else Path.cwd(),
    )
    for warning in result.warnings:
        app.issue(warning)
    if target is None:
        # click.echo, not rich: the text must come out byte for byte (rich would read [..] as markup).
        click.echo(result.text, nl=False)
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.text, encoding="utf-8")
    except OSError as error:
        app.abort(f"cannot write {target}: {error.strerror or error}")
    app.err.print(f"wrote {escape(str(target))} (job {escape(result.job_name)})")
