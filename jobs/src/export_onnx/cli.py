"""`main()`: base model (+ LoRA adapter) -> an onnxruntime-genai model folder, checked token for token.

1. onnxruntime-genai's model builder (`python -m onnxruntime_genai.models.builder`) writes the ONNX model; with
   an adapter it is given `--extra_options adapter_path=<peft dir>`, which puts the LoRA matrices into the graph.
2. adapters: separate -- the LoRA matrices become graph inputs whose defaults are zeros (no adapter = the base
   model) and are written to `adapter.onnx_adapter` with onnxruntime's own AdapterFormat, which
   `og.Adapters(model).load(path, name)` loads. This is what `olive generate-adapter` does; Olive is not needed.
3. Parity: a few prompts (validation data, else built-in ones) are greedy-decoded with PyTorch (the merged model)
   and with onnxruntime-genai; token agreement goes to parity.json and below --min-token-agreement the step fails.

A QLoRA adapter is exported on its 16-bit base (the builder reads the base's own weights, never the 4-bit
ones). Exit 0 ok, 2 bad input, 1 failed (the parity check included).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("export_onnx")

PRECISIONS = ("int4", "int8", "fp16", "fp32")
PROVIDERS = ("cpu", "cuda", "dml", "webgpu")
ADAPTER_FILE = "adapter.onnx_adapter"
ADAPTER_NAME = "finetuned"
_LORA_MARKERS = (".lora_A.", ".lora_B.")
DEFAULT_PROMPTS = (
    "What color is a banana?",
    "What sound does a cat make?",
    "Tell me a short story.",
    "Hello!",
)


class UsageError(Exception):
    """Bad flags or inputs: exit 2."""


class ParityError(Exception):
    """The ONNX model's greedy tokens agree with PyTorch's less than required: exit 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export_onnx", description=__doc__)
    add = parser.add_argument
    add(
        "--base-model",
        required=True,
        help="the 16-bit base model: an HF folder, an MLflow model folder, or hf:<org>/<name> (downloaded)",
    )
    add("--adapter", type=Path, help="the fine-tune step's output (a PEFT adapter or a full model)")
    add("--output-dir", required=True, type=Path, help="the onnxruntime-genai model folder")
    add("--precision", choices=PRECISIONS, default="int4")
    add("--execution-provider", choices=PROVIDERS, default="cpu")
    add("--adapters", choices=("merged", "separate"), default="merged")
    add("--validation", type=Path, help="JSONL (or a folder of it) whose prompts the parity check decodes")
    add("--min-token-agreement", type=float, default=1.0)
    add("--num-prompts", type=int, default=4)
    add("--max-new-tokens", type=int, default=16)
    add("--parity-report", type=Path, help="default: <output-dir>/parity.json")
    return parser


# -- inputs ------------------------------------------------------------------------------------------------------


def base_folder(reference: str) -> Path:
    """--base-model as a folder: an hf:<org>/<name> id is downloaded (weights, config, tokenizer) into the
    Hugging Face cache first; a folder is searched with hf_folder."""
    if reference.startswith("hf:"):
        from huggingface_hub import snapshot_download

        repo = reference[3:]
        if not repo or repo.count("/") != 1:
            raise UsageError(f"--base-model {reference}: expected hf:<org>/<name>")
        try:
            folder = snapshot_download(
                repo, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.tiktoken"]
            )
        except Exception as error:  # the hub's own errors: not found, gated, offline
            raise UsageError(
                f"--base-model {reference}: cannot download it ({type(error).__name__}: {error})"
            ) from error
        return hf_folder(Path(folder))
    path = Path(reference)
    if not path.is_dir():
        raise UsageError(f"--base-model {reference}: no such folder")
    return hf_folder(path)


def hf_folder(path: Path) -> Path:
    """The Hugging Face folder inside `path`: itself, or an MLflow model's data/model (or any one level below)."""
    if (path / "config.json").is_file():
        return path
    for candidate in (path / "data" / "model", path / "model", path / "components" / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    found = sorted(p.parent for p in path.glob("*/config.json")) + sorted(
        p.parent for p in path.glob("*/*/config.json")
    )
    if found:
        return found[0]
    raise UsageError(f"{path} holds no Hugging Face model (no config.json in it or in data/model)")


def adapter_folder(path: Path | None) -> Path | None:
    """The PEFT adapter folder of a fine-tune output, or None when it is a full model."""
    if path is None:
        return None
    for candidate in (path, path / "adapter", path / "final"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    return None


def parity_prompts(validation: Path | None, tokenizer: Any, count: int) -> list[str]:
    """Up to `count` prompts from the validation data (chat: the conversation up to its last assistant turn)."""
    texts: list[str] = []
    files = []
    if validation is not None:
        files = sorted(validation.glob("*.jsonl")) if validation.is_dir() else [validation]
    for file in files:
        with file.open(encoding="utf-8") as handle:
            for line in handle:
                if len(texts) >= count:
                    break
                if not line.strip():
                    continue
                row = json.loads(line)
                if isinstance(row.get("messages"), list):
                    turns = row["messages"]
                    cut = max(
                        (i for i, m in enumerate(turns) if m.get("role") == "assistant"), default=len(turns)
                    )
                    texts.append(
                        tokenizer.apply_chat_template(turns[:cut], tokenize=False, add_generation_prompt=True)
                    )
                elif isinstance(row.get("prompt"), str):
                    texts.append(row["prompt"])
                elif isinstance(row.get("text"), str):
                    texts.append(row["text"][:200])
    if not texts:
        for prompt in DEFAULT_PROMPTS[:count]:
            turns = [{"role": "user", "content": prompt}]
            if getattr(tokenizer, "chat_template", None):
                texts.append(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
            else:
                texts.append(prompt)
    return texts


# -- the builder -------------------------------------------------------------------------------------------------


def run_builder(
    base: Path, out: Path, *, precision: str, provider: str, adapter: Path | None, cache: Path
) -> float:
    """onnxruntime-genai's model builder in a subprocess; returns its wall time in seconds."""
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(base), "-o", str(out), "-p", precision, "-e", provider, "-c", str(cache),
    ]  # fmt: skip
    if adapter is not None:
        command += ["--extra_options", f"adapter_path={adapter}"]
    log.info("running %s", " ".join(command))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"onnxruntime-genai's model builder failed (exit {result.returncode}):\n{tail}")
    return time.perf_counter() - started


def separate_adapter(model_dir: Path) -> Path:
    """Turn the graph's LoRA initializers into inputs (zeros by default = the base model) and write their values to
    model_dir/adapter.onnx_adapter with onnxruntime.AdapterFormat."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    path = model_dir / "model.onnx"
    model = onnx.load(str(path), load_external_data=True)
    graph = model.graph
    weights: dict[str, Any] = {}
    existing_inputs = {i.name for i in graph.input}
    for init in graph.initializer:
        if not any(marker in init.name for marker in _LORA_MARKERS):
            continue
        value = numpy_helper.to_array(init)
        weights[init.name] = value
        zeros = numpy_helper.from_array(np.zeros_like(value), init.name)
        init.CopyFrom(zeros)
        if init.name not in existing_inputs:
            graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(value.shape))
            )
    if not weights:
        raise RuntimeError(
            f"{path} has no LoRA weights (initializers named *.lora_A.* / *.lora_B.*) to separate"
        )
    data_name = "model.onnx.data"
    (model_dir / data_name).unlink(missing_ok=True)
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name
    )
    adapter = ort.AdapterFormat()
    adapter.set_adapter_version(1)
    adapter.set_model_version(1)
    adapter.set_parameters({name: ort.OrtValue.ortvalue_from_numpy(value) for name, value in weights.items()})
    target = model_dir / ADAPTER_FILE
    adapter.export_adapter(str(target))
    log.info("wrote %d LoRA tensors to %s", len(weights), target)
    return target


# -- decoding ----------------------------------------------------------------------------------------------------


def torch_greedy(
    model: Any, prompts: list[list[int]], max_new_tokens: int, eos: list[int]
) -> list[list[int]]:
    import torch

    outputs: list[list[int]] = []
    with torch.no_grad():
        for ids in prompts:
            tensor = torch.tensor([ids])
            generated = model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eos or None,
                pad_token_id=eos[0] if eos else None,
            )
            new = generated[0, len(ids) :].tolist()
            outputs.append(_until_eos(new, eos))
    return outputs


def genai_greedy(
    model_dir: Path,
    prompts: list[list[int]],
    max_new_tokens: int,
    eos: list[int],
    adapter: Path | None = None,
) -> list[list[int]]:
    import onnxruntime_genai as og

    model = _genai_model(model_dir)
    adapters = None
    if adapter is not None:
        adapters = og.Adapters(model)
        adapters.load(str(adapter), ADAPTER_NAME)
    outputs: list[list[int]] = []
    for ids in prompts:
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + max_new_tokens, batch_size=1)
        generator = og.Generator(model, params)
        if adapters is not None:
            generator.set_active_adapter(adapters, ADAPTER_NAME)
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
        sequence = list(generator.get_sequence(0))
        outputs.append(_until_eos([int(t) for t in sequence[len(ids) :]], eos))
        del generator
    return outputs


def _genai_model(model_dir: Path) -> Any:
    """The onnxruntime-genai model on its own execution provider, or on the CPU when this onnxruntime-genai build
    lacks that provider (a CUDA/DML/WebGPU model checked on CPU compute): the graph is the same, so the parity
    check still compares its tokens with PyTorch's."""
    import onnxruntime_genai as og

    try:
        return og.Model(str(model_dir))
    except Exception as error:  # og raises its own RuntimeError/OrtException for a provider it lacks
        if "provider" not in str(error).lower() and "execution" not in str(error).lower():
            raise
        log.warning("this onnxruntime-genai has no %s; the parity check decodes on the CPU", error)
        config = og.Config(str(model_dir))
        config.clear_providers()
        return og.Model(config)


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """The tokens before the first end-of-sequence token (onnxruntime-genai's sequence may or may not hold it)."""
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[:i]
    return tokens


def agreement(reference: list[list[int]], candidate: list[list[int]]) -> float:
    """Share of positions (over the longer of each pair) where both greedy decodes chose the same token."""
    total = same = 0
    for ref, cand in zip(reference, candidate, strict=True):
        total += max(len(ref), len(cand), 1)
        same += sum(1 for a, b in zip(ref, cand, strict=False) if a == b)
    return same / total if total else 1.0


def _eos_ids(folder: Path, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    config = folder / "generation_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("eos_token_id")
        ids.extend(value if isinstance(value, list) else [value] if value is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids]


# -- the step ----------------------------------------------------------------------------------------------------


def export(args: argparse.Namespace) -> dict[str, Any]:
    """The whole step; returns the parity report (also written to disk)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not 0.0 <= args.min_token_agreement <= 1.0:
        raise UsageError(f"--min-token-agreement must be within 0..1, got {args.min_token_agreement}")
    adapter = adapter_folder(args.adapter)
    full_model = args.adapter is not None and adapter is None
    # A full fine-tune's output is the model to export: the base is not needed (nor downloaded) then.
    base = hf_folder(args.adapter) if full_model else base_folder(args.base_model)
    if args.adapters == "separate" and adapter is None:
        raise UsageError("--adapters separate needs a LoRA adapter (--adapter with adapter_config.json)")
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    cache = out.parent / f".{out.name}-builder-cache"
    seconds = run_builder(
        base, out, precision=args.precision, provider=args.execution_provider, adapter=adapter, cache=cache
    )
    adapter_file = separate_adapter(out) if args.adapters == "separate" else None

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    eos = _eos_ids(base, tokenizer)
    texts = parity_prompts(args.validation, tokenizer, args.num_prompts)
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    torch_model = AutoModelForCausalLM.from_pretrained(str(base), torch_dtype=torch.float32)
    checks: dict[str, dict[str, Any]] = {}
    if adapter is not None:
        from peft import PeftModel

        if adapter_file is not None:
            base_tokens = torch_greedy(torch_model, prompts, args.max_new_tokens, eos)
            onnx_base = genai_greedy(out, prompts, args.max_new_tokens, eos)
            checks["base"] = _check(base_tokens, onnx_base)
        torch_model = PeftModel.from_pretrained(torch_model, str(adapter)).merge_and_unload()
    torch_model.eval()
    merged_tokens = torch_greedy(torch_model, prompts, args.max_new_tokens, eos)
    onnx_tokens = genai_greedy(out, prompts, args.max_new_tokens, eos, adapter=adapter_file)
    checks["merged" if adapter is not None else "model"] = _check(merged_tokens, onnx_tokens)
    worst = min(check["token_agreement"] for check in checks.values())
    report = {
        "precision": args.precision,
        "execution_provider": args.execution_provider,
        "adapters": args.adapters if adapter is not None else "none",
        "adapter_file": ADAPTER_FILE if adapter_file is not None else None,
        "export_seconds": round(seconds, 3),
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "token_agreement": worst,
        "min_token_agreement": args.min_token_agreement,
        "checks": checks,
        "passed": worst >= args.min_token_agreement,
    }
    path = args.parity_report or out / "parity.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not report["passed"]:
        failing = ", ".join(f"{name} {check['token_agreement']:.3f}" for name, check in checks.items())
        raise ParityError(
            f"the ONNX model's greedy tokens agree with PyTorch's {worst:.3f} of the time ({failing}), below "
            f"export.onnx.min_token_agreement {args.min_token_agreement}; see {path}. A lower precision "
            f"({args.precision}) changes tokens: use fp32 (or fp16 on a GPU provider), or lower min_token_agreement"
        )
    return report


def _check(reference: list[list[int]], candidate: list[list[int]]) -> dict[str, Any]:
    return {
        "token_agreement": agreement(reference, candidate),
        "identical_prompts": sum(1 for a, b in zip(reference, candidate, strict=True) if a == b),
        "pytorch": reference,
        "onnxruntime_genai": candidate,
    }


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OLIVE_DISABLE_TELEMETRY", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK", "0").strip() or "0"
    if rank != "0":
        # A distributed command job runs its command once per process: the first one exports.
        print(f"export_onnx: rank {rank}: nothing to do (rank 0 exports)", file=sys.stderr)
        return 0
    try:
        report = export(args)
    except UsageError as error:
        print(f"export_onnx: error: {error}", file=sys.stderr)
        return 2
    except ParityError as error:
        print(f"export_onnx: parity check failed: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"export_onnx: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"token_agreement": report["token_agreement"], "output_dir": str(args.output_dir)}))
    return 0
