"""load_spec(): valid specs, the bad-spec corpus (line, column, key path for each), overrides, Python builds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import FineTuneSpec, Technique, load_spec
from azfinetune.targets.local import preflight
from tests.conftest import checked

GOOD = """\
name: support-bot
model: phi-3-mini-4k-instruct
data:
  train: train.jsonl
target:
  kind: command
  compute: gpu-a100
  instance_type: Standard_NC24ads_A100_v4
"""


def test_good_spec_fills_phi3_lora_defaults(write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(write_spec(GOOD))
    assert spec.method.technique is Technique.LORA
    assert spec.method.effective_lora.r == 16
    assert spec.training.precision.value == "bf16"
    assert spec.resolve_path(spec.data.train).name == "train.jsonl"
    assert spec.position("target.compute") == (7, 3)


def test_python_kwargs_and_dicts_get_the_same_checks(tmp_path: Path) -> None:
    spec = FineTuneSpec(
        name="py-spec",
        model="phi-3-mini-4k-instruct",
        data={"train": "x.jsonl"},
        target={"kind": "command", "compute": "gpu-a100"},
    )
    assert spec.target.compute == "gpu-a100"
    with pytest.raises(SpecError) as caught:
        FineTuneSpec(
            name="py-spec", model="phi-3-mini-4k-instruct", data={"train": "x"}, method={"lora": {"r": 0}}
        )
    assert caught.value.paths == ["method.lora.r"]
    # Validity is the same on every machine: the Hugging Face cache is the local run's pre-run check.
    local = FineTuneSpec(name="py-spec", model="phi-3-mini-4k-instruct", data={"train": "x"})
    problems = preflight(local, allow_download=False)
    assert [p.path for p in problems] == ["model"] and "Hugging Face cache" in problems[0].message
    with pytest.raises(SpecError) as caught:
        FineTuneSpec(
            name="py-spec",
            model="phi-3-mini-4k-instruct",
            data={"train": "x"},
            method={"technique": "full", "lora": {"r": 8}},
            target={"kind": "command", "compute": "gpu-a100"},
        )
    assert caught.value.paths == ["method.lora"]


def test_assignment_is_validated() -> None:
    spec = FineTuneSpec(
        name="py-spec",
        model="phi-3-mini-4k-instruct",
        data={"train": "x.jsonl"},
        target={"kind": "command", "compute": "gpu-a100"},
    )
    with pytest.raises(Exception, match="greater than or equal"):
        spec.training.per_device_batch_size = 0


def test_several_errors_are_all_reported(write_spec) -> None:  # type: ignore[no-untyped-def]
    text = GOOD + "training:\n  epochs: 0\n  learning_rat: 1\n  precision: bf17\n"
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(text))
    assert sorted(caught.value.paths) == ["training.epochs", "training.learning_rat", "training.precision"]
    rendered = str(caught.value)
    assert "did you mean 'learning_rate'?" in rendered
    assert "did you mean 'bf16'?" in rendered


def test_overrides_apply_before_validation(write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(GOOD)
    spec = load_spec(path, overrides=["training.epochs=1", "method.lora.r=8", "tags.team=ml"])
    assert spec.training.epochs == 1
    assert spec.method.effective_lora.r == 8
    assert spec.tags == {"team": "ml"}
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides=["training.epochs=0"])
    (issue,) = caught.value.issues
    assert issue.file == "--set" and issue.path == "training.epochs"
    with pytest.raises(SpecError, match=r"key\.path=value"):
        load_spec(path, overrides=["epochs"])


def test_content_hash_is_stable_and_ignores_description(write_spec) -> None:  # type: ignore[no-untyped-def]
    a = load_spec(write_spec(GOOD, "a.yaml"))
    b = load_spec(write_spec("description: other words\n" + GOOD, "b.yaml"))
    c = load_spec(write_spec(GOOD, "c.yaml"), overrides=["training.seed=1"])
    assert a.content_hash() == b.content_hash() != c.content_hash()


def _bad(*lines: str) -> str:
    return "\n".join(lines) + "\n"


BASE = (
    "name: bad-spec",
    "model: phi-3-mini-4k-instruct",
    "data:",
    "  train: train.jsonl",
)
COMMAND = ("target:", "  kind: command", "  compute: gpu-a100", "  instance_type: Standard_NC24ads_A100_v4")

# (id, spec text, expected key path, expected line, a fragment of the message)
CORPUS = [
    pytest.param(_bad("name: x", "model: [unclosed"), "", 3, "YAML syntax", id="yaml-unclosed-flow"),
    pytest.param(_bad("name: x", "  model: y", " data: z"), "", 2, "YAML syntax", id="yaml-bad-indent"),
    pytest.param(_bad("name: 'x"), "", None, "YAML syntax", id="yaml-unterminated-quote"),
    pytest.param(_bad("- a", "- b"), "", 1, "must be a mapping", id="top-level-list"),
    pytest.param("", "", 1, "empty", id="empty-file"),
    pytest.param(_bad(*BASE, "name: again"), "name", 5, "duplicate key", id="duplicate-key"),
    pytest.param(_bad(*BASE[1:]), "name", 1, "required key is missing", id="missing-name"),
    pytest.param(_bad("name: x", "model: phi-3-mini-4k-instruct"), "data", 1, "missing", id="missing-data"),
    pytest.param(_bad(*BASE, "modle: x"), "modle", 5, "did you mean 'model'", id="typo-top-level"),
    pytest.param(
        _bad(*BASE, "training:", "  learning_rat: 0.1"),
        "training.learning_rat",
        6,
        "learning_rate",
        id="typo-nested",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  lora: {rank: 8}"), "method.lora.rank", 6, "unknown key", id="typo-lora"
    ),
    pytest.param(
        _bad(*BASE, "target:", "  knd: local"), "target.knd", 6, "did you mean 'kind'", id="typo-target"
    ),
    pytest.param(_bad("name: Bad Name", *BASE[1:]), "name", 1, "job name", id="name-uppercase-space"),
    pytest.param(_bad("name: " + "a" * 65, *BASE[1:]), "name", 1, "job name", id="name-too-long"),
    pytest.param(_bad(*BASE, "task: chat"), "task", 5, "did you mean 'chat-completion'", id="task-unknown"),
    pytest.param(
        _bad(*BASE, "method:", "  technique: lorra"),
        "method.technique",
        6,
        "did you mean 'lora'",
        id="technique-typo",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  lora: {r: 0}"), "method.lora.r", 6, "must be ≥ 1, got 0", id="lora-r-zero"
    ),
    pytest.param(
        _bad(*BASE, "method:", "  lora: {dropout: 1.5}"),
        "method.lora.dropout",
        6,
        "must be <",
        id="lora-dropout",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  epochs: three"),
        "training.epochs",
        6,
        "must be a number",
        id="epochs-not-number",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  learning_rate: 5"),
        "training.learning_rate",
        6,
        "must be ≤ 0.1",
        id="lr-too-high",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  per_device_batch_size: 0"),
        "training.per_device_batch_size",
        6,
        "must be ≥ 1",
        id="batch-zero",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  max_seq_length: 8"),
        "training.max_seq_length",
        6,
        "must be ≥ 16",
        id="seq-too-short",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  max_steps: 0"), "training.max_steps", 6, "at least 1", id="max-steps-0"
    ),
    pytest.param(
        _bad(*BASE, "training:", "  gradient_checkpointing: maybe"),
        "training.gradient_checkpointing",
        6,
        "true or false",
        id="bool-wrong",
    ),
    pytest.param(_bad(*BASE, "training: 3"), "training", 5, "must be a mapping", id="section-not-mapping"),
    pytest.param(
        _bad(*BASE, "method:", "  technique: qlora", "  quantization: {bits: 8}", *COMMAND),
        "method.quantization.bits",
        7,
        "4-bit",
        id="qlora-needs-4bit",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  quantization: {bits: 4}", *COMMAND),
        "method.quantization",
        6,
        "only used by technique qlora",
        id="quantization-without-qlora",
    ),
    pytest.param(
        _bad(
            *BASE,
            "training:",
            "  precision: bf16",
            "target:",
            "  kind: command",
            "  compute: gpu-v100",
            "  instance_type: Standard_NC6s_v3",
        ),
        "training.precision",
        6,
        "compute capability",
        id="bf16-on-v100",
    ),
    pytest.param(
        _bad(
            *BASE,
            "target:",
            "  kind: command",
            "  compute: gpu-a100",
            "  instance_type: Standard_NC24ads_A100_v4",
            "  gpus_per_node: 4",
        ),
        "target.gpus_per_node",
        9,
        "has 1 GPU",
        id="gpus-per-node-over-sku",
    ),
    pytest.param(
        _bad(
            *BASE,
            "method:",
            "  technique: qlora",
            "  quantization: {storage_dtype: uint8}",
            "  deepspeed: {stage: 3}",
            *COMMAND,
        ),
        "method.quantization.storage_dtype",
        7,
        "storage dtype",
        id="zero3-qlora-storage",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: phi-3-small-8k-instruct",
            "data:",
            "  train: train.jsonl",
            "target:",
            "  kind: serverless",
        ),
        "model",
        2,
        "not offered for serverless",
        id="serverless-model-not-offered",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: phi-4-mini-instruct",
            "data:",
            "  train: train.jsonl",
            "training:",
            "  warmup_ratio: 0.1",
            "target:",
            "  kind: serverless",
        ),
        "training.warmup_ratio",
        6,
        "does not take",
        id="serverless-hyperparameter",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: phi-4-mini-instruct",
            "data:",
            "  train: train.jsonl",
            "target:",
            "  kind: serverless",
            "  compute: gpu-a100",
        ),
        "target.compute",
        7,
        "finetuning-job",
        id="serverless-with-compute",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: ./no-such-model",
            "data:",
            "  train: train.jsonl",
            "target:",
            "  kind: local",
        ),
        "model",
        2,
        "no model at",
        id="local-model-missing",
    ),
    pytest.param(
        _bad(*BASE, "secrets:", "  HF_TOKEN: hf_abcdefghijklmnop"),
        "secrets",
        5,
        "Key Vault reference",
        id="literal-secret",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: phi-3-mini-4k-instruct",
            "data:",
            "  train: https://acct.blob.core.windows.net/c/train.jsonl?sv=1&sig=abc",
        ),
        "data.train",
        4,
        "SAS",
        id="sas-uri",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  deepspeed: {stage: 2, offload_params: true}", *COMMAND),
        "method.deepspeed.offload_params",
        6,
        "stage 3",
        id="offload-params-needs-stage3",
    ),
    pytest.param(
        _bad(*BASE, "target:", "  kind: local", "  nodes: 2"),
        "target.nodes",
        7,
        "unknown key 'nodes' for target.kind local (nodes is a key of target.kind command",
        id="local-multi-node",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  technique: full", "  lora: {r: 8}", *COMMAND),
        "method.lora",
        7,
        "technique is full",
        id="lora-with-full",
    ),
    pytest.param(
        _bad(*BASE, "target:", "  kind: command"),
        "target.compute",
        5,
        "required key is missing (set target.compute to your AmlCompute cluster",
        id="command-without-compute",
    ),
    pytest.param(
        _bad(*BASE, "target:", "  kind: command", "  compute: gpu-a100", "  instance_type: Standard_XYZ"),
        "target.instance_type",
        8,
        "unknown",
        id="unknown-sku",
    ),
    pytest.param(
        _bad("name: bad-spec", "model: phi-9-giant", "data:", "  train: train.jsonl"),
        "model",
        2,
        "phi-3-mini-4k-instruct",
        id="unknown-model-alias",
    ),
    pytest.param(
        _bad(
            *BASE,
            "method:",
            "  technique: dora",
            "target:",
            "  kind: registry-pipeline",
            "  compute: gpu-a100",
        ),
        "method.technique",
        6,
        "cannot do dora",
        id="registry-no-dora",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  onnxruntime: true", *COMMAND),
        "method.onnxruntime",
        6,
        "target.apply_ort",
        id="ort-moved-to-target",
    ),
    pytest.param(
        _bad(*BASE, "training:", "  max_seq_length: 8192", *COMMAND),
        "training.max_seq_length",
        6,
        "context of 4096",
        id="seq-over-context",
    ),
    pytest.param(
        _bad(*BASE, "method:", "  lora: {target_modules: [q_proj]}", *COMMAND),
        "method.lora.target_modules[0]",
        6,
        "no linear module 'q_proj'",
        id="wrong-phi3-target-module",
    ),
    pytest.param(
        _bad(*BASE, "register: {model_name: 'bad name!'}"),
        "register.model_name",
        5,
        "asset name",
        id="register-name",
    ),
    pytest.param(
        _bad(*BASE, "register: {model_name: m, min_eval: {eval_loss: 'small'}}"),
        "register.min_eval",
        5,
        "'<= 1.2'",
        id="min-eval-syntax",
    ),
    pytest.param(
        _bad(*BASE, "target:", "  kind: command", "  compute: 9gpu"),
        "target.compute",
        7,
        "not an AmlCompute name",
        id="compute-name",
    ),
    pytest.param(
        _bad(
            "name: bad-spec",
            "model: azureml://registries/azureml/models/Phi-3",
            "data:",
            "  train: train.jsonl",
        ),
        "model",
        2,
        "versions",
        id="registry-uri-malformed",
    ),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), CORPUS)
def test_bad_spec_corpus(write_spec, text: str, path: str, line: int | None, fragment: str) -> None:  # type: ignore[no-untyped-def]
    spec_path = write_spec(text)
    with pytest.raises(SpecError) as caught:
        checked(spec_path)
    error = caught.value
    assert path in error.paths, f"expected {path!r} in {error.paths}: {error}"
    issue = next(i for i in error.issues if i.path == path)
    assert issue.file == str(spec_path)
    if line is not None:
        assert issue.line == line, str(error)
    assert fragment in str(error)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


def test_error_renders_file_line_column_path(write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(textwrap.dedent(GOOD) + "method:\n  lora: {r: 0}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{path}:10:10: method.lora.r: must be ≥ 1, got 0" in str(caught.value)


def test_literal_secret_value_is_never_echoed(write_spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(GOOD + "secrets:\n  HF_TOKEN: hf_supersecretvalue123\n"))
    assert "hf_supersecretvalue123" not in str(caught.value)


def test_examples_all_pass_the_offline_checks() -> None:
    from tests.conftest import EXAMPLES

    # quickstart.yaml points at the tiny model that `azfinetune demo` writes; tests/local runs it.
    specs = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "quickstart.yaml")
    assert len(specs) >= 8
    for path in specs:
        checked(path)


def test_data_columns_are_the_contracts_columns() -> None:
    """The column table exists once (azft_contract); the spec offers exactly its logical columns."""
    from azft_contract import COLUMN_KEYS

    from azfinetune.spec import DataColumns

    assert sorted(DataColumns.model_fields) == sorted(COLUMN_KEYS)
