"""The DeepSpeed ZeRO config JSON a spec asks for, in the shape the transformers integration fills ("auto")."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.errors import BuildError

if TYPE_CHECKING:
    from azfinetune.spec import FineTuneSpec

__all__ = ["deepspeed_config", "deepspeed_config_text", "write_deepspeed_config"]

# "auto" is filled by transformers' HfTrainerDeepSpeedConfig from the TrainingArguments the entry point
# builds from the same spec, so the batch sizes, learning rate and clipping can never disagree with it.
_AUTO = "auto"


def _offload() -> dict[str, Any]:
    return {"device": "cpu", "pin_memory": True}


def deepspeed_config(spec: FineTuneSpec) -> dict[str, Any]:
    """ZeRO stage 0-3 config for the spec's method.deepspeed (BuildError when the spec has none)."""
    ds = spec.method.deepspeed
    if ds is None:
        raise BuildError(
            "the spec sets no DeepSpeed", path="method.deepspeed", hint="set method.deepspeed.stage"
        )
    if ds.offload_params and ds.stage != 3:
        raise BuildError("parameter offload needs ZeRO stage 3", path="method.deepspeed.offload_params")
    if ds.offload_optimizer and spec.method.optimizer.value != "adamw_torch":
        # DeepSpeed refuses a client optimizer under optimizer offload (zero_force_ds_cpu_optimizer), so the
        # config names its own CPU AdamW; an 8-bit optimizer would be silently replaced.
        raise BuildError(
            f"optimizer offload runs DeepSpeed's CPU AdamW, not {spec.method.optimizer.value}",
            path="method.optimizer",
            hint="set method.optimizer: adamw_torch, or method.deepspeed.offload_optimizer: false",
        )

    zero: dict[str, Any] = {"stage": ds.stage}
    if ds.stage >= 1:
        zero.update({"overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": _AUTO})
    if ds.stage in (1, 2):
        zero.update(
            {"allgather_partitions": True, "allgather_bucket_size": 200_000_000, "reduce_scatter": True}
        )
    if ds.stage == 3:
        zero.update(
            {
                "sub_group_size": 1_000_000_000,
                "stage3_prefetch_bucket_size": _AUTO,
                "stage3_param_persistence_threshold": _AUTO,
                "stage3_max_live_parameters": 1_000_000_000,
                "stage3_max_reuse_distance": 1_000_000_000,
                # Without it save_pretrained writes empty (partitioned) adapter/model weights under ZeRO-3.
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    if ds.offload_optimizer:
        zero["offload_optimizer"] = _offload()
    if ds.offload_params:
        zero["offload_param"] = _offload()

    config: dict[str, Any] = {
        # "auto", not the spec's precision: the entry point falls back (bf16 -> fp16 on GPUs without bf16,
        # -> fp32 on CPU) and transformers refuses a config whose precision disagrees with the run's.
        "bf16": {"enabled": _AUTO},
        "fp16": {
            "enabled": _AUTO,
            "loss_scale": 0,
            "loss_scale_window": 1000,
            "initial_scale_power": 16,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "zero_optimization": zero,
        "gradient_accumulation_steps": _AUTO,
        "gradient_clipping": _AUTO,
        "train_batch_size": _AUTO,
        "train_micro_batch_size_per_gpu": _AUTO,
        "steps_per_print": 100,
        "wall_clock_breakdown": False,
    }
    if ds.offload_optimizer:
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": _AUTO, "betas": _AUTO, "eps": _AUTO, "weight_decay": _AUTO},
        }
    else:
        # The trainer's own optimizer (e.g. bitsandbytes' paged AdamW) is not on DeepSpeed's tested list.
        config["zero_allow_untested_optimizer"] = True
    return config


def deepspeed_config_text(spec: FineTuneSpec) -> str:
    """The config as the exact bytes written to disk: sorted keys, two-space indent, trailing newline."""
    return json.dumps(deepspeed_config(spec), indent=2, sort_keys=True) + "\n"


def write_deepspeed_config(spec: FineTuneSpec, folder: Path) -> Path:
    """Write the config to `folder/zero<stage>-<content hash>.json` (once; same spec, same file) and return it."""
    text = deepspeed_config_text(spec)
    stage = spec.method.deepspeed.stage if spec.method.deepspeed else 0
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / f"zero{stage}-{digest}.json"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Atomic: a concurrent build never sees half a file (the name is its content hash).
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".zero", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        raise BuildError(
            f"cannot write the DeepSpeed config to {path}: {error.strerror or error}",
            path="method.deepspeed",
            hint="the builder writes it beside the spec (in .azfinetune/); make that folder writable",
        ) from None
    return path
