"""The local backend: runs a spec's training command line — the one built for Azure ML — on this machine."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft_contract import PROGRESS_PREFIX, parse_progress_line
from azft_contract.checkpoints import Checkpoint, newest_complete

from azfinetune.errors import JobFailedError, LocalRunError, RunInterrupted
from azfinetune.spec import FineTuneSpec, OnnxExportSpec
from azfinetune.targets import (
    ENTRYPOINT_MODULE,
    deepspeed_config,
    entrypoint_args,
    entrypoint_inputs,
    entrypoint_outputs,
    job_code_dir,
    job_name,
)
from azfinetune.targets.local import local_gpu_count, local_model_source, preflight

__all__ = [
    "PROGRESS_PREFIX",
    "TRAIN_MODULES",
    "LocalRun",
    "LocalRunPlan",
    "azureml_env",
    "check_train_extra",
    "plot_losses",
    "prepare_local_run",
    "previous_checkpoint",
    "read_run",
    "run_local",
    "stream_process",
]

#: What the `train` extra brings; the local backend needs all of it.
TRAIN_MODULES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


@dataclass
class LocalRunPlan:
    """Everything a local run will execute, decided before it starts (shown by --dry-run, compared in tests)."""

    spec: FineTuneSpec
    name: str
    run_id: str
    run_dir: Path
    command: list[str]
    env: dict[str, str]
    cwd: Path
    inputs: dict[str, str]
    outputs: dict[str, str]
    #: The earlier run's checkpoint this run continues from (`run --local --resume`).
    resume: Checkpoint | None = None

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "train.log"


@dataclass
class LocalRun:
    """A finished local run: where its outputs are and what it measured."""

    plan: LocalRunPlan
    returncode: int
    metrics: dict[str, Any] = field(default_factory=dict)
    plot: Path | None = None
    #: The export_onnx step's parity report (parity.json) when the spec has export.onnx.
    onnx: dict[str, Any] | None = None

    @property
    def run_dir(self) -> Path:
        return self.plan.run_dir

    @property
    def adapter_dir(self) -> Path:
        return Path(self.plan.outputs["adapter"])

    @property
    def onnx_dir(self) -> Path:
        return self.plan.run_dir / "onnx"


def check_train_extra() -> None:
    """LocalRunError naming the missing packages unless the `train` extra is installed."""
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalRunError(
            f"the local backend needs the `train` extra; missing: {', '.join(missing)}",
            hint="pip install 'azfinetune[train]' (or run `make quickstart`, which installs it with CPU PyTorch)",
        )


def _model_input(spec: FineTuneSpec, *, allow_download: bool) -> str:
    """A local folder path, or an hf id that is in the Hugging Face cache (or may be downloaded)."""
    problems = preflight(spec, allow_download=allow_download)
    if problems:
        first = problems[0]
        raise LocalRunError(f"{first.path}: {first.message}", hint=first.hint)
    source, where = local_model_source(spec)
    if source == "folder" and where is not None:
        folder = Path(where).resolve()
        if not (folder / "config.json").is_file():
            raise LocalRunError(
                f"model: no model at {folder} (no config.json there)",
                hint="point model at a folder saved with save_pretrained, or run `azfinetune demo`",
            )
        return str(folder)
    if source == "hf" and where is not None:
        return str(where)
    raise LocalRunError(
        f"model: the local backend cannot load {spec.model}", hint="use a local folder or hf:<org>/<name>"
    )


def _new_run_dir(root: Path, name: str) -> tuple[str, Path]:
    """outputs/<job-name>/<run-id>/, a new folder every time (an earlier run is never overwritten)."""
    parent = root / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LocalRunError(
            f"cannot create the output folder {parent}: {error.strerror}",
            hint="choose a writable folder with --outputs",
        ) from None
    if not os.access(parent, os.W_OK):
        raise LocalRunError(
            f"the output folder {parent} is not writable", hint="choose another with --outputs"
        )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for counter in range(1000):
        run_id = stamp if counter == 0 else f"{stamp}-{counter}"
        folder = parent / run_id
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise LocalRunError(f"cannot create {folder}: {error.strerror}") from None
        return run_id, folder
    raise LocalRunError(f"too many runs started this second under {parent}")


def _local_data(spec: FineTuneSpec) -> dict[str, str]:
    files: dict[str, str] = {}
    for role, ref in spec.data.files().items():
        path = spec.resolve_path(ref).resolve()
        if not path.is_file():
            raise LocalRunError(
                f"data.{role}: {path} does not exist", hint="paths are relative to the spec file"
            )
        files[role] = str(path)
    return files


def _run_order(run_dir: Path) -> tuple[str, int]:
    # Run ids are <stamp> or <stamp>-<n> (_new_run_dir): the counter compared as a number.
    parts = run_dir.name.split("-")
    counter = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    return "-".join(parts[:2]), counter


def previous_checkpoint(spec: FineTuneSpec, *, outputs_root: Path | None = None) -> Checkpoint:
    """The newest complete checkpoint of the latest earlier local run of this spec that saved one (under
    outputs/<job-name>/, newest run first). LocalRunError when there is none, saying why."""
    root = Path(outputs_root or Path.cwd() / "outputs").resolve()
    name = job_name(spec)
    folder = root / name
    runs = [run for run in folder.iterdir() if (run / "command.json").is_file()] if folder.is_dir() else []
    for run in sorted(runs, key=_run_order, reverse=True):
        found = newest_complete(run / "checkpoints")
        if found is not None:
            return found
    if not spec.training.saves_checkpoints:
        hint = "set training.save_steps so that a run saves checkpoints to resume from"
    else:
        hint = "run it without --resume" if runs else "check --outputs: the earlier run's folder is not there"
    where = f"{len(runs)} earlier run{'s' if len(runs) != 1 else ''}" if runs else "no earlier run"
    raise LocalRunError(
        f"nothing to resume: {where} of {spec.name} under {folder} saved a checkpoint", hint=hint
    )


def prepare_local_run(
    spec: FineTuneSpec,
    *,
    outputs_root: Path | None = None,
    allow_download: bool = False,
    resume: bool = False,
) -> LocalRunPlan:
    """Decide the command line, environment and folders of a local run (creates the run folder only). `resume`:
    continue from the newest complete checkpoint of the previous run of this spec (previous_checkpoint)."""
    inputs: dict[str, str] = {"model": _model_input(spec, allow_download=allow_download)}
    inputs.update(_local_data(spec))
    name = job_name(spec)
    point = previous_checkpoint(spec, outputs_root=outputs_root) if resume else None
    if point is not None:
        inputs["resume_from"] = str(point.path)
    run_id, run_dir = _new_run_dir(Path(outputs_root or Path.cwd() / "outputs").resolve(), name)
    if "deepspeed" in entrypoint_inputs(spec):
        config = run_dir / "deepspeed.json"
        config.write_text(json.dumps(deepspeed_config(spec), indent=2, sort_keys=True))
        inputs["deepspeed"] = str(config)
    outputs = {role: str(run_dir / role) for role in entrypoint_outputs(spec)}
    args = entrypoint_args(spec, inputs=inputs, outputs=outputs)
    gpus = spec.target.resources().gpus_per_node or 0
    if gpus > 1 and local_gpu_count() >= gpus:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    else:
        launcher = [sys.executable]
    command = [*launcher, "-m", ENTRYPOINT_MODULE, *args]
    env = azureml_env(spec, name=name, run_id=run_id, run_dir=run_dir, allow_download=allow_download)
    return LocalRunPlan(
        spec=spec,
        name=name,
        run_id=run_id,
        run_dir=run_dir,
        command=command,
        env=env,
        cwd=job_code_dir(),
        inputs=inputs,
        outputs=outputs,
        resume=point,
    )


def azureml_env(
    spec: FineTuneSpec, *, name: str, run_id: str, run_dir: Path, allow_download: bool
) -> dict[str, str]:
    """What Azure ML sets for a job's process (run id, experiment, MLflow tracking), so the same code takes the
    same paths here; MLflow tracks into the run folder and the Hugging Face hub stays offline unless allowed."""
    return {
        "AZUREML_RUN_ID": f"{name}_{run_id}",
        "AZUREML_EXPERIMENT_NAME": spec.name,
        "MLFLOW_EXPERIMENT_NAME": spec.name,
        "MLFLOW_TRACKING_URI": (run_dir / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "0" if allow_download else "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def stream_process(
    command: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_file: Path,
    on_message: Callable[[str, dict[str, Any]], None] | None = None,
) -> int:
    """Run `command`, all its output into `log_file`, each AZFT_PROGRESS message to `on_message(kind, payload)`;
    its exit code. On Ctrl-C the process gets SIGINT (killed after 30 s) and KeyboardInterrupt propagates."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                parsed = parse_progress_line(line.rstrip("\n"))
                if parsed is not None and on_message is not None:
                    on_message(*parsed)
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise


def run_local(
    spec: FineTuneSpec,
    *,
    outputs_root: Path | None = None,
    allow_download: bool = False,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[LocalRunPlan], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_export: Callable[[Path], None] | None = None,
    resume: bool = False,
) -> LocalRun:
    """Run the spec's training on this machine; progress lines go to `on_progress`, all output to the log.
    `resume`: continue the previous run of this spec from its newest complete checkpoint.

    Raises LocalRunError (exit 2) for bad input, JobFailedError (exit 1) when training fails, and
    RunInterrupted (exit 130) on Ctrl-C — the partial outputs stay in the run folder (and with checkpoints,
    `resume=True` continues from them)."""
    check_train_extra()
    plan = prepare_local_run(spec, outputs_root=outputs_root, allow_download=allow_download, resume=resume)
    if on_start is not None:
        on_start(plan)
    (plan.run_dir / "command.json").write_text(
        json.dumps(
            {
                "command": plan.command,
                "cwd": str(plan.cwd),
                # What `azfinetune export RUN --onnx` needs later: the base model and the data it was trained on.
                "inputs": plan.inputs,
                "task": spec.task.value,
                "technique": spec.method.technique.value,
            },
            indent=2,
        )
    )
    env = {**os.environ, **plan.env, **(extra_env or {})}
    messages: dict[str, dict[str, Any]] = {}

    def on_message(kind: str, payload: dict[str, Any]) -> None:
        if kind == "progress":
            if on_progress is not None:
                on_progress(payload)
        else:
            messages[kind] = payload  # the last `error` and `done` messages

    try:
        returncode = stream_process(
            plan.command, cwd=plan.cwd, env=env, log_file=plan.log_file, on_message=on_message
        )
    except KeyboardInterrupt:
        resumable = "checkpoints" in plan.outputs and newest_complete(Path(plan.outputs["checkpoints"]))
        raise RunInterrupted(
            f"stopped; the partial outputs and the log are in {plan.run_dir}",
            hint="continue it with --resume (from its newest checkpoint)"
            if resumable
            else f"log: {plan.log_file}",
        ) from None
    error, done = messages.get("error"), messages.get("done")
    if returncode != 0:
        message = (error or {}).get("error") or f"the training process exited with code {returncode}"
        if returncode == 2:
            raise LocalRunError(f"training refused its input: {message}", hint=f"log: {plan.log_file}")
        raise JobFailedError(
            f"local training failed: {message}", hint=f"log: {plan.log_file}", job_name=plan.name
        )
    metrics = _read_metrics(Path(plan.outputs["adapter"])) or dict(done or {})
    plot = plot_losses(metrics, plan.run_dir / "loss.png")
    run = LocalRun(plan=plan, returncode=returncode, metrics=metrics, plot=plot)
    if spec.export is not None and spec.export.onnx is not None:
        if on_export is not None:
            on_export(run.onnx_dir)
        run.onnx = export_onnx_local(spec, plan.inputs["model"], run.adapter_dir, run.onnx_dir, env=env)
    return run


def export_onnx_local(
    spec: FineTuneSpec,
    base_model: str,
    adapter: Path | None,
    output_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the export_onnx step (jobs/src/export_onnx) on this machine for the spec's export.onnx section;
    returns its parity report. LocalRunError for bad input (exit 2), JobFailedError when it fails."""
    onnx = spec.export.onnx if spec.export is not None else None
    if onnx is None:
        raise LocalRunError("the spec has no export.onnx section", hint="add export: {onnx: {}} to the spec")
    return run_export_step(
        onnx,
        base_model=base_model,
        adapter=adapter,
        output_dir=output_dir,
        validation=_local_data(spec).get("validation"),
        job_name=spec.name,
        env=env,
    )


def run_export_step(
    onnx: OnnxExportSpec,
    *,
    base_model: str,
    adapter: Path | None,
    output_dir: Path,
    validation: str | None,
    job_name: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`python -m export_onnx` in a subprocess (log: <output_dir>/../logs/export_onnx.log); its parity report."""
    from azfinetune.targets._onnx_export import EXPORT_MODULE, onnx_export_args

    command = [
        sys.executable,
        "-m",
        EXPORT_MODULE,
        *onnx_export_args(
            onnx,
            base_model=base_model,
            adapter=str(adapter) if adapter is not None else None,
            output_dir=str(output_dir),
            validation=validation,
        ),
    ]
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    log_file = output_dir.parent / "logs" / "export_onnx.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {}), "OLIVE_DISABLE_TELEMETRY": "1"}
    with log_file.open("w", encoding="utf-8") as log:
        result = subprocess.run(
            command, cwd=job_code_dir(), env=full_env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        lines = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        reason = next((line for line in reversed(lines) if line.startswith("export_onnx")), None)
        message = reason or f"the export process exited with code {result.returncode}"
        if result.returncode == 2:
            raise LocalRunError(f"ONNX export refused its input: {message}", hint=f"log: {log_file}")
        raise JobFailedError(f"ONNX export failed: {message}", hint=f"log: {log_file}", job_name=job_name)
    report: dict[str, Any] = json.loads((output_dir / "parity.json").read_text(encoding="utf-8"))
    return report


@dataclass(frozen=True)
class FinishedRun:
    """What a finished local run folder holds for a later export: the base model, the adapter, the data."""

    run_dir: Path
    base_model: str
    adapter_dir: Path
    validation: str | None
    task: str | None


def find_finished_run(path: Path, *, base_model: str | None = None) -> FinishedRun:
    """The local run at `path` (a run folder, or a job folder: its newest run) with the inputs it trained on; or a
    fine-tune output folder by itself (a PEFT adapter or a full model, e.g. an Azure ML job's downloaded
    `adapter` output), whose base model `base_model` names."""
    folder = path.resolve()
    if not folder.is_dir():
        raise LocalRunError(f"no run folder at {folder}", hint="give a folder under outputs/<job-name>/")
    adapter_like = (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()
    if adapter_like and not (folder / "command.json").is_file():
        if base_model is None and (folder / "adapter_config.json").is_file():
            recorded_base = _adapter_base(folder)
            raise LocalRunError(
                f"{folder} is a LoRA adapter: say which base model it was trained on",
                hint="pass --base-model "
                + (
                    f"hf:{recorded_base}" if recorded_base else "hf:<org>/<name> (or the base model's folder)"
                ),
            )
        return FinishedRun(
            run_dir=folder,
            base_model=base_model or str(folder),
            adapter_dir=folder,
            validation=None,
            task=None,
        )
    if not (folder / "command.json").is_file():
        folder = _newest_run(folder)
    try:
        recorded = json.loads((folder / "command.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LocalRunError(f"{folder / 'command.json'} is unreadable: {error}") from None
    inputs = recorded.get("inputs") if isinstance(recorded, dict) else None
    if not isinstance(inputs, dict):
        # A run recorded before inputs were: read them off its command line.
        command = recorded.get("command") if isinstance(recorded, dict) else None
        words = [str(word) for word in command] if isinstance(command, list) else []
        flags = {"--model": "model", "--validation-file": "validation"}
        inputs = {flags[w]: words[i + 1] for i, w in enumerate(words[:-1]) if w in flags}
    base = base_model or inputs.get("model")
    if not isinstance(base, str) or not base:
        raise LocalRunError(f"{folder / 'command.json'} does not say which model the run trained")
    adapter = folder / "adapter"
    if not (adapter / "metrics.json").is_file():
        raise LocalRunError(
            f"{folder} has no finished training (no adapter/metrics.json)", hint=f"see {folder / 'logs'}"
        )
    validation = inputs.get("validation")
    task = recorded.get("task") if isinstance(recorded, dict) else None
    return FinishedRun(
        run_dir=folder,
        base_model=base,
        adapter_dir=adapter,
        validation=validation if isinstance(validation, str) else None,
        task=task if isinstance(task, str) else None,
    )


def _adapter_base(folder: Path) -> str | None:
    """base_model_name_or_path of a PEFT adapter_config.json (what it was trained on), if it names a hub id."""
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return (
        name if isinstance(name, str) and name.count("/") == 1 and not name.startswith(("/", ".")) else None
    )


def export_finished_run(
    run: FinishedRun, onnx: OnnxExportSpec, *, output_dir: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Export a finished local run for onnxruntime-genai (default folder: <run>/onnx); (folder, parity report)."""
    check_train_extra()
    if run.task is not None and run.task not in ("chat-completion", "text-completion"):
        raise LocalRunError(
            f"onnxruntime-genai exports causal language models; this run trained task {run.task}",
            hint="export runs of task chat-completion or text-completion",
        )
    default = (
        run.run_dir / "onnx"
        if run.adapter_dir != run.run_dir
        else run.run_dir.parent / f"{run.run_dir.name}-onnx"
    )
    folder = (output_dir or default).resolve()
    report = run_export_step(
        onnx,
        base_model=run.base_model,
        adapter=run.adapter_dir,
        output_dir=folder,
        validation=run.validation,
        job_name=run.run_dir.parent.name,
    )
    return folder, report


def _read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.is_file():
        return {}
    value = json.loads(path.read_text())
    return value if isinstance(value, dict) else {}


def plot_losses(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """The train and eval loss curves as a PNG (matplotlib); None when there is no history to draw."""
    history = metrics.get("loss_history") or []
    train = [(h["step"], h["loss"]) for h in history if h.get("loss") is not None]
    evaluation = [(h["step"], h["eval_loss"]) for h in history if h.get("eval_loss") is not None]
    if not train and not evaluation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", marker=".")
    if evaluation:
        axes.plot(*zip(*evaluation, strict=True), label="eval loss", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(str(metrics.get("title") or path.parent.parent.name))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _newest_run(job_folder: Path) -> Path:
    """The newest run (by its run id, which sorts by time) under a job folder outputs/<job-name>/."""
    runs = sorted((p for p in job_folder.iterdir() if (p / "command.json").is_file()), key=lambda p: p.name)
    if not runs:
        raise LocalRunError(
            f"{job_folder} holds no local run", hint="give a folder under outputs/<job-name>/"
        )
    return runs[-1]


def read_run(path: Path) -> tuple[dict[str, Any], Path | None]:
    """(metrics, loss plot) of a local run folder (outputs/<job>/<run-id>), or of its job folder's latest run."""
    folder = path.resolve()
    if not folder.is_dir():
        raise LocalRunError(f"no run folder at {folder}", hint="give a folder under outputs/<job-name>/")
    if not (folder / "adapter").is_dir() and not (folder / "command.json").is_file():
        folder = _newest_run(folder)
    metrics = _read_metrics(folder / "adapter")
    if not metrics:
        raise LocalRunError(
            f"{folder} has no metrics.json (did the run finish?)", hint=f"see {folder / 'logs'}"
        )
    plot = folder / "loss.png"
    if not plot.is_file():
        plot = plot_losses(metrics, plot) or plot
    return metrics, plot if plot.is_file() else None
