"""`azfinetune export SPEC --to olive [-o DIR]`: the spec as an Olive workflow, the AI Toolkit's format; and
`azfinetune export RUN --onnx [-o DIR]`: a finished run's model for onnxruntime-genai, checked token for token."""

from __future__ import annotations

import shlex
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
@click.argument("spec", metavar="SPEC_OR_RUN", type=click.Path())
@click.option(
    "--to",
    "destination",
    type=click.Choice(["olive"]),
    help="olive: an olive-ai workflow (olive-config.json) for `olive run`, as the AI Toolkit for VS Code runs.",
)
@click.option(
    "--onnx",
    is_flag=True,
    help="Export a finished run (a local run folder, or a downloaded fine-tune output with --base-model) for "
    "onnxruntime-genai, with the greedy-token parity check.",
)
@click.option(
    "--precision", type=click.Choice(["int4", "int8", "fp16", "fp32"]), help="--onnx: default int4."
)
@click.option(
    "--execution-provider", type=click.Choice(["cpu", "cuda", "dml", "webgpu"]), help="--onnx: default cpu."
)
@click.option(
    "--adapters",
    type=click.Choice(["merged", "separate"]),
    help="--onnx: merged (default) bakes the adapter in; separate writes adapter.onnx_adapter beside the base.",
)
@click.option(
    "--min-token-agreement", type=float, help="--onnx: fail below this greedy-token agreement (default 1.0)."
)
@click.option(
    "--base-model", help="--onnx of a bare adapter folder: its base model (hf:<org>/<name> or a folder)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="--onnx: print the ONNX folder and parity report as JSON."
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
    destination: str | None,
    onnx: bool,
    precision: str | None,
    execution_provider: str | None,
    adapters: str | None,
    min_token_agreement: float | None,
    base_model: str | None,
    as_json: bool,
    overrides: tuple[str, ...],
    output: str | None,
    force: bool,
) -> None:
    """Export a spec to another tool's format (offline), or a finished run's model to ONNX Runtime.

    \b
    --to olive: SPEC -> DIR/olive-config.json (olive-ai 0.13), DIR/README.md, and the `olive run` line; what the
      workflow cannot say is an error naming the spec key, what it leaves out is a warning.
    --onnx: RUN (outputs/<job>/<run-id>, or its job folder) -> DIR (default RUN/onnx): onnxruntime-genai's
      model folder, adapter.onnx_adapter with --adapters separate, and parity.json. For an Azure ML job,
      download its fine-tune output (az ml job download -n JOB --output-name adapter) and pass that folder
      with --base-model.
    """
    onnx_flags = {
        "--precision": precision,
        "--execution-provider": execution_provider,
        "--adapters": adapters,
        "--min-token-agreement": min_token_agreement,
        "--base-model": base_model,
        "--json": as_json or None,
    }
    if onnx == (destination is not None):
        app.abort(
            "say what to export to: --to olive (a spec) or --onnx (a finished run), one of them: "
            f"azfinetune export {shlex.quote(spec)} --to olive, or azfinetune export RUN --onnx"
        )
    if onnx:
        if overrides or force:
            app.abort("--set and --force apply to --to olive, not to --onnx")
        from azfinetune.cli._export_onnx import export_run_onnx, onnx_settings

        settings = onnx_settings(precision, execution_provider, adapters, min_token_agreement)
        export_run_onnx(app, spec, settings, output=output, base_model=base_model, as_json=as_json)
        return
    given = [flag for flag, value in onnx_flags.items() if value is not None]
    if given:
        app.abort(f"{given[0]} applies to --onnx, not to --to olive")
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
