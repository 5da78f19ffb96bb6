"""Download one attachment, optionally into a folder, atomically: the one path apply, import
and refresh share.

The bytes go to ``<folder>/<name>.part`` and are renamed into place only once complete and
hashed, so a kept file is never half written; without a folder they are only hashed. A file
it replaces is kept under ``.previous`` (gallery/downloads.py), so before/after stays possible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.errors import DownloadError
from reconciler.gallery.downloads import keep_download


def safe_name(att: Any) -> str:
    """The attachment's file name, reduced to a base name: a platform-chosen name must not
    escape the folder it is written to."""
    return Path(att.name or att.uuid).name


def fetch(client: Any, att: Any, store_type: str, folder: Path | None) -> tuple[Path | None, Any]:
    """(where the file was kept or None, the client's DownloadResult)."""
    if folder is None:
        return None, client.download(att, store_type, None)
    target = folder / safe_name(att)
    part = target.with_name(target.name + ".part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with part.open("wb") as sink:
            result = client.download(att, store_type, sink)
        keep_download(part, target, result.sha256)  # keeps the file it replaces, bounded
    except OSError as exc:
        raise DownloadError(f"cannot write {target}: {exc.strerror}") from exc
    finally:
        part.unlink(missing_ok=True)
    return target, result
