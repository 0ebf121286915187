"""Requests, uploads and jobs of Foundry submits on FakeFoundry: azfinetune vs the docs' plain openai sample, one run.

(a) a first submit of jobs/examples/foundry-ministral-3b.yaml (two data files);
(b) a repeat submit of the same spec;
(c) `--runs` fresh resources with 30% of all requests failing (429, 500, 503, lost answers, dropped requests): each
    submits until it succeeds (at most 5 tries), as a user would; counted are the jobs and uploads it leaves.
Plain = the azure-ai-projects sample's calls: files.create per file, wait until processed, jobs.create with
extra_body trainingType, on the client get_openai_client() returns (openai's own retries, max_retries=2).
Targets: (a) azfinetune <= plain + 2 requests (its two lookups); (b) 1 request, 0 uploads, 0 jobs;
(c) exactly 1 job and 1 upload per file in every run.
Run: .venv/bin/python benchmarks/foundry_submit.py [--runs 20]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "jobs" / "examples" / "foundry-ministral-3b.yaml"


def _spec(folder: Path, endpoint: str) -> Path:
    shutil.copytree(ROOT / "jobs" / "examples" / "data", folder / "data", dirs_exist_ok=True)
    path = folder / "spec.yaml"
    text = EXAMPLE.read_text().replace(
        "https://my-foundry.services.ai.azure.com/api/projects/my-project", endpoint
    )
    path.write_text(text)
    return path


def _plain_submit(fake: Any, folder: Path) -> None:
    """What the azure-ai-projects OSS sample does."""
    client = fake.openai_client()
    ids = []
    for name in ("chat-train.jsonl", "chat-valid.jsonl"):
        data = (folder / "data" / name).read_bytes()
        item = client.files.create(file=(name, io.BytesIO(data), "application/jsonl"), purpose="fine-tune")
        while item.status not in ("processed", "error"):
            item = client.files.retrieve(item.id)
        ids.append(item.id)
    client.fine_tuning.jobs.create(
        model="Ministral-3B",
        training_file=ids[0],
        validation_file=ids[1],
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        extra_body={"trainingType": "GlobalStandard"},
    )


def _counts(fake: Any, since: int = 0) -> dict[str, int]:
    requests = fake.requests[since:]
    return {
        "requests": len(requests),
        "uploads": sum(
            1 for r in requests if r.method == "POST" and r.route == "files" and r.fault != "drop"
        ),
        "jobs": len(fake.jobs),
    }


def _until_success(action: Any, tries: int = 5) -> bool:
    for _ in range(tries):
        try:
            action()
            return True
        except Exception:  # a failure the user sees, and retries
            continue
    return False


def run(runs: int) -> dict[str, Any]:
    from azfinetune.testing import FakeFoundry

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with FakeFoundry() as fake:
            spec = _spec(folder, fake.project_endpoint)
            client = fake.client()
            client.submit(spec)
            results["azfinetune first"] = _counts(fake)
            mark = len(fake.requests)
            client.submit(spec)
            results["azfinetune repeat"] = {**_counts(fake, mark), "jobs": len(fake.jobs) - 1}
        with FakeFoundry() as fake:
            _plain_submit(fake, folder)
            results["plain first"] = _counts(fake)
            mark = len(fake.requests)
            _plain_submit(fake, folder)
            results["plain repeat"] = {**_counts(fake, mark), "jobs": len(fake.jobs) - 1}
        for who in ("azfinetune", "plain"):
            outcomes = []
            for seed in range(runs):
                with FakeFoundry(seed=seed) as fake:
                    spec = _spec(folder, fake.project_endpoint)
                    fake.chaos(0.3, seed=seed)
                    if who == "azfinetune":
                        client = fake.client()
                        ok = _until_success(lambda client=client, spec=spec: client.submit(spec))
                    else:
                        ok = _until_success(lambda fake=fake: _plain_submit(fake, folder))
                    uploads = [f for f in fake.files.values() if f.purpose == "fine-tune"]
                    outcomes.append((ok, len(fake.jobs), len(uploads)))
            results[f"{who} under 30% faults"] = outcomes
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="fresh resources under faults, per client")
    args = parser.parse_args()
    results = run(args.runs)
    print(f"spec: {EXAMPLE.relative_to(ROOT)} (FakeFoundry, one run)")
    print(f"{'case':<20} {'requests':>8} {'uploads':>8} {'new jobs':>8}")
    for case in ("azfinetune first", "plain first", "azfinetune repeat", "plain repeat"):
        data = results[case]
        print(f"{case:<20} {data['requests']:>8} {data['uploads']:>8} {data['jobs']:>8}")
    first, plain = results["azfinetune first"], results["plain first"]
    repeat = results["azfinetune repeat"]
    print(
        f"(a) first submit: azfinetune {first['requests']} vs plain {plain['requests']} requests "
        f"(ratio {first['requests'] / plain['requests']:.2f}) -> "
        f"{'OK' if first['requests'] <= plain['requests'] + 2 else 'MISSED'}"
    )
    print(
        f"(b) repeat: azfinetune {repeat['requests']} request(s), {repeat['uploads']} uploads, {repeat['jobs']} new jobs "
        f"-> {'OK' if (repeat['requests'], repeat['uploads'], repeat['jobs']) == (1, 0, 0) else 'MISSED'}"
    )
    for who in ("azfinetune", "plain"):
        outcomes = results[f"{who} under 30% faults"]
        clean = sum(1 for ok, jobs, uploads in outcomes if ok and jobs == 1 and uploads == 2)
        extra_jobs = sum(max(0, jobs - 1) for _, jobs, _ in outcomes)
        extra_uploads = sum(max(0, uploads - 2) for _, _, uploads in outcomes)
        print(
            f"(c) {who:<10} {clean}/{len(outcomes)} runs left exactly 1 job and 2 uploads; "
            f"{extra_jobs} duplicate jobs, {extra_uploads} duplicate uploads"
        )


if __name__ == "__main__":
    main()
