"""``reconciler gallery``: parse the options, build the site (reconciler.gallery.build), say where it is."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import config_option, format_option, state_file_option, state_from
from reconciler.errors import ReconcilerError
from reconciler.gallery.after_apply import DEFAULT_OUT, SANDBOX_DOWNLOADS, resolve_download_dir
from reconciler.gallery.build import DEFAULT_PARALLELISM, GalleryRequest, build_gallery
from reconciler.gallery.model import PAGE_SIZE
from reconciler.settings import find_config_file
from reconciler.views.gallery import gallery_json, summary


@click.command("gallery")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder to write the site to (its own: a non-empty folder that is not a gallery is refused).",
)
@state_file_option
@click.option(
    "--download-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where apply kept the files. Default: downloads: in reconciler.yaml "
    f"({SANDBOX_DOWNLOADS} with --sandbox).",
)
@click.option("--sandbox", is_flag=True, help="The embedded sandbox's state and downloads.")
@config_option
@click.option(
    "--since-plan",
    "since_plan",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PLANFILE",
    help="Only the products this saved plan touches (a pull request's artifact).",
)
@click.option("--changed", is_flag=True, help="Only the products the last apply touched.")
@click.option("--title", default="Renders", show_default=True, help="Heading of every page.")
@click.option(
    "--page-size",
    type=click.IntRange(1, 5000),
    default=PAGE_SIZE,
    show_default=True,
    help="Cards on one page.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=DEFAULT_PARALLELISM,
    show_default=True,
    help="Files hashed and previews made at once (the cores, up to 4).",
)
@format_option("text", "json")
def gallery_command(
    out: Path,
    state_path: Path | None,
    download_dir: Path | None,
    sandbox: bool,
    config_path: Path | None,
    since_plan: Path | None,
    changed: bool,
    title: str,
    page_size: int,
    parallelism: int,
    fmt: str,
) -> None:
    """Write a static HTML gallery of the renders: thumbnails, turntables, before/after, filters."""
    if since_plan is not None and changed:
        raise ReconcilerError("--since-plan and --changed both choose the products: give one of them")
    if sandbox and config_path is not None:
        raise ReconcilerError(
            "--sandbox chooses its own downloads folder; it cannot be combined with --config"
        )
    downloads = resolve_download_dir(
        download_dir,
        sandbox=sandbox,
        config_path=None if sandbox else config_path or find_config_file(Path.cwd()),
    )
    report = build_gallery(
        GalleryRequest(
            state_path=Path(state_from(state_path, sandbox=sandbox)),
            out=out,
            download_dir=downloads,
            since_plan=since_plan,
            changed=changed,
            title=title,
            page_size=page_size,
            parallelism=parallelism,
        )
    )
    if fmt == "json":
        click.echo(gallery_json(report, downloads))
        return
    click.echo(summary(report, downloads))
