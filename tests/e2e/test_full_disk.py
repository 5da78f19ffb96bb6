"""A disk that refuses writes: full (ENOSPC), read-only (EROFS), not ours (EACCES).

Each test puts the state on a real file system that refuses: a small tmpfs mounted by the test
and filled, the same remounted read-only, or a folder the user running the CLI may not write.
The real CLI must then say which file and why, with a fix, exit 1 without a traceback, pay for
nothing, and leave the state byte for byte as it was, with no temp file behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import PRODUCTS, Project, manifest
from tests.smalldisk import SmallDisk


@pytest.fixture
def on_disk(project: Project, disk: SmallDisk) -> Project:
    """The project, its state on the small disk, two products applied."""
    project.settings = {"RECONCILER_STATE": str(disk.root / "state" / "renders.state.json")}
    project.write_manifest(manifest({"trail": PRODUCTS["trail"], "court": PRODUCTS["court"]}))
    done = project.apply()
    assert done.returncode == 0, done.stderr
    return project


def state_file(project: Project) -> Path:
    assert project.settings is not None
    return Path(project.settings["RECONCILER_STATE"])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file beside the state, with its bytes (the journal, the backup, temp files...)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, cause: str, words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors, result.stderr
    assert str(path) in errors[-1] and f"({cause})" in errors[-1], result.stderr
    assert any(line.startswith("Hint: ") and words in line for line in lines), result.stderr


@pytest.mark.parametrize(
    ("leave_pages", "refused", "doing"),
    [
        (0, "renders.state.json.lock.info", "record the lock's holder in"),  # not even the lock
        (1, "renders.state.json", "write"),  # the lock, not the new state
    ],
)
def test_state_rm_on_a_full_disk_names_the_file_and_keeps_the_state(
    on_disk: Project, disk: SmallDisk, leave_pages: int, refused: str, doing: str
) -> None:
    folder = state_file(on_disk).parent
    before = snapshot(folder)
    disk.fill(leave_pages=leave_pages)
    result = on_disk.cli("state", "rm", PRODUCTS["trail"])
    assert_refused(result, folder / refused, "ENOSPC", "the disk is full")
    assert f"Error: cannot {doing} {folder / refused}: No space left on device (ENOSPC)" in result.stderr
    assert snapshot(folder) == before  # the state, its backup, no journal, no temp file, no lock note
    disk.free()
    again = on_disk.cli("state", "rm", PRODUCTS["trail"])  # with room again, the same command works
    assert again.returncode == 0, again.stderr
    assert PRODUCTS["trail"] not in on_disk.cli("state", "list").stdout


def test_apply_on_a_full_disk_stops_before_paying_and_keeps_the_state(
    on_disk: Project, disk: SmallDisk
) -> None:
    folder = state_file(on_disk).parent
    on_disk.write_manifest(manifest({"trail": PRODUCTS["trail"], "court": PRODUCTS["court"]}, gif=False))
    paid = {uuid: on_disk.triggers(uuid) for uuid in PRODUCTS.values()}
    before = snapshot(folder)
    disk.fill(leave_pages=1)  # room for the lock's note, none for the first checkpoint
    result = on_disk.apply()
    assert_refused(result, state_file(on_disk), "ENOSPC", "the disk is full")
    # The checkpoint that failed first is what the user reads, not the fold that failed after it.
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: cannot append a checkpoint to ") and ".journal:" in error, error
    assert {uuid: on_disk.triggers(uuid) for uuid in PRODUCTS.values()} == paid  # nothing triggered
    after = snapshot(folder)
    assert after.pop("renders.state.json.journal", b"") == b""  # a refused checkpoint leaves no torn line
    assert after == before
    disk.free()
    again = on_disk.apply()
    assert again.returncode == 0, again.stderr
    assert {uuid: on_disk.triggers(uuid) for uuid in PRODUCTS.values()} == {
        uuid: count + (uuid in (PRODUCTS["trail"], PRODUCTS["court"])) for uuid, count in paid.items()
    }


def test_a_read_only_file_system_is_named_with_its_fix(on_disk: Project, disk: SmallDisk) -> None:
    folder = state_file(on_disk).parent
    before = snapshot(folder)
    disk.remount("ro")
    try:
        result = on_disk.cli("state", "rm", PRODUCTS["trail"])
        assert_refused(result, folder / "renders.state.json.lock", "EROFS", "read-only")
        on_disk.write_manifest(manifest({"trail": PRODUCTS["trail"]}, gif=False))
        applied = on_disk.apply()
        assert_refused(applied, folder / "renders.state.json.lock", "EROFS", "read-only")
        plan = on_disk.cli("plan")  # reading still works: a plan needs no lock
        assert plan.returncode == 0, plan.stderr
    finally:
        disk.remount("rw")
    assert snapshot(folder) == before


def test_a_folder_this_user_may_not_write_is_named_with_its_fix(project: Project) -> None:
    """EACCES: root ignores mode bits, so the CLI runs as 'nobody' against a folder root owns."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv(1) to run the CLI as another user (root ignores mode bits)")
    home = Path(tempfile.mkdtemp(prefix="reconciler-eacces-"))  # outside pytest's 0700 folders
    try:
        home.chmod(0o755)
        path = home / "state" / "renders.state.json"
        project.settings = {"RECONCILER_STATE": str(path)}
        project.write_manifest(manifest({"trail": PRODUCTS["trail"]}))
        assert project.apply().returncode == 0
        before = snapshot(path.parent)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        result = subprocess.run(
            [*nobody, sys.executable, "-m", "reconciler", "state", "rm", PRODUCTS["trail"]],
            cwd=home,
            env={**project.env(), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "ModuleNotFoundError" in result.stderr or "Permission denied: '/" in result.stderr[:200]:
            pytest.skip(f"user nobody cannot run this checkout's Python: {result.stderr.strip()[:200]}")
        assert_refused(result, path.parent / "renders.state.json.lock", "EACCES", "permissions")
        assert snapshot(path.parent) == before
        # A state this user may not even read is not called damaged, and gets no recovery hint.
        path.chmod(0o600)
        listed = subprocess.run(
            [*nobody, sys.executable, "-m", "reconciler", "state", "list"],
            cwd=home,
            env={**project.env(), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_refused(listed, path, "EACCES", "may not read it")
        assert "unreadable" not in listed.stderr and "restore" not in listed.stderr, listed.stderr
        assert snapshot(path.parent) == before
    finally:
        shutil.rmtree(home, ignore_errors=True)


HOLDER = """
import sys
from reconciler.state import open_store
with open_store(sys.argv[1]).lock("apply") as info:
    print(info.id, flush=True)
    sys.stdin.readline()
"""


def test_force_unlock_on_a_read_only_file_system_names_the_lock_file(
    on_disk: Project, disk: SmallDisk
) -> None:
    """A holder killed with SIGKILL leaves its note; on a read-only disk it cannot be removed."""
    path = state_file(on_disk)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    lock_id = holder.stdout.readline().strip()
    holder.kill()
    holder.wait(timeout=20)
    holder.stdout.close()
    holder.stdin.close()
    before = snapshot(path.parent)
    disk.remount("ro")
    try:
        result = on_disk.cli("force-unlock", lock_id)
        assert_refused(result, path.parent / "renders.state.json.lock", "EROFS", "read-only")
    finally:
        disk.remount("rw")
    assert snapshot(path.parent) == before
    freed = on_disk.cli("force-unlock", lock_id)  # writable again: the same command works
    assert freed.returncode == 0, freed.stderr
