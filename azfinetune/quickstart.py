"""The quickstart's assets (a tiny random Phi-3, its tokenizer, a learnable chat dataset) and its before/after reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azfinetune.targets import project_root
from azfinetune.tiny_model import chat_texts, make_chat_dataset, make_tiny_phi3

__all__ = [
    "AZURE_OVERRIDES",
    "DEMO_PROMPT",
    "generate_reply",
    "generate_reply_onnx",
    "next_command",
    "quickstart_spec_path",
    "write_quickstart_assets",
]

#: A question from the quickstart data; the fine-tuned model should answer it like the data does.
DEMO_PROMPT = [{"role": "user", "content": "What color is a banana?"}]


#: What the quickstart spec needs to become an Azure ML job: a catalog model instead of the local folder, and
#: where to run. The demo's "Next:" line prints them; tests run that exact line.
AZURE_OVERRIDES = (
    "model=phi-3-mini-4k-instruct",
    "target.kind=command",
    "target.compute=serverless",
    "target.instance_type=Standard_NC24ads_A100_v4",
)


def next_command(spec_path: Path | str, command: str = "plan") -> list[str]:
    """`azfinetune plan SPEC --set ...`: the quickstart spec as an Azure ML job, after the demo wrote its data."""
    words = ["azfinetune", command, str(spec_path)]
    for override in AZURE_OVERRIDES:
        words += ["--set", override]
    return words


def quickstart_spec_path() -> Path:
    """jobs/examples/quickstart.yaml of the project checkout."""
    return project_root() / "jobs" / "examples" / "quickstart.yaml"


def write_quickstart_assets(model_dir: Path, train_file: Path, validation_file: Path | None = None) -> None:
    """Write the tiny Phi-3 (random weights, BPE tokenizer trained on the data, Phi-3 chat template) and the data."""
    train_file.parent.mkdir(parents=True, exist_ok=True)
    make_chat_dataset(train_file, n=240, seed=0)
    if validation_file is not None:
        validation_file.parent.mkdir(parents=True, exist_ok=True)
        make_chat_dataset(validation_file, n=24, seed=1)
    make_tiny_phi3(model_dir, texts=chat_texts(n=400, seed=0), seed=0)


def generate_reply(
    model_dir: Path,
    messages: list[dict[str, str]],
    *,
    adapter_dir: Path | None = None,
    max_new_tokens: int = 24,
) -> str:
    """Greedy reply of the base model, or of the base with a LoRA adapter, to a chat."""
    import warnings

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

    tokenizer: Any = AutoTokenizer.from_pretrained(str(adapter_dir or model_dir))
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir))
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(
            **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    reply = output[0, encoded["input_ids"].shape[1] :]
    return str(tokenizer.decode(reply, skip_special_tokens=True)).strip()


def generate_reply_onnx(
    onnx_dir: Path, tokenizer_dir: Path, messages: list[dict[str, str]], *, max_new_tokens: int = 24
) -> str:
    """Greedy reply of an onnxruntime-genai model folder to a chat (the prompt written by the HF tokenizer's chat
    template, so it is the very prompt PyTorch answered)."""
    import onnxruntime_genai as og
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    model = og.Model(str(onnx_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens, batch_size=1)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    while not generator.is_done():
        generator.generate_next_token()
    reply = [int(token) for token in generator.get_sequence(0)][len(ids) :]
    return str(tokenizer.decode(reply, skip_special_tokens=True)).strip()
