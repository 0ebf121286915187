"""The Kaito side of the job commands: --context / --namespace (which cluster and namespace a Kaito job is in),
the KaitoClient they make, and the flags the next commands need to reach the same Workspace."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from azfinetune.client import KaitoClient
    from azfinetune.spec import FineTuneSpec

__all__ = ["KaitoFlags", "kaito_next_step_flags", "kaito_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class KaitoFlags:
    """One command line's --context / --namespace (None where not given)."""

    context: str | None = None
    namespace: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.context or self.namespace)

    def client(self, spec: FineTuneSpec | None = None) -> KaitoClient:
        """The KaitoClient: these flags, then the spec's target, then the kubeconfig (no network)."""
        from azfinetune.client import KaitoClient

        return KaitoClient.from_config(context=self.context, namespace=self.namespace, spec=spec)


def kaito_options(command: F) -> F:
    """--context / --namespace, handed to the command as one `kaito: KaitoFlags`."""

    @functools.wraps(command)
    def with_kaito(*args: Any, kube_context: str | None, kube_namespace: str | None, **kwargs: Any) -> Any:
        return command(*args, kaito=KaitoFlags(kube_context, kube_namespace), **kwargs)

    options = [
        click.option(
            "--context",
            "kube_context",
            metavar="NAME",
            help="Kaito jobs: the kubeconfig context (default: submit's spec target.context, else the current context).",
        ),
        click.option(
            "--namespace",
            "kube_namespace",
            metavar="NAME",
            help="Kaito jobs: the Kubernetes namespace (default: submit's spec target.namespace, else the context's, else default).",
        ),
    ]
    decorated: Any = with_kaito
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


def kaito_next_step_flags(client: Any) -> str:
    """The flags the next commands need to reach the same Workspace ('' for other clients)."""
    from azfinetune.client import KaitoClient

    if not isinstance(client, KaitoClient):
        return ""
    flags = f" --namespace {client.namespace}"
    if client.context:
        flags += f" --context {client.context}"
    return flags
