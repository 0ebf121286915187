"""The command-job builder, its entry-point flags, DeepSpeed configs, environment versions and job export."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from azfinetune import __version__
from azfinetune.cli._app import Application, run_with_boundary
from azfinetune.cli.build import build
from azfinetune.errors import BuildError, SpecError
from azfinetune.spec import load_spec, spec_from_dict
from azfinetune.targets import build_job, export_spec
from azfinetune.targets._deepspeed import deepspeed_config, write_deepspeed_config
from azfinetune.targets._entrypoint import (
    command_line,
    entrypoint_args,
    entrypoint_inputs,
    entrypoint_outputs,
)
from azfinetune.targets._environment import (
    environment_from_folder,
    environment_version,
    normalize_environment_reference,
)
from azfinetune.targets._export import export_job, rest_body
from azfinetune.targets._paths import job_code_dir, project_root
from azfinetune.targets.command import build_command_job, normalize_data_reference
from tests.conftest import refused

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots"
COMMAND_EXAMPLES = (
    "phi3-mini-lora",
    "phi3-mini-qlora",
    "phi3-medium-dora-zero3",
    "phi3-mini-dpo",
    "phi3-mini-orpo",
    "phi3-mini-lora-onnx",
)
UPDATE = os.environ.get("UPDATE_SNAPSHOT") == "1"

# Every flag of the entry point (azft_contract's flag table). --eval-steps has no spec key, so the builder never
# writes it.
CONTRACT_FLAGS = {
    "--task", "--model", "--train-file", "--validation-file", "--test-file", "--technique", "--lora-r",
    "--lora-alpha", "--lora-dropout", "--target-modules", "--quant-bits", "--quant-type", "--double-quant",
    "--deepspeed", "--epochs", "--max-steps", "--learning-rate", "--lr-scheduler", "--warmup-ratio",
    "--per-device-batch-size", "--gradient-accumulation-steps", "--max-seq-length", "--precision",
    "--gradient-checkpointing", "--packing", "--seed", "--optimizer", "--mask-prompt", "--column", "--secret",
    "--logging-steps", "--output-dir", "--merged-output-dir", "--mlflow-model-dir",
}  # fmt: skip


# -- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of jobs/examples (specs + data) under tmp/jobs/examples, so builds write nothing into the repo."""
    target = tmp_path / "jobs" / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".azfinetune"))
    if not (project_root() / "environments" / "finetune-gpu").is_dir():
        # The environment folder is written by a teammate; until it exists a stub stands in beside the specs.
        stub = target / "environments" / "finetune-gpu"
        stub.mkdir(parents=True)
        (stub / "Dockerfile").write_text(
            "FROM mcr.microsoft.com/azureml/curated/acpt-pytorch-2.8-cuda12.6:17\n"
        )
    return target


def write_chat(path: Path, n: int = 12) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            messages = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def env_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "env"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY requirements.txt .\n")
    (folder / "requirements.txt").write_text("transformers==4.46.0\n")
    return folder


def make_spec(tmp_path: Path, env_folder: Path, **changes: Any) -> Any:
    write_chat(tmp_path / "train.jsonl")
    write_chat(tmp_path / "valid.jsonl", 4)
    data: dict[str, Any] = {
        "name": "unit-job",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "train.jsonl", "validation": "valid.jsonl"},
        "target": {"kind": "command", "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"},
        "environment": str(env_folder),
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


def normalized(job: Any, base_dir: Path) -> dict[str, Any]:
    """The REST body with what legitimately differs between machines and releases replaced by markers."""
    body = rest_body(job, base_dir=base_dir)
    props = body["properties"]
    assert Path(base_dir, props["codeId"]).resolve() == job_code_dir()
    props["codeId"] = "<project>/jobs/src"
    name, _, version = props["environmentId"].partition(":")
    assert len(version) == 16
    props["environmentId"] = f"{name}:<content-hash>"
    assert props["tags"]["azfinetune.version"] == __version__
    props["tags"]["azfinetune.version"] = "<version>"
    return body


def roundtrip(job: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(built REST body, REST body of load_job(exported YAML), loaded job), environments compared apart."""
    from azure.ai.ml import load_job

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.name}.yaml"
    path.write_text(export_job(job, "yaml", base_dir=folder))
    loaded = load_job(path)
    return rest_body(job, base_dir=folder), rest_body(loaded, base_dir=folder), loaded


def parse_with_entrypoint(command: str, values: dict[str, str]) -> Any:
    """Parse a built command line with the entry point's own argparse parser (jobs/src/finetune/args.py)."""
    src = str(project_root() / "jobs" / "src")
    if not (Path(src) / "finetune" / "args.py").is_file():
        pytest.skip("jobs/src/finetune/args.py is not there yet")
    sys.path.insert(0, src)
    try:
        from finetune.args import build_parser  # type: ignore[import-not-found]
    finally:
        sys.path.remove(src)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "finetune"]
    argv = [values.get(word, word) for word in words[3:]]
    return build_parser().parse_args(argv)


# -- the examples ----------------------------------------------------------------------------------------


def test_command_examples_are_the_ones_tested() -> None:
    kinds = {
        p.stem: (yaml.safe_load(p.read_text()).get("target") or {}).get("kind")
        for p in EXAMPLES.glob("*.yaml")
    }
    assert sorted(name for name, kind in kinds.items() if kind == "command") == sorted(COMMAND_EXAMPLES)


@pytest.mark.parametrize("example", COMMAND_EXAMPLES)
def test_example_builds_and_roundtrips_through_load_job(example: str, examples: Path, tmp_path: Path) -> None:
    from azure.ai.ml.entities import CommandJob

    spec = load_spec(examples / f"{example}.yaml")
    job = build_job(spec)
    assert isinstance(job, CommandJob)
    built, loaded, loaded_job = roundtrip(job, tmp_path / "export")
    # The job YAML's environment is inline (az ml registers it anonymously); compare its folder instead.
    built_env = built["properties"].pop("environmentId")
    loaded["properties"].pop("environmentId")
    assert built == loaded
    assert built_env.startswith("azfinetune-finetune-gpu:")
    loaded_context = Path(loaded_job.base_path, loaded_job.environment.build.path).resolve()
    assert loaded_context == Path(job.environment.build.path).resolve()


@pytest.mark.parametrize("example", COMMAND_EXAMPLES)
def test_example_matches_its_golden_rest_body(example: str, examples: Path) -> None:
    spec = load_spec(examples / f"{example}.yaml")
    body = normalized(build_job(spec), examples.parents[1])
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / f"command-{example}.json"
    if UPDATE:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.is_file(), f"no snapshot {snapshot}: run with UPDATE_SNAPSHOT=1"
    assert text == snapshot.read_text(), f"{snapshot} differs: review, then refresh with UPDATE_SNAPSHOT=1"


def test_examples_have_the_expected_shape(examples: Path) -> None:
    lora = build_job(load_spec(examples / "phi3-mini-lora.yaml"))
    assert lora.compute == "gpu-a100"
    assert lora.resources.instance_count == 1 and lora.resources.instance_type == "Standard_NC24ads_A100_v4"
    assert lora.resources.shm_size == "16g"
    assert lora.distribution is None  # one A100, no DeepSpeed
    assert lora.limits.timeout == 240 * 60
    assert lora.experiment_name == lora.display_name == "phi3-mini-support-lora"
    assert lora.inputs["model"].type == "mlflow_model"
    assert (
        lora.inputs["model"].path == "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"
    )
    assert set(lora.outputs) == {"adapter", "merged_model", "mlflow_model"}
    assert lora.outputs["mlflow_model"].name == "phi3-mini-support"
    assert lora.tags["team"] == "support" and lora.tags["azfinetune.technique"] == "lora"
    assert type(lora.identity).__name__ == "ManagedIdentityConfiguration"
    assert lora.environment_variables == {}

    qlora = build_job(load_spec(examples / "phi3-mini-qlora.yaml"))
    assert qlora.queue_settings.job_tier == "spot"
    assert set(qlora.outputs) == {"adapter", "checkpoints"}  # low priority: resumable

    zero3 = build_job(load_spec(examples / "phi3-medium-dora-zero3.yaml"))
    assert zero3.resources.instance_count == 2
    assert zero3.distribution.process_count_per_instance == 8
    config = json.loads(Path(zero3.inputs["deepspeed"].path).read_text())
    assert config["zero_optimization"]["stage"] == 3
    assert "--deepspeed ${{inputs.deepspeed}}" in zero3.command


def test_same_spec_builds_the_same_job(examples: Path, tmp_path: Path) -> None:
    path = examples / "phi3-medium-dora-zero3.yaml"
    first, second = build_job(load_spec(path)), build_job(load_spec(path))
    assert first.name == second.name
    assert rest_body(first, base_dir=tmp_path) == rest_body(second, base_dir=tmp_path)
    assert export_job(first, "yaml", base_dir=tmp_path) == export_job(second, "yaml", base_dir=tmp_path)
    assert export_job(first, "json", base_dir=tmp_path) == export_job(second, "json", base_dir=tmp_path)


def test_a_changed_data_file_makes_a_new_job(examples: Path) -> None:
    path = examples / "phi3-mini-lora.yaml"
    before = build_job(load_spec(path)).name
    with (examples / "data" / "chat-train.jsonl").open("a") as handle:
        handle.write(
            json.dumps(
                {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
            )
        )
        handle.write("\n")
    assert build_job(load_spec(path)).name != before


# -- the command line ---------------------------------------------------------------------------------------


def test_the_command_line_has_every_flag_and_the_entry_point_parses_it(
    tmp_path: Path, env_folder: Path
) -> None:
    write_chat(tmp_path / "test.jsonl", 3)
    spec = make_spec(
        tmp_path,
        env_folder,
        data__test="test.jsonl",
        data__columns={"messages": "conversation"},
        method={
            "technique": "qlora",
            "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["qkv_proj", "o_proj"]},
            "quantization": {"bits": 4, "type": "fp4", "double_quant": False},
            "deepspeed": {"stage": 2},
            "optimizer": "paged_adamw_8bit",
        },
        training={
            "epochs": 1.5,
            "max_steps": 20,
            "learning_rate": 1e-5,
            "warmup_ratio": 0.1,
            "packing": True,
        },
        register={"model_name": "unit-model"},
        secrets={"HF_TOKEN": "keyvault://my-vault/hf-token"},
    )
    job = build_command_job(spec)
    words = shlex.split(job.command)
    assert {w for w in words if w.startswith("--")} == CONTRACT_FLAGS
    # Every ${{...}} reference names a declared input or output, and every input is used.
    for name in job.inputs:
        assert f"${{{{inputs.{name}}}}}" in job.command
    for name in job.outputs:
        assert f"${{{{outputs.{name}}}}}" in job.command

    values = {f"${{{{inputs.{n}}}}}": str(tmp_path / f"{n}-input") for n in job.inputs}
    values.update({f"${{{{outputs.{n}}}}}": str(tmp_path / f"{n}-output") for n in job.outputs})
    ns = parse_with_entrypoint(job.command, values)
    assert ns.technique == "qlora" and ns.lora_r == 8 and ns.lora_alpha == 16 and ns.lora_dropout == 0.1
    assert ns.target_modules == "qkv_proj,o_proj"
    assert ns.quant_type == "fp4" and ns.double_quant is False and ns.quant_bits == 4
    assert ns.epochs == 1.5 and ns.max_steps == 20 and ns.learning_rate == 1e-5 and ns.warmup_ratio == 0.1
    assert ns.packing is True and ns.gradient_checkpointing is True and ns.mask_prompt is True
    assert ns.optimizer == "paged_adamw_8bit" and ns.precision == "bf16"
    assert ns.column == ["messages=conversation"]
    assert ns.secret == ["HF_TOKEN=keyvault://my-vault/hf-token"]
    assert str(ns.deepspeed) == values["${{inputs.deepspeed}}"]
    assert str(ns.mlflow_model_dir) == values["${{outputs.mlflow_model}}"]


def test_local_runs_get_the_same_flags(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder)
    azure = entrypoint_args(
        spec,
        inputs={n: f"${{{{inputs.{n}}}}}" for n in entrypoint_inputs(spec)},
        outputs={n: f"${{{{outputs.{n}}}}}" for n in entrypoint_outputs(spec)},
    )
    local = entrypoint_args(
        spec,
        inputs={"model": "/models/phi3", "train": "/d/train.jsonl", "validation": "/d/valid.jsonl"},
        outputs={"adapter": "/out/adapter"},
    )
    strip = {"--model", "--train-file", "--validation-file", "--output-dir"}

    def flags(args: list[str]) -> list[str]:
        return [a for i, a in enumerate(args) if not (i and args[i - 1] in strip)]

    assert flags(azure) == flags(local)
    assert command_line(local).startswith("python -m finetune --task chat-completion --model /models/phi3 ")


def test_entrypoint_args_refuses_inputs_that_do_not_match_the_spec(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder)
    with pytest.raises(BuildError, match="missing validation"):
        entrypoint_args(spec, inputs={"model": "m", "train": "t"}, outputs={"adapter": "o"})
    with pytest.raises(BuildError, match="not expected deepspeed"):
        entrypoint_args(
            spec,
            inputs={"model": "m", "train": "t", "validation": "v", "deepspeed": "d"},
            outputs={"adapter": "o"},
        )
    full = make_spec(tmp_path, env_folder, method={"technique": "full"})
    with pytest.raises(BuildError, match="not expected merged_model"):
        entrypoint_args(
            full,
            inputs={"model": "m", "train": "t", "validation": "v"},
            outputs={"adapter": "o", "merged_model": "x"},
        )


def test_full_fine_tuning_has_no_adapter_flags(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder, method={"technique": "full"}, register={"model_name": "m"})
    job = build_command_job(spec)
    assert "--lora-r" not in job.command and "--quant-bits" not in job.command
    assert set(job.outputs) == {"adapter", "mlflow_model"}


def test_target_modules_auto_all_linear_and_unknown_models(tmp_path: Path, env_folder: Path) -> None:
    auto = build_command_job(make_spec(tmp_path, env_folder))
    assert "--target-modules qkv_proj,o_proj,gate_up_proj,down_proj" in auto.command
    linear = build_command_job(
        make_spec(tmp_path, env_folder, method={"lora": {"target_modules": "all-linear"}})
    )
    assert "--target-modules all-linear" in linear.command
    unknown = build_command_job(make_spec(tmp_path, env_folder, model="hf:someone/unknown-model"))
    assert "--target-modules all-linear" in unknown.command


# -- inputs, references, round trips ---------------------------------------------------------------------


def test_hf_model_is_a_string_input(tmp_path: Path, env_folder: Path) -> None:
    job = build_command_job(make_spec(tmp_path, env_folder, model="hf:microsoft/Phi-3-mini-4k-instruct"))
    assert job.inputs["model"] == "hf:microsoft/Phi-3-mini-4k-instruct"
    built, loaded, _ = roundtrip(job, tmp_path / "export")
    assert built["properties"]["inputs"]["model"] == {
        "jobInputType": "literal",
        "value": "hf:microsoft/Phi-3-mini-4k-instruct",
    }
    built["properties"].pop("environmentId"), loaded["properties"].pop("environmentId")
    assert built == loaded


def test_registry_model_uri_is_an_mlflow_model_input(tmp_path: Path, env_folder: Path) -> None:
    uri = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14"
    job = build_command_job(make_spec(tmp_path, env_folder, model=uri))
    assert job.inputs["model"].type == "mlflow_model" and job.inputs["model"].path == uri


def test_remote_data_and_named_environments_roundtrip(tmp_path: Path, env_folder: Path) -> None:
    for environment, expected in [
        ("azureml:my-env:3", "my-env:3"),
        ("azureml:my-env@latest", "my-env@latest"),
        (
            "AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu@latest",
            "AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu@latest",
        ),
        (
            "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/1",
            "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/1",
        ),
    ]:
        spec = make_spec(
            tmp_path,
            env_folder,
            environment=environment,
            data={
                "train": "azureml:chat-train:2",
                "validation": "azureml:chat-valid@latest",
                "test": "https://example.blob.core.windows.net/data/test.jsonl",
            },
        )
        job = build_command_job(spec)
        assert job.environment == expected
        built, loaded, _ = roundtrip(job, tmp_path / "export")
        assert built == loaded, environment
        inputs = built["properties"]["inputs"]
        assert inputs["train"]["uri"] == "chat-train:2"
        assert inputs["validation"]["uri"] == "chat-valid@latest"
        assert inputs["test"]["uri"] == "https://example.blob.core.windows.net/data/test.jsonl"
        assert built["properties"]["environmentId"] == expected


def test_reference_normalisation() -> None:
    assert normalize_environment_reference("azureml:env@stable") == "env@stable"
    assert normalize_environment_reference("azureml:env:7") == "env:7"
    assert normalize_environment_reference("azureml:env") == "env@latest"
    assert normalize_environment_reference("AzureML-minimal-ubuntu22.04-py39-cpu-inference") == (
        "AzureML-minimal-ubuntu22.04-py39-cpu-inference@latest"
    )
    with pytest.raises(BuildError):
        normalize_environment_reference("azureml:a:b:c")
    assert normalize_data_reference("azureml:train@latest") == "train@latest"
    assert (
        normalize_data_reference("azureml://datastores/x/paths/t.jsonl")
        == "azureml://datastores/x/paths/t.jsonl"
    )


def test_local_files_are_exported_as_plain_relative_paths(examples: Path, tmp_path: Path) -> None:
    job = build_job(load_spec(examples / "phi3-mini-lora.yaml"))
    out = examples.parents[1] / "out"
    data = yaml.safe_load(export_job(job, "yaml", base_dir=out))
    assert data["inputs"]["train"] == {"type": "uri_file", "path": "../jobs/examples/data/chat-train.jsonl"}
    assert not Path(data["code"]).is_absolute() and not data["code"].startswith("azureml:")
    assert not Path(data["environment"]["build"]["path"]).is_absolute()
    assert data["compute"] == "azureml:gpu-a100"
    assert str(tmp_path) not in export_job(job, "yaml", base_dir=out)
    assert str(tmp_path) not in export_job(job, "json", base_dir=out)


def test_secrets_never_reach_the_rest_body(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder, secrets={"HF_TOKEN": "keyvault://my-vault/hf-token"})
    job = build_command_job(spec)
    body = rest_body(job, base_dir=tmp_path)
    assert body["properties"]["environmentVariables"] == {}
    text = json.dumps(body)
    # The name appears exactly once: as the --secret reference the job resolves with its managed identity.
    assert text.count("HF_TOKEN") == 1 and "--secret HF_TOKEN=keyvault://my-vault/hf-token" in job.command
    assert body["properties"]["identity"] == {"identityType": "Managed"}
    with pytest.raises(SpecError):
        make_spec(tmp_path, env_folder, secrets={"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz"})


def test_distribution_and_resources(tmp_path: Path, env_folder: Path) -> None:
    single = build_command_job(make_spec(tmp_path, env_folder))
    assert single.distribution is None
    four = build_command_job(
        make_spec(tmp_path, env_folder, target__instance_type="Standard_NC96ads_A100_v4", target__nodes=2)
    )
    assert four.distribution.process_count_per_instance == 4 and four.resources.instance_count == 2
    assert four.resources.shm_size == "32g"
    one_gpu = build_command_job(
        make_spec(
            tmp_path, env_folder, target__instance_type="Standard_NC96ads_A100_v4", target__gpus_per_node=1
        )
    )
    assert one_gpu.distribution is None
    deepspeed_single = build_command_job(make_spec(tmp_path, env_folder, method={"deepspeed": {"stage": 2}}))
    # DeepSpeed wants torch.distributed's env variables even for one process.
    assert deepspeed_single.distribution.process_count_per_instance == 1


def test_local_target_builds_a_job_without_compute(tmp_path: Path, env_folder: Path) -> None:
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = make_spec(tmp_path, env_folder, model=str(model), target={"kind": "local"})
    job = build_job(spec)
    assert job.compute is None and job.resources is None and job.queue_settings is None
    assert job.inputs["model"].type == "uri_folder" and job.inputs["model"].path == str(model)


def test_command_job_refuses_gated_registration(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder, register={"model_name": "m", "min_eval": {"eval_loss": "<= 1.0"}})
    error = refused(spec)
    assert error.paths == ["register.min_eval"] and "evaluation step" in str(error)
    with pytest.raises(SpecError, match="min_eval"):
        build_job(spec)  # build runs the same checks first: never a BuildError for a user error


# -- DeepSpeed ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "offload_optimizer", "offload_params"),
    [
        (1, False, False),
        (1, True, False),
        (2, False, False),
        (2, True, False),
        (3, False, False),
        (3, True, True),
    ],
)
def test_deepspeed_config_shapes(
    tmp_path: Path, env_folder: Path, stage: int, offload_optimizer: bool, offload_params: bool
) -> None:
    spec = make_spec(
        tmp_path,
        env_folder,
        method={
            "deepspeed": {
                "stage": stage,
                "offload_optimizer": offload_optimizer,
                "offload_params": offload_params,
            }
        },
    )
    config = deepspeed_config(spec)
    zero = config["zero_optimization"]
    assert zero["stage"] == stage
    for key in (
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert config[key] == "auto"
    assert config["bf16"] == {"enabled": "auto"} and config["fp16"]["enabled"] == "auto"
    assert ("offload_optimizer" in zero) is offload_optimizer
    assert ("offload_param" in zero) is offload_params
    if offload_optimizer:
        assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
        assert config["optimizer"]["type"] == "AdamW" and config["optimizer"]["params"]["lr"] == "auto"
    else:
        assert "optimizer" not in config
    if stage == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
        assert zero["stage3_prefetch_bucket_size"] == "auto"
        assert zero["stage3_param_persistence_threshold"] == "auto"
    else:
        assert not any(key.startswith("stage3_") for key in zero)
        assert zero["reduce_bucket_size"] == "auto"


def test_deepspeed_precision_blocks(tmp_path: Path, env_folder: Path) -> None:
    fp16 = make_spec(
        tmp_path,
        env_folder,
        training={"precision": "fp16"},
        target__instance_type="Standard_NC6s_v3",
        method={"deepspeed": {"stage": 2}},
    )
    # "auto" whatever the spec asks: the entry point's precision fallback decides (transformers fills it in).
    config = deepspeed_config(fp16)
    assert config["fp16"]["enabled"] == "auto" and config["fp16"]["loss_scale"] == 0
    assert config["bf16"] == {"enabled": "auto"}
    fp32 = make_spec(tmp_path, env_folder, training={"precision": "fp32"}, method={"deepspeed": {"stage": 1}})
    config = deepspeed_config(fp32)
    assert config["fp16"]["enabled"] == "auto" and config["bf16"]["enabled"] == "auto"


def test_deepspeed_file_is_content_addressed(tmp_path: Path, env_folder: Path) -> None:
    spec = make_spec(tmp_path, env_folder, method={"deepspeed": {"stage": 3}})
    first = write_deepspeed_config(spec, tmp_path / "ds")
    stamp = first.stat().st_mtime_ns
    second = write_deepspeed_config(spec, tmp_path / "ds")
    assert first == second and second.stat().st_mtime_ns == stamp
    assert (
        first.name.startswith("zero3-") and json.loads(first.read_text())["zero_optimization"]["stage"] == 3
    )
    other = make_spec(tmp_path, env_folder, method={"deepspeed": {"stage": 2}})
    assert write_deepspeed_config(other, tmp_path / "ds") != first


def test_optimizer_offload_with_an_8bit_optimizer_is_refused(tmp_path: Path, env_folder: Path) -> None:
    with pytest.raises(SpecError, match="CPU AdamW") as caught:
        make_spec(
            tmp_path,
            env_folder,
            method={"deepspeed": {"stage": 2, "offload_optimizer": True}, "optimizer": "paged_adamw_8bit"},
        )
    assert caught.value.paths == ["method.optimizer"]


# -- environment -----------------------------------------------------------------------------------------


def test_environment_version_is_stable_and_follows_the_content(tmp_path: Path) -> None:
    source = project_root() / "environments" / "finetune-gpu"
    folder = tmp_path / "finetune-gpu"
    if source.is_dir():
        shutil.copytree(source, folder)
    else:
        folder.mkdir()
        (folder / "Dockerfile").write_text("FROM python:3.11-slim\n")
    first = environment_from_folder(folder)
    second = environment_from_folder(folder)
    assert first.version == second.version == environment_version(folder)
    assert first.name == "azfinetune-finetune-gpu"
    assert first.build.path == str(folder.resolve())
    # Caches never change the version; content does.
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert environment_version(folder) == first.version
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN echo changed\n")
    assert environment_version(folder) != first.version
    if source.is_dir():
        assert environment_version(source) == environment_version(source)


def test_environment_folder_without_definition_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(BuildError, match="defines no environment"):
        environment_from_folder(tmp_path)


def test_environment_yaml_with_image_and_conda(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text("dependencies: [python=3.11]\n")
    (tmp_path / "environment.yaml").write_text(
        "name: my-train-env\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04\nconda_file: conda.yaml\n"
    )
    environment = environment_from_folder(tmp_path)
    assert environment.name == "my-train-env" and environment.image.startswith("mcr.microsoft.com/")
    assert environment.version == environment_version(tmp_path)


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_build_prints_yaml_and_json(examples: Path) -> None:
    runner = CliRunner()
    spec = str(examples / "phi3-mini-lora.yaml")
    result = runner.invoke(build, [spec], obj=Application())
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["type"] == "command" and data["name"].startswith("phi3-mini-support-lora-")
    result = runner.invoke(build, [spec, "--format", "json", "--set", "target.nodes=2"], obj=Application())
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["properties"]["resources"]["instanceCount"] == 2


def test_cli_build_writes_a_file_that_load_job_accepts(examples: Path, tmp_path: Path) -> None:
    from azure.ai.ml import load_job

    out = tmp_path / "exported" / "job.yaml"
    result = CliRunner().invoke(
        build, [str(examples / "phi3-medium-dora-zero3.yaml"), "-o", str(out)], obj=Application()
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    loaded = load_job(out)
    assert loaded.distribution.process_count_per_instance == 8


def test_cli_build_exit_codes(examples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    group = click.Group(commands={"build": build})
    assert run_with_boundary(group, ["build", str(examples / "phi3-mini-lora.yaml"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["properties"]["jobType"] == "Command"
    assert (
        run_with_boundary(group, ["build", str(examples / "phi3-mini-lora.yaml"), "--set", "target.nodes=0"])
        == 2
    )
    assert "target.nodes" in capsys.readouterr().err
    (examples / "data" / "chat-valid.jsonl").unlink()
    assert run_with_boundary(group, ["build", str(examples / "phi3-mini-lora.yaml")]) == 2
    assert "chat-valid.jsonl" in capsys.readouterr().err


def test_export_spec_is_one_call(examples: Path, tmp_path: Path) -> None:
    result = export_spec(examples / "phi3-mini-qlora.yaml", format="json", base_dir=tmp_path)
    assert json.loads(result.text)["name"] == result.job_name
    assert result.warnings == []


def test_export_onnx_runs_at_the_end_of_the_command_job_and_registers_beside_the_mlflow_model(
    examples: Path,
) -> None:
    job = build_job(load_spec(examples / "phi3-mini-lora-onnx.yaml"))
    training, export = job.command.split(" && ")
    assert training.startswith("python -m finetune ")
    words = shlex.split(export)
    assert words[:3] == ["python", "-m", "export_onnx"]
    flags = dict(zip(words[3::2], words[4::2], strict=False))
    assert flags["--base-model"] == "${{inputs.model}}"
    assert flags["--adapter"] == "${{outputs.adapter}}"  # the adapter training just wrote
    assert flags["--output-dir"] == "${{outputs.onnx_model}}"
    assert flags["--validation"] == "${{inputs.validation}}"
    assert (flags["--adapters"], flags["--precision"], flags["--min-token-agreement"]) == (
        "separate",
        "int4",
        "0.9",
    )
    assert (job.outputs["onnx_model"].type, job.outputs["onnx_model"].name) == (
        "custom_model",
        "phi3-mini-support-edge-onnx",
    )
    assert job.outputs["mlflow_model"].name == "phi3-mini-support-edge"


def test_the_training_environment_can_run_the_export_step() -> None:
    """A command job runs export_onnx in the training image: its pins are the export environment's."""
    training = (ROOT / "environments" / "finetune-gpu" / "requirements.txt").read_text().splitlines()
    export = (ROOT / "environments" / "onnx-export" / "requirements.txt").read_text().splitlines()
    for package in ("onnxruntime-genai", "onnxruntime", "onnx", "onnx-ir"):
        pinned = {line for line in export if line.startswith(f"{package}==")}
        assert pinned and pinned <= set(training), package


def test_a_local_run_exports_as_its_own_step_not_in_the_command(examples: Path) -> None:
    spec = load_spec(examples / "phi3-mini-lora-onnx.yaml", overrides=["target={kind: local}"])
    job = build_job(spec)
    assert " && " not in job.command and "onnx_model" not in (job.outputs or {})
