"""`azfinetune export SPEC --to olive`: every example Olive can express becomes a workflow olive-ai 0.13 itself
accepts (RunConfig, each pass's config, TextGenParams, TrainingArguments); the others are refused by key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from azfinetune.errors import SpecError
from azfinetune.interop import spec_to_olive
from azfinetune.spec import load_spec
from tests.conftest import EXAMPLES
from tests.interop.conftest import olive_check

pytest.importorskip("olive", reason="olive-ai is in the dev extra")

#: Example -> the spec keys Olive cannot express (empty: it exports).
EXPECTED = {
    "foundry-gpt-4.1-mini-developer.yaml": ["model"],
    "foundry-llama-3.3-70b.yaml": ["model"],
    "foundry-ministral-3b.yaml": ["model"],
    "ner-token-classification.yaml": ["task"],
    "phi3-medium-dora-zero3.yaml": ["method.deepspeed"],
    "phi3-mini-dpo.yaml": ["method.objective"],
    "phi3-mini-kaito.yaml": [],
    "phi3-mini-lora.yaml": [],
    "phi3-mini-lora-onnx.yaml": [],
    "phi3-mini-orpo.yaml": ["method.objective"],
    "phi3-mini-qlora.yaml": [],
    "phi3-mini-serverless.yaml": [],
    "phi4-mini-finetuning-job.yaml": [],
    "phi4-mini-kaito.yaml": [],
    "phi4-mini-serverless.yaml": [],
    "pipeline-finetune-evaluate.yaml": [],
    "pipeline-finetune-export-onnx.yaml": [],
    "quickstart.yaml": [],
    "registry-chat-completion.yaml": ["method.deepspeed"],
    "registry-question-answering.yaml": ["task", "method.technique"],
    "registry-summarization.yaml": ["task", "method.technique"],
    "registry-text-generation.yaml": [],
    "registry-translation.yaml": ["task"],
    "text-classification.yaml": ["task"],
}


def test_the_table_names_every_example() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def _load_example(name: str, tmp_path: Path) -> Any:
    if name == "quickstart.yaml":
        # `azfinetune demo` writes its tiny Phi-3 there; the export reads only its config.json (model_type).
        model = tmp_path / "model"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "phi3"}))
        return load_spec(EXAMPLES / name, overrides={"model": str(model)})
    return load_spec(EXAMPLES / name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_export_or_are_refused_by_key(name: str, tmp_path: Path) -> None:
    spec = _load_example(name, tmp_path)
    out = tmp_path / "out"
    if EXPECTED[name]:
        with pytest.raises(SpecError) as caught:
            spec_to_olive(spec, out_dir=out)
        assert caught.value.paths == EXPECTED[name]
        assert all(issue.line is not None for issue in caught.value.issues), caught.value
        return
    result = spec_to_olive(spec, out_dir=out)
    run_config = olive_check(json.loads(result.text))
    (training_pass,) = run_config.passes[spec.method.technique.value]
    assert training_pass.type == spec.method.technique.value  # olive lowercases the pass type
    assert training_pass.config["r"] == spec.method.effective_lora.r
    assert training_pass.config["training_args"]["learning_rate"] == spec.training.learning_rate
    # The data paths are relative to the folder the workflow is written to (and run from).
    for data_config in result.config["data_configs"]:
        files = data_config["load_dataset_config"]["data_files"]
        role = data_config["name"]
        reference = spec.data.files()[role]
        if spec.data.is_remote(reference):  # an https:// file (the Kaito examples'): Olive downloads it as is
            assert files == reference
            continue
        assert (out / files).resolve() == spec.resolve_path(reference).resolve()


def _spec(tmp_path: Path, body: str, rows: list[dict[str, Any]] | None = None) -> Any:
    data = tmp_path / "train.jsonl"
    rows = rows or [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: olive-case\nmodel: phi-3-mini-4k-instruct\ndata: {{train: train.jsonl}}\n{body}")
    return load_spec(path)


def _export(spec: Any, tmp_path: Path) -> dict[str, Any]:
    config = spec_to_olive(spec, out_dir=tmp_path / "out").config
    olive_check(config)
    return config


def test_onnx_merged_on_cpu_is_a_model_builder_pass(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "export: {onnx: {precision: int4, execution_provider: cpu}}\n")
    config = _export(spec, tmp_path)
    assert list(config["passes"]) == ["lora", "builder"]
    assert config["passes"]["builder"] == {"type": "ModelBuilder", "precision": "int4"}
    (accelerator,) = config["systems"]["local_system"]["accelerators"]
    assert accelerator == {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}


def test_onnx_separate_on_cuda_extracts_the_adapter(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path, "export: {onnx: {precision: fp16, execution_provider: cuda, adapters: separate}}\n"
    )
    config = _export(spec, tmp_path)
    assert list(config["passes"]) == ["lora", "builder", "adapters"]
    assert config["passes"]["adapters"]["save_format"] == "onnx_adapter"
    assert config["systems"]["local_system"]["accelerators"][0]["execution_providers"] == [
        "CUDAExecutionProvider"
    ]


def test_onnx_fp16_on_cpu_is_what_olive_refuses(tmp_path: Path) -> None:
    """The checker fails where Olive would: ModelBuilder's own validate_config refuses fp16 on the CPU EP."""
    spec = _spec(tmp_path, "export: {onnx: {precision: int4, execution_provider: cpu}}\n")
    config = spec_to_olive(spec, out_dir=tmp_path / "out").config
    config["passes"]["builder"]["precision"] = "fp16"
    with pytest.raises(AssertionError, match="ModelBuilder refuses"):
        olive_check(config)


def test_the_checker_refuses_a_bad_pass_value_and_an_unknown_training_argument(tmp_path: Path) -> None:
    config = spec_to_olive(_spec(tmp_path, ""), out_dir=tmp_path / "out").config
    bad = json.loads(json.dumps(config))
    bad["passes"]["lora"]["r"] = "sixteen"
    with pytest.raises(Exception, match="r"):
        olive_check(bad)
    bad = json.loads(json.dumps(config))
    bad["passes"]["lora"]["training_args"]["epochs"] = 3
    with pytest.raises(AssertionError, match="epochs"):
        olive_check(bad)


def test_qlora_dora_and_training_settings_map(tmp_path: Path) -> None:
    qlora = _spec(
        tmp_path,
        "method: {technique: qlora, quantization: {type: fp4, double_quant: false}, optimizer: paged_adamw_8bit}\n"
        "training: {precision: fp16, packing: true, max_seq_length: 512, lr_scheduler: linear, warmup_ratio: 0.1,"
        " seed: 7, logging_steps: 3, max_steps: 20, save_total_limit: 2}\n",
    )
    config = _export(qlora, tmp_path)
    qpass = config["passes"]["qlora"]
    assert (qpass["type"], qpass["quant_type"], qpass["double_quant"]) == ("QLoRA", "fp4", False)
    assert qpass["torch_dtype"] == qpass["compute_dtype"] == "float16"
    args = qpass["training_args"]
    assert args["optim"] == "paged_adamw_8bit" and args["lr_scheduler_type"] == "linear"
    assert (args["seed"], args["logging_steps"], args["max_steps"], args["save_total_limit"]) == (7, 3, 20, 2)
    assert args["warmup_steps"] == 0.1  # transformers 5: below 1, a share of the steps
    pre = config["data_configs"][0]["pre_process_data_config"]
    assert (pre["strategy"], pre["max_seq_len"], pre["chat_template"]) == ("join", 512, True)

    dora = _spec(tmp_path, "method: {technique: dora, lora: {r: 8, alpha: 16, target_modules: [qkv_proj]}}\n")
    dpass = _export(dora, tmp_path)["passes"]["dora"]
    assert (dpass["type"], dpass["r"], dpass["alpha"], dpass["target_modules"]) == (
        "DoRA",
        8,
        16,
        ["qkv_proj"],
    )


def test_text_completion_prompt_and_completion_become_a_template(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "reply": f" a{i}"} for i in range(4)]
    spec = _spec(
        tmp_path,
        "task: text-completion\ntraining: {mask_prompt: false}\n",
        rows,
    )
    spec = load_spec(spec.source, overrides={"data.columns": {"prompt": "question", "completion": "reply"}})
    config = _export(spec, tmp_path)
    pre = config["data_configs"][0]["pre_process_data_config"]
    assert pre["text_template"] == "{question}{reply}"


def test_text_completion_columns_are_read_from_the_data(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "task: text-completion\n", [{"text": f"t{i}"} for i in range(4)])
    result = spec_to_olive(spec, out_dir=tmp_path / "out")
    olive_check(result.config)
    assert result.config["data_configs"][0]["pre_process_data_config"]["text_cols"] == ["text"]
    assert "training.mask_prompt" not in [note.path for note in result.notes]  # one text column: no prompt


def test_notes_name_what_the_workflow_leaves_out(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        "description: demo\ntags: {team: a}\nregister: {model_name: m}\n"
        "target: {kind: command, compute: gpu, instance_type: Standard_NC24ads_A100_v4}\n",
    )
    paths = [note.path for note in spec_to_olive(spec, out_dir=tmp_path).notes]
    assert paths == ["training.mask_prompt", "target", "description", "register", "tags"]
    assert all(note.severity == "warning" for note in spec_to_olive(spec, out_dir=tmp_path).notes)


@pytest.mark.parametrize(
    ("model", "train", "extra", "key"),
    [
        ("azureml:my-model:1", "train.jsonl", "", "model"),
        ("phi-3-mini-4k-instruct", "azureml:chat-data:1", "", "data.train"),
        (
            "hf:someone/unknown-model",
            "train.jsonl",
            "training: {max_seq_length: auto}",
            "training.max_seq_length",
        ),
        (
            "hf:someone/unknown-model",
            "train.jsonl",
            "method: {lora: {target_modules: all-linear}}",
            "method.lora.target_modules",
        ),
    ],
)
def test_what_olive_cannot_read_is_refused_by_key(
    model: str, train: str, extra: str, key: str, tmp_path: Path
) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": []}) + "\n")
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: olive-case\nmodel: {model}\ndata: {{train: '{train}'}}\n{extra}\n")
    with pytest.raises(SpecError) as caught:
        spec_to_olive(load_spec(path), out_dir=tmp_path)
    assert caught.value.paths == [key]


# -- the command ------------------------------------------------------------------------------------------------


def test_export_command_writes_the_workflow_readme_and_prints_the_run_line(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "phi3-olive"
    result = cli("export", str(EXAMPLES / "phi3-mini-lora.yaml"), "--to", "olive", "-o", str(out))
    assert result.code == 0, result.err
    config = json.loads((out / "olive-config.json").read_text())
    olive_check(config)
    assert result.out.strip() == (
        f"cd {out} && OLIVE_DISABLE_TELEMETRY=1 CI=1 olive run --config olive-config.json --disable_telemetry"
    )
    readme = (out / "README.md").read_text()
    assert "OLIVE_DISABLE_TELEMETRY=1 CI=1 olive run --config olive-config.json" in readme
    assert "olive-ai==0.13.0" in readme and "`register`" in readme
    assert "warning:" in result.err and "register" in result.err
    # A second export into the same folder is fine (it is ours) ...
    assert cli("export", str(EXAMPLES / "phi3-mini-lora.yaml"), "--to", "olive", "-o", str(out)).code == 0


def test_export_command_refuses_by_key_and_never_overwrites_a_foreign_folder(
    cli: Any, tmp_path: Path
) -> None:
    refused = cli(
        "export", str(EXAMPLES / "text-classification.yaml"), "--to", "olive", "-o", str(tmp_path / "x")
    )
    assert refused.code == 2
    assert "text-classification.yaml:4:1: task:" in refused.err and "Traceback" not in refused.err
    assert not (tmp_path / "x").exists()

    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "olive-config.json").write_text("{}")
    args = ["export", str(EXAMPLES / "phi3-mini-lora.yaml"), "--to", "olive", "-o", str(foreign)]
    result = cli(*args)
    assert result.code == 2 and "did not write it" in result.err
    assert (foreign / "olive-config.json").read_text() == "{}"
    assert cli(*args, "--force").code == 0
    assert json.loads((foreign / "olive-config.json").read_text())["workflow_id"] == "phi3-mini-support-lora"


def test_export_needs_a_destination(cli: Any) -> None:
    result = cli("export", str(EXAMPLES / "phi3-mini-lora.yaml"))
    assert result.code == 2 and "--to" in result.err
