"""`azfinetune plan SPEC`: memory per GPU, fit, time and cost, and the alternatives — before paying."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from azfinetune.catalog import known_max_seq_length
from azfinetune.cli._app import Application
from azfinetune.cli._foundry_flags import price_option, print_foundry_plan
from azfinetune.data import validate_data
from azfinetune.errors import AzFineTuneError

if TYPE_CHECKING:
    from azfinetune.planner import Plan
    from azfinetune.spec import FineTuneSpec

GIB = 1024**3
#: Below this many columns the alternatives print as key/value blocks instead of a 12-column table.
_WIDE = 160
_VERDICT_STYLE = {
    "fits": ("green", "✓ fits"),
    "tight": ("yellow", "! fits, tight"),
    "does not fit": ("red", "✗ does not fit"),
    "unknown": ("cyan", "? fit unknown"),
}


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key, e.g. training.per_device_batch_size=2.",
)
@click.option(
    "--instance-type", metavar="VM_SIZE", help="Plan for this VM size instead of target.instance_type."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--no-data", is_flag=True, help="Do not read the data to count tokens (estimate from the file size)."
)
@click.option(
    "--exact-tokens",
    is_flag=True,
    help="Count tokens with the model's tokenizer (from the local cache; slower) instead of ~4 characters each.",
)
@click.option(
    "--model-config",
    "model_config",
    type=click.Path(exists=True),
    metavar="PATH",
    help="The model's config.json (or a folder with one), for a model the catalog does not know.",
)
@price_option
@click.pass_obj
def plan(
    app: Application,
    spec: str,
    overrides: tuple[str, ...],
    instance_type: str | None,
    as_json: bool,
    no_data: bool,
    exact_tokens: bool,
    price: float | None,
    model_config: str | None,
) -> None:
    """Memory per GPU, fit, training time and cost of SPEC, and the alternatives (technique × ZeRO × VM size)."""
    from azfinetune.planner import plan as make_plan
    from azfinetune.spec import load_spec

    loaded = load_spec(spec, overrides=list(overrides))
    if loaded.target.kind == "foundry":  # billed per trained token on Foundry's GPUs: tokens × epochs × rate
        print_foundry_plan(app, loaded, no_data=no_data, exact=exact_tokens, price=price, as_json=as_json)
        return
    report, note = (None, None) if no_data else _data_report(loaded, exact=exact_tokens)
    shape = None
    if model_config is not None:
        from azfinetune.planner import ModelShape

        shape = ModelShape.from_config_file(model_config, name=loaded.model)
    try:
        result = make_plan(loaded, data_report=report, sku=instance_type, model_shape=shape)
    except AzFineTuneError as error:
        # The planner's hints speak Python (model_shape=...); on the command line the flag does the same.
        if shape is None and "architecture" in error.message and "unknown" in error.message:
            raise type(error)(
                error.message,
                hint="give its config.json: azfinetune plan "
                f"{shlex.quote(spec)} --model-config PATH (a config.json or a model folder)",
            ) from None
        raise
    if note:
        result.warnings.append(note)
    if as_json:
        document = result.to_dict()
        document["value_sources"] = [item.to_dict() for item in _value_sources(loaded)]
        app.out.out(json.dumps(document, indent=2, default=str), highlight=False)
        return
    render_plan(app, result)
    render_value_sources(app, loaded)


def _data_report(spec: FineTuneSpec, *, exact: bool) -> tuple[Any, str | None]:
    """Token counts from the data validator, when the training file is local and the validator is installed.

    Without `exact` no tokenizer is loaded (importing transformers takes seconds; `plan` stays instant)
    and the validator counts ~4 characters per token of the text itself, JSON syntax left out.
    """
    ref = spec.data.train
    if spec.data.is_remote(ref):
        return None, None
    path = spec.resolve_path(ref)
    if not path.is_file():
        return None, None
    local_model = spec.target.kind == "local" and "/" in spec.model and not spec.model.startswith("hf:")
    model = (str(spec.resolve_path(spec.model)) if local_model else spec.model) if exact else None
    try:
        report = validate_data(
            path,
            task=spec.data_kind,
            model=model,
            max_seq_length=known_max_seq_length(spec.training.max_seq_length, spec.model),
            columns=spec.data.columns.as_dict() if spec.data.columns else None,
            serverless=spec.target.resources().billing == "serverless",
            epochs=spec.training.epochs,
        )
    except (AzFineTuneError, OSError, ValueError) as error:
        return None, f"could not count tokens in {Path(ref).name} ({error}); estimated from the file size"
    return report, None


# -- rendering -------------------------------------------------------------------------------------------


def _gib(value: float | None) -> str:
    return "—" if value is None else f"{value / GIB:.2f}"


def _count(value: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:.1f} h"


def _gpus(nodes: int, per_node: int, gpu: str | None) -> str:
    name = escape((gpu or "GPU").removeprefix("NVIDIA ").strip())
    return f"{nodes}×{per_node}× {name}" if nodes > 1 else f"{per_node}× {name}"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.01" if value < 0.01 else f"{value:,.2f}"


def render_plan(app: Application, result: Plan) -> None:
    out = app.out
    setup = result.setup
    technique = {"lora": "LoRA", "qlora": "QLoRA", "dora": "DoRA"}.get(result.technique, "full fine-tuning")
    if setup.uses_adapter:
        technique += f" r={setup.lora_r} on {', '.join(setup.target_modules)}"
    out.print(f"[bold]{escape(result.spec_name)}[/bold]: {escape(result.model)}, {escape(technique)}")
    share = result.trainable_parameters / result.parameters if result.parameters else 0.0
    checkpointing = "gradient checkpointing" if setup.gradient_checkpointing else "no gradient checkpointing"
    out.print(
        f"  {_count(result.parameters)} parameters, {_count(result.trainable_parameters)} trainable ({share:.2%}); "
        f"micro-batch {setup.micro_batch} × {setup.seq_len} tokens, {setup.precision}, {checkpointing}, "
        f"optimizer {setup.optimizer}, DeepSpeed {result.zero}"
    )
    if setup.objective != "sft":
        if setup.objective == "orpo":
            passes = "no reference model"
        elif setup.uses_adapter:
            passes = "+ a reference forward per step on the base with the adapter off (no copy)"
        elif setup.reference_copy:
            passes = "+ a reference forward per step on a frozen copy of the model"
        else:
            passes = "+ one reference forward over the data before training (precomputed)"
        out.print(
            f"  objective: {setup.objective}, chosen and rejected in each forward "
            f"({setup.micro_batch} pairs = {setup.micro_batch * 2} sequences per micro-batch), {passes}"
        )
    if result.sku:
        gpus = f"{result.nodes} node(s) × {result.gpus_per_node} GPU(s)"
        out.print(
            f"  target: {result.target_kind} on {gpus} of {escape(result.sku)} "
            f"({escape(result.gpu or '')}, {_gib(result.capacity)} GiB each)"
        )
    else:
        out.print(f"  target: {result.target_kind} (no VM size)")

    table = Table(title="Memory per GPU", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("item", overflow="fold")
    table.add_column("GiB", justify="right", overflow="fold")
    table.add_column("how", overflow="fold")
    for item in result.items:
        table.add_row(escape(item.name), _gib(item.bytes), escape(item.note))
    table.add_section()
    table.add_row("[bold]total[/bold]", f"[bold]{_gib(result.total)}[/bold]", "peak per GPU")
    if result.capacity is not None:
        table.add_row("GPU memory", _gib(result.capacity), escape(result.gpu or ""))
    out.print()
    out.print(table)
    style, label = _VERDICT_STYLE[result.verdict]
    if result.verdict == "unknown" and result.local_ram is not None:
        # A local run without a GPU size: the question is this machine's RAM, which the planner knows.
        fits_ram = result.allocated <= result.local_ram
        style, label = (
            ("green", "✓ fits this machine's RAM") if fits_ram else ("red", "✗ exceeds this machine's RAM")
        )
    if result.margin is not None and result.free_bytes is not None:
        free = (
            f" — {result.free_bytes / GIB:.1f} GiB free ({result.margin:.0%})"
            if result.free_bytes >= 0
            else (f" — {-result.free_bytes / GIB:.1f} GiB short")
        )
    else:
        free = ""
    out.print(f"[{style}]{label}[/{style}]{free}")
    if result.disk is not None:
        out.print(f"node disk: {escape(result.disk)} ({escape(result.disk_note or '')})")
    ram = f" of {_gib(result.cpu_ram_capacity)} GiB" if result.cpu_ram_capacity is not None else ""
    cpu_parts = ", ".join(f"{escape(i.name)} {_gib(i.bytes)}" for i in result.cpu_items)
    out.print(f"host RAM per node: {_gib(result.cpu_ram_needed)} GiB{ram} ({cpu_parts})")

    out.print()
    out.print("[bold]Time and cost[/bold]")
    tokens = result.token_estimate
    token_text = _count(tokens.tokens) if tokens.tokens is not None else "unknown"
    out.print(f"  tokens: {token_text} ({escape(tokens.source)})")
    if result.flops is not None:
        compute = f"  compute: {result.flops:.2e} FLOPs"
        if result.mfu is not None and result.peak_tflops is not None:
            compute += (
                f" at {result.mfu:.0%} MFU of {result.peak_tflops:g} TFLOPS × {result.world_size} GPU(s)"
            )
        out.print(compute)
    if result.hours is not None:
        out.print(
            f"  time: {_hours(result.hours)} ({result.gpu_hours or 0:.2f} GPU-hours, {result.vm_hours or 0:.2f} VM-hours)"
        )
    cost = f"{_usd(result.cost_usd)} USD" if result.cost_usd is not None else "—"
    out.print(f"  cost: {cost} ({escape(result.cost_note)})")

    alternatives = Table(
        title="Alternatives (technique × ZeRO × VM size)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for name in ("", "technique", "ZeRO", "GPUs", "VM size"):
        alternatives.add_column(name, overflow="fold")
    for name in ("trainable", "GiB/GPU", "free"):
        alternatives.add_column(name, justify="right", overflow="fold")
    alternatives.add_column("fits", justify="center", overflow="fold")
    for name in ("time", "USD"):
        alternatives.add_column(name, justify="right", overflow="fold")
    alternatives.add_column("what it buys", overflow="fold")
    rows = []
    for alt in result.alternatives:
        fits = (
            "?"
            if alt.fits is None
            else (
                "[green]✓[/green]"
                if alt.comfortable(result.assumptions.min_margin)
                else "[yellow]![/yellow]"
                if alt.fits
                else "[red]✗[/red]"
            )
        )
        free = "—" if alt.margin is None else f"{alt.margin:.0%}"
        rows.append(
            (
                escape(alt.role),
                alt.technique,
                escape(alt.zero),
                _gpus(alt.nodes, alt.gpus_per_node, alt.gpu),
                escape(alt.sku or "—"),
                _count(alt.trainable_parameters),
                _gib(alt.per_gpu_bytes),
                free,
                fits,
                _hours(alt.hours),
                _usd(alt.cost_usd),
                escape(alt.purpose),
            )
        )
    out.print()
    if out.width < _WIDE:
        # Too narrow for 12 columns: one block per alternative, a key and its whole value per line.
        out.print("[bold]Alternatives (technique × ZeRO × VM size)[/bold]")
        headers = [str(column.header) for column in alternatives.columns]
        for row in rows:
            out.print()
            for header, value in zip(headers, row, strict=True):
                out.print(f"  {header or 'role':<12} {value}")
    else:
        for row in rows:
            alternatives.add_row(*row)
        out.print(alternatives)

    if result.recommendations:
        out.print()
        out.print("[bold]Recommendations[/bold]")
        for line in result.recommendations:
            out.print(f"  • {escape(line)}")
    for warning in result.warnings:
        app.err.print(f"[yellow]warning:[/yellow] {escape(warning)}")


# -- where each value comes from (provenance) --------------------------------------------------------------

_SOURCE_STYLE = {
    "spec": "bold",
    "model asset": "magenta",
    "component default": "dim",
    "azfinetune default": "cyan",
    "service default": "dim",
    "derived": "green",
}


def _value_sources(spec: FineTuneSpec) -> list[Any]:
    from azfinetune.targets.provenance import value_sources

    return value_sources(spec)


def _shown(value: Any) -> str:
    if hasattr(value, "path") and hasattr(value, "type"):
        return f"{value.type}: {Path(str(value.path)).name}"
    if value is None:
        return "—"
    return str(value)


def render_value_sources(app: Application, spec: FineTuneSpec) -> None:
    """The job's settings, each with its effective value and where it comes from (spec, model asset, component
    default, azfinetune default, service default, derived); left-out ones show the default that applies."""
    items = _value_sources(spec)
    if not items:
        return
    table = Table(
        title="Values and where they come from", title_justify="left", show_edge=False, pad_edge=False
    )
    for name in ("setting", "value", "from", "spec key"):
        table.add_column(name, overflow="fold")
    for item in items:
        style = _SOURCE_STYLE.get(item.source, "")
        source = item.source if item.sent else f"{item.source} (not sent)"
        value = _shown(item.value) + (f" — {item.note}" if item.note else "")
        table.add_row(
            escape(item.name),
            escape(value),
            f"[{style}]{escape(source)}[/{style}]" if style else escape(source),
            escape(item.spec_key or ""),
        )
    app.out.print()
    app.out.print(table)
