"""``reconciler webhooks``: list the organization's webhooks, remove the ones a killed apply left
(which are the reconciler's: reconciler.webhook_registration)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import connection_from, connection_options, format_option
from reconciler.cli.terminal import note
from reconciler.connection import Connection, open_client
from reconciler.errors import ReconcilerError
from reconciler.locations import command, default_state
from reconciler.views.webhooks import webhook_rows, webhooks_json, webhooks_text
from reconciler.webhook_registration import is_ours


@dataclass(frozen=True)
class _Target:
    """The platform these commands talk to, and the state a hint's command would name."""

    connection: Connection

    @property
    def sandbox_dir(self) -> Path | None:
        return self.connection.sandbox_dir

    @property
    def state_path(self) -> Path:
        return default_state(sandbox=self.connection.sandbox)


@click.group("webhooks")
def webhooks_group() -> None:
    """The webhooks 'apply --webhook-listen' registers: list them, remove ones a killed run left."""


@webhooks_group.command("list")
@connection_options
@format_option("text", "json")
def list_command(fmt: str, **kw: Any) -> None:
    """The organization's webhooks; the reconciler's own are marked (secrets are never shown)."""
    target = _Target(connection_from(kw))
    with ExitStack() as stack:
        hooks = open_client(target.connection, stack, note if fmt == "text" else None).list_webhooks()
    rows = webhook_rows(hooks, is_ours)
    click.echo(webhooks_json(rows) if fmt == "json" else webhooks_text(rows, command(target, "webhooks rm")))


@webhooks_group.command("rm")
@click.argument("uuids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every webhook the reconciler made (none other).")
@connection_options
def rm_command(uuids: tuple[str, ...], everything: bool, **kw: Any) -> None:
    """Remove webhooks the reconciler made; any other is refused and left alone."""
    target = _Target(connection_from(kw))
    listing = f"'{command(target, 'webhooks list')}' shows which webhooks are the reconciler's"
    if not uuids and not everything:
        raise ReconcilerError("name the webhooks to remove, or pass --all", hint=listing)
    with ExitStack() as stack:
        client = open_client(target.connection, stack, note)
        hooks = {h.uuid: h for h in client.list_webhooks()}
        chosen = [h for h in hooks.values() if is_ours(h)] if everything else []
        unknown = [u for u in uuids if u not in hooks]
        foreign = [u for u in uuids if u in hooks and not is_ours(hooks[u])]
        if unknown or foreign:
            problems = [f"no webhook {u} in this organization" for u in unknown] + [
                f"{u} ({hooks[u].name or 'no name'}) was not made by the reconciler" for u in foreign
            ]
            raise ReconcilerError("nothing removed: " + "; ".join(problems), hint=listing)
        chosen += [hooks[u] for u in uuids if hooks[u] not in chosen]
        for hook in chosen:
            client.delete_webhook(hook.uuid)
            click.echo(f"Removed webhook {hook.uuid} ({hook.url or '-'}).")
    if not chosen:
        click.echo("No webhooks of the reconciler's to remove.")
