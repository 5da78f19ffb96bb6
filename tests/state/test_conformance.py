"""The contract of every state backend (Terraform's statemgr.TestFull): one suite, run per backend.

Each test runs against the JSON file store and against PostgreSQL (a real server, started by
the ``pg_server`` fixture). Locks are tested across real processes: children open the store
from its location, as another machine's run would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from reconciler.errors import LockNotFoundError, StateError, StateLockedError, StateVersionError
from reconciler.state import (
    FORMAT_VERSION,
    Attachment,
    PastRender,
    ProductRecord,
    RenderRequest,
    State,
    StateStore,
    Status,
    open_store,
)
from reconciler.state.history import StateHistory
from reconciler.state.transfer import copy_state

ROOT = Path(__file__).resolve().parents[2]


def uuid_of(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def rec(i: int = 0, status: Status = Status.RENDERED) -> ProductRecord:
    att = Attachment(
        kind="still",
        uuid=f"att-{i}",
        name="still.png",
        sha256=f"{i:064x}",
        size=10 + i,
        content_type="image/png",
    )
    return ProductRecord(
        name=f'Product {i} "ü"',
        protect=i % 3 == 0,
        spec={
            "imageWidth": 1200,
            "imageHeight": 1200,
            "imageFormat": "PNG",
            "turntable": {"includeGif": True},
        },
        spec_hash=f"{i:064x}",
        status=status,
        error="boom" if status is Status.FAILED else None,
        request=RenderRequest(
            request_id=f"req-{i}",
            spec_hash=f"{i:064x}",
            requested_at="2026-01-01T00:00:00Z",
            accepted_at="2026-01-01T00:00:01Z",
        ),
        attachments=[att],
        updated_at="2026-01-01T00:00:00Z",
        history=[
            PastRender(
                spec_hash="b" * 64,
                spec={"imageWidth": 1000},
                recorded_at="2025-12-01T00:00:00Z",
                attachments=[att],
            )
        ],
    )


def state_with(n: int) -> State:
    return State(lineage="", products={uuid_of(i): rec(i) for i in range(n)})


@dataclass
class Backend:
    """One backend under test: where its state lives, and how to reach behind the store's back."""

    kind: str
    location: str
    """What --state would be given (credentials included: children need them)."""
    set_format_version: Callable[[int], None]

    sibling: str
    """A second, empty state of the same backend (another file, another workspace)."""

    def open(self) -> StateStore:
        return open_store(self.location)

    def child(self, script: str, *args: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), self.location, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kw,
        )


def _file_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "state" / "renders.state.json"

    def set_format_version(version: int) -> None:
        data = json.loads(path.read_text())
        data["format_version"] = version
        path.write_text(json.dumps(data))

    return Backend("file", str(path), set_format_version, str(tmp_path / "other" / "renders.state.json"))


def _pg_backend(url: str) -> Backend:
    import psycopg

    base, _, workspace = url.partition("#")

    def set_format_version(version: int) -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                "UPDATE reconciler.workspaces SET format_version = %s WHERE name = %s", (version, workspace)
            )

    return Backend("postgresql", url, set_format_version, url + "b")


@pytest.fixture(params=["file", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        return _file_backend(tmp_path)
    return _pg_backend(request.getfixturevalue("pg_url"))


def write(store: StateStore, state: State) -> None:
    with store.lock("test"):
        store.write(state)


# -- reading and writing ---------------------------------------------------------------------


def test_a_new_state_reads_as_empty(backend: Backend) -> None:
    state = backend.open().read()
    assert (state.format_version, state.serial, state.lineage, state.products) == (FORMAT_VERSION, 0, "", {})


def test_writes_without_the_lock_are_refused(backend: Backend) -> None:
    store = backend.open()
    state = state_with(1)
    with pytest.raises(StateError, match="without holding its lock"):
        store.write(state)
    with pytest.raises(StateError, match="without holding its lock"):
        store.checkpoint(state, uuid_of(1), rec(1))
    assert backend.open().read().products == {}


def test_write_fixes_the_lineage_once_and_bumps_the_serial(backend: Backend) -> None:
    store = backend.open()
    write(store, state_with(2))
    first = backend.open().read()
    assert first.serial == 1 and len(first.lineage) == 36
    first.products[uuid_of(5)] = rec(5)
    del first.products[uuid_of(0)]
    write(store, first)
    second = backend.open().read()
    assert (second.serial, second.lineage) == (2, first.lineage)
    assert sorted(second.products) == [uuid_of(1), uuid_of(5)]


def test_a_state_reads_back_exactly_as_written(backend: Backend) -> None:
    state = State(
        lineage="", products={uuid_of(i): rec(i, s) for i, s in zip(range(9, 0, -2), Status, strict=False)}
    )
    store = backend.open()
    write(store, state)
    assert backend.open().read().to_json() == state.to_json()


def test_a_records_workspace_and_requested_spec_read_back_in_checkpoints_and_writes(backend: Backend) -> None:
    """Issue 11's optional fields: kept when set, absent (as before) when not, by every backend."""
    pending = rec(3, Status.IN_FLIGHT)
    assert pending.request is not None
    pending = pending.model_copy(
        update={
            "workspace": "a983026e-cb31-58d8-8ec4-6753670e6cfd",
            "request": pending.request.model_copy(update={"spec": dict(pending.spec)}),
        }
    )
    store = backend.open()
    write(store, state_with(1))
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(3), pending)
        journalled = backend.open().read().products[uuid_of(3)]
        store.write(state, bump=False)
    folded = backend.open().read()
    assert journalled == pending == folded.products[uuid_of(3)]
    assert "workspace" not in folded.products[uuid_of(0)].model_dump(mode="json")


def test_checkpoints_are_durable_at_once_and_each_bumps_the_serial(backend: Backend) -> None:
    store = backend.open()
    write(store, state_with(2))
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(7), rec(7, Status.IN_FLIGHT))
        store.checkpoint(state, uuid_of(0), None)
        seen = backend.open().read()  # another reader, while the writer still holds the lock
        store.checkpoint(state, uuid_of(7), rec(7))
    assert state.serial == 4
    assert (seen.serial, sorted(seen.products)) == (3, [uuid_of(1), uuid_of(7)])
    again = backend.open().read()
    assert again.serial == 4 and sorted(again.products) == [uuid_of(1), uuid_of(7)]
    assert again.products[uuid_of(7)] == rec(7)


def test_fold_keeps_content_and_serial(backend: Backend) -> None:
    store = backend.open()
    write(store, state_with(1))
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(3), rec(3))
        store.write(state, bump=False)  # what apply does at the end of a run
        folded = store.fold()
    assert folded.serial == 2 and folded.to_json() == state.to_json()
    assert backend.open().read().to_json() == state.to_json()


def test_a_first_run_that_dies_before_any_full_write_keeps_its_checkpoints(backend: Backend) -> None:
    store = backend.open()
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(1), rec(1, Status.REQUESTED))
    again = backend.open().read()
    assert again.lineage == state.lineage != ""
    assert again.products[uuid_of(1)].status is Status.REQUESTED


def test_write_without_bump_stores_a_state_at_its_own_serial(backend: Backend) -> None:
    """What 'state migrate' relies on: the copy keeps lineage and serial."""
    copy = state_with(3)
    copy.lineage, copy.serial = "6f1c2c9e-0000-4000-8000-000000000000", 41
    store = backend.open()
    with store.lock("state migrate"):
        store.write(copy, bump=False)
    back = backend.open().read()
    assert (back.lineage, back.serial) == (copy.lineage, 41)
    assert back.to_json() == copy.to_json()


def test_the_state_before_the_last_write_is_where_backup_path_says(backend: Backend) -> None:
    store = backend.open()
    write(store, state_with(2))
    before = backend.open().read()
    after = backend.open().read()
    after.products[uuid_of(7)] = rec(7)
    write(store, after)
    where = store.backup_path
    if isinstance(store, StateHistory):  # a history keeps every serial: backup_path says how to get it
        assert f"--serial {before.serial}" in str(where) and store.location in str(where)
        previous = store.read_serial(before.serial)
    else:  # a file beside the state, itself a state file
        previous = open_store(where).read()
    assert previous.to_json() == before.to_json()


def test_location_is_what_users_are_shown_and_never_holds_a_password(backend: Backend) -> None:
    store = backend.open()
    password = urlsplit(backend.location).password if backend.kind == "postgresql" else None
    if password:
        assert password not in store.location
    else:
        assert store.location == backend.location
    write(store, state_with(1))
    assert open_store(backend.location).location == store.location  # the same state, the same name


def test_the_lock_describes_its_holder_and_is_free_after_the_block(backend: Backend) -> None:
    store = backend.open()
    with store.lock("state rm", timeout=5) as info:
        assert (info.operation, info.pid, info.host) == ("state rm", os.getpid(), socket.gethostname())
        with pytest.raises(StateLockedError) as busy, backend.open().lock("apply"):
            pass
        assert (busy.value.holder["id"], busy.value.holder["operation"]) == (info.id, "state rm")
    with backend.open().lock("apply") as again:
        assert again.id != info.id


def test_only_backends_that_keep_a_history_say_so(backend: Backend) -> None:
    store = backend.open()
    write(store, state_with(1))
    write(store, backend.open().read())
    if backend.kind == "file":
        assert not isinstance(store, StateHistory)  # its history is git's
        return
    assert isinstance(store, StateHistory)
    assert [v.serial for v in store.history()] == [2, 1]
    assert [v.operation for v in store.history(limit=1)] == ["test"]


def test_migrate_copies_lineage_serial_and_records_into_an_empty_store(backend: Backend) -> None:
    source = backend.open()
    write(source, state_with(3))
    with source.lock("apply"):
        state = source.fold()
        source.checkpoint(state, uuid_of(9), rec(9))
    target = open_store(backend.sibling)
    copied = copy_state(source, target)
    assert copied.replaced is None and not copied.unchanged
    assert open_store(backend.sibling).read().to_json() == backend.open().read().to_json()
    again = copy_state(source, target)
    assert again.unchanged  # the same lineage at the same serial: nothing written
    changed = target.read()
    del changed.products[uuid_of(0)]
    write(target, changed)
    with pytest.raises(StateError, match="already holds a state"):
        copy_state(source, target)


def test_a_state_from_a_newer_reconciler_is_refused_and_left_alone(backend: Backend) -> None:
    write(backend.open(), state_with(1))
    backend.set_format_version(FORMAT_VERSION + 1)
    with pytest.raises(StateVersionError) as info:
        backend.open().read()
    assert f"has format_version {FORMAT_VERSION + 1}, newer than this reconciler understands" in str(
        info.value
    )
    assert info.value.hint == "upgrade reconciler; the state was not modified"
    store = backend.open()
    with pytest.raises(StateVersionError), store.lock("apply"):
        store.fold()  # what a writing command does first
    backend.set_format_version(FORMAT_VERSION)
    assert backend.open().read().serial == 1


def test_readers_see_whole_states_while_a_writer_checkpoints(backend: Backend) -> None:
    store = backend.open()
    write(store, State(lineage=""))
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        reading = backend.open()
        while not stop.is_set():
            try:
                state = reading.read()
            except BaseException as exc:
                errors.append(exc)
                return
            seen.append((state.serial, len(state.products)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with store.lock("apply"):
            state = store.fold()
            for i in range(40):
                store.checkpoint(state, uuid_of(i), rec(i))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen and all(
        products == serial - 1 for serial, products in seen
    )  # never a half-applied checkpoint


# -- several processes -----------------------------------------------------------------------

CHECKPOINTER = """
import sys
from reconciler.state import ProductRecord, Status, open_store
location, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_store(location)
for i in range(first, first + count):
    record = ProductRecord(spec={"imageWidth": 100 + i}, spec_hash=f"{i:064x}", status=Status.RENDERED,
                           updated_at="2026-01-01T00:00:00Z")
    with store.lock("worker", timeout=120):
        state = store.read()
        store.checkpoint(state, f"{i:08x}-0000-4000-8000-000000000000", record)
"""


def test_concurrent_checkpoints_from_several_processes_lose_nothing(backend: Backend) -> None:
    write(backend.open(), State(lineage=""))
    processes, per_process = 4, 12
    children = [backend.child(CHECKPOINTER, str(p * per_process), str(per_process)) for p in range(processes)]
    for child in children:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
    state = backend.open().read()
    assert sorted(state.products) == [uuid_of(i) for i in range(processes * per_process)]
    assert state.serial == 1 + processes * per_process  # one serial per checkpoint, none lost or shared
    assert all(
        state.products[uuid_of(i)].spec == {"imageWidth": 100 + i} for i in range(processes * per_process)
    )


HOLDER = """
import sys
from reconciler.state import open_store
with open_store(sys.argv[1]).lock(sys.argv[2]) as info:
    print(info.id, flush=True)
    sys.stdin.readline()  # hold until told to let go
"""


@pytest.fixture
def holder(backend: Backend) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding the state lock; it writes its lock id on stdout."""
    proc = backend.child(HOLDER, "apply")
    assert proc.stdout is not None and proc.stdin is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id, f"the holder process did not take the lock: {proc.stderr.read() if proc.stderr else ''}"
    try:
        yield proc, lock_id
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()  # lets a live holder go
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_a_second_writer_fails_fast_naming_the_holder(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, lock_id = holder
    store = backend.open()
    with pytest.raises(StateLockedError) as info, store.lock("apply"):
        pass
    err = info.value
    assert (err.holder["id"], err.holder["operation"], err.holder["pid"]) == (lock_id, "apply", proc.pid)
    assert err.holder["host"] == socket.gethostname()
    assert str(err).startswith(
        f"state {store.location} is locked by another process (id={lock_id}, operation=apply, "
    )
    assert err.hint is not None and f"reconciler force-unlock --state {store.location} {lock_id}" in err.hint


def test_a_writer_with_a_lock_timeout_waits_for_the_holder(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, _ = holder
    assert proc.stdin is not None
    release = threading.Timer(0.5, proc.stdin.close)
    release.start()
    try:
        with backend.open().lock("apply", timeout=60) as info:
            assert info.pid == os.getpid()
    finally:
        release.cancel()
    assert proc.wait(timeout=20) == 0


def test_a_lock_timeout_that_runs_out_still_names_the_holder(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    _, lock_id = holder
    started = time.monotonic()
    with pytest.raises(StateLockedError) as info, backend.open().lock("apply", timeout=0.3):
        pass
    assert time.monotonic() - started >= 0.3
    assert info.value.holder["id"] == lock_id


def test_a_holder_killed_with_sigkill_releases_the_lock(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, lock_id = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # PostgreSQL notices the closed socket and ends the session, advisory lock with it; allow it a moment.
    with backend.open().lock("apply", timeout=30) as info:
        assert info.id != lock_id and info.pid == os.getpid()


def test_force_unlock_with_the_right_id_frees_the_state(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, lock_id = holder
    released = backend.open().force_unlock(lock_id)
    assert (released.id, released.operation, released.pid) == (lock_id, "apply", proc.pid)
    with backend.open().lock("apply") as info:  # at once, though the old holder still lives
        assert info.id != lock_id


def test_force_unlock_with_a_wrong_id_is_refused_and_keeps_the_lock(
    backend: Backend, holder: tuple[subprocess.Popen[str], str]
) -> None:
    _, lock_id = holder
    store = backend.open()
    with pytest.raises(LockNotFoundError) as info:
        store.force_unlock("not-the-id")
    assert (
        str(info.value) == f"no lock with id not-the-id on {store.location}: the current holder is {lock_id}"
    )
    with pytest.raises(StateLockedError), store.lock("apply"):
        pass


def test_force_unlock_when_nothing_is_locked(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(LockNotFoundError, match="no lock is held"):
        store.force_unlock("any")
    write(store, state_with(1))
    with pytest.raises(LockNotFoundError, match="no lock is held"):
        store.force_unlock("any")
