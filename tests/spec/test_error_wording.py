"""Every refusal of a spec value is in this tool's words: pydantic's own sentences never reach the user."""

from __future__ import annotations

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import load_spec
from tests.conftest import EXAMPLES

#: Values of the wrong shape for every kind of field: whole numbers, fractions, strings, lists, mappings.
BAD_VALUES = ["2.5", "-1", "abc", "[1, 2]", "{a: 1}", "true", "1e400", "''"]
KEYS = [
    "training.epochs",
    "training.max_steps",
    "training.learning_rate",
    "training.per_device_batch_size",
    "training.gradient_accumulation_steps",
    "training.warmup_ratio",
    "training.seed",
    "training.logging_steps",
    "training.save_total_limit",
    "method.lora.r",
    "method.lora.alpha",
    "method.lora.dropout",
    "method.lora.target_modules",
    "method.technique",
    "target.instance_type",
    "target.max_run_minutes",
    "target.nodes",
    "name",
    "task",
    "tags",
    "register.model_name",
]


@pytest.mark.parametrize("key", KEYS)
def test_refusals_never_use_pydantics_wording(key: str) -> None:
    for value in BAD_VALUES:
        try:
            load_spec(EXAMPLES / "pipeline-finetune-evaluate.yaml", overrides=[f"{key}={value}"])
        except SpecError as error:
            text = str(error)
            assert "Input should" not in text and "should be a valid" not in text, (key, value, text)
            assert "--set" in text, (key, value, text)


def test_a_fraction_for_a_whole_number() -> None:
    with pytest.raises(SpecError, match=r"training\.max_steps: must be a whole number, got 2\.5"):
        load_spec(EXAMPLES / "pipeline-finetune-evaluate.yaml", overrides=["training.max_steps=2.5"])
