"""Soak: 200 submissions of 20 specs (10 each, shuffled) while 30% of requests fail transiently (seeded chaos)."""

from __future__ import annotations

import random
import time
from collections import defaultdict

from azfinetune.client import FineTuneClient
from azfinetune.testing import FakeWorkspace
from tests.client.conftest import Project, job_puts

SPECS = 20
REPEATS = 10


def test_200_submissions_under_chaos_make_exactly_20_jobs(
    project: Project, ws: FakeWorkspace, client: FineTuneClient
) -> None:
    specs = []
    for i in range(SPECS):
        path = project.spec("command", name=f"soak-{i:02d}")
        path.write_text(path.read_text().replace("epochs: 1,", f"epochs: {i + 1},"))
        specs.append(path)
    expected = {path: client.submit(path, dry_run=True).name for path in specs}
    assert len(set(expected.values())) == SPECS
    order = [path for path in specs for _ in range(REPEATS)]
    random.Random(20).shuffle(order)

    ws.chaos(0.3, seed=7)  # 503, 500, connection refused, and PUTs applied whose answer is lost
    started = time.monotonic()
    returned: dict[str, set[str]] = defaultdict(set)
    for path in order:
        returned[str(path)].add(client.submit(path).name)  # none may fail: every fault is transient
    elapsed = time.monotonic() - started
    ws.chaos(0)

    faults = [r for r in ws.requests if r.fault]
    assert len(faults) > 0.2 * len(ws.requests)  # the chaos was real
    assert {path: names for path, names in returned.items()} == {str(p): {n} for p, n in expected.items()}
    assert sorted(ws.jobs) == sorted(expected.values())  # exactly 20: none duplicated, none lost
    created = [r for r in job_puts(ws) if r.status in (200, 201) or (r.fault and "lost" in r.fault)]
    assert {r.path.rsplit("/", 1)[-1] for r in created} == set(expected.values())
    assert elapsed < 60, f"soak took {elapsed:.1f} s"
    print(
        f"\nsoak: {len(order)} submissions, {len(ws.requests)} requests, {len(faults)} faults, {elapsed:.1f} s"
    )
