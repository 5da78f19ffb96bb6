"""``reconciler import``: adopt renders already on the platform (reconciler.importing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import (
    connection_from,
    connection_options,
    download_dir_option,
    format_option,
    lock_timeout_option,
    manifest_paths,
    manifests_option,
    parallelism_option,
    state_from,
    state_option,
)
from reconciler.cli.terminal import note
from reconciler.errors import ReconcilerError
from reconciler.importing import ImportRequest, run_import
from reconciler.views.importing import import_json, import_text


@click.command("import")
@click.argument("products", nargs=-1, metavar="[UUID]...")
@click.option("--all", "all_products", is_flag=True, help="Every product in the manifests.")
@manifests_option
@state_option(with_sandbox=True)
@lock_timeout_option
@click.option("--force", is_flag=True, help="Import products already in the state again.")
@parallelism_option("Products examined at once.")
@download_dir_option
@connection_options
@format_option("text", "json")
def import_command(
    products: tuple[str, ...],
    all_products: bool,
    manifests: tuple[Path, ...],
    state_path: str | None,
    lock_timeout: float,
    force: bool,
    parallelism: int,
    download_dir: Path | None,
    fmt: str,
    **kw: Any,
) -> None:
    """Adopt renders already on the platform: infer their spec from the files, record them, trigger nothing."""
    connection = connection_from(kw)
    if all_products == bool(products):
        flag = " --sandbox" if connection.sandbox else ""
        raise ReconcilerError(
            "name the products to import, or pass --all (not both)",
            hint=f"reconciler import{flag} UUID... | reconciler import{flag} --all",
        )
    report = run_import(
        ImportRequest(
            products=products,
            all_products=all_products,
            manifests=manifest_paths(manifests),
            state_path=state_from(state_path, sandbox=connection.sandbox),
            lock_timeout=lock_timeout,
            force=force,
            parallelism=parallelism,
            download_dir=download_dir,
            connection=connection,
        ),
        note if fmt == "text" else None,
    )
    click.echo(import_json(report) if fmt == "json" else import_text(report), nl=False)
    error = report.error()
    if error is not None:
        raise error
