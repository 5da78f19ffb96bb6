"""The command line: the only package that knows click, and the one place where errors become
messages and exit codes. Each command parses its options into a typed request, calls one
function of the layer below and renders what it returns with a view (reconciler.views).

Exit codes, decided only here: 0 success; 1 error (user mistakes included, never a
traceback); with ``plan --detailed-exitcode``, 2 means "changes present" (Terraform's
convention). Usage errors also exit 1, so 2 keeps that single meaning.

Commands are loaded when invoked (``COMMANDS``), so ``plan`` never pays for the sandbox's ASGI
server and video encoders, or the executor; a new command is one line there.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.planner import PlanOptionsError

COMMANDS = {
    "validate": ("reconciler.cli.plan", "validate"),
    "schema": ("reconciler.cli.plan", "schema"),
    "plan": ("reconciler.cli.plan", "plan"),
    "apply": ("reconciler.cli.apply", "apply"),
    "refresh": ("reconciler.cli.apply", "refresh"),
    "force-unlock": ("reconciler.cli.state", "force_unlock"),
    "state": ("reconciler.cli.state", "state_group"),
    "import": ("reconciler.cli.importing", "import_command"),
    "doctor": ("reconciler.cli.doctor", "doctor_command"),
    "webhooks": ("reconciler.cli.webhooks", "webhooks_group"),
    "gallery": ("reconciler.cli.gallery", "gallery_command"),
    "github": ("reconciler.cli.github", "github_group"),
    "fmt": ("reconciler.cli.fmt", "fmt_command"),
    "sandbox": ("reconciler.cli.sandbox", "sandbox_command"),
    "worker": ("reconciler.cli.worker", "worker_command"),
    "collect": ("reconciler.cli.runs", "collect_command"),
    "status": ("reconciler.cli.runs", "status_command"),
}
"""Command name → (module, attribute): imported only when the command is looked up."""


class ReconcilerGroup(click.Group):
    """Turns ReconcilerError into a message and exit 1; anything else is a bug to report."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name]
            found: click.Command = getattr(importlib.import_module(module), attr)
            return found
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            fail(exc)
        except PlanOptionsError as exc:
            fail(ReconcilerError(str(exc)))
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
        except Exception:
            click.echo(traceback.format_exc(), err=True)
            click.echo(
                "Internal error: this is a bug in reconciler; please report it with the trace above.",
                err=True,
            )
            sys.exit(1)


def fail(exc: ReconcilerError) -> NoReturn:
    """The message (red on a terminal that wants colour), the hint, and the error's exit code."""
    message = f"Error: {exc.message}"
    click.echo(message if "NO_COLOR" in os.environ else click.style(message, fg="red"), err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative product renders on the VNTANA platform: plan, apply, and keep them in sync."""


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
