"""`azfinetune import olive-config.json [-o spec.yaml]`: an Olive workflow (the AI Toolkit's) as a spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from azfinetune.cli._app import Application


@click.command("import")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the spec to this file (paths in it are relative to its folder) instead of printing it.",
)
@click.option(
    "--settings",
    type=click.Path(dir_okay=False),
    help="An AI Toolkit project's setup/project-settings.json: fills a template's <token>s "
    "(default: the project's own, when CONFIG is a template).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="The folder `olive run` runs in, which the workflow's paths are relative to (default: an AI Toolkit "
    "project's root for <project>/finetuning/olive-config.json, else CONFIG's folder).",
)
@click.option("--name", help="The spec's name (default: the workflow_id, else <model>-<technique>).")
@click.option("--force", is_flag=True, help="Overwrite the -o file.")
@click.pass_obj
def import_cmd(
    app: Application,
    config: str,
    output: str | None,
    settings: str | None,
    run_dir: str | None,
    name: str | None,
    force: bool,
) -> None:
    """Import an Olive workflow (olive-config.json) as a spec (offline).

    \b
    Reads olive-ai 0.13 workflows and the AI Toolkit's project templates; every Olive key the spec does not
    carry is listed (a warning naming the key), and keys that cannot become a spec are errors.
    """
    from azfinetune.errors import Issue, SpecError
    from azfinetune.interop.olive import fill_ai_toolkit_template, olive_to_spec
    from azfinetune.spec import spec_from_dict

    source = Path(config)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except OSError as error:
        app.abort(f"cannot read {source}: {error.strerror or error}")
    project = _ai_toolkit_project(source)
    settings_path = Path(settings) if settings else None
    if settings_path is None and project is not None and _looks_like_template(text):
        settings_path = project / "setup" / "project-settings.json"
        app.err.print(
            f"note: {escape(str(source))} is an AI Toolkit template: filling it from {escape(str(settings_path))}"
        )
    if settings_path is not None:
        try:
            values = json.loads(settings_path.read_text(encoding="utf-8-sig"))
            text = fill_ai_toolkit_template(text, values)
        except OSError as error:
            app.abort(f"cannot read {settings_path}: {error.strerror or error}")
        except ValueError as error:
            app.abort(f"{settings_path}: {error}")
    try:
        workflow = json.loads(text)
    except ValueError as error:
        where = f":{error.lineno}:{error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        hint = (
            "; it looks like an AI Toolkit template: pass --settings setup/project-settings.json"
            if _looks_like_template(text)
            else ""
        )
        app.abort(f"{source}{where}: not JSON ({getattr(error, 'msg', error)}){hint}")
    folder = Path(run_dir) if run_dir else (project if project is not None else source.parent)
    target = Path(output) if output else None
    spec_dir = target.resolve().parent if target else Path.cwd()
    result = olive_to_spec(workflow, run_dir=folder, spec_dir=spec_dir, name=name, source=str(source))
    for note in result.notes:
        app.issue(note)
    try:
        spec_from_dict(result.spec, base_dir=spec_dir)
    except SpecError as error:
        relabelled = [
            Issue(
                issue.path,
                f"{issue.message} (from {result.origins[issue.path]})"
                if issue.path in result.origins
                else issue.message,
                hint=issue.hint,
            )
            for issue in error.issues
        ]
        raise SpecError(relabelled, file=f"{source} as a spec") from None
    body = _yaml(source, result.spec, result.notes)
    if target is None:
        click.echo(body, nl=False)
        return
    if target.exists() and not force:
        app.abort(f"-o {target} exists; choose another file or pass --force")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    except OSError as error:
        app.abort(f"cannot write {target}: {error.strerror or error}")
    app.err.print(
        f"wrote {escape(str(target))} ({len(result.notes)} workflow keys not carried, listed in it)"
    )


def _ai_toolkit_project(config: Path) -> Path | None:
    """<project> for <project>/finetuning/olive-config.json beside <project>/setup/project-settings.json."""
    folder = config.resolve().parent
    if folder.name == "finetuning" and (folder.parent / "setup" / "project-settings.json").is_file():
        return folder.parent
    return None


def _looks_like_template(text: str) -> bool:
    import re

    return re.search(r"(:\s*<[a-z][a-z0-9_]*>)|(\"<[a-z][a-z0-9_]*>\")", text) is not None


def _yaml(source: Path, spec: dict[str, Any], notes: list[Any]) -> str:
    import yaml

    lines = [f"# Imported by `azfinetune import` from the Olive workflow {source}."]
    if notes:
        lines.append("# Not carried from the workflow:")
        lines += [f"#   {note.path}: {note.message}".replace("\n", "\\n") for note in notes]
    return "\n".join(lines) + "\n" + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
