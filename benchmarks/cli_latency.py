"""Median wall time of `azfinetune validate <example>` vs `python -c "import azure.ai.ml"`, and their ratio.

Target (issue: Foundation): ratio <= 0.25 — offline commands must never pay for importing azure-ai-ml.
Run: .venv/bin/python benchmarks/cli_latency.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "jobs" / "examples" / "phi3-mini-lora.yaml"


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    validate = median_seconds([sys.executable, "-m", "azfinetune", "validate", str(EXAMPLE)], args.runs)
    baseline = median_seconds([sys.executable, "-c", "import azure.ai.ml"], args.runs)
    ratio = validate / baseline
    print(f"azfinetune validate {EXAMPLE.name}: median {validate * 1000:.0f} ms over {args.runs} runs")
    print(f"python -c 'import azure.ai.ml':       median {baseline * 1000:.0f} ms over {args.runs} runs")
    print(f"ratio: {ratio:.3f} (target <= 0.25) -> {'OK' if ratio <= 0.25 else 'MISSED'}")


if __name__ == "__main__":
    main()
