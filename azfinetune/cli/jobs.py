"""What the workspace commands share: the workspace flags, the client they make, job tables and JSON output."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from azfinetune.cli._app import Application
    from azfinetune.client import FineTuneClient, JobInfo
    from azfinetune.spec import FineTuneSpec

__all__ = [
    "STATUS_STYLES",
    "WorkspaceFlags",
    "echo_json",
    "job_details",
    "job_table",
    "job_workspace_options",
    "next_steps",
    "parse_since",
    "styled_status",
    "workspace_options",
]

F = TypeVar("F", bound=Callable[..., Any])

STATUS_STYLES = {
    "Completed": "green",
    "Running": "cyan",
    "Finalizing": "cyan",
    "Starting": "cyan",
    "Preparing": "cyan",
    "Provisioning": "cyan",
    "Queued": "yellow",
    "NotStarted": "yellow",
    "CancelRequested": "magenta",
    "Canceled": "magenta",
    "Failed": "red",
    "NotResponding": "red",
}


@dataclass(frozen=True)
class WorkspaceFlags:
    """One command line's --subscription / --resource-group / --workspace (None where not given)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None

    def client(self, spec: FineTuneSpec | None = None) -> FineTuneClient:
        """The FineTuneClient for these flags, then the spec, the environment, config.json (no network yet)."""
        from azfinetune.client import FineTuneClient

        return FineTuneClient.from_config(
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            workspace_name=self.workspace_name,
            spec=spec,
        )


def job_workspace_options(command: F) -> F:
    """workspace_options for the commands that take a job, not a spec: their help does not mention a spec."""
    return workspace_options(command, spec=False)


def workspace_options(command: F, *, spec: bool = True) -> F:
    """--subscription / --resource-group / --workspace, handed to the command as one `workspace: WorkspaceFlags`.

    The flags win over the spec, the environment and config.json.
    """
    before = "the spec, " if spec else ""

    @functools.wraps(command)
    def with_workspace(
        *args: Any,
        subscription_id: str | None,
        resource_group: str | None,
        workspace_name: str | None,
        **kwargs: Any,
    ) -> Any:
        workspace = WorkspaceFlags(subscription_id, resource_group, workspace_name)
        return command(*args, workspace=workspace, **kwargs)

    options = [
        click.option(
            "--subscription",
            "subscription_id",
            metavar="ID",
            help=f"Azure subscription id (else {before}AZURE_SUBSCRIPTION_ID or config.json).",
        ),
        click.option(
            "--resource-group",
            "resource_group",
            metavar="NAME",
            help=f"Resource group (else {before}AZURE_RESOURCE_GROUP or config.json).",
        ),
        click.option(
            "--workspace",
            "workspace_name",
            metavar="NAME",
            help=f"Azure ML workspace (else {before}AZUREML_WORKSPACE_NAME or config.json).",
        ),
    ]
    decorated: Any = with_workspace
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


def echo_json(data: Any) -> None:
    """JSON for machines: plain click.echo (rich would treat [..] as markup and wrap long lines)."""
    click.echo(json.dumps(data, indent=2, default=str))


def styled_status(status: str | None) -> str:
    text = status or "unknown"
    style = STATUS_STYLES.get(text)
    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def job_table(infos: Iterable[JobInfo]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "STATUS", "KIND", "SPEC", "CREATED", "COMPUTE"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(
            escape(info.name),
            styled_status(info.status),
            escape(info.kind or ""),
            escape(info.spec_name or ""),
            _when(info.created_at),
            escape(info.compute or ""),
        )
    return table


def job_details(info: JobInfo) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("name", escape(info.name)),
        ("status", styled_status(info.status)),
        ("kind", escape(info.kind or "")),
        ("spec", escape(info.spec_name or "")),
        ("spec hash", escape((info.spec_hash or "")[:12])),
        ("created", _when(info.created_at)),
        ("compute", escape(info.compute or "")),
        ("studio", escape(info.studio_url or "")),
    ]
    if info.error:
        rows.append(("error", f"[red]{escape(info.error)}[/red]"))
    for key, value in rows:
        if value:
            table.add_row(key, value)
    return table


def next_steps(app: Application, name: str, *, flags: str = "") -> None:
    """The commands a user wants next (SkyPilot's habit), each with the flags that reach the job: the ones typed
    on this command line (--workspace, --foundry-endpoint, ...), else `flags` (what the client was made with)."""
    import shlex

    from azfinetune.cli._hints import reach_flags

    reach = reach_flags() or shlex.split(flags)
    for label, command in (
        ("To stream logs:   ", ["logs", name, "--follow"]),
        ("To check status:  ", ["status", name]),
        ("To cancel:        ", ["cancel", name]),
    ):
        app.out.print(label + escape(shlex.join(["azfinetune", *command, *reach])), soft_wrap=True)


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> datetime | timedelta:
    """'30m', '12h', '2d', '1w' (back from now) or an ISO date/time ('2025-06-01', '2025-06-01T12:00')."""
    match = _SINCE.match(value)
    if match:
        amount, unit = match.groups()
        return timedelta(**{_UNITS[unit.lower()]: float(amount)})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 12h, 2d, 1w) nor a date (2025-06-01[T12:00])",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
