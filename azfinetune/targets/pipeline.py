"""target.kind pipeline: validate data -> fine-tune -> merge adapter -> evaluate -> register (-> export_onnx), as
one PipelineJob."""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import resolve_max_seq_length
from azfinetune.errors import BuildError, Issue
from azfinetune.spec import FineTuneSpec, Objective, PipelineTarget
from azfinetune.targets._checkpoints import CHECKPOINTS_OUTPUT, RESUME_INPUT, checkpoints_output, resume_input
from azfinetune.targets._common import TAG_PREFIX, azfinetune_tags, job_name
from azfinetune.targets._deepspeed import write_deepspeed_config
from azfinetune.targets._entrypoint import (
    ENTRYPOINT_TASKS,
    command_line,
    data_columns,
    entrypoint_args,
    our_code_rules,
)
from azfinetune.targets._environment import environment_for_spec
from azfinetune.targets._onnx_export import onnx_model_name
from azfinetune.targets._paths import components_dir, generated_dir, job_code_dir
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets.command import SPOT_JOB_TIER, cluster_rules, data_input, model_input, resource_plan

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.ai.ml.entities import PipelineJob

__all__ = [
    "COMPONENT_FILES",
    "CPU_STEPS",
    "PIPELINE_TASKS",
    "STEPS",
    "TARGET",
    "StepCompute",
    "active_steps",
    "build_pipeline_job",
    "components_dir",
    "step_computes",
]

#: The steps, in order. merge_adapter is left out for full fine-tuning (there is no adapter to merge), register
#: when the spec registers nothing, export_onnx when the spec has no export.onnx.
STEPS = ("validate_data", "finetune", "merge_adapter", "evaluate", "register", "export_onnx")
#: Steps that need no GPU: they run on target.cpu_compute / cpu_instance_type when set. export_onnx builds the
#: graph for any execution provider on a CPU and, without that provider there, checks parity on the CPU.
CPU_STEPS = frozenset({"validate_data", "register", "export_onnx"})
#: jobs/components/<file> of each step. finetune.yaml is the template's: the builder writes that step's
#: command from the spec with entrypoint_args, the one place the entry point's flags are written.
COMPONENT_FILES = {
    "validate_data": "validate_data.yaml",
    "finetune": "finetune.yaml",
    "merge_adapter": "merge_adapter.yaml",
    "evaluate": "evaluate.yaml",
    "register": "register.yaml",
    "export_onnx": "export_onnx.yaml",
}
#: The export step's own pinned environment (onnxruntime-genai, CPU torch), shipped with the job code.
ONNX_ENVIRONMENT = "environments/onnx-export"
#: Tasks the training entry point trains; the registry pipelines cover the others.
PIPELINE_TASKS = tuple(sorted(task.value for task in ENTRYPOINT_TASKS))
SERVERLESS = "serverless"
# What a metric name in register.min_eval may be: the register step reads it off a quoted command line.
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class StepCompute:
    """Where one step runs: a cluster, or serverless with a VM size."""

    compute: str
    instance_type: str | None = None

    @property
    def serverless(self) -> bool:
        return self.compute == SERVERLESS


def step_computes(spec: FineTuneSpec) -> dict[str, StepCompute]:
    """Compute per step: CPU steps on cpu_compute, a serverless cpu_instance_type, or else the GPU cluster;
    the rest on target.compute. BuildError when a step would be left without compute."""
    target = spec.target
    if not isinstance(target, PipelineTarget):
        raise BuildError(f"the pipeline's steps run on target.kind pipeline's compute, not {target.kind}")
    if not target.compute:
        raise BuildError(
            "the fine-tune step has no compute: a pipeline needs a GPU cluster (or 'serverless')",
            path="target.compute",
            hint="set target.compute to your GPU cluster (az ml compute list)",
        )
    if target.compute == SERVERLESS and not target.instance_type:
        raise BuildError(
            "target.compute is serverless, so the GPU steps need a VM size",
            path="target.instance_type",
            hint="set target.instance_type, e.g. Standard_NC24ads_A100_v4",
        )
    gpu = StepCompute(target.compute, target.instance_type if target.compute == SERVERLESS else None)
    if target.cpu_compute and target.cpu_compute != SERVERLESS:
        cpu = StepCompute(target.cpu_compute)
    elif target.cpu_instance_type:
        cpu = StepCompute(SERVERLESS, target.cpu_instance_type)
    elif target.cpu_compute == SERVERLESS:
        raise BuildError(
            "target.cpu_compute is serverless, so the CPU steps need a VM size",
            path="target.cpu_instance_type",
            hint="set target.cpu_instance_type, e.g. Standard_E4s_v3",
        )
    else:
        cpu = gpu
    return {step: cpu if step in CPU_STEPS else gpu for step in STEPS}


class _AnonymousEnvironmentNote(logging.Filter):
    """Drops azure-ai-ml's schema-validation note that a component's environment name "will not be used for
    anonymous registration": at submit the named environment is registered first and the component points at
    it, so the note is wrong here, and it would be printed once per step on every validation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will not be used for anonymous registration" not in record.getMessage()


_ENVIRONMENT_NOTE = _AnonymousEnvironmentNote()


def _silence_environment_note() -> None:
    logger = logging.getLogger("azure.ai.ml._schema.assets.environment")
    if _ENVIRONMENT_NOTE not in logger.filters:
        logger.addFilter(_ENVIRONMENT_NOTE)


def onnx_environment() -> Any:
    """environments/onnx-export as a content-versioned Environment (like the training environment's folder)."""
    from azfinetune.targets._environment import environment_from_folder
    from azfinetune.targets._paths import project_root

    return environment_from_folder(project_root() / ONNX_ENVIRONMENT)


def _load_step(step: str, environment: Any) -> Any:
    from azure.ai.ml import load_component

    path = components_dir() / COMPONENT_FILES[step]
    if not path.is_file():
        raise BuildError(
            f"the pipeline component {path} is missing", hint="azfinetune builds from a project checkout"
        )
    component: Any = load_component(source=str(path))
    # The spec's environment (content-versioned folder or a reference) for every step, as for command jobs.
    component.environment = environment
    return component


def _columns(spec: FineTuneSpec) -> str | None:
    """data.columns as the `key=name,key=name` text the validate and evaluate steps take (single-quoted on
    their command lines)."""
    columns = data_columns(spec)
    return ",".join(f"{key}={name}" for key, name in columns.items()) or None


def _place(node: Any, where: StepCompute, *, instance_count: int = 1, shm_size: str | None = None) -> None:
    from azure.ai.ml.entities import JobResourceConfiguration

    node.compute = where.compute
    if where.serverless or instance_count > 1 or shm_size:
        node.resources = JobResourceConfiguration(
            instance_type=where.instance_type, instance_count=instance_count, shm_size=shm_size
        )


def _finetune_component(
    spec: FineTuneSpec, inputs: dict[str, Any], outputs: tuple[str, ...], environment: Any
) -> Any:
    """The fine-tune step: `python -m finetune` with the flags entrypoint_args writes for this spec."""
    from azure.ai.ml import Input, Output, command

    declared: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, str):
            declared[name] = Input(type="string")
        elif name == "train":
            declared[name] = Input(type="uri_folder")  # validate_data's train_data output
        else:
            declared[name] = Input(type=value.type)
    args = entrypoint_args(
        spec,
        inputs={name: f"${{{{inputs.{name}}}}}" for name in inputs},
        outputs={name: f"${{{{outputs.{name}}}}}" for name in outputs},
    )
    return command(
        name="azfinetune_finetune",
        display_name="Fine-tune",
        description=f"python -m finetune: {spec.method.technique.value} on {spec.model}",
        command=command_line(args),
        code=str(job_code_dir()),
        environment=environment,
        inputs=declared,
        outputs={
            name: checkpoints_output()
            if name == CHECKPOINTS_OUTPUT
            else Output(type="mlflow_model" if name == "mlflow_model" else "uri_folder")
            for name in outputs
        },
    )


#: azure-ai-ml's dsl.pipeline builds on process-global state (the pipeline being defined, its component
#: registry): two threads building at once could mix their steps or inputs. One build at a time.
_DSL_LOCK = threading.RLock()


def build_pipeline_job(spec: FineTuneSpec) -> PipelineJob:
    """The PipelineJob for a spec. Pure but for one side effect: a DeepSpeed config is written beside the spec.

    Steps are reused across submissions while their inputs and code are unchanged (force_rerun off), and the
    pipeline stops at the first failed step (continue_on_step_failure off). Thread-safe: builds are serialised
    (azure-ai-ml's dsl is not)."""
    with _DSL_LOCK:
        return _build_pipeline_job(spec)


def _build_pipeline_job(spec: FineTuneSpec) -> PipelineJob:
    from azure.ai.ml import Input, PyTorchDistribution
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import PipelineJobSettings, QueueSettings

    _silence_environment_note()
    computes = step_computes(spec)
    environment = environment_for_spec(spec)
    adapter = spec.method.uses_adapter
    registering = spec.register is not None

    job_inputs: dict[str, Any] = {"model": model_input(spec)}
    for role, reference in spec.data.files().items():
        job_inputs[f"{role}_file"] = data_input(spec, reference)
    if spec.method.deepspeed is not None:
        config = write_deepspeed_config(spec, generated_dir(spec) / "deepspeed")
        job_inputs["deepspeed_config"] = Input(type="uri_file", path=str(config))
    resume = resume_input(spec)
    if resume is not None:
        job_inputs[RESUME_INPUT] = resume  # another job's checkpoints (training.resume_from)

    ft_outputs: tuple[str, ...] = ("adapter",) if adapter or not registering else ("adapter", "mlflow_model")
    if spec.training.saves_checkpoints:
        ft_outputs += (CHECKPOINTS_OUTPUT,)
    ft_inputs = {"model": job_inputs["model"], "train": job_inputs["train_file"]}
    ft_inputs.update(
        {role: job_inputs[f"{role}_file"] for role in ("validation", "test") if f"{role}_file" in job_inputs}
    )
    if "deepspeed_config" in job_inputs:
        ft_inputs["deepspeed"] = job_inputs["deepspeed_config"]
    if RESUME_INPUT in job_inputs:
        ft_inputs[RESUME_INPUT] = job_inputs[RESUME_INPUT]
    finetune_component = _finetune_component(spec, ft_inputs, ft_outputs, environment)
    components = {
        step: _load_step(step, environment)
        for step in ("validate_data", "merge_adapter", "evaluate", "register")
    }
    onnx = spec.export.onnx if spec.export is not None else None
    if onnx is not None:
        components["export_onnx"] = _load_step("export_onnx", onnx_environment())
    plan = resource_plan(spec)
    columns = _columns(spec)
    eval_role = next(role for role in ("test", "validation", "train") if f"{role}_file" in job_inputs)
    model_is_id = isinstance(job_inputs["model"], str)
    task = spec.task.value
    # dpo/orpo: the validate and evaluate steps read preference pairs (sft passes nothing: the steps' default).
    objective = {"objective": spec.method.objective.value} if spec.method.objective.is_preference else {}

    def steps(**pipeline_inputs: Any) -> dict[str, Any]:
        data = {role: pipeline_inputs.get(f"{role}_file") for role in ("train", "validation", "test")}
        # dsl names each node after its variable: the names below are the step names (STEPS).
        validate_data = components["validate_data"](
            task=task,
            train_file=data["train"],
            validation_file=data["validation"],
            test_file=data["test"],
            columns=columns,
            max_seq_length=resolve_max_seq_length(spec.training.max_seq_length, spec.model),
            **objective,
        )
        _place(validate_data, computes["validate_data"])
        ft_bound = {"model": pipeline_inputs["model"], "train": validate_data.outputs.train_data}
        ft_bound.update({role: data[role] for role in ("validation", "test") if data[role] is not None})
        if "deepspeed_config" in pipeline_inputs:
            ft_bound["deepspeed"] = pipeline_inputs["deepspeed_config"]
        if RESUME_INPUT in pipeline_inputs:
            ft_bound[RESUME_INPUT] = pipeline_inputs[RESUME_INPUT]
        finetune = finetune_component(**ft_bound)
        _place(finetune, computes["finetune"], instance_count=plan.nodes, shm_size=plan.shm_size)
        if plan.processes > 1 or spec.method.deepspeed is not None:
            # Same rule as the command job: DeepSpeed needs torch.distributed's rendezvous even on one GPU.
            finetune.distribution = PyTorchDistribution(process_count_per_instance=max(plan.gpus_per_node, 1))
        finetune.set_limits(timeout=(spec.target.resources().max_run_minutes or 720) * 60)
        if spec.target.resources().priority == "low":
            finetune.queue_settings = QueueSettings(job_tier=SPOT_JOB_TIER)
        outputs: dict[str, Any] = {
            "data_report": validate_data.outputs.report,
            "adapter": finetune.outputs.adapter,
        }
        if CHECKPOINTS_OUTPUT in ft_outputs:
            # The job's own output, so that a later job resumes from azureml://jobs/<this job>/outputs/checkpoints.
            outputs[CHECKPOINTS_OUTPUT] = finetune.outputs[CHECKPOINTS_OUTPUT]
        model_folder, mlflow_model = finetune.outputs.adapter, None
        if adapter:
            base = (
                {"base_model_id": pipeline_inputs["model"]}
                if model_is_id
                else {"base_model": pipeline_inputs["model"]}
            )
            merge_adapter = components["merge_adapter"](
                task=task, adapter=finetune.outputs.adapter, technique=spec.method.technique.value, **base
            )
            _place(merge_adapter, computes["merge_adapter"])
            model_folder, mlflow_model = (
                merge_adapter.outputs.merged_model,
                merge_adapter.outputs.mlflow_model,
            )
            outputs["merged_model"] = model_folder
        elif registering:
            mlflow_model = finetune.outputs.mlflow_model
        evaluate = components["evaluate"](
            task=task,
            model=model_folder,
            data_file=data[eval_role],
            split=eval_role,
            columns=columns,
            max_seq_length=resolve_max_seq_length(spec.training.max_seq_length, spec.model),
            **objective,
        )
        _place(evaluate, computes["evaluate"])
        outputs["metrics"] = evaluate.outputs.metrics
        if spec.register is not None:
            outputs["mlflow_model"] = mlflow_model
            register = components["register"](
                metrics=evaluate.outputs.metrics,
                mlflow_model=mlflow_model,
                model_name=spec.register.model_name,
                min_eval=_min_eval(spec),
                description=_single_quotable(spec.register.description),
            )
            _place(register, computes["register"])
            outputs["decision"] = register.outputs.decision
        if onnx is not None:
            base = (
                {"base_model_id": pipeline_inputs["model"]}
                if model_is_id
                else {"base_model": pipeline_inputs["model"]}
            )
            # From the base and the adapter (not the merged folder): the builder bakes the adapter in, or keeps
            # it separate; a full fine-tune's output is the model itself.
            export_onnx = components["export_onnx"](
                adapter=finetune.outputs.adapter,
                validation=data["validation"],
                precision=onnx.precision,
                execution_provider=onnx.execution_provider,
                adapters=onnx.adapters if adapter else "merged",
                min_token_agreement=onnx.min_token_agreement,
                **base,
            )
            _place(export_onnx, computes["export_onnx"])
            outputs["onnx_model"] = export_onnx.outputs.onnx_model
        return outputs

    # dsl.pipeline reads the parameters off the function's signature: one keyword parameter per job input.
    steps.__signature__ = _signature(list(job_inputs))  # type: ignore[attr-defined]
    steps.__annotations__ = {}  # dsl would try to read `Any` as an input type
    pipeline_function = pipeline(  # type: ignore[call-overload]
        name=spec.name.replace("-", "_"),
        display_name=spec.name,
        description=spec.description
        or f"azfinetune: validate, fine-tune, evaluate and register ({spec.name})",
        experiment_name=spec.name,
    )(steps)
    job: PipelineJob = pipeline_function(**job_inputs)
    job.name = job_name(spec)
    job.tags = azfinetune_tags(spec)
    job.properties = _properties(spec, computes)
    for output in job.outputs.values():
        # Copied from the steps' outputs by dsl; the job YAML schema has no place for them, so a job loaded
        # from the exported YAML would differ.
        if not isinstance(output, str):
            output.description = None
    if onnx is not None and spec.register is not None:
        # A named model output is registered as that model when the job completes, beside the MLflow model.
        onnx_output: Any = job.outputs["onnx_model"]
        onnx_output.name = onnx_model_name(spec.register.model_name)
    force_rerun = isinstance(spec.target, PipelineTarget) and spec.target.force_rerun
    job.settings = PipelineJobSettings(force_rerun=force_rerun, continue_on_step_failure=False)
    return job


def _single_quotable(text: str | None) -> str | None:
    """Free text for an input the component's command puts in single quotes: a ' would end the quoting."""
    return text.replace("'", "\u2019") if text is not None else None


def _min_eval(spec: FineTuneSpec) -> str | None:
    """register.min_eval as the JSON the register step reads (quoted on its command line: metric names only
    of letters, digits and _ . -)."""
    thresholds = spec.register.min_eval if spec.register is not None else None
    if not thresholds:
        return None
    return json.dumps(thresholds, sort_keys=True)


def _signature(names: list[str]) -> Any:
    import inspect

    return inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in names]
    )


def active_steps(spec: FineTuneSpec) -> list[str]:
    """The steps a spec's pipeline has, in STEPS order."""
    exporting = spec.export is not None and spec.export.onnx is not None
    return [
        s
        for s in STEPS
        if (s != "merge_adapter" or spec.method.uses_adapter)
        and (s != "register" or spec.register)
        and (s != "export_onnx" or exporting)
    ]


def _properties(spec: FineTuneSpec, computes: dict[str, StepCompute]) -> dict[str, str]:
    steps = active_steps(spec)
    properties = {
        f"{TAG_PREFIX}steps": ",".join(steps),
        f"{TAG_PREFIX}compute": json.dumps(
            {s: c.instance_type if c.serverless else c.compute for s, c in computes.items() if s in steps},
            sort_keys=True,
            separators=(",", ":"),
        ),
    }
    if spec.register is not None:
        properties[f"{TAG_PREFIX}registered_model_name"] = spec.register.model_name
        if spec.register.min_eval:
            properties[f"{TAG_PREFIX}min_eval"] = json.dumps(spec.register.min_eval, sort_keys=True)
    return properties


def pipeline_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """What the pipeline's steps would refuse: unquotable column and metric names, serverless CPU steps
    without a VM size."""
    target = spec.target
    for key, name in (spec.data.columns.as_dict() if spec.data.columns else {}).items():
        if any(char in name for char in "',="):
            yield Issue(
                f"data.columns.{key}",
                f"the pipeline steps cannot take a column name with ' , or = ({name!r})",
                hint="rename the column in the data file",
            )
    for metric in (spec.register.min_eval or {}) if spec.register is not None else {}:
        if not _METRIC_NAME.fullmatch(metric):
            yield Issue(
                f"register.min_eval.{metric}",
                f"{metric!r} is not a metric name (letters, digits, '_', '.', '-')",
                hint="use a metric that evaluate writes: eval_loss, perplexity, accuracy, f1, ...",
            )
    if getattr(target, "cpu_compute", None) == SERVERLESS and not getattr(target, "cpu_instance_type", None):
        yield Issue(
            "target.cpu_instance_type",
            "target.cpu_compute is serverless, so the CPU steps need a VM size",
            hint="set target.cpu_instance_type, e.g. Standard_E4s_v3",
        )


class _Pipeline(TargetBase):
    kind = "pipeline"
    runs_our_code = True
    fields = PipelineTarget
    summary = "PipelineJob: validate data -> fine-tune -> merge -> evaluate -> register, on your clusters"
    tasks = ENTRYPOINT_TASKS
    objectives = frozenset(Objective)  # the entry point trains sft, dpo and orpo

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from our_code_rules(spec)
        yield from cluster_rules(spec)
        yield from pipeline_rules(spec)

    def build(self, spec: FineTuneSpec) -> PipelineJob:
        return build_pipeline_job(spec)


TARGET = _Pipeline()
