"""The Foundry side of the job commands: --foundry-endpoint / --foundry-api-key-env, which client a command gets,
and the Foundry views (token-cost plan, checkpoints report, deploy advice)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from azfinetune.cli._app import Application
    from azfinetune.cli._kaito_flags import KaitoFlags
    from azfinetune.cli.jobs import WorkspaceFlags
    from azfinetune.client import FoundryClient, FoundryReport, JobService
    from azfinetune.planner import TokenPlan
    from azfinetune.spec import FineTuneSpec

__all__ = [
    "FoundryFlags",
    "foundry_next_step_flags",
    "foundry_options",
    "is_foundry",
    "job_client",
    "price_option",
    "print_foundry_deploy",
    "print_foundry_plan",
    "print_foundry_report",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class FoundryFlags:
    """One command line's --foundry-endpoint / --foundry-api-key-env (None where not given)."""

    endpoint: str | None = None
    api_key_env: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.endpoint or self.api_key_env)

    def client(self, spec: FineTuneSpec | None = None) -> FoundryClient:
        """The FoundryClient: these flags, then the spec's target, then AZURE_AI_PROJECT_ENDPOINT (no network)."""
        from azfinetune.client import FoundryClient

        return FoundryClient.from_config(endpoint=self.endpoint, api_key_env=self.api_key_env, spec=spec)


def foundry_options(command: F) -> F:
    """--foundry-endpoint / --foundry-api-key-env, handed to the command as one `foundry: FoundryFlags`."""

    @functools.wraps(command)
    def with_foundry(
        *args: Any, foundry_endpoint: str | None, foundry_api_key_env: str | None, **kwargs: Any
    ) -> Any:
        return command(*args, foundry=FoundryFlags(foundry_endpoint, foundry_api_key_env), **kwargs)

    options = [
        click.option(
            "--foundry-endpoint",
            "foundry_endpoint",
            metavar="URL",
            help="Azure AI Foundry project endpoint for Foundry jobs (else the spec or AZURE_AI_PROJECT_ENDPOINT).",
        ),
        click.option(
            "--foundry-api-key-env",
            "foundry_api_key_env",
            metavar="NAME",
            help="Use the Foundry API key in this environment variable instead of Entra ID (never printed).",
        ),
    ]
    decorated: Any = with_foundry
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


def is_foundry(foundry: FoundryFlags, *, spec: FineTuneSpec | None = None, name: str | None = None) -> bool:
    """Whether the command is about a Foundry job: a foundry spec, a Foundry flag, or an `ftjob-` id."""
    from azfinetune.client import is_foundry_job_id
    from azfinetune.targets import get_target

    if spec is not None:
        return get_target(spec.target.kind).service == "foundry"
    return foundry.given or (name is not None and is_foundry_job_id(name))


def job_client(
    workspace: WorkspaceFlags,
    foundry: FoundryFlags,
    *,
    spec: FineTuneSpec | None = None,
    name: str | None = None,
    kaito: KaitoFlags | None = None,
) -> JobService:
    """The client of the service that runs the job: Kaito's cluster for kaito specs and --context/--namespace,
    Foundry for foundry specs, Foundry flags and `ftjob-` ids, else the Azure ML workspace."""
    from azfinetune.targets import get_target

    if kaito is not None and (
        get_target(spec.target.kind).service == "kaito" if spec is not None else kaito.given
    ):
        return kaito.client(spec)
    if is_foundry(foundry, spec=spec, name=name):
        return foundry.client(spec)
    return workspace.client(spec)


def foundry_next_step_flags(client: Any) -> str:
    """The flag the next commands need to reach the same Foundry endpoint ('' when the environment has it)."""
    from azfinetune.client import ENDPOINT_VARIABLE, FoundryClient

    if (
        not isinstance(client, FoundryClient)
        or os.environ.get(ENDPOINT_VARIABLE, "").rstrip("/") == client.endpoint
    ):
        return ""
    flags = f" --foundry-endpoint {client.endpoint}"
    if client.api_key_env:
        flags += f" --foundry-api-key-env {client.api_key_env}"
    return flags


# -- plan -----------------------------------------------------------------------------------------------------


def price_option(command: F) -> F:
    """--price USD: the training rate (USD per 1M tokens) of the spec's Foundry training type, for `plan`."""
    option = click.option(
        "--price",
        "price",
        type=click.FloatRange(min=0),
        metavar="USD",
        help="Foundry specs: training price in USD per 1M tokens of the spec's training type (the catalog has none).",
    )
    return option(command)


def print_foundry_plan(
    app: Application, spec: FineTuneSpec, *, no_data: bool, exact: bool, price: float | None, as_json: bool
) -> None:
    """`azfinetune plan` for a foundry spec: billed tokens × rate, per training type, and the tier advice."""
    from azfinetune.planner import token_plan

    report, note = (None, None) if no_data else _token_report(spec, exact=exact)
    tier = str(getattr(spec.target, "training_type", "global"))
    result = token_plan(spec, data_report=report, prices={tier: price} if price is not None else None)
    if note:
        result.warnings.append(note)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _render_token_plan(app, result)


def _token_report(spec: FineTuneSpec, *, exact: bool) -> tuple[Any, str | None]:
    """Token counts of the whole examples (the service trains on them untruncated; no max_seq_length)."""
    from azfinetune.data import validate_data
    from azfinetune.errors import AzFineTuneError

    ref = spec.data.train
    path = spec.resolve_path(ref)
    if spec.data.is_remote(ref) or not path.is_file():
        return None, None
    try:
        return (
            validate_data(
                path,
                task=spec.data_kind,
                model=spec.model if exact else None,
                max_seq_length=None,
                serverless=True,
                epochs=spec.training.epochs,
            ),
            None,
        )
    except (AzFineTuneError, OSError, ValueError) as error:
        return None, f"could not count tokens in {path.name} ({error}); estimated from the file size"


def _count(value: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.01" if value < 0.01 else f"{value:,.2f}"


def _render_token_plan(app: Application, result: TokenPlan) -> None:
    out = app.out
    out.print(
        f"[bold]{escape(result.spec_name)}[/bold]: {escape(result.model)} on Azure AI Foundry "
        f"({escape(result.training_type)} training), billed per trained token"
    )
    tokens = result.token_estimate
    per_epoch = _count(tokens.tokens_per_epoch) if tokens.tokens_per_epoch is not None else "unknown"
    out.print(f"  training tokens: {per_epoch} per epoch ({escape(tokens.source)}) × {result.epochs} epochs")
    billed = _count(result.billed_tokens) if result.billed_tokens is not None else "unknown"
    out.print(f"  billed tokens: {billed}")
    cost = f"{_usd(result.cost_usd)} USD" if result.cost_usd is not None else "unknown"
    out.print(f"  cost: {cost} ({escape(result.cost_note)})")
    table = Table(title="Training types", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("training type", "offered", "USD / 1M tokens", "rate from", "USD"):
        table.add_column(column, justify="right" if "USD" in column else "left")
    for tier in result.tiers:
        mark = "→ " if tier.training_type == result.training_type else ""
        table.add_row(
            f"{mark}{escape(tier.title)}",
            "yes" if tier.offered else "no",
            "—" if tier.rate_usd_per_1m is None else f"{tier.rate_usd_per_1m:g}",
            escape(tier.rate_basis),
            _usd(tier.cost_usd),
        )
    out.print()
    out.print(table)
    if result.recommendations:
        out.print()
        out.print("[bold]Recommendations[/bold]")
        for line in result.recommendations:
            out.print(f"  • {escape(line)}")
    for warning in result.warnings:
        app.err.print(f"[yellow]warning:[/yellow] {escape(warning)}")


# -- report and deploy ----------------------------------------------------------------------------------------


def print_foundry_report(app: Application, report: FoundryReport, *, as_json: bool) -> None:
    """`azfinetune report ftjob-...`: the job, its metrics and its checkpoints (the deployable ones)."""
    from azfinetune.cli.jobs import job_details

    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    app.out.print(job_details(report.info))
    if report.metrics:
        metrics = Table(title="Metrics (last results.csv row)", title_justify="left", show_edge=False)
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for key, value in report.metrics.items():
            metrics.add_row(escape(key), f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
        app.out.print()
        app.out.print(metrics)
    app.out.print()
    if not report.checkpoints:
        app.out.print("no checkpoints (the service lists them once the job has finished)")
        return
    table = Table(title="Checkpoints", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("step", "checkpoint model", "metrics"):
        table.add_column(column, overflow="fold")
    for checkpoint in report.checkpoints:
        values = checkpoint.get("metrics") or {}
        shown = ", ".join(
            f"{k}={v:g}" for k, v in values.items() if k != "step" and isinstance(v, int | float)
        )
        table.add_row(
            str(checkpoint.get("step_number", "")),
            escape(str(checkpoint.get("fine_tuned_model_checkpoint", ""))),
            escape(shown),
        )
    app.out.print(table)


def print_foundry_deploy(
    app: Application, client: FoundryClient, name: str, *, deployment: str | None
) -> None:
    """Deploying a Foundry fine-tune: what the service offers for the job's model (the portal for open models, an
    Azure OpenAI deployment for OpenAI models)."""
    from azfinetune.catalog import find_foundry_model
    from azfinetune.errors import UserInputError

    info = client.get(name)
    data = info.job or {}
    model_name = data.get("fine_tuned_model")
    if info.status != "Completed" or not model_name:
        raise UserInputError(
            f"job {name} is {info.status}; only a job that succeeded has a model to deploy",
            hint=f"azfinetune logs {name} --follow",
        )
    base = find_foundry_model(str(data.get("model", "")))
    if base is None or not base.deploy_api:
        raise UserInputError(
            f"Azure AI Foundry offers no API to deploy a fine-tuned {data.get('model')}: deploy {model_name} from the "
            "Foundry portal (Fine-tuning > the job > Deploy: serverless, managed compute or Fireworks)",
            hint="azfinetune report " + name + " lists its checkpoints",
        )
    target = deployment or str(data.get("suffix") or name)
    sku = {"Standard": "Standard", "developerTier": "DeveloperTier"}.get(
        str(data.get("trainingType")), "GlobalStandard"
    )
    app.out.print(f"[green]✓[/green] {escape(name)} fine-tuned {escape(str(model_name))}; deploy it with:")
    click.echo(
        "  az cognitiveservices account deployment create -g <resource-group> -n <foundry-resource> "
        f"--deployment-name {target} --model-name {model_name} --model-version 1 --model-format OpenAI "
        f"--sku-name {sku} --sku-capacity 1"
    )
