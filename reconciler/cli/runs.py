"""``reconciler collect`` and ``reconciler status``: runs that outlive a CI job.

``apply --no-wait`` triggers and exits; a signal stops a run with renders still in flight.
``collect`` waits for those and records them, paying for nothing again (reconciler.inflight
builds its plan from the state alone); ``status`` lists them, offline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from reconciler.applying import run_collect
from reconciler.cli.apply import progress_hooks
from reconciler.cli.options import (
    connection_options,
    download_dir_option,
    format_option,
    lock_timeout_option,
    manifests_option,
    no_color_option,
    parallelism_option,
    state_from,
    state_option,
)
from reconciler.cli.plan import planning_request
from reconciler.cli.terminal import ClickTerminal
from reconciler.inflight import InFlight, age_text, pending
from reconciler.locations import state_flag
from reconciler.state import open_store


@click.command("collect")
@manifests_option
@state_option()
@lock_timeout_option
@connection_options
@parallelism_option()
@click.option(
    "--timeout",
    "product_timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Most seconds to wait for one product's results before marking it failed.",
)
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=None)
@download_dir_option
@format_option("text", "json", help="json: one JSON event per line.")
@no_color_option
def collect_command(**kw: Any) -> None:
    """Wait for the products in flight and record them; trigger nothing, pay for nothing again.

    After 'apply --no-wait', or a run a signal stopped. Needs only the state (manifests, when
    present, serve records written by an older reconciler)."""
    req = planning_request(kw, auto_approve=True)
    run_collect(req, ClickTerminal(), progress_hooks(req.fmt, "Collect"))


@click.command("status")
@state_option(with_sandbox=True)
@click.option("--sandbox", is_flag=True, help="The sandbox's state.")
@format_option("text", "json")
def status_command(state_path: str | None, sandbox: bool, fmt: str) -> None:
    """List the products in flight: triggered, not yet recorded; their age and their request.

    Offline: reads the state (and its journal, so a running apply shows), takes no lock."""
    store = open_store(state_from(state_path, sandbox=sandbox))
    rows = pending(store.read(), datetime.now(UTC))
    if fmt == "json":
        data = {"state": store.location, "in_flight": len(rows), "products": [r.to_json() for r in rows]}
        click.echo(json.dumps(data, indent=2))
        return
    if not rows:
        click.echo(f"Nothing in flight in {store.location}.")
        return
    click.echo(_table(rows))
    requests = len({r.request_id for r in rows})
    click.echo(
        f"\n{len(rows)} product(s) in flight from {requests} request(s), the oldest "
        f"{age_text(rows[0].age_seconds)} old. 'reconciler collect{state_flag(store.location)}' waits "
        "for them and records them without paying again."
    )


def _table(rows: list[InFlight]) -> str:
    head = ("PRODUCT", "NAME", "STATUS", "AGE", "REQUEST", "SPEC", "WORKSPACE")
    body = [
        (
            r.product,
            r.name or "",
            r.status,
            age_text(r.age_seconds),
            r.request_id[:8],
            r.spec_hash[:12],
            r.workspace or "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = (
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (head, *body)
    )
    return "\n".join(lines)
