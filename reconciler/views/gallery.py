"""What ``reconciler gallery`` says once the site is written: in words, or as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.views.units import size

if TYPE_CHECKING:  # the report's type only: the build reads files and decodes video, views do not
    from reconciler.gallery.build import GalleryReport


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
    """``--format json``: where the site is and what building it did."""
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


def gallery_json(report: GalleryReport, downloads: Path | None) -> str:
    return json.dumps(report_json(report, downloads), indent=2)
