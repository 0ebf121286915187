"""`azfinetune demo`: the quickstart tour — validate, plan, build, train locally, and compare replies."""

from __future__ import annotations

import importlib.util
import shlex
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.rule import Rule

from azfinetune.cli._app import Application
from azfinetune.errors import DataError


@click.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Quickstart spec (default jobs/examples/quickstart.yaml).",
)
@click.option(
    "--outputs", type=click.Path(file_okay=False, path_type=Path), help="Outputs root (default ./outputs)."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec key.")
@click.pass_obj
def demo(app: Application, spec_path: Path | None, outputs: Path | None, overrides: tuple[str, ...]) -> None:
    """Fine-tune a tiny Phi-3 on this machine, end to end, in a few minutes (about 4 on a busy 2-core machine) — no Azure account."""
    import yaml

    from azfinetune.cli.plan import render_plan
    from azfinetune.cli.run import run_spec
    from azfinetune.local import check_train_extra
    from azfinetune.planner import plan
    from azfinetune.quickstart import (
        DEMO_PROMPT,
        generate_reply,
        next_command,
        quickstart_spec_path,
        write_quickstart_assets,
    )
    from azfinetune.targets import build_job, check_spec, export_job

    started = time.perf_counter()
    check_train_extra()
    spec_path = spec_path or quickstart_spec_path()
    raw = yaml.safe_load(spec_path.read_text())
    folder = spec_path.resolve().parent
    model_dir = (folder / raw["model"]).resolve()
    train_file = (folder / raw["data"]["train"]).resolve()
    valid = raw["data"].get("validation")
    validation_file = (folder / valid).resolve() if valid else None

    app.out.print(Rule("1. a tiny Phi-3 and a chat dataset"))
    write_quickstart_assets(model_dir, train_file, validation_file)
    app.out.print(f"model: {escape(str(model_dir))}\ndata:  {escape(str(train_file))}")

    app.out.print(Rule(f"2. azfinetune validate {spec_path.name}"))
    report = check_spec(spec_path, overrides=list(overrides))
    for warning in report.warnings:
        app.issue(warning)
    report.raise_for_errors()
    spec = report.spec
    for role, data_report in report.data_reports.items():
        if not data_report.ok:
            raise DataError(f"data.{role}: {data_report.summary()}", report=data_report)
        app.out.print(f"data.{role}: {escape(data_report.summary())}")
        if data_report.warning_counts.get("duplicate_example"):
            app.out.print(
                "  (the demo's generated chats repeat a few template conversations on purpose; in your own data a "
                "duplicate weighs that example more: `azfinetune data validate FILE` lists each one)"
            )
    app.out.print(
        f"[green]✓[/green] spec ok: {spec.name} — {spec.method.technique.value} on {escape(spec.model)}"
    )

    app.out.print(Rule("3. azfinetune plan"))
    the_plan = plan(spec, data_report=report.data_reports.get("train"))
    render_plan(app, the_plan)

    app.out.print(Rule("4. azfinetune build --format yaml (the Azure ML job this spec becomes)"))
    job_yaml = export_job(build_job(spec), "yaml", base_dir=spec.base_dir)
    # Raw, not through rich: a wrapped or cut line would corrupt the job YAML (copying it must work).
    click.echo(job_yaml, nl=not job_yaml.endswith("\n"))

    app.out.print(Rule("5. azfinetune run --local"))
    result = run_spec(app, spec, outputs=outputs, allow_download=False)
    assert result is not None
    adapter_dir = result.adapter_dir

    app.out.print(Rule("6. the fine-tuned model answers"))
    question = DEMO_PROMPT[0]["content"]
    before = generate_reply(model_dir, DEMO_PROMPT)
    after = generate_reply(model_dir, DEMO_PROMPT, adapter_dir=adapter_dir)
    app.out.print(f"user:       {escape(question)}")
    app.out.print(f"base model: {escape(before)!r}")
    app.out.print(f"fine-tuned: {escape(after)!r}")

    if importlib.util.find_spec("onnxruntime_genai") is None:
        app.out.print(
            "(ONNX Runtime: install azfinetune[onnx] and the demo also exports the model for onnxruntime-genai)"
        )
    else:
        from azfinetune.local import export_finished_run, find_finished_run
        from azfinetune.quickstart import generate_reply_onnx
        from azfinetune.spec import OnnxExportSpec

        app.out.print(
            Rule(f"7. azfinetune export {result.run_dir.name} --onnx (onnxruntime-genai, fp32, CPU)")
        )
        onnx_dir, parity = export_finished_run(
            find_finished_run(result.run_dir), OnnxExportSpec(precision="fp32", execution_provider="cpu")
        )
        onnx_reply = generate_reply_onnx(onnx_dir, adapter_dir, DEMO_PROMPT)
        app.out.print(f"ONNX model: {escape(str(onnx_dir))} (built in {parity['export_seconds']:.0f} s)")
        app.out.print(f"PyTorch:           {escape(after)!r}")
        app.out.print(f"onnxruntime-genai: {escape(onnx_reply)!r}")
        app.out.print(
            f"greedy tokens agree with PyTorch's merged model: {parity['token_agreement']:.0%} over "
            f"{parity['prompts']} validation prompts"
        )
    app.out.print(Rule())
    plan_line = shlex.join(next_command(spec_path))
    app.out.print(
        f"[green]✓[/green] quickstart done in {time.perf_counter() - started:.0f} s. Next: the same job on "
        f"Azure ML (a catalog Phi-3-mini on serverless A100s), planned offline:\n  {escape(plan_line)}\n"
        "then `submit` instead of `plan` (add --subscription/--resource-group/--workspace); for your own data "
        "copy the spec and point data.train at it.",
        soft_wrap=True,
    )
