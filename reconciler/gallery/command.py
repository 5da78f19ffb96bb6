"""``reconciler gallery``: parse the options, build the site, say where it is; and the two things
apply asks of the gallery: where downloads go, and what to do once a run that kept files ends."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from reconciler.cli import DEFAULT_STATE, SANDBOX_STATE
from reconciler.errors import ReconcilerError
from reconciler.gallery.build import DEFAULT_PARALLELISM, GalleryReport, GalleryRequest, build_gallery
from reconciler.gallery.model import PAGE_SIZE
from reconciler.gallery.pages import size
from reconciler.settings import configured_downloads, find_config_file

DEFAULT_OUT = Path("gallery")
# `apply --sandbox` keeps its files by default, apart from real renders of the same uuids
# (the sandbox's seed uses the example catalogue's products).
SANDBOX_DOWNLOADS = Path("downloads/sandbox")


def resolve_download_dir(flag: Path | None, *, sandbox: bool, config_path: Path | None) -> Path | None:
    """``--download-dir``, else the sandbox's default, else ``downloads:`` in the config file."""
    if flag is not None:
        return flag
    if sandbox:
        return SANDBOX_DOWNLOADS
    return configured_downloads(config_path)


@click.command("gallery")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder to write the site to (its own: a non-empty folder that is not a gallery is refused).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    envvar="RECONCILER_STATE",
    help=f"State file. Default: {DEFAULT_STATE} ({SANDBOX_STATE} with --sandbox).",
)
@click.option(
    "--download-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where apply kept the files. Default: downloads: in reconciler.yaml "
    f"({SANDBOX_DOWNLOADS} with --sandbox).",
)
@click.option("--sandbox", is_flag=True, help="The embedded sandbox's state and downloads.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Config file (default: ./reconciler.yaml if present).",
)
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
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
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
            state_path=state_path or (SANDBOX_STATE if sandbox else DEFAULT_STATE),
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
        click.echo(json.dumps(report_json(report, downloads), indent=2))
        return
    click.echo(summary(report, downloads))


def summary(report: GalleryReport, downloads: Path | None) -> str:
    """What was written, in words, ending with what to open."""
    lines = [
        (
            f"Gallery of {report.products:,} product{'s' if report.products != 1 else ''} on "
            f"{report.pages} page{'s' if report.pages != 1 else ''} in {report.seconds:.1f} s "
            f"({size(report.site_bytes)}, of which media {size(report.media_bytes)})."
        )
    ]
    if downloads is None:
        lines.append(
            "No downloads folder: the cards have no pictures. Keep files with 'apply --download-dir DIR' "
            "(or downloads: in reconciler.yaml) and pass --download-dir DIR here."
        )
    elif report.downloads_missing:
        lines.append(f"The downloads folder {downloads} does not exist: every file shows as missing.")
    problems = [
        f"{n} {what}"
        for n, what in (
            (report.files_missing, "missing"),
            (report.files_altered, "altered"),
            (report.undecodable, "undecodable"),
        )
        if n
    ]
    if problems and not report.downloads_missing:
        lines.append("Local files " + ", ".join(problems) + ": their cards say so.")
    lines.append(f"Open {report.index}")
    return "\n".join(lines)


def report_json(report: GalleryReport, downloads: Path | None) -> dict[str, object]:
    return {
        "index": str(report.index),
        "products": report.products,
        "pages": report.pages,
        "downloads": str(downloads) if downloads else None,
        "files_missing": report.files_missing,
        "files_altered": report.files_altered,
        "undecodable": report.undecodable,
        "previews_made": report.previews_made,
        "previews_reused": report.previews_reused,
        "files_hashed": report.files_hashed,
        "hashes_reused": report.hashes_reused,
        "site_bytes": report.site_bytes,
        "media_bytes": report.media_bytes,
        "seconds": round(report.seconds, 3),
    }


def after_apply(
    download_dir: Path,
    *,
    lineage: str,
    rendered: list[str],
    failed: list[str],
    state_path: Path,
    sandbox: bool,
) -> list[str]:
    """Called by apply when it keeps files: record what this run touched (for ``--changed`` and
    the "changed" badges) and, for the sandbox, build the gallery. Lines to print; a problem
    here is reported, never turned into a failed apply."""
    from reconciler.gallery.downloads import LastApply, write_last_apply
    from reconciler.state import utcnow

    try:
        write_last_apply(
            download_dir, LastApply(lineage=lineage, finished_at=utcnow(), rendered=rendered, failed=failed)
        )
    except OSError as exc:
        return [f"Warning: could not record this apply in {download_dir}: {exc.strerror}"]
    lines = [f"Renders kept in {download_dir}/ (one folder per product uuid)."]
    if not sandbox:
        state = "" if state_path == DEFAULT_STATE else f" --state {shlex.quote(str(state_path))}"
        return [
            *lines,
            (
                f"See them: reconciler gallery --download-dir {shlex.quote(str(download_dir))}{state}, then open "
                f"{DEFAULT_OUT / 'index.html'}"
            ),
        ]
    try:
        report = build_gallery(
            GalleryRequest(state_path=state_path, out=DEFAULT_OUT, download_dir=download_dir)
        )
    except ReconcilerError as exc:
        return [*lines, f"Warning: the gallery was not written: {exc.message}"]
    return [*lines, f"Gallery of {report.products:,} products written: open {report.index}"]
