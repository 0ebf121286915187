"""Benchmark: azfinetune's chat-data validation against a plain json.loads line-by-line baseline.

    python benchmarks/data_validate.py              # ≥ 200 MB file: MB/s of each and the ratio (target ≥ 2)
    python benchmarks/data_validate.py --big        # also the peak RSS of validating a 1 GB file (≤ 200 MB)
    python benchmarks/data_validate.py --mb 50 --keep DIR --shape single-turn

The baseline does the same work as validate_data on a clean file, in the obvious way: read the file
line by line as text, json.loads each line, apply the chat checks in Python, hash lines for
duplicates, and count approximate tokens (characters / 4 + 4 per message) into a list.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROLES = {"system", "user", "assistant"}
_TEXT = (
    "the model answers questions about azure machine learning compute quotas regions tokens training "
    "data files jobs pipelines endpoints deployment adapters lora rank alpha learning rate warmup epochs "
    "validation loss gradient checkpointing memory precision bf16 a an of to in is it for on with as by"
)
WORDS = _TEXT.split()
NON_ASCII_WORDS = ["café", "naïve", "東京", "données", "“quoted”", "—", "résumé", "Größe"]


def _sentence(rng: random.Random, words: int, non_ascii: float) -> str:
    picked = rng.choices(WORDS, k=words)
    if rng.random() < non_ascii:  # this message carries a non-ASCII word (curly quotes, accents, CJK)
        picked[rng.randrange(words)] = rng.choice(NON_ASCII_WORDS)
    return " ".join(picked)


def _conversation(rng: random.Random, shape: str, non_ascii: float) -> list[dict[str, str]]:
    if shape == "single-turn":  # Alpaca-like: one short question, one answer
        return [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": _sentence(rng, rng.randint(5, 30), non_ascii)},
            {"role": "assistant", "content": _sentence(rng, rng.randint(10, 80), non_ascii)},
        ]
    messages = [{"role": "system", "content": "You are a helpful assistant for Azure ML."}]
    for _ in range(rng.randint(1, 3)):
        messages.append({"role": "user", "content": _sentence(rng, rng.randint(8, 60), non_ascii)})
        paragraphs = [_sentence(rng, rng.randint(20, 80), non_ascii) for _ in range(rng.randint(1, 3))]
        messages.append({"role": "assistant", "content": "\n\n".join(paragraphs)})
    return messages


def make_chat_file(
    path: Path, megabytes: float, seed: int = 0, non_ascii: float = 0.3, shape: str = "multi-turn"
) -> int:
    """Write chat JSONL of about `megabytes` MB; returns the number of lines.

    multi-turn (default, ~2 KB lines): a system prompt and 1-3 user/assistant turns, assistant replies of
    1-3 paragraphs (so contents carry \\n escapes); single-turn (~0.5 KB lines): system, user, assistant.
    `non_ascii` is the share of messages with a non-ASCII word.
    """
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = 0
    lines = 0
    with path.open("wb") as out:
        buffer: list[bytes] = []
        while written < target:
            messages = _conversation(rng, shape, non_ascii)
            data = json.dumps({"messages": messages}, ensure_ascii=False).encode() + b"\n"
            buffer.append(data)
            written += len(data)
            lines += 1
            if len(buffer) >= 2000:
                out.write(b"".join(buffer))
                buffer.clear()
        out.write(b"".join(buffer))
    return lines


def baseline(path: Path) -> dict[str, int]:
    """json.loads line by line + the same chat checks, duplicates and approximate tokens, in plain Python."""
    errors = 0
    seen: set[int] = set()
    duplicates = 0
    tokens: list[int] = []
    with path.open(encoding="utf-8-sig") as handle:
        for line in handle:
            if not line.strip():
                continue
            key = hash(line.rstrip())
            if key in seen:
                duplicates += 1
            seen.add(key)
            try:
                example = json.loads(line)
            except json.JSONDecodeError:
                errors += 1
                continue
            if not isinstance(example, dict) or set(example) != {"messages"}:
                errors += 1
                continue
            messages = example["messages"]
            if not isinstance(messages, list) or not messages:
                errors += 1
                continue
            ok = True
            chars = 0
            has_assistant = False
            for message in messages:
                if not isinstance(message, dict) or not set(message) <= {"role", "content", "weight"}:
                    ok = False
                    break
                role = message.get("role")
                content = message.get("content")
                if role not in ROLES or not isinstance(content, str) or not content.strip():
                    ok = False
                    break
                if "weight" in message and (message["weight"] not in (0, 1) or role != "assistant"):
                    ok = False
                    break
                has_assistant = has_assistant or role == "assistant"
                chars += len(content)
            if not ok or not has_assistant or messages[-1].get("role") != "assistant":
                errors += 1
                continue
            tokens.append(math.ceil(chars / 4) + 4 * len(messages))
    return {"errors": errors, "duplicates": duplicates, "examples": len(tokens), "tokens": sum(tokens)}


def _timed(func, *args, **kwargs):  # type: ignore[no-untyped-def]
    """(result, wall seconds, CPU seconds of this process): CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def peak_rss_mb(path: Path) -> tuple[float, float, bool]:
    """Validate `path` in a fresh interpreter; (peak RSS MB, seconds, ok)."""
    code = (
        "import resource, sys, time\n"
        "from azfinetune.data import validate_data\n"
        "t = time.perf_counter()\n"
        "r = validate_data(sys.argv[1], task='chat-completion', max_seq_length=4096)\n"
        "t = time.perf_counter() - t\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, t, r.ok)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True
    )
    rss, seconds, ok = out.stdout.split()
    return float(rss), float(seconds), ok == "True"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=200.0, help="size of the timed file in MB (default 200)")
    parser.add_argument("--big", action="store_true", help="also measure peak RSS on a 1 GB file")
    parser.add_argument("--big-mb", type=float, default=1024.0, help="size of the --big file in MB")
    parser.add_argument("--repeat", type=int, default=1, help="timing runs of each (best is reported)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument(
        "--non-ascii", type=float, default=0.3, help="share of messages with a non-ASCII word (default 0.3)"
    )
    parser.add_argument("--shape", choices=["multi-turn", "single-turn"], default="multi-turn")
    args = parser.parse_args()

    from azfinetune.data import validate_data

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / f"chat-{args.shape}-{args.mb:g}mb-{args.non_ascii:g}.jsonl"
        if data.exists():
            lines = sum(1 for _ in data.open("rb"))
        else:
            lines = make_chat_file(data, args.mb, non_ascii=args.non_ascii, shape=args.shape)
        size_mb = data.stat().st_size / 1e6
        print(f"file: {data} — {size_mb:.1f} MB, {lines:,} lines")

        # Warm-up on a small file: imports (numpy, msgspec) are not what is measured.
        warm = folder / "warm.jsonl"
        make_chat_file(warm, 1)
        validate_data(warm, task="chat-completion")
        baseline(warm)

        ours_wall = ours_cpu = base_wall = base_cpu = math.inf
        report = None
        expected: dict[str, int] = {}
        for _ in range(args.repeat):
            with data.open("rb") as handle:  # both runs read from a warm page cache
                while handle.read(1 << 24):
                    pass
            report, wall, cpu = _timed(validate_data, data, task="chat-completion")
            ours_wall, ours_cpu = min(ours_wall, wall), min(ours_cpu, cpu)
            expected, wall, cpu = _timed(baseline, data)
            base_wall, base_cpu = min(base_wall, wall), min(base_cpu, cpu)
        assert report is not None
        stats = report.stats
        assert report.ok and stats.valid_examples == expected["examples"], (report.summary(), expected)
        assert stats.tokens.total == expected["tokens"], (stats.tokens.total, expected)
        assert stats.duplicates == expected["duplicates"], (stats.duplicates, expected)
        print(f"{'':26s} {'wall s':>8s} {'MB/s':>8s} {'CPU s':>8s} {'MB/s (CPU)':>11s}")
        for name, wall, cpu in (
            ("azfinetune validate_data", ours_wall, ours_cpu),
            ("baseline json.loads", base_wall, base_cpu),
        ):
            print(f"{name:26s} {wall:8.2f} {size_mb / wall:8.1f} {cpu:8.2f} {size_mb / cpu:11.1f}")
        print(f"ratio: {base_wall / ours_wall:.2f}x wall, {base_cpu / ours_cpu:.2f}x CPU time (target ≥ 2)")

        if args.big:
            big = folder / f"chat-{args.shape}-{args.big_mb:g}mb-{args.non_ascii:g}.jsonl"
            if not big.exists():
                make_chat_file(big, args.big_mb, seed=1, non_ascii=args.non_ascii, shape=args.shape)
            rss, seconds, ok = peak_rss_mb(big)
            big_mb = big.stat().st_size / 1e6
            print(
                f"1 GB file: {big_mb:.0f} MB validated in {seconds:.1f} s ({big_mb / seconds:.0f} MB/s), "
                f"peak RSS {rss:.0f} MB (target ≤ 200), ok={ok}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
