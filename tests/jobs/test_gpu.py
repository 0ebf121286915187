"""QLoRA and DeepSpeed ZeRO-2/3 through the real entry point: they need CUDA, so CPU runs skip them."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.jobs.helpers import HAS_CUDA, EntryPointRun, contract_argv

pytestmark = [
    pytest.mark.training,
    pytest.mark.gpu,
    pytest.mark.skipif(
        not HAS_CUDA, reason="QLoRA (bitsandbytes) and DeepSpeed need a CUDA GPU; scripts/gpu_check.sh"
    ),
]

Runner = Callable[..., EntryPointRun]


def _zero_config(tmp_path: Path, stage: int) -> Path:
    config = {
        "zero_optimization": {"stage": stage, "stage3_gather_16bit_weights_on_model_save": stage == 3},
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
    }
    path = tmp_path / f"zero{stage}.json"
    path.write_text(json.dumps(config))
    return path


def _adapter_loads(tiny_phi3: Path, out: Path) -> None:
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
        assert keys and all(handle.get_tensor(k).numel() > 0 for k in keys)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_phi3), str(out))


@pytest.mark.skipif(HAS_CUDA and importlib.util.find_spec("bitsandbytes") is None, reason="no bitsandbytes")
def test_qlora(tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner) -> None:
    out = tmp_path / "qlora"
    run = run_finetune(
        contract_argv(
            task="chat-completion", model=tiny_phi3, train_file=chat_data, output_dir=out, technique="qlora"
        )
    )
    assert run.returncode == 0, run.explain()
    _adapter_loads(tiny_phi3, out)


@pytest.mark.skipif(HAS_CUDA and importlib.util.find_spec("deepspeed") is None, reason="no deepspeed")
@pytest.mark.parametrize("stage", [2, 3])
def test_lora_under_deepspeed(
    tiny_phi3: Path, chat_data: Path, tmp_path: Path, run_finetune: Runner, stage: int
) -> None:
    out = tmp_path / f"zero{stage}"
    run = run_finetune(
        contract_argv(
            task="chat-completion",
            model=tiny_phi3,
            train_file=chat_data,
            output_dir=out,
            deepspeed=_zero_config(tmp_path, stage),
        )
    )
    assert run.returncode == 0, run.explain()
    assert run.done is not None and run.done["deepspeed_zero_stage"] == stage
    _adapter_loads(tiny_phi3, out)  # under ZeRO-3 the adapter must be gathered, not saved empty
