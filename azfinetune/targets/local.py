"""target.kind local: the command job's own command line, run on this machine (`azfinetune run SPEC --local`).

Its offline rules are those of any spec (files, catalog); what depends on this machine — the Hugging Face cache,
the GPUs — is checked by `preflight` just before a local run, never by `validate`."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from azfinetune.errors import Issue
from azfinetune.hf_cache import hf_cached, huggingface_cache_dir
from azfinetune.spec import FineTuneSpec, LocalTarget, Objective, model_kind
from azfinetune.targets._entrypoint import ENTRYPOINT_TASKS
from azfinetune.targets._protocol import TargetBase
from azfinetune.targets._rules import catalog_model
from azfinetune.targets.command import build_command_job

__all__ = [
    "TARGET",
    "hf_cached",
    "huggingface_cache_dir",
    "local_gpu_count",
    "local_model_source",
    "local_rules",
    "preflight",
]


def local_gpu_count() -> int:
    """CUDA GPUs on this machine, as `nvidia-smi -L` lists them (0 without the tool)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def local_model_source(spec: FineTuneSpec) -> tuple[str, str | None]:
    """("folder", path) for a local model folder, ("hf", id) for a Hugging Face model, ("none", None) when the
    local backend cannot load the model (a registry model the catalog has no Hugging Face id for)."""
    kind = model_kind(spec.model)
    if kind == "local":
        return "folder", str(spec.resolve_path(spec.model))
    if kind == "hf":
        return "hf", spec.model[3:]
    info = catalog_model(spec)
    if info is not None and info.hf_id:
        return "hf", info.hf_id
    return "none", None


def local_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """What a local run needs of the spec itself: a loadable model and local data files."""
    source, where = local_model_source(spec)
    if source == "folder" and where is not None and not (Path(where) / "config.json").is_file():
        yield Issue(
            "model",
            f"no model at {where} (no config.json there)",
            hint="point model at a folder saved with save_pretrained, or run `azfinetune demo` "
            "to create the tiny quickstart model",
        )
    elif source == "none":
        yield Issue(
            "model",
            "the local backend cannot use a registry model that is not in the catalog",
            hint="use a local folder or hf:<org>/<name> for a local run",
        )
    for role, ref in spec.data.files().items():
        if spec.data.is_remote(ref):
            yield Issue(
                f"data.{role}",
                "the local backend reads local files only",
                hint="download the file and point to it",
            )
    if spec.training.resume_from is not None:
        yield Issue(
            "training.resume_from",
            "a local run cannot read an Azure ML job's checkpoints",
            hint="resume the previous local run of this spec with `azfinetune run SPEC --local --resume`, or "
            "remove training.resume_from",
        )
    if spec.register is not None and spec.register.min_eval:
        yield Issue(
            "register.min_eval",
            "a single local training run has no evaluation gate",
            hint="use target.kind: pipeline (run it with `azfinetune run SPEC --local`), or remove min_eval",
        )


def preflight(spec: FineTuneSpec, *, allow_download: bool = False) -> list[Issue]:
    """Checks of this machine for a local run of the spec: the model is in the cache (unless downloads are
    allowed), and the GPUs it asks for exist."""
    issues: list[Issue] = []
    source, where = local_model_source(spec)
    allowed = allow_download or os.environ.get("AZFINETUNE_ALLOW_DOWNLOAD") == "1"
    if source == "hf" and where is not None and not allowed and not hf_cached(where):
        issues.append(
            Issue(
                "model",
                f"the local backend needs {where} in the Hugging Face cache ({huggingface_cache_dir()}), "
                "and it is not there",
                hint=f"fetch it once with `huggingface-cli download {where}`, or pass --allow-download",
            )
        )
    wanted = spec.target.resources().gpus_per_node or 0
    if wanted > 1:
        available = local_gpu_count()
        if available < wanted:
            issues.append(
                Issue(
                    "target.gpus_per_node",
                    f"{wanted} GPUs requested but this machine has {available}",
                    hint="remove gpus_per_node for a single-process local run",
                )
            )
    return issues


class _Local(TargetBase):
    kind = "local"
    runs_our_code = True
    service = "local"
    fields = LocalTarget
    summary = "the command job's command line, run in a subprocess on this machine"
    tasks = ENTRYPOINT_TASKS
    objectives = frozenset(Objective)  # the entry point trains sft, dpo and orpo

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from local_rules(spec)

    def build(self, spec: FineTuneSpec) -> Any:
        return build_command_job(spec)


TARGET = _Local()
