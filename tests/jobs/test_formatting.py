"""Unit tests of the entry point's pieces: chat formatting and masking, flags, data checks, model lookup, secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from finetune import data as datalib
from finetune.args import parse_args
from finetune.errors import TrainingError, UsageError

pytestmark = pytest.mark.training

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What color is a lime?"},
    {"role": "assistant", "content": "A lime is green."},
    {"role": "user", "content": "Add 2 and 3."},
    {"role": "assistant", "content": "2 plus 3 is 5."},
]


def _argv(tmp_path: Path, *extra: str, task: str = "chat-completion") -> list[str]:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        train.write_text(json.dumps({"messages": MESSAGES}) + "\n")
    return [
        "--task",
        task,
        "--model",
        str(tmp_path),
        "--train-file",
        str(train),
        "--output-dir",
        str(tmp_path / "o"),
        *extra,
    ]


@pytest.fixture(scope="module")
def tokenizer(tiny_phi3: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_phi3)


def _trained_text(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    return str(tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100]))


def test_chat_template_is_applied(tokenizer: Any) -> None:
    row = datalib.tokenize_chat(tokenizer, MESSAGES, mask_prompt=True)
    text = tokenizer.decode(row["input_ids"])
    assert text.startswith(
        "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat color is a lime?<|end|>\n<|assistant|>\n"
    )
    assert text == tokenizer.apply_chat_template(MESSAGES, tokenize=False)


def test_prompt_tokens_are_masked(tokenizer: Any) -> None:
    row = datalib.tokenize_chat(tokenizer, MESSAGES, mask_prompt=True)
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels)
    # Exactly the two assistant turns (with their end-of-turn tokens, and the final EOS) are trained.
    trained = _trained_text(tokenizer, ids, labels)
    assert trained == "A lime is green.<|end|>\n2 plus 3 is 5.<|end|>\n<|endoftext|>"
    # Every system/user token, and every role header, is -100.
    for token_id, label in zip(ids, labels, strict=True):
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if piece in ("<|system|>", "<|user|>", "<|assistant|>"):
            assert label == -100
    first_trained = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:first_trained]).endswith("<|assistant|>\n")
    assert all(label == -100 for label in labels[:first_trained])


def test_mask_prompt_false_trains_every_token(tokenizer: Any) -> None:
    row = datalib.tokenize_chat(tokenizer, MESSAGES, mask_prompt=False)
    assert row["labels"] == row["input_ids"]


def test_template_without_chat_template_falls_back(tokenizer: Any) -> None:
    clone = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    clone.chat_template = None
    datalib.ensure_chat_template(clone)
    row = datalib.tokenize_chat(clone, MESSAGES[1:3], mask_prompt=True)
    assert clone.decode(row["input_ids"]).startswith("### user:\nWhat color is a lime?\n### assistant:\n")
    assert _trained_text(clone, row["input_ids"], row["labels"]).startswith("A lime is green.")


def _write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_splits_gives_the_trainer_the_contract_examples(tmp_path: Path) -> None:
    train = _write_lines(tmp_path / "train.jsonl", [{"messages": MESSAGES}] * 3)
    args = parse_args(_argv(tmp_path))
    splits = datalib.load_splits(args)
    assert list(splits.train) == [{"messages": MESSAGES}] * 3
    assert splits.train.where(2) == f"{train}:3" and splits.validation is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, r":3: messages: no assistant message"),
        ({"messages": []}, r":3: messages: 'messages' is empty"),
        (
            {"messages": [{"role": "wizard", "content": "x"}]},
            r":3: messages\[0\].role: unknown role 'wizard'",
        ),
        ({"text": "no messages"}, r":3: messages: no 'messages' key"),
        (
            {"messages": [{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "hi"}]},
            r":3: messages\[0\].role: the conversation starts with an assistant message",
        ),
    ],
)
def test_bad_chat_records_are_usage_errors_with_their_line(
    tmp_path: Path, record: dict[str, Any], message: str
) -> None:
    _write_lines(tmp_path / "train.jsonl", [{"messages": MESSAGES}] * 2 + [record])
    with pytest.raises(UsageError, match=message):
        datalib.load_splits(parse_args(_argv(tmp_path)))


def test_read_split_names_the_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(UsageError, match=r"broken.jsonl:2:10: not valid JSON"):
        datalib.read_split(path, "text-completion", None, "train")


def test_unseen_validation_labels_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = _write_lines(
        tmp_path / "train.jsonl", [{"text": f"t{i}", "label": ["a", "b"][i % 2]} for i in range(4)]
    )
    valid = _write_lines(
        tmp_path / "valid.jsonl", [{"text": "v1", "label": "a"}, {"text": "v2", "label": "c"}]
    )
    only_unseen = _write_lines(
        tmp_path / "test.jsonl", [{"text": "v3", "label": "c"}, {"text": "v4", "label": "d"}]
    )
    argv = _argv(
        tmp_path, "--validation-file", str(valid), "--test-file", str(only_unseen), task="text-classification"
    )
    argv[argv.index("--train-file") + 1] = str(train)
    with caplog.at_level(logging.WARNING, logger="finetune"):
        splits = datalib.load_splits(parse_args(argv))
    assert splits.validation is not None and list(splits.validation) == [
        {"text": "v1", "text_pair": None, "label": "a"}
    ]
    assert splits.validation.where(0) == f"{valid}:1"
    assert splits.test is None
    assert "never occur in training ('c')" in caplog.text and "the test file is not used" in caplog.text


def test_weight_zero_turns_are_not_trained(tokenizer: Any) -> None:
    weighted = [*MESSAGES[:2], {**MESSAGES[2], "weight": 0}, *MESSAGES[3:]]
    row = datalib.tokenize_chat(tokenizer, weighted, mask_prompt=True)
    trained = _trained_text(tokenizer, row["input_ids"], row["labels"])
    assert "2 plus 3 is 5." in trained and "A lime is green." not in trained


def test_a_template_that_refuses_a_conversation_is_a_usage_error_with_its_line(
    tokenizer: Any, tmp_path: Path
) -> None:
    import copy

    strict = copy.copy(tokenizer)
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('this template takes no system message') }}{% endif %}{{ m['content'] }}{% endfor %}"
    )
    path = _write_lines(tmp_path / "train.jsonl", [{"messages": MESSAGES[1:3]}, {"messages": MESSAGES}])
    split = datalib.read_split(path, "chat-completion", None, "train")
    with pytest.raises(
        UsageError, match=rf"{path}:2: the model's chat template cannot render this conversation"
    ):
        datalib.chat_rows(split, strict, mask_prompt=True, name="train")


@pytest.mark.parametrize("task", ["question-answering", "summarization", "translation"])
def test_registry_only_tasks_are_refused(tmp_path: Path, task: str) -> None:
    with pytest.raises(
        UsageError, match=r"not supported by this entry point — use target\.kind: registry-pipeline"
    ):
        parse_args(_argv(tmp_path, task=task))


def test_flags_parse_like_the_builder_writes_them(tmp_path: Path) -> None:
    args = parse_args(
        _argv(
            tmp_path,
            *("--technique", "dora", "--double-quant", "false", "--mask-prompt", "false", "--max-steps", "0"),
            *("--column", "messages=conversation", "--secret", "HF_TOKEN=keyvault://kv-name/hf-token"),
        )
    )
    assert (args.technique, args.double_quant, args.mask_prompt, args.max_steps) == ("dora", False, False, -1)
    assert args.columns == {"messages": "conversation"}
    assert args.secrets[0].vault_url == "https://kv-name.vault.azure.net"
    with pytest.raises(UsageError, match="--column"):
        parse_args(_argv(tmp_path, "--column", "nonsense=x"))
    with pytest.raises(UsageError, match="KEY one of messages for chat-completion"):
        parse_args(_argv(tmp_path, "--column", "label=stars"))
    with pytest.raises(UsageError, match="--secret"):
        parse_args(_argv(tmp_path, "--secret", "HF_TOKEN=https://example/secret"))
    with pytest.raises(SystemExit) as exc:
        parse_args(_argv(tmp_path, "--packing", "maybe"))
    assert exc.value.code == 2


def test_secrets_set_environment_without_printing_values(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetune.keyvault import resolve_secrets

    monkeypatch.delenv("AZFT_TEST_TOKEN", raising=False)
    args = parse_args(_argv(tmp_path, "--secret", "AZFT_TEST_TOKEN=keyvault://my-vault/hf-token"))
    asked: list[tuple[str, str]] = []

    class FakeClient:
        def __init__(self, url: str) -> None:
            self.url = url

        def get_secret(self, name: str) -> Any:
            asked.append((self.url, name))
            return type("Secret", (), {"value": "s3cr3t-value"})()

    with caplog.at_level(logging.DEBUG):
        assert resolve_secrets(args.secrets, client_factory=FakeClient) == ["AZFT_TEST_TOKEN"]
    assert asked == [("https://my-vault.vault.azure.net", "hf-token")]
    import os

    assert os.environ["AZFT_TEST_TOKEN"] == "s3cr3t-value"
    captured = capsys.readouterr()
    assert "s3cr3t-value" not in caplog.text + captured.out + captured.err

    def failing(url: str) -> Any:
        raise PermissionError("403 s3cr3t-value")

    with pytest.raises(UsageError, match="cannot read secret 'hf-token'") as exc:
        resolve_secrets(args.secrets, client_factory=failing)
    assert "s3cr3t-value" not in str(exc.value)


def test_locate_model_finds_the_hf_folder_inside_an_mlflow_model(tmp_path: Path) -> None:
    from finetune.modeling import locate_model

    root = tmp_path / "mlflow_model_folder"
    (root / "data" / "model").mkdir(parents=True)
    (root / "data" / "tokenizer").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {transformers: {}}\n")
    (root / "data" / "model" / "config.json").write_text("{}")
    (root / "data" / "model" / "model-00001-of-00002.safetensors").write_bytes(b"")
    (root / "data" / "tokenizer" / "config.json").write_text("{}")  # Azure ML copies the config there too
    (root / "data" / "tokenizer" / "tokenizer_config.json").write_text("{}")
    found = locate_model(str(root))
    assert Path(found.model) == (root / "data" / "model").resolve()
    assert Path(found.tokenizer) == (root / "data" / "tokenizer").resolve()
    assert locate_model("hf:microsoft/Phi-3-mini-4k-instruct").model == "microsoft/Phi-3-mini-4k-instruct"
    only_tokenizer = tmp_path / "only_tokenizer"
    only_tokenizer.mkdir()
    (only_tokenizer / "tokenizer_config.json").write_text("{}")
    with pytest.raises(UsageError, match=r"no config\.json"):
        locate_model(str(only_tokenizer))
    with pytest.raises(UsageError, match="registry model as a job input"):
        locate_model("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15")


def test_zero3_config_gets_weight_gathering_on_save(tmp_path: Path) -> None:
    from finetune.train import _deepspeed_config

    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}, "bf16": {"enabled": "auto"}}))
    patched, stage = _deepspeed_config(path)
    assert stage == 3
    assert json.loads(Path(patched).read_text())["zero_optimization"][
        "stage3_gather_16bit_weights_on_model_save"
    ]
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert _deepspeed_config(path) == (str(path), 2)


def test_empty_adapter_tensors_fail_the_run(tmp_path: Path) -> None:
    import torch
    from finetune.export import check_saved
    from safetensors.torch import save_file

    (tmp_path / "adapter_config.json").write_text("{}")
    save_file(
        {"lora_A": torch.zeros(0), "lora_B": torch.ones(2, 2)}, str(tmp_path / "adapter_model.safetensors")
    )
    with pytest.raises(TrainingError, match="is empty"):
        check_saved(tmp_path, peft=True)
    save_file({"lora_A": torch.ones(2, 2)}, str(tmp_path / "adapter_model.safetensors"))
    assert check_saved(tmp_path, peft=True) == {"saved_tensors": 1, "saved_parameters": 4}


def test_unknown_target_modules_are_a_usage_error(tiny_phi3: Path, tmp_path: Path) -> None:
    from finetune.modeling import resolve_target_modules
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_phi3)
    args = parse_args(_argv(tmp_path, "--target-modules", "qkv_proj,o_proj"))
    assert resolve_target_modules(model, args, ()) == ["qkv_proj", "o_proj"]
    args = parse_args(_argv(tmp_path, "--target-modules", "q_proj,v_proj"))
    with pytest.raises(
        UsageError, match=r"q_proj, v_proj not found in the model; its linear layers are .*qkv_proj"
    ):
        resolve_target_modules(model, args, ())


def test_text_completion_datasets(tokenizer: Any, tmp_path: Path) -> None:
    args = parse_args(_argv(tmp_path, task="text-completion"))
    plain = datalib.causal_dataset([{"text": "A lime is green."}], tokenizer, args, "train")
    assert plain.column_names == ["text"]
    pairs = datalib.causal_dataset([{"prompt": "Q: lime?", "completion": " green"}], tokenizer, args, "train")
    assert pairs.column_names == ["prompt", "completion"]
    # Columns named in the file's own words reach the trainer under the logical names.
    _write_lines(tmp_path / "train.jsonl", [{"question": "Q: lime?", "answer": " green"}] * 2)
    args = parse_args(
        _argv(tmp_path, "--column", "prompt=question,completion=answer", task="text-completion")
    )
    named = datalib.causal_dataset(datalib.load_splits(args).train, tokenizer, args, "train")
    assert named.column_names == ["prompt", "completion"] and named[0]["completion"] == " green"


def test_token_classification_labels_first_subtoken_of_each_word(tokenizer: Any, tmp_path: Path) -> None:
    args = parse_args(_argv(tmp_path, task="token-classification"))
    records = [{"tokens": ["the", "blueberry", "was", "great"], "tags": ["O", "FRUIT", "O", "O"]}]
    label2id = {"FRUIT": 0, "O": 1}
    row = datalib.token_classification_dataset(records, tokenizer, args, label2id, "train")[0]
    labelled = [
        (tokenizer.decode([token]), label)
        for token, label in zip(row["input_ids"], row["labels"], strict=True)
    ]
    words = [(text.strip(), label) for text, label in labelled if label != -100]
    assert [label for _, label in words] == [1, 0, 1, 1]
    assert words[1][0] in "blueberry" and words[1][0].startswith("b")
    # A tag the model was not trained on (only evaluation data can have one) is not scored.
    unseen = datalib.token_classification_dataset(
        [{"tokens": ["a", "kiwi"], "tags": ["O", "BERRY"]}], tokenizer, args, label2id, "validation"
    )[0]
    assert [label for label in unseen["labels"] if label != -100] == [1]


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("file:///tmp/out/mlruns", True),
        ("/tmp/out/mlruns", True),
        ("C:\\runs\\mlruns", True),
        ("azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r/workspaces/w", False),
        ("https://mlflow.example.com", False),
        ("databricks", False),
        (None, False),
    ],
)
def test_local_tracking_store(uri: str | None, local: bool) -> None:
    from finetune.tracking import is_local_store

    assert is_local_store(uri) is local


def test_local_store_logs_on_the_training_thread_and_params_are_written_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from finetune import tracking
    from finetune.train import _start_tracking
    from transformers import TrainerState, TrainingArguments
    from transformers.integrations import MLflowCallback

    for name in (  # setup_mlflow sets these in os.environ: restore them afterwards
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
        "MLFLOW_ALLOW_FILE_STORE",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS",
        "HF_MLFLOW_LOG_ARTIFACTS",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking.setup_mlflow(tmp_path)
    assert uri is not None and uri.startswith("file:")
    callback = MLflowCallback()
    trainer = SimpleNamespace(
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", run_name="unit"),
        state=TrainerState(),
        model=None,
        callback_handler=SimpleNamespace(callbacks=[callback]),
    )
    try:
        _start_tracking(trainer, uri)
        # transformers' private switch: if a release renames it, this test (not a silent slowdown) says so.
        assert callback._async_log is False
        run = mlflow.active_run()
        assert run is not None
        params = tmp_path / "mlruns" / run.info.experiment_id / run.info.run_id / "params"
        assert (params / "learning_rate").is_file(), "the parameters were flushed before training starts"
        callback.on_log(trainer.args, trainer.state, None, logs={"loss": 1.5})
        assert mlflow.MlflowClient().get_run(run.info.run_id).data.metrics["loss"] == 1.5, "written at once"
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri(None)


def test_an_hf_model_missing_from_an_offline_cache_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants
    from finetune import modeling
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what the entry point reads
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    source = modeling.ModelSource(
        "azfinetune-tests/no-such-model", "azfinetune-tests/no-such-model", local=False
    )
    with pytest.raises(
        UsageError, match="hf:azfinetune-tests/no-such-model: not in the local Hugging Face cache"
    ):
        modeling.load_tokenizer(source)
    args = parse_args(_argv(tmp_path))
    with pytest.raises(UsageError, match="not in the local Hugging Face cache"):
        modeling.load_model(
            source, args, auto_class=AutoModelForCausalLM, dtype=None, quantization=None, device_map=None
        )
    missing_folder = modeling.ModelSource(str(tmp_path / "nope"), str(tmp_path / "nope"), local=True)
    with pytest.raises(OSError):  # a local folder that is not a model: the loader's own error, unchanged
        modeling.load_tokenizer(missing_folder)
