"""export.onnx's offline rules that need the catalog and the target: onnxruntime-genai's model builder must know
the model's architecture, the task must be a causal language model's, and the job must run our code."""

from __future__ import annotations

from collections.abc import Iterator

from azfinetune.catalog import find_model
from azfinetune.errors import Issue
from azfinetune.spec import FineTuneSpec, OnnxExportSpec, Task

__all__ = [
    "EXPORT_MODULE",
    "GENERATIVE_TASKS",
    "ONNX_OUTPUT",
    "onnx_export_args",
    "onnx_export_issues",
    "onnx_model_name",
]

#: Tasks whose model is a causal language model: the ones the builder exports and parity can decode.
GENERATIVE_TASKS = frozenset({Task.CHAT_COMPLETION, Task.TEXT_COMPLETION})


def onnx_export_issues(spec: FineTuneSpec, *, runs_our_code: bool) -> Iterator[Issue]:
    """Problems of the spec's export.onnx section (none when the spec has none)."""
    export = getattr(spec, "export", None)
    onnx = getattr(export, "onnx", None)
    if onnx is None:
        return
    if not runs_our_code:
        yield Issue(
            "export.onnx",
            f"target.kind {spec.target.kind} runs Azure's own training code, which has no export step",
            hint="remove export.onnx and run `azfinetune export JOB --onnx` once the job has finished",
        )
    if spec.task not in GENERATIVE_TASKS:
        yield Issue(
            "export.onnx",
            f"onnxruntime-genai exports causal language models; task {spec.task.value} is not one",
            hint="export.onnx works with task chat-completion or text-completion; remove it for this task",
        )
        return
    if onnx.adapters == "separate" and not spec.method.uses_adapter:
        yield Issue(
            "export.onnx.adapters",
            f"adapters: separate keeps a LoRA adapter apart from the base graph; method.technique "
            f"{spec.method.technique.value} trains no adapter",
            hint="use export.onnx.adapters: merged (the fine-tuned model is exported whole)",
        )
    if spec.target.kind == "pipeline" and spec.register is not None and spec.register.min_eval:
        yield Issue(
            "export.onnx",
            f"the ONNX model is registered as {onnx_model_name(spec.register.model_name)} whenever its export "
            "passes the parity check: register.min_eval gates the MLflow model only",
            severity="warning",
        )
    info = find_model(spec.model)
    if info is not None and not info.onnx_genai_builder:
        kind = info.architecture.model_type if info.architecture else "unknown"
        yield Issue(
            "export.onnx",
            f"onnxruntime-genai's model builder does not export {info.alias} (architecture {kind})",
            hint="remove export.onnx, or fine-tune a model the builder supports (Phi-3, Phi-4, Llama, Mistral)",
        )


#: The export step's module in the job's code folder (jobs/src/export_onnx).
EXPORT_MODULE = "export_onnx"
#: The job output (command job) / step output (pipeline) that holds the onnxruntime-genai model folder.
ONNX_OUTPUT = "onnx_model"


def onnx_model_name(model_name: str) -> str:
    """The registered name of the ONNX model beside register.model_name's MLflow model."""
    return f"{model_name}-onnx"


def onnx_export_args(
    spec: FineTuneSpec | OnnxExportSpec,
    *,
    base_model: str,
    adapter: str | None,
    output_dir: str,
    validation: str | None = None,
) -> list[str]:
    """The export step's command line (after `python -m export_onnx`) for a spec's export.onnx section (or an
    OnnxExportSpec, as `azfinetune export RUN --onnx` builds from its flags)."""
    if isinstance(spec, OnnxExportSpec):
        onnx: OnnxExportSpec | None = spec
    else:
        onnx = spec.export.onnx if spec.export is not None else None
    if onnx is None:
        raise ValueError("the spec has no export.onnx section")
    args = ["--base-model", base_model, "--output-dir", output_dir]
    if adapter is not None:
        args += ["--adapter", adapter]
    if validation is not None:
        args += ["--validation", validation]
    args += [
        "--precision", onnx.precision,
        "--execution-provider", onnx.execution_provider,
        "--adapters", onnx.adapters,
        "--min-token-agreement", repr(onnx.min_token_agreement),
    ]  # fmt: skip
    return args
