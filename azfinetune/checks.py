"""check_spec(): every offline check of a spec in one call — fields, rules, files, data — for validate/submit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azfinetune.errors import SpecError, Issue
from azfinetune.spec import FineTuneSpec, file_issues, load_spec, spec_warnings

__all__ = ["CheckReport", "check_spec"]


@dataclass
class CheckReport:
    """What `azfinetune validate` found for one spec."""

    spec: FineTuneSpec
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    data_reports: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(getattr(r, "ok", True) for r in self.data_reports.values())

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecError(self.errors, file=self.spec.source)


def check_spec(
    spec: FineTuneSpec | str | Path, *, overrides: list[str] | None = None, data: bool = True
) -> CheckReport:
    """Load (if a path) and check a spec offline. Field and rule errors raise SpecError at load time;
    missing files and data problems are collected in the report."""
    if not isinstance(spec, FineTuneSpec):
        spec = load_spec(spec, overrides=overrides)
    report = CheckReport(spec=spec, warnings=spec_warnings(spec))
    report.errors.extend(_locate(spec, issue) for issue in file_issues(spec))
    if data and not report.errors:
        report.data_reports = _validate_data_files(spec)
    report.warnings.extend(_plan_warnings(spec, report.data_reports.get("train")))
    return report


def _plan_warnings(spec: FineTuneSpec, data_report: Any) -> list[Issue]:
    """A warning when the planner says the job will not fit the GPUs it asks for (validate does not fail)."""
    if not spec.target.instance_type:
        return []
    from azfinetune.errors import PlanError
    from azfinetune.planner import plan

    try:
        result = plan(spec, data_report=data_report)
    except PlanError:
        return []
    if result.fits is not False:
        return []
    gib = 1024**3
    advice = result.recommendations[0] if result.recommendations else "see `azfinetune plan` for what fits"
    return [
        _locate(
            spec,
            Issue(
                "target.instance_type",
                f"the plan does not fit: {result.total / gib:.1f} GiB per GPU needed, "
                f"{(result.capacity or 0) / gib:.1f} GiB available",
                hint=str(advice),
                severity="warning",
            ),
        )
    ]


def _locate(spec: FineTuneSpec, issue: Issue) -> Issue:
    if issue.line is not None:
        return issue
    position = spec.position(issue.path)
    return Issue(
        issue.path,
        issue.message,
        file=spec.source,
        line=position[0] if position else None,
        column=position[1] if position else None,
        hint=issue.hint,
        severity=issue.severity,
    )


def _validate_data_files(spec: FineTuneSpec) -> dict[str, Any]:
    try:
        from azfinetune.data import validate_data
    except ImportError:  # pragma: no cover - data validation is part of the package
        return {}
    reports: dict[str, Any] = {}
    columns = spec.data.columns.as_dict() if spec.data.columns else None
    serverless = spec.target.kind.value == "serverless"
    model = spec.resolve_path(spec.model) if spec.target.kind.value == "local" and "/" in spec.model else None
    for role, ref in spec.data.local_files().items():
        reports[role] = validate_data(
            spec.resolve_path(ref),
            task=spec.task.value,
            model=str(model) if model else None,
            max_seq_length=spec.training.max_seq_length,
            columns=columns,
            serverless=serverless,
            epochs=spec.training.epochs,
        )
    return reports
