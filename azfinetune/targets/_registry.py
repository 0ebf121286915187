"""The registry of target kinds: TARGETS (one line per kind), and what needs all of them (the shared task and
technique check that names the kinds that do train something, `as_local`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from azfinetune.errors import Issue, UserInputError
from azfinetune.spec import TARGET_MODELS, FineTuneSpec, LocalTarget, Objective
from azfinetune.targets import (
    command,
    finetuning_job,
    foundry,
    kaito,
    local,
    pipeline,
    registry_pipeline,
    serverless,
)
from azfinetune.targets._onnx_export import onnx_export_issues
from azfinetune.targets._protocol import RULES_DATE, Target

__all__ = ["TARGETS", "as_local", "get_target", "target_issues"]

#: target.kind -> its target. One line per kind; the spec's union (TARGET_MODELS) has the same kinds.
TARGETS: dict[str, Target] = {
    "local": local.TARGET,
    "command": command.TARGET,
    "pipeline": pipeline.TARGET,
    "registry-pipeline": registry_pipeline.TARGET,
    "serverless": serverless.TARGET,
    "finetuning-job": finetuning_job.TARGET,
    "foundry": foundry.TARGET,
    "kaito": kaito.TARGET,
}
assert list(TARGETS) == list(TARGET_MODELS), "every target kind of the spec has a target, and no other"


def get_target(kind: str) -> Target:
    """The target of a kind (`spec.target.kind`)."""
    return TARGETS[kind]


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _supported(target: Target, spec: FineTuneSpec) -> Iterator[Issue]:
    """The task and technique must be ones the target trains; the hint names the kinds that do."""
    if spec.task not in target.tasks:
        others = [kind for kind, other in TARGETS.items() if spec.task in other.tasks]
        yield Issue(
            "task",
            f"target.kind {target.kind} does not train {spec.task.value}",
            hint=f"target.kind {_and(others)} trains it" if others else None,
        )
    technique = spec.method.technique
    if technique not in target.techniques:
        others = [kind for kind, other in TARGETS.items() if technique in other.techniques]
        can = ", ".join(sorted(t.value for t in target.techniques))
        yield Issue(
            "method.technique",
            f"target.kind {target.kind} cannot do {technique.value} (it does {can})",
            hint=f"use target.kind {_and(others)} for {technique.value}" if others else None,
        )
    objective = spec.method.objective
    if objective not in target.objectives:
        others = [kind for kind, other in TARGETS.items() if objective in other.objectives]
        can = ", ".join(o.value for o in Objective if o in target.objectives)
        yield Issue(
            "method.objective",
            f"target.kind {target.kind} cannot train with the {objective.value} objective (it trains {can})",
            hint=f"use target.kind {_and(others)} for {objective.value}" if others else None,
        )


def target_issues(spec: FineTuneSpec, *, today: dt.date | None = None) -> list[Issue]:
    """Every offline problem the spec's target finds (errors and warnings), without positions; dated rules
    (retired offers and VM sizes) judge by `today` (default: the real today)."""
    target = get_target(spec.target.kind)
    token = RULES_DATE.set(today)
    try:
        issues = list(_supported(target, spec))
        issues.extend(target.rules(spec))
        issues.extend(onnx_export_issues(spec, runs_our_code=target.runs_our_code))
    finally:
        RULES_DATE.reset(token)
    return issues


def as_local(spec: FineTuneSpec) -> FineTuneSpec:
    """The spec as `azfinetune run SPEC --local` runs it: the same job on this machine (target.kind local).

    Only kinds that run this project's job code can; Azure's own training code (registry pipelines, fine-tuning
    jobs) cannot run here, which is a UserInputError naming the kinds that can."""
    target = get_target(spec.target.kind)
    if spec.target.kind == "local":
        return spec
    if not target.runs_our_code:
        ours = [kind for kind, other in TARGETS.items() if other.runs_our_code]
        raise UserInputError(
            f"target.kind {spec.target.kind} runs Azure's own training code, which cannot run on this machine",
            hint=f"--local runs specs of target.kind {_and(ours)}",
        )
    local = spec.model_copy(update={"target": LocalTarget()})
    return local
