"""A tiny random Phi-3 model and small learnable datasets for tests and benchmarks (`train` extra)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PHI3_CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "chat_texts",
    "make_chat_dataset",
    "make_classification_dataset",
    "make_preference_dataset",
    "make_text_dataset",
    "make_tiny_phi3",
    "make_token_classification_dataset",
]

# The chat template microsoft/Phi-3-mini-4k-instruct ships (no {% generation %} markers, like the real one).
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

SPECIAL_TOKENS = ["<unk>", "<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

# A fixed fact table: every answer is a deterministic function of the question, so a tiny model can learn it.
_FRUIT_COLORS = {
    "banana": "yellow",
    "apple": "red",
    "lime": "green",
    "plum": "purple",
    "orange": "orange",
    "blueberry": "blue",
    "cherry": "red",
    "kiwi": "brown",
}
_ANIMAL_SOUNDS = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack", "sheep": "baa", "owl": "hoot"}
_POSITIVE = ["great", "wonderful", "loved", "excellent", "happy", "superb"]
_NEGATIVE = ["terrible", "awful", "hated", "boring", "sad", "dreadful"]
_FILLER = ["the", "movie", "was", "really", "and", "plot", "acting", "very", "story", "quite"]
_SYSTEM = "You are a concise assistant."


def _chat_example(rng: random.Random) -> dict[str, Any]:
    """One conversation whose answer is fully determined by the question."""
    kind = rng.randrange(3)
    if kind == 0:
        fruit = rng.choice(sorted(_FRUIT_COLORS))
        messages = [
            {"role": "user", "content": f"What color is a {fruit}?"},
            {"role": "assistant", "content": f"A {fruit} is {_FRUIT_COLORS[fruit]}."},
        ]
    elif kind == 1:
        animal = rng.choice(sorted(_ANIMAL_SOUNDS))
        messages = [
            {"role": "user", "content": f"What does a {animal} say?"},
            {"role": "assistant", "content": f"A {animal} says {_ANIMAL_SOUNDS[animal]}."},
        ]
    else:
        a, b = rng.randrange(10), rng.randrange(10)
        messages = [
            {"role": "user", "content": f"Add {a} and {b}."},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
        ]
    if rng.random() < 0.3:
        messages.insert(0, {"role": "system", "content": _SYSTEM})
    return {"messages": messages}


def _write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return out


def make_chat_dataset(path: str | Path, n: int = 40, seed: int = 0) -> Path:
    """Write `n` deterministic, learnable chat examples ({"messages": [...]}) as JSONL to `path`."""
    rng = random.Random(seed)
    return _write_jsonl(path, (_chat_example(rng) for _ in range(n)))


def _wrong_answer(rng: random.Random, messages: list[dict[str, str]]) -> str:
    """A fluent but wrong reply to the conversation's question (the rejected side of a pair)."""
    question = messages[-2]["content"]
    for fruit, color in _FRUIT_COLORS.items():
        if question == f"What color is a {fruit}?":
            wrong = rng.choice(sorted({c for c in _FRUIT_COLORS.values() if c != color}))
            return f"A {fruit} is {wrong}."
    for animal, sound in _ANIMAL_SOUNDS.items():
        if question == f"What does a {animal} say?":
            wrong = rng.choice(sorted({s for s in _ANIMAL_SOUNDS.values() if s != sound}))
            return f"A {animal} says {wrong}."
    a, b = (int(word.rstrip(".")) for word in question.split()[1::2])
    return f"{a} plus {b} is {a + b + rng.randrange(1, 5)}."


def make_preference_dataset(path: str | Path, n: int = 40, seed: int = 0, *, shape: str = "messages") -> Path:
    """Write `n` preference pairs for dpo/orpo: the prompt of a chat example, its right answer (chosen) and a wrong
    one (rejected). shape "messages": message lists; "text": plain strings."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        messages = _chat_example(rng)["messages"]
        prompt, right = messages[:-1], messages[-1]["content"]
        wrong = _wrong_answer(rng, messages)
        if shape == "text":
            question = " ".join(m["content"] for m in prompt if m["role"] != "system")
            rows.append({"prompt": question, "chosen": " " + right, "rejected": " " + wrong})
        else:
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": right}],
                    "rejected": [{"role": "assistant", "content": wrong}],
                }
            )
    return _write_jsonl(path, rows)


def make_text_dataset(path: str | Path, n: int = 40, seed: int = 0) -> Path:
    """Write `n` plain-text examples ({"text": ...}) for text-completion."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        messages = _chat_example(rng)["messages"]
        rows.append({"text": " ".join(m["content"] for m in messages if m["role"] != "system")})
    return _write_jsonl(path, rows)


def make_classification_dataset(path: str | Path, n: int = 40, seed: int = 0) -> Path:
    """Write `n` sentiment examples ({"text", "label"}) where one keyword decides the label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(_FILLER, 4)
        words.insert(rng.randrange(5), rng.choice(_POSITIVE if positive else _NEGATIVE))
        rows.append({"text": " ".join(words), "label": "positive" if positive else "negative"})
    return _write_jsonl(path, rows)


def make_token_classification_dataset(path: str | Path, n: int = 40, seed: int = 0) -> Path:
    """Write `n` examples ({"tokens", "tags"}) where fruit words are tagged FRUIT and the rest O."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens = rng.sample(_FILLER, 4)
        tokens.insert(rng.randrange(5), rng.choice(sorted(_FRUIT_COLORS)))
        rows.append({"tokens": tokens, "tags": ["FRUIT" if t in _FRUIT_COLORS else "O" for t in tokens]})
    return _write_jsonl(path, rows)


def chat_texts(n: int = 200, seed: int = 0) -> Iterator[str]:
    """Strings that cover the vocabulary of every dataset above (a corpus to train the tokenizer on)."""
    rng = random.Random(seed)
    for _ in range(n):
        for message in _chat_example(rng)["messages"]:
            yield message["content"]
    yield _SYSTEM
    yield " ".join(_POSITIVE + _NEGATIVE + _FILLER + sorted(_FRUIT_COLORS) + sorted(_ANIMAL_SOUNDS))
    yield "positive negative FRUIT O"


def _train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    fast_tokenizer: Any = PreTrainedTokenizerFast  # untyped in transformers
    tokenizer = fast_tokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
        model_max_length=512,
    )
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


def make_tiny_phi3(
    folder: str | Path,
    *,
    texts: Iterable[str] | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 400,
    initializer_range: float = 0.1,
) -> Path:
    """Save a random Phi-3 (hidden 64, 2 layers, 4 heads) with a BPE tokenizer trained on `texts` to `folder`.

    The tokenizer carries the Phi-3 chat template and special tokens, so the folder looks like a real Phi-3
    checkpoint to the training code. Without `texts` the tokenizer learns `chat_texts()`.
    """
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    corpus = list(texts) if texts is not None else list(chat_texts(seed=seed))
    tokenizer = _train_tokenizer(corpus, vocab_size)
    special = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        bos_token_id=special["<s>"],
        eos_token_id=special["<|endoftext|>"],
        pad_token_id=special["<|endoftext|>"],
        tie_word_embeddings=False,
        # Larger than Phi-3's 0.02 so the frozen random LM head lets LoRA move the logits within a few steps.
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config)
    generation_config: Any = GenerationConfig  # untyped in transformers
    model.generation_config = generation_config(
        bos_token_id=special["<s>"],
        eos_token_id=[special["<|endoftext|>"], special["<|end|>"]],
        pad_token_id=special["<|endoftext|>"],
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
