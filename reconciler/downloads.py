"""The downloads folder that ``apply --download-dir`` (or ``downloads:``) keeps: its layout, and the
one way a download lands in it (``fetch``). The bytes themselves are streamed and hashed by the
client (reconciler.client.download); this module decides where they go and what they replace.

    DIR/<product uuid>/<name>                          the current render's files
    DIR/<product uuid>/.previous/<sha256>/<name>       files that a re-render replaced
    DIR/.last-apply.json                               which products the last apply touched

A re-render usually brings files of the same names; the file it replaces is moved, not lost,
under ``.previous`` keyed by its own sha256, which is what the state's ``history`` records, so
the gallery finds "before" from the state alone. The folder of a product is bounded: at most
``KEEP_FILES`` files (current and previous), the oldest downloads removed first, which keeps
the files of the current render and of the ``HISTORY_LENGTH`` renders the state remembers.

Only ``keep_download`` writes a product's files (``fetch`` calls it for every download), so
apply, import and refresh keep previous versions alike. ``fetch`` writes the bytes to
``<folder>/<name>.part`` and renames them into place only once complete and hashed, so a kept
file is never half written; without a folder they are only hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ConfigError, DownloadError
from reconciler.state.model import HISTORY_LENGTH

if TYPE_CHECKING:  # the client's types only: the folder's layout is read by the gallery's pure model
    from reconciler.client.wire import Attachment as WireAttachment
    from reconciler.client.wire import DownloadResult
    from reconciler.client_protocols import AttachmentReader

PREVIOUS = ".previous"
LAST_APPLY = ".last-apply.json"
# A render is at most three files (still, MP4, GIF): the current one and the HISTORY_LENGTH
# earlier renders the state records fit in this many.
KEEP_FILES = 3 * (HISTORY_LENGTH + 1)
_READ = 1 << 20


def product_folder(root: Path, product: str) -> Path | None:
    """Where a product's files live; None for a key that is not a plain folder name."""
    if not product or product in (".", "..") or Path(product).name != product or "\\" in product:
        return None
    return root / product


def current_path(product: str, name: str) -> str:
    """The current file's path relative to the downloads folder (posix)."""
    return f"{product}/{name}"


def previous_path(product: str, sha256: str, name: str) -> str:
    """A replaced file's path relative to the downloads folder (posix)."""
    return f"{product}/{PREVIOUS}/{sha256}/{name}"


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def keep_download(part: Path, target: Path, sha256: str) -> None:
    """Move a complete download ``part`` to ``target``, keeping what it replaces.

    A different file already at ``target`` moves to ``.previous/<its sha256>/<name>``; the same
    content is simply replaced. Then the product folder is cut to ``KEEP_FILES``. Raises OSError."""
    try:
        old = sha256_file(target) if target.is_file() else sha256
        if old != sha256:
            kept = target.parent / PREVIOUS / old / target.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, kept)
    except FileNotFoundError:
        pass  # gone meanwhile: nothing to keep
    os.replace(part, target)
    bound_folder(target.parent, KEEP_FILES)


def bound_folder(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest files of a product folder beyond ``keep``; returns what was removed."""
    files: list[tuple[int, Path]] = []
    for path in [*folder.glob("*"), *folder.glob(f"{PREVIOUS}/*/*")]:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if path.is_file() and not path.is_symlink():
            files.append((st.st_mtime_ns, path))
    files.sort(key=lambda f: (f[0], str(f[1])), reverse=True)
    removed = []
    for _, path in files[keep:]:
        path.unlink(missing_ok=True)
        removed.append(path)
        if path.parent.parent.name == PREVIOUS:
            with contextlib.suppress(OSError):  # not empty: another name of the same content
                path.parent.rmdir()
    return removed


@dataclass(frozen=True)
class LastApply:
    """What the last apply that kept files touched: rendered anew, or failed."""

    lineage: str
    finished_at: str
    rendered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "lineage": self.lineage,
            "finished_at": self.finished_at,
            "rendered": sorted(self.rendered),
            "failed": sorted(self.failed),
        }


def write_last_apply(root: Path, record: LastApply) -> None:
    """Replace ``DIR/.last-apply.json`` atomically. Raises OSError."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / LAST_APPLY
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def read_last_apply(root: Path) -> LastApply | None:
    """The record of the last apply, or None if there is none; ConfigError if it is damaged."""
    path = root / LAST_APPLY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path} is unreadable ({exc})", hint="delete it; the next apply writes it again"
        ) from exc
    try:
        return LastApply(
            lineage=str(data["lineage"]),
            finished_at=str(data["finished_at"]),
            rendered=[str(u) for u in data["rendered"]],
            failed=[str(u) for u in data["failed"]],
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a record of an apply (missing {exc})",
            hint="delete it; the next apply writes it again",
        ) from exc


# -- one download, into the folder ----------------------------------------------------------


def safe_name(att: WireAttachment) -> str:
    """The attachment's file name, reduced to a base name: a platform-chosen name must not
    escape the folder it is written to."""
    return Path(att.name or att.uuid).name


def fetch(
    client: AttachmentReader, att: WireAttachment, store_type: str, folder: Path | None
) -> tuple[Path | None, DownloadResult]:
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
