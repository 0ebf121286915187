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
    help="yaml: for `az ml job create -f` (kaito: `kubectl apply -f -`); json: the REST body azure-ai-ml sends.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (paths in it are relative to its folder) instead of printing.",
)
@click.option("--force", is_flag=True, help="Overwrite the -o file even if azfinetune did not write it.")
@click.option(
    "--allow-no-fit",
    is_flag=True,
    help="Accept a job the planner says cannot fit in GPU memory even optimistically (an error otherwise).",
)
@click.pass_obj
def build(
    app: Application,
    spec: str,
    overrides: tuple[str, ...],
    output_format: str,
    output: str | None,
    force: bool,
    allow_no_fit: bool = False,
) -> None:
    """Build the Azure ML job for SPEC without submitting it (offline)."""
    from azfinetune.targets import ALLOW_NO_FIT

    ALLOW_NO_FIT.set(allow_no_fit)
    from azfinetune.targets import export_spec

    target = Path(output) if output else None
    if target is not None and not force:
        _refuse_clobber(app, target, [Path(spec)])
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
    if not force:
        _refuse_clobber(app, target, [Path(spec), *_data_files(spec, overrides)], ours=result.text)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.text, encoding="utf-8")
    except OSError as error:
        app.abort(f"cannot write {target}: {error.strerror or error}")
    app.err.print(f"wrote {escape(str(target))} (job {escape(result.job_name)})")


def _data_files(spec: str, overrides: tuple[str, ...]) -> list[Path]:
    from azfinetune.errors import AzFineTuneError
    from azfinetune.spec import load_spec

    try:
        loaded = load_spec(spec, overrides=list(overrides))
        return [loaded.resolve_path(ref) for ref in loaded.data.local_files().values()]
    except (AzFineTuneError, OSError, ValueError):
        return []


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _written_by_us(target: Path, ours: str | None) -> bool:
    """A file an earlier `azfinetune build -o` wrote: our YAML header, or JSON with our body's keys."""
    try:
        with target.open("rb") as handle:
            head = handle.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return False
    if head.startswith("# Azure ML ") and "written by azfinetune build" in head.split("\n", 1)[0]:
        return True
    if ours is not None and ours.lstrip().startswith("{"):
        import json

        try:
            mine, theirs = json.loads(ours), json.loads(head)
        except ValueError:
            return False
        return isinstance(theirs, dict) and isinstance(mine, dict) and set(theirs) == set(mine)
    return False


def _refuse_clobber(app: Application, target: Path, inputs: list[Path], ours: str | None = None) -> None:
    """-o never overwrites the spec, a data file, or a file azfinetune did not write (unless --force)."""
    for source in inputs:
        if _same(target, source):
            app.abort(f"-o {target} is an input of this build ({source}); choose another file")
    try:
        exists = target.exists() or target.is_symlink()
    except OSError as error:
        app.abort(f"cannot write {target}: {error.strerror or error}")
    if exists and ours is not None and not _written_by_us(target, ours):
        app.abort(f"-o {target} exists and azfinetune did not write it; choose another file or pass --force")
