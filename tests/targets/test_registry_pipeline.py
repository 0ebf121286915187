"""Registry pipelines: the contract test against the registry's component specs, the spec mapping, errors."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune import __version__
from azfinetune.errors import BuildError, SpecError
from azfinetune.spec import load_spec, spec_from_dict
from azfinetune.targets import build_job
from azfinetune.targets._pipeline_export import pipeline_rest_body, pipeline_yaml_dict
from azfinetune.targets._registry_components import (
    SPECS_DIR,
    TASK_COMPONENTS,
    check_component_version,
    component_id,
    contract,
    list_contracts,
    load_registry_component,
)
from azfinetune.targets.registry_pipeline import (
    DEFAULTS_PROPERTY,
    NODE_NAME,
    SOURCES_PROPERTY,
    build_registry_pipeline_job,
    input_sources,
    is_user_set,
    registry_pipeline_issues,
    registry_pipeline_plan,
)
from tests.conftest import refused

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots"
REFERENCE = ROOT.parent / "shared" / "reference" / "azureml-registry-components"
UPDATE = os.environ.get("UPDATE_SNAPSHOT") == "1"
REGISTRY_EXAMPLES = (
    "registry-chat-completion",
    "registry-text-generation",
    "text-classification",
    "ner-token-classification",
    "registry-question-answering",
    "registry-summarization",
    "registry-translation",
)
ASSET_TYPES = {"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable"}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of jobs/examples, so generated files (DeepSpeed configs) never land in the repository."""
    target = tmp_path / "jobs" / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".azfinetune"))
    return target


def chat_file(path: Path, n: int = 12) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            messages = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


def rows_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def make_spec(tmp_path: Path, **changes: Any) -> Any:
    """A registry-pipeline chat spec on Phi-3-mini; `a__b=value` sets data["a"]["b"] (None removes it).

    train.jsonl is a small chat file unless the test wrote its own first."""
    if not (tmp_path / "train.jsonl").exists():
        chat_file(tmp_path / "train.jsonl")
    data: dict[str, Any] = {
        "name": "unit-registry",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "train.jsonl"},
        "target": {
            "kind": "registry-pipeline",
            "compute": "gpu-a100",
            "instance_type": "Standard_NC24ads_A100_v4",
        },
    }
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return spec_from_dict(data, base_dir=tmp_path)


def node_inputs(job: Any) -> dict[str, Any]:
    """What the job's registry node really carries: name -> literal value or Input."""
    node = job.jobs[NODE_NAME]
    return {name: value._data for name, value in node.inputs.items() if value._data is not None}


def contract_violations(component_yaml: Path, values: dict[str, Any]) -> list[str]:
    """An independent reading of a registry component spec: declared names, types, enums, required inputs."""
    declared: dict[str, dict[str, Any]] = yaml.safe_load(component_yaml.read_text())["inputs"]
    problems = []
    for name, value in values.items():
        spec = declared.get(name)
        if spec is None:
            problems.append(f"{name}: not declared")
            continue
        kind = spec.get("type", "string")
        if kind in ASSET_TYPES:
            if getattr(value, "type", None) != kind:
                problems.append(
                    f"{name}: {kind} expected, got {getattr(value, 'type', type(value).__name__)}"
                )
        elif kind == "string":
            if not isinstance(value, str):
                problems.append(f"{name}: string expected, got {value!r}")
            elif "enum" in spec and value not in [str(v) for v in spec["enum"]]:
                problems.append(f"{name}: {value!r} not in {spec['enum']}")
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name}: integer expected, got {value!r}")
            elif "min" in spec and value < spec["min"]:
                problems.append(f"{name}: {value} below {spec['min']}")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{name}: number expected, got {value!r}")
        else:
            problems.append(f"{name}: unexpected declared type {kind}")
        if (
            spec.get("enum")
            and sorted(map(str, spec["enum"])) == ["false", "true"]
            and value not in ("true", "false")
        ):
            problems.append(f"{name}: booleans are the strings 'true'/'false', got {value!r}")
    for name, spec in declared.items():
        if not spec.get("optional", False) and name not in values:
            problems.append(f"{name}: required and not passed")
    return problems


def contract_specs(tmp_path: Path) -> list[tuple[str, Any]]:
    """Specs that exercise every mapping branch: each task, each technique, DeepSpeed shapes, computes."""
    for folder in ("zero1", "off", "ds0", "ort", "hf", "sl", "pin", "med", "ms"):
        (tmp_path / folder).mkdir()
    specs: list[tuple[str, Any]] = []
    for example in REGISTRY_EXAMPLES:
        specs.append((example, load_spec(EXAMPLES / f"{example}.yaml")))
    specs += [
        ("zero1", make_spec(tmp_path / "zero1", method={"deepspeed": {"stage": 1}})),
        (
            "offload",
            make_spec(tmp_path / "off", method={"deepspeed": {"stage": 3, "offload_optimizer": True}}),
        ),
        (
            "no-deepspeed",
            make_spec(tmp_path / "ds0", method={"technique": "full", "deepspeed": {"stage": 0}}),
        ),
        ("ort", make_spec(tmp_path / "ort", target__apply_ort=True, training={"precision": "fp32"})),
        ("hf-chat", make_spec(tmp_path / "hf", model="hf:microsoft/Phi-3-mini-4k-instruct")),
        ("serverless", make_spec(tmp_path / "sl", target__compute="serverless", target__nodes=2)),
        ("pinned", make_spec(tmp_path / "pin", target__component_version="0.0.82")),
        ("medium-defaults", make_spec(tmp_path / "med", model="phi-3-medium-4k-instruct")),
        ("max-steps", make_spec(tmp_path / "ms", training={"max_steps": 50, "epochs": 1.5})),
    ]
    return specs


def normalized(job: Any, base_dir: Path) -> dict[str, Any]:
    body = pipeline_rest_body(job, base_dir=base_dir)
    tags = body["properties"]["tags"]
    assert tags["azfinetune.version"] == __version__
    tags["azfinetune.version"] = "<version>"
    return body


# -- the shipped specs are the reference ---------------------------------------------------------------


def test_shipped_specs_are_the_registry_reference() -> None:
    shipped = sorted(p.name for p in SPECS_DIR.glob("*.spec.yaml"))
    assert len(shipped) == 8
    assert {c.name for c in list_contracts()} >= set(TASK_COMPONENTS.values()) | {"chat_completion_finetune"}
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is not on this machine")
    assert shipped == sorted(p.name for p in REFERENCE.glob("*.yaml"))
    for name in shipped:
        assert (SPECS_DIR / name).read_bytes() == (REFERENCE / name).read_bytes(), name


def test_contracts_read_the_declarations() -> None:
    chat = contract("chat_completion_pipeline")
    assert chat.version == "0.0.82" and chat.type == "pipeline"
    assert chat.required == ["task_name"]
    assert chat.inputs["deepspeed_stage"].enum == ("2", "3")
    assert chat.inputs["mlflow_model_path"].type == "mlflow_model"
    assert chat.inputs["num_nodes_finetune"].min == 1
    classification = contract("text_classification_pipeline")
    assert set(classification.required) == {"task_name", "sentence1_key", "label_key"}
    assert contract("translation_pipeline").inputs["source_lang"].required
    with pytest.raises(BuildError, match="ships no spec"):
        contract("image_classification_pipeline")


def test_every_task_has_a_component_and_an_example() -> None:
    tasks = {load_spec(EXAMPLES / f"{e}.yaml").task.value for e in REGISTRY_EXAMPLES}
    assert tasks == set(TASK_COMPONENTS)
    kinds = {
        p.stem: (yaml.safe_load(p.read_text()).get("target") or {}).get("kind")
        for p in EXAMPLES.glob("*.yaml")
    }
    assert sorted(n for n, k in kinds.items() if k == "registry-pipeline") == sorted(REGISTRY_EXAMPLES)


def test_components_load_offline() -> None:
    for name in TASK_COMPONENTS.values():
        component = load_registry_component(name)
        assert component.name == name and "task_name" in component.inputs


# -- the contract test ----------------------------------------------------------------------------------


def test_every_input_we_pass_is_declared_typed_and_valid(tmp_path: Path) -> None:
    checked = set()
    for label, spec in contract_specs(tmp_path):
        job = build_job(spec)
        name = TASK_COMPONENTS[spec.task.value]
        values = node_inputs(job)
        assert contract_violations(SPECS_DIR / f"{name}.spec.yaml", values) == [], label
        assert contract(name).problems(values) == [], label
        node = job.jobs[NODE_NAME]
        assert node.component.startswith(f"azureml://registries/azureml/components/{name}/"), label
        # Literals go over the wire as strings; booleans exactly "true"/"false".
        body = job._to_rest_object().as_dict()["properties"]["jobs"][NODE_NAME]["inputs"]
        for key, value in body.items():
            if contract(name).inputs[key].enum == ("true", "false"):
                assert value["value"] in ("true", "false"), (label, key)
        checked.add(spec.task.value)
    assert checked == set(TASK_COMPONENTS)


def test_contract_check_catches_every_kind_of_violation() -> None:
    from azure.ai.ml import Input

    chat = contract("chat_completion_pipeline")
    problems = chat.problems(
        {
            "apply_lora": True,
            "lora_r": "8",
            "deepspeed_stage": "1",
            "num_nodes_finetune": 0,
            "learning_rate": "fast",
            "train_file_path": Input(type="uri_folder", path="data/"),
            "nonsense": 1,
        }
    )
    text = "\n".join(problems)
    for fragment in (
        "apply_lora: declared type string",
        "lora_r: declared type integer",
        "deepspeed_stage: '1' is not one of 2, 3",
        "num_nodes_finetune: 0 is below the minimum 1",
        "learning_rate: declared type number",
        "train_file_path: declared type uri_file",
        "nonsense: not an input",
        "task_name: required",
    ):
        assert fragment in text


# -- the mapping ----------------------------------------------------------------------------------------


def test_chat_example_maps_every_setting(examples: Path) -> None:
    spec = load_spec(examples / "registry-chat-completion.yaml")
    job = build_job(spec)
    values = node_inputs(job)
    assert values["task_name"] == "ChatCompletion"
    assert (
        values["mlflow_model_path"].path
        == "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"
    )
    assert Path(values["train_file_path"].path) == examples / "data" / "chat-train.jsonl"
    assert Path(values["validation_file_path"].path) == examples / "data" / "chat-valid.jsonl"
    # What the spec sets is sent as written.
    assert (values["apply_lora"], values["lora_r"], values["lora_alpha"], values["lora_dropout"]) == (
        "true",
        8,
        16,
        0.1,
    )
    assert (values["apply_deepspeed"], values["deepspeed_stage"]) == ("true", "2")
    assert (values["num_train_epochs"], values["per_device_train_batch_size"], values["max_seq_length"]) == (
        1,
        1,
        2048,
    )
    # What it leaves unset comes from Phi-3-mini's registry asset (azureml-assets model_specific_defaults) ...
    assert values["learning_rate"] == 5e-6 and values["lr_scheduler_type"] == "cosine"
    assert (values["gradient_accumulation_steps"], values["save_total_limit"], values["precision"]) == (
        1,
        1,
        "16",
    )
    assert (values["logging_strategy"], values["logging_steps"]) == ("steps", 10)
    # ... or is not sent at all, so the component's own default applies.
    for name in ("optim", "warmup_steps", "merge_lora_weights", "seed", "metric_for_best_model", "max_steps"):
        assert name not in values, name
    assert "learning_rate_min" not in values and "learning_rate_max" not in values  # the asset's, not inputs
    for step in ("model_import", "preprocess", "finetune", "model_evaluation"):
        assert values[f"compute_{step}"] == "gpu-a100"
        assert f"instance_type_{step}" not in values  # a named cluster ignores instance types
    assert values["number_of_gpu_to_use_finetuning"] == 1 and "num_nodes_finetune" not in values
    assert "huggingface_id" not in values
    rest = job._to_rest_object().as_dict()["properties"]
    # The samples' way: the node's MLflow model is the pipeline output trained_model, which registers it.
    assert (
        rest["jobs"][NODE_NAME]["outputs"]["mlflow_model_folder"]["value"]
        == "${{parent.outputs.trained_model}}"
    )
    assert rest["outputs"]["trained_model"] == {
        "assetName": "phi3-mini-registry-chat",
        "jobOutputType": "mlflow_model",
        "mode": "ReadWriteMount",
    }
    assert job.settings.force_rerun is False and job.settings.continue_on_step_failure is False
    assert job.properties["azfinetune.registered_model_name"] == "phi3-mini-registry-chat"
    sources = json.loads(job.properties[SOURCES_PROPERTY])
    assert (sources["lora_r"], sources["learning_rate"], sources["optim"]) == (
        "spec",
        "model asset",
        "component default",
    )


def test_provenance_names_every_value_and_its_source(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, training={"learning_rate": 1e-5, "max_seq_length": "auto"})
    by_name = {item.name: item for item in input_sources(spec)}
    assert (by_name["learning_rate"].value, by_name["learning_rate"].source) == (1e-5, "spec")
    assert by_name["learning_rate"].spec_key == "training.learning_rate"
    assert (by_name["max_seq_length"].value, by_name["max_seq_length"].source) == (-1, "spec")  # auto
    assert (by_name["num_train_epochs"].value, by_name["num_train_epochs"].source) == (1, "model asset")
    lora_r = by_name["lora_r"]
    assert (lora_r.value, lora_r.source, lora_r.sent) == (8, "component default", False)
    assert (by_name["seed"].value, by_name["seed"].sent) == (42, False)
    assert by_name["number_of_gpu_to_use_finetuning"].source == "derived"
    order = [item.name for item in input_sources(spec)]
    declared = list(contract("chat_completion_pipeline").inputs)
    assert order == sorted(order, key=declared.index)


def test_new_training_fields_reach_the_component(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        data__validation="train.jsonl",
        training={"metric_for_best_model": "loss", "save_total_limit": 3, "max_seq_length": "auto"},
    )
    values = node_inputs(build_job(spec))
    assert (values["metric_for_best_model"], values["save_total_limit"], values["max_seq_length"]) == (
        "loss",
        3,
        -1,
    )
    # Per-task metrics: the component's enum decides.
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, training={"metric_for_best_model": "f1_macro"}))
    assert "training.metric_for_best_model" in caught.value.paths
    assert "loss, f1, exact" in str(caught.value)
    rows_file(tmp_path / "cls.jsonl", [{"text": f"t{i}", "label": str(i % 2)} for i in range(12)])
    classify = make_spec(
        tmp_path,
        task="text-classification",
        model="bert-base-uncased",
        data__train="cls.jsonl",
        training={"metric_for_best_model": "f1_macro"},
    )
    assert node_inputs(build_job(classify))["metric_for_best_model"] == "f1_macro"


def test_chat_082_inputs(tmp_path: Path) -> None:
    (tmp_path / "ft-config.json").write_text('{"chat_special_tokens": []}')
    spec = make_spec(
        tmp_path,
        model="hf:microsoft/Phi-3-mini-4k-instruct",
        target__finetune_config_path="ft-config.json",
        target__trust_remote_code=True,
    )
    values = node_inputs(build_job(spec))
    assert values["trust_remote_code"] == "true"
    assert values["finetune_config_path"].type == "uri_file"
    assert Path(values["finetune_config_path"].path) == tmp_path / "ft-config.json"
    assert values["huggingface_id"] == "microsoft/Phi-3-mini-4k-instruct"
    # An hf: model fine-tunes the Hugging Face weights: no asset defaults, and a note about the config file.
    assert "learning_rate" not in values
    note = build_job(make_spec(tmp_path, model="hf:microsoft/Phi-3-mini-4k-instruct")).properties[
        "azfinetune.notes"
    ]
    assert "finetune_config_path" in note
    # Only chat_completion_pipeline 0.0.82 declares them.
    rows_file(tmp_path / "tg.jsonl", [{"text": f"p{i}", "ground_truth": f"c{i}"} for i in range(12)])
    with pytest.raises(SpecError) as caught:
        build_job(
            make_spec(
                tmp_path,
                task="text-completion",
                model="phi-2",
                data__train="tg.jsonl",
                target__trust_remote_code=False,
            )
        )
    assert "target.trust_remote_code" in caught.value.paths and "0.0.82" in str(caught.value)
    with pytest.raises(SpecError) as missing:
        build_job(make_spec(tmp_path, target__finetune_config_path="nope.json"))
    assert "target.finetune_config_path" in missing.value.paths


def test_evaluation_config_and_force_rerun(tmp_path: Path) -> None:
    (tmp_path / "eval.json").write_text("{}")
    job = build_job(make_spec(tmp_path, target__evaluation_config="eval.json", target__force_rerun=True))
    assert node_inputs(job)["evaluation_config"].type == "uri_file"
    assert job.settings.force_rerun is True


def test_task_specific_columns(examples: Path) -> None:
    expected = {
        "text-classification": {
            "sentence1_key": "text",
            "label_key": "label",
            "task_name": "SingleLabelClassification",
        },
        "ner-token-classification": {
            "token_key": "tokens",
            "tag_key": "ner_tags",
            "task_name": "NamedEntityRecognition",
        },
        "registry-text-generation": {
            "text_key": "text",
            "ground_truth_key": "ground_truth",
            "task_name": "TextGeneration",
        },
        "registry-question-answering": {
            "question_key": "question",
            "context_key": "context",
            "answers_key": "answers",
            "answer_start_key": "answer_start",
            "answer_text_key": "text",
        },
        "registry-summarization": {"document_key": "document", "summary_key": "summary"},
        "registry-translation": {"source_lang": "en", "target_lang": "ro", "task_name": "Translation"},
    }
    for example, wanted in expected.items():
        values = node_inputs(build_job(load_spec(examples / f"{example}.yaml")))
        assert {k: values.get(k) for k in wanted} == wanted, example
    assert "sentence2_key" not in node_inputs(build_job(load_spec(examples / "text-classification.yaml")))


def test_columns_named_in_the_spec_win_and_are_checked_against_the_file(tmp_path: Path) -> None:
    rows_file(
        tmp_path / "train.jsonl",
        [{"review": f"r{i}", "other": f"o{i}", "stars": str(i % 2)} for i in range(12)],
    )
    base = {"task": "text-classification", "model": "bert-base-uncased", "data__train": "train.jsonl"}
    spec = make_spec(
        tmp_path, **base, data__columns={"text": "review", "text_pair": "other", "label": "stars"}
    )
    values = node_inputs(build_job(spec))
    assert (values["sentence1_key"], values["sentence2_key"], values["label_key"]) == (
        "review",
        "other",
        "stars",
    )

    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, **base, data__columns={"label": "stars"}))
    assert "data.columns.text" in caught.value.paths
    assert "no column 'text'" in str(caught.value) and "review" in str(caught.value)


def test_text_completion_reads_prompt_completion_files(tmp_path: Path) -> None:
    rows_file(tmp_path / "train.jsonl", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(12)])
    values = node_inputs(build_job(make_spec(tmp_path, task="text-completion", model="phi-2")))
    assert (values["text_key"], values["ground_truth_key"]) == ("prompt", "completion")


def test_translation_needs_its_language_columns(tmp_path: Path) -> None:
    rows_file(tmp_path / "train.jsonl", [{"source": f"s{i}", "target": f"t{i}", "id": i} for i in range(12)])
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, task="translation", model="t5-small"))
    assert "source_lang" in str(caught.value) and "target_lang" in str(caught.value)
    assert "data.columns.source_lang" in caught.value.paths

    rows_file(tmp_path / "train.jsonl", [{"de": f"d{i}", "en": f"e{i}"} for i in range(12)])
    values = node_inputs(build_job(make_spec(tmp_path, task="translation", model="t5-small")))
    assert (values["source_lang"], values["target_lang"]) == ("de", "en")  # file order: source first


def test_columns_the_component_cannot_take_are_refused(tmp_path: Path) -> None:
    # A column the task does not have: refused when the spec is read (the contract's table).
    with pytest.raises(SpecError, match=r"data\.columns\.label: chat-completion has no 'label' column"):
        build_job(make_spec(tmp_path, data__columns={"label": "x"}))
    # A column of the task that the component takes no input for: refused by the registry pipeline's rules.
    with pytest.raises(SpecError, match=r"no column input that data\.columns\.messages"):
        build_job(make_spec(tmp_path, data__columns={"messages": "conversation"}))


def test_catalog_defaults_apply_only_where_the_user_left_values_unset(tmp_path: Path) -> None:
    medium = build_job(
        make_spec(
            tmp_path, model="phi-3-medium-4k-instruct", target__instance_type="Standard_NC96ads_A100_v4"
        )
    )
    values = node_inputs(medium)
    # Phi-3-medium's registry asset: no LoRA, DeepSpeed stage 3, fp16, batch 4 x 4, 4096 tokens.
    assert (values["apply_lora"], values["apply_deepspeed"], values["deepspeed_stage"]) == (
        "false",
        "true",
        "3",
    )
    assert (values["per_device_train_batch_size"], values["gradient_accumulation_steps"]) == (4, 4)
    assert values["max_seq_length"] == 4096
    assert "lora_r" not in values and "merge_lora_weights" not in values
    applied = json.loads(medium.properties[DEFAULTS_PROPERTY])
    assert (
        applied["apply_lora"] == "false"
        and applied["deepspeed_stage"] == "3"
        and applied["precision"] == "16"
    )
    assert applied["learning_rate"] == "5e-6"  # the asset's own text
    assert medium.tags["azfinetune.technique"] == "full"

    chosen = build_job(
        make_spec(
            tmp_path,
            model="phi-3-medium-4k-instruct",
            method={"technique": "lora", "deepspeed": {"stage": 2}},
            training={"precision": "fp32", "per_device_batch_size": 2, "max_seq_length": 1024},
        )
    )
    values = node_inputs(chosen)
    assert (values["apply_lora"], values["deepspeed_stage"], values["precision"]) == ("true", "2", "32")
    assert (values["per_device_train_batch_size"], values["max_seq_length"]) == (2, 1024)
    applied = json.loads(chosen.properties[DEFAULTS_PROPERTY])
    for key in (
        "apply_lora",
        "deepspeed_stage",
        "precision",
        "per_device_train_batch_size",
        "max_seq_length",
    ):
        assert key not in applied
    assert chosen.tags["azfinetune.technique"] == "lora"

    # LoRA settings without a technique still say "LoRA"; a model outside the catalog has no defaults.
    lora_only = node_inputs(
        build_job(make_spec(tmp_path, model="phi-3-medium-4k-instruct", method={"lora": {"r": 4}}))
    )
    assert lora_only["apply_lora"] == "true" and lora_only["lora_r"] == 4 and "lora_alpha" not in lora_only
    hf = build_job(make_spec(tmp_path, model="hf:someone/some-model"))
    assert json.loads(hf.properties[DEFAULTS_PROPERTY]) == {}
    hf_values = node_inputs(hf)
    assert hf_values["huggingface_id"] == "someone/some-model"
    # Nothing set, nothing from an asset: only what the job needs is sent; the component decides the rest.
    assert "apply_lora" not in hf_values and "learning_rate" not in hf_values and "precision" not in hf_values


def test_asset_defaults_that_break_the_contract_are_not_sent(tmp_path: Path) -> None:
    rows_file(tmp_path / "cls.jsonl", [{"text": f"t{i}", "label": str(i % 2)} for i in range(12)])
    job = build_job(
        make_spec(
            tmp_path,
            task="text-classification",
            model="llama-2-7b",
            data__train="cls.jsonl",
            target__instance_type="Standard_NC48ads_A100_v4",
        )
    )
    values = node_inputs(job)
    assert "precision" not in values  # Llama-2-7b's asset says "4"; the enum is "32", "16"
    assert values["apply_lora"] == "true" and values["apply_deepspeed"] == "false"
    assert (
        "precision '4'" in job.properties["azfinetune.notes"] or "'4'" in job.properties["azfinetune.notes"]
    )


def test_asset_rules_tasks_and_computes(tmp_path: Path) -> None:
    from azfinetune.targets import target_issues

    rows_file(tmp_path / "cls.jsonl", [{"text": f"t{i}", "label": str(i % 2)} for i in range(12)])
    refused_task = make_spec(tmp_path, task="text-classification", data__train="cls.jsonl")
    error = refused(refused_task)
    issue = next(i for i in error.issues if i.path == "task")
    assert "lists fine-tuning for chat-completion, not text-classification" in issue.message
    assert (
        issue.hint is not None
        and "hf:microsoft/Phi-3-mini-4k-instruct" in issue.hint
        and "command" in issue.hint
    )
    # The same model by its Hugging Face id is imported, not the asset: no refusal.
    checked_spec = make_spec(
        tmp_path,
        task="text-classification",
        data__train="cls.jsonl",
        model="hf:microsoft/Phi-3-mini-4k-instruct",
    )
    assert not [i for i in target_issues(checked_spec) if i.is_error]
    # A VM size outside the asset's allow-list is a warning that names the list.
    outside = make_spec(tmp_path, target__instance_type="Standard_ND40rs_v2")
    warning = next(i for i in target_issues(outside) if i.path == "target.instance_type")
    assert not warning.is_error and "Standard_NC24ads_A100_v4" in (warning.hint or "")
    assert not [i for i in target_issues(make_spec(tmp_path)) if i.path == "target.instance_type"]


def test_is_user_set_follows_the_spec_text(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, method={"lora": {"r": 4}})
    assert is_user_set(spec, "method.lora") and is_user_set(spec, "method.lora.r")
    assert not is_user_set(spec, "method.technique") and not is_user_set(spec, "training.precision")


def test_deepspeed_shapes(tmp_path: Path) -> None:
    stage3 = node_inputs(build_job(make_spec(tmp_path, method={"deepspeed": {"stage": 3}})))
    assert (stage3["apply_deepspeed"], stage3["deepspeed_stage"]) == (
        "true",
        "3",
    ) and "deepspeed" not in stage3

    stage0 = node_inputs(build_job(make_spec(tmp_path, method={"deepspeed": {"stage": 0}})))
    assert stage0["apply_deepspeed"] == "false" and "deepspeed_stage" not in stage0

    for method in ({"deepspeed": {"stage": 1}}, {"deepspeed": {"stage": 2, "offload_optimizer": True}}):
        spec = make_spec(tmp_path, method=method)
        values = node_inputs(build_job(spec))
        assert values["apply_deepspeed"] == "true" and "deepspeed_stage" not in values
        config_file = Path(values["deepspeed"].path)
        assert (
            values["deepspeed"].type == "uri_file"
            and config_file.parent == tmp_path / ".azfinetune" / "deepspeed"
        )
        config = json.loads(config_file.read_text())
        assert config["zero_optimization"]["stage"] == method["deepspeed"]["stage"]


def test_onnxruntime_is_passed_with_a_note(tmp_path: Path) -> None:
    job = build_job(make_spec(tmp_path, target__apply_ort=True))
    assert node_inputs(job)["apply_ort"] == "true"
    assert "no effect" in job.properties["azfinetune.notes"]
    default = build_job(make_spec(tmp_path))
    assert node_inputs(default)["apply_ort"] == "false"  # Phi-3-mini's asset
    assert "no effect" not in default.properties.get("azfinetune.notes", "")
    assert "apply_ort" not in node_inputs(build_job(make_spec(tmp_path, model="hf:someone/some-model")))


def test_serverless_and_cpu_computes(tmp_path: Path) -> None:
    values = node_inputs(build_job(make_spec(tmp_path, target__compute="serverless", target__nodes=2)))
    for step in ("model_import", "preprocess", "finetune", "model_evaluation"):
        assert values[f"compute_{step}"] == "serverless"
        assert values[f"instance_type_{step}"] == "Standard_NC24ads_A100_v4"
    assert values["num_nodes_finetune"] == 2 and values["number_of_gpu_to_use_finetuning"] == 1

    # target.cpu_* (validated for target.kind pipeline) move the CPU steps when set on a registry spec.
    spec = make_spec(tmp_path)
    for cpu in ({"cpu_compute": "cpu-cluster"}, {"cpu_instance_type": "Standard_E4s_v3"}):
        patched = spec.model_copy(update={"target": spec.target.model_copy(update=cpu)})
        values = registry_pipeline_plan(patched).inputs
        expected = cpu.get("cpu_compute", "serverless")
        assert values["compute_model_import"] == values["compute_preprocess"] == expected
        assert values["compute_finetune"] == "gpu-a100"
        assert values.get("instance_type_preprocess") == cpu.get("cpu_instance_type")


def test_gpus_per_node_from_the_spec_or_the_sku(tmp_path: Path) -> None:
    four = make_spec(tmp_path, target__instance_type="Standard_NC96ads_A100_v4")
    assert node_inputs(build_job(four))["number_of_gpu_to_use_finetuning"] == 4
    two = make_spec(tmp_path, target__instance_type="Standard_NC96ads_A100_v4", target__gpus_per_node=2)
    assert node_inputs(build_job(two))["number_of_gpu_to_use_finetuning"] == 2
    unknown = make_spec(tmp_path, target__instance_type=None)
    assert "number_of_gpu_to_use_finetuning" not in node_inputs(build_job(unknown))


def test_warmup_ratio_becomes_steps(tmp_path: Path) -> None:
    chat_file(tmp_path / "valid.jsonl", 10)
    chat_file(tmp_path / "train.jsonl", 1000)
    spec = make_spec(
        tmp_path,
        data__validation="valid.jsonl",
        training={
            "epochs": 2,
            "per_device_batch_size": 4,
            "gradient_accumulation_steps": 2,
            "warmup_ratio": 0.1,
        },
        target__instance_type="Standard_NC48ads_A100_v4",
    )
    chat_file(tmp_path / "train.jsonl", 1000)
    # 1000 examples / (4 per GPU * 2 GPUs) = 125 micro-batches / 2 = 63 steps per epoch, 126 steps, 10% -> 13.
    assert node_inputs(build_job(spec))["warmup_steps"] == 13
    assert (
        node_inputs(build_job(make_spec(tmp_path, training={"max_steps": 200, "warmup_ratio": 0.05})))[
            "warmup_steps"
        ]
        == 10
    )
    assert node_inputs(build_job(make_spec(tmp_path, training={"warmup_ratio": 0})))["warmup_steps"] == 0

    remote = make_spec(tmp_path, data__train="azureml:chat-train:3")
    assert "warmup_steps" not in node_inputs(build_job(remote))
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, data__train="azureml:chat-train:3", training={"warmup_ratio": 0.1}))
    assert "training.warmup_ratio" in caught.value.paths


def test_component_reference_latest_or_pinned(tmp_path: Path) -> None:
    latest = build_job(make_spec(tmp_path))
    assert latest.jobs[NODE_NAME].component == component_id("chat_completion_pipeline")
    assert latest.jobs[NODE_NAME].component.endswith("/components/chat_completion_pipeline/labels/latest")
    pinned = build_job(make_spec(tmp_path, target__component_version="0.0.83"))
    assert pinned.jobs[NODE_NAME].component.endswith("/components/chat_completion_pipeline/versions/0.0.83")
    assert pinned.properties["azfinetune.component_contract"] == "chat_completion_pipeline@0.0.82"


# -- bad input: a clear error before anything is sent ---------------------------------------------------


@pytest.mark.parametrize("version", ["0.0.81", "0.0.5", "0.1.0", "1.0.0"])
def test_unknown_component_versions_are_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, target__component_version=version))
    assert "target.component_version" in caught.value.paths
    assert "unknown to azfinetune" in str(caught.value) and "0.0.82" in str(caught.value)


def test_component_version_checks(tmp_path: Path) -> None:
    assert check_component_version("text_classification_pipeline", "latest") == "latest"
    assert check_component_version("text_classification_pipeline", "0.0.80") == "0.0.80"
    assert check_component_version("text_classification_pipeline", "0.0.95") == "0.0.95"
    with pytest.raises(BuildError, match="not a component version"):
        check_component_version("text_classification_pipeline", "v0.0.80")
    with pytest.raises(SpecError, match="component_version"):
        make_spec(tmp_path, target__component_version="newest")


@pytest.mark.parametrize("technique", ["qlora", "dora"])
def test_techniques_the_registry_cannot_do_are_spec_errors(tmp_path: Path, technique: str) -> None:
    error = refused(make_spec(tmp_path, method={"technique": technique}))
    assert error.paths == ["method.technique"]
    kinds = "local, command, pipeline or kaito" if technique == "qlora" else "local, command or pipeline"
    assert f"use target.kind {kinds} for {technique}" in str(error)


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"training": {"lr_scheduler": "inverse_sqrt"}}, "training.lr_scheduler", "no inverse_sqrt schedule"),
        ({"method": {"optimizer": "paged_adamw_8bit"}}, "method.optimizer", "no paged_adamw_8bit optimizer"),
        ({"training": {"packing": True}}, "training.packing", "does not pack"),
        ({"training": {"epochs": 1.5}}, "training.epochs", "whole epochs"),
        (
            {"method": {"lora": {"target_modules": ["qkv_proj"]}}},
            "method.lora.target_modules",
            "target modules",
        ),
        ({"secrets": {"HF_TOKEN": "keyvault://vault1/hf-token"}}, "secrets", "Key Vault"),
        ({"register": {"model_name": "m", "min_eval": {"eval_loss": "<= 1"}}}, "register.min_eval", "gate"),
        ({"target__compute": "serverless", "target__instance_type": None}, "target.instance_type", "VM size"),
    ],
)
def test_settings_the_registry_cannot_honour(
    tmp_path: Path, changes: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, **changes))
    assert path in caught.value.paths and fragment in str(caught.value)
    assert next(i for i in caught.value.issues if i.path == path).hint is not None


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, training={"packing": True, "lr_scheduler": "inverse_sqrt"}))
    assert caught.value.paths == ["training.lr_scheduler", "training.packing"]
    assert caught.value.message.startswith("2 problems in the spec")


def test_serverless_cpu_steps_need_a_vm_size(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    patched = spec.model_copy(update={"target": spec.target.model_copy(update={"cpu_compute": "serverless"})})
    assert [i.path for i in registry_pipeline_issues(patched)] == ["target.cpu_instance_type"]


def test_no_network_is_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build never calls the service: any HTTP request from azure-core would fail the test."""
    from azure.core.pipeline.transport import RequestsTransport

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the build sent an HTTP request")

    monkeypatch.setattr(RequestsTransport, "send", refuse)
    job = build_job(make_spec(tmp_path, method={"deepspeed": {"stage": 1}}))
    job._validate()
    job._to_rest_object()


# -- export and snapshots -------------------------------------------------------------------------------


@pytest.mark.parametrize("example", REGISTRY_EXAMPLES)
def test_example_roundtrips_through_load_job(example: str, examples: Path, tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    job = build_registry_pipeline_job(load_spec(examples / f"{example}.yaml"))
    assert job._validate().passed
    out = tmp_path / "export"
    out.mkdir()
    path = out / "job.yaml"
    path.write_text(yaml.safe_dump(pipeline_yaml_dict(job, base_dir=out), sort_keys=False))
    assert str(tmp_path) not in path.read_text()  # portable: relative paths only
    loaded = load_job(path)
    assert pipeline_rest_body(job, base_dir=out) == pipeline_rest_body(loaded, base_dir=out)


@pytest.mark.parametrize("example", REGISTRY_EXAMPLES)
def test_example_matches_its_golden_rest_body(example: str, examples: Path) -> None:
    body = normalized(build_job(load_spec(examples / f"{example}.yaml")), examples.parents[1])
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    name = example if example.startswith("registry-") else f"registry-{example}"
    snapshot = SNAPSHOTS / f"{name}.json"
    if UPDATE:
        snapshot.write_text(text)
    assert snapshot.is_file(), f"no snapshot {snapshot}: run with UPDATE_SNAPSHOT=1"
    assert text == snapshot.read_text(), f"{snapshot} differs: review, then refresh with UPDATE_SNAPSHOT=1"
    assert not re.search(r"/(work|tmp|home)/", text)


def test_every_shipped_pipeline_spec_names_its_source() -> None:
    sources = yaml.safe_load((SPECS_DIR / "SOURCES.yaml").read_text())
    assert sources["repo"] == "Azure/azureml-assets"
    assert set(sources["specs"]) == set(TASK_COMPONENTS.values())
    for name, source in sources["specs"].items():
        assert str(source["version"]) == contract(name).version, name
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), name
