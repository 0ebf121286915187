"""Finding the model (HF folder, Azure ML MLflow model folder, HF id), loading it, PEFT/quantization setup."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.args import Args
from finetune.errors import UsageError

log = logging.getLogger("finetune")

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
)
_MAX_DEPTH = 5


@dataclass(frozen=True)
class ModelSource:
    """Where to load the weights and the tokenizer from (local folders or one HF id)."""

    model: str
    tokenizer: str
    local: bool


def _depth(path: Path, root: Path) -> int:
    return len(path.relative_to(root).parts)


def _has_weights(folder: Path) -> bool:
    return any(p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES) for p in folder.iterdir())


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _walk_dirs(root: Path) -> list[Path]:
    found = [root]
    for current, dirs, _files in os.walk(root):
        here = Path(current)
        if _depth(here, root) >= _MAX_DEPTH:
            dirs.clear()
            continue
        dirs.sort()
        found.extend(here / d for d in dirs)
    return found


def locate_model(reference: str) -> ModelSource:
    """Resolve --model: an HF folder, an MLflow model folder (weights under e.g. data/model), or an HF id.

    Azure ML registry MLflow models keep the HF weights in data/model and the tokenizer in data/tokenizer;
    the folder with config.json and weights wins, the nearest folder with tokenizer files is its tokenizer.
    """
    ref = reference.strip()
    if ref.startswith("azureml:"):
        raise UsageError(
            f"--model {ref}: pass the registry model as a job input (a mounted folder), not as an azureml URI"
        )
    hf_id = ref[3:] if ref.startswith("hf:") else None
    path = Path(ref)
    if hf_id is None and path.exists():
        if path.is_file():
            raise UsageError(f"--model {ref}: expected a folder, got a file")
        root = path.resolve()
        folders = _walk_dirs(root)
        candidates = [f for f in folders if (f / "config.json").is_file()]
        if not candidates:
            raise UsageError(
                f"--model {ref}: no config.json in the folder or its subfolders (an HF model folder)"
            )
        candidates.sort(key=lambda f: (not _has_weights(f), f.name != "model", _depth(f, root), str(f)))
        model_dir = candidates[0]
        if _has_tokenizer(model_dir):
            tokenizer_dir = model_dir
        else:
            tokenizers = [f for f in folders if _has_tokenizer(f)]
            if not tokenizers:
                raise UsageError(f"--model {ref}: found weights in {model_dir} but no tokenizer files")
            tokenizers.sort(key=lambda f: (f.name != "tokenizer", _depth(f, root), str(f)))
            tokenizer_dir = tokenizers[0]
        if model_dir != root:
            log.info("model folder: %s (tokenizer: %s)", model_dir, tokenizer_dir)
        return ModelSource(str(model_dir), str(tokenizer_dir), local=True)
    if hf_id is None:
        looks_like_id = ref.count("/") <= 1 and not ref.startswith((".", "/", "~")) and " " not in ref
        if not looks_like_id:
            raise UsageError(f"--model {ref}: no such folder")
        hf_id = ref
    return ModelSource(hf_id, hf_id, local=False)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def _not_cached_is_usage_error(source: ModelSource) -> Iterator[None]:
    """An hf: model missing from the cache of an offline machine is the user's to fix (exit 2), not a crash."""
    try:
        yield
    except OSError as exc:
        if not source.local and _offline():
            raise UsageError(
                f"--model hf:{source.model}: not in the local Hugging Face cache and HF_HUB_OFFLINE=1"
            ) from exc
        raise


def load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    with _not_cached_is_usage_error(source):
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer)
    if tokenizer.pad_token is None:
        # Decoder-only models often lack a pad token; padding positions are masked out of the loss anyway.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def quantization_config(args: Args, compute_dtype: Any, zero3: bool) -> Any:
    """BitsAndBytesConfig for QLoRA: NF4/FP4, double quant, compute dtype from --precision."""
    from transformers import BitsAndBytesConfig

    if args.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    kwargs: dict[str, Any] = {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": args.quant_type,
        "bnb_4bit_use_double_quant": args.double_quant,
        "bnb_4bit_compute_dtype": compute_dtype,
    }
    if zero3:
        # ZeRO-3 shards parameters of one dtype: store the 4-bit weights in the compute dtype.
        kwargs["bnb_4bit_quant_storage"] = compute_dtype
    return BitsAndBytesConfig(**kwargs)


def load_model(
    source: ModelSource,
    args: Args,
    *,
    auto_class: Any,
    dtype: Any,
    quantization: Any | None,
    device_map: Any | None,
    extra: dict[str, Any] | None = None,
) -> Any:
    kwargs: dict[str, Any] = {"dtype": dtype, **(extra or {})}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if device_map is not None:
        kwargs["device_map"] = device_map
    attn = attention_implementation(dtype)
    if attn:
        kwargs["attn_implementation"] = attn
    with _not_cached_is_usage_error(source):
        return auto_class.from_pretrained(source.model, **kwargs)


def attention_implementation(dtype: Any) -> str | None:
    """flash_attention_2 when flash-attn is installed and the GPU trains in 16 bit; else default (sdpa)."""
    import importlib.util

    import torch

    if os.environ.get("AZFT_ATTN_IMPLEMENTATION"):
        return os.environ["AZFT_ATTN_IMPLEMENTATION"]
    if not torch.cuda.is_available() or dtype not in (torch.bfloat16, torch.float16):
        return None
    if importlib.util.find_spec("flash_attn") is None:
        return None
    major, _minor = torch.cuda.get_device_capability()
    return "flash_attention_2" if major >= 8 else None


def _module_suffixes(model: Any, exclude: tuple[str, ...]) -> set[str]:
    import torch

    names = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in exclude:
            continue
        if isinstance(module, torch.nn.Linear) or "Linear" in type(module).__name__:
            names.add(leaf)
    return names


def resolve_target_modules(model: Any, args: Args, head_names: tuple[str, ...]) -> list[str] | str:
    """--target-modules as peft wants it; checks every name exists so a typo is a clear exit 2."""
    linear = _module_suffixes(model, (*head_names, "lm_head"))
    if args.target_modules.lower() == "all-linear":
        if head_names:
            # peft's all-linear shorthand keeps token-classification heads; name the body's layers instead.
            return sorted(linear)
        return "all-linear"
    wanted = [name.strip() for name in args.target_modules.split(",") if name.strip()]
    missing = [name for name in wanted if name not in linear]
    if missing:
        raise UsageError(
            f"--target-modules: {', '.join(missing)} not found in the model; its linear layers are "
            f"{', '.join(sorted(linear))} (or use all-linear)"
        )
    return wanted


def lora_config(
    args: Args, target_modules: list[str] | str, task_type: str, modules_to_save: list[str] | None
) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules,
        use_dora=args.technique == "dora",
        bias="none",
        task_type=task_type,
        modules_to_save=modules_to_save,
    )


def classification_head(model: Any) -> str:
    for name in ("score", "classifier", "classification_head", "cls"):
        if getattr(model, name, None) is not None:
            return name
    raise UsageError(f"{type(model).__name__}: cannot find its classification head")
