"""`azfinetune export SPEC --to olive [-o DIR]`: the spec as an Olive workflow, the AI Toolkit's format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from azfinetune.cli._app import Application

if TYPE_CHECKING:
    from azfinetune.interop import OliveExport

#: The first line of the README the export writes: how a later export knows the folder is its own.
README_MARK = "<!-- written by azfinetune export --to olive -->"


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--to",
    "destination",
    type=click.Choice(["olive"]),
    required=True,
    help="olive: an olive-ai workflow (olive-config.json) for `olive run`, as the AI Toolkit for VS Code runs.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key, e.g. training.epochs=1.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, writable=True),
    help="Folder to write olive-config.json and README.md into (default: <spec name>-olive).",
)
@click.option("--force", is_flag=True, help="Write into a folder azfinetune did not write before.")
@click.pass_obj
def export(
    app: Application,
    spec: str,
    destination: str,
    overrides: tuple[str, ...],
    output: str | None,
    force: bool,
) -> None:
    """Export SPEC to another tool's format (offline).

    \b
    --to olive writes DIR/olive-config.json (olive-ai 0.13), DIR/README.md, and prints the `olive run` line;
    what the workflow cannot say is an error naming the spec key, what it leaves out is a warning.
    """
    from azfinetune.interop.olive import CONFIG_FILE, olive_run_command, spec_to_olive
    from azfinetune.spec import load_spec

    loaded = load_spec(spec, overrides=list(overrides))
    folder = Path(output) if output else Path(f"{loaded.name}-olive")
    result = spec_to_olive(loaded, out_dir=folder)
    for note in result.notes:
        app.issue(note)
    config_path, readme_path = folder / CONFIG_FILE, folder / "README.md"
    if not force:
        _refuse_foreign(app, folder, [config_path, readme_path])
    command = olive_run_command(CONFIG_FILE, run_dir=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        config_path.write_text(result.text, encoding="utf-8")
        readme_path.write_text(_readme(spec, loaded.name, result), encoding="utf-8")
    except OSError as error:
        app.abort(f"cannot write {folder}: {error.strerror or error}")
    app.err.print(f"wrote {escape(str(config_path))} and {escape(str(readme_path))}")
    click.echo(command)


def _refuse_foreign(app: Application, folder: Path, files: list[Path]) -> None:
    """Never overwrite files a person (or another tool) wrote: only a folder an earlier export wrote."""
    readme = folder / "README.md"
    try:
        ours = readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(
            README_MARK
        )
        present = [path for path in files if path.exists()]
    except OSError as error:
        app.abort(f"cannot read {folder}: {error.strerror or error}")
    if present and not ours:
        app.abort(
            f"{present[0]} exists and azfinetune export did not write it; choose another -o folder or pass --force"
        )


def _readme(spec: str, name: str, result: OliveExport) -> str:
    from azfinetune.interop.olive import CONFIG_FILE, OLIVE_VERSION, olive_run_command

    passes = ", ".join(f"{key} ({value['type']})" for key, value in result.config["passes"].items())
    technique = next(iter(result.config["passes"].values()))["type"]
    extras = ["torch", "'transformers>=5'", "peft", "datasets", "accelerate"]
    if technique == "QLoRA":
        extras.append("bitsandbytes")
    if any(value["type"] == "ModelBuilder" for value in result.config["passes"].values()):
        extras.append("onnxruntime-genai")
    lines = [
        README_MARK,
        f"# {name}: an Olive workflow",
        "",
        f"`azfinetune export {spec} --to olive` wrote `olive-config.json` (olive-ai {OLIVE_VERSION} format): "
        f"the same fine-tune as the spec, as the AI Toolkit for VS Code runs it. Passes: {passes}.",
        "",
        "Run it from this folder (paths in the config are relative to it):",
        "",
        "```sh",
        f"pip install olive-ai=={OLIVE_VERSION} {' '.join(extras)}",
        olive_run_command(CONFIG_FILE),
        "```",
        "",
        "`OLIVE_DISABLE_TELEMETRY=1` and `--disable_telemetry` turn Olive's usage telemetry off; `CI=1` as well, "
        "because olive-ai 0.13.0 sends its start-up heartbeat before it reads OLIVE_DISABLE_TELEMETRY (its CI "
        "check comes first). The adapter (and any ONNX model) lands in `output/`, checkpoints in `checkpoints/`.",
        "",
        "Back to a spec: `azfinetune import olive-config.json -o spec.yaml`.",
    ]
    if result.notes:
        lines += ["", "## Not carried into the workflow", ""]
        lines += [f"- `{note.path}`: {note.message}" for note in result.notes]
    return "\n".join(lines) + "\n"
