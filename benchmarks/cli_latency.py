"""Median wall time of the offline commands vs `python -c "import azure.ai.ml"` (the baseline, same run), as ratios.

Commands: `validate` and `plan` of an example (target: ratio <= 0.25 — they must never pay for importing
azure-ai-ml), `validate` of a spec with a local model folder (config.json + tokenizer files; target <= 0.25:
no transformers import), and `build` (it does import azure-ai-ml: its cost beyond the import is printed as
`build - baseline`; target ratio <= 1.5).
Run: .venv/bin/python benchmarks/cli_latency.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "jobs" / "examples" / "phi3-mini-lora.yaml"


def median_seconds(command: list[str], runs: int, cwd: Path = ROOT) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def local_model_spec(folder: Path) -> Path:
    """A spec whose model is a local folder holding a Phi-3 config.json and tokenizer files (no weights read)."""
    model = folder / "model"
    model.mkdir()
    config = {
        "model_type": "phi3",
        "architectures": ["Phi3ForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 512,
        "max_position_embeddings": 256,
    }
    (model / "config.json").write_text(json.dumps(config))
    # A real (tiny) tokenizer: tokenizer.json and the Phi-3 chat template, so validate counts tokens with it.
    from azfinetune.tiny_model import chat_texts, make_tiny_phi3

    tiny = make_tiny_phi3(folder / "tiny", texts=chat_texts(n=60, seed=0), seed=0)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny / name).is_file():
            (model / name).write_bytes((tiny / name).read_bytes())
    data = folder / "train.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text("\n".join(json.dumps(row) for _ in range(16)) + "\n")
    spec = folder / "local.yaml"
    spec.write_text(
        "name: bench-local\ntask: chat-completion\nmodel: ./model\ndata:\n  train: train.jsonl\n"
        "method:\n  technique: lora\ntarget:\n  kind: local\n"
    )
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "azfinetune"]
    baseline = median_seconds([sys.executable, "-c", "import azure.ai.ml"], args.runs)
    print(f"python -c 'import azure.ai.ml' (baseline): median {baseline * 1000:.0f} ms over {args.runs} runs")
    with tempfile.TemporaryDirectory() as tmp:
        local = local_model_spec(Path(tmp))
        rows = [
            ("validate " + EXAMPLE.name, [*cli, "validate", str(EXAMPLE)], 0.25),
            ("plan " + EXAMPLE.name, [*cli, "plan", str(EXAMPLE), "--no-data"], 0.25),
            ("validate (local model folder)", [*cli, "validate", str(local)], 0.25),
            ("build " + EXAMPLE.name, [*cli, "build", str(EXAMPLE)], 1.5),
        ]
        for label, command, target in rows:
            try:
                seconds = median_seconds(command, args.runs)
            except subprocess.CalledProcessError as error:
                print(f"{label}: failed (exit {error.returncode}): {error.stderr.decode()[-300:]}")
                continue
            ratio = seconds / baseline
            verdict = "OK" if ratio <= target else "MISSED"
            extra = f", {(seconds - baseline) * 1000:+.0f} ms beyond the import" if target > 1 else ""
            print(
                f"{label}: median {seconds * 1000:.0f} ms, ratio {ratio:.3f} (target <= {target}) -> {verdict}{extra}"
            )


if __name__ == "__main__":
    main()
