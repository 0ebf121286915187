"""export.onnx in the spec: provider × precision, the catalog's builder architectures, tasks and targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from azfinetune.catalog import list_models
from azfinetune.spec import load_spec
from tests.conftest import checked, refused

BASE = """\
name: onnx-spec
model: {model}
task: {task}
data:
  train: train.jsonl
target:
  kind: {kind}
export:
  onnx:
    precision: {precision}
    execution_provider: {provider}
    adapters: separate
"""


def _write(
    write_spec,
    *,
    model="phi-3-mini-4k-instruct",
    task="chat-completion",
    kind="local",
    precision="int4",
    provider="cpu",
) -> Path:  # type: ignore[no-untyped-def]
    return write_spec(BASE.format(model=model, task=task, kind=kind, precision=precision, provider=provider))


def test_the_section_loads_with_its_defaults(write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = checked(_write(write_spec))
    assert spec.export is not None and spec.export.onnx is not None
    assert (spec.export.onnx.precision, spec.export.onnx.adapters) == ("int4", "separate")
    assert spec.export.onnx.min_token_agreement == 1.0
    assert (
        load_spec(write_spec("name: x\nmodel: phi-3-mini-4k-instruct\ndata: {train: train.jsonl}\n")).export
        is None
    )


@pytest.mark.parametrize(("provider", "precision"), [("cpu", "fp16"), ("cuda", "int8"), ("webgpu", "int8")])
def test_a_provider_precision_pair_that_does_not_exist_names_file_and_line(
    write_spec, provider: str, precision: str
) -> None:  # type: ignore[no-untyped-def]
    path = _write(write_spec, provider=provider, precision=precision)
    error = refused(path)
    text = str(error)
    assert "export.onnx" in text and f"precision {precision}" in text and provider in text
    assert str(path.name) in text and ":9" in text  # the `onnx:` mapping's line


def test_every_catalog_model_says_whether_the_builder_exports_it() -> None:
    models = {m.alias: m for m in list_models()}
    assert models["phi-4-mini-instruct"].onnx_genai_builder
    assert models["phi-3-mini-4k-instruct"].onnx_genai_builder
    assert not models["bert-base-uncased"].onnx_genai_builder
    for model in models.values():
        if model.onnx_genai_builder:
            assert model.architecture is not None


def test_an_architecture_the_builder_cannot_export_is_refused(write_spec) -> None:  # type: ignore[no-untyped-def]
    error = refused(_write(write_spec, model="gpt-oss-20b"))
    assert "does not export gpt-oss-20b" in str(error) and "export.onnx" in str(error)


def test_a_task_that_is_not_a_causal_lm_is_refused(write_spec) -> None:  # type: ignore[no-untyped-def]
    error = refused(_write(write_spec, task="text-classification"))
    assert "causal language models" in str(error)


def test_azures_own_training_code_has_no_export_step(write_spec) -> None:  # type: ignore[no-untyped-def]
    spec_text = BASE.format(
        model="phi-4-mini-instruct",
        task="chat-completion",
        kind="serverless",
        precision="int4",
        provider="cpu",
    )
    error = refused(write_spec(spec_text))
    assert "azfinetune export JOB --onnx" in str(error)


def test_min_token_agreement_is_a_share(write_spec) -> None:  # type: ignore[no-untyped-def]
    text = (
        BASE.format(
            model="phi-3-mini-4k-instruct",
            task="chat-completion",
            kind="local",
            precision="fp32",
            provider="cpu",
        )
        + "    min_token_agreement: 1.5\n"
    )
    assert "min_token_agreement" in str(refused(write_spec(text)))
