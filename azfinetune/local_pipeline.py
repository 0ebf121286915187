"""`azfinetune run SPEC --local` of a `pipeline` spec: every step of the Azure ML pipeline job, on this machine.

The steps and their command lines are not written here: they are read off the PipelineJob that `submit` would
send (`build_pipeline_job`, serialized as Azure ML receives it). Each node's component command template is
resolved the way Azure ML resolves it — `${{inputs.x}}` / `${{outputs.y}}` replaced, an optional `$[[...]]`
block kept only when every input in it is set, a component's defaults for inputs the node leaves out — with
the job's inputs bound to local files and every output to a folder of the run. The steps then run in order
(validate → fine-tune → merge → evaluate → register decision, and any step the pipeline gains), each with its
own log; the first failed step stops the run with its log's path, as the pipeline's
continue_on_step_failure=False does on Azure ML. The register step decides against `register.min_eval`
exactly as on Azure ML; without a workspace it writes the decision only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft_contract import parse_progress_line

from azfinetune.errors import BuildError, JobFailedError, LocalRunError, RunInterrupted
from azfinetune.local import (
    _local_data,
    _model_input,
    _new_run_dir,
    _read_metrics,
    azureml_env,
    check_train_extra,
    plot_losses,
    stream_process,
)
from azfinetune.spec import FineTuneSpec
from azfinetune.targets import as_local, job_code_dir, job_name
from azfinetune.targets._paths import components_dir
from azfinetune.targets.local import local_gpu_count

__all__ = [
    "LocalPipelinePlan",
    "LocalPipelineRun",
    "StepPlan",
    "StepResult",
    "prepare_local_pipeline",
    "resolve_command",
    "run_local_pipeline",
]

_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][\w]*)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
_BINDING = re.compile(
    r"^\$\{\{\s*parent\.(?:inputs\.(\w+)|jobs\.(\w+)\.outputs\.(\w+)|outputs\.(\w+))\s*\}\}$"
)
#: Input types whose values are paths (quoted for the shell when they are put into a command line).
_PATH_TYPES = frozenset({"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable"})


@dataclass
class StepPlan:
    """One pipeline step as it runs here: its resolved command line, folder, outputs and log."""

    name: str
    command: list[str]
    cwd: Path
    outputs: dict[str, str]
    after: list[str]
    log_file: Path


@dataclass
class LocalPipelinePlan:
    """Everything a local pipeline run executes, decided before the first step starts."""

    spec: FineTuneSpec
    name: str
    run_id: str
    run_dir: Path
    steps: list[StepPlan]
    env: dict[str, str]
    inputs: dict[str, str]
    outputs: dict[str, str]

    def step(self, name: str) -> StepPlan:
        return next(step for step in self.steps if step.name == name)


@dataclass
class StepResult:
    name: str
    status: str  # completed | failed | not run
    seconds: float = 0.0
    returncode: int | None = None
    log_file: Path | None = None


@dataclass
class LocalPipelineRun:
    """A finished local pipeline run: each step's status, the training and evaluation metrics, the decision."""

    plan: LocalPipelinePlan
    steps: list[StepResult]
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    plot: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.plan.run_dir

    @property
    def adapter_dir(self) -> Path:
        return Path(self.plan.outputs["adapter"])


def resolve_command(
    template: str, inputs: Mapping[str, str | None], outputs: Mapping[str, str], *, quoted: frozenset[str]
) -> str:
    """A component's command with its placeholders replaced, as Azure ML resolves it for a node.

    `$[[...]]` blocks whose inputs are all set are kept (without the brackets), the others dropped; a required
    placeholder with no value is a BuildError (the pipeline would be refused). Values of `quoted` inputs and
    all outputs are paths, quoted for the shell."""

    def value(kind: str, name: str) -> str | None:
        if kind == "outputs":
            return shlex.quote(outputs[name]) if name in outputs else None
        text = inputs.get(name)
        if text is None:
            return None
        return shlex.quote(text) if name in quoted else text

    def optional(match: re.Match[str]) -> str:
        block = match.group(1)
        if all(value(kind, name) is not None for kind, name in _PLACEHOLDER.findall(block)):
            return block
        return ""

    text = _OPTIONAL.sub(optional, template)

    def required(match: re.Match[str]) -> str:
        resolved = value(match.group(1), match.group(2))
        if resolved is None:
            raise BuildError(
                f"the pipeline step's command needs {match.group(1)}.{match.group(2)}, which is unset"
            )
        return resolved

    return " ".join(_PLACEHOLDER.sub(required, text).split())


def _job_document(spec: FineTuneSpec) -> dict[str, Any]:
    """The pipeline job as Azure ML receives it (the same builder and serializer as `submit`)."""
    from azfinetune.targets.pipeline import build_pipeline_job

    document: dict[str, Any] = json.loads(json.dumps(build_pipeline_job(spec)._to_dict(), default=str))
    return document


def _code_dir(component: Mapping[str, Any]) -> Path:
    code = component.get("code")
    if not code:
        return job_code_dir()
    path = Path(str(code))
    return path if path.is_absolute() else (components_dir() / path).resolve()


def _order(jobs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The nodes in an order where every step runs after the steps whose outputs it reads."""
    after: dict[str, list[str]] = {}
    for name, node in jobs.items():
        upstream = []
        for binding in (node.get("inputs") or {}).values():
            path = binding.get("path") if isinstance(binding, dict) else None
            match = _BINDING.match(path) if isinstance(path, str) else None
            if match and match.group(2):
                upstream.append(match.group(2))
        after[name] = sorted(set(upstream))
    ordered: list[tuple[str, list[str]]] = []
    done: set[str] = set()
    while len(done) < len(jobs):
        ready = [name for name in jobs if name not in done and set(after[name]) <= done]
        if not ready:
            raise BuildError("the pipeline's steps depend on each other in a cycle")
        for name in ready:
            ordered.append((name, after[name]))
            done.add(name)
    return ordered


def prepare_local_pipeline(
    spec: FineTuneSpec, *, outputs_root: Path | None = None, allow_download: bool = False
) -> LocalPipelinePlan:
    """Resolve every step's command line for this machine (creates the run folder only)."""
    if spec.target.kind != "pipeline":
        raise LocalRunError(f"target.kind {spec.target.kind} is not a pipeline", hint="use run_local")
    local = as_local(spec)
    job_inputs: dict[str, str] = {"model": _model_input(local, allow_download=allow_download)}
    job_inputs.update({f"{role}_file": path for role, path in _local_data(local).items()})
    document = _job_document(spec)
    for name, declared in (document.get("inputs") or {}).items():
        if name not in job_inputs and isinstance(declared, dict) and declared.get("path"):
            path = str(declared["path"]).removeprefix("azureml:")
            if not Path(path).is_file():
                raise LocalRunError(f"the pipeline input {name} ({path}) is not a local file")
            job_inputs[name] = path  # the DeepSpeed config written beside the spec
    name = job_name(spec)
    run_id, run_dir = _new_run_dir(Path(outputs_root or Path.cwd() / "outputs").resolve(), name)
    jobs: dict[str, dict[str, Any]] = document["jobs"]
    outputs: dict[str, str] = {}  # the job's outputs: folders named like them at the top of the run folder
    step_outputs: dict[tuple[str, str], str] = {}
    for step, node in jobs.items():
        component = node["component"]
        bound = node.get("outputs") or {}
        for port in component.get("outputs") or {}:
            binding = bound.get(port)
            match = _BINDING.match(binding) if isinstance(binding, str) else None
            if match and match.group(4):
                folder = run_dir / match.group(4)
                outputs[match.group(4)] = str(folder)
            else:
                folder = run_dir / "steps" / step / port
            step_outputs[(step, port)] = str(folder)
    gpus = spec.target.resources().gpus_per_node or 0
    steps: list[StepPlan] = []
    for step, after in _order(jobs):
        node = jobs[step]
        component = node["component"]
        declared_inputs: dict[str, Any] = component.get("inputs") or {}
        values: dict[str, str | None] = {}
        for port, declared in declared_inputs.items():
            given = (node.get("inputs") or {}).get(port)
            if isinstance(given, dict):
                match = _BINDING.match(str(given.get("path", "")))
                if match is None:
                    raise BuildError(f"pipeline step {step}: input {port} is bound to {given!r}")
                if match.group(1):
                    values[port] = job_inputs.get(match.group(1))
                else:
                    values[port] = step_outputs[(match.group(2), match.group(3))]
            elif given is not None:
                values[port] = str(given).lower() if isinstance(given, bool) else str(given)
            elif isinstance(declared, dict) and declared.get("default") is not None:
                values[port] = str(declared["default"])
            else:
                values[port] = None
        quoted = frozenset(
            port
            for port, declared in declared_inputs.items()
            if isinstance(declared, dict) and declared.get("type") in _PATH_TYPES
        )
        ports = {port: step_outputs[(step, port)] for port in component.get("outputs") or {}}
        line = shlex.split(resolve_command(str(component["command"]), values, ports, quoted=quoted))
        if not line or line[0] != "python":
            raise BuildError(f"pipeline step {step}: its command does not start with `python`: {line[:1]}")
        launcher = [sys.executable]
        processes = (node.get("distribution") or {}).get("process_count_per_instance") or 1
        if processes > 1 and gpus > 1 and local_gpu_count() >= gpus:
            launcher = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={gpus}",
            ]
        steps.append(
            StepPlan(
                name=step,
                command=[*launcher, *line[1:]],
                cwd=_code_dir(component),
                outputs=ports,
                after=after,
                log_file=run_dir / "logs" / f"{step}.log",
            )
        )
    env = azureml_env(spec, name=name, run_id=run_id, run_dir=run_dir, allow_download=allow_download)
    return LocalPipelinePlan(
        spec=spec,
        name=name,
        run_id=run_id,
        run_dir=run_dir,
        steps=steps,
        env=env,
        inputs=job_inputs,
        outputs=outputs,
    )


def _last_error(log_file: Path) -> str | None:
    """The step's own `... error: ...` line (or its progress-protocol error), else the log's last line."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        parsed = parse_progress_line(line)
        if parsed is not None and parsed[0] == "error":
            return str(parsed[1].get("error") or "") or None
        if re.match(r"^\w+: error: ", line):
            return line.split(": error: ", 1)[1]
    return next((line for line in reversed(lines) if line.strip()), None)


def _write_status(plan: LocalPipelinePlan, results: list[StepResult]) -> None:
    status = {
        "name": plan.name,
        "run_id": plan.run_id,
        "steps": [
            {
                "name": result.name,
                "status": result.status,
                "seconds": round(result.seconds, 1),
                "returncode": result.returncode,
                "command": plan.step(result.name).command,
                "log": str(result.log_file) if result.log_file else None,
            }
            for result in results
        ],
    }
    (plan.run_dir / "pipeline.json").write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")


def run_local_pipeline(
    spec: FineTuneSpec,
    *,
    outputs_root: Path | None = None,
    allow_download: bool = False,
    on_start: Callable[[LocalPipelinePlan], None] | None = None,
    on_step: Callable[[StepPlan], None] | None = None,
    on_step_done: Callable[[StepResult], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> LocalPipelineRun:
    """Run every step of the spec's pipeline here, in order; the first failed step stops the run.

    Raises LocalRunError (exit 2) when a step refuses its input, JobFailedError (exit 1) when a step fails,
    RunInterrupted (exit 130) on Ctrl-C; the outputs of the steps that ran and every log stay in the run folder
    (pipeline.json records each step's status, command line and log)."""
    check_train_extra()
    plan = prepare_local_pipeline(spec, outputs_root=outputs_root, allow_download=allow_download)
    if on_start is not None:
        on_start(plan)
    env = {**os.environ, **plan.env, **(extra_env or {})}
    results = [StepResult(name=step.name, status="not run", log_file=step.log_file) for step in plan.steps]
    _write_status(plan, results)

    def on_message(kind: str, payload: dict[str, Any]) -> None:
        if kind == "progress" and on_progress is not None:
            on_progress(payload)  # the fine-tune step's training progress

    for index, step in enumerate(plan.steps):
        if on_step is not None:
            on_step(step)
        started = time.monotonic()
        for folder in step.outputs.values():
            Path(folder).mkdir(parents=True, exist_ok=True)  # Azure ML mounts every output before a step runs
        try:
            returncode = stream_process(
                step.command, cwd=step.cwd, env=env, log_file=step.log_file, on_message=on_message
            )
        except KeyboardInterrupt:
            results[index] = StepResult(step.name, "failed", time.monotonic() - started, None, step.log_file)
            _write_status(plan, results)
            raise RunInterrupted(
                f"stopped during step {step.name}; the outputs of the steps before it and every log are in "
                f"{plan.run_dir}",
                hint=f"log: {step.log_file}",
            ) from None
        result = StepResult(
            step.name,
            "completed" if returncode == 0 else "failed",
            time.monotonic() - started,
            returncode,
            step.log_file,
        )
        results[index] = result
        _write_status(plan, results)
        if on_step_done is not None:
            on_step_done(result)
        if returncode != 0:
            message = _last_error(step.log_file) or f"exited with code {returncode}"
            later = [other.name for other in plan.steps[index + 1 :]]
            not_run = f" (not run: {', '.join(later)})" if later else ""
            if returncode == 2:
                raise LocalRunError(
                    f"pipeline step {step.name} refused its input: {message}{not_run}",
                    hint=f"log: {step.log_file}",
                )
            raise JobFailedError(
                f"pipeline step {step.name} failed: {message}{not_run}",
                hint=f"log: {step.log_file}",
                job_name=plan.name,
            )
    metrics = _read_metrics(Path(plan.outputs["adapter"])) if "adapter" in plan.outputs else {}
    evaluation = _read_metrics(Path(plan.outputs["metrics"])) if "metrics" in plan.outputs else {}
    decision = None
    if "decision" in plan.outputs:
        file = Path(plan.outputs["decision"]) / "decision.json"
        decision = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    plot = plot_losses(metrics, plan.run_dir / "loss.png") if metrics else None
    return LocalPipelineRun(
        plan=plan, steps=results, metrics=metrics, evaluation=evaluation, decision=decision, plot=plot
    )
