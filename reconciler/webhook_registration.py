"""The temporary webhooks ``apply --webhook-listen`` registers, and how the ones a killed run left
are told apart (the commands that list and remove them are reconciler.cli.webhooks).

apply registers a webhook named ``WEBHOOK_NAME`` for the run and removes it when the run ends.
A run killed with SIGKILL cannot, and the platform then refuses the next registration at the
same URL with 409 ``WEBHOOK_ALREADY_EXISTS`` (issue 13). So:

* ``register`` (used by apply) creates the run's webhook; on a 409 it lists the organization's
  webhooks, and if the one at that URL is the reconciler's (by name and URL) it is replaced:
  deleted, then created anew with a fresh secret, so nothing signed for the old one verifies.
  A webhook at that URL that the reconciler did not make is never touched: apply stops and
  says how to listen elsewhere.
* ``reconciler webhooks list`` shows the organization's webhooks and which are the
  reconciler's; ``reconciler webhooks rm UUID... | --all`` removes the reconciler's own, and
  refuses any other. Secrets are never shown.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from reconciler.errors import ConfigError, PermanentApiError

if TYPE_CHECKING:  # types only: the client loads httpx and its models (start-up time)
    from reconciler.client.wire import Webhook
    from reconciler.client_protocols import WebhookClient

WEBHOOK_NAME = "reconciler apply"
"""The name apply gives every webhook it registers: how the reconciler knows its own."""


def is_ours(hook: Webhook) -> bool:
    """Whether the reconciler made this webhook: apply names every one it registers so."""
    return (hook.name or "").strip() == WEBHOOK_NAME


def _same_url(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/").lower() == b.rstrip("/").lower()


def register(client: WebhookClient, url: str, events: list[str]) -> tuple[Webhook, list[str]]:
    """Create apply's webhook at ``url``; (the webhook, uuids of stale ones of ours replaced).

    ConfigError when a webhook the reconciler did not make holds the URL."""
    description = (
        f"made by reconciler apply on {socket.gethostname()} (pid {os.getpid()}) for one run; "
        "removed when the run ends ('reconciler webhooks rm' removes one a killed run left)"
    )
    try:
        return client.create_webhook(url=url, events=events, name=WEBHOOK_NAME, description=description), []
    except PermanentApiError as exc:
        if exc.status != 409 and "WEBHOOK_ALREADY_EXISTS" not in exc.codes:
            raise
    there = [h for h in client.list_webhooks() if _same_url(h.url, url)]
    foreign = [h for h in there if not is_ours(h)]
    if foreign:
        names = ", ".join(f"{h.uuid} ({h.name or 'no name'})" for h in foreign)
        raise ConfigError(
            f"a webhook the reconciler did not make is registered at {url}: {names}; it was left alone",
            hint="listen on another address: --webhook-listen HOST:OTHER_PORT (and --webhook-url if the public "
            "address differs)",
        )
    for hook in there:
        try:
            client.delete_webhook(hook.uuid)
        except PermanentApiError as exc:
            if exc.status != 404:  # gone meanwhile is what we wanted
                raise
    hook = client.create_webhook(url=url, events=events, name=WEBHOOK_NAME, description=description)
    return hook, [h.uuid for h in there]
