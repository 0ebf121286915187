"""The README's spec reference is the one generated from the field descriptions."""

from __future__ import annotations

import os
import re

from azfinetune.spec._reference import reference_markdown
from tests.conftest import ROOT

START, END = "<!-- spec-reference:start -->", "<!-- spec-reference:end -->"


def test_readme_spec_reference_is_in_sync() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    expected = f"{START}\n{reference_markdown()}{END}"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: expected, text, flags=re.S)
        readme.write_text(text)
    assert expected in text, (
        "README spec reference is stale: run UPDATE_SNAPSHOT=1 pytest tests/spec/test_reference.py"
    )


def test_every_field_has_a_description() -> None:
    assert "|  |\n" not in reference_markdown().replace(" | |", "|  |")
    for line in reference_markdown().splitlines()[2:]:
        assert not line.rstrip().endswith("|  |"), line
