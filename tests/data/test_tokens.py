"""Token counts: exact with a tokenizer (a tiny BPE trained here), documented approximation otherwise."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from azfinetune.data import validate_data
from azfinetune.data._tokens import ApproxCounter, TextExample, TokenHistogram, load_tokenizer
from tests.data._corpus import chat

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
TEXTS = [
    "What is the capital of France? Paris is the capital.",
    "Fine-tuning adapts a model to your data with LoRA adapters.",
    "The quick brown fox jumps over the lazy dog.",
    "Azure Machine Learning runs jobs on GPU clusters.",
]


def _tiny_tokenizer(folder: Path) -> Path:
    pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(TEXTS * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _conversations(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": TEXTS[i % 4] + " " * (i % 3) + str(i)},
            {"role": "assistant", "content": (TEXTS[(i + 1) % 4] + " ") * (1 + i % 5)},
        ]
        if i % 4 == 0:
            messages += [
                {"role": "user", "content": "And then?"},
                {"role": "assistant", "content": "Done.", "weight": 1},
            ]
        out.append({"messages": messages})
    return out


def _expected_lengths(tokenizer_dir: Path, examples: list[dict[str, Any]]) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = []
    for example in examples:
        encoded = tok.apply_chat_template(example["messages"], tokenize=True)
        # transformers 5 returns a BatchEncoding (len() would count its keys); 4.x returned the ids.
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        lengths.append(len(ids))
    return lengths


@pytest.mark.parametrize("how", ["model_folder", "tokenizer_object"])
@pytest.mark.parametrize("bulk", [True, False])
def test_chat_counts_match_apply_chat_template(
    tokenizer_dir: Path, tmp_path: Path, how: str, bulk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = _conversations(40)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    expected = _expected_lengths(tokenizer_dir, examples)
    limit = sorted(expected)[30]
    if not bulk:
        from azfinetune.data import _validate

        monkeypatch.setattr(_validate._Validator, "use_fast_path", False)
    if how == "model_folder":
        report = validate_data(
            path, task="chat-completion", model=str(tokenizer_dir), max_seq_length=limit, epochs=2
        )
    else:
        from transformers import AutoTokenizer

        report = validate_data(
            path,
            task="chat-completion",
            tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir),
            max_seq_length=limit,
            epochs=2,
        )
    tokens = report.stats.tokens
    assert tokens.method.startswith("tokenizer:")
    assert tokens.counted == 40
    assert tokens.total == sum(expected)
    assert (tokens.min, tokens.max) == (min(expected), max(expected))
    assert tokens.median == statistics.median_low(expected)
    assert tokens.over_max_seq_length == sum(1 for n in expected if n > limit)
    over_lines = sorted(i.line for i in report.warnings if i.code == "exceeds_max_seq_length")
    assert over_lines == [i + 1 for i, n in enumerate(expected) if n > limit]
    assert tokens.training_tokens_estimate == 2 * sum(min(n, limit) for n in expected)


@pytest.mark.parametrize("bulk", [True, False])
def test_a_conversation_the_chat_template_refuses_is_an_error_at_its_line(
    tokenizer_dir: Path, tmp_path: Path, bulk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the model's tokenizer the validator renders every conversation as the trainer does, so a template
    rule no data check knows (here: no system messages) fails the file where the job would stop."""
    from transformers import AutoTokenizer

    from azfinetune.data import _validate

    strict = AutoTokenizer.from_pretrained(tokenizer_dir)
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system messages') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}"
    )
    plain = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(12)
    ]
    rows = [*plain[:5], chat(99), *plain[5:]]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if not bulk:
        monkeypatch.setattr(_validate._Validator, "use_fast_path", False)
    report = validate_data(path, task="chat-completion", tokenizer=strict)
    assert [(i.code, i.line) for i in report.errors] == [("chat_template_error", 6)]
    assert "no system messages" in report.errors[0].message
    assert (report.stats.examples, report.stats.valid_examples, report.stats.tokens.counted) == (13, 12, 12)


def test_text_tasks_count_with_the_tokenizer(tokenizer_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [{"text": TEXTS[i % 4], "text_pair": TEXTS[(i + 1) % 4], "label": i % 2} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = validate_data(path, task="text-classification", tokenizer=tok)
    assert report.stats.tokens.total == sum(len(tok(r["text"], r["text_pair"])["input_ids"]) for r in rows)


def test_mlflow_style_folder_and_missing_tokenizer(tokenizer_dir: Path, tmp_path: Path) -> None:
    nested = tmp_path / "mlflow_model" / "data" / "tokenizer"
    nested.mkdir(parents=True)
    for file in tokenizer_dir.iterdir():
        (nested / file.name).write_bytes(file.read_bytes())
    tokenizer, why = load_tokenizer(str(tmp_path / "mlflow_model"))
    assert tokenizer is not None and not why

    empty = tmp_path / "no_tokenizer"
    empty.mkdir()
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(chat(i)) + "\n" for i in range(12)))
    report = validate_data(path, task="chat-completion", model=str(empty))
    assert report.ok and report.stats.tokens.method == "approx:chars/4"
    assert [w.code for w in report.warnings] == ["tokenizer_unavailable"]


def test_unknown_model_reference_falls_back_to_the_approximation(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(chat(i)) + "\n" for i in range(12)))
    report = validate_data(path, task="chat-completion", model="no-such-org/no-such-model-xyz")
    assert report.ok and report.stats.tokens.method == "approx:chars/4"
    assert report.warning_counts == {"tokenizer_unavailable": 1}


def test_approximation_rule() -> None:
    counter = ApproxCounter()
    conversation = [{"role": "user", "content": "abcde"}, {"role": "assistant", "content": "xyz"}]
    assert counter.chat([conversation]) == [2 + 4 * 2]  # ceil(8 / 4) + 4 per message
    assert counter.chat_lengths([8, 9, 0], [2, 1, 1]) == [10, 7, 4]
    assert counter.texts([TextExample(("abcd", "e")), TextExample(("",))]) == [2 + 2, 0 + 2]


def test_histogram_quantiles_are_exact() -> None:
    values = [5, 1, 9, 9, 3, 100, 7, 7, 7, 2, 40]
    histogram = TokenHistogram()
    histogram.update(values[:4])
    histogram.update(values[4:])
    stats = histogram.stats("approx:chars/4", max_seq_length=8, epochs=1.5)
    ordered = sorted(values)
    assert (stats.min, stats.max, stats.total, stats.counted) == (1, 100, sum(values), len(values))
    assert stats.median == statistics.median_low(values)
    assert stats.p95 == ordered[-(-95 * len(values) // 100) - 1]
    assert stats.over_max_seq_length == 4
    assert stats.tokens_per_epoch == sum(min(v, 8) for v in values)
    assert stats.training_tokens_estimate == round(1.5 * sum(min(v, 8) for v in values))


def test_no_heavy_imports() -> None:
    """Importing and running the validation without a model loads no torch, transformers or azure.ai.ml."""
    code = (
        "import sys, json, tempfile, pathlib\n"
        "from azfinetune.data import validate_data\n"
        "p = pathlib.Path(tempfile.mkdtemp()) / 't.jsonl'\n"
        "p.write_text(json.dumps({'messages': [{'role': 'user', 'content': 'a'}, "
        "{'role': 'assistant', 'content': 'b'}]}) + '\\n')\n"
        "validate_data(p, task='chat-completion')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'azure.ai.ml', 'tokenizers') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"


def test_a_model_folder_is_read_without_transformers_and_counts_the_same(tmp_path: Path) -> None:
    """validate of a spec with a local model: the tokenizer files are read directly (FileTokenizer), and its
    counts equal transformers' on the quickstart's tiny Phi-3 (its real Phi-3 chat template)."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from azfinetune.data._tokens import FileTokenizer, TokenizerCounter
    from azfinetune.tiny_model import chat_texts, make_chat_dataset, make_tiny_phi3

    model = make_tiny_phi3(tmp_path / "model", texts=chat_texts(n=60, seed=0), seed=0)
    light, why = load_tokenizer(str(model))
    assert isinstance(light, FileTokenizer), why
    data = tmp_path / "train.jsonl"
    make_chat_dataset(data, n=30, seed=2)
    conversations = [json.loads(line)["messages"] for line in data.read_text().splitlines()]
    reference = AutoTokenizer.from_pretrained(model)
    assert TokenizerCounter(light).chat(conversations) == TokenizerCounter(reference).chat(conversations)
    examples = [TextExample((TEXTS[i],)) for i in range(4)] + [TextExample((TEXTS[0], TEXTS[1]), mode="pair")]
    assert TokenizerCounter(light).texts(examples) == TokenizerCounter(reference).texts(examples)
    code = (
        "import sys; from azfinetune.data._tokens import load_tokenizer; "
        f"load_tokenizer({str(model)!r}); print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
