"""The terminal as the layers below see it (``reconciler.applying.Terminal``), and the choice of
how an apply run shows its progress."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from reconciler.events import Hooks
from reconciler.views.progress import JsonLines, LogLines


class ClickTerminal:
    """Standard output for results, standard error for notes, a prompt on the terminal."""

    def out(self, text: str) -> None:
        click.echo(text, nl=False)

    def note(self, text: str) -> None:
        click.echo(text, err=True)

    def can_ask(self) -> bool:
        return sys.stdin.isatty()

    def confirm(self, question: str) -> bool:
        return click.confirm(question, default=False)


def note(text: str) -> None:
    """A line on standard error."""
    click.echo(text, err=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def progress_hooks(fmt: str) -> Hooks:
    """JSON lines with ``--format json``; a live display on a terminal (not in CI); else log lines."""
    if fmt == "json":
        return JsonLines()
    if sys.stderr.isatty() and "CI" not in os.environ:
        # Lazy: rich's live display only when there is a terminal to draw on (start-up time).
        from reconciler.cli.live import LiveProgress

        return LiveProgress()
    return LogLines()
