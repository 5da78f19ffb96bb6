"""``reconciler state``: read the recorded state, and make the few edits people need by hand
(reconciler.state_edits); and ``force-unlock``.

``list`` and ``show`` only read (no lock: the store's reads see a whole state, journal applied).
``rm`` and ``mv`` change the state and never the platform.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import (
    format_option,
    lock_timeout_option,
    manifest_paths,
    manifests_option,
    state_from,
)
from reconciler.cli.options import state_option as _state_option
from reconciler.locations import SANDBOX_STATE
from reconciler.plan import ActionKind
from reconciler.state import StateStore, Status, open_store
from reconciler.state.history import StateHistory
from reconciler.state.transfer import copy_state
from reconciler.state_edits import forget, history_of, move, require, select, uuids_of
from reconciler.views.state import (
    describe,
    history_json,
    list_footer,
    list_json,
    product_row,
    product_table,
    show_json,
    show_text,
    version_lines,
)


def state_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--sandbox", is_flag=True, help=f"Use the sandbox's state ({SANDBOX_STATE}).")(f)
    return _state_option(with_sandbox=True)(f)


def _store(state_path: str | None, sandbox: bool) -> StateStore:
    return open_store(state_from(state_path, sandbox=sandbox))


@click.group("state")
def state_group() -> None:
    """Look at the recorded state, or edit it by hand. Never touches the platform."""


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
@format_option("text", "json")
def list_command(
    state_path: str | None,
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
    listing = select(
        store.read(),
        store.location,
        statuses=statuses,
        actions=actions,
        manifests=manifest_paths(manifests),
        pattern=pattern,
    )
    rows = [product_row(uuid, rec, action) for uuid, rec, action in listing.products]
    if fmt == "json":
        click.echo(list_json(store.location, listing.state, rows))
        return
    if rows:
        click.echo(product_table(rows, with_action=bool(actions)))
    click.echo(list_footer(store.location, listing.state, len(rows)))


@state_group.command("show")
@state_options
@click.argument("uuid")
@format_option("text", "json")
def show_command(state_path: str | None, sandbox: bool, uuid: str, fmt: str) -> None:
    """Show one record: spec, status, request, files with hashes, history."""
    store = _store(state_path, sandbox)
    state = store.read()
    uuid = uuid.strip().lower()
    require(store.location, state, [uuid])
    changes = store.history(uuid, limit=5) if isinstance(store, StateHistory) else None
    if fmt == "json":
        click.echo(show_json(store.location, state, uuid, changes))
    else:
        click.echo(show_text(uuid, state.products[uuid], changes))


@state_group.command("rm")
@state_options
@lock_timeout_option
@click.argument("uuids", nargs=-1, required=True, metavar="UUID...")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
def rm_command(
    state_path: str | None, sandbox: bool, lock_timeout: float, uuids: tuple[str, ...], dry_run: bool
) -> None:
    """Forget products; their renders stay on the platform.

    A product still in the manifests is then planned as new (or can be adopted again with
    'reconciler import')."""
    store = _store(state_path, sandbox)
    targets = uuids_of(uuids)
    if dry_run:
        state = store.read()
        require(store.location, state, targets)
        for uuid in targets:
            click.echo(f"would forget {describe(uuid, state.products[uuid])}")
        click.echo(f"Dry run: the state was not changed ({store.location}, serial {state.serial}).")
        return
    edit = forget(store, targets, lock_timeout=lock_timeout)
    for uuid, rec in edit.records.items():
        click.echo(f"forgot {describe(uuid, rec)}")
        if rec.status in (Status.REQUESTED, Status.IN_FLIGHT):
            click.echo(
                "  warning: it was in flight; its results may still land on the platform, and the next "
                "apply triggers it again"
            )
    click.echo(
        f"Removed {len(edit.records)} product(s) from {store.location} (serial {edit.before} → {edit.after}); "
        f"the previous state is in {edit.backup}. Nothing was changed on the platform."
    )


@state_group.command("mv")
@state_options
@lock_timeout_option
@click.argument("old")
@click.argument("new")
def mv_command(state_path: str | None, sandbox: bool, lock_timeout: float, old: str, new: str) -> None:
    """Move a record to a new uuid (the product's uuid changed on the platform)."""
    store = _store(state_path, sandbox)
    old, new = old.strip().lower(), new.strip().lower()
    edit = move(store, old, new, lock_timeout=lock_timeout)
    click.echo(
        f"Moved {describe(old, edit.records[old])} to {new} (serial {edit.before} → {edit.after}); the "
        f"previous state is in {edit.backup}."
    )
    click.echo(
        f"Declare the product as {new} in the manifests too: a product still declared as {old} is "
        "planned as new."
    )


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
    state = store.read() if serial is None else history_of(store).read_serial(serial)
    click.echo(state.to_json(), nl=False)


@state_group.command("history")
@state_options
@click.argument("uuid", required=False)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest serials to show."
)
@format_option("text", "json")
def history_command(state_path: str | None, sandbox: bool, uuid: str | None, limit: int, fmt: str) -> None:
    """Who changed the state (or one product), when, in which operation and from which saved plan."""
    store = _store(state_path, sandbox)
    versions = history_of(store).history(uuid.strip().lower() if uuid else None, limit=limit)
    if fmt == "json":
        click.echo(history_json(store.location, versions))
        return
    if not versions:
        click.echo(f"No history{f' for {uuid}' if uuid else ''} in {store.location}.")
        return
    click.echo("\n".join(version_lines(versions)))


@click.command("force-unlock")
@_state_option()
@click.option("--sandbox", is_flag=True, help=f"The sandbox's state ({SANDBOX_STATE}).")
@click.argument("lock_id")
def force_unlock(state_path: str | None, sandbox: bool, lock_id: str) -> None:
    """Release a lock left behind by a process that is gone. Give the id the lock error printed."""
    info = open_store(state_from(state_path, sandbox=sandbox)).force_unlock(lock_id)
    click.echo(
        f"Released lock {info.id} ({info.operation} by {info.who} on {info.host}, pid {info.pid}, "
        f"since {info.since})."
    )
