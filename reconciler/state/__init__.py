"""Recorded state: the model, the store contract, and its backends (a JSON file, PostgreSQL).

Commands get their store from ``open_store(location)``, never from a backend's class.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.state.filestore import FileStateStore
from reconciler.state.model import (
    FORMAT_VERSION,
    Attachment,
    PastRender,
    ProductRecord,
    RenderRequest,
    State,
    Status,
)
from reconciler.state.store import LockInfo, StateStore, utcnow

__all__ = [
    "FORMAT_VERSION",
    "Attachment",
    "FileStateStore",
    "LockInfo",
    "PastRender",
    "ProductRecord",
    "RenderRequest",
    "State",
    "StateStore",
    "Status",
    "open_store",
    "utcnow",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def open_store(location: str | os.PathLike[str], *, plan_file: Path | None = None) -> StateStore:
    """The state store at ``location``: a ``postgresql://`` (or ``postgres://``) URL, or a JSON file path.

    ``plan_file``: the saved plan this run applies, recorded with every write by backends
    that keep a history. ConfigError for a URL of any other scheme."""
    text = os.fspath(location)
    match = _SCHEME.match(text)
    scheme = match[1].lower() if match and (match[2] or match[1].lower() in POSTGRES_SCHEMES) else None
    if scheme in POSTGRES_SCHEMES:
        assert match is not None
        if not match[2]:
            # "postgresql:/host/db": a path type collapsed the URL's "//" somewhere on the way here.
            raise ConfigError(
                f"state location {scheme}:/…: a {scheme}:// URL lost a slash",
                hint=f"write it as {scheme}://HOST/DBNAME (or {scheme}:// to take all from PG* variables)",
            )
        from reconciler.state.pgstore import PgStateStore  # psycopg and libpq load only when used

        return PgStateStore(text, plan_file=plan_file)
    if scheme is not None and len(scheme) > 1:  # one letter: a Windows drive, C://…
        raise ConfigError(
            f"state location {scheme}://…: no state backend for '{scheme}'",
            hint="use a JSON file path, or a postgresql:// URL",
        )
    return FileStateStore(Path(text))
