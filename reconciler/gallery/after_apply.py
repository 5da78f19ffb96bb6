"""The two things apply asks of the gallery: where downloads go, and what to do once a run that
kept files ends (record what it touched; for the sandbox, build the site)."""

from __future__ import annotations

import shlex
from pathlib import Path

from reconciler.downloads import LastApply, write_last_apply
from reconciler.errors import ReconcilerError
from reconciler.locations import DEFAULT_STATE
from reconciler.settings import configured_downloads
from reconciler.state import utcnow

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
    # Lazy: building the site pulls in the video decoder and the imaging library (PyAV, Pillow),
    # needed only by the sandbox's apply that keeps files (start-up time of every other apply).
    from reconciler.gallery.build import GalleryRequest, build_gallery

    try:
        report = build_gallery(
            GalleryRequest(state_path=state_path, out=DEFAULT_OUT, download_dir=download_dir)
        )
    except ReconcilerError as exc:
        return [*lines, f"Warning: the gallery was not written: {exc.message}"]
    return [*lines, f"Gallery of {report.products:,} products written: open {report.index}"]
