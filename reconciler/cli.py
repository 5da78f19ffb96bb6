"""The command line. Commands are thin: parse options, call one function, render, exit.

Exit codes, decided only here: 0 success; 1 error (user mistakes included, never a
traceback); with ``plan --detailed-exitcode``, 2 means "changes present" (Terraform's
convention). Usage errors also exit 1, so 2 keeps that single meaning.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from reconciler import __version__
from reconciler.applying import (
    DEFAULT_SANDBOX_DIR,
    DEFAULT_STATE,
    SANDBOX_STATE,
    ApplyRequest,
    command,
    run_apply,
    run_plan,
)
from reconciler.errors import LargeChangeError, ManifestError, OverBudgetError, ReconcilerError
from reconciler.loader import load_desired
from reconciler.plan import CATEGORIES
from reconciler.planfile import save_plan
from reconciler.planner import DEFAULT_MAX_BATCH_SIZE, PlanOptionsError
from reconciler.spec import manifest_json_schema
from reconciler.state import open_store
from reconciler.views import render_json, render_markdown, render_text

F = TypeVar("F", bound=Callable[..., Any])
# DEFAULT_STATE, SANDBOX_STATE (the sandbox's renders do not exist on the real platform: their
# state is kept apart) and DEFAULT_SANDBOX_DIR live in applying, which builds hints from them.


# Commands whose imports are heavy (the sandbox pulls in an ASGI server and video encoders):
# loaded only when invoked, so `plan` starts fast.
LAZY_COMMANDS = {
    "sandbox": ("reconciler.sandbox.command", "sandbox_command"),
    "state": ("reconciler.state_commands", "state_group"),
    "import": ("reconciler.importer", "import_command"),
    "doctor": ("reconciler.doctor", "doctor_command"),
    "webhooks": ("reconciler.webhook_commands", "webhooks_group"),
    "gallery": ("reconciler.gallery.command", "gallery_command"),
    "github": ("reconciler.github.command", "github_group"),
    "fmt": ("reconciler.formatting", "fmt_command"),
    "worker": ("reconciler.worker_commands", "worker_command"),
}


class ReconcilerGroup(click.Group):
    """Turns ReconcilerError into a message and exit 1; anything else is a bug to report."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name]
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            _fail(exc)
        except PlanOptionsError as exc:
            _fail(ReconcilerError(str(exc)))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away (`reconciler state list | head`): stop quietly, and keep
            # Python from failing again while it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception:  # noqa: BLE001 - the one place that turns bugs into a report
            click.echo(traceback.format_exc(), err=True)
            click.echo(
                "Internal error: this is a bug in reconciler; please report it with the trace above.",
                err=True,
            )
            sys.exit(1)


def _fail(exc: ReconcilerError) -> NoReturn:
    message = f"Error: {exc.message}"
    click.echo(message if "NO_COLOR" in os.environ else click.style(message, fg="red"), err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def manifests_option(f: F) -> F:
    return click.option(
        "--manifests",
        "-m",
        "manifests",
        type=click.Path(path_type=Path),
        multiple=True,
        help="Manifest file or directory (repeatable). Default: manifests/",
    )(f)


def state_option(f: F) -> F:
    return click.option(
        "--state",
        "state_path",
        type=str,
        metavar="FILE|URL",
        envvar="RECONCILER_STATE",
        help=f"State file, or a postgresql:// URL. Default: {DEFAULT_STATE}.",
    )(f)


def lock_timeout_option(f: F) -> F:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Seconds to wait for the state lock before failing.",
    )(f)


def _paths(manifests: tuple[Path, ...]) -> list[Path]:
    return list(manifests) or [Path("manifests")]


def use_colour(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative product renders on the VNTANA platform: plan, apply, and keep them in sync."""


@cli.command()
@manifests_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate(manifests: tuple[Path, ...], fmt: str) -> None:
    """Check manifests offline: no state, no network."""
    try:
        desired = load_desired(_paths(manifests))
    except ManifestError as exc:
        if fmt == "json":
            _echo_json(
                {"valid": False, "diagnostics": [d.to_json() for d in exc.diagnostics], "more": exc.more}
            )
            sys.exit(1)
        raise
    if fmt == "json":
        _echo_json(
            {
                "valid": True,
                "products": len(desired.products),
                "files": list(desired.files),
                "diagnostics": [],
            }
        )
    else:
        click.echo(f"OK: {len(desired.products)} products in {len(desired.files)} file(s).")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a manifest file (for editor completion and checks)."""
    _echo_json(manifest_json_schema())


def selection_options(f: F) -> F:
    """What to plan: forcing, targeting, pruning, batching and the large-change breaker."""
    for decorator in reversed(
        [
            click.option(
                "--replace",
                multiple=True,
                metavar="UUID",
                help="Re-render this product even if unchanged (repeatable).",
            ),
            click.option(
                "--target",
                "targets",
                multiple=True,
                metavar="UUID|GLOB",
                help="Only these products (uuid, or glob on name; repeatable). Others wait.",
            ),
            click.option(
                "--exclude",
                "excludes",
                multiple=True,
                metavar="UUID|GLOB",
                help="Leave these products out (uuid, or glob on name; repeatable).",
            ),
            click.option(
                "--prune",
                type=click.Choice(["forget", "delete"]),
                is_flag=False,
                flag_value="forget",
                default=None,
                help="Orphans: --prune drops them from the state; --prune=delete also "
                "deletes their renders on the platform.",
            ),
            click.option(
                "--allow-large", is_flag=True, help="Accept a plan that trips the large-change breaker."
            ),
            click.option(
                "--max-rerender-share",
                type=click.FloatRange(0, 1),
                default=None,
                help="Breaker: most of the catalogue one plan may re-render (default 0.25, and never "
                "fewer than 10 products unless this is given).",
            ),
            click.option(
                "--max-deletes",
                type=click.IntRange(min=0),
                default=10,
                show_default=True,
                help="Breaker: most products whose renders one plan may delete.",
            ),
            click.option(
                "--max-batch-size",
                type=click.IntRange(min=1),
                default=DEFAULT_MAX_BATCH_SIZE,
                show_default=True,
                help="Most products in one render request.",
            ),
            click.option(
                "--max-frames",
                type=click.IntRange(min=0),
                default=None,
                help="Budget: most frames (stills + turntable frames) one plan may trigger "
                "(over budget: refused; overrides budget: in reconciler.yaml).",
            ),
            click.option(
                "--max-requests",
                type=click.IntRange(min=0),
                default=None,
                help="Budget: most render requests (batches) one plan may send.",
            ),
            click.option(
                "--max-video-seconds",
                type=click.FloatRange(min=0),
                default=None,
                help="Budget: most seconds of turntable video one plan may trigger.",
            ),
            click.option("--allow-over-budget", is_flag=True, help="Accept a plan over the budget."),
            click.option(
                "--refresh",
                is_flag=True,
                help="Ask the platform what each product holds now and plan drift as re-renders (network).",
            ),
            click.option(
                "--verify", is_flag=True, help="With --refresh: download and re-hash every recorded file."
            ),
        ]
    ):
        f = decorator(f)
    return f


def api_options(f: F) -> F:
    """How to reach the platform: the embedded sandbox, or the real API."""
    for decorator in reversed(
        [
            click.option(
                "--sandbox",
                is_flag=True,
                help=f"Use the embedded VNTANA sandbox (state defaults to {SANDBOX_STATE}).",
            ),
            click.option(
                "--sandbox-dir",
                type=click.Path(path_type=Path),
                default=DEFAULT_SANDBOX_DIR,
                show_default=True,
                help="Where the embedded sandbox keeps its products, jobs and files.",
            ),
            click.option("--api-url", help="VNTANA API base URL (env VNTANA_API_URL)."),
            click.option(
                "--organization",
                "organization_uuid",
                help="Organization uuid (env VNTANA_ORGANIZATION_UUID).",
            ),
            click.option(
                "--workspace", "client_uuid", help='Workspace ("client") uuid (env VNTANA_CLIENT_UUID).'
            ),
            click.option(
                "--config",
                "config_path",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                help="Config file (default: ./reconciler.yaml if present).",
            ),
            click.option(
                "--download-route",
                type=click.Choice(["auto", "comments", "signed-url"]),
                default=None,
                help="How renders are downloaded (env VNTANA_DOWNLOAD_ROUTE; default auto: the first route "
                "that works; 'reconciler doctor' finds it).",
            ),
            click.option(
                "--verbose",
                "-v",
                is_flag=True,
                help="Log every API request (tokens and signatures redacted).",
            ),
        ]
    ):
        f = decorator(f)
    return f


def _request(kw: dict[str, Any], **extra: Any) -> ApplyRequest:
    """The options every planning command shares, as one typed request."""
    sandbox = kw.pop("sandbox")
    if sandbox:
        clash = [
            f"--{n}"
            for n, k in (
                ("api-url", "api_url"),
                ("organization", "organization_uuid"),
                ("workspace", "client_uuid"),
                ("config", "config_path"),
            )
            if kw.get(k)
        ]
        if clash:
            raise ReconcilerError(
                f"--sandbox chooses the platform itself; it cannot be combined with {', '.join(clash)}"
            )
    state_path = kw.pop("state_path", None) or (SANDBOX_STATE if sandbox else DEFAULT_STATE)
    flags = {k: kw.pop(k) for k in ("api_url", "organization_uuid", "client_uuid", "download_route")}
    manifests = _paths(kw.pop("manifests"))
    sandbox_dir = kw.pop("sandbox_dir")
    no_color = kw.pop("no_color", False)
    return ApplyRequest(
        manifests=manifests,
        state_path=state_path,
        flags=flags,
        sandbox_dir=sandbox_dir if sandbox else None,
        colour=use_colour(no_color),
        **kw,
        **extra,
    )


@cli.command()
@manifests_option
@state_option
@selection_options
@api_options
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), help="Save the plan for 'reconciler apply FILE'.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when no changes, 2 when changes, 1 on error.")
@click.option(
    "--exit-code-on",
    "exit_code_on",
    default=",".join(CATEGORIES),
    show_default=True,
    metavar="CATEGORIES",
    help="Which change categories make --detailed-exitcode return 2 "
    f"(comma-separated: {', '.join(CATEGORIES)}).",
)
@click.option("--show-unchanged", is_flag=True, help="List unchanged products too.")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (NO_COLOR is honoured too).")
def plan(**kw: Any) -> None:
    """Show which products would be rendered or re-rendered, what that replaces, and its cost."""
    out, detailed, show_unchanged = kw.pop("out"), kw.pop("detailed_exitcode"), kw.pop("show_unchanged")
    categories = _categories(kw.pop("exit_code_on"))
    req = _request(kw)
    if req.verify and not req.refresh:
        raise ReconcilerError("--verify needs --refresh (it re-downloads what the platform holds)")
    result = run_plan(req)
    if req.fmt == "json":
        click.echo(render_json(result), nl=False)
    elif req.fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        click.echo(render_text(result, colour=req.colour, show_noop=show_unchanged), nl=False)
    if result.refused:
        raise LargeChangeError(result.limits_tripped)
    if result.budget_refused:
        raise OverBudgetError(result.over_budget)
    if out is not None:
        save_plan(result, out)
        if req.fmt == "text":
            click.echo(
                f"Saved the plan to {out}; run '{command(req, 'apply')} {out}' to execute exactly this plan."
            )
    if detailed and result.has_changes_in(categories):
        sys.exit(2)


def _categories(text: str) -> set[str]:
    chosen = {c.strip() for c in text.split(",") if c.strip()}
    unknown = sorted(chosen - set(CATEGORIES))
    if unknown:
        raise ReconcilerError(
            f"--exit-code-on: unknown categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}",
            hint="choose from " + ", ".join(CATEGORIES),
        )
    return chosen


@cli.command()
@click.argument("planfile", required=False, type=click.Path(path_type=Path))
@manifests_option
@state_option
@lock_timeout_option
@selection_options
@api_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required without a terminal).")
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Accept what the platform holds into the state (download and hash); render nothing.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Products polled and downloaded at once.",
)
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
@click.option(
    "--download-dir", type=click.Path(path_type=Path, file_okay=False), help="Keep the files, by product."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the plan, then one JSON event per line.",
)
@click.option(
    "--workers", is_flag=True, help="Enqueue the batches for 'reconciler worker' processes and follow them."
)
@click.option("--no-color", is_flag=True)
def apply(**kw: Any) -> None:
    """Trigger what the plan says, wait, download, hash and record. Resumes where a run died."""
    verify, refreshing = kw["verify"], kw["refresh"] or kw["refresh_only"]
    req = _request(kw)
    if req.planfile is not None:
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
                hint=f"pass them to '{command(req, 'plan')} --out FILE' instead, then "
                f"'{command(req, 'apply')} FILE'",
            )
    if verify and not refreshing:
        raise ReconcilerError(
            "--verify needs --refresh or --refresh-only (it re-downloads what the platform holds)"
        )
    run_apply(req)


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


@cli.command()
@manifests_option
@state_option
@lock_timeout_option
@api_options
@click.option("--verify", is_flag=True, help="Download and re-hash every recorded file.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-color", is_flag=True)
def refresh(**kw: Any) -> None:
    """Accept what the platform holds into the state (same as 'apply --refresh-only --auto-approve')."""
    run_apply(_request(kw, refresh=True, refresh_only=True, auto_approve=True))


@cli.command("force-unlock")
@state_option
@click.option("--sandbox", is_flag=True, help=f"The sandbox's state ({SANDBOX_STATE}).")
@click.argument("lock_id")
def force_unlock(state_path: Path | None, sandbox: bool, lock_id: str) -> None:
    """Release a lock left behind by a process that is gone. Give the id the lock error printed."""
    info = open_store(state_path or (SANDBOX_STATE if sandbox else DEFAULT_STATE)).force_unlock(lock_id)
    click.echo(
        f"Released lock {info.id} ({info.operation} by {info.who} on {info.host}, pid {info.pid}, "
        f"since {info.since})."
    )


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def main() -> None:
    try:
        cli.main(prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
