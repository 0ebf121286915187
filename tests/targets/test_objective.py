"""method.objective dpo | orpo: the spec's rules, which kinds train it, the command lines and bodies they build."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from azfinetune.errors import SpecError
from azfinetune.spec import spec_from_dict
from azfinetune.targets import build_job
from azfinetune.targets._entrypoint import entrypoint_args, entrypoint_value_sources
from azfinetune.testing import validate_job_body
from tests.conftest import checked, refused

COMMAND = {"kind": "command", "compute": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4"}
PAIR = {
    "prompt": [{"role": "user", "content": "q"}],
    "chosen": [{"role": "assistant", "content": "good"}],
    "rejected": [{"role": "assistant", "content": "bad"}],
}
FOUNDRY_PAIR = {
    "input": {"messages": PAIR["prompt"]},
    "preferred_output": PAIR["chosen"],
    "non_preferred_output": PAIR["rejected"],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, record in (("pairs.jsonl", PAIR), ("foundry-pairs.jsonl", FOUNDRY_PAIR)):
        lines = []
        for i in range(12):
            row = json.loads(
                json.dumps(record).replace('"good"', f'"good {i}"').replace('"bad"', f'"bad {i}"')
            )
            lines.append(json.dumps(row))
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    env = tmp_path / "env"
    env.mkdir()
    (env / "Dockerfile").write_text("FROM python:3.11-slim\n")
    return tmp_path


def spec(project: Path, **fields: Any) -> Any:
    doc: dict[str, Any] = {
        "name": "pref",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "pairs.jsonl"},
        "method": {"objective": "dpo"},
        "target": COMMAND,
        "environment": str(project / "env"),
    }
    doc.update(fields)
    return spec_from_dict({k: v for k, v in doc.items() if v is not None}, base_dir=project)


def issue(error: SpecError, path: str) -> Any:
    found = [i for i in error.issues if i.path == path]
    assert found, [str(i) for i in error.issues]
    return found[0]


# -- the spec -------------------------------------------------------------------------------------------------


def test_sft_is_the_default_and_hashes_as_before(project: Path) -> None:
    plain = spec(project, method={"technique": "lora"})
    said = spec(project, method={"technique": "lora", "objective": "sft"})
    assert plain.method.objective.value == "sft" and plain.method.effective_preference is None
    assert "objective" not in plain.canonical_dict()["method"]  # sft job names are those of before
    assert plain.content_hash() == said.content_hash()
    dpo = spec(project)
    assert dpo.content_hash() != plain.content_hash()
    assert dpo.method.effective_preference is not None and dpo.method.effective_preference.beta == 0.1
    assert dpo.data_kind == "preference"


@pytest.mark.parametrize(
    ("method", "training", "task", "path", "text"),
    [
        pytest.param(
            {"preference": {"beta": 0.2}},
            {},
            "chat-completion",
            "method.preference",
            "only used by",
            id="sft",
        ),
        pytest.param(
            {"objective": "orpo", "preference": {"loss_type": "ipo"}},
            {},
            "chat-completion",
            "method.preference.loss_type",
            "dpo setting",
            id="orpo-loss-type",
        ),
        pytest.param(
            {"objective": "orpo", "preference": {"reference": "precomputed"}},
            {},
            "chat-completion",
            "method.preference.reference",
            "no reference model",
            id="orpo-reference",
        ),
        pytest.param(
            {"objective": "dpo"},
            {"packing": True},
            "chat-completion",
            "training.packing",
            "cannot be packed",
            id="packing",
        ),
        pytest.param(
            {"objective": "dpo"},
            {"mask_prompt": False},
            "chat-completion",
            "training.mask_prompt",
            "never the prompt",
            id="mask",
        ),
        pytest.param(
            {"objective": "dpo"},
            {},
            "text-classification",
            "method.objective",
            "not text-classification",
            id="task",
        ),
    ],
)
def test_structural_rules_name_the_key(
    project: Path, method: dict[str, Any], training: dict[str, Any], task: str, path: str, text: str
) -> None:
    with pytest.raises(SpecError) as caught:
        spec(project, method=method, training=training, task=task)
    assert text in issue(caught.value, path).message


def test_an_unknown_loss_type_lists_the_ones_trl_has(project: Path) -> None:
    with pytest.raises(SpecError) as caught:
        spec(project, method={"objective": "dpo", "preference": {"loss_type": "kto"}})
    assert "sigmoid" in issue(caught.value, "method.preference.loss_type").message


def test_preference_columns_can_be_renamed_and_others_are_refused(project: Path) -> None:
    renamed = spec(project, data={"train": "pairs.jsonl", "columns": {"chosen": "good", "rejected": "bad"}})
    assert renamed.data.columns is not None
    with pytest.raises(SpecError) as caught:
        spec(project, data={"train": "pairs.jsonl", "columns": {"messages": "conversation"}})
    assert "dpo preference data has no 'messages'" in issue(caught.value, "data.columns.messages").message


# -- which kinds train it -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "model"),
    [
        pytest.param({"kind": "serverless"}, "phi-4-mini-instruct", id="serverless"),
        pytest.param(
            {**COMMAND, "kind": "registry-pipeline"}, "phi-3-mini-4k-instruct", id="registry-pipeline"
        ),
        pytest.param(
            {"kind": "finetuning-job", "compute": "gpu-a100"}, "phi-4-mini-instruct", id="finetuning-job"
        ),
    ],
)
def test_azures_own_training_code_refuses_preference_objectives(
    project: Path, target: dict[str, Any], model: str
) -> None:
    problem = issue(refused(spec(project, target=target, model=model, environment=None)), "method.objective")
    assert f"target.kind {target['kind']} cannot train with the dpo objective" in problem.message
    assert "local, command, pipeline or foundry" in (problem.hint or "")


def test_the_command_line_carries_the_objective_and_its_settings(project: Path) -> None:
    dpo = checked(
        spec(project, method={"objective": "dpo", "preference": {"beta": 0.25, "loss_type": "ipo"}})
    )
    args = entrypoint_args(dpo, inputs={"model": "m", "train": "t"}, outputs={"adapter": "o"})
    words = " ".join(args)
    assert "--objective dpo --beta 0.25 --loss-type ipo --reference auto" in words
    assert "--mask-prompt" not in words  # a preference objective scores the answers only
    assert "--column chosen=chosen" in words
    sources = {s.name: s for s in entrypoint_value_sources(dpo)}
    assert sources["--beta"].source == "spec" and sources["--reference"].source == "azfinetune default"

    orpo = checked(spec(project, method={"objective": "orpo"}))
    words = " ".join(entrypoint_args(orpo, inputs={"model": "m", "train": "t"}, outputs={"adapter": "o"}))
    assert (
        "--objective orpo --beta 0.1" in words and "--loss-type" not in words and "--reference" not in words
    )

    sft = checked(spec(project, method={"technique": "lora"}, data={"train": "pairs.jsonl"}))
    words = " ".join(entrypoint_args(sft, inputs={"model": "m", "train": "t"}, outputs={"adapter": "o"}))
    assert "--objective" not in words and "--beta" not in words


def test_the_pipeline_steps_read_pairs(project: Path) -> None:
    job = build_job(checked(spec(project, target={**COMMAND, "kind": "pipeline"})))
    validate, evaluate = job.jobs["validate_data"], job.jobs["evaluate"]
    assert validate.inputs["objective"]._data == "dpo" and evaluate.inputs["objective"]._data == "dpo"
    assert "--objective dpo" in job.jobs["finetune"].command
    command = shlex.split(validate.component.command)
    assert "$[[--objective" in command


# -- Foundry ----------------------------------------------------------------------------------------------------


def foundry(
    project: Path, *, model: str = "gpt-4.1-mini", data: str = "foundry-pairs.jsonl", **method: Any
) -> Any:
    return spec(
        project,
        model=model,
        data={"train": data},
        method={"objective": "dpo", **method},
        target={"kind": "foundry"},
        environment=None,
    )


def test_foundry_dpo_is_its_method_dpo_with_beta(project: Path) -> None:
    job = build_job(checked(foundry(project, preference={"beta": 0.3})))
    body = job.create_body({"train": "file-1"})
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 3, "beta": 0.3}}}
    assert validate_job_body(body) is None  # what the service takes, the fake takes
    default = build_job(checked(foundry(project))).create_body({"train": "file-1"})
    assert default["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 3}}}  # its own beta


def test_the_fake_refuses_dpo_for_a_model_without_it(project: Path) -> None:
    body = build_job(checked(foundry(project))).create_body({"train": "file-1"})
    body["model"] = "Ministral-3B"
    assert validate_job_body(body) is not None


@pytest.mark.parametrize(
    ("kwargs", "path", "text"),
    [
        pytest.param({"model": "Ministral-3B"}, "method.objective", "not dpo", id="model-without-dpo"),
        pytest.param({"data": "pairs.jsonl"}, "data.train", "preferred_output", id="trl-layout"),
        pytest.param(
            {"preference": {"loss_type": "ipo"}}, "method.preference.loss_type", "beta only", id="loss-type"
        ),
        pytest.param(
            {"preference": {"reference": "precomputed"}}, "method.preference.reference", "beta only", id="ref"
        ),
    ],
)
def test_foundry_dpo_rules(project: Path, kwargs: dict[str, Any], path: str, text: str) -> None:
    method = {k: v for k, v in kwargs.items() if k == "preference"}
    rest = {k: v for k, v in kwargs.items() if k != "preference"}
    assert text in issue(refused(foundry(project, **rest, **method)), path).message


def test_foundry_has_no_orpo(project: Path) -> None:
    error = refused(
        spec(
            project,
            model="gpt-4.1-mini",
            data={"train": "foundry-pairs.jsonl"},
            method={"objective": "orpo"},
            target={"kind": "foundry"},
            environment=None,
        )
    )
    assert "cannot train with the orpo objective" in issue(error, "method.objective").message
