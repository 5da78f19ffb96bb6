"""A local cache of work that is dear to redo: validated manifest files, the state's plan index.

Nothing in it is ever trusted. Every entry names the input it was made from by a sha256 of
that input's bytes, which the reader recomputes from the bytes it has just read (a file
edited within one mtime tick, to the same size, is still a miss); it carries this code's
``CACHE_VERSION`` and a sha256 of its own payload, so an entry from another release, a torn
or corrupt one, or a file that is not an entry at all reads as a miss, and the caller does
the work as if there were no cache. A cache that cannot be written (read-only disk, full
disk, no home) is skipped silently: it only ever saves time.

Where: ``$RECONCILER_CACHE_DIR`` if set (empty or ``off`` turns the cache off), else
``$XDG_CACHE_HOME/reconciler``, else ``~/.cache/reconciler``. Outside the repository on
purpose: nothing to git-ignore, never committed or shown in a pull request, and shared by
every checkout of a catalogue (an entry is keyed by its input's path and confirmed by its
content, so sharing is safe). One entry per input path, replaced in place, so the cache
stays as large as the catalogues planned, not as their history.

Several processes may read and write at once: an entry is written to a temp file in the
cache directory and renamed over the old one (``os.replace``), so a reader sees a whole
entry, old or new, never half of one; the last writer wins, and any entry is correct for
the content hash it names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_VERSION = 2
"""Bumped whenever what an entry holds, or how it was made, changes: older entries then miss.
2: the state index's spans are offsets into the state's bytes (they were into its text)."""

_MAGIC = b"reconciler-cache"
_ENV = "RECONCILER_CACHE_DIR"


def cache_dir() -> Path | None:
    """The cache directory this process uses, or None when the cache is turned off."""
    configured = os.environ.get(_ENV)
    if configured is not None:
        return None if configured.strip() in ("", "off") else Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "reconciler"
    try:
        return Path.home() / ".cache" / "reconciler"
    except RuntimeError:  # no home directory
        return None


def digest(data: bytes) -> str:
    """The content hash entries are confirmed by."""
    return hashlib.sha256(data).hexdigest()


class Cache:
    """Entries of one kind (``manifest``, ``state-index``) under a cache directory."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root, self.kind = root, kind
        self.folder = root / kind

    @classmethod
    def default(cls, kind: str) -> Cache | None:
        root = cache_dir()
        return None if root is None else cls(root, kind)

    def entry_path(self, source: str) -> Path:
        """Where the entry for input ``source`` (an absolute path) lives."""
        name = hashlib.sha256(os.path.abspath(source).encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self.folder / f"{name}.entry"

    def get(self, source: str, content: str) -> tuple[dict[str, Any], bytes] | None:
        """The ``meta`` and payload stored for ``source`` if they were made from ``content`` (its
        digest) by this version of the code and are whole; None for a miss of any kind."""
        try:
            with open(self.entry_path(source), "rb") as fh:
                raw = fh.read()
        except OSError:
            return None
        magic, _, rest = raw.partition(b"\n")
        line, _, payload = rest.partition(b"\n")
        if magic != _MAGIC:
            return None
        try:
            header = json.loads(line)
        except ValueError:
            return None
        if not (
            isinstance(header, dict)
            and header.get("version") == CACHE_VERSION
            and header.get("kind") == self.kind
            and header.get("source") == os.path.abspath(source)
            and header.get("content") == content
            and isinstance(header.get("meta"), dict)
            and header.get("payload") == _sealed(header["meta"], payload)
        ):
            return None
        return header["meta"], payload

    def put(self, source: str, content: str, payload: bytes, **extra: Any) -> None:
        """Store ``payload`` and the small ``extra`` facts (JSON) for ``source`` made from ``content``;
        both are sealed by one hash. Silently skipped if the disk refuses."""
        header = {
            "version": CACHE_VERSION,
            "kind": self.kind,
            "source": os.path.abspath(source),
            "content": content,
            "meta": extra,
            "payload": _sealed(extra, payload),
        }
        data = b"%s\n%s\n%s" % (_MAGIC, json.dumps(header).encode(), payload)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _ignore_in_git(self.root)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.entry_path(source))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _sealed(meta: dict[str, Any], payload: bytes) -> str:
    """The hash that proves an entry's facts and payload whole (JSON of the facts re-made the same way)."""
    return digest(json.dumps(meta, sort_keys=True).encode() + b"\n" + payload)


def _ignore_in_git(root: Path) -> None:
    """A cache pointed inside a repository ignores itself, as pytest's and ruff's do."""
    marker = root / ".gitignore"
    if not marker.exists():
        with contextlib.suppress(OSError):
            marker.write_text("# created by reconciler: the cache is never committed\n*\n")
