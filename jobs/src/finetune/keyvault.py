"""Resolving `--secret NAME=keyvault://vault/secret` into environment variables (values are never printed)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from finetune.args import SecretRef
from finetune.errors import UsageError

log = logging.getLogger("finetune")


def _default_client(vault_url: str) -> Any:
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    # On Azure ML compute the job's user-assigned identity is announced in DEFAULT_IDENTITY_CLIENT_ID.
    credential = DefaultAzureCredential(
        managed_identity_client_id=os.environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    )
    return SecretClient(vault_url=vault_url, credential=credential)


def resolve_secrets(refs: list[SecretRef], client_factory: Callable[[str], Any] | None = None) -> list[str]:
    """Set os.environ[NAME] for each reference; returns the names. Errors name the secret, never its value."""
    factory = client_factory or _default_client
    clients: dict[str, Any] = {}
    names = []
    for ref in refs:
        try:
            client = clients.get(ref.vault_url)
            if client is None:
                client = clients[ref.vault_url] = factory(ref.vault_url)
            value = client.get_secret(ref.secret).value
        except ImportError as exc:
            raise UsageError("--secret needs azure-identity and azure-keyvault-secrets installed") from exc
        except Exception as exc:
            raise UsageError(
                f"--secret {ref.name}: cannot read secret {ref.secret!r} from {ref.vault_url} "
                f"({type(exc).__name__}); give the job's identity 'get' permission on the vault's secrets"
            ) from None
        if value is None:
            raise UsageError(f"--secret {ref.name}: secret {ref.secret!r} in {ref.vault_url} has no value")
        os.environ[ref.name] = value
        names.append(ref.name)
        log.info("secret %s set from %s/%s", ref.name, ref.vault_url, ref.secret)
    return names
