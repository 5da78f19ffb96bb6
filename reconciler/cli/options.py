"""Every option more than one command takes, declared once, and the parsing they share.

A decorator here adds its options in the order ``--help`` shows them. ``connection_from`` and
``state_from`` turn what the options parsed into the typed values the layers below take.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.connection import Connection, check_sandbox_clash
from reconciler.locations import DEFAULT_SANDBOX_DIR, DEFAULT_STATE, SANDBOX_STATE, default_state
from reconciler.planner import DEFAULT_MAX_BATCH_SIZE

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


def _all(decorators: list[Callable[[Any], Any]]) -> Callable[[F], F]:
    """Apply ``decorators`` so that ``--help`` lists them in this order."""

    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def manifests_option(f: F) -> F:
    return click.option(
        "--manifests",
        "-m",
        "manifests",
        type=click.Path(path_type=Path),
        multiple=True,
        help="Manifest file or directory (repeatable). Default: manifests/",
    )(f)


def manifest_paths(manifests: tuple[Path, ...]) -> list[Path]:
    """``--manifests`` as given, else ./manifests."""
    return list(manifests) or [Path("manifests")]


def state_option(*, with_sandbox: bool = False) -> Callable[[F], F]:
    """``--state FILE|URL`` (env RECONCILER_STATE); ``with_sandbox``: its help names the sandbox's."""
    default = f"{DEFAULT_STATE} ({SANDBOX_STATE} with --sandbox)" if with_sandbox else f"{DEFAULT_STATE}"
    return click.option(
        "--state",
        "state_path",
        type=str,
        metavar="FILE|URL",
        envvar="RECONCILER_STATE",
        help=f"State file, or a postgresql:// URL. Default: {default}.",
    )


def state_file_option(f: F) -> F:
    """``--state FILE`` for commands that read files only (the gallery reads downloads beside it)."""
    return click.option(
        "--state",
        "state_path",
        type=click.Path(path_type=Path),
        envvar="RECONCILER_STATE",
        help=f"State file. Default: {DEFAULT_STATE} ({SANDBOX_STATE} with --sandbox).",
    )(f)


def state_from(state_path: str | Path | None, *, sandbox: bool) -> str | Path:
    """``--state`` if given, else the default state (the sandbox's with ``--sandbox``)."""
    return state_path or default_state(sandbox=sandbox)


def lock_timeout_option(f: F) -> F:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Seconds to wait for the state lock before failing.",
    )(f)


def format_option(*choices: str, help: str | None = None) -> Callable[[F], F]:
    """``--format`` with ``choices`` (default text)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices or ("text", "json"))),
        default="text",
        show_default=True,
        help=help,
    )


def no_color_option(f: F) -> F:
    return click.option(
        "--no-color", is_flag=True, help="Plain text even on a terminal (NO_COLOR is honoured too)."
    )(f)


def use_colour(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def parallelism_option(help: str | None = None) -> Callable[[F], F]:
    return click.option("--parallelism", type=click.IntRange(1, 64), default=4, show_default=True, help=help)


def download_dir_option(f: F) -> F:
    return click.option(
        "--download-dir", type=click.Path(path_type=Path, file_okay=False), help="Keep the files, by product."
    )(f)


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        help="Config file (default: ./reconciler.yaml if present).",
    )(f)


def sandbox_dir_option(f: F) -> F:
    return click.option(
        "--sandbox-dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_SANDBOX_DIR,
        show_default=True,
        help="Where the embedded sandbox keeps its products, jobs and files.",
    )(f)


platform_options = _all(
    [
        click.option("--api-url", help="VNTANA API base URL (env VNTANA_API_URL)."),
        click.option(
            "--organization",
            "organization_uuid",
            help="Organization uuid (env VNTANA_ORGANIZATION_UUID).",
        ),
        click.option(
            "--workspace", "client_uuid", help='Workspace ("client") uuid (env VNTANA_CLIENT_UUID).'
        ),
        config_option,
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
)
"""How to reach a VNTANA platform by its URL (the real API, or a sandbox a process serves)."""

connection_options = _all(
    [
        click.option(
            "--sandbox",
            is_flag=True,
            help=f"Use the embedded VNTANA sandbox (state defaults to {SANDBOX_STATE}).",
        ),
        sandbox_dir_option,
        platform_options,
    ]
)
"""How to reach the platform: the embedded sandbox, or the real API."""

CONNECTION_KEYS = (
    "sandbox",
    "sandbox_dir",
    "api_url",
    "organization_uuid",
    "client_uuid",
    "config_path",
    "download_route",
    "verbose",
)


def connection_from(kw: dict[str, Any]) -> Connection:
    """Take the connection options out of ``kw`` (a command's parsed options) as a Connection;
    ``--sandbox`` with an option that chooses another platform is refused, never ignored."""
    given: Mapping[str, Any] = {k: kw.pop(k, None) for k in CONNECTION_KEYS}
    sandbox = bool(given["sandbox"])
    check_sandbox_clash(sandbox, given)
    return Connection(
        sandbox_dir=given["sandbox_dir"] if sandbox else None,
        flags={k: given[k] for k in ("api_url", "organization_uuid", "client_uuid", "download_route")},
        config_path=given["config_path"],
        verbose=bool(given["verbose"]),
    )


plan_shaping_options = _all(
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
)
"""What to plan: forcing, targeting, pruning, batching, the large-change breaker and the budget."""
