"""The target protocol: what every target kind provides, and the base class the built-in kinds share."""

from __future__ import annotations

import abc
import contextvars
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from azfinetune.errors import Issue
from azfinetune.spec import FineTuneSpec, Objective, TargetModel, Task, Technique
from azfinetune.targets._common import AZURE_CODE_KINDS
from azfinetune.targets._entrypoint import entrypoint_value_sources
from azfinetune.targets._export import ExportFormat, export_job
from azfinetune.targets._provenance import ValueSource
from azfinetune.targets._rules import common_rules

__all__ = ["ExportFormat", "Target", "TargetBase", "WorkspaceSession"]


#: The date the rules judge by (retired offers and VM sizes); today unless `target_issues(today=...)` says.
RULES_DATE: contextvars.ContextVar[dt.date | None] = contextvars.ContextVar(
    "azfinetune_rules_date", default=None
)


@runtime_checkable
class WorkspaceSession(Protocol):
    """What a target's pre-submit step may use: the workspace's MLClient and a client of a registry."""

    @property
    def ml_client(self) -> Any: ...

    def registry_client(self, registry: str) -> Any: ...


@runtime_checkable
class Target(Protocol):
    """One target kind: its fields, what it trains, its offline rules, its build, export and pre-submit step.

    `rules` yields every problem that can be found offline (errors and warnings, with key paths); a spec whose
    rules yield no error builds, and the built job's own argument parser and preflight accept it. `build`
    returns the job (an azure.ai.ml entity for Azure ML kinds) and raises only for internal faults. `export`
    renders a built job as text (YAML for the platform's own CLI, or the request body as JSON). `presubmit`
    runs the checks that need the service (region, subscriptions, pinning `latest`) just before the one create."""

    @property
    def kind(self) -> str: ...

    @property
    def fields(self) -> type[TargetModel]: ...

    @property
    def summary(self) -> str: ...

    @property
    def tasks(self) -> frozenset[Task]: ...

    @property
    def techniques(self) -> frozenset[Technique]: ...

    @property
    def objectives(self) -> frozenset[Objective]:
        """What the kind's training can optimize (method.objective): sft, and the preference objectives it runs."""
        ...

    @property
    def service(self) -> str:
        """Which service's client submits and follows its jobs: "azureml", "local" (or a later platform's)."""
        ...

    @property
    def runs_our_code(self) -> bool:
        """Whether the job runs this project's jobs/src (so `azfinetune run SPEC --local` can run it here)."""
        ...

    def rules(self, spec: FineTuneSpec) -> Iterator[Issue]: ...

    def build(self, spec: FineTuneSpec) -> Any: ...

    def export(self, job: Any, *, base_dir: Path, format: ExportFormat = "yaml") -> str: ...

    def presubmit(self, session: WorkspaceSession, spec: FineTuneSpec, job: Any) -> None: ...

    def value_sources(self, spec: FineTuneSpec) -> list[ValueSource]:
        """Every setting the job carries (or leaves to the other side): its effective value and its source."""
        ...


class TargetBase(abc.ABC):
    """Shared behaviour of the built-in kinds: the catalog rules, the export of azure.ai.ml jobs, no pre-submit."""

    kind: ClassVar[str]
    fields: ClassVar[type[TargetModel]]
    summary: ClassVar[str]
    tasks: ClassVar[frozenset[Task]] = frozenset(Task)
    techniques: ClassVar[frozenset[Technique]] = frozenset(Technique)
    #: Supervised only unless a kind says it runs a preference objective (its trainer must implement it).
    objectives: ClassVar[frozenset[Objective]] = frozenset({Objective.SFT})
    runs_our_code: ClassVar[bool] = False
    service: ClassVar[str] = "azureml"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str):
            # The job name's fingerprint leaves jobs/src out for these (targets._common.spec_fingerprint).
            if cls.runs_our_code:
                AZURE_CODE_KINDS.discard(kind)
            else:
                AZURE_CODE_KINDS.add(kind)

    def rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        yield from common_rules(spec, today=self.today(), our_code=self.runs_our_code)
        yield from self.own_rules(spec)

    def own_rules(self, spec: FineTuneSpec) -> Iterator[Issue]:
        """The kind's own offline rules (besides the catalog rules every kind applies)."""
        return iter(())

    def today(self) -> dt.date:
        return RULES_DATE.get() or dt.date.today()

    @abc.abstractmethod
    def build(self, spec: FineTuneSpec) -> Any:
        """The job for a spec whose rules found no error."""

    def export(self, job: Any, *, base_dir: Path, format: ExportFormat = "yaml") -> str:
        return export_job(job, format, base_dir=base_dir)

    def presubmit(self, session: WorkspaceSession, spec: FineTuneSpec, job: Any) -> None:
        return None

    def value_sources(self, spec: FineTuneSpec) -> list[ValueSource]:
        """Our own entry point's flags (spec or azfinetune default) for the kinds that run our code."""
        return entrypoint_value_sources(spec) if self.runs_our_code else []

    def __repr__(self) -> str:
        return f"<target {self.kind}>"
