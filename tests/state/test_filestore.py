"""The JSON-file state store: atomic writes, backup, corruption, versions, journal, locking.

Locking is tested across real processes: a child python holds the lock until told to let go.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import (
    LockNotFoundError,
    StateCorruptError,
    StateError,
    StateLockedError,
    StateVersionError,
    StateWriteError,
)
from reconciler.state import (
    FORMAT_VERSION,
    Attachment,
    FileStateStore,
    ProductRecord,
    RenderRequest,
    State,
    Status,
)


def uuid_of(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def rec(i: int = 0, status: Status = Status.RENDERED) -> ProductRecord:
    return ProductRecord(
        name=f"Product {i}",
        spec={
            "imageWidth": 1200,
            "imageHeight": 1200,
            "imageFormat": "PNG",
            "turntable": {"includeGif": True},
        },
        spec_hash=f"{i:064x}",
        status=status,
        request=RenderRequest(
            request_id=f"req-{i}", spec_hash=f"{i:064x}", requested_at="2026-01-01T00:00:00Z"
        ),
        attachments=[
            Attachment(
                kind="still",
                uuid=f"att-{i}",
                name="still.png",
                sha256="a" * 64,
                size=10,
                content_type="image/png",
            )
        ],
        updated_at="2026-01-01T00:00:00Z",
    )


def state_with(n: int) -> State:
    return State(lineage="", products={uuid_of(i): rec(i) for i in range(n)})


@pytest.fixture
def store(tmp_path: Path) -> FileStateStore:
    return FileStateStore(tmp_path / "state" / "renders.state.json")


def write(store: FileStateStore, state: State) -> None:
    with store.lock("test"):
        store.write(state)


def leftovers(store: FileStateStore) -> list[str]:
    return sorted(p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp"))


# -- reading and writing -------------------------------------------------------------------


def test_missing_state_reads_as_empty(store: FileStateStore) -> None:
    state = store.read()
    assert (state.format_version, state.serial, state.lineage, state.products) == (FORMAT_VERSION, 0, "", {})
    assert not store.path.exists()


def test_write_without_the_lock_is_refused(store: FileStateStore) -> None:
    with pytest.raises(StateError, match="without holding its lock"):
        store.write(state_with(1))
    assert not store.path.exists()


def test_serial_increments_and_lineage_is_fixed_at_creation(store: FileStateStore) -> None:
    state = state_with(2)
    write(store, state)
    first = store.read()
    assert first.serial == 1 and len(first.lineage) == 36
    first.products[uuid_of(5)] = rec(5)
    write(store, first)
    second = store.read()
    assert second.serial == 2
    assert second.lineage == first.lineage
    assert sorted(second.products) == [uuid_of(0), uuid_of(1), uuid_of(5)]


def test_state_file_is_json_with_products_in_uuid_order(store: FileStateStore) -> None:
    state = State(lineage="", products={uuid_of(i): rec(i) for i in (9, 3, 7, 1)})
    write(store, state)
    data = json.loads(store.path.read_text())
    assert list(data)[:3] == ["format_version", "serial", "lineage"]
    assert list(data["products"]) == [uuid_of(i) for i in (1, 3, 7, 9)]
    assert data["products"][uuid_of(1)]["attachments"][0]["kind"] == "still"


def test_write_keeps_the_previous_version_as_backup(store: FileStateStore) -> None:
    write(store, state_with(1))
    before = store.path.read_bytes()
    write(store, state_with(2))
    assert store.backup_path.read_bytes() == before
    assert json.loads(store.backup_path.read_text())["serial"] == 1
    assert leftovers(store) == []


def test_a_failed_write_leaves_the_old_state_and_no_temp_file(
    store: FileStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(store, state_with(1))
    before = store.path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with store.lock("test"):
        monkeypatch.setattr(os, "replace", broken_replace)
        # Once an OSError escaped here; now it is a StateError naming the file and the cause.
        with pytest.raises(StateWriteError, match=r"No space left on device \(ENOSPC\)"):
            store.write(state_with(3))
        monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert leftovers(store) == []


def test_a_reader_sees_the_old_or_the_new_state_never_half(store: FileStateStore) -> None:
    write(store, state_with(1))
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(len(FileStateStore(store.path).read().products))
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with store.lock("test"):
            for n in range(2, 40):
                store.write(state_with(n * 10))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen and all(n == 1 or n % 10 == 0 for n in seen)


# -- corruption and versions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"format_version": 1, "serial": 3, "lineage": "x", "products": {', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2, 3]", "expected a JSON object at the top level"),
        (b'{"format_version": 1, "serial": "three", "lineage": "x"}', "serial: "),
        (
            b'{"format_version": 1, "serial": 1, "lineage": "x", "products": {"a": {"spec": {}}}}',
            "products.a: the key is not a product uuid",
        ),
        (b'{"format_version": 1, "serial": 1, "lineage": "x", "surprise": true}', "surprise: "),
    ],
)
def test_corrupt_state_is_an_error_and_is_never_overwritten(
    store: FileStateStore, content: bytes, problem: str
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(StateCorruptError) as info:
        store.read()
    assert str(info.value).startswith(f"state file {store.path} is unreadable: ")
    assert problem in str(info.value)
    # No backup exists and the file is not in git: the hint offers neither.
    assert info.value.hint is not None and ".backup" not in info.value.hint and "git" not in info.value.hint
    assert f"mv {store.path} {store.path}.damaged" in info.value.hint
    with pytest.raises(StateCorruptError), store.lock("apply"):
        store.fold()  # what a writing command does first
    assert store.path.read_bytes() == content
    assert not store.backup_path.exists()


def test_a_directory_in_place_of_the_state_is_reported(store: FileStateStore) -> None:
    store.path.mkdir(parents=True)
    with pytest.raises(StateError, match="is a directory") as caught:
        store.read()
    assert caught.value.hint == "pass the state file itself, e.g. --state state/renders.state.json"


def test_state_from_a_newer_reconciler_is_refused(store: FileStateStore) -> None:
    store.path.parent.mkdir(parents=True)
    content = json.dumps(
        {"format_version": FORMAT_VERSION + 1, "serial": 1, "lineage": "x", "products": {}, "new_field": 1}
    ).encode()
    store.path.write_bytes(content)
    with pytest.raises(StateVersionError) as info:
        store.read()
    assert str(info.value) == (
        f"state file {store.path} has format_version {FORMAT_VERSION + 1}, newer than this "
        f"reconciler understands ({FORMAT_VERSION})"
    )
    assert info.value.hint == "upgrade reconciler; the state was not modified"
    assert store.path.read_bytes() == content


# -- journal ----------------------------------------------------------------------------------


def test_checkpoints_are_replayed_on_read_and_folded_by_write(store: FileStateStore) -> None:
    write(store, state_with(2))
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(7), rec(7, Status.IN_FLIGHT))
        store.checkpoint(state, uuid_of(0), None)
        store.checkpoint(state, uuid_of(7), rec(7))
    assert state.serial == 4
    assert store.journal_length() == 3
    replayed = store.read()
    assert replayed.serial == 4
    assert sorted(replayed.products) == [uuid_of(1), uuid_of(7)]
    assert replayed.products[uuid_of(7)].status is Status.RENDERED
    assert json.loads(store.path.read_text())["serial"] == 1  # the file itself is untouched until a fold
    with store.lock("apply"):
        folded = store.fold()
    assert not store.journal_path.exists()
    assert folded.serial == 4
    on_disk = json.loads(store.path.read_text())
    assert on_disk["serial"] == 4 and sorted(on_disk["products"]) == [uuid_of(1), uuid_of(7)]
    assert store.read().model_dump() == folded.model_dump()


def test_fold_without_a_journal_changes_nothing(store: FileStateStore) -> None:
    write(store, state_with(1))
    before = store.path.read_bytes()
    with store.lock("apply"):
        store.fold()
    assert store.path.read_bytes() == before


def test_a_first_run_that_died_before_its_first_write_keeps_its_lineage(store: FileStateStore) -> None:
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(1), rec(1, Status.REQUESTED))
    again = store.read()
    assert again.lineage == state.lineage != ""
    assert again.products[uuid_of(1)].status is Status.REQUESTED


def test_a_torn_last_journal_line_is_ignored(store: FileStateStore) -> None:
    write(store, state_with(1))
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(2), rec(2))
    with store.journal_path.open("ab") as fh:
        fh.write(b'{"serial": 3, "lineage": "')  # killed mid-append: never acknowledged
    replayed = store.read()
    assert replayed.serial == 2
    assert sorted(replayed.products) == [uuid_of(0), uuid_of(2)]


def test_a_corrupt_journal_line_before_the_last_is_an_error(store: FileStateStore) -> None:
    write(store, state_with(1))
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(2), rec(2))
        store.checkpoint(state, uuid_of(3), rec(3))
    lines = store.journal_path.read_bytes().split(b"\n")
    lines[0] = lines[0][:20]
    store.journal_path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateCorruptError, match="line 1 is not valid JSON"):
        store.read()


def test_a_journal_of_another_state_is_an_error(store: FileStateStore) -> None:
    write(store, state_with(1))
    store.journal_path.write_text(
        json.dumps({"serial": 9, "lineage": "someone-else", "product": uuid_of(1), "record": None}) + "\n"
    )
    with pytest.raises(StateCorruptError, match="line 1 belongs to another state"):
        store.read()


def test_an_invalid_journal_record_is_an_error(store: FileStateStore) -> None:
    write(store, state_with(1))
    lineage = store.read().lineage
    store.journal_path.write_text(
        json.dumps({"serial": 2, "lineage": lineage, "product": uuid_of(1), "record": {"status": "bogus"}})
        + "\n"
    )
    with pytest.raises(StateCorruptError, match=f"invalid record for {uuid_of(1)}"):
        store.read()


@pytest.mark.parametrize("size", [10, 3000])
def test_checkpoint_cost_does_not_grow_with_the_state(tmp_path: Path, size: int) -> None:
    """A checkpoint appends one record: its bytes are the same for a small and a large catalogue."""
    store = FileStateStore(tmp_path / "s.json")
    state = state_with(size)
    state.lineage = "00000000-0000-4000-8000-000000000000"
    write(store, state)
    state_bytes = store.path.stat().st_size
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(1), rec(1, Status.IN_FLIGHT))
        first = store.journal_path.stat().st_size
        store.checkpoint(state, uuid_of(1), rec(1))
        second = store.journal_path.stat().st_size - first
    assert store.path.stat().st_size == state_bytes  # the state file is not rewritten
    # Same record, same serial width: the same number of bytes whatever the catalogue size.
    expected = (
        len(
            json.dumps(
                {
                    "serial": state.serial,
                    "lineage": state.lineage,
                    "product": uuid_of(1),
                    "record": rec(1).model_dump(mode="json"),
                },
                separators=(",", ":"),
            ).encode()
        )
        + 1
    )
    assert second == expected
    assert second < 1000


# -- locking ----------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from reconciler.state import FileStateStore
    store = FileStateStore(sys.argv[1])
    with store.lock(sys.argv[2]) as info:
        print(info.id, flush=True)
        sys.stdin.readline()  # hold until told to let go
""")


@pytest.fixture
def holder(store: FileStateStore) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Another process holding the state lock; writes its lock id on stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path), "apply"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id, "the holder process did not take the lock"
    try:
        yield proc, lock_id
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_a_second_writer_fails_fast_naming_the_holder(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, lock_id = holder
    started = time.monotonic()
    with pytest.raises(StateLockedError) as info, store.lock("apply"):
        pass
    assert time.monotonic() - started < 2
    err = info.value
    assert err.holder["id"] == lock_id
    assert err.holder["operation"] == "apply"
    assert err.holder["pid"] == proc.pid
    assert err.holder["host"] == socket.gethostname()
    assert str(err).startswith(
        f"state {store.path} is locked by another process (id={lock_id}, operation=apply, "
    )
    assert f"pid={proc.pid}, host={socket.gethostname()}" in str(err)
    assert err.hint is not None and f"reconciler force-unlock --state {store.path} {lock_id}" in err.hint


def test_a_writer_with_a_lock_timeout_waits_for_the_holder(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, _ = holder
    assert proc.stdin is not None
    release = threading.Timer(0.5, proc.stdin.close)
    release.start()
    started = time.monotonic()
    try:
        with store.lock("apply", timeout=20) as info:
            assert info.pid == os.getpid()
            assert json.loads(store.info_path.read_text())["id"] == info.id
    finally:
        release.cancel()
    assert 0.4 < time.monotonic() - started < 15
    assert not store.info_path.exists()  # released with the lock


def test_a_lock_timeout_that_runs_out_still_names_the_holder(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    _, lock_id = holder
    started = time.monotonic()
    with pytest.raises(StateLockedError) as info, store.lock("apply", timeout=0.3):
        pass
    assert time.monotonic() - started >= 0.3
    assert info.value.holder["id"] == lock_id


def test_the_kernel_releases_the_lock_of_a_killed_holder(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, _ = holder
    proc.kill()
    proc.wait(timeout=10)
    with store.lock("apply") as info:  # the stale .lock.info does not block anyone
        assert info.pid == os.getpid()


def test_force_unlock_with_the_right_id_frees_the_state(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, lock_id = holder
    released = store.force_unlock(lock_id)
    assert (released.id, released.operation, released.pid) == (lock_id, "apply", proc.pid)
    with store.lock("apply") as info:
        assert info.id != lock_id


def test_force_unlock_with_a_wrong_id_is_refused_and_keeps_the_lock(
    store: FileStateStore, holder: tuple[subprocess.Popen[str], str]
) -> None:
    _, lock_id = holder
    with pytest.raises(LockNotFoundError) as info:
        store.force_unlock("not-the-id")
    assert str(info.value) == f"no lock with id not-the-id on {store.path}: the current holder is {lock_id}"
    with pytest.raises(StateLockedError), store.lock("apply"):
        pass


def test_force_unlock_when_nothing_is_locked(store: FileStateStore) -> None:
    with pytest.raises(LockNotFoundError, match="no lock is held"):
        store.force_unlock("abc")


def test_lock_is_reentrant_for_nobody_else_in_the_same_process(store: FileStateStore) -> None:
    """Two stores on one file in one process exclude each other too (is_singleton=False)."""
    other = FileStateStore(store.path)
    with store.lock("apply"), pytest.raises(StateLockedError), other.lock("apply"):
        pass
