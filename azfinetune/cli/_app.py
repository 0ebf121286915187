"""The CLI's application object (consoles, debug flag) and its single error boundary."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from azfinetune.errors import AzFineTuneError, Issue, SpecError

__all__ = ["Application", "run_with_boundary"]


@dataclass
class Application:
    """Passed to every command with @click.pass_obj."""

    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    debug: bool = field(default_factory=lambda: os.environ.get("AZFINETUNE_DEBUG") == "1")
    #: The command line after `azfinetune`, as typed: the printed "next command" hints repeat it (cli/_hints.py).
    argv: list[str] = field(default_factory=list)

    def abort(self, text: str, *, code: int = 2) -> NoReturn:
        self.err.print(f"[red]error:[/red] {escape(text)}")
        raise SystemExit(code)

    def issue(self, issue: Issue) -> None:
        color = "yellow" if issue.severity == "warning" else "red"
        label = "warning" if issue.severity == "warning" else "error"
        self.err.print(f"[{color}]{label}:[/{color}] {escape(str(issue))}")


#: What to do when no Azure credential works: the one short message printed first (the chain with --debug).
CREDENTIAL_HINT = (
    "sign in with `az login` (or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service "
    "principal); run again with --debug to see every credential DefaultAzureCredential tried"
)


def _is_credential_problem(error: BaseException) -> bool:
    """No credential could be had at all (not logged in): a set-up problem of this machine, not a service error."""
    from azfinetune.errors import AuthError

    return isinstance(error, AuthError) and "no usable Azure credential" in error.message


def _print_credential_problem(app: Application, error: AzFineTuneError) -> None:
    app.err.print(f"[red]error:[/red] no usable Azure credential: {escape(CREDENTIAL_HINT)}")
    if app.debug:
        app.err.print(escape(error.message))  # DefaultAzureCredential's chain, once (a traceback repeats it)


def _print_error(app: Application, error: BaseException) -> None:
    if isinstance(error, SpecError):
        head = f"{error.file}: " if error.file else ""
        count = len(error.issues)
        app.err.print(
            f"[red]error:[/red] {escape(head)}{count} problem{'s' if count != 1 else ''} in the spec"
        )
        for issue in error.issues:
            app.err.print(f"  {escape(str(issue))}")
        return
    app.err.print(f"[red]error:[/red] {escape(str(error))}")


def run_with_boundary(group: click.Group, args: list[str] | None = None) -> int:
    """Run the CLI; user errors exit 2, service errors 1, no traceback unless AZFINETUNE_DEBUG=1."""
    app = Application(argv=list(sys.argv[1:] if args is None else args))
    if not app.debug:
        # azure-ai-ml logs "This is an experimental class" for every pipeline entity; users cannot act on it.
        logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
        # azure-identity logs DefaultAzureCredential's whole chain as a warning, before our own message says it.
        logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    try:
        group.main(args=args, standalone_mode=False, obj=app)
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except click.Abort:
        app.err.print("aborted")
        return 130
    except click.ClickException as error:
        error.show(file=sys.stderr)
        return 2 if isinstance(error, click.UsageError | click.BadParameter) else error.exit_code
    except AzFineTuneError as error:
        if _is_credential_problem(error):
            _print_credential_problem(app, error)
            return 2
        if app.debug:
            traceback.print_exc()
        _print_error(app, error)
        return error.exit_code
    except KeyboardInterrupt:
        app.err.print("interrupted")
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as error:  # the one place where anything unexpected is turned into a message
        mapped = _map_foreign(error)
        if mapped is not None and _is_credential_problem(mapped):
            _print_credential_problem(app, mapped)
            return 2
        if app.debug:
            traceback.print_exc()
        if mapped is not None:
            _print_error(app, mapped)
            return mapped.exit_code
        app.err.print(
            f"[red]internal error:[/red] {escape(type(error).__name__)}: {escape(str(error))}\n"
            "  run again with AZFINETUNE_DEBUG=1 for the traceback, and please report it"
        )
        return 1
    return 0


def _map_foreign(error: Exception) -> AzFineTuneError | None:
    """Errors raised by azure-ai-ml / azure-core / marshmallow that escaped the client's own mapping."""
    module = type(error).__module__
    if module.startswith(("azure.", "marshmallow", "msrest")):
        try:
            from azfinetune.client import map_azure_error
        except ImportError:
            return None
        mapped: AzFineTuneError | None = map_azure_error(error)
        return mapped
    return None
