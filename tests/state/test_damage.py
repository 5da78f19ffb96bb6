"""Damaged state files: each is refused naming the file, is left byte for byte, and the hint
names only ways back that exist, each of which, followed, gives a readable state."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import StateCorruptError, StateError
from reconciler.spec import RenderSpec
from reconciler.state import FileStateStore, ProductRecord, State, Status
from reconciler.state.model import _RecordedSpec, _RecordedTurntable
from tests.state.test_filestore import rec, state_with, uuid_of, write

LINEAGE = "5c1b8a4e-0000-4000-8000-000000000000"


@pytest.fixture
def store(tmp_path: Path) -> FileStateStore:
    return FileStateStore(tmp_path / "state" / "renders.state.json")


def valid_state(serial: int = 1) -> dict:
    return {
        "format_version": 1,
        "serial": serial,
        "lineage": LINEAGE,
        "products": {uuid_of(1): rec(1).model_dump(mode="json")},
    }


def refused(store: FileStateStore, content: bytes) -> StateCorruptError:
    """Write ``content`` as the state, read it: it must be refused and left as it was."""
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(content)
    with pytest.raises(StateCorruptError) as info:
        store.read()
    assert str(info.value).startswith(f"state file {store.path} is unreadable: ")
    assert store.path.read_bytes() == content
    return info.value


def damaged(**changes: object) -> bytes:
    data = valid_state()
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b'{"products": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
            "not a state: JSON nested about 1,000 levels deep (a state is 6 levels deep)",
        ),
        (
            damaged(products={"not-a-uuid": rec(1).model_dump(mode="json")}),
            "products.not-a-uuid: the key is not a product uuid (8-4-4-4-12 hex digits, lower case)",
        ),
        (
            damaged(products={LINEAGE.upper(): rec(1).model_dump(mode="json")}),
            f"products.{LINEAGE.upper()}: the key is not a product uuid",
        ),
        (damaged(serial=-3), "serial: Input should be greater than or equal to 0, got -3"),
        (damaged(serial=True), "serial: Input should be a valid integer, got True"),
        (damaged(serial=1.0), "serial: Input should be a valid integer, got 1.0"),
        (damaged(format_version="1"), "format_version: Input should be a valid integer, got '1'"),
        (damaged(format_version="2"), "format_version: Input should be a valid integer, got '2'"),
        (damaged(format_version=0), "format_version: Input should be greater than or equal to 1, got 0"),
        (
            damaged(products={uuid_of(1): {**rec(1).model_dump(mode="json"), "spec": {"turntable": 5}}}),
            f"products.{uuid_of(1)}.spec.turntable: Input should be a valid dictionary",
        ),
        (
            damaged(
                products={uuid_of(1): {**rec(1).model_dump(mode="json"), "spec": {"imageWidth": [[[[1]]]]}}}
            ),
            f"products.{uuid_of(1)}.spec.imageWidth: Input should be a valid integer",
        ),
        (
            damaged(
                products={uuid_of(1): {**rec(1).model_dump(mode="json"), "spec": {"junk": {"a": {"b": 1}}}}}
            ),
            f"products.{uuid_of(1)}.spec.junk: Extra inputs are not permitted",
        ),
        (b'{"format_version": 1, "serial": ', "not valid JSON at line 1, column 33: Expecting value"),
        (
            b'{"format_version": 1,\n  "serial": 1,\n  "lineage" "x"}',
            "not valid JSON at line 3, column 13: Expecting ':'",
        ),
        (b'{"lineage": "caf\xe9"}', "not valid JSON at line 1, column 17: byte 0xE9 is not UTF-8"),
    ],
)
def test_a_damaged_state_is_refused_with_its_file_and_place(
    store: FileStateStore, content: bytes, problem: str
) -> None:
    error = refused(store, content)
    assert problem in str(error)


def test_a_product_attachment_with_a_negative_size_is_refused(store: FileStateStore) -> None:
    record = rec(1).model_dump(mode="json")
    record["attachments"][0]["size"] = -1
    assert "attachments.0.size: Input should be greater than or equal to 0" in str(
        refused(store, damaged(products={uuid_of(1): record}))
    )


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_a_state_path_that_is_no_regular_file_is_refused_without_reading(
    store: FileStateStore, kind: str
) -> None:
    store.path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(store.path)
    else:
        store.path.symlink_to("/dev/zero")
    with pytest.raises(StateCorruptError, match="it is not a regular file"):
        store.read()  # neither waits for a writer nor reads forever


def test_the_recorded_spec_shape_has_the_render_specs_fields() -> None:
    """state/model.py may not import spec.py: the shape is written out, and must follow RenderSpec."""
    assert set(_RecordedSpec.__annotations__) == set(RenderSpec.model_fields)
    turntable = RenderSpec.model_fields["turntable"].annotation
    assert set(_RecordedTurntable.__annotations__) == set(turntable.model_fields)  # type: ignore[union-attr]


def test_a_real_spec_is_recorded_unchanged(store: FileStateStore) -> None:
    spec = RenderSpec.model_validate(
        {
            "imageWidth": 100,
            "imageHeight": 100,
            "imageFormat": "PNG",
            "turntable": {"includeGif": True, "imageCount": 8, "frameRate": 8, "width": 64, "height": 64},
        }
    ).canonical()
    record = ProductRecord(spec=spec, spec_hash="h", status=Status.RENDERED, updated_at="t")
    write(store, State(lineage="", products={uuid_of(1): record}))
    assert store.read().products[uuid_of(1)].spec == spec


def test_the_store_never_writes_a_key_it_could_not_read_back(store: FileStateStore) -> None:
    state = state_with(1)
    state.products["p1"] = rec(1)
    with pytest.raises(StateError, match="refusing to record 'p1'"), store.lock("test"):
        store.write(state)
    with pytest.raises(StateError, match="refusing to record 'p1'"), store.lock("test"):
        store.checkpoint(state_with(1), "p1", rec(1))
    assert not store.path.exists() and not store.journal_path.exists()


# -- hints that are true ----------------------------------------------------------------------


def follow(hint: str, step: str) -> None:
    """Run the shell command the hint gives for ``step`` (the text in parentheses or after ':')."""
    part = next(p for p in hint.split("; or ") if step in p)
    command = part.split("(", 1)[1].split(")", 1)[0] if step == "move it aside" else part.rsplit(": ", 1)[1]
    subprocess.run(command, shell=True, check=True)


def test_no_backup_and_no_git_the_hint_offers_only_moving_aside(store: FileStateStore) -> None:
    hint = refused(store, b"{").hint
    assert hint is not None
    assert ".backup" not in hint and "git -C" not in hint
    follow(hint, "move it aside")
    assert store.read().products == {}
    assert (store.path.parent / "renders.state.json.damaged").read_bytes() == b"{"


def test_a_readable_backup_is_offered_and_restoring_it_works(store: FileStateStore) -> None:
    write(store, state_with(2))
    write(store, state_with(3))  # the backup now holds the 2-product state, serial 1
    error = refused(store, b'{"serial": ')
    assert error.hint is not None
    assert (
        f"restore the previous state (serial 1, before the last write) from its backup: cp {store.backup_path} "
        f"{store.path}" in error.hint
    )
    follow(error.hint, "from its backup")
    restored = store.read()
    assert (restored.serial, sorted(restored.products)) == (1, [uuid_of(0), uuid_of(1)])


def test_a_damaged_backup_is_not_offered(store: FileStateStore) -> None:
    store.backup_path.parent.mkdir(parents=True)
    store.backup_path.write_bytes(b"[]")
    hint = refused(store, b"{").hint
    assert hint is not None and ".backup" not in hint


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_state_tracked_in_git_is_offered_and_restoring_it_works(store: FileStateStore) -> None:
    write(store, state_with(1))
    repo = store.path.parent
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", store.path.name], ["commit", "-q", "-m", "state"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    store.backup_path.unlink(missing_ok=True)
    error = refused(store, b'{"serial": 2')
    assert error.hint is not None
    assert (
        f"restore the version in git (serial 1): git -C {shlex.quote(str(repo))} checkout -- "
        f"{store.path.name}" in error.hint
    )
    assert ".backup" not in error.hint
    follow(error.hint, "version in git")
    assert sorted(store.read().products) == [uuid_of(0)]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_version_identical_to_the_damage_is_not_offered(store: FileStateStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"{")
    repo = store.path.parent
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", store.path.name], ["commit", "-q", "-m", "state"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    hint = refused(store, b"{").hint
    assert hint is not None and "git -C" not in hint


def test_moving_aside_also_moves_a_journal_so_the_next_run_really_starts_empty(store: FileStateStore) -> None:
    write(store, state_with(1))
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(5), rec(5))
    hint = refused(store, b"{").hint
    assert hint is not None
    assert f"mv {store.journal_path} {store.journal_path}.damaged" in hint
    follow(hint, "move it aside")
    assert store.read().products == {}


def test_following_the_journal_hint_gives_the_last_complete_state(store: FileStateStore) -> None:
    write(store, state_with(1))
    with store.journal_path.open("w") as fh:
        fh.write("not json\n")
    with pytest.raises(StateCorruptError) as info:
        store.read()
    hint = info.value.hint
    assert hint is not None
    command = hint.split("aside (", 1)[1].split(")", 1)[0]
    assert command == f"mv {store.journal_path} {store.journal_path}.damaged"
    subprocess.run(command, shell=True, check=True)
    assert sorted(store.read().products) == [uuid_of(0)]


# -- the journal against the state it extends ----------------------------------------------------


def test_journal_lines_the_state_already_has_are_skipped(store: FileStateStore) -> None:
    """A write that died between its rename and removing the journal leaves lines it folded."""
    write(store, state_with(1))
    state = store.read()
    with store.lock("apply"):
        store.checkpoint(state, uuid_of(5), rec(5))
    journal = store.journal_path.read_bytes()
    with store.lock("apply"):
        state.products.pop(uuid_of(5))
        store.write(state)  # serial 3, without product 5
    store.journal_path.write_bytes(journal)  # as if the process died before unlinking it
    again = store.read()
    assert again.serial == 3
    assert sorted(again.products) == [uuid_of(0)]  # product 5 is not brought back


def test_a_gap_in_the_journal_is_damage(store: FileStateStore) -> None:
    write(store, state_with(1))
    line = {"serial": 5, "lineage": store.read().lineage, "product": uuid_of(2), "record": None}
    store.journal_path.write_text(json.dumps(line) + "\n")
    with pytest.raises(
        StateCorruptError, match="line 1 has serial 5 where 2 is next: a checkpoint is missing"
    ):
        store.read()


@pytest.mark.parametrize(
    "line",
    [
        '{"serial": 2, "lineage": "%s", "product": "p2", "record": null}',
        f'{{"serial": true, "lineage": "%s", "product": "{uuid_of(2)}", "record": null}}',
        "[" * 10_000 + "]" * 10_000,
    ],
)
def test_damaged_journal_lines_are_refused_by_line(store: FileStateStore, line: str) -> None:
    write(store, state_with(1))
    text = line % store.read().lineage if "%s" in line else line
    store.journal_path.write_text(text + "\n")
    before = store.path.read_bytes()
    with pytest.raises(StateCorruptError, match=r"journal is unreadable: line 1 "):
        store.read()
    assert store.path.read_bytes() == before
