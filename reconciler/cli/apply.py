"""``apply`` and ``refresh``: the commands that change the state (and, for apply, the platform).

Loaded only when one of them runs: they bring the executor, the webhook registration and the
progress display, which ``plan`` never needs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.applying import run_apply
from reconciler.cli.options import (
    connection_options,
    download_dir_option,
    format_option,
    lock_timeout_option,
    manifests_option,
    no_color_option,
    parallelism_option,
    plan_shaping_options,
    state_option,
)
from reconciler.cli.plan import planning_request
from reconciler.cli.terminal import ClickTerminal
from reconciler.errors import ReconcilerError
from reconciler.events import Hooks
from reconciler.views.progress import JsonLines, LogLines


@click.command()
@click.argument("planfile", required=False, type=click.Path(path_type=Path))
@manifests_option
@state_option()
@lock_timeout_option
@plan_shaping_options
@connection_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required without a terminal).")
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Accept what the platform holds into the state (download and hash); render nothing.",
)
@parallelism_option("Products polled and downloaded at once.")
@click.option(
    "--timeout",
    "product_timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Most seconds to wait for one product's results before marking it failed; a render the "
    "platform failed is given up sooner, from what the run saw (docs/apply.md, Waiting).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Seconds between attachment polls (default 2; 0.5 with --sandbox; 5 with webhooks). "
    "At most --parallelism polls start per interval, shared by every product waited for.",
)
@click.option(
    "--webhook-listen",
    metavar="HOST:PORT",
    help="Receive signed webhook events here (polling stays the fallback).",
)
@click.option("--webhook-url", help="Public URL the platform should call, if not http://HOST:PORT/webhook.")
@download_dir_option
@click.option(
    "--no-wait",
    "no_wait",
    is_flag=True,
    help="Trigger and checkpoint, then exit 0 with what is in flight; 'reconciler collect' (or the "
    "next apply) waits for it and records it without paying again.",
)
@format_option("text", "json", help="json: the plan, then one JSON event per line.")
@click.option(
    "--workers", is_flag=True, help="Enqueue the batches for 'reconciler worker' processes and follow them."
)
@no_color_option
def apply(**kw: Any) -> None:
    """Trigger what the plan says, wait, download, hash and record. Resumes where a run died."""
    verify, refreshing = kw["verify"], kw["refresh"] or kw["refresh_only"]
    req = planning_request(kw, wait=not kw.pop("no_wait"))
    if req.execution.planfile is not None:
        ctx = click.get_current_context()
        given = [
            p.opts[0]
            for p in ctx.command.params
            if p.name in _PLAN_SHAPING
            and ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise ReconcilerError(
                f"a saved plan is applied exactly: {', '.join(given)} shape(s) a plan",
                hint=f"pass them to '{req.again('plan')} --out FILE' instead, then '{req.again('apply')} FILE'",
            )
    if verify and not refreshing:
        raise ReconcilerError(
            "--verify needs --refresh or --refresh-only (it re-downloads what the platform holds)"
        )
    run_apply(req, ClickTerminal(), progress_hooks(req.fmt))


# Options that decide what a plan contains: meaningless (so refused) with a saved plan.
_PLAN_SHAPING = (
    "replace",
    "targets",
    "excludes",
    "prune",
    "max_batch_size",
    "refresh",
    "verify",
    "refresh_only",
    "max_rerender_share",
    "max_deletes",
    "manifests",
)


@click.command()
@manifests_option
@state_option()
@lock_timeout_option
@connection_options
@click.option("--verify", is_flag=True, help="Download and re-hash every recorded file.")
@parallelism_option()
@format_option("text", "json")
@no_color_option
def refresh(**kw: Any) -> None:
    """Accept what the platform holds into the state (same as 'apply --refresh-only --auto-approve')."""
    req = planning_request(kw, refresh=True, refresh_only=True, auto_approve=True)
    run_apply(req, ClickTerminal(), progress_hooks(req.fmt, "Refresh"))


def progress_hooks(fmt: str, run: str = "Apply") -> Hooks:
    """JSON lines with ``--format json``; a live display on a terminal (not in CI); else log lines.
    ``run``: what the summary says finished (Apply, Collect, Refresh)."""
    if fmt == "json":
        return JsonLines()
    if sys.stderr.isatty() and "CI" not in os.environ:
        # Lazy: rich's live display only when there is a terminal to draw on (start-up time).
        from reconciler.cli.live import LiveProgress

        return LiveProgress(run=run)
    return LogLines(run=run)
