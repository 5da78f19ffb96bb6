"""``reconciler apply`` and ``refresh`` end to end: connect, lock, plan (or load a saved plan),
confirm, execute, and say what was kept.

This is the edge where the pure parts meet I/O: the sandbox (when asked), the client, the state
store and the webhook receiver. The engine itself is executor.py; planning is planning.py. What
is shown goes through the ``Terminal`` the caller gives (the CLI's): nothing here prints,
prompts or knows click.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.connection import open_client
from reconciler.credentials import check_credentials
from reconciler.errors import (
    ApplyFailedError,
    ConfigError,
    LargeChangeError,
    OverBudgetError,
    ReconcilerError,
)
from reconciler.events import Hooks
from reconciler.executor import ApplyOptions, Executor, check_plan_current, sync_labels
from reconciler.gallery.after_apply import after_apply, resolve_download_dir
from reconciler.loader import load_desired
from reconciler.locations import DEFAULT_STATE
from reconciler.observed import Observed
from reconciler.plan import ActionKind, Plan
from reconciler.planfile import load_plan
from reconciler.planner import recheck_budget
from reconciler.planning import (
    ApplyRequest,
    budget_of,
    check_plan_target,
    make_plan,
    observe_for,
    sandbox_note,
)
from reconciler.refresh import accept
from reconciler.state import State, StateStore, open_store
from reconciler.views.plan import render_json, render_text
from reconciler.views.refresh import refresh_json, refresh_text
from reconciler.webhook_registration import register

if TYPE_CHECKING:  # the receiver pulls in an ASGI server; only its type is needed here
    from reconciler.webhook_receiver import EventBoard


class Terminal(Protocol):
    """Where a run shows itself: the CLI gives one (stdout, stderr, a prompt)."""

    def out(self, text: str) -> None:
        """Write ``text`` as it is to standard output."""

    def note(self, text: str) -> None:
        """Write a line to standard error (notes, warnings, the sandbox's address)."""

    def can_ask(self) -> bool:
        """Whether there is someone to ask (a terminal on standard input)."""

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question; no is the default."""


def run_apply(req: ApplyRequest, terminal: Terminal, hooks: Hooks) -> None:
    """Apply; raise ApplyFailedError if any product failed (exit 1). ``hooks`` show the run."""
    sandbox = req.sandbox_dir is not None  # the sandbox keeps its files by default (issue 14)
    req = replace(
        req,
        download_dir=resolve_download_dir(
            req.download_dir, sandbox=sandbox, config_path=req.connection.config_file()
        ),
    )
    if req.planfile is None:
        sandbox_note(req, "apply", terminal.note)
    store = open_store(req.state_path, plan_file=req.planfile)
    if req.planfile is not None:
        check_plan_target(load_plan(req.planfile), req, store)  # before asking for a token
    with ExitStack() as stack:
        client = open_client(req.connection, stack, terminal.note if req.fmt == "text" else None)
        with store.lock("apply", timeout=req.lock_timeout):
            state = store.fold()
            if req.planfile is not None:
                plan = load_plan(req.planfile)
                check_plan_current(plan, state, again=(req.again("plan"), req.again("apply")))
                if plan.limits_tripped and not (plan.allow_large or req.allow_large):
                    raise LargeChangeError(plan.limits_tripped)
                recheck_budget(plan, budget_of(req), allow=req.allow_over_budget)
            else:
                desired = load_desired(req.manifests)
                observed = (
                    observe_for(req, client, state, desired) if req.refresh or req.refresh_only else None
                )
                if req.refresh_only:
                    _accept(req, terminal, client, store, state, observed)
                    return
                plan = make_plan(req, store, state, observed, desired)
            terminal.out(render_json(plan) if req.fmt == "json" else render_text(plan, colour=req.colour))
            if plan.refused:
                raise LargeChangeError(plan.limits_tripped)
            if plan.budget_refused:
                raise OverBudgetError(plan.over_budget)
            if not plan.has_changes:
                if sync_labels(store, state, plan):
                    store.write(state, bump=False)
                if req.fmt == "text":
                    terminal.out("Nothing to apply.\n")
                _kept(req, terminal, state, [], [])
                return
            # Before the first checkpoint: a token or role that cannot do this stops here (issue 13).
            check_credentials(
                client, writes=bool(plan.batches) or any(a.kind is ActionKind.DELETE for a in plan.actions)
            )
            if req.planfile is None:
                _confirm(req, terminal)
            _execute(plan, store, state, client, req, terminal, hooks, stack)


def _confirm(req: ApplyRequest, terminal: Terminal) -> None:
    if req.auto_approve:
        return
    if not terminal.can_ask():
        raise ReconcilerError(
            "refusing to apply without confirmation: no terminal to ask on",
            hint="review the plan, then pass --auto-approve (or apply a saved plan file)",
        )
    if not terminal.confirm("Apply this plan? Renders cost money and replace earlier ones"):
        raise ReconcilerError("apply cancelled; nothing was triggered")


def _execute(
    plan: Plan,
    store: StateStore,
    state: State,
    client: Any,
    req: ApplyRequest,
    terminal: Terminal,
    hooks: Hooks,
    stack: ExitStack,
) -> None:
    board = _webhooks(req, terminal, client, stack) if req.webhook_listen else None
    # With webhooks a delivery wakes its product's poll at once; polling is the fallback for
    # dropped deliveries, so it may be slower (the poll budget is --parallelism per interval).
    default_interval = 5.0 if board else (0.5 if req.sandbox_dir else 2.0)
    options = ApplyOptions(
        parallelism=req.parallelism,
        product_timeout=req.product_timeout,
        poll_interval=req.poll_interval or default_interval,
        download_dir=req.download_dir,
        board=board,
    )
    executor = Executor(client, store, state, hooks, options)
    try:
        report = executor.run(plan)
    finally:
        hooks.on_event(executor.finish(client.stats.snapshot().as_dict()))
    _kept(req, terminal, state, report.rendered, list(report.failed))
    if board is not None and req.fmt == "text":
        terminal.note(
            f"Webhook deliveries: {board.accepted} accepted, {board.duplicates} repeated, {board.ignored} "
            f"about other renders, {board.refused} refused."
        )
    if report.failed:
        raise ApplyFailedError(
            f"{len(report.failed)} product(s) failed; run '{req.again('plan')}' to see what "
            "the next apply does with them (failed ones are retried, in-flight ones resumed)"
        )


def _kept(
    req: ApplyRequest, terminal: Terminal, state: State, rendered: list[str], failed: list[str]
) -> None:
    """With a downloads folder: note what this run touched there (and, for the sandbox, build the gallery)."""
    if req.download_dir is None or req.refresh_only:
        return
    # --state arrives as text: a file path, or a URL the gallery cannot read (and whose password
    # must not be printed in its "See them" line).
    url = "://" in str(req.state_path)
    for line in after_apply(
        req.download_dir,
        lineage=state.lineage,
        rendered=rendered,
        failed=failed,
        state_path=DEFAULT_STATE if url else Path(req.state_path),
        sandbox=req.sandbox_dir is not None and not url,
    ):
        if not (url and line.startswith("See them")):
            terminal.note(line)


def _accept(
    req: ApplyRequest,
    terminal: Terminal,
    client: Any,
    store: StateStore,
    state: State,
    observed: Observed | None,
) -> None:
    """``--refresh-only``: record what the platform holds for drifted products; render nothing."""
    assert observed is not None
    accepted, failed = accept(client, store, state, observed, req.download_dir)
    if req.fmt == "json":
        terminal.out(refresh_json(len(observed.products), accepted, failed))
    else:
        terminal.out(refresh_text(len(observed.products), accepted))
    if failed:
        raise ApplyFailedError(
            f"{len(failed)} product(s) could not be refreshed and were left as recorded: "
            + "; ".join(f"{u}: {why}" for u, why in sorted(failed.items()))
        )


def _webhooks(req: ApplyRequest, terminal: Terminal, client: Any, stack: ExitStack) -> EventBoard:
    # Lazy: an ASGI server (uvicorn, starlette) only for --webhook-listen (start-up time of apply).
    from reconciler.webhook_receiver import EVENTS, EventBoard, WebhookReceiver, parse_listen

    assert req.webhook_listen is not None
    board = EventBoard()
    secret_box: dict[str, str] = {}
    host, port = parse_listen(req.webhook_listen)
    receiver = stack.enter_context(WebhookReceiver(host, port, lambda: secret_box.get("s"), board))
    hook, replaced = register(client, req.webhook_url or receiver.url, list(EVENTS))
    stack.callback(_delete_webhook, terminal, client, hook.uuid, req.again("webhooks rm"))
    if replaced and req.fmt == "text":
        terminal.note(
            f"Replaced the webhook an earlier, interrupted apply left at {hook.url or receiver.url} "
            f"({', '.join(replaced)})."
        )
    if hook.secret is None:
        raise ConfigError("the platform returned no webhook secret; cannot verify deliveries")
    secret_box["s"] = hook.secret.get_secret_value()
    return board


def _delete_webhook(terminal: Terminal, client: Any, uuid: str, rm: str) -> None:
    try:
        client.delete_webhook(uuid)
    except ReconcilerError as exc:
        terminal.note(
            f"Warning: could not remove the temporary webhook {uuid} ({exc.message}); '{rm} {uuid}' removes "
            "it, and the next apply on the same address replaces it."
        )
