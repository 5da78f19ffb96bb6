"""What ``apply --workers`` adds to ``reconciler.applying``'s run: checks, the shared login, the run."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

from reconciler.errors import ApplyFailedError, ConfigError
from reconciler.events import Hooks
from reconciler.executor import ApplyOptions
from reconciler.plan import Plan
from reconciler.settings import ClientSettings
from reconciler.state import State
from reconciler.state.pgstore import PgStateStore, parse_location
from reconciler.workers.coordinator import apply_on_workers, finished
from reconciler.workers.shared import SharedApi
from reconciler.workers.worker import prepare, require_pg

if TYPE_CHECKING:
    from reconciler.applying import ApplyRequest


def check_workers_request(req: ApplyRequest) -> None:
    """Refuse what cannot work across machines, before anything is asked of the platform."""
    if req.sandbox_dir is not None:
        raise ConfigError(
            "--workers cannot use the embedded sandbox: it lives inside this process, where no worker reaches it",
            hint="run 'reconciler sandbox' and point the apply and the workers at it with VNTANA_API_URL",
        )
    if req.webhook_listen:
        raise ConfigError(
            "--workers cannot listen for webhooks: the workers poll for their own products",
            hint="leave out --webhook-listen",
        )
    require_pg(str(req.state_path), "apply --workers")
    prepare(parse_location(str(req.state_path)))


def shared_api(req: ApplyRequest, settings: ClientSettings, stack: ExitStack) -> SharedApi:
    shared = SharedApi(parse_location(str(req.state_path)), settings)
    stack.callback(shared.close)
    return shared


def execute_on_workers(
    plan: Plan, store: Any, state: State, client: Any, req: ApplyRequest, hooks: Hooks
) -> None:
    """As ``applying._execute``, with the batches done by ``reconciler worker`` processes."""
    assert isinstance(store, PgStateStore)
    options = ApplyOptions(
        parallelism=req.parallelism,
        product_timeout=req.product_timeout,
        poll_interval=req.poll_interval or 2.0,
    )
    where = parse_location(str(req.state_path))
    result = None
    try:
        result = apply_on_workers(
            plan, store, state, client, hooks, options, where, lambda text: click.echo(text, err=True)
        )
    finally:
        if result is not None:
            hooks.on_event(finished(result, client.stats.snapshot().as_dict()))
    if result.halted is not None:
        raise result.halted
    if result.report.failed:
        from reconciler.applying import command

        raise ApplyFailedError(
            f"{len(result.report.failed)} product(s) failed; run '{command(req, 'plan')}' to see what "
            "the next apply does with them (failed ones are retried, in-flight ones resumed)"
        )
