"""The file store on a real full disk (a tmpfs filled by the test): a refused checkpoint, write or
lock leaves every file as it was and the state in memory as the one on disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import StateWriteError
from reconciler.state import FileStateStore, ProductRecord, State, Status
from tests.smalldisk import PAGE, SmallDisk


def uuid_of(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def record(i: int, padding: int = 0) -> ProductRecord:
    return ProductRecord(
        name=f"Product {i}" + "x" * padding,
        spec={"imageWidth": 100 + i},
        spec_hash=f"{i:064x}",
        status=Status.RENDERED,
        updated_at="2026-01-01T00:00:00Z",
    )


def files(store: FileStateStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.path.parent.iterdir()) if p.is_file()}


@pytest.fixture
def store(disk: SmallDisk) -> FileStateStore:
    store = FileStateStore(disk.root / "state" / "renders.state.json")
    with store.lock("test"):
        store.write(State(lineage="", products={uuid_of(i): record(i) for i in range(3)}))
    return store


def test_a_checkpoint_cut_short_by_a_full_disk_leaves_no_torn_line(
    store: FileStateStore, disk: SmallDisk
) -> None:
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(7), record(7, padding=PAGE - 400))  # the journal's page, nearly full
        disk.fill()
        before, serial, products = files(store), state.serial, dict(state.products)
        # The next line fits partly in the journal's last page: the write comes back short, the
        # rest is refused. The part that landed is cut off again.
        with pytest.raises(StateWriteError) as info:
            store.checkpoint(state, uuid_of(8), record(8, padding=600))
        assert info.value.errno == errno.ENOSPC and info.value.path == str(store.journal_path)
        assert files(store) == before
        assert (state.serial, state.products) == (serial, products)  # memory follows the disk
        disk.free()
        store.checkpoint(state, uuid_of(8), record(8))
    again = FileStateStore(store.path).read()
    assert again.serial == state.serial and again.products == state.products


def test_a_write_refused_by_a_full_disk_keeps_state_backup_journal_and_serial(
    store: FileStateStore, disk: SmallDisk
) -> None:
    with store.lock("apply"):
        state = store.fold()
        store.checkpoint(state, uuid_of(5), record(5))
        big = state.model_copy(deep=True)
        big.products.update({uuid_of(100 + i): record(100 + i, padding=2000) for i in range(40)})
        disk.fill(leave_pages=2)
        before, serial = files(store), big.serial
        with pytest.raises(StateWriteError, match="No space left on device") as info:
            store.write(big)
        assert info.value.path == store.location
        assert big.serial == serial  # not bumped: nothing was written
        assert files(store) == before
        disk.free()
        store.write(big)
    assert FileStateStore(store.path).read().to_json() == big.to_json()


def test_a_lock_note_that_cannot_be_removed_does_not_fail_the_command(tmp_path: Path) -> None:
    """The holder's note pinned in place (a bind mount over it: unlink answers EBUSY, as a disk
    turned read-only mid-run would refuse): leaving the block raises nothing, the OS lock is
    released, and the stale note is replaced by the next holder's."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("pinning a file with a bind mount needs root and mount(8)")
    store = FileStateStore(tmp_path / "state" / "renders.state.json")
    pinned = tmp_path / "pinned"
    try:
        with store.lock("apply") as info:  # must not raise on the way out
            pinned.write_bytes(store.info_path.read_bytes())
            bound = subprocess.run(
                ["mount", "--bind", str(pinned), str(store.info_path)], capture_output=True
            )
            if bound.returncode != 0:
                pytest.skip(f"this machine does not allow bind mounts ({bound.stderr.decode().strip()})")
        with pytest.raises(OSError):
            store.info_path.unlink()  # the note really could not be removed
    finally:
        subprocess.run(["umount", "-l", str(store.info_path)], check=False)
    assert store.info_path.exists()  # stale, harmless:
    with FileStateStore(store.path).lock("state rm", timeout=5) as again:
        assert again.id != info.id
        assert json.loads(store.info_path.read_text())["id"] == again.id
