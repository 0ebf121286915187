"""Fuzz every offline command, not only validate (issue 15): byte-level mutations of every example spec run
through `validate`, `plan`, `build` and `submit --dry-run` (against FakeWorkspace), byte mutations of every
example data file through `data validate`, and random --set strings through `plan` and `build`. Each run ends
with exit 0 or 2, no "internal error", no traceback, in bounded time and memory. Bounded by max_examples."""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azfinetune.testing import FakeWorkspace
from tests.cli.conftest import CliResult, run_cli, ws
from tests.hostile.conftest import EXAMPLES

__all__ = ["run_cli", "ws"]

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.yaml"))
EXAMPLE_DATA = sorted(p for p in (EXAMPLES / "data").iterdir() if p.suffix in (".jsonl", ".csv", ".json"))
#: The task `data validate` reads each example data file as (by its name), else chat-completion.
_TASKS = {
    "preference": "preference",
    "sentiment": "text-classification",
    "ner": "token-classification",
    "qa": "question-answering",
    "summar": "summarization",
    "transl": "translation",
    "textgen": "text-completion",
}
#: Per command run: what "bounded" means on this 2-core machine (the slowest honest run, build, takes ~2 s).
MAX_SECONDS = 60
MAX_RSS_GROWTH_MB = 400

_edits = st.lists(
    st.tuples(st.integers(min_value=0), st.binary(min_size=0, max_size=4)), min_size=1, max_size=4
)


def _mutate(raw: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(raw)
    for offset, insert in edits:
        at = offset % (len(data) + 1)
        data[at : at + len(insert)] = insert
    return bytes(data)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _bounded(run: Callable[..., CliResult], *args: str) -> CliResult:
    before, started = _rss_mb(), time.perf_counter()
    result = run(*args)
    seconds, grown = time.perf_counter() - started, _rss_mb() - before
    assert result.code in (0, 2), (args, result.text[-3000:])
    assert "internal error" not in result.text and "Traceback" not in result.text, (args, result.text[-3000:])
    assert seconds < MAX_SECONDS, (args, seconds)
    assert grown < MAX_RSS_GROWTH_MB, (args, grown)
    return result


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples folder with its data, where mutated specs resolve their data paths as the originals do."""
    folder = tmp_path_factory.mktemp("fuzz-examples")
    shutil.copytree(EXAMPLES / "data", folder / "data")
    return folder


@settings(SETTINGS, max_examples=120)  # about a quarter of the mutations still validate and go further
@given(index=st.integers(min_value=0, max_value=len(EXAMPLE_SPECS) - 1), edits=_edits)
def test_mutated_examples_through_every_offline_command(
    examples_copy: Path,
    run_cli: Callable[..., CliResult],
    ws: FakeWorkspace,
    index: int,
    edits: list[tuple[int, bytes]],
) -> None:
    source = EXAMPLE_SPECS[index]
    spec = examples_copy / f"mutated-{source.name}"
    spec.write_bytes(_mutate(source.read_bytes(), edits))
    if _bounded(run_cli, "validate", "--no-data", str(spec)).code != 0:
        return  # refused with exit 2: the other commands would refuse it the same way (tested below)
    _bounded(run_cli, "plan", "--no-data", str(spec))
    _bounded(run_cli, "build", str(spec), "-o", str(examples_copy / "out" / f"{source.stem}.yaml"), "--force")
    _bounded(run_cli, "submit", str(spec), "--dry-run")
    assert not ws.jobs, "a dry run sent a job"


@SETTINGS
@given(index=st.integers(min_value=0, max_value=len(EXAMPLE_SPECS) - 1), edits=_edits)
def test_refused_mutations_are_refused_by_every_command(
    examples_copy: Path,
    run_cli: Callable[..., CliResult],
    ws: FakeWorkspace,
    index: int,
    edits: list[tuple[int, bytes]],
) -> None:
    """What validate refuses, plan, build and submit --dry-run refuse too (exit 2), without a traceback."""
    source = EXAMPLE_SPECS[index]
    spec = examples_copy / f"refused-{source.name}"
    spec.write_bytes(_mutate(source.read_bytes(), edits))
    if _bounded(run_cli, "validate", "--no-data", str(spec)).code == 0:
        return
    for command in (["plan", "--no-data"], ["build"], ["submit", "--dry-run"]):
        _bounded(run_cli, command[0], str(spec), *command[1:])
    assert not ws.jobs


@SETTINGS
@given(index=st.integers(min_value=0, max_value=len(EXAMPLE_DATA) - 1), edits=_edits)
def test_mutated_data_files_through_data_validate(
    tmp_path_factory: pytest.TempPathFactory,
    run_cli: Callable[..., CliResult],
    index: int,
    edits: list[tuple[int, bytes]],
) -> None:
    source = EXAMPLE_DATA[index]
    task = next((task for key, task in _TASKS.items() if key in source.name), "chat-completion")
    path = tmp_path_factory.mktemp("fuzz-data") / source.name
    path.write_bytes(_mutate(source.read_bytes(), edits))
    _bounded(run_cli, "data", "validate", str(path), "--task", task)


_set_keys = st.sampled_from(
    [
        "training.epochs",
        "training.max_steps",
        "target.nodes",
        "target.kind",
        "method.technique",
        "method.lora.r",
        "model",
        "model_shape",
        "export.onnx.precision",
        "register.model_name",
        "tags.x",
        ".",
        "a..b",
        "[0]",
    ]
)


@SETTINGS
@given(
    index=st.integers(min_value=0, max_value=len(EXAMPLE_SPECS) - 1),
    sets=st.lists(
        st.one_of(st.text(max_size=30), st.builds(lambda k, v: f"{k}={v}", _set_keys, st.text(max_size=20))),
        max_size=3,
    ),
)
def test_random_set_strings_through_plan_and_build(
    examples_copy: Path, run_cli: Callable[..., CliResult], index: int, sets: list[str]
) -> None:
    spec = examples_copy / EXAMPLE_SPECS[index].name
    if not spec.exists():
        shutil.copy(EXAMPLE_SPECS[index], spec)
    args = [part for item in sets for part in ("--set", item)]
    _bounded(run_cli, "plan", "--no-data", str(spec), *args)
    _bounded(run_cli, "build", str(spec), "-o", str(examples_copy / "out" / "set.yaml"), "--force", *args)


def test_every_example_and_data_file_is_fuzzed() -> None:
    assert len(EXAMPLE_SPECS) >= 20 and len(EXAMPLE_DATA) >= 5
