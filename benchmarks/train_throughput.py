"""Training tokens/s of the entry point (`python -m finetune`) vs a plain TRL SFTTrainer script, and their ratio.

Both train the same tiny Phi-3 (azfinetune.tiny_model) on the same chat data with the same settings
(LoRA, steps, batch, sequence length, optimizer, precision, seed), in fresh processes, alternating, and report
the median of tokens / train_runtime as the Trainer measures it (wall clock), and of tokens per CPU second
of the training loop, and the steady state between the first and the last logging step (start-up excluded).
Target (issue 3): ratio >= 0.95. Single runs on a shared 2-core VM vary by +-20%: read the medians of five or
more alternating runs, not one pair.
Run: .venv/bin/python benchmarks/train_throughput.py [--repeats 5] [--max-steps 60] [--hidden-size 64]
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


def _settings(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "learning_rate": 1e-3,
        "max_steps": ns.max_steps,
        "batch_size": ns.batch_size,
        "max_seq_length": ns.max_seq_length,
        "logging_steps": 10,
        "precision": ns.precision,
        "seed": 0,
    }


def entry_point_argv(model: Path, data: Path, out: Path, s: dict[str, Any]) -> list[str]:
    """The entry point's command line (azft_contract's flag table), as the job builder writes it."""
    flags = {
        "task": "chat-completion",
        "model": model,
        "train-file": data,
        "technique": "lora",
        "lora-r": s["lora_r"],
        "lora-alpha": s["lora_alpha"],
        "lora-dropout": s["lora_dropout"],
        "target-modules": "all-linear",
        "epochs": 1,
        "max-steps": s["max_steps"],
        "learning-rate": s["learning_rate"],
        "lr-scheduler": "constant",
        "warmup-ratio": 0.0,
        "per-device-batch-size": s["batch_size"],
        "gradient-accumulation-steps": 1,
        "max-seq-length": s["max_seq_length"],
        "precision": s["precision"],
        "gradient-checkpointing": "false",
        "packing": "false",
        "seed": s["seed"],
        "optimizer": "adamw_torch",
        "logging-steps": s["logging_steps"],
        "output-dir": out,
    }
    argv = [sys.executable, "-m", "finetune"]
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    return argv


def plain_trl(model: str, data: str, out: str, settings_json: str) -> None:
    """The baseline: what a user would write with TRL directly (no azfinetune code at all)."""
    import dataclasses

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import TrainerCallback, TrainingArguments
    from trl import SFTConfig, SFTTrainer

    s = json.loads(settings_json)
    cuda = torch.cuda.is_available()
    precision = s["precision"] if cuda else "fp32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    )
    config = SFTConfig(
        output_dir=out,
        max_steps=s["max_steps"],
        per_device_train_batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=s["logging_steps"],
        max_length=s["max_seq_length"],
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        optim="adamw_torch",
        seed=s["seed"],
        data_seed=s["seed"],
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_first_step=True,
        dataloader_pin_memory=cuda,
        model_init_kwargs={"dtype": dtype},
        **{checkpointing: False},
    )
    peft_config = LoraConfig(
        r=s["lora_r"],
        lora_alpha=s["lora_alpha"],
        lora_dropout=s["lora_dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )

    class LogClock(TrainerCallback):
        """Measurement only: (time, tokens so far) at each logging step, like the entry point's progress lines."""

        def __init__(self) -> None:
            self.points: list[tuple[float, int]] = []

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if logs and "loss" in logs and "num_tokens" in logs:
                self.points.append((time.perf_counter(), int(logs["num_tokens"])))

    clock = LogClock()
    dataset = load_dataset("json", data_files=data, split="train")
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, peft_config=peft_config, callbacks=[clock]
    )
    started = time.process_time()
    result = trainer.train()
    cpu = time.process_time() - started
    runtime = float(result.metrics["train_runtime"])
    tokens = int(trainer._total_train_tokens)
    (t0, n0), (t1, n1) = clock.points[0], clock.points[-1]
    report = {
        "train_tokens": tokens,
        "train_runtime": runtime,
        "train_cpu_seconds": cpu,
        "steady_tokens": n1 - n0,
        "steady_seconds": t1 - t0,
    }
    Path(out, "plain_metrics.json").write_text(json.dumps(report))


def _env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(JOBS_SRC), str(ROOT)]),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
    )
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}")
    return proc.stdout


def _entry_metrics(stdout: str, out: Path) -> dict[str, float]:
    """metrics.json plus the steady-state span between the first and last AZFT_PROGRESS training lines."""
    metrics: dict[str, float] = json.loads((out / "metrics.json").read_text())
    points = []
    for line in stdout.splitlines():
        if line.startswith("AZFT_PROGRESS "):
            progress = json.loads(line.split(" ", 1)[1])
            if "loss" in progress:
                points.append((progress["elapsed_s"], progress["tokens"]))
    (t0, n0), (t1, n1) = points[0], points[-1]
    return {**metrics, "steady_tokens": n1 - n0, "steady_seconds": t1 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    # One thread: no OpenMP spin-waiting, so a busy machine disturbs the two sides less.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--plain-trl", nargs=4, metavar=("MODEL", "DATA", "OUT", "SETTINGS"), help=argparse.SUPPRESS
    )
    ns = parser.parse_args()
    if ns.plain_trl:
        plain_trl(*ns.plain_trl)
        return

    sys.path.insert(0, str(ROOT))
    from azfinetune.tiny_model import make_chat_dataset, make_tiny_phi3

    settings = _settings(ns)
    env = _env(ns.threads)
    runs: dict[str, list[dict[str, float]]] = {"entry": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="azft-bench-") as tmp:
        work = Path(tmp)
        model = make_tiny_phi3(work / "model", hidden_size=ns.hidden_size)
        data = make_chat_dataset(work / "chat.jsonl", n=400, seed=0)
        for repeat in range(ns.repeats):
            # Alternate, so a slow spell of a shared machine hits both sides alike.
            out = work / f"entry{repeat}"
            stdout = _run(entry_point_argv(model, data, out, settings), JOBS_SRC, env)
            runs["entry"].append(_entry_metrics(stdout, out))
            out = work / f"plain{repeat}"
            plain_argv = [sys.executable, __file__, "--plain-trl", str(model), str(data), str(out)]
            _run([*plain_argv, json.dumps(settings)], ROOT, env)
            runs["plain"].append(json.loads((out / "plain_metrics.json").read_text()))
    shape = f"{ns.max_steps} steps, batch {ns.batch_size}, seq {ns.max_seq_length}"
    print(f"tiny Phi-3 (hidden {ns.hidden_size}), LoRA r8, {ns.repeats} alternating runs of {shape}")
    result: dict[str, Any] = {**settings, "repeats": ns.repeats}
    clocks = (
        ("steady", "steady_tokens", "steady_seconds"),  # logging step 1 to the last: the per-step throughput
        (
            "wall",
            "train_tokens",
            "train_runtime",
        ),  # the Trainer's train_runtime: includes start-up inside train()
        ("cpu", "train_tokens", "train_cpu_seconds"),  # CPU seconds of the process during train()
    )
    for clock, tokens, seconds in clocks:
        rates = {side: [r[tokens] / r[seconds] for r in runs[side]] for side in runs}
        entry, plain = statistics.median(rates["entry"]), statistics.median(rates["plain"])
        best = max(rates["entry"]) / max(rates["plain"])  # the least disturbed run of each side
        pairs = statistics.median(e / p for e, p in zip(rates["entry"], rates["plain"], strict=True))
        verdict = "OK" if entry / plain >= 0.95 else "MISSED"
        print(
            f"[{clock}] entry point (python -m finetune): median {entry:.0f} tokens/s {_rounded(rates['entry'])}"
        )
        print(
            f"[{clock}] plain TRL SFTTrainer script:      median {plain:.0f} tokens/s {_rounded(rates['plain'])}"
        )
        print(
            f"[{clock}] ratio of medians {entry / plain:.3f}, of best runs {best:.3f}, median of pairs {pairs:.3f}"
            f" (target >= 0.95) -> {verdict}"
        )
        result[clock] = {
            "entry": rates["entry"],
            "plain": rates["plain"],
            "ratio": entry / plain,
            "best_ratio": best,
            "pairs": pairs,
        }
    print("AZFT_BENCH " + json.dumps(result))


def _rounded(values: list[float]) -> list[int]:
    return [round(v) for v in values]


if __name__ == "__main__":
    main()
