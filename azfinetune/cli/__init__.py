"""The azfinetune command line: one click group, one module per command, one error boundary."""

from __future__ import annotations

import sys

import click

from azfinetune._version import __version__
from azfinetune.cli._app import run_with_boundary
from azfinetune.cli.build import build
from azfinetune.cli.cancel import cancel
from azfinetune.cli.data_cmd import data
from azfinetune.cli.demo import demo
from azfinetune.cli.deploy import deploy
from azfinetune.cli.export import export
from azfinetune.cli.import_cmd import import_cmd
from azfinetune.cli.list_cmd import list_jobs
from azfinetune.cli.logs import logs
from azfinetune.cli.plan import plan
from azfinetune.cli.report import report
from azfinetune.cli.run import run
from azfinetune.cli.status import status
from azfinetune.cli.submit import submit
from azfinetune.cli.validate import validate

__all__ = ["COMMANDS", "cli", "main"]

#: Every command, by name (sorted). Each module imports azure.ai.ml, torch and transformers inside the command
#: only, so `--help` and the offline commands stay fast.
COMMANDS: dict[str, click.Command] = {
    "build": build,
    "cancel": cancel,
    "data": data,
    "demo": demo,
    "deploy": deploy,
    "export": export,
    "import": import_cmd,
    "list": list_jobs,
    "logs": logs,
    "plan": plan,
    "report": report,
    "run": run,
    "status": status,
    "submit": submit,
    "validate": validate,
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="azfinetune")
@click.option(
    "--debug",
    is_flag=True,
    help="Show tracebacks and the full detail of Azure errors (also AZFINETUNE_DEBUG=1).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Fine-tune language models on Azure Machine Learning from one spec file.

    \b
    Start here:
      azfinetune demo                         a tiny fine-tune on this machine, no Azure account
      azfinetune validate SPEC                check a spec and its data, offline
      azfinetune plan SPEC                    memory, fit, time and cost before you pay
      azfinetune submit SPEC                  submit to Azure ML (once: repeats return the same job)
    """
    if debug and ctx.obj is not None:
        import logging

        ctx.obj.debug = True
        logging.getLogger("azure.identity").setLevel(logging.WARNING)


#: The commands that take a job, not a spec: their flags' help must not send the user to a spec.
_JOB_COMMANDS = ("cancel", "deploy", "list", "logs", "report", "status")

for _name, _command in COMMANDS.items():
    if _name in _JOB_COMMANDS:
        for _param in _command.params:
            if isinstance(_param, click.Option) and _param.help:
                _param.help = _param.help.replace("else the spec or ", "else ").replace(
                    "else the spec, ", "else "
                )
    cli.add_command(_command, _name)


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_with_boundary(cli))
