"""``reconciler apply`` and ``refresh``: connect, hand the plan (saved, or made under the lock) to
``executor.apply``, and say what was kept. ``--refresh-only`` accepts what the platform holds.

What is shown goes through the ``Terminal`` the caller gives (the CLI's): nothing here prints,
prompts or knows click.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler import executor
from reconciler.accepting import accept
from reconciler.connection import open_client
from reconciler.errors import ApplyFailedError, ConfigError, ReconcilerError, RunInterruptedError
from reconciler.events import Hooks
from reconciler.executor import ApplyOptions, ApplyReport
from reconciler.gallery.after_apply import after_apply, resolve_download_dir
from reconciler.loader import load_desired
from reconciler.locations import DEFAULT_STATE, state_flag
from reconciler.plan import Plan
from reconciler.planfile import load_plan
from reconciler.planner import recheck_budget
from reconciler.planning import ApplyRequest, check_plan_target, make_plan, observe_for, sandbox_note
from reconciler.state import State, StateStore, open_store
from reconciler.stopping import StopSignals, stop_signals
from reconciler.views.plan import render_json, render_text
from reconciler.views.refresh import refresh_json, refresh_text
from reconciler.webhook_registration import register

if TYPE_CHECKING:  # the receiver pulls in an ASGI server; only its type is needed here
    from reconciler.client.workspaces import WorkspaceClients
    from reconciler.webhook_receiver import EventBoard
    from reconciler.workers.run import WorkersRun


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
    run = req.execution
    sandbox = req.sandbox_dir is not None  # the sandbox keeps its files by default (issue 14)
    run = replace(
        run,
        download_dir=resolve_download_dir(
            run.download_dir, sandbox=sandbox, config_path=req.connection.config_file()
        ),
    )
    req = replace(req, execution=run)
    if run.planfile is None:
        sandbox_note(req, "apply", terminal.note)
    workers = None
    if run.workers:  # Lazy: procrastinate and cryptography only for --workers
        from reconciler.workers.run import WorkersRun

        workers = WorkersRun.check(req, terminal.note)
    store = open_store(req.state_path, plan_file=run.planfile)
    saved = load_plan(run.planfile) if run.planfile is not None else None
    if saved is not None:
        check_plan_target(saved, req, store)  # before asking for a token
        recheck_budget(
            saved, req.shaping.budget(req.connection.config_file()), allow=req.shaping.allow_over_budget
        )
    with ExitStack() as stack:
        shared = workers.shared(stack) if workers is not None else None
        client: Any = open_client(req.connection, stack, req.note(terminal.note), shared)
        if run.refresh_only:
            _refresh_only(req, terminal, client, store)
            return
        stops = stack.enter_context(stop_signals(f"run '{req.again('apply')}' again"))
        router = in_workspaces(client)
        if saved is not None:
            wanted = {a.product: a.workspace for a in saved.actions}
            router.follow(store.read(), saved.workspaces, wanted)
            saved = router.resolved(saved)
        boards: list[EventBoard] = []
        report = _run(
            req,
            saved if saved is not None else _plan_maker(req, router, store),
            router,
            store,
            hooks,
            _options(req, terminal, router, stack, boards, workers, stops),
        )
        # Still connected: the webhook and the embedded sandbox go when the stack closes, after this.
        if not report.changes and req.fmt == "text":
            terminal.out("Nothing to apply.\n")
        if workers is None:  # the workers keep their files where they downloaded them
            _kept(req, terminal, report)
        _pending_line(req, terminal, report)
        for board in boards:
            _deliveries(req, terminal, board)
        if report.failed:
            raise ApplyFailedError(
                f"{len(report.failed)} product(s) failed; run '{req.again('plan')}' to see what "
                "the next apply does with them (failed ones are retried, in-flight ones resumed)"
            )


def _plan_maker(req: ApplyRequest, client: WorkspaceClients, store: StateStore) -> executor.PlanMaker:
    """The plan from the manifests and the state read under the lock (refreshed if asked); the
    client learns where each product lives first (manifests for teams)."""

    def make(state: State) -> Plan:
        desired = load_desired(req.manifests)
        client.follow(state, desired.workspaces, {u: p.workspace for u, p in desired.products.items()})
        observed = observe_for(req, client, state, desired) if req.shaping.refresh else None
        return client.resolved(make_plan(req, store, state, observed, desired))

    return make


def _run(
    req: ApplyRequest,
    plan: Plan | executor.PlanMaker,
    client: Any,
    store: StateStore,
    hooks: Hooks,
    options: ApplyOptions,
) -> ApplyReport:
    """``executor.apply``; a run a signal stopped gets the hint that continues it."""
    try:
        return executor.apply(plan, client=client, store=store, hooks=hooks, options=options)
    except RunInterruptedError as exc:
        if exc.in_flight or exc.not_triggered:
            exc.hint = _continue_hint(req, exc.in_flight, exc.not_triggered)
        raise


def run_collect(req: ApplyRequest, terminal: Terminal, hooks: Hooks) -> None:
    """``reconciler collect``: wait for every product in flight and record it; trigger nothing.

    Needs no manifests: the write-ahead record keeps the spec each trigger asked for (the
    manifests, when there, serve records of an older reconciler that did not)."""
    from reconciler.inflight import collect_plan

    run = req.execution
    sandbox = req.sandbox_dir is not None
    download_dir = resolve_download_dir(
        run.download_dir, sandbox=sandbox, config_path=req.connection.config_file()
    )
    req = replace(req, execution=replace(run, download_dir=download_dir, auto_approve=True))
    store = open_store(req.state_path)
    desired = load_desired(req.manifests) if any(p.exists() for p in req.manifests) else None
    with ExitStack() as stack:
        client = in_workspaces(open_client(req.connection, stack, req.note(terminal.note)))
        stops = stack.enter_context(stop_signals(f"run '{req.again('collect')}' again"))

        def make(state: State) -> Plan:
            plan, unknown = collect_plan(state, store.location, desired)
            client.follow(state, {}, {})
            for product in unknown:
                terminal.note(
                    f"{product}: in flight, but its trigger's spec is not on record (an older reconciler "
                    f"wrote it) nor in the manifests: '{req.again('apply')}' with the manifests that "
                    "triggered it resumes it"
                )
            if plan.actions and req.fmt == "text":
                terminal.out(
                    f"Collecting {len(plan.actions)} product(s) in flight: waiting for their renders and "
                    "recording them; nothing is triggered.\n"
                )
            return plan

        boards: list[EventBoard] = []
        options = replace(_options(req, terminal, client, stack, boards, None, stops), show=None, listen=None)
        report = _run(req, make, client, store, hooks, options)
        if not report.changes and req.fmt == "text":
            terminal.out("Nothing in flight: nothing to collect.\n")
        _kept(req, terminal, report)
        if report.failed:
            raise ApplyFailedError(
                f"{len(report.failed)} product(s) failed; run '{req.again('plan')}' to see what "
                "the next apply does with them"
            )


def in_workspaces(client: Any) -> WorkspaceClients:
    """``client`` as the run's client: each product's calls go to its workspace's client once
    ``follow`` has said where the products live (manifests for teams)."""
    from reconciler.client.workspaces import WorkspaceClients

    return WorkspaceClients(client, {})


def _pending_line(req: ApplyRequest, terminal: Terminal, report: ApplyReport) -> None:
    if report.in_flight and req.fmt == "text":
        why = "not waited for (--no-wait)" if not req.execution.wait else "not recorded"
        terminal.out(
            f"{len(report.in_flight)} product(s) in flight: triggered and checkpointed, {why}. "
            f"'{req.again('collect')}' waits for them and records them without paying again "
            f"(so does the next '{req.again('apply')}'); "
            f"'reconciler status{state_flag(str(req.state_path))}' lists them.\n"
        )


def _continue_hint(req: ApplyRequest, in_flight: list[str], not_triggered: list[str]) -> str:
    """How to continue after a signal stopped the run: collect what is paid for, apply the rest."""
    parts = []
    if in_flight:
        parts.append(
            f"'{req.again('collect')}' waits for the {len(in_flight)} product(s) in flight and records "
            "them without paying again"
        )
    if not_triggered or not in_flight:
        parts.append(
            f"'{req.again('apply')}' "
            + ("does that too and triggers the rest" if in_flight else "continues where this run stopped")
        )
    return "; ".join(parts)


def _options(
    req: ApplyRequest,
    terminal: Terminal,
    client: Any,
    stack: ExitStack,
    boards: list[EventBoard],
    workers: WorkersRun | None = None,
    stops: StopSignals | None = None,
) -> ApplyOptions:
    """The run's options, and the caller's part of it: show the plan, confirm it, listen for
    webhooks (the board goes into ``boards``, for the deliveries line after the run)."""
    run = req.execution
    listening = run.webhook_listen is not None

    def show(plan: Plan) -> None:
        terminal.out(render_json(plan) if req.fmt == "json" else render_text(plan, colour=req.output.colour))

    def confirm(plan: Plan) -> None:
        if run.planfile is None:
            _confirm(req, terminal)

    def listen() -> EventBoard:
        board = _webhooks(req, terminal, client, stack)
        boards.append(board)
        return board

    # With webhooks a delivery wakes its product's poll at once; polling is the fallback for
    # dropped deliveries, so it may be slower (the poll budget is --parallelism per interval).
    default_interval = 5.0 if listening else (0.5 if req.sandbox_dir else 2.0)
    return ApplyOptions(
        parallelism=run.parallelism,
        product_timeout=run.product_timeout,
        poll_interval=run.poll_interval or default_interval,
        download_dir=run.download_dir,
        lock_timeout=run.lock_timeout,
        allow_large=req.shaping.allow_large,
        again=(req.again("plan"), req.again("apply")),
        show=show,
        confirm=confirm,
        listen=listen if listening else None,
        execute=workers.execute if workers is not None else None,
        wait=run.wait,
        stops=stops,
    )


def _confirm(req: ApplyRequest, terminal: Terminal) -> None:
    if req.execution.auto_approve:
        return
    if not terminal.can_ask():
        raise ReconcilerError(
            "refusing to apply without confirmation: no terminal to ask on",
            hint="review the plan, then pass --auto-approve (or apply a saved plan file)",
        )
    if not terminal.confirm("Apply this plan? Renders cost money and replace earlier ones"):
        raise ReconcilerError("apply cancelled; nothing was triggered")


def _deliveries(req: ApplyRequest, terminal: Terminal, board: EventBoard) -> None:
    if req.fmt == "text":
        terminal.note(
            f"Webhook deliveries: {board.accepted} accepted, {board.duplicates} repeated, {board.ignored} "
            f"about other renders, {board.refused} refused."
        )


def _kept(req: ApplyRequest, terminal: Terminal, report: ApplyReport) -> None:
    """With a downloads folder: note what this run touched there (and, for the sandbox, build the gallery)."""
    download_dir = req.execution.download_dir
    if download_dir is None:
        return
    # --state arrives as text: a file path, or a URL the gallery cannot read (and whose password
    # must not be printed in its "See them" line).
    url = "://" in str(req.state_path)
    for line in after_apply(
        download_dir,
        lineage=report.lineage,
        rendered=report.rendered,
        failed=list(report.failed),
        state_path=DEFAULT_STATE if url else Path(req.state_path),
        sandbox=req.sandbox_dir is not None and not url,
    ):
        if not (url and line.startswith("See them")):
            terminal.note(line)


def _refresh_only(req: ApplyRequest, terminal: Terminal, client: Any, store: StateStore) -> None:
    """``--refresh-only``: record what the platform holds for drifted products; render nothing."""
    with store.lock("apply", timeout=req.execution.lock_timeout):
        state = store.fold()
        observed = observe_for(req, client, state, load_desired(req.manifests))
        accepted, failed = accept(client, store, state, observed, req.execution.download_dir)
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

    assert req.execution.webhook_listen is not None
    board = EventBoard()
    secret_box: dict[str, str] = {}
    host, port = parse_listen(req.execution.webhook_listen)
    receiver = stack.enter_context(WebhookReceiver(host, port, lambda: secret_box.get("s"), board))
    hook, replaced = register(client, req.execution.webhook_url or receiver.url, list(EVENTS))
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
