"""`azfinetune import olive-config.json`: Olive workflows (olive-ai 0.13, and the AI Toolkit's legacy template) as
specs, every key not carried named; spec -> olive -> spec is lossless for what both express."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune.catalog import find_model
from azfinetune.interop import (
    OLIVE_DEFAULTS,
    OliveConfigError,
    fill_ai_toolkit_template,
    olive_to_spec,
    spec_to_olive,
)
from azfinetune.spec import FineTuneSpec, load_spec, spec_from_dict
from tests.conftest import EXAMPLES, checked
from tests.interop.conftest import DATA
from tests.interop.test_olive_export import EXPECTED, _load_example

TEMPLATE = DATA / "ai-toolkit-phi3"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the AI Toolkit project (the import writes nothing into tests/)."""
    return Path(shutil.copytree(TEMPLATE, tmp_path / "phi3-project"))


def test_the_ai_toolkit_template_imports_cleanly(cli: Any, project: Path, tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = cli("import", str(project / "finetuning" / "olive-config.json"), "-o", str(out))
    assert result.code == 0, result.err
    assert "AI Toolkit template: filling it from" in result.err and "error" not in result.err
    spec = checked(out)  # every offline check of `azfinetune validate`
    assert (spec.name, spec.task.value, spec.model) == (
        "phi-3-mini-4k-instruct-qlora",
        "text-completion",
        "phi-3-mini-4k-instruct",
    )
    assert (
        spec.resolve_path(spec.data.train).resolve()
        == (project / "dataset" / "dataset-classification.json").resolve()
    )
    assert spec.data.columns is not None and spec.data.columns.as_dict() == {
        "prompt": "phrase",
        "completion": "tone",
    }
    method, training = spec.method, spec.training
    assert (method.technique.value, method.lora.r, method.lora.alpha, method.lora.dropout) == (
        "qlora",
        64,
        64,
        0.1,
    )
    assert method.quantization is not None
    assert (method.quantization.type, method.quantization.double_quant) == ("nf4", True)
    assert (training.epochs, training.max_steps, training.learning_rate, training.seed) == (
        3,
        1200,
        0.0001,
        0,
    )
    assert (training.per_device_batch_size, training.gradient_accumulation_steps) == (1, 4)
    assert (training.max_seq_length, training.packing, training.precision.value) == (1024, True, "bf16")
    assert training.lr_scheduler.value == "constant"  # Olive's default: the template sets none
    assert spec.export is not None and spec.export.onnx is not None
    onnx = spec.export.onnx
    assert (onnx.precision, onnx.execution_provider, onnx.adapters) == ("fp16", "cuda", "separate")
    # Every key the spec does not carry is named, in the output file too.
    for key in (
        "passes.qlora.training_args.max_grad_norm",
        "passes.qlora.training_args.group_by_length",
        "passes.qlora.training_args.optim",
        "data_configs[0].pre_process_data_config.text_template",
        "data_configs[0].user_script",
        "input_model.model_path",
        "engine",
    ):
        assert f"warning: {key}:" in result.err
        assert f"#   {key}:" in out.read_text()


def test_a_template_needs_its_settings(cli: Any, tmp_path: Path) -> None:
    loose = tmp_path / "olive-config.json"
    shutil.copy(TEMPLATE / "finetuning" / "olive-config.json", loose)
    result = cli("import", str(loose))
    assert result.code == 2 and "--settings setup/project-settings.json" in result.err
    with_settings = cli(
        "import",
        str(loose),
        "--settings",
        str(TEMPLATE / "setup" / "project-settings.json"),
        "--run-dir",
        str(TEMPLATE),
    )
    assert with_settings.code == 0, with_settings.err
    assert yaml.safe_load(with_settings.out)["method"]["technique"] == "qlora"


def test_a_token_with_no_value_is_named() -> None:
    text = (TEMPLATE / "finetuning" / "olive-config.json").read_text()
    settings = json.loads((TEMPLATE / "setup" / "project-settings.json").read_text())
    settings[1]["fields"] = [f for f in settings[1]["fields"] if f["replaceToken"] != "<text_cols>"]
    with pytest.raises(ValueError, match="<text_cols>"):
        fill_ai_toolkit_template(text, settings)
    filled = json.loads(
        fill_ai_toolkit_template(text, json.loads((TEMPLATE / "setup" / "project-settings.json").read_text()))
    )
    load = filled["data_configs"][0]["load_dataset_config"]
    assert load == {
        "data_name": "json",
        "data_files": "dataset/dataset-classification.json",
        "split": "train",
    }
    template = filled["data_configs"][0]["pre_process_data_config"]["text_template"]
    assert (
        template == "<|user|>\n{phrase}<|end|>\n<|assistant|>\n{tone}<|end|>"
    )  # real newlines, as the toolkit's


# -- round trip -------------------------------------------------------------------------------------------------

#: Spec keys an Olive workflow does not express (export lists them as warnings).
NOT_EXPRESSED = {
    ("description",),
    ("target",),
    ("register",),
    ("environment",),
    ("secrets",),
    ("tags",),
    ("data", "test"),
    ("method", "quantization", "storage_dtype"),
    ("export", "onnx", "min_token_agreement"),
}


def _expressed(spec: FineTuneSpec, *, mask_prompt: bool) -> dict[str, Any]:
    data = spec.canonical_dict()
    for path in NOT_EXPRESSED:
        node = data
        for part in path[:-1]:
            node = node.get(part) or {}
        node.pop(path[-1], None)
    if not mask_prompt:
        data["training"].pop("mask_prompt")
    # The same adapter, however it is written: defaults filled in, auto/all-linear as the module names.
    lora = spec.method.effective_lora.model_dump()
    lora["target_modules"] = sorted(_modules(spec))
    data["method"]["lora"] = lora
    quantization = spec.method.effective_quantization
    data["method"]["quantization"] = (
        quantization.model_dump(exclude={"storage_dtype"}) if quantization else None
    )
    # Local paths: the same file, however it is written.
    for role in ("train", "validation"):
        if data["data"].get(role) and not spec.data.is_remote(data["data"][role]):
            data["data"][role] = str(spec.resolve_path(data["data"][role]).resolve())
    if spec.model.startswith((".", "/")):
        data["model"] = str(spec.resolve_path(spec.model).resolve())
    elif (info := find_model(spec.model)) is not None:
        data["model"] = info.alias  # hf:<id> of a catalog model and its alias are the same model
    return data


def _modules(spec: FineTuneSpec) -> set[str]:
    modules = spec.method.effective_lora.target_modules
    if isinstance(modules, list):
        return set(modules)
    info = find_model(spec.model)
    if info is None and spec.model.startswith((".", "/")):
        info = find_model("phi-3-mini-4k-instruct")  # the tiny local Phi-3 of quickstart.yaml
    assert info is not None, spec.model
    return set(info.lora_target_modules if modules == "auto" else info.linear_modules)


def _round_trip(spec: FineTuneSpec, tmp_path: Path) -> FineTuneSpec:
    run_dir = tmp_path / "olive"
    exported = json.loads(spec_to_olive(spec, out_dir=run_dir).text)  # through JSON, as written to disk
    imported = olive_to_spec(exported, run_dir=run_dir, spec_dir=spec.base_dir)
    return spec_from_dict(imported.spec, base_dir=spec.base_dir)


@pytest.mark.parametrize("name", sorted(n for n, refused in EXPECTED.items() if not refused))
def test_examples_round_trip(name: str, tmp_path: Path) -> None:
    spec = _load_example(name, tmp_path)
    back = _round_trip(spec, tmp_path)
    # Olive's loss covers every token: a masked spec comes back with mask_prompt false (export warns).
    assert _expressed(back, mask_prompt=False) == _expressed(spec, mask_prompt=False)


CASES = {
    "lora-everything": (
        "method: {technique: lora, lora: {r: 8, alpha: 24, dropout: 0.1, target_modules: [qkv_proj, o_proj]},"
        " optimizer: adamw_8bit}\n"
        "training: {epochs: 1.5, max_steps: 40, learning_rate: 1.0e-4, lr_scheduler: cosine_with_restarts,"
        " warmup_ratio: 0.2, per_device_batch_size: 2, gradient_accumulation_steps: 3, max_seq_length: 256,"
        " precision: fp32, gradient_checkpointing: false, packing: true, mask_prompt: false, seed: 11,"
        " logging_steps: 2, metric_for_best_model: loss, save_total_limit: 3}\n"
        "data: {train: train.jsonl, validation: train.jsonl}\n"
    ),
    "qlora-fp4": "method: {technique: qlora, quantization: {type: fp4, double_quant: false}}\n"
    "training: {mask_prompt: false, precision: fp16}\n",
    "dora-all-linear": "method: {technique: dora, lora: {target_modules: all-linear}}\ntraining: {mask_prompt: false}\n",
    "onnx-separate": "training: {mask_prompt: false}\n"
    "export: {onnx: {precision: fp16, execution_provider: cuda, adapters: separate}}\n",
    "onnx-merged-cpu": "training: {mask_prompt: false}\nexport: {onnx: {precision: int8, execution_provider: cpu}}\n",
    "hf-model": "model: hf:someone/small-model\nmethod: {lora: {target_modules: [q_proj, v_proj]}}\n"
    "training: {mask_prompt: false}\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_specs_round_trip_losslessly(case: str, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
        + "\n"
    )
    body = CASES[case]
    model = "" if body.startswith("model:") else "model: phi-3-mini-4k-instruct\n"
    data = "" if "data:" in body else "data: {train: train.jsonl}\n"
    (tmp_path / "spec.yaml").write_text(f"name: trip-{case}\n{model}{data}{body}")
    spec = load_spec(tmp_path / "spec.yaml")
    back = _round_trip(spec, tmp_path)
    assert _expressed(back, mask_prompt=True) == _expressed(spec, mask_prompt=True)


def test_text_completion_round_trips_with_its_columns(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "reply": f" a{i}"} for i in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "spec.yaml").write_text(
        "name: trip-text\ntask: text-completion\nmodel: phi-2\ndata: {train: train.jsonl, columns: "
        "{prompt: question, completion: reply}}\ntraining: {mask_prompt: false}\n"
    )
    spec = load_spec(tmp_path / "spec.yaml")
    back = _round_trip(spec, tmp_path)
    assert _expressed(back, mask_prompt=True) == _expressed(spec, mask_prompt=True)


# -- what does not map ------------------------------------------------------------------------------------------


def _workflow(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": "microsoft/Phi-3-mini-4k-instruct"},
        "data_configs": [
            {
                "name": "d",
                "type": "HuggingfaceContainer",
                "load_dataset_config": {"data_name": "json", "data_files": "train.jsonl", "split": "train"},
                "pre_process_data_config": {"chat_template": True, "max_seq_len": 512},
            }
        ],
        "passes": {"f": {"type": "LoRA", "train_data_config": "d"}},
    }
    for path, value in changes.items():
        node = config
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"passes": {"f": {"type": "LoftQ", "train_data_config": "d"}}}, "passes.f.type"),
        ({"passes": {"q": {"type": "OnnxQuantization"}}}, "passes"),
        ({"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}}, "input_model.type"),
        (
            {"data_configs__0__load_dataset_config": {"data_name": "nampdn-ai/tiny-codes", "split": "train"}},
            "data_configs[0].load_dataset_config.data_name",
        ),
        (
            {"data_configs__0__load_dataset_config__col_filters": {"language": "Python"}},
            "data_configs[0].load_dataset_config.col_filters",
        ),
        (
            {"data_configs__0__pre_process_data_config": {"text_template": "{a} {b} {c}"}},
            "data_configs[0].pre_process_data_config.text_template",
        ),
        (
            {"data_configs__0__pre_process_data_config": {"text_formatting_func": "fmt"}},
            "data_configs[0].pre_process_data_config.text_formatting_func",
        ),
        ({"passes__f__training_args": {"deepspeed": True}}, "passes.f.training_args.deepspeed"),
        ({"passes__f__alpha": 0.5}, "passes.f.alpha"),
    ],
)
def test_what_cannot_become_a_spec_is_an_error_naming_the_olive_key(
    changes: dict[str, Any], key: str, tmp_path: Path
) -> None:
    with pytest.raises(OliveConfigError) as caught:
        olive_to_spec(_workflow(**changes), run_dir=tmp_path, spec_dir=tmp_path)
    assert caught.value.paths == [key]


def test_a_value_out_of_the_specs_range_names_both_keys(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("{}\n")
    config = _workflow(passes__f__training_args={"learning_rate": 0.5})
    (tmp_path / "olive-config.json").write_text(json.dumps(config))
    result = cli("import", str(tmp_path / "olive-config.json"))
    assert result.code == 2, result.err
    assert "training.learning_rate" in result.err and "passes.f.training_args.learning_rate" in result.err


def test_legacy_and_current_names_import_alike(tmp_path: Path) -> None:
    current = _workflow(
        passes__f={
            "type": "LoRA",
            "r": 8,
            "alpha": 16,
            "train_data_config": "d",
            "training_args": {"eval_strategy": "steps", "warmup_steps": 0.1},
        },
        data_configs__0__pre_process_data_config={
            "chat_template": True,
            "max_seq_len": 300,
            "strategy": "line-by-line",
        },
    )
    legacy = _workflow(
        passes__f={
            "type": "LoRA",
            "config": {
                "lora_r": 8,
                "lora_alpha": 16,
                "train_data_config": "d",
                "training_args": {"evaluation_strategy": "steps", "warmup_ratio": 0.1},
            },
        },
        data_configs__0__pre_process_data_config={
            "type": "text_generation_huggingface_pre_process",
            "params": {"chat_template": True, "source_max_len": 300, "corpus_strategy": "line-by-line"},
        },
    )
    a = olive_to_spec(current, run_dir=tmp_path, spec_dir=tmp_path)
    b = olive_to_spec(legacy, run_dir=tmp_path, spec_dir=tmp_path)
    assert a.spec == b.spec and a.spec["training"]["max_seq_length"] == 300
    assert a.spec["model"] == "phi-3-mini-4k-instruct" and a.spec["method"]["lora"]["r"] == 8


def test_absent_keys_get_olives_defaults(tmp_path: Path) -> None:
    imported = olive_to_spec(_workflow(), run_dir=tmp_path, spec_dir=tmp_path)
    spec = spec_from_dict({**imported.spec, "name": "defaults"}, base_dir=tmp_path)
    assert (spec.method.lora.r, spec.method.lora.alpha, spec.method.lora.dropout) == (64, 16, 0.05)
    assert (spec.training.learning_rate, spec.training.lr_scheduler.value, spec.training.epochs) == (
        0.0002,
        "constant",
        3,
    )
    assert (spec.training.per_device_batch_size, spec.training.logging_steps, spec.training.packing) == (
        8,
        500,
        True,
    )
    assert spec.training.warmup_ratio == 0.0  # transformers 5 drops Olive's warmup_ratio default


def test_olive_defaults_are_the_installed_olives() -> None:
    """OLIVE_DEFAULTS against olive-ai's and transformers' own classes (a new release changing one fails here)."""
    pytest.importorskip("olive")
    import transformers
    from olive.data.component.text_generation import TextGenParams
    from olive.hardware.accelerator import AcceleratorSpec
    from olive.passes.pytorch.lora import HFTrainingArguments, LoRA, QLoRA, QLoRATrainingArguments

    accelerator = AcceleratorSpec(accelerator_type="cpu", execution_provider="CPUExecutionProvider")
    lora = LoRA.default_config(accelerator)
    qlora = QLoRA.default_config(accelerator)
    hf = {f.name: f.default for f in dataclasses.fields(transformers.TrainingArguments)}
    text = TextGenParams.model_fields
    found = {
        "r": lora["r"].default_value,
        "alpha": lora["alpha"].default_value,
        "lora_dropout": lora["lora_dropout"].default_value,
        "torch_dtype": lora["torch_dtype"].default_value,
        "quant_type": qlora["quant_type"].default_value,
        "double_quant": qlora["double_quant"].default_value,
        "learning_rate": HFTrainingArguments.model_fields["learning_rate"].default,
        "lr_scheduler_type": HFTrainingArguments.model_fields["lr_scheduler_type"].default,
        "warmup_ratio": HFTrainingArguments.model_fields["warmup_ratio"].default,
        "gradient_checkpointing": HFTrainingArguments.model_fields["gradient_checkpointing"].default,
        "qlora_optim": QLoRATrainingArguments.model_fields["optim"].default,
        "max_seq_len": text["max_seq_len"].default,
        "strategy": text["strategy"].default.value,
        "message_col": text["message_col"].default,
        "text_cols": text["text_cols"].default,
        **{
            key: hf[key]
            for key in (
                "num_train_epochs",
                "max_steps",
                "per_device_train_batch_size",
                "gradient_accumulation_steps",
                "seed",
                "logging_steps",
                "optim",
            )
        },
    }
    assert found == OLIVE_DEFAULTS
    # transformers 5 has no warmup_ratio: Olive's 0.03 is filtered out before TrainingArguments sees it.
    assert "warmup_ratio" not in hf
    args = HFTrainingArguments(output_dir="x").create_training_args()
    assert args.warmup_steps == 0


def test_every_example_exports_and_imports_from_disk(cli: Any, tmp_path: Path) -> None:
    """The commands end to end: export -o DIR, then import DIR/olive-config.json -o spec.yaml, then validate."""
    out = tmp_path / "olive"
    assert cli("export", str(EXAMPLES / "phi3-mini-qlora.yaml"), "--to", "olive", "-o", str(out)).code == 0
    spec_path = tmp_path / "back" / "spec.yaml"
    result = cli("import", str(out / "olive-config.json"), "-o", str(spec_path))
    assert result.code == 0, result.err
    back = checked(spec_path)
    assert back.name == "phi3-mini-support-qlora" and back.method.technique.value == "qlora"
    assert back.resolve_path(back.data.train).resolve() == (EXAMPLES / "data" / "chat-train.jsonl").resolve()
    assert cli("import", str(out / "olive-config.json"), "-o", str(spec_path)).code == 2  # exists
