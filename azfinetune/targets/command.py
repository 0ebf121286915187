"""target.kind command: an azure.ai.ml CommandJob that runs `python -m finetune` from jobs/src on the cluster.

The local target runs the same CommandJob's command line on this machine (`build_command_job` serves both)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import find_model, get_sku
from azfinetune.errors import BuildError, CatalogError, Issue
from azfinetune.spec import CommandTarget, FineTuneSpec, Objective, model_kind
from azfinetune.targets._checkpoints import CHECKPOINTS_OUTPUT, RESUME_INPUT, checkpoints_output, resume_input
from azfinetune.targets._common import azfinetune_tags, job_name
from azfinetune.targets._deepspeed import write_deepspeed_config
from azfinetune.targets._entrypoint import (
    ENTRYPOINT_TASKS,
    command_line,
    entrypoint_args,
    entrypoint_outputs,
    our_code_rules,
)
from azfinetune.targets._environment import environment_for_spec
from azfinetune.targets._onnx_export import EXPORT_MODULE, ONNX_OUTPUT, onnx_export_args, onnx_model_name
from azfinetune.targets._paths import generated_dir, job_code_dir
from azfinetune.targets._protocol import TargetBase

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.ai.ml import Input
    from azure.ai.ml.entities import CommandJob

__all__ = [
    "DEFAULT_SHM_GIB",
    "SPOT_JOB_TIER",
    "TARGET",
    "ResourcePlan",
    "build_command_job",
    "data_input",
    "model_input",
    "normalize_data_reference",
    "resource_plan",
]

#: Shared memory of the training container: PyTorch data loaders and NCCL need far more than Docker's 64 MB.
DEFAULT_SHM_GIB = 16
#: queue_settings.job_tier for `priority: low` (the job-level low-priority switch of azure-ai-ml 1.35).
SPOT_JOB_TIER = "spot"


@dataclass(frozen=True)
class ResourcePlan:
    """How a spec's run is laid out: VMs, processes per VM, and the container's shared memory."""

    nodes: int
    gpus_per_node: int
    shm_size: str

    @property
    def processes(self) -> int:
        return self.nodes * max(self.gpus_per_node, 1)


def resource_plan(spec: FineTuneSpec) -> ResourcePlan:
    """Nodes, GPUs per node (default: the SKU's GPU count from the catalog, else 1) and shm size."""
    resources = spec.target.resources()
    sku = None
    if resources.instance_type:
        try:
            sku = get_sku(resources.instance_type)
        except CatalogError:
            sku = None  # the rules refuse an unknown VM size before any build
    gpus = resources.gpus_per_node if resources.gpus_per_node is not None else (sku.gpus if sku else 1)
    shm_gib = max(DEFAULT_SHM_GIB, 8 * gpus)
    if sku is not None:
        # Never more than half the VM's memory: /dev/shm is RAM.
        shm_gib = min(shm_gib, max(1, int(sku.ram_gib // 2)))
    return ResourcePlan(nodes=resources.nodes, gpus_per_node=gpus, shm_size=f"{shm_gib}g")


def normalize_data_reference(reference: str) -> str:
    """A registered data reference as azure-ai-ml's Python builder needs it: `azureml:` stripped.

    `azureml:name@label` would otherwise be looked up as a data asset literally named `azureml:name`; the
    unprefixed form is also exactly what load_job makes of `azureml:...` in YAML. URIs pass through."""
    if reference.startswith("azureml:") and not reference.startswith("azureml://"):
        return reference[len("azureml:") :]
    return reference


def data_input(spec: FineTuneSpec, reference: str) -> Input:
    """A uri_file input: a local file (absolute path, uploaded by azure-ai-ml at submit), an asset or a URI."""
    from azure.ai.ml import Input

    if spec.data.is_remote(reference):
        return Input(type="uri_file", path=normalize_data_reference(reference))
    path = spec.resolve_path(reference).resolve()
    if not path.is_file():
        raise BuildError(f"{path} does not exist", hint="data paths are relative to the spec file's folder")
    return Input(type="uri_file", path=str(path))


def model_input(spec: FineTuneSpec) -> Input | str:
    """The model input: a registry MLflow model (mounted folder) or, for hf: ids, the id as a string input.

    Catalog aliases use their Azure ML registry asset when the catalog has one. The local backend gets the
    Hugging Face id (it cannot mount a registry model) or, for a local folder, that folder."""
    from azure.ai.ml import Input

    kind = model_kind(spec.model)
    local = spec.target.kind == "local"
    if kind == "local":
        if not local:
            raise BuildError(
                f"a local model folder ({spec.model}) can only be used with target.kind: local",
                path="model",
                hint="use a catalog alias, an azureml://registries/... model or hf:<org>/<name>",
            )
        folder = spec.resolve_path(spec.model).resolve()
        return Input(type="uri_folder", path=str(folder))
    if kind == "hf":
        return spec.model
    info = find_model(spec.model)
    if kind == "registry" and not local:
        return Input(type="mlflow_model", path=spec.model)
    if info is None:
        raise BuildError(f"model {spec.model!r} is not in the catalog", path="model")
    if not local and info.registry and info.registry_asset:
        return Input(type="mlflow_model", path=info.registry_uri)
    if info.hf_id:
        return f"hf:{info.hf_id}"
    raise BuildError(
        f"{info.display_name} has neither an Azure ML registry asset nor a Hugging Face id in the catalog",
        path="model",
    )


def _quiet(factory: Any, **kwargs: Any) -> Any:
    """Construct an azure-ai-ml class marked experimental without its log line (it would reach the CLI)."""
    experimental_logger = logging.getLogger("azure.ai.ml._utils._experimental")
    level = experimental_logger.level
    experimental_logger.setLevel(logging.ERROR)
    try:
        return factory(**kwargs)
    finally:
        experimental_logger.setLevel(level)


def _environment(spec: FineTuneSpec, *, local: bool) -> Any:
    try:
        return environment_for_spec(spec)
    except BuildError:
        if local:
            # A local run uses this machine's Python; the Azure environment is only carried along when present.
            return None
        raise


def build_command_job(spec: FineTuneSpec) -> CommandJob:
    """The CommandJob for a spec: jobs/src + `python -m finetune <flags>`, pure and deterministic.

    The same spec (and data) builds the same job: the name is the spec's fingerprint, nothing is random.
    The only side effect: with method.deepspeed, its config JSON is written to <spec folder>/.azfinetune/."""
    from azure.ai.ml import Input, Output, PyTorchDistribution
    from azure.ai.ml.entities import (
        CommandJob,
        CommandJobLimits,
        JobResourceConfiguration,
        ManagedIdentityConfiguration,
        QueueSettings,
    )

    local = spec.target.kind == "local"

    inputs: dict[str, Input | str] = {"model": model_input(spec)}
    for role, reference in spec.data.files().items():
        inputs[role] = data_input(spec, reference)
    if spec.method.deepspeed is not None:
        config = write_deepspeed_config(spec, generated_dir(spec) / "deepspeed")
        inputs["deepspeed"] = Input(type="uri_file", path=str(config))
    resume = resume_input(spec)
    if resume is not None:
        inputs[RESUME_INPUT] = resume  # another job's checkpoints (training.resume_from)

    outputs: dict[str, Output] = {}
    for name in entrypoint_outputs(spec):
        if name == "mlflow_model" and spec.register is not None:
            # A named mlflow_model output is registered as that model when the job completes.
            outputs[name] = Output(type="mlflow_model", name=spec.register.model_name)
        elif name == CHECKPOINTS_OUTPUT:
            outputs[name] = checkpoints_output()  # read-write mounted: survives a pre-emption
        else:
            outputs[name] = Output(type="uri_folder")

    args = entrypoint_args(
        spec,
        inputs={name: f"${{{{inputs.{name}}}}}" for name in inputs},
        outputs={name: f"${{{{outputs.{name}}}}}" for name in outputs},
    )
    command = command_line(args)
    onnx = spec.export.onnx if spec.export is not None else None
    if onnx is not None and not local:
        # The export step after training, in the same job (rank 0 only: the step exits 0 on other ranks). The
        # local backend runs it as its own step instead (azfinetune.local.export_onnx_local).
        outputs[ONNX_OUTPUT] = Output(
            type="custom_model",
            **({"name": onnx_model_name(spec.register.model_name)} if spec.register is not None else {}),
        )
        export_args = onnx_export_args(
            spec,
            base_model="${{inputs.model}}",
            adapter="${{outputs.adapter}}",
            output_dir=f"${{{{outputs.{ONNX_OUTPUT}}}}}",
            validation="${{inputs.validation}}" if "validation" in inputs else None,
        )
        command = f"{command} && {command_line(export_args, module=EXPORT_MODULE)}"

    plan = resource_plan(spec)
    use_deepspeed = spec.method.deepspeed is not None
    # DeepSpeed needs torch.distributed's rendezvous variables even for a single process; Azure ML's
    # PyTorch distribution sets MASTER_ADDR/RANK/WORLD_SIZE and starts one process per GPU.
    distribution = (
        PyTorchDistribution(process_count_per_instance=max(plan.gpus_per_node, 1))
        if plan.processes > 1 or use_deepspeed
        else None
    )
    target = spec.target.resources()
    resources = None
    if not local:
        resources = JobResourceConfiguration(
            instance_count=plan.nodes, instance_type=target.instance_type, shm_size=plan.shm_size
        )
    queue_settings = None
    if not local and target.priority == "low":
        queue_settings = _quiet(QueueSettings, job_tier=SPOT_JOB_TIER)

    job_kwargs: dict[str, Any] = {
        "name": job_name(spec),
        "display_name": spec.name,
        "experiment_name": spec.name,
        "description": spec.description,
        "tags": azfinetune_tags(spec),
        "code": str(job_code_dir()),
        "command": command,
        "inputs": inputs,
        "outputs": outputs,
        "environment": _environment(spec, local=local),
        # Nothing secret here ever: secrets travel as keyvault:// references on the command line.
        "environment_variables": {},
        "compute": None if local else getattr(spec.target, "compute", None),
        "resources": resources,
        "distribution": distribution,
        "limits": CommandJobLimits(timeout=(target.max_run_minutes or 720) * 60),
        "identity": ManagedIdentityConfiguration(),
    }
    if queue_settings is not None:
        job_kwargs["queue_settings"] = queue_settings
    return CommandJob(**job_kwargs)


def cluster_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """Serverless compute (`compute: serverless`) needs a VM size; shared by command and pipeline."""
    if getattr(spec.target, "compute", None) == "serverless" and not spec.target.resources().instance_type:
        yield Issue(
            "target.instance_type",
            "target.compute is serverless, so the job needs a VM size",
            hint="set target.instance_type, e.g. Standard_NC24ads_A100_v4",
        )


class _Command(TargetBase):
    kind = "command"
    runs_our_code = True
    fields = CommandTarget
    summary = "CommandJob: jobs/src/finetune + environments/finetune-gpu on your AmlCompute GPU cluster"
    tasks = ENTRYPOINT_TASKS
    objectives = frozenset(Objective)  # the entry point trains sft, dpo and orpo

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from our_code_rules(spec)
        yield from cluster_rules(spec)
        if spec.register is not None and spec.register.min_eval:
            # A command job's mlflow_model output is registered whenever the job succeeds; the gate needs the
            # pipeline's evaluate step.
            yield Issue(
                "register.min_eval",
                "a command job registers its model unconditionally; min_eval needs an evaluation step",
                hint="use target.kind: pipeline for gated registration, or remove register.min_eval",
            )

    def build(self, spec: FineTuneSpec) -> CommandJob:
        return build_command_job(spec)


TARGET = _Command()
