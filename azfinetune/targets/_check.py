"""check_spec(): every offline check of a spec in one call — fields, the target's rules, files, data, the plan.

`validate`, `build`, `submit` and `run` all start here, so the same spec gets the same verdict from each of them,
and a spec this accepts builds (the invariant tests in tests/targets/test_invariants.py hold us to it)."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azfinetune.catalog import known_max_seq_length
from azfinetune.data import validate_data
from azfinetune.errors import Issue, PlanError, SpecError
from azfinetune.planner import plan
from azfinetune.spec import FineTuneSpec, load_spec, model_kind
from azfinetune.targets._entrypoint import data_columns
from azfinetune.targets._registry import target_issues

if TYPE_CHECKING:
    from azfinetune.data import DataReport

__all__ = ["ALLOW_NO_FIT", "CheckReport", "check_spec", "file_issues"]

_GIB = 1024**3

#: Set by `--allow-no-fit` (validate, submit, build): a plan whose optimistic estimate exceeds the GPU memory is
#: then a warning, not an error, for users who know better than the planner.
ALLOW_NO_FIT: contextvars.ContextVar[bool] = contextvars.ContextVar("azfinetune_allow_no_fit", default=False)


@dataclass
class CheckReport:
    """What `azfinetune validate` found for one spec."""

    spec: FineTuneSpec
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    data_reports: dict[str, DataReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(report.ok for report in self.data_reports.values())

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecError(self.errors, file=self.spec.source)


def check_spec(
    spec: FineTuneSpec | str | Path,
    *,
    overrides: list[str] | Mapping[str, Any] | None = None,
    data: bool = True,
) -> CheckReport:
    """Load (if a path) and check a spec offline. Field errors raise SpecError at load time; the target's rules,
    missing files, data problems and a plan that cannot fit are collected in the report, each with its key,
    file, line and column."""
    if not isinstance(spec, FineTuneSpec):
        spec = load_spec(spec, overrides=overrides)
    report = CheckReport(spec=spec)
    for issue in target_issues(spec):
        located = _locate(spec, issue)
        (report.errors if located.is_error else report.warnings).append(located)
    report.errors.extend(_locate(spec, issue) for issue in file_issues(spec))
    if data and not report.errors:
        report.data_reports = _validate_data_files(spec)
    if not report.errors:
        for issue in _plan_warnings(spec, report.data_reports.get("train")):
            (report.errors if issue.is_error else report.warnings).append(issue)
    return report


def file_issues(spec: FineTuneSpec) -> list[Issue]:
    """Local files the spec names that do not exist (data files; the model folder is the local target's)."""
    issues: list[Issue] = []
    for role, ref in spec.data.local_files().items():
        path = spec.resolve_path(ref)
        try:
            is_file, is_dir = path.is_file(), path.is_dir()
        except OSError as error:  # a name too long for the file system, a symlink loop, ...
            issues.append(Issue(f"data.{role}", f"cannot read {ref!r}: {error.strerror or error}"))
            continue
        if not is_file:
            what = "is a folder, not a file" if is_dir else "does not exist"
            issues.append(
                Issue(f"data.{role}", f"{path} {what}", hint="paths are relative to the spec file's folder")
            )
    return issues


def _plan_warnings(spec: FineTuneSpec, data_report: Any) -> list[Issue]:
    """A warning when the planner says the job will not fit the GPUs it asks for."""
    if not spec.target.resources().instance_type:
        return []
    try:
        result = plan(spec, data_report=data_report)
    except PlanError:
        return []
    if result.fits is not False:
        return []
    advice = result.recommendations[0] if result.recommendations else "see `azfinetune plan` for what fits"
    # The optimistic estimate: the model states alone (weights, gradients, optimizer), no activations, buffers
    # or CUDA context. When even that exceeds the GPU, the job cannot start: an error, not a warning.
    floor = sum(item.bytes for item in result.items if item.group == "model states")
    capacity = result.capacity or 0
    if capacity and floor > capacity and not ALLOW_NO_FIT.get():
        return [
            _locate(
                spec,
                Issue(
                    "target.instance_type",
                    f"the job cannot fit: even the optimistic estimate (model states only) is "
                    f"{floor / _GIB:.1f} GiB per GPU, the GPU has {capacity / _GIB:.1f} GiB "
                    f"(full estimate {result.total / _GIB:.1f} GiB)",
                    hint="; ".join(
                        [*result.recommendations[1:4], "or pass --allow-no-fit if you know better"]
                    ),
                ),
            )
        ]
    return [
        _locate(
            spec,
            Issue(
                "target.instance_type",
                f"the plan does not fit: {result.total / _GIB:.1f} GiB per GPU needed, "
                f"{(result.capacity or 0) / _GIB:.1f} GiB available",
                hint=str(advice),
                severity="warning",
            ),
        )
    ]


def _locate(spec: FineTuneSpec, issue: Issue) -> Issue:
    if issue.line is not None:
        return issue
    position = spec.position(issue.path)
    if position is None:
        return issue.located(spec.source, None)
    return issue.located(spec.source, position[0], position[1])


def _validate_data_files(spec: FineTuneSpec) -> dict[str, DataReport]:
    reports: dict[str, DataReport] = {}
    # Every file is read with the columns found in the training file: the names the job is given.
    columns = data_columns(spec) or None
    serverless = spec.target.resources().billing == "serverless"
    model = (
        spec.resolve_path(spec.model)
        if spec.target.kind == "local" and model_kind(spec.model) == "local"
        else None
    )
    for role, ref in spec.data.local_files().items():
        reports[role] = validate_data(
            spec.resolve_path(ref),
            task=spec.data_kind,
            model=str(model) if model else None,
            max_seq_length=known_max_seq_length(spec.training.max_seq_length, spec.model),
            columns=columns,
            serverless=serverless,
            epochs=spec.training.epochs,
        )
    return reports
