"""One error tree for everything a user can see.

The CLI is the only place these become messages and exit codes. Each class builds its
message from structured fields and may carry a ``hint`` (what to do next). Foreign
exceptions (httpx, ruamel, pydantic, OSError) are translated at the module boundary that
meets them and chained with ``raise ... from exc``.

Every class below is a ``ReconcilerError``. The CLI (``reconciler.cli``, its click group's
``invoke``) prints ``Error: <message>`` and ``Hint: <hint>`` on stderr, never a
traceback, and exits with the class's ``exit_code``: 1 for every class but one, so the exit
code says "failed" and the message says why; ``RunInterruptedError`` exits 3 ("stopped by a
signal, checkpointed: continue later"). The other exit codes are not errors of this
tree: 0 success; 2 only from ``plan --detailed-exitcode`` ("changes present"); 130 on
Ctrl-C; 141 when the reader of stdout went away; click's usage errors exit 1 too; anything
else is a bug, printed with its traceback and "Internal error", exit 1. Classes defined
outside this module are drawn with their module (they belong to one command or backend).

    ReconcilerError                                                   exit 1
    ├── ManifestError           one or more diagnostics with file:line:col
    ├── ConfigError             bad flag / environment / config file value
    │   └── PlanOptionsError    plan shaping options that contradict each other (also a ValueError)
    ├── SelectionError          --target/--exclude patterns that match no product
    ├── StateError
    │   ├── StateCorruptError   unreadable or invalid state file (never overwritten)
    │   ├── StateVersionError   written by a newer reconciler
    │   │   └── StateSchemaError      state/pgschema.py: the database schema is newer
    │   ├── StateLockedError    another process holds the lock (carries the holder)
    │   ├── LockNotFoundError   force-unlock of an id that is not held
    │   ├── StateWriteError     the disk refused a write (full, read-only, permission);
    │   │                       the state stays the last good one
    │   ├── StateReadError      this user may not read the state (not damage: nothing changed)
    │   ├── LockLostError       state/pgstore.py: a write under a lock this run no longer holds
    │   └── NotInStateError     state_edits.py: products named that the state does not record
    ├── PlanFileError           unreadable saved plan
    │   └── StalePlanError      saved plan no longer matches the state (lineage/serial)
    ├── ApiError                anything the VNTANA API (or the way to it) answered badly
    │   ├── TransientApiError   429, 5xx, connection trouble: retry later (retry_after)
    │   └── PermanentApiError   400/403/404/422: retrying will not help
    │       └── AuthenticationError  401 even after one fresh login
    │           └── TokenRejected     client/errors.py: handled inside the client (one fresh
    │                                 login); leaves it only when the fresh token is refused too
    ├── CredentialsError        the token or its role cannot do what the plan needs: the run stops
    ├── LargeChangeError        the plan trips the large-change breaker (see --allow-large)
    ├── OverBudgetError         the plan exceeds the budget (see --allow-over-budget)
    ├── DownloadError           a result could not be fetched or failed its size check
    ├── ApplyFailedError        the run finished but some products failed
    ├── RunInterruptedError     SIGTERM/SIGINT stopped apply or collect, checkpointed (exit 3)
    ├── WorkspaceError          a manifest's workspace: names no workspace the user may see
    ├── ImportFailedError       importing.py: import finished, some products could not be examined
    ├── InspectError            renderfiles.py: a downloaded file is not the image or video it should be
    ├── DoctorProblems          doctor.py: problems the client cannot work around
    ├── FormatError             formatting.py: fmt would change what a manifest means
    ├── GalleryError            gallery/model.py: the gallery cannot be built from what it was given
    ├── GitHubError             github/rest.py: GitHub refused or failed a request
    │   └── GitHubPermissionError  github/rest.py: 401/403 that is not a rate limit
    └── SandboxDataError        sandbox/store.py: the sandbox's data directory cannot be used

Not in the tree, on purpose: exceptions that are signals inside one module and never
leave it (``yamlfast.Refused``/``Unsupported``, ``client.retry.AlreadyRetried``,
``client.download.RouteUnavailable``/``_Renew``, ``github.rest._Retry``,
``state.filestore._Damaged``), and ``sandbox.envelope.ApiError``, which is the sandbox
server's way of answering an HTTP error and is turned into a response, never raised to a
user. ``tests/test_errors.py`` checks this drawing against the classes.
"""

from __future__ import annotations

import errno
from typing import Any


class ReconcilerError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ManifestError(ReconcilerError):
    """Manifests failed to load or validate; ``diagnostics`` lists the problems found first
    (the loader keeps a bounded number) and ``more`` counts the others."""

    def __init__(self, diagnostics: list[Any], *, more: int = 0) -> None:
        self.diagnostics = list(diagnostics)
        self.more = more
        count = len(self.diagnostics) + more
        head = f"{count:,} error{'s' if count != 1 else ''} in manifests"
        body = "\n".join(d.format() for d in self.diagnostics)
        if more:
            body += (
                f"\n... and {more:,} more (the first {len(self.diagnostics)} are shown: fix them and "
                "run again to see the rest)"
            )
        super().__init__(f"{head}:\n{body}" if body else head)


class ConfigError(ReconcilerError):
    """A setting from flags, environment or config file is missing or invalid."""


class PlanOptionsError(ConfigError, ValueError):
    """Plan shaping options that cannot be honoured together (a ValueError too, as it was)."""


class SelectionError(ReconcilerError):
    """``--target`` / ``--exclude`` patterns that match no product: a typo must not pass as
    "No changes" (issue 13)."""


class StateError(ReconcilerError):
    """The state store could not be read, written or locked."""


class StateWriteError(StateError):
    """The disk refused one of the store's files (full, read-only, no permission). Raised by the
    store before anything was replaced: the state on disk is the last good one."""

    def __init__(self, path: str, doing: str, exc: OSError, *, hint: str | None = None) -> None:
        self.path = path
        self.errno = exc.errno
        cause = errno.errorcode.get(exc.errno or 0, "")
        reason = exc.strerror or type(exc).__name__
        super().__init__(
            f"cannot {doing} {path}: {reason}{f' ({cause})' if cause else ''}",
            hint=hint or _WRITE_HINTS.get(exc.errno or 0, "check the file and its folder"),
        )


_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space (or point --state at another disk) and run again; "
    "the state was left as it was before this write",
    errno.EDQUOT: "the disk quota is used up: free some space and run again; "
    "the state was left as it was before this write",
    errno.EROFS: "the file system is mounted read-only: remount it read-write, or point --state at a "
    "writable place; the state was left as it was",
    errno.EACCES: "this user may not write there: fix the permissions of the file and its folder, or run "
    "as the user that owns them; the state was left as it was",
    errno.EPERM: "this user may not write there: fix the permissions of the file and its folder, or run "
    "as the user that owns them; the state was left as it was",
}


class StateReadError(StateError):
    """This user may not read one of the store's files (EACCES, EPERM): not damage, nothing is
    wrong with the file, and nothing was changed."""

    def __init__(self, path: str, exc: OSError) -> None:
        self.path = path
        self.errno = exc.errno
        cause = errno.errorcode.get(exc.errno or 0, "")
        super().__init__(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}{f' ({cause})' if cause else ''}",
            hint="this user may not read it: fix the permissions of the file and its folder, or run as "
            "the user that owns them; nothing was changed",
        )


class StateCorruptError(StateError):
    """The state (or its journal) cannot be used; it is never overwritten. The store that meets
    it gives the hint, naming only the ways back that exist (a backup that reads, a version
    in git)."""

    def __init__(self, path: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"state file {path} is unreadable: {problem}", hint=hint or "the file was left untouched"
        )
        self.path = path


class StateVersionError(StateError):
    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"state file {path} has format_version {found}, newer than this reconciler "
            f"understands ({supported})",
            hint="upgrade reconciler; the state was not modified",
        )


class StateLockedError(StateError):
    def __init__(self, path: str, holder: dict[str, Any] | None) -> None:
        self.holder = holder or {}
        if holder:
            desc = ", ".join(
                f"{k}={holder[k]}" for k in ("id", "operation", "who", "pid", "host", "since") if k in holder
            )
            msg = f"state {path} is locked by another process ({desc})"
            hint = (
                "wait for it to finish, retry with --lock-timeout SECONDS, or if that process is gone "
                f"run: reconciler force-unlock --state {path} {holder.get('id', 'ID')}"
            )
        else:
            msg = f"state {path} is locked by another process (holder unknown)"
            hint = "retry with --lock-timeout SECONDS"
        super().__init__(msg, hint=hint)


class LockNotFoundError(StateError):
    pass


class PlanFileError(ReconcilerError):
    """A saved plan cannot be read or used."""


class StalePlanError(PlanFileError):
    def __init__(
        self, moved: list[str], *, plan: str = "reconciler plan", apply: str = "reconciler apply"
    ) -> None:
        super().__init__(
            "saved plan is stale: " + "; ".join(moved),
            hint=f"make the plan again ('{plan} --out FILE'), review it, then '{apply} FILE'",
        )
        self.moved = moved


class ApiError(ReconcilerError):
    """The VNTANA API refused or failed a call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: list[str] | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{method} {path}: " if method and path else ""
        super().__init__(f"{where}{message}", hint=hint)
        self.status = status
        self.codes = list(codes or [])
        self.method = method
        self.path = path


class TransientApiError(ApiError):
    """Worth retrying: throttling (429), server errors (5xx), connection failures."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentApiError(ApiError):
    """Retrying the same call will not help (400, 403, 404, 422)."""


class AuthenticationError(PermanentApiError):
    """Still 401 after one fresh login, or the login itself was refused."""


class CredentialsError(ReconcilerError):
    """The token is refused, or its user's role or scope may not do what the plan needs. Raised
    before the first checkpoint when it can be seen then; mid-run it stops the run and leaves
    every product as it was (apply says which)."""


class LargeChangeError(ReconcilerError):
    """The plan exceeds a large-change limit and --allow-large was not given."""

    def __init__(self, tripped: list[str]) -> None:
        super().__init__(
            "refusing a large change: " + "; ".join(tripped),
            hint="check the plan; if it is what you want, run again with --allow-large",
        )
        self.tripped = tripped


class OverBudgetError(ReconcilerError):
    """The plan triggers more than the budget allows and --allow-over-budget was not given."""

    def __init__(self, over: list[str]) -> None:
        super().__init__(
            "refusing a plan over budget: " + "; ".join(over),
            hint="check the plan; narrow it (--target), raise the budget (budget: in reconciler.yaml, "
            "or --max-frames, --max-requests, --max-video-seconds), or, if it is what you want, "
            "run again with --allow-over-budget",
        )
        self.over = over


class DownloadError(ReconcilerError):
    """A result could not be downloaded intact."""


class ApplyFailedError(ReconcilerError):
    """Apply finished, but some products failed; they are retried by the next plan."""


class RunInterruptedError(ReconcilerError):
    """SIGTERM or SIGINT (a CI job's time limit, a cancel, Ctrl-C) stopped apply or collect: no
    further trigger, what was under way checkpointed, the lock released. Exit 3, so a CI step can
    tell "stopped, continue later" from a failure (docs/apply.md, "Runs that outlive a CI job")."""

    exit_code = 3

    def __init__(
        self, message: str, *, in_flight: list[str], not_triggered: list[str], hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.in_flight = in_flight
        self.not_triggered = not_triggered


class WorkspaceError(ReconcilerError):
    """A manifest's ``workspace:`` names no workspace of the organization (or cannot be used)."""
