"""`azfinetune export RUN --onnx`: a finished local run's model for onnxruntime-genai, checked token for token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape

from azfinetune.cli._app import Application
from azfinetune.errors import UserInputError

__all__ = ["export_run_onnx", "onnx_settings"]


def onnx_settings(
    precision: str | None,
    execution_provider: str | None,
    adapters: str | None,
    min_token_agreement: float | None,
) -> Any:
    """The flags as an OnnxExportSpec (the spec's own rules: provider x precision), or a usage error (exit 2)."""
    from pydantic import ValidationError

    from azfinetune.spec import OnnxExportSpec, spec_error_from_validation

    given = {
        "precision": precision,
        "execution_provider": execution_provider,
        "adapters": adapters,
        "min_token_agreement": min_token_agreement,
    }
    try:
        return OnnxExportSpec(**{key: value for key, value in given.items() if value is not None})
    except ValidationError as error:
        # The spec's own messages for export.onnx, each under the flag that set the key (a cross-key rule, the
        # provider x precision pairs, has no key: --precision names it).
        issue = spec_error_from_validation(error, OnnxExportSpec).issues[0]
        flag = "--" + (issue.path.split(".")[0] or "precision").replace("_", "-")
        raise UserInputError(
            f"{flag}: {issue.message}", hint=issue.hint or "see `azfinetune export --help`"
        ) from None


def export_run_onnx(
    app: Application,
    source: str,
    onnx: Any,
    *,
    output: str | None,
    base_model: str | None,
    as_json: bool,
) -> None:
    """Export `source`: a local run folder (outputs/<job>/<run-id>, or its job folder: the newest run), or a
    fine-tune output folder (an Azure ML job's downloaded `adapter` output) with --base-model."""
    from azfinetune.local import export_finished_run, find_finished_run

    path = Path(source)
    if not path.exists():
        raise UserInputError(
            f"no local run or model folder at {source}",
            hint="give a run folder under outputs/<job-name>/ (the folder `azfinetune run SPEC --local` printed); "
            "for an Azure ML job, download its `adapter` output first (`az ml job download`, output name adapter), "
            "then export <download folder>/named-outputs/adapter with --base-model hf:<org>/<name>",
        )
    run = find_finished_run(path, base_model=base_model)
    app.err.print(
        f"exporting {escape(str(run.run_dir))} for onnxruntime-genai ({onnx.precision}, {onnx.execution_provider}, "
        f"adapters {onnx.adapters}); log: {escape(str(run.run_dir / 'logs' / 'export_onnx.log'))}"
    )
    folder, report = export_finished_run(run, onnx, output_dir=Path(output) if output else None)
    if as_json:
        app.out.print_json(json.dumps({"onnx_model": str(folder), "parity": report}))
        return
    agreement = float(report.get("token_agreement", 0.0))
    app.out.print(f"ONNX model: {escape(str(folder))}")
    if report.get("adapter_file"):
        app.out.print(f"adapter: {escape(str(folder / str(report['adapter_file'])))} (load with og.Adapters)")
    app.out.print(
        f"greedy tokens agree with PyTorch's merged model: {agreement:.1%} over {report.get('prompts')} prompts "
        f"(required {float(report.get('min_token_agreement', 1.0)):.0%}); export took "
        f"{float(report.get('export_seconds', 0.0)):.0f} s"
    )
