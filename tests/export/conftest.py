"""Session fixtures: a tiny random Phi-3 and a Phi-4-mini-shaped one, each LoRA fine-tuned a few steps, and
their ONNX exports (built once; the builder takes seconds per tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS_SRC = ROOT / "jobs" / "src"
TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]

pytest.importorskip("onnxruntime_genai")
pytest.importorskip("peft")


def _phi4_mini_shaped(folder: Path) -> Path:
    """Phi-4-mini's shape, tiny: grouped-query attention and tied embeddings. Its partial rotary (0.75) is left
    out: onnxruntime-genai 0.18's builder output disagrees with transformers 5's Phi3 on a tiny partial-rotary
    model (token agreement 0.0 at fp32) -- the parity check refuses such an export; see docs/onnx-export.md."""
    import torch
    from transformers import AutoConfig, Phi3ForCausalLM

    config = AutoConfig.from_pretrained(folder)
    config.num_key_value_heads = 2
    config.tie_word_embeddings = True
    torch.manual_seed(3)
    Phi3ForCausalLM(config).save_pretrained(folder)
    return folder


def _fine_tune(base: Path, data: Path, out: Path, steps: int = 6) -> Path:
    """A few LoRA steps on the chat data (real gradients, so the adapter moves the tokens)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS),
    )
    rows = [json.loads(line) for line in data.read_text().splitlines()[:16]]
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for step in range(steps):
        batch = tokenizer(texts[step % 4 * 4 : step % 4 * 4 + 4], return_tensors="pt", padding=True)
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    import torch

    from azfinetune.tiny_model import chat_texts, make_chat_dataset, make_tiny_phi3

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("onnx-export")
    data = make_chat_dataset(root / "chat.jsonl", n=24, seed=0)
    models: dict[str, dict[str, Path]] = {}
    for name in ("phi3", "phi4-mini"):
        base = make_tiny_phi3(root / name / "base", texts=chat_texts())
        if name == "phi4-mini":
            _phi4_mini_shaped(base)
        models[name] = {
            "base": base,
            "adapter": _fine_tune(base, data, root / name / "adapter"),
            "data": data,
        }
    return models


def run_export(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(JOBS_SRC), "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "export_onnx", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd or JOBS_SRC,
    )


@pytest.fixture(scope="session")
def exports(
    tiny_models: dict[str, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """(model, adapters) -> (output folder, parity report): phi3 merged and separate, phi4-mini separate."""
    root = tmp_path_factory.mktemp("onnx-out")
    done: dict[str, Any] = {}
    for model, adapters in (("phi3", "merged"), ("phi3", "separate"), ("phi4-mini", "separate")):
        paths = tiny_models[model]
        out = root / f"{model}-{adapters}"
        result = run_export(
            "--base-model", str(paths["base"]), "--adapter", str(paths["adapter"]), "--output-dir", str(out),
            "--validation", str(paths["data"]), "--precision", "fp32", "--adapters", adapters,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        done[f"{model}-{adapters}"] = (out, json.loads((out / "parity.json").read_text()))
    return done
