"""target.kind kaito: the examples, their manifests (golden snapshots), the offline validator (CRD schema and
Kaito's admission rules), Kaito's own example Workspaces, and one test per rule."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfinetune.catalog import find_kaito_preset, find_model, kaito_catalog, kaito_preset_names
from azfinetune.errors import SpecError
from azfinetune.spec import load_spec, spec_from_dict
from azfinetune.targets import build_job, check_spec, export_spec, get_target
from azfinetune.targets.kaito import (
    ANNOTATION_SPEC_HASH,
    KaitoJob,
    resource_name,
    spec_from_workspace,
    url_problem,
    validate_config_map,
    validate_manifests,
    validate_workspace,
)
from tests.conftest import checked, refused

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "jobs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots"
KAITO_EXAMPLES = Path(__file__).parent / "kaito_examples"
UPDATE = os.environ.get("UPDATE_SNAPSHOT") == "1"
OURS = ("phi3-mini-kaito", "phi4-mini-kaito")
SECTIONS = {
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
}
URL = "https://example.com/data/train.jsonl"


def spec_file(
    write_spec: Any, *, target: str = "", extra: str = "", model: str = "phi-3-mini-4k-instruct"
) -> Path:
    """A kaito spec beside train.jsonl: the data comes from a URL whose file has the same name. `target`: YAML
    flow keys that replace the defaults'."""
    fields: dict[str, Any] = {
        "kind": "kaito",
        "instance_type": "Standard_NC24ads_A100_v4",
        "output": {"pvc": "out"},
        "input": {"urls": [URL]},
    }
    if target:
        fields.update(yaml.safe_load("{" + target + "}"))
    text = (
        f"name: k1\nmodel: {model}\ndata: {{train: train.jsonl}}\ntraining: {{mask_prompt: false}}\n"
        f"target: {json.dumps(fields)}\n{extra}"
    )
    return write_spec(text)


def issue_at(error: SpecError, path: str) -> Any:
    matches = [i for i in error.issues if i.path == path]
    assert matches, f"no issue at {path}: {error}"
    return matches[0]


def config_of(job: KaitoJob) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(job.config_map["data"]["training_config.yaml"])
    return document


def kaito_documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KAITO_EXAMPLES / name).read_text()) if d]


# -- our examples -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", OURS)
def test_examples_validate_with_their_data_and_pass_schema_and_admission(example: str) -> None:
    report = check_spec(EXAMPLES / f"{example}.yaml", data=True)
    assert report.ok, [str(i) for i in report.errors]
    job = build_job(report.spec)
    assert isinstance(job, KaitoJob)
    assert validate_manifests(job.documents()) == []


@pytest.mark.parametrize("example", OURS)
def test_golden_manifests(example: str) -> None:
    text = export_spec(EXAMPLES / f"{example}.yaml", base_dir=EXAMPLES).text
    from azfinetune import __version__

    text = text.replace(f"azfinetune/version: {__version__}", "azfinetune/version: <version>")
    snapshot = SNAPSHOTS / f"kaito-{example}.yaml"
    if UPDATE:
        snapshot.write_text(text)
    assert snapshot.exists(), f"missing {snapshot}; create it with UPDATE_SNAPSHOT=1"
    assert text == snapshot.read_text()


def test_the_export_is_what_kubectl_apply_takes() -> None:
    result = export_spec(EXAMPLES / "phi3-mini-kaito.yaml", base_dir=EXAMPLES)
    documents = [d for d in yaml.safe_load_all(result.text) if d]
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [
        ("v1", "ConfigMap"),
        ("kaito.sh/v1beta1", "Workspace"),
    ]
    config_map, workspace = documents
    assert "spec" not in workspace and {"resource", "tuning"} <= set(workspace)
    assert workspace["tuning"]["config"] == config_map["metadata"]["name"] == workspace["metadata"]["name"]
    assert result.job_name == workspace["metadata"]["name"]
    as_json = json.loads(
        export_spec(EXAMPLES / "phi3-mini-kaito.yaml", format="json", base_dir=EXAMPLES).text
    )
    assert as_json["kind"] == "List" and as_json["items"] == documents


def test_the_phi3_trap_explicit_fused_modules() -> None:
    job = build_job(load_spec(EXAMPLES / "phi3-mini-kaito.yaml"))
    modules = config_of(job)["training_config"]["LoraConfig"]["target_modules"]
    info = find_model("phi-3-mini-4k-instruct")
    assert info is not None and modules == info.lora_target_modules == [
        "qkv_proj",
        "o_proj",
        "gate_up_proj",
        "down_proj",
    ]
    assert not set(modules) & {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}


def test_the_config_has_only_kaitos_sections_and_the_method_flags() -> None:
    qlora = config_of(build_job(load_spec(EXAMPLES / "phi3-mini-kaito.yaml")))["training_config"]
    lora = config_of(build_job(load_spec(EXAMPLES / "phi4-mini-kaito.yaml")))["training_config"]
    for config in (qlora, lora):
        assert set(config) == SECTIONS
        assert config["TrainingArguments"]["output_dir"].startswith("/mnt/")
    assert qlora["QuantizationConfig"]["load_in_4bit"] is True
    assert not any(lora["QuantizationConfig"].get(k) for k in ("load_in_4bit", "load_in_8bit"))
    assert lora["DatasetConfig"]["dataset_path"] == "data/chat-train.jsonl"  # /mnt/data/chat-train.jsonl


def _kaito_cli_args(section: dict[str, Any]) -> list[str]:
    """Kaito's parser.flatten_config_to_cli_args (presets/workspace/tuning/text-generation/parser.py @ v0.12.0)."""
    args: list[str] = []
    for key, value in section.items():
        if isinstance(value, list):
            args.append(f"--{key}")
            args.extend(map(str, value))
        else:
            args.extend([f"--{key}", str(value)])
    return args


# The fields of Kaito's own dataclasses (cli.py @ v0.12.0) that azfinetune may write.
KAITO_FIELDS = {
    "ModelConfig": {"pretrained_model_name_or_path", "local_files_only", "torch_dtype", "device_map", "chat_template",
                    "revision", "trust_remote_code"},
    "QuantizationConfig": {"quant_method", "load_in_8bit", "load_in_4bit", "bnb_4bit_compute_dtype",
                           "bnb_4bit_quant_type", "bnb_4bit_use_double_quant"},
    "DatasetConfig": {"dataset_path", "dataset_extension", "shuffle_dataset", "shuffle_seed", "context_column",
                      "response_column", "messages_column", "train_test_split"},
    "DataCollator": {"mlm"},
}  # fmt: skip


@pytest.mark.parametrize("example", OURS)
def test_the_sections_parse_in_the_trainers_own_parsers(example: str) -> None:
    """What Kaito's job does with the ConfigMap: TrainingArguments through HfArgumentParser into trl's SFTConfig,
    LoraConfig into peft's LoraConfig, the others into Kaito's dataclasses' fields."""
    from peft import LoraConfig
    from transformers import HfArgumentParser
    from trl import SFTConfig

    config = config_of(build_job(load_spec(EXAMPLES / f"{example}.yaml")))["training_config"]
    # use_cpu: this machine has no GPU for bf16; Kaito's pod has one.
    (arguments,) = HfArgumentParser((SFTConfig,)).parse_args_into_dataclasses(
        [*_kaito_cli_args(config["TrainingArguments"]), "--use_cpu", "True"]
    )
    assert (
        arguments.output_dir == "/mnt/results"
        and arguments.max_length == config["TrainingArguments"]["max_length"]
    )
    assert arguments.warmup_steps == pytest.approx(0.03)
    lora_fields = {f.name for f in dataclasses.fields(LoraConfig)}
    assert set(config["LoraConfig"]) <= lora_fields
    LoraConfig(**config["LoraConfig"])
    for section, fields in KAITO_FIELDS.items():
        assert set(config[section]) <= fields, section


# -- the validator on Kaito's own examples --------------------------------------------------------------------


def test_kaitos_examples_are_copied_with_their_source() -> None:
    names = sorted(p.name for p in KAITO_EXAMPLES.glob("*.yaml"))
    assert len(names) == 5
    for name in names:
        assert (
            (KAITO_EXAMPLES / name)
            .read_text()
            .startswith("# Copied verbatim from github.com/kaito-project/kaito")
        )


def test_kaitos_pvc_example_is_admitted_with_the_phi3_warning() -> None:
    problems = validate_manifests(kaito_documents("kaito_workspace_tuning_phi_3_with_pvc_volume.yaml"))
    assert [p.severity for p in problems] == ["warning"]
    assert "only o_proj and down_proj" in problems[0].message and problems[0].path == "tuning.config"


@pytest.mark.parametrize(
    ("name", "path", "words"),
    [
        (
            "kaito_workspace_tuning_phi_3.yaml",
            "tuning.output.image",
            "Unable to parse output image reference",
        ),
        ("kaito_workspace_tuning_falcon_7b_mental.yaml", "tuning.preset.name", "not a tuning preset"),
        ("kaito_workspace_tuning_falcon_7b_oai.yaml", "tuning.config", "not found in namespace 'default'"),
    ],
)
def test_kaitos_placeholder_examples_are_refused_with_reasons(name: str, path: str, words: str) -> None:
    errors = [p for p in validate_manifests(kaito_documents(name)) if p.severity == "error"]
    assert any(p.path == path and words in p.message for p in errors), [str(p) for p in errors]


def test_kaitos_configmap_example_targets_modules_phi3_lacks() -> None:
    (config_map,) = kaito_documents("kaito_configmap_tuning_phi_3.yaml")
    assert [p for p in validate_config_map(config_map) if p.severity == "error"] == []
    problems = validate_config_map(config_map, method="qlora", preset="phi-3-mini-128k-instruct")
    (warning,) = problems
    assert "q_proj, k_proj, v_proj" in warning.message and warning.path.endswith("LoraConfig.target_modules")
    assert validate_config_map(config_map, method="lora")[0].message.startswith("For method 'lora'")


def _outcome(document: dict[str, Any], base_dir: Path) -> str:
    try:
        report = check_spec(spec_from_dict(document, base_dir=base_dir), data=False)
    except SpecError as error:
        return ",".join(sorted({i.path for i in error.issues}))
    return ",".join(sorted({i.path for i in report.errors})) or "accepted"


def test_kaitos_examples_as_specs(tmp_path: Path) -> None:
    """Each Workspace says what a spec can say: it loads as one and is accepted or refused with the key. Kaito's
    placeholders (ACR_REPO_HERE...) are not image or secret names; with real names the next reason shows."""
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    as_is: dict[str, str] = {}
    filled: dict[str, str] = {}
    for path in sorted(KAITO_EXAMPLES.glob("kaito_workspace_*.yaml")):
        (workspace,) = [d for d in kaito_documents(path.name) if d["kind"] == "Workspace"]
        as_is[path.name] = _outcome(spec_from_workspace(workspace), tmp_path)
        if "image" in workspace["tuning"]["output"]:
            workspace["tuning"]["output"] = {
                "image": "myacr.azurecr.io/adapter:0.0.1",
                "imagePushSecret": "acr-push",
            }
        filled[path.name] = _outcome(spec_from_workspace(workspace), tmp_path)
    placeholders = "target.output.image,target.output.image_push_secret"
    assert as_is == {
        "kaito_workspace_tuning_falcon_7b_mental.yaml": placeholders,
        "kaito_workspace_tuning_falcon_7b_oai.yaml": placeholders,
        "kaito_workspace_tuning_phi_3.yaml": placeholders,
        "kaito_workspace_tuning_phi_3_with_pvc_volume.yaml": "accepted",
    }
    assert filled == {
        "kaito_workspace_tuning_falcon_7b_mental.yaml": "model,target.preset",
        "kaito_workspace_tuning_falcon_7b_oai.yaml": "model,target.preset",
        "kaito_workspace_tuning_phi_3.yaml": "accepted",
        "kaito_workspace_tuning_phi_3_with_pvc_volume.yaml": "accepted",
    }


def test_our_workspace_comes_back_as_the_same_spec() -> None:
    spec = load_spec(EXAMPLES / "phi4-mini-kaito.yaml")
    job = build_job(spec)
    document = spec_from_workspace(job.workspace, job.config_map, data_file="data/chat-train.jsonl")
    again = spec_from_dict({**document, "name": spec.name, "tags": dict(spec.tags)}, base_dir=EXAMPLES)
    assert again.target == spec.target.model_copy(update={})
    assert again.method.effective_lora.target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


# -- the validator's rules, one by one --------------------------------------------------------------------------


def _workspace(**tuning: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "w1", "namespace": "default"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"app": "x"}},
        },
        "tuning": {
            "preset": {"name": "phi-4-mini-instruct"},
            "method": "lora",
            "input": {"urls": ["https://example.com/d.jsonl"]},
            "output": {"volumeSource": {"persistentVolumeClaim": {"claimName": "out"}}},
        },
    }
    base["tuning"].update(tuning)
    return base


def _paths(workspace: dict[str, Any], **kwargs: Any) -> set[str]:
    return {p.path for p in validate_workspace(workspace, **kwargs) if p.severity == "error"}


def test_validator_accepts_a_minimal_tuning_workspace() -> None:
    assert validate_workspace(_workspace()) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"spec": {"tuning": {}}}, "spec"),
        ({"apiVersion": "kaito.sh/v2"}, "apiVersion"),
        (
            {"resource": {"labelSelector": {}, "count": 2, "instanceType": "Standard_NC24ads_A100_v4"}},
            "resource.count",
        ),
        ({"resource": {"instanceType": "Standard_NC24ads_A100_v4"}}, "resource.labelSelector"),
        ({"resource": {"labelSelector": {}}}, "resource.instanceType"),
        ({"metadata": {"name": "Not_A_Label"}}, "metadata.name"),
        ({"inference": {"preset": {"name": "phi-4"}}}, ""),
        (
            {"resource": {"labelSelector": {}, "instanceType": "x", "partition": {"mode": "mig"}}},
            "resource.partition",
        ),
        ({"resource": {"labelSelector": {}, "instanceType": "x", "gpus": 2}}, "resource.gpus"),
    ],
)
def test_validator_refuses_workspace_shapes(change: dict[str, Any], path: str) -> None:
    workspace = {**_workspace(), **change}
    assert path in _paths(workspace)


@pytest.mark.parametrize(
    ("tuning", "path"),
    [
        ({"method": "dora"}, "tuning.method"),
        ({"method": "full"}, "tuning.method"),
        ({"input": {"urls": ["https://e.com/a"], "image": "acr.io/d:1"}}, "tuning.input"),
        ({"input": {}}, "tuning.input"),
        ({"input": {"urls": ["http://127.0.0.1/a"]}}, "tuning.input.urls[0]"),
        ({"input": {"urls": ["https://10.1.2.3/a"]}}, "tuning.input.urls[0]"),
        ({"input": {"urls": ["http://169.254.169.254/latest"]}}, "tuning.input.urls[0]"),
        ({"input": {"urls": ["https://metadata.google.internal/x"]}}, "tuning.input.urls[0]"),
        ({"input": {"urls": ["ftp://example.com/a"]}}, "tuning.input.urls[0]"),
        ({"output": {"image": "acr.io/a:1"}}, "tuning.output.imagePushSecret"),
        ({"output": {"image": "acr.io/a:1", "imagePushSecret": "s", "volumeSource": {}}}, "tuning.output"),
        ({"output": {}}, "tuning.output"),
        ({"preset": {"name": "falcon-7b"}}, "tuning.preset.name"),
        ({"preset": {"name": "phi-4", "bogus": 1}}, "tuning.preset.bogus"),
        ({"config": "missing"}, "tuning.config"),
    ],
)
def test_validator_refuses_what_kaito_refuses(tuning: dict[str, Any], path: str) -> None:
    assert path in _paths(_workspace(**tuning), config_maps={})


def test_validator_warns_about_signed_urls_kaito_admits() -> None:
    problems = validate_workspace(
        _workspace(input={"urls": ["https://acct.blob.core.windows.net/c/d.jsonl?sv=1&sig=SECRET"]})
    )
    assert [p.severity for p in problems] == ["warning"] and "SECRET" not in str(problems[0])


def _config_map(config: Any, name: str = "cfg") -> dict[str, Any]:
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"training_config.yaml": text},
    }


@pytest.mark.parametrize(
    ("config", "method", "words"),
    [
        ({"training_config": {"Bogus": {}}}, "lora", "Unrecognized section"),
        ({"other": {}}, "lora", "Expected 'training_config'"),
        ("a: [", "lora", "not YAML"),
        ({"training_config": {"QuantizationConfig": {"load_in_4bit": True}}}, "lora", "must not be true"),
        ({"training_config": {"QuantizationConfig": {"load_in_4bit": False}}}, "qlora", "must be true"),
        ({"training_config": {}}, "qlora", "must be true"),
        (
            {"training_config": {"QuantizationConfig": {"load_in_4bit": True, "load_in_8bit": True}}},
            "qlora",
            "both",
        ),
        ({"training_config": {"QuantizationConfig": {"load_in_4bit": "yes"}}}, "qlora", "nil or a boolean"),
        ({"training_config": {"TrainingArguments": {"output_dir": "/mnt/.."}}}, "lora", "Invalid output_dir"),
        (
            {"training_config": {"TrainingArguments": {"output_dir": "../../etc"}}},
            "lora",
            "Invalid output_dir",
        ),
        ({"training_config": {"TrainingArguments": {"output_dir": 3}}}, "lora", "not a string"),
    ],
)
def test_validator_refuses_config_maps_kaito_refuses(config: Any, method: str, words: str) -> None:
    workspace = _workspace(method=method, config="cfg")
    problems = validate_manifests([_config_map(config), workspace])
    assert any(p.severity == "error" and words in p.message for p in problems), [str(p) for p in problems]


def test_a_configmap_without_its_file_is_refused() -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"other": "x"},
    }
    problems = validate_manifests([config_map, _workspace(config="cfg")])
    assert any("does not contain 'training_config.yaml'" in p.message for p in problems)


# -- the spec rules -----------------------------------------------------------------------------------------


def test_a_valid_kaito_spec(write_spec: Any) -> None:
    spec = checked(spec_file(write_spec))
    job = build_job(spec)
    assert job.workspace["tuning"]["input"] == {"urls": [URL]}
    assert job.workspace["tuning"]["output"] == {
        "volumeSource": {"persistentVolumeClaim": {"claimName": "out"}}
    }


@pytest.mark.parametrize("technique", ["dora", "full"])
def test_technique_lora_or_qlora_only(write_spec: Any, technique: str) -> None:
    error = refused(spec_file(write_spec, extra=f"method: {{technique: {technique}}}\n"))
    issue = issue_at(error, "method.technique")
    assert "kaito" in issue.message and "lora, qlora" in issue.message


def test_count_is_one_there_is_no_nodes_key(write_spec: Any) -> None:
    error = refused(spec_file(write_spec, target="nodes: 2"))
    assert any(i.path == "target.nodes" for i in error.issues)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/train.jsonl", "not https"),
        ("https://user:pw@example.com/train.jsonl", "credentials"),
        ("https://acct.blob.core.windows.net/c/train.jsonl?sv=2024&sig=abc", "sig"),
        ("https://bucket.s3.amazonaws.com/train.jsonl?X-Amz-Signature=abc", "signature or token"),
        ("https://localhost/train.jsonl", "local or metadata"),
        ("https://127.0.0.1/train.jsonl", "loopback"),
        ("https://10.0.0.4/train.jsonl", "private"),
        ("https://[::1]/train.jsonl", "loopback"),
        ("https://169.254.169.254/train.jsonl", "link-local"),
        ("https://metadata.google.internal/train.jsonl", "metadata"),
    ],
)
def test_data_urls_public_https_without_secrets(write_spec: Any, url: str, words: str) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-3-mini-4k-instruct\ndata: {train: train.jsonl}\ntraining: {mask_prompt: false}\n"
        f"target: {{kind: kaito, output: {{pvc: out}}, input: {{urls: ['{url}']}}}}\n"
    )
    issue = issue_at(refused(path), "target.input.urls[0]")
    assert words in issue.message
    for secret in ("pw", "abc"):
        assert f"={secret}" not in str(issue) and f":{secret}@" not in str(issue)
    assert url_problem(url) is not None


def test_a_public_url_is_fine() -> None:
    assert url_problem("https://huggingface.co/datasets/x/resolve/main/train.jsonl?download=true") is None


def test_data_train_as_the_url(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: 'https://example.com/d/chat.jsonl'}\n"
        "training: {mask_prompt: false}\ntarget: {kind: kaito, instance_type: Standard_NC24ads_A100_v4, output: {pvc: o}}\n"
    )
    job = build_job(checked(path))
    assert job.workspace["tuning"]["input"] == {"urls": ["https://example.com/d/chat.jsonl"]}
    assert config_of(job)["training_config"]["DatasetConfig"]["dataset_path"] == "data/chat.jsonl"


def test_a_sas_data_url_is_refused_at_load(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: 'https://a.blob.core.windows.net/c/d.jsonl?sig=s3cret'}\n"
        "target: {kind: kaito, output: {pvc: o}}\n"
    )
    error = refused(path)
    assert issue_at(error, "data.train") and "s3cret" not in str(error)


def test_the_preset_must_exist_for_the_model(write_spec: Any) -> None:
    issue = issue_at(refused(spec_file(write_spec, model="llama-3.1-8b-instruct")), "model")
    assert "no tuning preset" in issue.message and "phi-4-mini-instruct" in (issue.hint or "")


def test_the_preset_map_from_our_model_ids() -> None:
    for ref in (
        "microsoft/Phi-3-mini-4k-instruct",
        "hf:microsoft/Phi-3-mini-4k-instruct",
        "phi-3-mini-4k-instruct",
    ):
        preset = find_kaito_preset(ref)
        assert preset is not None and preset.name == "phi-3-mini-4k-instruct"
    assert {p.model for p in kaito_catalog().presets if p.model} <= {m for m in _aliases()}
    assert "mistral-7b-v0.3" in kaito_preset_names() and kaito_catalog().preset("phi-4") is not None


def _aliases() -> set[str]:
    from azfinetune.catalog import model_aliases

    return set(model_aliases())


@pytest.mark.parametrize(
    ("preset", "words"),
    [("falcon-7b", "not a tuning preset"), ("phi-4", "loads microsoft/phi-4")],
)
def test_preset_override(write_spec: Any, preset: str, words: str) -> None:
    issue = issue_at(refused(spec_file(write_spec, target=f"preset: {preset}")), "target.preset")
    assert words in issue.message


def test_a_preset_override_for_a_model_our_catalog_lacks_needs_explicit_modules(write_spec: Any) -> None:
    error = refused(spec_file(write_spec, model="hf:Qwen/Qwen2.5-Coder-7B-Instruct"))
    issue_at(error, "method.lora.target_modules")
    spec = checked(
        spec_file(
            write_spec,
            model="hf:Qwen/Qwen2.5-Coder-7B-Instruct",
            extra="method: {lora: {target_modules: [q_proj, k_proj, v_proj, o_proj]}}\n",
        ).parent
        / "spec.yaml",
        overrides={"training.max_seq_length": 4096},
    )
    job = build_job(spec)
    assert job.preset == "qwen2.5-coder-7b-instruct"


def test_kaitos_default_phi3_modules_are_refused(write_spec: Any) -> None:
    modules = ", ".join(kaito_catalog().phi3_default_target_modules)
    error = refused(spec_file(write_spec, extra=f"method: {{lora: {{target_modules: [{modules}]}}}}\n"))
    assert "no linear module 'k_proj'" in issue_at(error, "method.lora.target_modules[0]").message


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("input: {urls: ['https://e.com/train.jsonl'], pvc: data}", "target.input"),
        ("output: {pvc: o, image: 'acr.io/a:1', image_push_secret: s}", "target.output"),
        ("output: {image: 'acr.io/a:1'}", "target.output.image_push_secret"),
        ("output: {pvc: o, image_push_secret: s}", "target.output.image_push_secret"),
        ("input: {pvc: data, image_pull_secrets: [s]}", "target.input.image_pull_secrets"),
        ("output: {image: 'Not An Image'}", "target.output.image"),
        ("namespace: Bad_NS", "target.namespace"),
        ("label_selector: {'bad key!': x}", "target.label_selector"),
    ],
)
def test_input_and_output_exactly_one(write_spec: Any, target: str, path: str) -> None:
    error = refused(spec_file(write_spec, target=target))
    assert any(i.path == path for i in error.issues), [str(i) for i in error.issues]


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("data: {train: train.jsonl, validation: train.jsonl}\n", "data.validation"),
        ("method: {deepspeed: {stage: 2}}\n", "method.deepspeed"),
        (
            "method: {technique: qlora, quantization: {storage_dtype: bf16}}\n",
            "method.quantization.storage_dtype",
        ),
        ("training: {save_total_limit: 2, mask_prompt: false}\n", "training.save_total_limit"),
        ("training: {metric_for_best_model: loss, mask_prompt: false}\n", "training.metric_for_best_model"),
        ("training: {mask_prompt: true}\n", "training.mask_prompt"),
        ("register: {model_name: m}\n", "register"),
        ("secrets: {HF_TOKEN: 'keyvault://kv/hf'}\n", "secrets"),
        ("data: {train: train.jsonl, columns: {messages: conv}}\n", "data.columns"),
        ("tags: {'bad key!': x}\n", "tags.bad key!"),
    ],
)
def test_what_kaito_does_not_take(write_spec: Any, extra: str, path: str) -> None:
    text = spec_file(write_spec).read_text().replace("data: {train: train.jsonl}\n", "")
    text = text.replace("training: {mask_prompt: false}\n", "") if "training:" in extra else text
    if "data:" not in extra:
        text += "data: {train: train.jsonl}\n"
    error = refused(write_spec(text + extra))
    assert any(i.path == path for i in error.issues), [str(i) for i in error.issues]


def test_a_local_file_needs_an_input(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\ntraining: {mask_prompt: false}\n"
        "target: {kind: kaito, output: {pvc: o}}\n"
    )
    assert "cannot upload" in issue_at(refused(path), "target.input").message


def test_the_local_copy_must_be_one_of_the_urls_files(write_spec: Any) -> None:
    error = refused(
        spec_file(write_spec, target="input: {urls: ['https://e.com/other.jsonl']}").parent / "spec.yaml"
    )
    assert "train.jsonl" in issue_at(error, "data.train").message


def test_a_url_data_train_with_a_volume_input(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: 'https://e.com/d.jsonl'}\ntraining: {mask_prompt: false}\n"
        "target: {kind: kaito, input: {pvc: d}, output: {pvc: o}}\n"
    )
    issue_at(refused(path), "data.train")


def test_an_azureml_asset_is_refused(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: 'azureml:chat:1'}\ntraining: {mask_prompt: false}\n"
        "target: {kind: kaito, output: {pvc: o}}\n"
    )
    assert "Azure ML data asset" in issue_at(refused(path), "data.train").message


def test_the_default_mask_prompt_is_a_warning_and_the_instance_type_is_needed(write_spec: Any) -> None:
    path = write_spec(
        "name: k1\nmodel: phi-4-mini-instruct\ndata: {train: 'https://e.com/d.jsonl'}\ntarget: {kind: kaito, output: {pvc: o}}\n"
    )
    report = check_spec(path, data=False)
    assert [i.path for i in report.errors] == ["target.instance_type"]
    assert "auto-provisioning" in report.errors[0].message
    assert [w.path for w in report.warnings] == ["training.mask_prompt"]


def test_qlora_and_text_completion(write_spec: Any) -> None:
    spec = checked(
        spec_file(
            write_spec, extra="task: text-completion\nmethod: {technique: qlora, quantization: {type: fp4}}\n"
        )
    )
    config = config_of(build_job(spec))["training_config"]
    assert config["QuantizationConfig"] == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "fp4",
        "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_use_double_quant": True,
    }
    assert config["TrainingArguments"]["completion_only_loss"] is False  # mask_prompt: false in spec_file


# -- names ------------------------------------------------------------------------------------------------------


def test_the_name_is_a_content_hash(write_spec: Any, tmp_path: Path) -> None:
    spec = checked(spec_file(write_spec))
    job = build_job(spec)
    assert job.name == resource_name(spec) == build_job(checked(tmp_path / "spec.yaml")).name
    assert job.workspace["metadata"]["annotations"][ANNOTATION_SPEC_HASH].startswith(
        job.name.rsplit("-", 1)[1]
    )
    (tmp_path / "train.jsonl").write_text((tmp_path / "train.jsonl").read_text() + "\n")
    assert build_job(checked(tmp_path / "spec.yaml")).name != job.name  # the data's content is in the hash
    other = checked(tmp_path / "spec.yaml", overrides={"training.epochs": 1})
    assert build_job(other).name != job.name


def test_a_long_spec_name_gives_a_dns_label(write_spec: Any) -> None:
    long = "a_" + "b" * 62
    spec = checked(spec_file(write_spec), overrides={"name": long})
    name = build_job(spec).name
    assert len(name) <= 63 and "_" not in name and name.startswith("a-bbb")
    assert validate_manifests(build_job(spec).documents()) == []


def test_the_target_is_registered() -> None:
    target = get_target("kaito")
    assert target.service == "kaito" and not target.runs_our_code


# -- plan --------------------------------------------------------------------------------------------------------


def test_plan_memory_per_gpu_and_the_presets_disk() -> None:
    from azfinetune.planner import plan

    result = plan(load_spec(EXAMPLES / "phi3-mini-kaito.yaml"))
    assert result.sku == "Standard_NC24ads_A100_v4" and result.fits and result.technique == "qlora"
    assert result.disk == "80Gi" and "phi-3-mini-4k-instruct" in (result.disk_note or "")
    assert {(a.technique, a.zero, a.nodes) for a in result.alternatives} <= {
        ("lora", "off", 1),
        ("qlora", "off", 1),
    }
    assert result.to_dict()["disk"] == "80Gi"
    lora = plan(load_spec(EXAMPLES / "phi4-mini-kaito.yaml"))
    assert lora.technique == "lora" and lora.disk == "70Gi" and lora.total > 0


def test_a_job_that_cannot_fit_the_node_is_refused(write_spec: Any) -> None:
    path = spec_file(write_spec, model="phi-4", target="instance_type: Standard_NC6s_v3")
    issue = issue_at(refused(path), "target.instance_type")
    assert "cannot fit" in issue.message


def test_the_plan_command_prints_the_disk(capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.cli import cli
    from azfinetune.cli._app import run_with_boundary

    code = run_with_boundary(cli, ["plan", str(EXAMPLES / "phi4-mini-kaito.yaml"), "--json"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["disk"] == "70Gi"
