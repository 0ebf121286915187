"""The CPU tier: DeepSpeed ZeRO-2/3 and QLoRA through the real entry point, 1 and 2 processes, on a tiny Phi-3.

Each configuration of tests/jobs/cpu_tier_configs.py (the list scripts/gpu_check.sh runs on a GPU) trains with
`python -m finetune` (two processes: `torchrun --standalone`, gloo): the loss falls, the saved adapter or model is
complete, loads with plain peft/transformers, and the merged model equals base + adapter. CPU runs prove
correctness, not speed: peak-memory figures need CUDA and stay with scripts/gpu_check.sh.

The training processes run in a network namespace of their own when this machine allows it (only loopback
exists there: torchrun's rendezvous and gloo work, nothing else can be reached, native code included), and with
the Python socket guard of the other training tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.cpu_tier_configs import CONFIGS, TrainingConfig
from tests.jobs.helpers import HAS_CUDA, JOBS_SRC, EntryPointRun, contract_argv

pytestmark = [pytest.mark.training, pytest.mark.cpu_tier]

# The two cores of a CI machine: one thread per process when two processes train.
CORES = 2
STEPS = 6  # logged at steps 1, 2, 4, 6: enough to see the loss fall
# Installed into every training subprocess: Python-level connections to anything but a unix socket fail.
_NO_NETWORK = """
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse(sock, address):
    if sock.family == getattr(socket, "AF_UNIX", None):
        return None
    raise OSError(f"network access is disabled in azfinetune training tests: {address!r}")


def _guarded_connect(self, address):
    _refuse(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _refuse(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
"""
_MISSING = [name for name in ("deepspeed", "bitsandbytes") if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="session", autouse=True)
def _tier_stack() -> None:
    if not _MISSING:
        return
    message = (
        f"{', '.join(_MISSING)} not installed: ./scripts/setup-venv.sh dev,train,deepspeed "
        "(azfinetune's `deepspeed` extra, built as the script describes)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"the CPU tier must run in CI: {message}")
    pytest.skip(message)


@dataclass(frozen=True)
class TinyBase:
    """The tiny Phi-3 every run starts from, and what a check needs to know about it."""

    folder: Path
    train: Path
    validation: Path
    parameters: int  # as transformers counts them (tied weights once)
    shapes: dict[str, tuple[int, ...]]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> TinyBase:
    import torch
    from transformers import AutoModelForCausalLM

    from azfinetune.tiny_model import chat_texts, make_chat_dataset, make_tiny_phi3

    torch.set_num_threads(CORES)
    root = tmp_path_factory.mktemp("cpu-tier")
    folder = make_tiny_phi3(root / "model", texts=chat_texts())
    model = AutoModelForCausalLM.from_pretrained(folder)
    return TinyBase(
        folder=folder,
        train=make_chat_dataset(root / "train.jsonl", n=40, seed=0),
        validation=make_chat_dataset(root / "valid.jsonl", n=10, seed=3),  # 10: uneven batches of 4 and of 8
        parameters=sum(p.numel() for p in model.parameters()),
        shapes={k: tuple(v.shape) for k, v in model.state_dict().items()},
    )


def _network_namespace() -> list[str]:
    """A prefix that runs a command where only loopback exists, or [] where unshare is not allowed."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return []
    prefix = [unshare, "--net", "--", "sh", "-c", f'{ip} link set lo up && exec "$@"', "azft-netns"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=30)
    return prefix if probe.returncode == 0 else []


@pytest.fixture(scope="session")
def _tier_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str]]:
    guard = tmp_path_factory.mktemp("no-network")
    (guard / "sitecustomize.py").write_text(_NO_NETWORK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZUREML_", "DS_"))}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(JOBS_SRC), str(guard)]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
            # DeepSpeed's JIT op builds would land here; the tier must not need any.
            "TORCH_EXTENSIONS_DIR": str(tmp_path_factory.mktemp("torch-extensions")),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return _network_namespace(), env


Runner = Callable[..., EntryPointRun]


@pytest.fixture(scope="session")
def train(_tier_env: tuple[list[str], dict[str, str]]) -> Runner:
    """train(argv, processes=1) -> EntryPointRun: `python -m finetune ARGV`, or under torchrun, cwd jobs/src."""
    prefix, base_env = _tier_env

    def run(argv: list[str], processes: int = 1, timeout: float = 300) -> EntryPointRun:
        threads = str(max(1, CORES // processes))
        env = {**base_env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        proc = subprocess.run(
            [*prefix, *launcher, "-m", "finetune", *argv],
            cwd=JOBS_SRC,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = EntryPointRun(proc.returncode, proc.stdout, proc.stderr)
        for line in proc.stdout.splitlines():
            tag, _, payload = line.partition(" ")
            if tag == "AZFT_PROGRESS":
                result.progress.append(json.loads(payload))
            elif tag == "AZFT_DONE":
                assert result.done is None, "only rank 0 reports AZFT_DONE"
                result.done = json.loads(payload)
            elif tag == "AZFT_ERROR":
                result.error = json.loads(payload)
        return result

    return run


@dataclass(frozen=True)
class TierRun:
    """One configuration trained once per session (with a validation split and a merged model); checked by
    several tests."""

    config: TrainingConfig
    run: EntryPointRun
    out: Path
    merged: Path


@pytest.fixture(scope="session")
def tier_run(
    tiny_base: TinyBase, train: Runner, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[TrainingConfig], TierRun]:
    runs: dict[str, TierRun] = {}

    def get(config: TrainingConfig) -> TierRun:
        if config.name not in runs:
            folder = tmp_path_factory.mktemp(config.name)
            out, merged = folder / "out", folder / "merged"
            argv = contract_argv(
                task="chat-completion",
                model=tiny_base.folder,
                train_file=tiny_base.train,
                validation_file=tiny_base.validation,
                output_dir=out,
                merged_output_dir=merged,
                technique=config.technique,
                learning_rate=config.learning_rate,
                max_steps=STEPS,
                deepspeed=config.write_deepspeed_config(folder),
            )
            runs[config.name] = TierRun(config, train(argv, processes=config.processes), out, merged)
        return runs[config.name]

    return get


def _config(name: str) -> TrainingConfig:
    return next(config for config in CONFIGS if config.name == name)


def _assert_loss_falls(run: EntryPointRun) -> None:
    losses = [line["loss"] for line in run.progress if "loss" in line]
    assert len(losses) >= 4, run.explain()
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first - 0.5, f"the loss did not fall: {losses}"


def _logits(model: Any, folder: Path) -> Any:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = [{"role": "user", "content": "What color is a banana?"}]
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.float()(input_ids=ids).logits


def _saved_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


def _check_adapter(tiny: TinyBase, out: Path, merged: Path, metrics: dict[str, Any]) -> None:
    """Complete (every tensor a fresh adapter of this config has, full size), loads, merges into base + adapter."""
    import torch
    from peft import PeftConfig, PeftModel, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    saved = _saved_shapes(out / "adapter_model.safetensors")
    assert saved and all(0 not in shape and shape for shape in saved.values()), saved
    fresh = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny.folder), PeftConfig.from_pretrained(out))
    expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(fresh).items()}
    assert saved == expected, "the saved adapter is not the full adapter"
    adapter_size = sum(torch.Size(s).numel() for s in saved.values())
    assert metrics["saved_parameters"] == metrics["trainable_parameters"] == adapter_size
    # Logical weights (a 4-bit base counts its unpacked shape): base + adapter, for every technique.
    assert metrics["total_parameters"] == tiny.parameters + adapter_size

    base = AutoModelForCausalLM.from_pretrained(tiny.folder)
    before = _logits(base, tiny.folder)
    tuned = _logits(PeftModel.from_pretrained(base, str(out)), tiny.folder)
    assert not torch.allclose(before, tuned, atol=1e-3), "the adapter does not change the model"
    merged_logits = _logits(AutoModelForCausalLM.from_pretrained(merged), tiny.folder)
    torch.testing.assert_close(merged_logits, tuned, atol=1e-4, rtol=1e-4)


def _check_full_model(tiny: TinyBase, out: Path, metrics: dict[str, Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    saved: dict[str, tuple[int, ...]] = {}
    for file in sorted(out.glob("*.safetensors")):
        saved.update(_saved_shapes(file))
    # Every weight of the base, full size (a tied lm_head may be saved once, under the embedding's name).
    assert {k: v for k, v in tiny.shapes.items() if k in saved} == saved
    assert set(tiny.shapes) - set(saved) <= {"lm_head.weight"}
    assert metrics["trainable_parameters"] == metrics["total_parameters"] == tiny.parameters
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny.folder)
    assert not torch.allclose(_logits(base, tiny.folder), _logits(tuned, tiny.folder), atol=1e-3)


@pytest.mark.parametrize("config", [pytest.param(c, id=c.name) for c in CONFIGS if c.in_cpu_tier])
def test_configuration_trains_saves_and_merges(
    tiny_base: TinyBase, tier_run: Callable[[TrainingConfig], TierRun], config: TrainingConfig
) -> None:
    trained = tier_run(config)
    run = trained.run
    assert run.returncode == 0, run.explain()
    _assert_loss_falls(run)
    assert run.done is not None
    assert run.done["technique"] == config.technique
    assert run.done["deepspeed_zero_stage"] == config.zero_stage
    assert run.done["world_size"] == config.processes
    assert run.done["correctness_run"] is (not HAS_CUDA)
    if not HAS_CUDA:
        assert "this is a correctness run on CPU, not a speed run" in run.stderr
    if config.zero_stage == 3 and not config.gather_on_save:
        assert "without stage3_gather_16bit_weights_on_model_save: switching it on" in run.stderr
    metrics = json.loads((trained.out / "metrics.json").read_text())
    if config.is_peft:
        _check_adapter(tiny_base, trained.out, trained.merged, metrics)
    else:
        _check_full_model(tiny_base, trained.out, metrics)
        _check_full_model(tiny_base, trained.merged, metrics)  # the entry point's copy for the merge output


# -- bugs found on the way ------------------------------------------------------------------------------


def test_the_builders_deepspeed_config_for_a_bf16_spec_trains_on_cpu(
    tiny_base: TinyBase, tmp_path: Path, train: Runner
) -> None:
    """A bf16 spec wrote "bf16": {"enabled": true}; on hardware without bf16 transformers refused the run."""
    from azfinetune.spec import spec_from_dict
    from azfinetune.targets import deepspeed_config_text

    spec = spec_from_dict(
        {
            "name": "tier-bf16",
            "model": str(tiny_base.folder),
            "data": {"train": str(tiny_base.train)},
            "method": {"technique": "lora", "deepspeed": {"stage": 2}},
            "training": {"precision": "bf16"},
            "target": {"kind": "local"},
        },
        base_dir=tmp_path,
    )
    config = tmp_path / "zero2.json"
    config.write_text(deepspeed_config_text(spec))
    assert json.loads(config.read_text())["bf16"] == {"enabled": "auto"}
    argv = contract_argv(
        task="chat-completion",
        model=tiny_base.folder,
        train_file=tiny_base.train,
        output_dir=tmp_path / "out",
        max_steps=2,
        precision="bf16",  # the spec's, as the builder writes it
        deepspeed=config,
    )
    run = train(argv)
    assert run.returncode == 0, run.explain()
    assert run.done is not None and run.done["deepspeed_zero_stage"] == 2
    assert run.done["requested_precision"] == "bf16"
    if not HAS_CUDA:
        assert run.done["precision"] == "fp32"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("lora_zero2", id="one-process"),
        pytest.param("lora_zero3_x2_no_gather", id="zero3-two-processes"),
    ],
)
def test_eval_loss_of_training_equals_the_evaluate_step(
    tiny_base: TinyBase,
    tmp_path: Path,
    tier_run: Callable[[TrainingConfig], TierRun],
    _tier_env: tuple[list[str], dict[str, str]],
    name: str,
) -> None:
    """Both report the token mean over the split (the Trainer's default was a mean of batch means).

    Ten validation examples in batches of 4 (one process) or of 4 per process (two): the last batch is short, or
    filled by accelerate with repeats; either way every example counts once, as in the evaluate step.
    """
    trained = tier_run(_config(name))
    assert trained.run.returncode == 0, trained.run.explain()
    eval_loss = json.loads((trained.out / "metrics.json").read_text())["eval_loss"]

    _, env = _tier_env
    step = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluate_model",
            "--task=chat-completion",
            f"--model={trained.merged}",
            f"--data-file={tiny_base.validation}",
            "--max-seq-length=64",  # contract_argv's
            "--batch-size=3",  # another batch size: the token mean does not depend on it
            f"--metrics-dir={tmp_path / 'eval'}",
        ],
        cwd=JOBS_SRC,
        env={**env, "OMP_NUM_THREADS": str(CORES)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert step.returncode == 0, step.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["examples"] == 10
    assert eval_loss == pytest.approx(evaluated["eval_loss"], rel=1e-5, abs=1e-6)
