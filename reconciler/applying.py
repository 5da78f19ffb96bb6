"""``plan`` and ``apply`` end to end: connect, lock, plan (or load a saved plan), confirm, execute.

This is the edge where the pure parts meet I/O: the sandbox (when asked), the client,
the state store, the webhook receiver and the terminal. The engine itself is executor.py.
Heavy imports (ASGI server, progress display, the client) happen only on the paths that
need them, so an offline ``plan`` starts fast.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from reconciler.errors import (
    ApplyFailedError,
    ConfigError,
    LargeChangeError,
    OverBudgetError,
    PlanFileError,
    ReconcilerError,
)
from reconciler.events import Hooks
from reconciler.loader import load_desired
from reconciler.observed import Observed
from reconciler.plan import ActionKind, Budget, Plan
from reconciler.planfile import load_plan
from reconciler.planner import DEFAULT_MAX_BATCH_SIZE, Limits, build_plan, recheck_budget
from reconciler.settings import (
    BUDGET_KEYS,
    ClientSettings,
    find_config_file,
    resolve_budget,
    resolve_settings,
)
from reconciler.spec import Desired
from reconciler.state import FileStateStore, State, open_store
from reconciler.views import render_json, render_text

DEFAULT_STATE = Path("state/renders.state.json")
SANDBOX_STATE = Path("state/sandbox.state.json")
"""The sandbox's renders do not exist on the real platform: their state is kept apart."""
DEFAULT_SANDBOX_DIR = Path(".reconciler/sandbox")


@dataclass
class ApplyRequest:
    """Every option of plan / apply / refresh, typed (the CLI only parses)."""

    manifests: list[Path]
    state_path: Path
    planfile: Path | None = None
    lock_timeout: float = 0.0
    replace: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    prune: str | None = None
    allow_large: bool = False
    max_rerender_share: float | None = None
    max_deletes: int = 10
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_frames: int | None = None
    max_requests: int | None = None
    max_video_seconds: float | None = None
    allow_over_budget: bool = False
    refresh: bool = False
    verify: bool = False
    refresh_only: bool = False
    auto_approve: bool = False
    sandbox_dir: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None
    parallelism: int = 4
    product_timeout: float = 900.0
    poll_interval: float | None = None
    webhook_listen: str | None = None
    webhook_url: str | None = None
    download_dir: Path | None = None
    fmt: str = "text"
    colour: bool = False
    verbose: bool = False
    workers: bool = False
    """Enqueue the batches for ``reconciler worker`` processes and follow them (reconciler.workers)."""


def run_plan(req: ApplyRequest) -> Plan:
    """``reconciler plan``: offline unless ``refresh``; never writes the state."""
    desired = load_desired(req.manifests)  # manifests first: their errors are the likelier ones
    _sandbox_note(req, "plan")
    store = open_store(req.state_path)
    state = store.read()
    if not req.refresh:
        return _plan(req, store, state, None, desired)
    with ExitStack() as stack:
        client = _client(req, stack)
        return _plan(req, store, state, _observe(req, client, state, desired), desired)


def run_apply(req: ApplyRequest) -> None:
    """Apply; raise ApplyFailedError if any product failed (exit 1)."""
    from reconciler.credentials import check_credentials
    from reconciler.executor import check_plan_current, sync_labels
    from reconciler.gallery.command import resolve_download_dir

    sandbox = req.sandbox_dir is not None  # the sandbox keeps its files by default (issue 14)
    config = None if sandbox else req.config_path or find_config_file(Path.cwd())
    req = replace(
        req, download_dir=resolve_download_dir(req.download_dir, sandbox=sandbox, config_path=config)
    )
    if req.planfile is None:
        _sandbox_note(req, "apply")
    if req.workers:
        from reconciler.workers.run import check_workers_request

        check_workers_request(req)
    store = open_store(req.state_path, plan_file=req.planfile)
    if req.planfile is not None:
        _check_plan_target(load_plan(req.planfile), req, store)  # before asking for a token
    with ExitStack() as stack:
        client = _client(req, stack)
        with store.lock("apply", timeout=req.lock_timeout):
            state = store.fold()
            if req.planfile is not None:
                plan = load_plan(req.planfile)
                check_plan_current(plan, state, again=(command(req, "plan"), command(req, "apply")))
                if plan.limits_tripped and not (plan.allow_large or req.allow_large):
                    raise LargeChangeError(plan.limits_tripped)
                recheck_budget(plan, _budget(req), allow=req.allow_over_budget)
            else:
                desired = load_desired(req.manifests)
                observed = _observe(req, client, state, desired) if req.refresh or req.refresh_only else None
                if req.refresh_only:
                    _accept(req, client, store, state, observed)
                    return
                plan = _plan(req, store, state, observed, desired)
            _show(plan, req)
            if plan.refused:
                raise LargeChangeError(plan.limits_tripped)
            if plan.budget_refused:
                raise OverBudgetError(plan.over_budget)
            if not plan.has_changes:
                if sync_labels(store, state, plan):
                    store.write(state, bump=False)
                if req.fmt == "text":
                    click.echo("Nothing to apply.")
                _kept(req, state, [], [])
                return
            # Before the first checkpoint: a token or role that cannot do this stops here (issue 13).
            check_credentials(
                client, writes=bool(plan.batches) or any(a.kind is ActionKind.DELETE for a in plan.actions)
            )
            if req.planfile is None:
                _confirm(req)
            if req.workers:
                from reconciler.workers.run import execute_on_workers

                execute_on_workers(plan, store, state, client, req, _hooks(req))
                return
            _execute(plan, store, state, client, req, stack)


def _check_plan_target(plan: Plan, req: ApplyRequest, store: Any) -> None:
    """A saved plan is applied to the state it was made from: name the command that does, rather
    than ask for a token or call the plan stale (``plan --sandbox --out F`` then ``apply F``)."""
    made_for = plan.state.location
    if not made_for or _same_location(made_for, store.location):
        return
    sandbox = _same_location(made_for, str(SANDBOX_STATE))
    fixed = replace(
        req,
        state_path=Path(made_for) if not sandbox else SANDBOX_STATE,
        sandbox_dir=(req.sandbox_dir or DEFAULT_SANDBOX_DIR) if sandbox else None,
    )
    where = "the embedded sandbox's state" if sandbox else "the state"
    raise PlanFileError(
        f"{req.planfile} was made from {where} {made_for}, not {store.location}",
        hint=f"run '{command(fixed, 'apply')} {req.planfile}'",
    )


def _same_location(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def _sandbox_note(req: ApplyRequest, verb: str) -> None:
    """After the README's first command (``apply --sandbox``), a plain ``plan`` would read the
    real platform's state, which does not exist yet, and offer to render everything: say so."""
    if (
        req.sandbox_dir is not None
        or req.state_path != DEFAULT_STATE
        or DEFAULT_STATE.exists()
        or not SANDBOX_STATE.exists()
    ):
        return
    click.echo(
        f"Note: {DEFAULT_STATE} (the state of the real VNTANA platform) does not exist yet, so this {verb} "
        f"starts from nothing; the sandbox's renders are in {SANDBOX_STATE}: 'reconciler {verb} --sandbox' "
        "works with those.",
        err=True,
    )


def _plan(
    req: ApplyRequest,
    store: FileStateStore,
    state: State,
    observed: Observed | None,
    desired: Desired | None = None,
) -> Plan:
    desired = desired or load_desired(req.manifests)
    return build_plan(
        desired,
        state,
        location=store.location,
        replace=req.replace,
        max_batch_size=req.max_batch_size,
        observed=observed,
        targets=req.targets,
        excludes=req.excludes,
        prune=req.prune,
        allow_large=req.allow_large,
        limits=_limits(req),
        budget=_budget(req),
        allow_over_budget=req.allow_over_budget,
    )


def _budget(req: ApplyRequest) -> Budget:
    """Flags over ``budget:`` in reconciler.yaml; the sandbox's renders are free, its file is not read."""
    config = None if req.sandbox_dir is not None else req.config_path or find_config_file(Path.cwd())
    return resolve_budget({k: getattr(req, k) for k in BUDGET_KEYS}, config)


def _limits(req: ApplyRequest) -> Limits:
    if req.max_rerender_share is None:
        return Limits(max_deletes=req.max_deletes)
    # An explicit share is taken at its word: no floor for small catalogues.
    return Limits(rerender_share=req.max_rerender_share, rerender_floor=0, max_deletes=req.max_deletes)


def _observe(req: ApplyRequest, client: Any, state: State, desired: Desired | None = None) -> Observed:
    """What the platform holds for every rendered product in the state and, with ``desired``,
    for the products about to be rendered for the first time (renders made elsewhere?)."""
    from reconciler.refresh import observe

    new = (
        [u for u in desired.products if u not in state.products]
        if desired is not None and not req.refresh_only
        else []
    )
    return observe(client, state, verify=req.verify, parallelism=req.parallelism, also=new)


def _client(req: ApplyRequest, stack: ExitStack) -> Any:
    """A connected VntanaClient (and the embedded sandbox behind it, if asked), closed with ``stack``."""
    from reconciler.client import VntanaClient

    if req.verbose:
        _verbose_logging()
    settings = stack.enter_context(client_settings(req))
    shared = None
    if req.workers:  # one login and one throttle with the workers (reconciler.workers.shared)
        from reconciler.workers.run import shared_api

        shared = shared_api(req, settings, stack)
    return stack.enter_context(VntanaClient(settings, shared=shared))


@contextmanager
def client_settings(req: ApplyRequest) -> Iterator[ClientSettings]:
    """Settings from flags/env/config, or from an embedded sandbox started for the duration."""
    if req.sandbox_dir is None:
        yield resolve_settings(req.flags, os.environ, req.config_path or find_config_file(Path.cwd()))
        return
    from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

    with EmbeddedSandbox(data_dir=req.sandbox_dir, config=SandboxConfig()) as sb:
        if req.fmt == "text":
            click.echo(f"Embedded VNTANA sandbox at {sb.url} (data in {req.sandbox_dir}).", err=True)
        extra = {k: v for k, v in req.flags.items() if k == "download_route" and v is not None}
        yield ClientSettings(
            api_url=sb.url, token=SecretStr(sb.access_token), organization_uuid=sb.organization_uuid, **extra
        )


def _show(plan: Plan, req: ApplyRequest) -> None:
    if req.fmt == "json":
        click.echo(render_json(plan), nl=False)
    else:
        click.echo(render_text(plan, colour=req.colour), nl=False)


def _confirm(req: ApplyRequest) -> None:
    if req.auto_approve:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError(
            "refusing to apply without confirmation: no terminal to ask on",
            hint="review the plan, then pass --auto-approve (or apply a saved plan file)",
        )
    if not click.confirm("Apply this plan? Renders cost money and replace earlier ones", default=False):
        raise ReconcilerError("apply cancelled; nothing was triggered")


def _execute(
    plan: Plan, store: FileStateStore, state: State, client: Any, req: ApplyRequest, stack: ExitStack
) -> None:
    from reconciler.executor import ApplyOptions, Executor

    hooks = _hooks(req)
    board = _webhooks(req, client, stack) if req.webhook_listen else None
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
    _kept(req, state, report.rendered, list(report.failed))
    if board is not None and req.fmt == "text":
        click.echo(
            f"Webhook deliveries: {board.accepted} accepted, {board.duplicates} repeated, {board.ignored} "
            f"about other renders, {board.refused} refused.",
            err=True,
        )
    if report.failed:
        raise ApplyFailedError(
            f"{len(report.failed)} product(s) failed; run '{command(req, 'plan')}' to see what "
            "the next apply does with them (failed ones are retried, in-flight ones resumed)"
        )


def command(req: ApplyRequest, verb: str) -> str:
    """``reconciler VERB`` as this run would need it typed again: the sandbox and a state that is
    not the default one are named, so a hint works when followed."""
    parts = ["reconciler", verb]
    if req.sandbox_dir is not None:
        parts.append("--sandbox")
        if req.sandbox_dir != DEFAULT_SANDBOX_DIR:
            parts += ["--sandbox-dir", shlex.quote(str(req.sandbox_dir))]
    if req.state_path != (SANDBOX_STATE if req.sandbox_dir is not None else DEFAULT_STATE):
        parts += ["--state", _state_argument(str(req.state_path))]
    return " ".join(parts)


def state_flag(location: str) -> str:
    """What a hint's command needs to reach the state at ``location``: nothing for the default
    state, `` --sandbox`` for the sandbox's, else `` --state ...`` (never with a secret)."""
    if _same_location(location, str(DEFAULT_STATE)):
        return ""
    if _same_location(location, str(SANDBOX_STATE)):
        return " --sandbox"
    if "://" in location and os.environ.get("RECONCILER_STATE") and "***" in location:
        return ' --state "$RECONCILER_STATE"'
    return " --state " + _state_argument(location)


def _state_argument(location: str) -> str:
    """``--state``'s value for a hint, never with a secret in it: a URL with a password is named by
    the variable that holds it when it came from one, else shown with ``***`` for the password."""
    if "://" not in location:
        return shlex.quote(location)
    if os.environ.get("RECONCILER_STATE") == location:
        return '"$RECONCILER_STATE"'
    from reconciler.state.pgstore import parse_location

    return parse_location(location).display


def _kept(req: ApplyRequest, state: State, rendered: list[str], failed: list[str]) -> None:
    """With a downloads folder: note what this run touched there (and, for the sandbox, build the gallery)."""
    if req.download_dir is None or req.refresh_only:
        return
    from reconciler.gallery.command import after_apply

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
            click.echo(line, err=True)


def _accept(
    req: ApplyRequest, client: Any, store: FileStateStore, state: State, observed: Observed | None
) -> None:
    """``--refresh-only``: record what the platform holds for drifted products; render nothing."""
    from reconciler.refresh import accept

    assert observed is not None
    accepted, failed = accept(client, store, state, observed, req.download_dir)
    if req.fmt == "json":
        click.echo(
            json.dumps({"checked": len(observed.products), "updated": accepted, "failed": failed}, indent=2)
        )
    else:
        click.echo(
            f"Refresh: {len(observed.products)} product(s) checked, {len(accepted)} updated from the "
            "platform." + "".join(f"\n  {u}: {why}" for u, why in sorted(accepted.items()))
        )
    if failed:
        raise ApplyFailedError(
            f"{len(failed)} product(s) could not be refreshed and were left as recorded: "
            + "; ".join(f"{u}: {why}" for u, why in sorted(failed.items()))
        )


def _webhooks(req: ApplyRequest, client: Any, stack: ExitStack) -> Any:
    from reconciler.webhook_commands import register
    from reconciler.webhooks import EVENTS, EventBoard, WebhookReceiver, parse_listen

    assert req.webhook_listen is not None
    board = EventBoard()
    secret_box: dict[str, str] = {}
    host, port = parse_listen(req.webhook_listen)
    receiver = stack.enter_context(WebhookReceiver(host, port, lambda: secret_box.get("s"), board))
    hook, replaced = register(client, req.webhook_url or receiver.url, list(EVENTS))
    stack.callback(_delete_webhook, client, hook.uuid, command(req, "webhooks rm"))
    if replaced and req.fmt == "text":
        click.echo(
            f"Replaced the webhook an earlier, interrupted apply left at {hook.url or receiver.url} "
            f"({', '.join(replaced)}).",
            err=True,
        )
    if hook.secret is None:
        raise ConfigError("the platform returned no webhook secret; cannot verify deliveries")
    secret_box["s"] = hook.secret.get_secret_value()
    return board


def _delete_webhook(client: Any, uuid: str, rm: str) -> None:
    try:
        client.delete_webhook(uuid)
    except ReconcilerError as exc:
        click.echo(
            f"Warning: could not remove the temporary webhook {uuid} ({exc.message}); '{rm} {uuid}' removes "
            "it, and the next apply on the same address replaces it.",
            err=True,
        )


def _hooks(req: ApplyRequest) -> Hooks:
    from reconciler.progress import JsonLines, LiveProgress, LogLines

    if req.fmt == "json":
        return JsonLines()
    if sys.stderr.isatty() and "CI" not in os.environ:
        return LiveProgress()
    return LogLines()


def _verbose_logging() -> None:
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpcore", "httpx", "uvicorn", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
