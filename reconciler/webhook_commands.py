"""The temporary webhooks ``apply --webhook-listen`` registers, and the ones a killed run left.

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

import json
import os
import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from reconciler.applying import DEFAULT_STATE, SANDBOX_STATE, ApplyRequest, _client, command
from reconciler.cli import api_options
from reconciler.errors import ConfigError, PermanentApiError, ReconcilerError

WEBHOOK_NAME = "reconciler apply"
"""The name apply gives every webhook it registers: how the reconciler knows its own."""


def is_ours(hook: Any) -> bool:
    """Whether the reconciler made this webhook: apply names every one it registers so."""
    return (hook.name or "").strip() == WEBHOOK_NAME


def _same_url(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/").lower() == b.rstrip("/").lower()


def register(client: Any, url: str, events: list[str]) -> tuple[Any, list[str]]:
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


@click.group("webhooks")
def webhooks_group() -> None:
    """The webhooks 'apply --webhook-listen' registers: list them, remove ones a killed run left."""


def _request(kw: dict[str, Any], fmt: str = "text") -> ApplyRequest:
    """The platform to talk to, from the shared API options (as plan and apply take them)."""
    sandbox = kw["sandbox"]
    flags = {k: kw[k] for k in ("api_url", "organization_uuid", "client_uuid", "download_route")}
    if sandbox and (
        flags["api_url"] or flags["organization_uuid"] or flags["client_uuid"] or kw["config_path"]
    ):
        raise ReconcilerError(
            "--sandbox chooses the platform itself; it cannot be combined with --api-url, "
            "--organization, --workspace or --config"
        )
    return ApplyRequest(
        manifests=[Path("manifests")],
        state_path=SANDBOX_STATE if sandbox else DEFAULT_STATE,
        sandbox_dir=kw["sandbox_dir"] if sandbox else None,
        config_path=kw["config_path"],
        verbose=kw["verbose"],
        flags=flags,
        fmt=fmt,
    )


@webhooks_group.command("list")
@api_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(**kw: Any) -> None:
    """The organization's webhooks; the reconciler's own are marked (secrets are never shown)."""
    fmt = kw.pop("fmt")
    req = _request(kw, fmt)
    with ExitStack() as stack:
        hooks = _client(req, stack).list_webhooks()
    rows = [
        {
            "uuid": h.uuid,
            "name": h.name,
            "url": h.url,
            "disabled": bool(h.disable),
            "reconciler": is_ours(h),
            "created": h.created.isoformat() if h.created else None,
        }
        for h in hooks
    ]
    if fmt == "json":
        click.echo(json.dumps({"webhooks": rows}, indent=2))
        return
    if not rows:
        click.echo("No webhooks in this organization.")
        return
    for r in rows:
        mark = "reconciler" if r["reconciler"] else "not ours  "
        click.echo(
            f"{mark}  {r['uuid']}  {r['name'] or '-'}  {r['url'] or '-'}"
            + ("  (disabled)" if r["disabled"] else "")
        )
    ours = sum(1 for r in rows if r["reconciler"])
    if ours:
        click.echo(
            f"{ours} made by the reconciler: an apply removes its own when it ends; one left by a killed run "
            f"goes with '{command(req, 'webhooks rm')} UUID' (or --all)."
        )


@webhooks_group.command("rm")
@click.argument("uuids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every webhook the reconciler made (none other).")
@api_options
def rm_command(uuids: tuple[str, ...], everything: bool, **kw: Any) -> None:
    """Remove webhooks the reconciler made; any other is refused and left alone."""
    req = _request(kw)
    listing = f"'{command(req, 'webhooks list')}' shows which webhooks are the reconciler's"
    if not uuids and not everything:
        raise ReconcilerError("name the webhooks to remove, or pass --all", hint=listing)
    with ExitStack() as stack:
        client = _client(req, stack)
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
