"""How a command reaches the platform: the real API (flags, environment, config file) or an
embedded sandbox started for the duration, and the connected client.

Every command that talks to the platform (plan --refresh, apply, refresh, import, doctor,
webhooks) takes the same options and connects here, so ``--sandbox`` means the same everywhere.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from reconciler.errors import ReconcilerError
from reconciler.settings import ClientSettings, find_config_file, resolve_settings

if TYPE_CHECKING:
    from reconciler.client import VntanaClient
    from reconciler.client.session import SharedSession

Note = Callable[[str], None]
"""Where a connection says what it started (the embedded sandbox's address); a line of text."""


@dataclass(frozen=True)
class Connection:
    """The platform to talk to. ``sandbox_dir`` set: the embedded sandbox keeping its data there;
    else the real API from ``flags`` (api_url, organization_uuid, client_uuid, download_route),
    the environment and the config file."""

    sandbox_dir: Path | None = None
    flags: Mapping[str, str | None] = field(default_factory=dict)
    config_path: Path | None = None
    verbose: bool = False

    @property
    def sandbox(self) -> bool:
        return self.sandbox_dir is not None

    def config_file(self) -> Path | None:
        """The config file to read: ``--config``, else ./reconciler.yaml if present; none for the sandbox."""
        return None if self.sandbox else self.config_path or find_config_file(Path.cwd())


SANDBOX_CLASHES = (
    ("api-url", "api_url"),
    ("organization", "organization_uuid"),
    ("workspace", "client_uuid"),
    ("config", "config_path"),
)
"""Options that choose a platform: meaningless with ``--sandbox``, which chooses its own."""


def check_sandbox_clash(sandbox: bool, given: Mapping[str, object]) -> None:
    """Refuse ``--sandbox`` with an option that chooses another platform (never ignore it silently)."""
    if not sandbox:
        return
    clash = [f"--{flag}" for flag, key in SANDBOX_CLASHES if given.get(key)]
    if clash:
        raise ReconcilerError(
            f"--sandbox chooses the platform itself; it cannot be combined with {', '.join(clash)}"
        )


@contextmanager
def client_settings(conn: Connection, note: Note | None = None) -> Iterator[ClientSettings]:
    """Settings from flags/env/config, or from an embedded sandbox started for the duration."""
    if conn.sandbox_dir is None:
        yield resolve_settings(dict(conn.flags), os.environ, conn.config_file())
        return
    # Lazy: the sandbox pulls in an ASGI server and video encoders (start-up time of offline commands).
    from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

    with EmbeddedSandbox(data_dir=conn.sandbox_dir, config=SandboxConfig()) as sb:
        if note is not None:
            note(f"Embedded VNTANA sandbox at {sb.url} (data in {conn.sandbox_dir}).")
        extra = {k: v for k, v in conn.flags.items() if k == "download_route" and v is not None}
        yield ClientSettings(
            api_url=sb.url,
            token=SecretStr(sb.access_token),
            organization_uuid=sb.organization_uuid,
            **extra,
        )


def open_client(
    conn: Connection,
    stack: ExitStack,
    note: Note | None = None,
    shared: Callable[[ClientSettings], SharedSession] | None = None,
) -> VntanaClient:
    """A connected VntanaClient (and the embedded sandbox behind it, if asked), closed with ``stack``;
    ``shared`` makes the login and throttle to share with other processes (``apply --workers``)."""
    # Lazy: httpx and the client are needed only by commands that go online (start-up time of plan).
    from reconciler.client import VntanaClient

    if conn.verbose:
        verbose_logging()
    settings = stack.enter_context(client_settings(conn, note))
    return stack.enter_context(VntanaClient(settings, shared=shared(settings) if shared else None))


def verbose_logging() -> None:
    """``--verbose``: every API request on stderr (the client redacts tokens and signatures)."""
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpcore", "httpx", "uvicorn", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
