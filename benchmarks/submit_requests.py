"""HTTP requests (and uploads) of a submit on FakeWorkspace: azfinetune vs plain azure-ai-ml, same job, one run.

(a) first submit of a command job with local code (jobs/src), its environment folder and local data;
(b) a repeat submit of the same spec. Plain = `ml_client.jobs.create_or_update` of the equivalent job (the one
azfinetune builds, with its local paths), each case in a fresh workspace.
Targets (issue: the workspace client): (a) azfinetune <= plain; (b) azfinetune <= 2 requests and 0 uploads.
Run: .venv/bin/python benchmarks/submit_requests.py [--spec jobs/examples/phi3-mini-lora.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "jobs" / "examples" / "phi3-mini-lora.yaml"

_CATEGORIES = (
    ("job", re.compile(r"/jobs/")),
    ("code", re.compile(r"/codes/")),
    ("environment", re.compile(r"/environments/")),
    ("datastore", re.compile(r"/datastores/")),
    ("workspace", re.compile(r"/workspaces/[^/]+$")),
)


def _category(record: Any) -> str:
    if ".blob." in record.host:
        return "blob"
    for name, pattern in _CATEGORIES:
        if pattern.search(record.path):
            return name
    return "other"


def _measure(fake: Any, action: Any) -> dict[str, Any]:
    from azfinetune.client import _quiet_stderr

    fake.clear_requests()
    # azure-ai-ml prints colour codes and warnings to stderr while uploading, whatever show_progress says.
    with _quiet_stderr():
        action()
    records = fake.requests
    return {
        "requests": len(records),
        "uploads": len(fake.uploads),
        "by_kind": dict(sorted(Counter(_category(r) for r in records).items())),
    }


def _computes(spec_path: Path) -> dict[str, str]:
    from azfinetune.spec import load_spec

    spec = load_spec(spec_path)
    return {spec.target.compute or "gpu-cluster": spec.target.instance_type or "Standard_NC24ads_A100_v4"}


def run(spec_path: Path) -> dict[str, dict[str, Any]]:
    from azfinetune.client import FineTuneClient, _submittable
    from azfinetune.spec import load_spec
    from azfinetune.targets import build_job, job_name
    from azfinetune.testing import FakeWorkspace

    computes = _computes(spec_path)
    results: dict[str, dict[str, Any]] = {}

    with FakeWorkspace(computes=computes) as fake:
        client = FineTuneClient(
            fake.credential,
            subscription_id=fake.subscription_id,
            resource_group=fake.resource_group,
            workspace_name=fake.workspace,
        )
        results["azfinetune first"] = _measure(fake, lambda: client.submit(spec_path))
        results["azfinetune repeat"] = _measure(fake, lambda: client.submit(spec_path))

    with FakeWorkspace(computes=computes) as fake:
        ml_client = fake.ml_client(show_progress=False)
        spec = load_spec(spec_path)

        def plain_submit() -> None:
            job = build_job(spec)
            job.name = job_name(spec)
            ml_client.jobs.create_or_update(
                _submittable(job)
            )  # azure-ai-ml takes the Command node, not CommandJob

        results["plain first"] = _measure(fake, plain_submit)
        results["plain repeat"] = _measure(fake, plain_submit)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", type=Path, default=EXAMPLE, help="a command-job spec with local data")
    args = parser.parse_args()
    os.chdir(ROOT)  # azure-ai-ml names the experiment after the working directory
    results = run(args.spec.resolve())
    print(f"spec: {args.spec} (FakeWorkspace, one run)")
    print(f"{'case':<20} {'requests':>8} {'uploads':>8}  by kind")
    for case, data in results.items():
        kinds = ", ".join(f"{k} {v}" for k, v in data["by_kind"].items())
        print(f"{case:<20} {data['requests']:>8} {data['uploads']:>8}  {kinds}")
    first_ok = results["azfinetune first"]["requests"] <= results["plain first"]["requests"]
    repeat = results["azfinetune repeat"]
    repeat_ok = repeat["requests"] <= 2 and repeat["uploads"] == 0
    print(
        f"(a) first submit: azfinetune {results['azfinetune first']['requests']} <= plain "
        f"{results['plain first']['requests']} requests -> {'OK' if first_ok else 'MISSED'}"
    )
    print(
        f"(b) repeat submit: azfinetune {repeat['requests']} requests (target <= 2), {repeat['uploads']} uploads "
        f"(target 0) -> {'OK' if repeat_ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
