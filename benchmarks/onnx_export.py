"""The ONNX Runtime export (issue 19): how long `python -m export_onnx` takes on a tiny LoRA-tuned Phi-3, and greedy
decoding tokens/s of onnxruntime-genai vs PyTorch (the merged model) on the same prompts, as a ratio.

Both decoders run in this process on the same prompts with the same max_new_tokens, alternating, and the median of
`--repeats` rounds is reported (a shared 2-core VM varies by +-20% per run). The export time is the step's wall time
(the model builder plus the parity check). The figures are ratios measured in one run, never timing asserts.
Run: .venv/bin/python benchmarks/onnx_export.py [--repeats 5] [--hidden-size 256] [--precision fp32|int4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOBS_SRC = ROOT / "jobs" / "src"
PROMPTS = ["What color is a banana?", "What sound does a cat make?", "Tell me a short story.", "Hello!"]


def _tiny_lora(folder: Path, hidden_size: int) -> tuple[Path, Path]:
    """A tiny random Phi-3 (azfinetune.tiny_model) and a LoRA adapter with non-zero B (so it changes tokens)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from azfinetune.tiny_model import chat_texts, make_tiny_phi3

    base = folder / "base"
    make_tiny_phi3(base, texts=chat_texts(n=200, seed=0), seed=0, hidden_size=hidden_size)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02)
    adapter = folder / "adapter"
    model.save_pretrained(adapter)
    return base, adapter


def _export(base: Path, adapter: Path, out: Path, precision: str) -> float:
    command = [
        sys.executable, "-m", "export_onnx", "--base-model", str(base), "--adapter", str(adapter),
        "--output-dir", str(out), "--precision", precision, "--min-token-agreement", "0",
    ]  # fmt: skip
    started = time.perf_counter()
    env = {**os.environ, "OLIVE_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(JOBS_SRC)}
    subprocess.run(command, cwd=JOBS_SRC, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _prompts(tokenizer: Any) -> list[list[int]]:
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in PROMPTS
    ]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def _torch_tokens_per_second(model: Any, prompts: list[list[int]], new_tokens: int) -> float:
    import torch

    produced, started = 0, time.perf_counter()
    with torch.no_grad():
        for ids in prompts:
            tensor = torch.tensor([ids])
            out = model.generate(
                tensor, attention_mask=torch.ones_like(tensor), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, pad_token_id=0,
            )  # fmt: skip
            produced += out.shape[1] - len(ids)
    return produced / (time.perf_counter() - started)


def _genai_tokens_per_second(model: Any, prompts: list[list[int]], new_tokens: int) -> float:
    import onnxruntime_genai as og

    produced, started = 0, time.perf_counter()
    for ids in prompts:
        params = og.GeneratorParams(model)
        params.set_search_options(
            do_sample=False, max_length=len(ids) + new_tokens, min_length=len(ids) + new_tokens, batch_size=1
        )
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
        produced += len(generator.get_sequence(0)) - len(ids)
        del generator
    return produced / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--precision", choices=["fp32", "int4"], default="fp32")
    ns = parser.parse_args()
    os.environ["OLIVE_DISABLE_TELEMETRY"] = "1"
    import onnxruntime_genai as og
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base, adapter = _tiny_lora(folder, ns.hidden_size)
        export_seconds = _export(base, adapter, folder / "onnx", ns.precision)
        tokenizer = AutoTokenizer.from_pretrained(base)
        prompts = _prompts(tokenizer)
        merged = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base), adapter
        ).merge_and_unload()
        merged.eval()
        onnx_model = og.Model(str(folder / "onnx"))
        _torch_tokens_per_second(merged, prompts[:1], 4)  # warm-up of both
        _genai_tokens_per_second(onnx_model, prompts[:1], 4)
        torch_runs, genai_runs = [], []
        for _ in range(ns.repeats):
            torch_runs.append(_torch_tokens_per_second(merged, prompts, ns.new_tokens))
            genai_runs.append(_genai_tokens_per_second(onnx_model, prompts, ns.new_tokens))
        parity = json.loads((folder / "onnx" / "parity.json").read_text())
    torch_tps, genai_tps = statistics.median(torch_runs), statistics.median(genai_runs)
    print(
        json.dumps(
            {
                "hidden_size": ns.hidden_size,
                "precision": ns.precision,
                "export_seconds": round(export_seconds, 2),
                "builder_seconds": parity["export_seconds"],
                "token_agreement": parity["token_agreement"],
                "pytorch_tokens_per_second": round(torch_tps, 1),
                "onnxruntime_genai_tokens_per_second": round(genai_tps, 1),
                "ratio_genai_vs_pytorch": round(genai_tps / torch_tps, 2),
                "repeats": ns.repeats,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
