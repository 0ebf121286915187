"""`main()`: base + adapter -> a merged full model (and optionally its MLflow model); exit 0 ok, 2 bad input, 1 failed.

A folder without adapter_config.json is already a full model (technique full): it is copied as it is, so the
step can sit in every pipeline. Model lookup and the MLflow format are the training entry point's own
(finetune.modeling.locate_model, finetune.export.save_mlflow_model): one definition of both.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("merge_adapter")

TASKS = ("chat-completion", "text-completion", "text-classification", "token-classification")
_DTYPES = ("auto", "bf16", "fp16", "fp32")


class UsageError(Exception):
    """Bad flags or inputs: exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m merge_adapter", description=__doc__)
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add("--base-model", required=True, help="HF folder, Azure ML MLflow model folder, or hf:<org>/<name>")
    add("--adapter", required=True, type=Path, help="the fine-tune step's output folder")
    add("--output-dir", required=True, type=Path, help="the merged model (HF folder + tokenizer)")
    add("--mlflow-model-dir", type=Path, help="also write the merged model as an MLflow model here")
    add("--technique", default="lora", help="recorded in the MLflow model's metadata")
    add("--dtype", choices=_DTYPES, default="auto", help="auto: the base model's own dtype")
    return parser


def _auto_class(task: str) -> Any:
    import transformers

    return {
        "chat-completion": transformers.AutoModelForCausalLM,
        "text-completion": transformers.AutoModelForCausalLM,
        "text-classification": transformers.AutoModelForSequenceClassification,
        "token-classification": transformers.AutoModelForTokenClassification,
    }[task]


def _label_kwargs(adapter: Path) -> dict[str, Any]:
    labels_file = adapter / "labels.json"
    if not labels_file.is_file():
        return {}
    names = json.loads(labels_file.read_text(encoding="utf-8"))
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
    }


def _dtype(name: str, config_dtype: Any) -> Any:
    import torch

    if name == "auto":
        return config_dtype if isinstance(config_dtype, torch.dtype) else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def merge(args: argparse.Namespace) -> Any:
    """The merged (or copied full) model and its tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    adapter: Path = args.adapter
    if not adapter.is_dir():
        raise UsageError(f"--adapter {adapter}: no such folder")
    # The adapter folder carries the tokenizer as trained (a pad token may have been added).
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    labels = _label_kwargs(adapter)
    auto_class = _auto_class(args.task)
    if not (adapter / "adapter_config.json").is_file():
        log.info("%s holds a full model (no adapter_config.json): copying it", adapter)
        config = AutoConfig.from_pretrained(str(adapter))
        model = auto_class.from_pretrained(
            str(adapter), dtype=_dtype(args.dtype, getattr(config, "dtype", None))
        )
        return model, tokenizer

    from finetune.errors import UsageError as EntryUsageError
    from finetune.modeling import locate_model
    from peft import PeftModel

    try:
        source = locate_model(args.base_model)
    except EntryUsageError as error:
        raise UsageError(str(error).replace("--model", "--base-model")) from error
    config = AutoConfig.from_pretrained(source.model)
    dtype = _dtype(args.dtype, getattr(config, "dtype", None) or getattr(config, "torch_dtype", None))
    base = auto_class.from_pretrained(source.model, dtype=dtype, **labels)
    if base.get_input_embeddings().weight.shape[0] < len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))
    if labels:
        base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    log.info("merged %s into %s (%s)", adapter, source.model, dtype)
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    try:
        model, tokenizer = merge(args)
        out: Path = args.output_dir
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        for extra in ("labels.json", "metrics.json"):
            if (args.adapter / extra).is_file():
                shutil.copy2(args.adapter / extra, out / extra)
        log.info("merged model saved to %s", out)
        if args.mlflow_model_dir is not None:
            from finetune.export import save_mlflow_model

            save_mlflow_model(
                model,
                tokenizer,
                SimpleNamespace(task=args.task, technique=args.technique),
                args.mlflow_model_dir,
            )
    except UsageError as error:
        print(f"merge_adapter: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        traceback.print_exc()
        print(f"merge_adapter: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
