"""``reconciler doctor``: check, read-only, how this platform reads VNTANA's documents (reconciler.doctor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import (
    connection_from,
    connection_options,
    format_option,
    manifest_paths,
    manifests_option,
)
from reconciler.cli.terminal import note
from reconciler.doctor import DoctorRequest, run_doctor
from reconciler.settings import DEFAULT_CONFIG_NAME
from reconciler.views.doctor import render_json, render_text


@click.command("doctor")
@click.option(
    "--product",
    metavar="UUID",
    help="The product to check with (default: the first in the manifests). "
    "A rendered one lets doctor check downloads too.",
)
@manifests_option
@connection_options
@format_option("text", "json")
@click.option(
    "--save",
    is_flag=True,
    help=f"Write the detected settings into {DEFAULT_CONFIG_NAME} (or --config); never the token.",
)
def doctor_command(product: str | None, manifests: tuple[Path, ...], fmt: str, save: bool, **kw: Any) -> None:
    """Check, read-only, how this platform reads VNTANA's documents, before paying for a render."""
    request = DoctorRequest(
        product=product, manifests=manifest_paths(manifests), save=save, connection=connection_from(kw)
    )
    report = run_doctor(request, note if fmt == "text" else None)
    click.echo(render_json(report) if fmt == "json" else render_text(report), nl=False)
    error = report.error()
    if error is not None:
        raise error
