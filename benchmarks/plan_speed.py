"""In-process plan() time per example spec (median of repeated runs); the target is under 50 ms each.

Wall-clock medians rise on a loaded machine; the "cpu ms" column (process CPU time) shows the planner's
own cost.

Run: .venv/bin/python benchmarks/plan_speed.py [--repeat N] [--budget-ms 50]
Each spec is loaded once (loading is `validate`'s cost, not the planner's); the first plan() of the
process is reported separately as the cold call. Specs the planner cannot plan offline (a Hugging Face
model outside the catalog, not in the local cache) are listed as skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "jobs" / "examples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=25, help="timed plan() calls per spec")
    parser.add_argument("--budget-ms", type=float, default=50.0, help="fail when a median exceeds this")
    args = parser.parse_args(argv)

    from azfinetune.planner import plan
    from azfinetune.spec import load_spec

    specs = sorted(EXAMPLES.glob("*.yaml"))
    if not specs:
        print(f"no specs in {EXAMPLES}", file=sys.stderr)
        return 2
    from azfinetune.errors import PlanError

    loaded = []
    cold_ms: float | None = None
    for path in specs:
        spec = load_spec(path)
        started = time.perf_counter()
        try:
            plan(spec)
        except PlanError as error:
            print(f"{path.name:40s} skipped: {error.message}")
            continue
        if cold_ms is None:
            cold_ms = (time.perf_counter() - started) * 1000
        loaded.append((path.name, spec))
    if not loaded:
        print("no spec could be planned", file=sys.stderr)
        return 2
    print(f"cold first call: {cold_ms:.1f} ms")
    print(f"{'spec':40s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s} {'cpu ms':>8s}  verdict")
    worst = 0.0
    for name, spec in loaded:
        times: list[float] = []
        cpu: list[float] = []
        result = None
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            result = plan(spec)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        verdict = result.verdict if result is not None else "?"
        print(
            f"{name:40s} {median:10.2f} {min(times):8.2f} {max(times):8.2f} {statistics.median(cpu):8.2f}  {verdict}"
        )
    status = "ok" if worst < args.budget_ms else "OVER BUDGET"
    print(f"worst median: {worst:.2f} ms (budget {args.budget_ms:g} ms): {status}")
    return 0 if worst < args.budget_ms else 1


if __name__ == "__main__":
    sys.exit(main())
