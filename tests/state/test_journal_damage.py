"""A damaged journal is reported as such, names its line, and leaves the state untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import StateCorruptError
from reconciler.state import FileStateStore, ProductRecord, Status, utcnow

P1 = "11111111-1111-4111-8111-111111111111"
P2 = "22222222-2222-4222-8222-222222222222"
P9 = "99999999-9999-4999-8999-999999999999"


def _store_with_one_checkpoint(tmp_path: Path) -> FileStateStore:
    store = FileStateStore(tmp_path / "renders.state.json")
    with store.lock("test"):
        state = store.read()
        store.write(state)
        record = ProductRecord(spec={}, spec_hash="h", status=Status.IN_FLIGHT, updated_at=utcnow())
        store.checkpoint(state, P1, record)
    return store


@pytest.mark.parametrize(
    "line, problem",
    [
        ("[1]", "line 2 is not a checkpoint (needs serial, product and record)"),
        ('{"lineage": "x", "serial": 4}', "line 2 is not a checkpoint (needs serial, product and record)"),
        (
            f'{{"lineage": "x", "serial": 4, "product": "{P2}", "record": null}}',
            "line 2 belongs to another state (lineage 'x')",
        ),
        ("not json", "line 2 is not valid JSON (column 1: Expecting value)"),
    ],
)
def test_damaged_journal_lines_are_named_with_a_journal_hint(tmp_path: Path, line: str, problem: str) -> None:
    store = _store_with_one_checkpoint(tmp_path)
    state_bytes = store.path.read_bytes()
    with store.journal_path.open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(StateCorruptError) as caught:
        store.read()
    assert str(caught.value) == f"state file {store.journal_path} is unreadable: {problem}"
    assert caught.value.hint is not None and "interrupted apply" in caught.value.hint
    assert ".journal.backup" not in caught.value.hint
    assert store.path.read_bytes() == state_bytes


def test_an_invalid_record_in_the_journal_names_the_product_and_line(tmp_path: Path) -> None:
    store = _store_with_one_checkpoint(tmp_path)
    lineage = json.loads(store.path.read_text())["lineage"]
    with store.journal_path.open("a") as fh:
        fh.write(
            json.dumps({"lineage": lineage, "serial": 3, "product": P9, "record": {"status": "?"}}) + "\n"
        )
    with pytest.raises(StateCorruptError, match=f"line 2 is an invalid record for {P9}: "):
        store.read()
