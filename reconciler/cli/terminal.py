"""The terminal as the layers below see it (``reconciler.applying.Terminal``), and plain output helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


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
