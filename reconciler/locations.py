"""Where things are kept by default, and the commands a hint tells the user to type again.

The sandbox's renders do not exist on the real platform, so its state is kept apart
(``SANDBOX_STATE``). A hint names the sandbox and any state that is not the default one, so it
works when followed, and never shows a secret (a database password) while doing so.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Protocol

DEFAULT_STATE = Path("state/renders.state.json")
SANDBOX_STATE = Path("state/sandbox.state.json")
"""The sandbox's renders do not exist on the real platform: their state is kept apart."""
DEFAULT_SANDBOX_DIR = Path(".reconciler/sandbox")


class Target(Protocol):
    """What a command line needs to reach the same state and platform again."""

    @property
    def state_path(self) -> Path | str: ...

    @property
    def sandbox_dir(self) -> Path | None: ...


def default_state(*, sandbox: bool) -> Path:
    """The state file used when ``--state`` is not given."""
    return SANDBOX_STATE if sandbox else DEFAULT_STATE


def same_location(a: str, b: str) -> bool:
    """Whether two state locations name the same state (paths resolved, URLs compared as text)."""
    if "://" in a or "://" in b:
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def command(target: Target, verb: str) -> str:
    """``reconciler VERB`` as this run would need it typed again: the sandbox and a state that is
    not the default one are named, so a hint works when followed."""
    parts = ["reconciler", verb]
    if target.sandbox_dir is not None:
        parts.append("--sandbox")
        if target.sandbox_dir != DEFAULT_SANDBOX_DIR:
            parts += ["--sandbox-dir", shlex.quote(str(target.sandbox_dir))]
    if target.state_path != default_state(sandbox=target.sandbox_dir is not None):
        parts += ["--state", state_argument(str(target.state_path))]
    return " ".join(parts)


def state_flag(location: str) -> str:
    """What a hint's command needs to reach the state at ``location``: nothing for the default
    state, `` --sandbox`` for the sandbox's, else `` --state ...`` (never with a secret)."""
    if same_location(location, str(DEFAULT_STATE)):
        return ""
    if same_location(location, str(SANDBOX_STATE)):
        return " --sandbox"
    if "://" in location and os.environ.get("RECONCILER_STATE") and "***" in location:
        return ' --state "$RECONCILER_STATE"'
    return " --state " + state_argument(location)


def state_argument(location: str) -> str:
    """``--state``'s value for a hint, never with a secret in it: a URL with a password is named by
    the variable that holds it when it came from one, else shown with ``***`` for the password."""
    if "://" not in location:
        return shlex.quote(location)
    if os.environ.get("RECONCILER_STATE") == location:
        return '"$RECONCILER_STATE"'
    # Lazy: psycopg's URL parsing is needed only for postgresql:// states (start-up time).
    from reconciler.state.pgstore import parse_location

    return parse_location(location).display
