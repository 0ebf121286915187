"""The azfinetune command line: one click group, one module per command, one error boundary."""

from __future__ import annotations

import importlib
import sys

import click

from azfinetune._version import __version__
from azfinetune.cli._app import run_with_boundary

__all__ = ["cli", "main"]

# name -> "module:attribute"; modules import their heavy dependencies inside the command, so --help is instant.
COMMANDS: dict[str, str] = {
    "build": "azfinetune.cli.build:build",
    "cancel": "azfinetune.cli.cancel:cancel",
    "data": "azfinetune.cli.data_cmd:data",
    "demo": "azfinetune.cli.demo:demo",
    "deploy": "azfinetune.cli.deploy:deploy",
    "list": "azfinetune.cli.list_cmd:list_jobs",
    "logs": "azfinetune.cli.logs:logs",
    "plan": "azfinetune.cli.plan:plan",
    "report": "azfinetune.cli.report:report",
    "run": "azfinetune.cli.run:run",
    "status": "azfinetune.cli.status:status",
    "submit": "azfinetune.cli.submit:submit",
    "validate": "azfinetune.cli.validate:validate",
}


class LazyGroup(click.Group):
    """Loads a command's module only when that command (or the command list) is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, "--version", prog_name="azfinetune")
def cli() -> None:
    """Fine-tune language models on Azure Machine Learning from one spec file.

    \b
    Start here:
      azfinetune demo                         a tiny fine-tune on this machine, no Azure account
      azfinetune validate SPEC                check a spec and its data, offline
      azfinetune plan SPEC                    memory, fit, time and cost before you pay
      azfinetune submit SPEC                  submit to Azure ML (once: repeats return the same job)
    """


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_with_boundary(cli))
