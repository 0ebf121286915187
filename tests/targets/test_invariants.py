"""The targets' promise, property-based: a spec `validate` accepts builds, and the built job's own command lines
parse in the job steps' own argument parsers and pass their checks; a spec it refuses names the key and the CLI
exits 2 with that key in its message.

Specs are generated across every target kind × task × technique × ZeRO stage × precision × VM size × model, with
some fields a kind does not take, and the settings a target cannot honour. The examples hypothesis found are
kept as regular tests at the end (`FOUND`)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azfinetune.cli import cli
from azfinetune.cli._app import run_with_boundary
from azfinetune.errors import SpecError
from azfinetune.spec import TARGET_MODELS, Task, Technique
from azfinetune.targets import build_job, check_spec
from azfinetune.testing import validate_job_body

ROOT = Path(__file__).resolve().parents[2]
JOBS_SRC = ROOT / "jobs" / "src"

MODELS = (
    "phi-3-mini-4k-instruct",
    "phi-3-mini-128k-instruct",
    "phi-3-medium-4k-instruct",
    "phi-3.5-mini-instruct",
    "phi-4-mini-instruct",
    "hf:microsoft/Phi-3-mini-4k-instruct",
    "hf:google-t5/t5-small",
    "hf:distilbert/distilbert-base-uncased",
    "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15",
    "./tiny-model",
    "Ministral-3B",
    "gpt-4.1-mini",
)
FOUNDRY_MODELS = ("Ministral-3B", "Qwen-32B", "Llama-3.3-70B-Instruct", "gpt-oss-20b", "gpt-4.1-mini")
SKUS = (
    "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4",
    "Standard_ND96amsr_A100_v4",
    "Standard_NC6s_v3",
    "Standard_NC40ads_H100_v5",
    "Standard_E4s_v3",
)
# One small example per task, in the columns the registry pipelines and the entry point read by default.
ROWS: dict[str, dict[str, Any]] = {
    "chat-completion": {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    },
    "text-completion": {"prompt": "Say hi", "completion": "hi"},
    "text-classification": {"text": "good", "label": "pos"},
    "token-classification": {"tokens": ["Ann", "runs"], "ner_tags": ["B-PER", "O"]},
    "question-answering": {
        "question": "who?",
        "context": "Ann ran.",
        "answers": {"text": ["Ann"], "answer_start": [0]},
    },
    "summarization": {"document": "a long text", "summary": "short"},
    "translation": {"en": "hello", "de": "hallo"},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a data file per task and a local model folder, for the specs to name."""
    import json

    root = tmp_path_factory.mktemp("invariants")
    for task, row in ROWS.items():
        lines = []
        for i in range(12):
            record = json.loads(json.dumps(row))
            if task == "text-classification":
                record["label"] = ("pos", "neg")[i % 2]
            lines.append(json.dumps(record))
        (root / f"{task}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "tiny-model").mkdir()
    (root / "tiny-model" / "config.json").write_text('{"model_type": "phi3"}')
    return root


@contextlib.contextmanager
def job_steps_importable() -> Iterator[None]:
    sys.path.insert(0, str(JOBS_SRC))
    try:
        yield
    finally:
        sys.path.remove(str(JOBS_SRC))


# -- the spec generator ------------------------------------------------------------------------------------


def _maybe(draw: Any, strategy: st.SearchStrategy[Any], *, p_none: float = 0.5) -> Any:
    return None if draw(st.floats(0, 1)) < p_none else draw(strategy)


ENTRYPOINT_TASKS = ("chat-completion", "text-completion", "text-classification", "token-classification")
# For about half the specs, choices a kind can take (so every kind is built, not only refused).
COMPATIBLE: dict[str, dict[str, tuple[Any, ...]]] = {
    "local": {"task": ENTRYPOINT_TASKS, "model": ("./tiny-model", "hf:microsoft/Phi-3-mini-4k-instruct")},
    "command": {"task": ENTRYPOINT_TASKS, "model": MODELS[:9]},
    "pipeline": {"task": ENTRYPOINT_TASKS, "model": MODELS[:9]},
    "registry-pipeline": {
        "task": tuple(t.value for t in Task),
        "model": MODELS[:9],
        "technique": ("lora", "full"),
    },
    "serverless": {"task": ("chat-completion",), "model": ("phi-4-mini-instruct",), "technique": ("lora",)},
    "finetuning-job": {
        "task": ("chat-completion", "text-completion"),
        "model": ("phi-4-mini-instruct", "phi-3-mini-4k-instruct"),
        "technique": ("lora",),
    },
    "foundry": {"task": ("chat-completion",), "model": FOUNDRY_MODELS, "technique": ("lora",)},
}
# What Azure's own training code (registry pipelines, fine-tuning jobs) cannot be given.
AZURE_CODE = ("registry-pipeline", "serverless", "finetuning-job", "foundry")


@st.composite
def spec_documents(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(TARGET_MODELS)))
    fit = COMPATIBLE[kind] if draw(st.booleans()) else {}
    fine_tuning_job = bool(fit) and kind in ("serverless", "finetuning-job", "foundry")
    task = draw(st.sampled_from(fit.get("task") or [t.value for t in Task]))
    technique = draw(st.sampled_from(fit.get("technique") or [t.value for t in Technique]))
    doc: dict[str, Any] = {
        "name": "inv-spec",
        "task": task,
        "model": draw(st.sampled_from(fit.get("model") or MODELS)),
        "data": {"train": f"{task}.jsonl"},
    }
    if draw(st.booleans()):
        doc["data"]["validation"] = f"{task}.jsonl"
    method: dict[str, Any] = {}
    if not fine_tuning_job and draw(st.floats(0, 1)) < 0.8:
        method["technique"] = technique
    if technique != "full" and not fine_tuning_job and draw(st.booleans()):
        method["lora"] = {"r": draw(st.sampled_from([4, 8, 16])), "alpha": 16}
    if technique == "qlora" and draw(st.booleans()):
        method["quantization"] = {"bits": 4, "storage_dtype": draw(st.sampled_from(["bf16", "fp16", None]))}
    stage = None if fine_tuning_job else _maybe(draw, st.sampled_from([0, 1, 2, 3]))
    if stage is not None:
        method["deepspeed"] = {
            "stage": stage,
            "offload_optimizer": draw(st.booleans()) if stage else False,
            "offload_params": stage == 3 and draw(st.booleans()),
        }
    if not fine_tuning_job and draw(st.floats(0, 1)) < 0.2:
        method["optimizer"] = draw(st.sampled_from(["adamw_torch", "adamw_8bit", "paged_adamw_8bit"]))
    if method:
        doc["method"] = method
    training: dict[str, Any] = {}
    choices: tuple[tuple[str, list[Any]], ...] = (
        ("precision", ["bf16", "fp16", "fp32"]),
        ("epochs", [1, 2, 3, 2.5]),
        ("max_seq_length", [512, 1024, 2048, 8192, "auto"]),
        ("metric_for_best_model", ["loss", "accuracy", "f1_macro", "mean_token_accuracy"]),
        ("save_total_limit", [-1, 1, 3]),
        ("save_steps", [5, 50]),
        ("lr_scheduler", ["linear", "cosine", "inverse_sqrt"]),
        ("warmup_ratio", [0, 0.1]),
        ("per_device_batch_size", [1, 4, 64]),
        ("max_steps", [-1, 20]),
        ("packing", [False, True]),
        ("learning_rate", [2e-5, 1e-4]),
    )
    if fine_tuning_job:
        choices = (("epochs", [1, 2, 3]), ("per_device_batch_size", [1, 4]), ("learning_rate", [2e-5, 1e-4]))
    if fine_tuning_job and kind == "foundry":
        choices = (
            ("epochs", [1, 3, 10, 11]),
            ("per_device_batch_size", [1, 8, 32, 64]),
            ("seed", [7, 9, 2**31]),
        )
    for key, values in choices:
        if draw(st.floats(0, 1)) < 0.3:
            training[key] = draw(st.sampled_from(values))
    if training:
        doc["training"] = training
    doc["target"] = draw(_target(kind))
    if draw(st.floats(0, 1)) < (0.05 if fine_tuning_job and kind == "foundry" else 0.3):
        register: dict[str, Any] = {"model_name": "inv-model"}
        if (not fit or kind in ("pipeline",)) and draw(st.booleans()):
            register["min_eval"] = {"eval_loss": "<= 2.5"}
        doc["register"] = register
    azure_code = bool(fit) and kind in AZURE_CODE
    if not azure_code and draw(st.floats(0, 1)) < 0.15:
        doc["environment"] = draw(st.sampled_from(["azureml:my-env:3", "azureml:", "my-env@latest"]))
    if not azure_code and draw(st.floats(0, 1)) < 0.1:
        doc["secrets"] = {"HF_TOKEN": "keyvault://kv-test/hf-token"}
    if draw(st.floats(0, 1)) < 0.15:  # export.onnx: refused where the job cannot run the export step
        doc["export"] = {
            "onnx": {
                key: draw(st.sampled_from(values))
                for key, values in (
                    ("precision", ["int4", "fp32"]),
                    ("execution_provider", ["cpu", "cuda"]),
                    ("adapters", ["merged", "separate"]),
                )
                if draw(st.booleans())
            }
        }
    if not fine_tuning_job and draw(st.floats(0, 1)) < 0.1:
        doc["data"]["columns"] = draw(
            st.sampled_from([{"text": "text"}, {"label": "stars"}, {"source_lang": "en"}])
        )
    return doc


@st.composite
def _target(draw: Any, kind: str) -> dict[str, Any]:
    target: dict[str, Any] = {"kind": kind}
    sku = _maybe(draw, st.sampled_from(SKUS), p_none=0.3)
    if kind in ("command", "pipeline", "registry-pipeline"):
        if draw(st.floats(0, 1)) < 0.9:
            target["compute"] = draw(st.sampled_from(["gpu-cluster", "serverless"]))
        if sku:
            target["instance_type"] = sku
        if draw(st.floats(0, 1)) < 0.2:
            target["nodes"] = draw(st.sampled_from([1, 2]))
        if draw(st.floats(0, 1)) < 0.2:
            target["gpus_per_node"] = draw(st.sampled_from([1, 2, 8]))
    if kind in ("command", "pipeline") and draw(st.floats(0, 1)) < 0.2:
        target["priority"] = "low"
    if kind in ("pipeline", "registry-pipeline") and draw(st.floats(0, 1)) < 0.2:
        target["cpu_compute"] = draw(st.sampled_from(["cpu-cluster", "serverless"]))
    if kind == "registry-pipeline" and draw(st.floats(0, 1)) < 0.2:
        target["component_version"] = draw(st.sampled_from(["latest", "0.0.82", "0.0.5"]))
    if kind == "registry-pipeline" and draw(st.floats(0, 1)) < 0.1:
        target["trust_remote_code"] = draw(st.booleans())
    if kind in ("pipeline", "registry-pipeline") and draw(st.floats(0, 1)) < 0.1:
        target["force_rerun"] = True
    if kind == "finetuning-job":
        target["compute"] = "gpu-cluster"
        if sku:
            target["instance_type"] = sku
    if kind == "foundry":
        for key, values in (
            (
                "training_type",
                ["global", "GlobalStandard", "globalstandard", "developer", "standard", "data-zone"],
            ),
            ("learning_rate_multiplier", [0.1, 1.0, 2, 10, 11]),
            ("suffix", ["bot", "support-1"]),
            (
                "endpoint",
                ["https://res.services.ai.azure.com/api/projects/p", "https://res.openai.azure.com"],
            ),
        ):
            if draw(st.floats(0, 1)) < 0.4:
                target[key] = draw(st.sampled_from(values))
    if kind == "local" and draw(st.floats(0, 1)) < 0.1:
        target["gpus_per_node"] = 1
    if draw(st.floats(0, 1)) < 0.05:  # a key of another kind
        target[
            draw(st.sampled_from(["job_tier", "cpu_compute", "nodes", "compute", "component_version"]))
        ] = "x"
    return target


# -- the job's own parsers -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)


def _folder_with_data(scratch: Path) -> str:
    folder = scratch / f"out-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "data.jsonl").write_text("{}\n")
    return str(folder)


def _value(value: Any, job: Any, scratch: Path) -> str | None:
    """What a node input or job input is at run time: a literal, a local path, or (a step's output) a folder."""
    data = getattr(value, "_data", value)
    kind = type(data).__name__
    if kind == "PipelineInput":
        return _value(job.inputs[data._port_name], job, scratch)
    if kind == "NodeOutput":
        return _folder_with_data(scratch)
    if data is None:
        return None
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, str | int | float):
        return str(data)
    path = getattr(data, "path", None)
    return str(path) if path is not None else None


def _argv(command: str, inputs: dict[str, str | None], scratch: Path) -> list[str]:
    """A component command as Azure ML runs it: $[[...]] kept when its inputs are given, placeholders filled."""

    def optional(match: re.Match[str]) -> str:
        names = [name for group, name in _PLACEHOLDER.findall(match.group(1)) if group == "inputs"]
        return match.group(1) if all(inputs.get(name) is not None for name in names) else ""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) == "outputs":
            return _folder_with_data(scratch)
        value = inputs.get(match.group(2))
        assert value is not None, f"${{{{inputs.{match.group(2)}}}}} is unbound in {command!r}"
        return value

    return shlex.split(_PLACEHOLDER.sub(fill, _OPTIONAL.sub(optional, command)))


def _step_accepts(argv: list[str]) -> None:
    """Run the step's own parser (and checks) on its command line: `python -m <step> ...`."""
    assert argv[:2] == ["python", "-m"], argv
    module, args = argv[2], argv[3:]
    with job_steps_importable():
        if module == "finetune":
            from finetune.args import parse_args

            parse_args(args)
            return
        cli_module = __import__(f"{module}.cli", fromlist=["build_parser"])
        parsed = cli_module.build_parser().parse_args(args)
        if module == "register":
            cli_module.parse_thresholds(parsed.min_eval)


def assert_job_runs(job: Any, scratch: Path) -> None:
    """Every command line the job would run parses in its step's own parser."""
    kind = type(job).__name__
    if kind in ("CommandJob", "Command"):
        inputs = {name: _value(value, job, scratch) for name, value in (job.inputs or {}).items()}
        # A command job may chain steps (training && export_onnx): each one must parse.
        for part in job.command.split(" && "):
            _step_accepts(_argv(part, inputs, scratch))
        return
    if kind == "PipelineJob":
        for node in job.jobs.values():
            command = getattr(node, "command", None)
            if not isinstance(
                command, str
            ):  # a registry component: the registry's own code, checked by contract
                continue
            declared = getattr(node.component, "inputs", None) or {}
            inputs = {}
            for name, value in node.inputs.items():
                given = _value(value, job, scratch)
                default = getattr(declared.get(name), "default", None)
                inputs[name] = given if given is not None else (None if default is None else str(default))
            _step_accepts(_argv(command, inputs, scratch))
        return
    if kind == "FoundryJob":
        # What Foundry refuses, the fake refuses: a built body must pass the fake's (the service's) checks.
        body = job.create_body({upload.role: f"file-{upload.role}" for upload in job.uploads})
        assert validate_job_body(body) is None, (validate_job_body(body), body)
        return
    assert kind == "CustomModelFineTuningJob", kind
    assert job.model.path.startswith("azureml://registries/")


# -- the invariant ------------------------------------------------------------------------------------------


def check_invariant(project: Path, doc: dict[str, Any]) -> str:
    """'built' or 'refused', asserting the promise either way."""
    path = project / f"spec-{uuid.uuid4().hex[:10]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        try:
            report = check_spec(path, data=False)
        except SpecError as error:
            _assert_refused(path, error.issues)
            return "refused"
        if report.errors:
            _assert_refused(path, report.errors)
            return "refused"
        job = build_job(report.spec)  # must not raise: validate accepted it
        assert_job_runs(job, project / "scratch")
        return "built"
    finally:
        path.unlink()


def _assert_refused(path: Path, issues: list[Any]) -> None:
    assert issues
    for issue in issues:
        assert issue.path or issue.file == "--set", f"an error without a key: {issue}"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_with_boundary(cli, ["validate", "--no-data", str(path)])
    text = out.getvalue() + err.getvalue()
    assert code == 2, text
    assert "internal error" not in text and "Traceback" not in text
    assert issues[0].path in text, text


OUTCOMES: dict[str, int] = {"built": 0, "refused": 0}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(doc=spec_documents())
def test_accepted_specs_build_and_refused_specs_name_the_key(project: Path, doc: dict[str, Any]) -> None:
    OUTCOMES[check_invariant(project, doc)] += 1


def test_the_generator_reaches_both_sides() -> None:
    """The invariant is not vacuous: the generated specs were both built and refused, many times."""
    assert OUTCOMES["built"] >= 20 and OUTCOMES["refused"] >= 20, OUTCOMES


# -- what hypothesis found, kept as regular tests -----------------------------------------------------------


def _doc(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "found",
        "model": "phi-3-mini-4k-instruct",
        "data": {"train": "chat-completion.jsonl"},
    }
    doc.update(fields)
    return doc


_COMMAND = {"kind": "command", "compute": "gpu-cluster", "instance_type": "Standard_NC24ads_A100_v4"}
_PIPELINE = {**_COMMAND, "kind": "pipeline"}

# (what was seen, the spec, the outcome): the leaks issue #13 lists, and what hypothesis found since.
FOUND = [
    pytest.param(
        _doc(task="question-answering", data={"train": "question-answering.jsonl"}, target=_COMMAND),
        "refused",
        id="qa-on-command-refused-by-validate-not-on-the-cluster",
    ),
    pytest.param(
        _doc(task="summarization", data={"train": "summarization.jsonl"}, target=_PIPELINE),
        "refused",
        id="summarization-on-pipeline",
    ),
    pytest.param(
        _doc(register={"model_name": "m", "min_eval": {"eval_loss": "<= 1.2"}}, target=_COMMAND),
        "refused",
        id="min-eval-on-command",
    ),
    pytest.param(
        _doc(
            method={"optimizer": "paged_adamw_8bit", "deepspeed": {"stage": 2, "offload_optimizer": True}},
            target=_COMMAND,
        ),
        "refused",
        id="8bit-optimizer-with-zero-offload",
    ),
    pytest.param(_doc(environment="azureml:", target=_COMMAND), "refused", id="empty-environment-reference"),
    pytest.param(
        _doc(target={**_PIPELINE, "cpu_compute": "serverless"}),
        "refused",
        id="serverless-cpu-steps-without-size",
    ),
    pytest.param(
        _doc(data={"train": "chat-completion.jsonl", "columns": {"text": "text"}}, target={"kind": "local"}),
        "refused",
        id="a-column-the-task-does-not-have",  # found by hypothesis: the job's --column parser refused it
    ),
    pytest.param(
        _doc(register={"model_name": "m", "min_eval": {"eval_loss": "<= 1.2"}}, target=_PIPELINE),
        "built",
        id="gated-registration-on-pipeline",
    ),
]


@pytest.mark.parametrize(("doc", "outcome"), FOUND)
def test_found_examples(project: Path, doc: dict[str, Any], outcome: str) -> None:
    assert check_invariant(project, doc) == outcome
