"""The project's own pipeline (target.kind pipeline): steps, computes, the fine-tune command, components, export."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune import __version__
from azfinetune.errors import BuildError, SpecError
from azfinetune.spec import load_spec, spec_from_dict
from azfinetune.targets import build_job
from azfinetune.targets._entrypoint import command_line, entrypoint_args
from azfinetune.targets._paths import job_code_dir, project_root
from azfinetune.targets._pipeline_export import pipeline_rest_body, pipeline_yaml_dict
from azfinetune.targets.pipeline import (
    COMPONENT_FILES,
    STEPS,
    active_steps,
    build_pipeline_job,
    components_dir,
    step_computes,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots"
TEMPLATE = ROOT / "jobs" / "pipelines" / "finetune-evaluate-register.yaml"
PIPELINE_EXAMPLES = ("pipeline-finetune-evaluate", "pipeline-finetune-export-onnx")
UPDATE = os.environ.get("UPDATE_SNAPSHOT") == "1"
_INPUT = re.compile(r"\$\{\{inputs\.([A-Za-z_][A-Za-z0-9_]*)\}\}")
_OUTPUT = re.compile(r"\$\{\{outputs\.([A-Za-z_][A-Za-z0-9_]*)\}\}")
# Which module each component runs, as `python -m <module>` from jobs/src.
STEP_MODULES = {
    "validate_data": "validate_data",
    "finetune": "finetune",
    "merge_adapter": "merge_adapter",
    "evaluate": "evaluate_model",
    "register": "register",
    "export_onnx": "export_onnx",
}
#: The environment folder each step's component YAML builds (the export step has its own, CPU-only).
STEP_ENVIRONMENTS = {
    step: "onnx-export" if step == "export_onnx" else "finetune-gpu" for step in STEP_MODULES
}


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    target = tmp_path / "jobs" / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".azfinetune"))
    return target


def chat_file(path: Path, n: int = 12) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            messages = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


def make_spec(tmp_path: Path, **changes: Any) -> Any:
    """A pipeline chat spec; `a__b=value` sets data["a"]["b"] (None removes it)."""
    if not (tmp_path / "train.jsonl").exists():
        chat_file(tmp_path / "train.jsonl")
        chat_file(tmp_path / "valid.jsonl", 4)
    data: dict[str, Any] = {
        "name": "unit-pipeline",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "train.jsonl", "validation": "valid.jsonl"},
        "target": {"kind": "pipeline", "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"},
        "register": {"model_name": "unit-model", "min_eval": {"eval_loss": "<= 1.5"}},
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


def parser_for(module: str) -> Any:
    src = str(job_code_dir())
    sys.path.insert(0, src)
    try:
        cli = __import__(
            f"{module}.args" if module == "finetune" else f"{module}.cli", fromlist=["build_parser"]
        )
    finally:
        sys.path.remove(src)
    return cli.build_parser()


def rest(job: Any) -> dict[str, Any]:
    return job._to_rest_object().as_dict()["properties"]  # type: ignore[no-any-return]


def env_folder(value: Any, base_dir: Path) -> Any:
    """An environment in a comparable body: a built one is `name:version`, one loaded from YAML its build
    context; both stand for the folder they are built from."""
    if isinstance(value, dict) and "build" in value:
        return ("folder", (base_dir / value["build"]["path"]).resolve())
    for folder in ("finetune-gpu", "onnx-export"):
        if isinstance(value, str) and value.startswith(f"azfinetune-{folder}:"):
            return ("folder", (project_root() / "environments" / folder).resolve())
    return value


def comparable(body: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    for node in body["properties"]["jobs"].values():
        component = node.get("componentId")
        if isinstance(component, dict):
            component["environment"] = env_folder(component["environment"], base_dir)
        if "environmentId" in node:
            node["environmentId"] = env_folder(node["environmentId"], base_dir)
    return body


def normalized(job: Any, base_dir: Path) -> dict[str, Any]:
    """The REST body with what differs between machines and releases replaced by markers."""
    body = pipeline_rest_body(job, base_dir=base_dir)
    props = body["properties"]
    for node in props["jobs"].values():
        component = node["componentId"]
        assert (base_dir / component["code"]).resolve() == job_code_dir()
        component["code"] = "<project>/jobs/src"
        for holder, key in ((component, "environment"), (node, "environmentId")):
            if key in holder:
                name, _, version = holder[key].partition(":")
                assert len(version) == 16
                holder[key] = f"{name}:<content-hash>"
    assert props["tags"]["azfinetune.version"] == __version__
    props["tags"]["azfinetune.version"] = "<version>"
    return body


# -- the example, its export and snapshot --------------------------------------------------------------


def test_pipeline_examples_are_the_ones_tested() -> None:
    kinds = {
        p.stem: (yaml.safe_load(p.read_text()).get("target") or {}).get("kind")
        for p in EXAMPLES.glob("*.yaml")
    }
    assert sorted(n for n, k in kinds.items() if k == "pipeline") == sorted(PIPELINE_EXAMPLES)


@pytest.mark.parametrize("example", PIPELINE_EXAMPLES)
def test_example_builds_validates_and_roundtrips(example: str, examples: Path, tmp_path: Path) -> None:
    from azure.ai.ml import load_job
    from azure.ai.ml.entities import PipelineJob

    job = build_job(load_spec(examples / f"{example}.yaml"))
    assert isinstance(job, PipelineJob)
    validation = job._validate()
    assert validation.passed, validation.error_messages
    out = tmp_path / "export"
    out.mkdir()
    path = out / "job.yaml"
    path.write_text(yaml.safe_dump(pipeline_yaml_dict(job, base_dir=out), sort_keys=False))
    text = path.read_text()
    assert str(tmp_path) not in text and not re.search(r"(path|code): /", text)  # relative paths only
    loaded = load_job(path)
    assert loaded._validate().passed
    built_body = comparable(pipeline_rest_body(job, base_dir=out), out)
    loaded_body = comparable(pipeline_rest_body(loaded, base_dir=out), out)
    assert built_body == loaded_body


@pytest.mark.parametrize("example", PIPELINE_EXAMPLES)
def test_example_matches_its_golden_rest_body(example: str, examples: Path) -> None:
    body = normalized(build_job(load_spec(examples / f"{example}.yaml")), examples.parents[1])
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / f"{example if example.startswith('pipeline-') else 'pipeline-' + example}.json"
    if UPDATE:
        snapshot.write_text(text)
    assert snapshot.is_file(), f"no snapshot {snapshot}: run with UPDATE_SNAPSHOT=1"
    assert text == snapshot.read_text(), f"{snapshot} differs: review, then refresh with UPDATE_SNAPSHOT=1"
    assert not re.search(r"/(work|tmp|home)/", text)


@pytest.mark.parametrize("example", ["pipeline-finetune-evaluate", "registry-translation"])
def test_the_same_spec_builds_the_same_job(example: str, examples: Path, tmp_path: Path) -> None:
    spec = load_spec(examples / f"{example}.yaml")
    first, second = build_job(spec), build_job(spec)
    assert first.name == second.name
    assert pipeline_rest_body(first, base_dir=tmp_path) == pipeline_rest_body(second, base_dir=tmp_path)
    assert pipeline_yaml_dict(first, base_dir=tmp_path) == pipeline_yaml_dict(second, base_dir=tmp_path)


def test_example_shape(examples: Path) -> None:
    spec = load_spec(examples / "pipeline-finetune-evaluate.yaml")
    job = build_job(spec)
    assert list(job.jobs) == [step for step in STEPS if step != "export_onnx"] == active_steps(spec)
    assert job.name.startswith("phi3-mini-support-pipeline-") and job.experiment_name == spec.name
    assert job.settings.force_rerun is False and job.settings.continue_on_step_failure is False
    body = rest(job)
    jobs = body["jobs"]
    # CPU steps on a serverless E4s_v3, GPU steps on the A100 cluster.
    for step in ("validate_data", "register"):
        assert jobs[step]["computeId"] == "serverless"
        assert jobs[step]["resources"]["instance_type"] == "Standard_E4s_v3"
    for step in ("finetune", "merge_adapter", "evaluate"):
        assert jobs[step]["computeId"] == "gpu-a100"
    assert jobs["finetune"]["resources"] == {"instance_count": 1, "shm_size": "16g"}
    assert jobs["finetune"]["limits"]["timeout"] == "PT4H"
    assert "distribution" not in jobs["finetune"]  # one A100, no DeepSpeed
    # The data flows through the steps; fine-tuning starts only on the checked training file.
    assert jobs["finetune"]["inputs"]["train"]["value"] == "${{parent.jobs.validate_data.outputs.train_data}}"
    assert jobs["merge_adapter"]["inputs"]["adapter"]["value"] == "${{parent.jobs.finetune.outputs.adapter}}"
    assert (
        jobs["evaluate"]["inputs"]["model"]["value"] == "${{parent.jobs.merge_adapter.outputs.merged_model}}"
    )
    assert jobs["evaluate"]["inputs"]["data_file"]["value"] == "${{parent.inputs.validation_file}}"
    assert (
        jobs["register"]["inputs"]["mlflow_model"]["value"]
        == "${{parent.jobs.merge_adapter.outputs.mlflow_model}}"
    )
    assert jobs["register"]["inputs"]["model_name"]["value"] == "phi3-mini-support"
    assert json.loads(jobs["register"]["inputs"]["min_eval"]["value"]) == {"eval_loss": "<= 1.2"}
    assert set(body["outputs"]) == {
        "data_report",
        "adapter",
        "merged_model",
        "metrics",
        "mlflow_model",
        "decision",
    }
    assert "name" not in body["outputs"]["mlflow_model"]  # registered by the register step, only if it passes
    assert job.properties["azfinetune.registered_model_name"] == "phi3-mini-support"
    assert job.properties["azfinetune.steps"] == ",".join(active_steps(spec))
    assert body["inputs"]["model"]["uri"].startswith(
        "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/"
    )


def test_the_finetune_step_runs_the_command_entrypoint_args_writes(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, method={"deepspeed": {"stage": 2}}, data__columns=None)
    job = build_job(spec)
    component = job.jobs["finetune"].component
    expected = command_line(
        entrypoint_args(
            spec,
            inputs={
                name: f"${{{{inputs.{name}}}}}" for name in ("model", "train", "validation", "deepspeed")
            },
            outputs={"adapter": "${{outputs.adapter}}"},
        )
    )
    assert component.command == expected
    assert set(component.inputs) == {"model", "train", "validation", "deepspeed"}
    assert component.inputs["train"].type == "uri_folder" and component.inputs["model"].type == "mlflow_model"
    assert Path(component.code).resolve() == job_code_dir()
    words = shlex.split(component.command)
    assert words[:3] == ["python", "-m", "finetune"]
    parsed = parser_for("finetune").parse_args([_INPUT.sub("x", _OUTPUT.sub("out", w)) for w in words[3:]])
    assert parsed.technique == "lora" and str(parsed.deepspeed) == "x"
    body = rest(job)
    assert body["inputs"]["deepspeed_config"]["jobInputType"] == "uri_file"
    assert Path(body["inputs"]["deepspeed_config"]["uri"]).parent == tmp_path / ".azfinetune" / "deepspeed"
    assert body["jobs"]["finetune"]["distribution"]["process_count_per_instance"] == 1


def test_full_fine_tuning_skips_the_merge(tmp_path: Path) -> None:
    job = build_job(make_spec(tmp_path, method={"technique": "full"}))
    assert list(job.jobs) == ["validate_data", "finetune", "evaluate", "register"]
    jobs = rest(job)["jobs"]
    assert set(jobs["finetune"]["outputs"]) == {"adapter", "mlflow_model"}
    assert jobs["evaluate"]["inputs"]["model"]["value"] == "${{parent.jobs.finetune.outputs.adapter}}"
    assert (
        jobs["register"]["inputs"]["mlflow_model"]["value"]
        == "${{parent.jobs.finetune.outputs.mlflow_model}}"
    )
    assert "--mlflow-model-dir ${{outputs.mlflow_model}}" in job.jobs["finetune"].component.command


def test_without_register_there_is_no_register_step(tmp_path: Path) -> None:
    job = build_job(make_spec(tmp_path, register=None))
    assert list(job.jobs) == ["validate_data", "finetune", "merge_adapter", "evaluate"]
    assert set(rest(job)["outputs"]) == {"data_report", "adapter", "merged_model", "metrics"}
    assert "azfinetune.registered_model_name" not in job.properties


def test_evaluation_data_prefers_test_then_validation_then_train(tmp_path: Path) -> None:
    chat_file(tmp_path / "test.jsonl", 4)
    with_test = rest(build_job(make_spec(tmp_path, data__test="test.jsonl")))["jobs"]["evaluate"]["inputs"]
    assert (
        with_test["data_file"]["value"] == "${{parent.inputs.test_file}}"
        and with_test["split"]["value"] == "test"
    )
    train_only = rest(build_job(make_spec(tmp_path, data__validation=None)))["jobs"]["evaluate"]["inputs"]
    assert (
        train_only["data_file"]["value"] == "${{parent.inputs.train_file}}"
        and train_only["split"]["value"] == "train"
    )


def test_columns_reach_validation_and_evaluation(tmp_path: Path) -> None:
    rows = [{"review": f"great {i}", "stars": "pos" if i % 2 else "neg"} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    job = build_job(
        make_spec(tmp_path, task="text-classification", data__columns={"text": "review", "label": "stars"})
    )
    jobs = rest(job)["jobs"]
    assert jobs["validate_data"]["inputs"]["columns"]["value"] == "text=review,label=stars"
    assert jobs["evaluate"]["inputs"]["columns"]["value"] == "text=review,label=stars"
    assert "--column text=review --column label=stars" in job.jobs["finetune"].component.command


def test_distribution_priority_and_hf_models(tmp_path: Path) -> None:
    job = build_job(
        make_spec(
            tmp_path,
            model="hf:microsoft/Phi-3-mini-4k-instruct",
            target__instance_type="Standard_NC96ads_A100_v4",
            target__nodes=2,
            target__priority="low",
        )
    )
    jobs = rest(job)["jobs"]
    assert jobs["finetune"]["distribution"]["process_count_per_instance"] == 4
    assert jobs["finetune"]["resources"]["instance_count"] == 2
    assert jobs["finetune"]["queue_settings"]["job_tier"] == "Spot"
    assert rest(job)["inputs"]["model"] == {
        "value": "hf:microsoft/Phi-3-mini-4k-instruct",
        "jobInputType": "literal",
    }
    assert (
        "base_model_id" in jobs["merge_adapter"]["inputs"]
        and "base_model" not in jobs["merge_adapter"]["inputs"]
    )
    assert job.jobs["finetune"].component.inputs["model"].type == "string"


def test_step_computes(tmp_path: Path) -> None:
    default = step_computes(make_spec(tmp_path))
    assert {s: c.compute for s, c in default.items()} == dict.fromkeys(STEPS, "gpu-a100")
    cpu = step_computes(make_spec(tmp_path, target__cpu_compute="cpu-cluster"))
    assert cpu["validate_data"].compute == cpu["register"].compute == "cpu-cluster"
    assert cpu["finetune"].compute == cpu["merge_adapter"].compute == cpu["evaluate"].compute == "gpu-a100"
    serverless = step_computes(
        make_spec(tmp_path, target__compute="serverless", target__cpu_instance_type="Standard_E4s_v3")
    )
    assert (
        serverless["finetune"].serverless
        and serverless["finetune"].instance_type == "Standard_NC24ads_A100_v4"
    )
    assert serverless["register"].instance_type == "Standard_E4s_v3"
    job = build_job(make_spec(tmp_path, target__compute="serverless"))
    jobs = rest(job)["jobs"]
    assert jobs["merge_adapter"]["computeId"] == "serverless"
    assert jobs["merge_adapter"]["resources"]["instance_type"] == "Standard_NC24ads_A100_v4"
    assert jobs["validate_data"]["resources"]["instance_type"] == "Standard_NC24ads_A100_v4"


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["question-answering", "summarization", "translation"])
def test_tasks_the_entry_point_does_not_train(tmp_path: Path, task: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, task=task))
    assert caught.value.paths == ["task"] and "target.kind registry-pipeline trains it" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"target__compute": "serverless", "target__instance_type": None}, "target.instance_type"),
        ({"target__cpu_compute": "serverless"}, "target.cpu_instance_type"),
    ],
)
def test_a_step_without_compute_is_refused(tmp_path: Path, changes: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, **changes))
    assert caught.value.paths == [path] and "VM size" in str(caught.value)


def test_missing_gpu_compute(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"target\.compute"):
        make_spec(tmp_path, target__compute=None)
    spec = make_spec(tmp_path)
    patched = spec.model_copy(update={"target": spec.target.model_copy(update={"compute": None})})
    with pytest.raises(BuildError) as caught:
        build_pipeline_job(patched)
    assert caught.value.path == "target.compute"


def test_free_text_cannot_break_the_register_command(tmp_path: Path) -> None:
    job = build_job(make_spec(tmp_path, register={"model_name": "m", "description": "Bob's model"}))
    assert rest(job)["jobs"]["register"]["inputs"]["description"]["value"] == "Bob\u2019s model"
    assert "min_eval" not in rest(job)["jobs"]["register"]["inputs"]
    with pytest.raises(SpecError) as caught:
        build_job(make_spec(tmp_path, register={"model_name": "m", "min_eval": {"it's": "<= 1"}}))
    assert caught.value.paths == ["register.min_eval.it's"]


def test_other_kinds_are_not_built_here(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, target__kind="command", register={"model_name": "m"})
    with pytest.raises(BuildError, match=r"target\.kind pipeline"):
        build_pipeline_job(spec)


# -- the components and the template ------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_component_yaml_is_consistent(step: str) -> None:
    from azure.ai.ml import load_component

    path = components_dir() / COMPONENT_FILES[step]
    raw = yaml.safe_load(path.read_text())
    assert raw["$schema"].endswith("/commandComponent.schema.json") and raw["type"] == "command"
    assert (path.parent / raw["code"]).resolve() == job_code_dir()
    assert (
        path.parent / raw["environment"]["build"]["path"]
    ).resolve() == project_root() / "environments" / STEP_ENVIRONMENTS[step]
    component = load_component(source=str(path))
    assert component._validate().passed
    command = " ".join(raw["command"].split())
    used_inputs, used_outputs = set(_INPUT.findall(command)), set(_OUTPUT.findall(command))
    assert used_inputs == set(raw["inputs"]), f"{step}: declared vs used inputs"
    assert used_outputs == set(raw["outputs"]), f"{step}: declared vs used outputs"
    module = STEP_MODULES[step]
    # Every input given (its default, else a value of its type): the step's own parser takes the whole line.
    values = {name: _sample(name, declared) for name, declared in raw["inputs"].items()}
    rendered = _OUTPUT.sub("out", _INPUT.sub(lambda m: values[m.group(1)], command))
    words = shlex.split(rendered.replace("$[[", "").replace("]]", ""))
    assert words[:3] == ["python", "-m", module]
    parser_for(module).parse_args(words[3:])


def _sample(name: str, declared: dict[str, Any]) -> str:
    if name == "extra_args":
        return ""  # free text appended to the entry point's flags
    if "default" in declared:
        return str(declared["default"])
    if declared.get("enum"):
        return str(declared["enum"][0])
    kind = declared.get("type", "string")
    return {"integer": "1", "number": "0.5", "string": "text"}.get(kind, "/data/path")


def test_export_onnx_step_runs_on_cpu_after_training_and_registers_beside_the_mlflow_model(
    examples: Path,
) -> None:
    spec = load_spec(examples / "pipeline-finetune-export-onnx.yaml")
    job = build_job(spec)
    assert list(job.jobs) == list(STEPS) == active_steps(spec)
    jobs = rest(job)["jobs"]
    export = jobs["export_onnx"]
    assert export["computeId"] == "serverless"
    assert export["resources"]["instance_type"] == "Standard_E4s_v3"  # the CPU VM, not the A100s
    inputs = export["inputs"]
    assert inputs["adapter"]["value"] == "${{parent.jobs.finetune.outputs.adapter}}"
    assert inputs["base_model"]["value"] == "${{parent.inputs.model}}"
    assert inputs["validation"]["value"] == "${{parent.inputs.validation_file}}"
    assert (inputs["precision"]["value"], inputs["adapters"]["value"]) == ("int4", "merged")
    # Its own CPU environment, not the training image.
    assert job.jobs["export_onnx"].component.environment.name == "azfinetune-onnx-export"
    output = job.outputs["onnx_model"]
    assert (output.type, output.name) == ("custom_model", "phi3-mini-support-onnx-onnx")
    assert job.properties["azfinetune.steps"].endswith(",register,export_onnx")


def test_export_onnx_of_an_hf_model_passes_the_id_and_a_full_fine_tune_exports_its_output(
    examples: Path,
) -> None:
    spec = load_spec(
        examples / "pipeline-finetune-export-onnx.yaml",
        overrides=["model=hf:microsoft/Phi-3-mini-4k-instruct", "method.technique=full"],
    )
    inputs = rest(build_job(spec))["jobs"]["export_onnx"]["inputs"]
    assert inputs["base_model_id"]["value"] == "${{parent.inputs.model}}" and "base_model" not in inputs
    assert inputs["adapters"]["value"] == "merged"
    assert inputs["adapter"]["value"] == "${{parent.jobs.finetune.outputs.adapter}}"


def test_template_loads_and_runs_the_same_steps() -> None:
    from azure.ai.ml import load_job

    job = load_job(TEMPLATE)
    validation = job._validate()
    assert validation.passed, validation.error_messages
    assert list(job.jobs) == [step for step in STEPS if step != "export_onnx"]  # the template exports nothing
    raw = yaml.safe_load(TEMPLATE.read_text())
    for step, node in raw["jobs"].items():
        assert (TEMPLATE.parent / node["component"]).resolve() == components_dir() / COMPONENT_FILES[step]
    assert raw["settings"] == {"force_rerun": False, "continue_on_step_failure": False}
    body = job._to_rest_object().as_dict()["properties"]
    assert (
        body["jobs"]["finetune"]["inputs"]["train_file"]["value"]
        == "${{parent.jobs.validate_data.outputs.train_data}}"
    )
    for step in ("finetune", "merge_adapter", "evaluate"):
        assert body["jobs"][step]["computeId"] == "${{parent.inputs.gpu_compute}}"
    for step in ("validate_data", "register"):
        assert body["jobs"][step]["computeId"] == "${{parent.inputs.cpu_compute}}"
    for name in ("train_file", "validation_file"):
        assert (TEMPLATE.parent / raw["inputs"][name]["path"]).is_file()
