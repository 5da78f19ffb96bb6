"""``reconciler apply`` end to end: connect, lock, plan (or load a saved plan), confirm, execute.

This is the edge where the pure parts meet I/O: the sandbox (when asked), the client,
the state store, the webhook receiver and the terminal. The engine itself is executor.py.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reconciler.errors import ApplyFailedError, ConfigError, ReconcilerError
from reconciler.events import HookList, Hooks
from reconciler.executor import ApplyOptions, Executor, check_plan_current
from reconciler.loader import load_desired
from reconciler.plan import Plan
from reconciler.planfile import load_plan
from reconciler.planner import build_plan
from reconciler.progress import JsonLines, LiveProgress, LogLines
from reconciler.settings import ClientSettings, find_config_file, resolve_settings
from reconciler.state import FileStateStore
from reconciler.views import render_json, render_text
from reconciler.webhooks import EVENTS, EventBoard, WebhookReceiver, parse_listen


@dataclass
class ApplyRequest:
    planfile: Path | None
    manifests: list[Path]
    state_path: Path
    lock_timeout: float = 0.0
    replace: tuple[str, ...] = ()
    max_batch_size: int = 50
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


def run_apply(req: ApplyRequest) -> None:
    """Apply; raise ApplyFailedError if any product failed (exit 1)."""
    store = FileStateStore(req.state_path)
    with ExitStack() as stack:
        if req.verbose:
            _verbose_logging()
        settings = stack.enter_context(_settings(req))
        with store.lock("apply", timeout=req.lock_timeout):
            state = store.fold()
            if req.planfile is not None:
                plan = load_plan(req.planfile)
                check_plan_current(plan, state)
            else:
                desired = load_desired(req.manifests)
                plan = build_plan(desired, state, location=store.location, replace=req.replace,
                                  max_batch_size=req.max_batch_size)
            _show(plan, req)
            if not plan.has_changes:
                if req.fmt == "text":
                    click.echo("Nothing to apply.")
                return
            if req.planfile is None:
                _confirm(req)
            _execute(plan, store, state, settings, req, stack)


@contextmanager
def _settings(req: ApplyRequest) -> Iterator[ClientSettings]:
    if req.sandbox_dir is None:
        yield resolve_settings(req.flags, os.environ, req.config_path or find_config_file(Path.cwd()))
        return
    from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

    with EmbeddedSandbox(data_dir=req.sandbox_dir, config=SandboxConfig()) as sb:
        if req.fmt == "text":
            click.echo(f"Embedded VNTANA sandbox at {sb.url} (data in {req.sandbox_dir}).", err=True)
        yield ClientSettings(api_url=sb.url, token=sb.access_token, organization_uuid=sb.organization_uuid)


def _show(plan: Plan, req: ApplyRequest) -> None:
    if req.fmt == "json":
        click.echo(render_json(plan), nl=False)
    else:
        click.echo(render_text(plan, colour=req.colour), nl=False)


def _confirm(req: ApplyRequest) -> None:
    if req.auto_approve:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError("refusing to apply without confirmation: no terminal to ask on",
                              hint="review the plan, then pass --auto-approve (or apply a saved plan file)")
    if not click.confirm("Apply this plan? Renders cost money and replace earlier ones", default=False):
        raise ReconcilerError("apply cancelled; nothing was triggered")


def _execute(plan: Plan, store: FileStateStore, state: Any, settings: ClientSettings, req: ApplyRequest,
             stack: ExitStack) -> None:
    from reconciler.client import VntanaClient

    hooks = _hooks(req)
    client = stack.enter_context(VntanaClient(settings))
    board = None
    if req.webhook_listen:
        board = EventBoard()
        secret_box: dict[str, str] = {}
        host, port = parse_listen(req.webhook_listen)
        receiver = stack.enter_context(WebhookReceiver(host, port, lambda: secret_box.get("s"), board))
        hook = client.create_webhook(url=req.webhook_url or receiver.url, events=list(EVENTS),
                                     name="reconciler apply")
        stack.callback(_delete_webhook, client, hook.uuid)
        if hook.secret is None:
            raise ConfigError("the platform returned no webhook secret; cannot verify deliveries")
        secret_box["s"] = hook.secret.get_secret_value()
    default_interval = 15.0 if board else (0.2 if req.sandbox_dir else 2.0)
    options = ApplyOptions(parallelism=req.parallelism, product_timeout=req.product_timeout,
                           poll_interval=req.poll_interval or default_interval, download_dir=req.download_dir,
                           board=board)
    executor = Executor(client, store, state, hooks, options)
    report = executor.run(plan)
    hooks.on_event(executor.finish(client.stats.snapshot().as_dict()))
    if report.failed:
        raise ApplyFailedError(f"{len(report.failed)} product(s) failed; run 'reconciler plan' to see them "
                               "as retries")


def _delete_webhook(client: Any, uuid: str) -> None:
    try:
        client.delete_webhook(uuid)
    except ReconcilerError as exc:
        logging.getLogger("reconciler").warning("could not remove the temporary webhook %s: %s", uuid, exc)


def _hooks(req: ApplyRequest) -> Hooks:
    if req.fmt == "json":
        return JsonLines()
    if sys.stderr.isatty() and "CI" not in os.environ:
        return HookList(LiveProgress())
    return LogLines()


def _verbose_logging() -> None:
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpcore", "httpx", "uvicorn", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
