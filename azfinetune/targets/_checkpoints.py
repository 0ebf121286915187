"""Checkpoints that survive a pre-emption, and resuming another job's: the `checkpoints` output (read-write
mounted), the `resume_from` input, their rules, and what the job resumed from must be."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azfinetune.errors import Issue
from azfinetune.spec import FineTuneSpec
from azfinetune.targets._common import TAG_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.ai.ml import Input, Output

__all__ = [
    "CHECKPOINTS_OUTPUT",
    "RESUME_INPUT",
    "SETTLED_STATES",
    "checkpoint_rules",
    "checkpoints_output",
    "checkpoints_uri",
    "resume_input",
    "resume_source_issues",
]

#: The job output the entry point's --checkpoint-dir writes, and the job input its --resume-from reads.
CHECKPOINTS_OUTPUT = "checkpoints"
RESUME_INPUT = "resume_from"
#: Job states in which a job's checkpoints no longer change.
SETTLED_STATES = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})


def checkpoints_uri(job: str) -> str:
    """Where a job's checkpoints are, as an input of another job."""
    return f"azureml://jobs/{job}/outputs/{CHECKPOINTS_OUTPUT}"


def checkpoints_output() -> Output:
    """The `checkpoints` output: read-write mounted, so each checkpoint is in storage as soon as it is saved and a
    restarted (pre-empted) job finds it there. An upload-mode output would upload only when the job ends."""
    from azure.ai.ml import Output

    return Output(type="uri_folder", mode="rw_mount")


def resume_input(spec: FineTuneSpec) -> Input | None:
    """training.resume_from as a read-only mounted input: the other job's `checkpoints` output."""
    if spec.training.resume_from is None:
        return None
    from azure.ai.ml import Input

    return Input(type="uri_folder", path=checkpoints_uri(spec.training.resume_from), mode="ro_mount")


def checkpoint_rules(spec: FineTuneSpec) -> Iterator[Issue]:
    """Rules of the Azure ML kinds that run our trainer (command, pipeline): a low-priority job without
    checkpoints loses its work when the VM is taken."""
    training = spec.training
    if spec.target.resources().priority == "low" and training.save_steps is None:
        yield Issue(
            "training.save_steps",
            "a low-priority job can be pre-empted, and without step checkpoints it then starts again from step 0",
            hint="set training.save_steps (e.g. 100): a restarted job resumes from its newest checkpoint",
            severity="warning",
        )


def resume_source_issues(spec: FineTuneSpec, job: Any | None) -> list[Issue]:
    """What stops a job from resuming `job` (the one training.resume_from names, as the workspace returned it,
    None when there is none): it must have a `checkpoints` output, have settled, and have trained the same task
    and technique. Pure: the client reads the job and raises these as a SpecError."""
    source = spec.training.resume_from
    if source is None:
        return []
    key = "training.resume_from"
    if job is None:
        return [Issue(key, f"no job {source} in this workspace", hint="`azfinetune list` shows the jobs")]
    if CHECKPOINTS_OUTPUT not in (getattr(job, "outputs", None) or {}):
        return [
            Issue(
                key,
                f"job {source} has no {CHECKPOINTS_OUTPUT} output, so there is nothing to resume",
                hint="resume a command or pipeline job submitted with training.save_steps",
            )
        ]
    status = getattr(job, "status", None)
    status = getattr(status, "value", status)  # azure-ai-ml answers a JobStatus enum or its text
    if status not in SETTLED_STATES:
        return [
            Issue(
                key,
                f"job {source} is {status or 'not finished'}: it may still write checkpoints (a pre-empted "
                "low-priority job restarts and resumes by itself)",
                hint=f"wait for it, or cancel it first: azfinetune cancel {source}",
            )
        ]
    tags = getattr(job, "tags", None) or {}
    ours = {"task": spec.task.value, "technique": spec.method.technique.value}
    return [
        Issue(
            key,
            f"job {source} trained {field} {tags[TAG_PREFIX + field]}; this spec's {field} {value} cannot continue "
            "its checkpoints",
            hint=f"resume it with a spec of {field} {tags[TAG_PREFIX + field]}",
        )
        for field, value in ours.items()
        if tags.get(TAG_PREFIX + field) not in (None, value)
    ]
