"""``reconciler state``: read the recorded state, and make the few edits people need by hand.

``list`` and ``show`` only read (no lock: the store's reads see a whole state, journal applied).
``rm`` and ``mv`` change the state and never the platform. They take the writer lock, check
every uuid before changing anything (an unknown uuid fails the whole command), and write the
state once: the store keeps the previous file as ``.backup`` and bumps the serial, so a plan
saved before the edit is refused as stale instead of acting on records that moved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.applying import state_flag
from reconciler.cli import (
    DEFAULT_STATE,
    SANDBOX_STATE,
    lock_timeout_option,
    manifests_option,
)
from reconciler.errors import ReconcilerError, StateError
from reconciler.loader import load_desired
from reconciler.plan import ActionKind
from reconciler.planner import build_plan
from reconciler.state import FileStateStore, ProductRecord, State, Status, open_store
from reconciler.state.history import StateHistory, Version
from reconciler.state.transfer import copy_state

F = TypeVar("F", bound=Callable[..., Any])
HASH_PREFIX = 12  # enough to tell specs apart at a glance; `state show` prints the whole hash
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotInStateError(StateError):
    """Products named on the command line that the state does not record."""

    def __init__(self, location: str, uuids: list[str]) -> None:
        super().__init__(
            f"not in the state {location}: {', '.join(uuids)}",
            hint=f"'reconciler state list{state_flag(location)}' shows the recorded products",
        )
        self.uuids = uuids


def state_options(f: F) -> F:
    f = click.option("--sandbox", is_flag=True, help=f"Use the sandbox's state ({SANDBOX_STATE}).")(f)
    return click.option(
        "--state",
        "state_path",
        type=str,
        metavar="FILE|URL",
        envvar="RECONCILER_STATE",
        help=f"State file, or a postgresql:// URL. Default: {DEFAULT_STATE} ({SANDBOX_STATE} "
        "with --sandbox).",
    )(f)


def format_option(f: F) -> F:
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
    )(f)


def _store(state_path: Path | None, sandbox: bool) -> FileStateStore:
    return open_store(state_path or (SANDBOX_STATE if sandbox else DEFAULT_STATE))  # type: ignore[return-value]


def _require(store: FileStateStore, state: State, uuids: list[str]) -> None:
    unknown = [u for u in uuids if u not in state.products]
    if unknown:
        raise NotInStateError(store.location, unknown)


def _uuids(values: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(v.strip().lower() for v in values))


@click.group("state")
def state_group() -> None:
    """Look at the recorded state, or edit it by hand. Never touches the platform."""


# -- list ----------------------------------------------------------------------------------


@state_group.command("list")
@state_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status]),
    help="Only products with this status (repeatable).",
)
@click.option(
    "--action",
    "actions",
    multiple=True,
    type=click.Choice([k.value for k in ActionKind]),
    help="Only products the plan gives this action (repeatable; reads the manifests).",
)
@manifests_option
@click.option("--match", "pattern", metavar="GLOB", help="Only products whose uuid or name matches the glob.")
@format_option
def list_command(
    state_path: Path | None,
    sandbox: bool,
    statuses: tuple[str, ...],
    actions: tuple[str, ...],
    manifests: tuple[Path, ...],
    pattern: str | None,
    fmt: str,
) -> None:
    """List recorded products; filter by status, planned action or glob.

    Columns: uuid, name, status, spec hash prefix, files, protect. Only products in the state are listed: with --action render (never rendered) that is none.
    """
    store = _store(state_path, sandbox)
    state = store.read()
    planned: dict[str, str] = {}
    if actions:
        plan = build_plan(
            load_desired(list(manifests) or [Path("manifests")]), state, location=store.location
        )
        planned = {a.product: a.kind.value for a in plan.actions}
    rows = []
    for uuid, rec in sorted(state.products.items()):
        if statuses and rec.status.value not in statuses:
            continue
        if actions and planned.get(uuid) not in actions:
            continue
        if pattern and not (
            fnmatchcase(uuid, pattern.lower()) or (rec.name and fnmatchcase(rec.name, pattern))
        ):
            continue
        rows.append(_row(uuid, rec, planned.get(uuid) if actions else None))
    if fmt == "json":
        click.echo(
            json.dumps({"state": _token(store, state), "products": rows}, indent=2, ensure_ascii=False)
        )
        return
    if rows:
        click.echo(_table(rows, with_action=bool(actions)))
    shown = f"{len(rows)} of {len(state.products)}" if len(rows) != len(state.products) else str(len(rows))
    click.echo(f"{shown} product(s); state {store.location}, serial {state.serial}.")


def _row(uuid: str, rec: ProductRecord, action: str | None) -> dict[str, Any]:
    row = {
        "uuid": uuid,
        "name": rec.name,
        "status": rec.status.value,
        "spec_hash": rec.spec_hash,
        "attachments": [a.kind for a in rec.attachments],
        "protect": rec.protect,
    }
    if action is not None:
        row["action"] = action
    return row


def _table(rows: list[dict[str, Any]], *, with_action: bool) -> str:
    head = ["UUID", "NAME", "STATUS", "SPEC", "FILES", "PROTECT"] + (["ACTION"] if with_action else [])
    cells = [
        [
            r["uuid"],
            r["name"] or "-",
            r["status"],
            r["spec_hash"][:HASH_PREFIX],
            ",".join(r["attachments"]) or "-",
            "yes" if r["protect"] else "no",
        ]
        + ([r["action"]] if with_action else [])
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *cells]
    )


def _token(store: FileStateStore, state: State) -> dict[str, Any]:
    return {"location": store.location, "lineage": state.lineage, "serial": state.serial}


# -- show ----------------------------------------------------------------------------------


@state_group.command("show")
@state_options
@click.argument("uuid")
@format_option
def show_command(state_path: Path | None, sandbox: bool, uuid: str, fmt: str) -> None:
    """Show one record: spec, status, request, files with hashes, history."""
    store = _store(state_path, sandbox)
    state = store.read()
    uuid = uuid.strip().lower()
    _require(store, state, [uuid])
    rec = state.products[uuid]
    if fmt == "json":
        changes = (
            {"changes": [v.to_json() for v in store.history(uuid, limit=5)]}
            if isinstance(store, StateHistory)
            else {}
        )
        click.echo(
            json.dumps(
                {"state": _token(store, state), "product": uuid, **rec.model_dump(mode="json"), **changes},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    lines = [
        f"{uuid}  {rec.name or ''}".rstrip(),
        f"  status:    {rec.status.value} (updated {rec.updated_at})",
    ]
    if rec.error:
        lines.append(f"  error:     {rec.error}")
    lines.append(f"  protect:   {'yes' if rec.protect else 'no'}")
    lines.append(f"  spec hash: {rec.spec_hash}")
    lines.append("  spec:")
    lines += [f"    {path}: {_v(value)}" for path, value in _flatten(rec.spec)]
    if rec.request is None:
        lines.append("  request:   none (imported, or recorded without a trigger)")
    else:
        r = rec.request
        lines.append(
            f"  request:   {r.request_id} for spec {r.spec_hash[:HASH_PREFIX]}, requested {r.requested_at}"
            + (f", accepted {r.accepted_at}" if r.accepted_at else ", not confirmed by the platform")
        )
    lines.append(f"  files ({len(rec.attachments)}):")
    lines += [
        f"    {a.kind:<9} {a.name}  {a.uuid}  sha256:{a.sha256}  {a.size} bytes  {a.content_type}"
        for a in rec.attachments
    ]
    lines.append(f"  history ({len(rec.history)} earlier render(s), newest first):")
    for past in rec.history:
        lines.append(f"    {past.recorded_at}  spec {past.spec_hash[:HASH_PREFIX]}  {_summary(past.spec)}")
        lines += [f"      {a.kind:<9} {a.name}  sha256:{a.sha256}  {a.size} bytes" for a in past.attachments]
    if isinstance(store, StateHistory):  # who wrote it, for a backend that keeps every serial
        lines.append("  changes (newest first; 'reconciler state history UUID' for more):")
        lines += [f"    {line}" for line in _version_lines(store.history(uuid, limit=5))]
    click.echo("\n".join(lines))


def _flatten(spec: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in sorted(spec):
        value = spec[key]
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((prefix + key, value))
    return out


def _summary(spec: dict[str, Any]) -> str:
    """One line for a past spec; tolerant of records from before specs were kept in history."""
    if not spec:
        return "(spec not recorded)"
    tt = spec.get("turntable", {})
    return (
        f"still {spec.get('imageFormat')} {spec.get('imageWidth')}x{spec.get('imageHeight')}, turntable "
        f"{tt.get('imageCount')} frames @ {tt.get('frameRate')} fps {tt.get('width')}x{tt.get('height')}"
        f"{' + GIF' if tt.get('includeGif') else ''}"
    )


def _v(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


# -- rm and mv -----------------------------------------------------------------------------


@state_group.command("rm")
@state_options
@lock_timeout_option
@click.argument("uuids", nargs=-1, required=True, metavar="UUID...")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
def rm_command(
    state_path: Path | None, sandbox: bool, lock_timeout: float, uuids: tuple[str, ...], dry_run: bool
) -> None:
    """Forget products; their renders stay on the platform.

    A product still in the manifests is then planned as new (or can be adopted again with
    'reconciler import')."""
    store = _store(state_path, sandbox)
    targets = _uuids(uuids)
    if dry_run:
        state = store.read()
        _require(store, state, targets)
        for uuid in targets:
            click.echo(f"would forget {_describe(uuid, state.products[uuid])}")
        click.echo(f"Dry run: the state was not changed ({store.location}, serial {state.serial}).")
        return
    with store.lock("state rm", timeout=lock_timeout):
        state = store.fold()
        _require(store, state, targets)
        before = state.serial
        forgotten = {uuid: state.products.pop(uuid) for uuid in targets}
        store.write(state)
    for uuid, rec in forgotten.items():
        click.echo(f"forgot {_describe(uuid, rec)}")
        if rec.status in (Status.REQUESTED, Status.IN_FLIGHT):
            click.echo(
                "  warning: it was in flight; its results may still land on the platform, and the next "
                "apply triggers it again"
            )
    click.echo(
        f"Removed {len(forgotten)} product(s) from {store.location} (serial {before} → {state.serial}); "
        f"the previous state is in {store.backup_path}. Nothing was changed on the platform."
    )


@state_group.command("mv")
@state_options
@lock_timeout_option
@click.argument("old")
@click.argument("new")
def mv_command(state_path: Path | None, sandbox: bool, lock_timeout: float, old: str, new: str) -> None:
    """Move a record to a new uuid (the product's uuid changed on the platform)."""
    store = _store(state_path, sandbox)
    old, new = old.strip().lower(), new.strip().lower()
    if not _UUID.match(new):
        raise ReconcilerError(
            f"{new!r} is not a product uuid", hint="expected the form 3f2b8c1e-0000-4000-8000-000000000000"
        )
    if old == new:
        raise ReconcilerError(f"{old} is both the old and the new uuid; nothing to move")
    with store.lock("state mv", timeout=lock_timeout):
        state = store.fold()
        _require(store, state, [old])
        if new in state.products:
            raise StateError(
                f"{new} is already in the state {store.location}; refusing to overwrite its record",
                hint=f"run 'reconciler state rm{state_flag(store.location)} {new}' first if that "
                "record is obsolete",
            )
        before = state.serial
        rec = state.products.pop(old)
        state.products[new] = rec
        store.write(state)
    click.echo(
        f"Moved {_describe(old, rec)} to {new} (serial {before} → {state.serial}); the previous state "
        f"is in {store.backup_path}."
    )
    click.echo(
        f"Declare the product as {new} in the manifests too: a product still declared as {old} is "
        "planned as new."
    )


def _describe(uuid: str, rec: ProductRecord) -> str:
    files = len(rec.attachments)
    return f"{uuid} {rec.name or ''} ({rec.status.value}, {files} file{'s' if files != 1 else ''})".replace(
        "  ", " "
    )


# -- migrate, pull and history ---------------------------------------------------------------


@state_group.command("migrate")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@lock_timeout_option
@click.option("--force", is_flag=True, help="Replace a state TO already holds.")
def migrate_command(source: str, target: str, lock_timeout: float, force: bool) -> None:
    """Copy the state FROM one store TO another (a file or a postgresql:// URL), keeping lineage and serial.

    Both are locked while copying; FROM is left as it was. Saved plans made against FROM
    apply to TO. Afterwards point every runner at TO: two copies that both take writes drift apart."""
    copied = copy_state(open_store(source), open_store(target), force=force, lock_timeout=lock_timeout)
    state, src, dst = copied.state, open_store(source).location, open_store(target).location
    if copied.unchanged:
        click.echo(f"{dst} already holds lineage {state.lineage} at serial {state.serial}; nothing copied.")
        return
    click.echo(
        f"Copied {len(state.products)} product(s) from {src} to {dst} (lineage {state.lineage}, serial "
        f"{state.serial})."
    )
    if copied.replaced is not None:
        old = copied.replaced
        click.echo(
            f"  replaced: lineage {old.lineage or 'not set'}, serial {old.serial}, {len(old.products)} "
            "product(s)"
        )
    click.echo(f"Use --state {dst} from now on (or set RECONCILER_STATE); {src} was not changed.")


@state_group.command("pull")
@state_options
@click.option(
    "--serial",
    type=click.IntRange(min=0),
    help="The state as it was at this serial (PostgreSQL keeps every serial).",
)
def pull_command(state_path: str | None, sandbox: bool, serial: int | None) -> None:
    """Print the state as the JSON file store writes it: 'reconciler state pull > copy.state.json'."""
    store = _store(state_path, sandbox)
    state = store.read() if serial is None else _history_of(store).read_serial(serial)
    click.echo(state.to_json(), nl=False)


@state_group.command("history")
@state_options
@click.argument("uuid", required=False)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest serials to show."
)
@format_option
def history_command(state_path: str | None, sandbox: bool, uuid: str | None, limit: int, fmt: str) -> None:
    """Who changed the state (or one product), when, in which operation and from which saved plan."""
    store = _store(state_path, sandbox)
    versions = _history_of(store).history(uuid.strip().lower() if uuid else None, limit=limit)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"location": store.location, "versions": [v.to_json() for v in versions]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if not versions:
        click.echo(f"No history{f' for {uuid}' if uuid else ''} in {store.location}.")
        return
    click.echo("\n".join(_version_lines(versions)))


def _history_of(store: Any) -> StateHistory:
    if not isinstance(store, StateHistory):
        raise StateError(
            f"{store.location} is a JSON file: it keeps no history of its own (only its previous "
            "version, as .backup)",
            hint=f"a postgresql:// state keeps every serial: 'reconciler state migrate {store.location} "
            "postgresql://HOST/DBNAME' copies it there; then pass that URL as --state",
        )
    return store


def _version_lines(versions: list[Version]) -> list[str]:
    lines = []
    for v in versions:
        by = f"{v.who}@{v.host}" + (f" (db {v.db_user})" if v.db_user and v.db_user != v.who else "")
        changed = ", ".join(f"{u} {s}" for u, s in v.changes.items())
        more = v.products - len(v.changes)
        what = (changed + (f" and {more} more" if more > 0 else "")) if v.products else "no product changed"
        lines.append(f"serial {v.serial:<6} {v.at}  {v.operation} by {by}: {what}")
        if v.plan:
            lines.append(f"             plan {v.plan}")
    return lines
