"""Saving results: adapter or full model + tokenizer, a non-empty check, merged and MLflow models."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from finetune.args import Args
from finetune.errors import TrainingError

log = logging.getLogger("finetune")

MLFLOW_TASKS = {
    "chat-completion": "text-generation",
    "text-completion": "text-generation",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
}


def check_saved(output_dir: Path, peft: bool) -> dict[str, Any]:
    """Fail loudly on an empty save (the ZeRO-3 trap: weights not gathered leave 0-element tensors)."""
    from safetensors import safe_open

    if peft:
        files = [output_dir / "adapter_model.safetensors"]
        if not (output_dir / "adapter_config.json").is_file():
            raise TrainingError(f"{output_dir}: adapter_config.json was not written")
    else:
        files = sorted(output_dir.glob("*.safetensors"))
    if not files or not all(f.is_file() for f in files):
        raise TrainingError(
            f"{output_dir}: no weights were written ({', '.join(f.name for f in files) or 'none'})"
        )
    tensors = 0
    elements = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open handles are not iterable
                shape = handle.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                if count == 0:
                    raise TrainingError(
                        f"{file}: tensor {key} is empty "
                        "(under ZeRO-3 the config needs stage3_gather_16bit_weights_on_model_save)"
                    )
                tensors += 1
                elements += count
    if tensors == 0:
        raise TrainingError(f"{output_dir}: the saved weights hold no tensors")
    return {"saved_tensors": tensors, "saved_parameters": elements}


def copy_model_files(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in ("metrics.json", "training_args.bin"):
            shutil.copy2(item, target / item.name)


def merged_model(args: Args, reload: Any, tokenizer: Any) -> Any:
    """The trained model with the adapter merged in, loaded fresh (not quantized, not sharded) on the CPU."""
    from peft import PeftModel

    base = reload()
    if base.get_input_embeddings().weight.shape[0] < len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, str(args.output_dir))
    return model.merge_and_unload()


def save_merged(model: Any, tokenizer: Any, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    log.info("merged model saved to %s", target)


def save_mlflow_model(model: Any, tokenizer: Any, args: Args, target: Path) -> None:
    """An MLflow `transformers` flavor folder (weights included) that Azure ML registers as mlflow_model."""
    import importlib.metadata as md

    import mlflow.transformers

    if target.exists() and any(target.iterdir()):
        shutil.rmtree(target)  # mlflow refuses to write into a non-empty folder
    target.parent.mkdir(parents=True, exist_ok=True)

    def pin(package: str) -> str:
        try:
            return f"{package}=={md.version(package).split('+')[0]}"
        except md.PackageNotFoundError:
            return package

    # Explicit requirements: inferring them would load the model again in a subprocess.
    requirements = [
        pin(p) for p in ("mlflow", "transformers", "torch", "accelerate", "tokenizers", "safetensors")
    ]
    mlflow.transformers.save_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        path=str(target),
        task=MLFLOW_TASKS[args.task],
        pip_requirements=requirements,
        metadata={"azfinetune_task": args.task, "azfinetune_technique": args.technique},
    )
    log.info("MLflow model saved to %s", target)
