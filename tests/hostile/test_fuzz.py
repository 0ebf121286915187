"""Fuzz: generated YAML documents, byte-level mutations of every example spec and random --set strings; every
run of `validate` ends with exit 0 or 2, no internal error and no traceback (issue 15). Bounded by max_examples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.conftest import BASE_SPEC, EXAMPLES, Result

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.yaml"))

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_keys = st.one_of(
    st.sampled_from(
        ["name", "task", "model", "data", "method", "training", "target", "tags", "kind", "train"]
    ),
    st.text(max_size=8),
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)


def _check(result: Result) -> None:
    assert result.code in (0, 2), result.text
    assert "internal error" not in result.text and "Traceback" not in result.text, result.text


@SETTINGS
@given(document=_documents)
def test_generated_yaml_documents(folder: Path, cli: Callable[..., Result], document: object) -> None:
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _check(cli("validate", "--no-data", str(spec)))


@SETTINGS
@given(
    index=st.integers(min_value=0, max_value=max(len(EXAMPLE_SPECS) - 1, 0)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.binary(min_size=0, max_size=4)), min_size=1, max_size=4
    ),
)
def test_byte_mutations_of_the_examples(
    folder: Path, cli: Callable[..., Result], index: int, edits: list[tuple[int, bytes]]
) -> None:
    raw = bytearray(EXAMPLE_SPECS[index].read_bytes())
    for offset, insert in edits:
        at = offset % (len(raw) + 1)
        raw[at : at + len(insert)] = insert
    spec = folder / EXAMPLE_SPECS[index].name
    spec.write_bytes(bytes(raw))
    _check(cli("validate", "--no-data", str(spec)))


@SETTINGS
@given(
    sets=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from(
                    ["training.epochs", "target.nodes", "model", "tags.x", ".", "a..b", "[0]", "data"]
                ),
                st.text(max_size=20),
            ),
        ),
        max_size=3,
    )
)
def test_random_set_strings(folder: Path, cli: Callable[..., Result], sets: list[str]) -> None:
    spec = folder / "spec.yaml"
    spec.write_text(BASE_SPEC, encoding="utf-8")
    args = [part for item in sets for part in ("--set", item)]
    _check(cli("validate", "--no-data", str(spec), *args))


def test_the_examples_are_fuzzed() -> None:
    assert len(EXAMPLE_SPECS) >= 10
    pytest.importorskip("hypothesis")
