"""The cold plan's msgspec check of a state (reconciler/state/check.py, FileStateStore.read_for_plan).

msgspec must accept no more than ``read`` does (pydantic, after ``json.loads``): whatever it
accepts must read, with the same spec hash, status and missing files per record; whatever it
refuses goes the pydantic way, so a damaged state is reported exactly as ``read`` reports it."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from reconciler.errors import ReconcilerError
from reconciler.state import FileStateStore, PastRender, State, Status, model
from reconciler.state import check as checked
from reconciler.state.filestore import _check_written
from reconciler.state.index import PlanState
from tests.fuzz.corpus import DAMAGED_STATES, LINEAGE, RECORD, lay_out, paths_in

A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "393f8b64-b960-5375-b254-484ff9c12e30"


@pytest.fixture(autouse=True)
def cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read here starts from an empty cache."""
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))


def written(data: Any, *, ascii: bool = False) -> bytes:
    """``data`` laid out as ``State.to_json`` lays out a state (indent 1, a final newline)."""
    return (json.dumps(data, indent=1, ensure_ascii=ascii) + "\n").encode("utf-8", "surrogatepass")


def outcome(read: Any) -> tuple[Any, ...]:
    """What a read gives: the error (type, message, hint), or the lineage, serial and records."""
    try:
        state = read()
    except ReconcilerError as exc:
        return ("error", type(exc).__name__, str(exc), exc.hint)
    records = {uuid: state.products[uuid].model_dump() for uuid in state.products}
    return ("ok", state.lineage, state.serial, records)


def same_as_read(folder: Path) -> tuple[Any, ...]:
    """Cold ``read_for_plan`` of the state in ``folder`` gives what ``read`` gives; returns it."""
    store = FileStateStore(folder / "renders.state.json")
    whole = outcome(store.read)
    assert outcome(store.read_for_plan) == whole
    return whole


# -- (a) the damaged states of the fuzz corpus, as they are and laid out as the store writes ----


def test_every_damaged_state_of_the_corpus_is_reported_as_read_reports_it(tmp_path: Path) -> None:
    folders = lay_out(DAMAGED_STATES, tmp_path / "as-is")
    relaid = 0
    for name, folder in folders.items():
        kind = same_as_read(folder)[0]
        assert kind == "error" or name == "utf16", name
        # The same damage in the store's own layout, which msgspec checks.
        path = folder / "renders.state.json"
        if path.is_symlink() or not path.is_file():  # a FIFO, /dev/zero: nothing to lay out again
            continue
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            continue
        again = tmp_path / "written" / name
        again.mkdir(parents=True)
        (again / "renders.state.json").write_bytes(written(data))
        journal = folder / "renders.state.json.journal"
        if journal.exists():
            (again / journal.name).write_bytes(journal.read_bytes())
        assert same_as_read(again)[0] == kind, name
        relaid += 1
    assert relaid >= 25


def state(*records: dict[str, Any], **top: Any) -> dict[str, Any]:
    uuids = [A, B, "00000000-0000-4000-8000-000000000000"]
    return {
        "format_version": 1,
        "serial": 3,
        "lineage": LINEAGE,
        "products": dict(zip(uuids, records, strict=False)),
        **top,
    }


def _dup(text: bytes, line: bytes, extra: bytes) -> bytes:
    """``line`` (a member of an object, as written) given once more, with another value, before it."""
    assert line in text
    return text.replace(line, extra + line, 1)


GOOD = written(state(RECORD, RECORD))
SIZE = b'     "size": 10,\n'

WRITTEN_DAMAGE: dict[str, bytes] = {
    "record_dup_key_last_bad": _dup(
        GOOD, b'   "status": "rendered",\n', b'   "status": "rendered",\n'
    ).replace(
        b'   "status": "rendered",\n   "status": "rendered",\n',
        b'   "status": "rendered",\n   "status": "exploded",\n',
        1,
    ),
    "record_dup_key_first_bad": _dup(GOOD, b'   "status": "rendered",\n', b'   "status": "exploded",\n'),
    "record_dup_key_first_other": _dup(GOOD, b'   "status": "rendered",\n', b'   "status": "failed",\n'),
    "product_twice": written(state(RECORD)).replace(
        b"\n  }\n }\n}", b'\n  },\n  "' + A.encode() + b'": {"status": 5}\n }\n}'
    ),
    "product_twice_first_bad": written(state(RECORD)).replace(
        b'"products": {\n', b'"products": {\n  "' + A.encode() + b'": {"status": 5},\n'
    ),
    "products_twice": GOOD.replace(
        b'"products": {', b'"products": {"' + B.encode() + b'": 1}, "products": {'
    ),
    "top_dup_serial_last_bad": GOOD.replace(b' "serial": 3,', b' "serial": 3,\n "serial": -3,'),
    "size_huge": GOOD.replace(SIZE, b'     "size": ' + b"9" * 5000 + b",\n", 1),
    "size_2_64": GOOD.replace(SIZE, b'     "size": 18446744073709551616,\n', 1),
    "size_float": GOOD.replace(SIZE, b'     "size": 10.0,\n', 1),
    "size_exponent": GOOD.replace(SIZE, b'     "size": 1e1,\n', 1),
    "size_true": GOOD.replace(SIZE, b'     "size": true,\n', 1),
    "size_nan": GOOD.replace(SIZE, b'     "size": NaN,\n', 1),
    "width_infinity": GOOD.replace(b'"imageWidth": 1200', b'"imageWidth": Infinity', 1),
    "width_float": GOOD.replace(b'"imageWidth": 1200', b'"imageWidth": 1200.0', 1),
    "gif_int": GOOD.replace(b'"includeGif": false', b'"includeGif": 0', 1),
    "name_lone_surrogate": GOOD.replace(b'"name": "x"', b'"name": "\\ud800"', 1),
    "name_not_utf8": GOOD.replace(b'"name": "x"', b'"name": "\xe9"', 1),
    "name_control_character": GOOD.replace(b'"name": "x"', b'"name": "a\x01"', 1),
    "name_number": GOOD.replace(b'"name": "x"', b'"name": 5', 1),
    "protect_one": GOOD.replace(b'"updated_at"', b'"protect": 1,\n   "updated_at"', 1),
    "past_spec_null": written(
        state({**RECORD, "history": [{"spec_hash": "1", "spec": None, "recorded_at": "t"}]})
    ),
    "request_spec_null": written(
        state({**RECORD, "request": {"request_id": "r", "spec_hash": "1", "requested_at": "t", "spec": None}})
    ),
    "key_escaped_newline": GOOD.replace(A.encode() + b'"', A.encode() + b'\\n"', 1),
    "key_upper_case": GOOD.replace(A.encode(), A.upper().encode(), 1),
    "format_version_2": GOOD.replace(b'"format_version": 1', b'"format_version": 2', 1),
    "format_version_true": GOOD.replace(b'"format_version": 1', b'"format_version": true', 1),
    "bom": b"\xef\xbb\xbf" + GOOD,
    "text_after": GOOD + b"x",
    "no_final_newline": GOOD.rstrip(b"\n"),
    "crlf": GOOD.replace(b"\n", b"\r\n"),
    "unknown_top_key": GOOD.replace(b' "serial": 3,', b' "serial": 3,\n "surprise": 1,'),
    "record_cut_short": GOOD.replace(b'   "updated_at": "2026-01-01T00:00:00Z"\n  },', b"  },", 1),
    "empty_products": written(state()),
}

# What read() accepts of these, and so read_for_plan must too (msgspec, or pydantic after it refuses).
ACCEPTED = {
    "record_dup_key_first_bad",
    "record_dup_key_first_other",
    "product_twice_first_bad",
    "products_twice",
    "size_2_64",
    "name_lone_surrogate",
    "protect_one",
    "request_spec_null",
    "bom",
    "no_final_newline",
    "crlf",
    "empty_products",
}


@pytest.mark.parametrize("name", sorted(WRITTEN_DAMAGE))
def test_damage_in_the_stores_own_layout_reads_as_read_reads_it(tmp_path: Path, name: str) -> None:
    (tmp_path / "renders.state.json").write_bytes(WRITTEN_DAMAGE[name])
    kind = same_as_read(tmp_path)[0]
    assert (kind == "ok") == (name in ACCEPTED), kind


@pytest.mark.parametrize("name", ["record_dup_key_first_other", "products_twice", "no_final_newline"])
def test_msgspec_itself_accepts_what_json_keeps_of_a_key_given_twice(name: str) -> None:
    """A key given twice is checked at its last value, as json keeps it. msgspec checks the
    first too, so a bad first value, a product key given twice, or a layout not the store's
    goes the pydantic way (which keeps the last, as read() does)."""
    found = _check_written(WRITTEN_DAMAGE[name])
    assert found is not None
    lineage, serial, index = found
    assert (lineage, serial) == (LINEAGE, 3)
    assert {index.records(WRITTEN_DAMAGE[name])[A].status} == {Status.RENDERED}
    for refused in ("record_dup_key_first_bad", "product_twice_first_bad", "crlf"):
        assert _check_written(WRITTEN_DAMAGE[refused]) is None


def index_agrees(raw: bytes, store: FileStateStore) -> bool:
    """If msgspec's check accepts ``raw`` (the state in ``store``), read() accepts it too and every
    record's spec hash, status and lacking flag in the index are the pydantic record's; whether
    it accepted."""
    found = _check_written(raw)
    if found is None:
        return False
    lineage, serial, index = found
    whole = store.read()  # must not raise
    assert (lineage, serial) == (whole.lineage, whole.serial)
    lazy = index.records(raw)
    assert list(lazy) == list(whole.products)
    ready = lazy.unchanged()
    for uuid, record in whole.products.items():
        i = lazy._at[uuid]
        assert lazy._hashes[lazy._hash_of[i]] == record.spec_hash
        assert lazy._statuses[lazy._status_of[i] & 0x7F] is record.status
        assert bool(lazy._status_of[i] & 0x80) == bool(record.missing_kinds())
        assert (uuid in ready) == (record.status is Status.RENDERED and not record.missing_kinds())
        assert lazy[uuid] == record
    return True


def with_files(*kinds: str, gif: bool | None, turntable: bool = True) -> dict[str, Any]:
    """RECORD with attachments of ``kinds`` and ``includeGif`` set (None: absent), or no turntable."""
    spec = dict(RECORD["spec"])
    if not turntable:
        del spec["turntable"]
    elif gif is None:
        spec["turntable"] = {k: v for k, v in spec["turntable"].items() if k != "includeGif"}
    else:
        spec["turntable"] = {**spec["turntable"], "includeGif": gif}
    files = [
        {**RECORD["attachments"][0], "kind": kind, "uuid": f"{kind}-{i}"} for i, kind in enumerate(kinds)
    ]
    return {**RECORD, "spec": spec, "attachments": files}


LACKING_CASES = [
    with_files("still", "turntable", gif=False),  # complete
    with_files("still", "turntable", gif=True),  # the GIF asked for, not recorded
    with_files("still", "turntable", "gif", gif=True),  # complete
    with_files("gif", "still", "turntable", "still", gif=True),  # complete, in another order, a kind twice
    with_files("still", gif=False),
    with_files("turntable", gif=None),
    with_files("still", "turntable", gif=None),  # includeGif absent: no GIF wanted
    with_files("still", "turntable", gif=None, turntable=False),  # no turntable in the spec
    with_files(gif=True),
    {**with_files("still", "turntable", gif=False), "status": "failed", "error": "e"},
    {
        **with_files("still", "turntable", "gif", gif=True),
        "name": None,
        "status": "in_flight",
        "request": {"request_id": "r", "spec_hash": "1", "requested_at": "t", "spec": RECORD["spec"]},
        "history": [{"spec_hash": "1", "recorded_at": "t", "attachments": RECORD["attachments"]}],
        "workspace": "w",
        "protect": True,
    },
]


def test_a_state_as_the_store_writes_it_is_checked_by_msgspec_and_indexed_as_pydantic_reads_it(
    tmp_path: Path,
) -> None:
    """Every combination of files recorded and files wanted: the lacking flag is
    ``missing_kinds()``'s; and the property test below means something only if the check
    accepts the store's own output."""
    store = FileStateStore(tmp_path / "renders.state.json")
    records = {
        f"{i:08x}-0000-4000-8000-000000000000": model.ProductRecord.model_validate(r)
        for i, r in enumerate(LACKING_CASES)
    }
    assert {bool(r.missing_kinds()) for r in records.values()} == {True, False}
    with store.lock("test"):
        store.write(State(lineage=LINEAGE, products=records))
    assert index_agrees(store.path.read_bytes(), store)
    lazy = store.read_for_plan()
    assert isinstance(lazy, PlanState)
    assert {u: lazy.products[u] for u in lazy.products} == store.read().products


# -- (b) mutated records and states: msgspec accepts only what pydantic accepts, and agrees ----

tricky = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.sampled_from([0, 1, -1, 1.0, 0.5, 1e300, 2**63 - 1, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(
        ["", "rendered", "failed", "in_flight", "requested", "still", "gif", "turntable", "\ud800", A, "x\n"]
    ),
    st.just({}),
    st.just([]),
)
json_values = st.recursive(
    tricky,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = sorted(
    {
        *model.ProductRecord.model_fields,
        *model.Attachment.model_fields,
        *model.RenderRequest.model_fields,
        *model._RecordedSpec.__annotations__,
        *model._RecordedTurntable.__annotations__,
    }
)


BASES: list[dict[str, Any]] = [
    RECORD,
    {
        **RECORD,
        "spec": {**RECORD["spec"], "turntable": {**RECORD["spec"]["turntable"], "includeGif": True}},
        "attachments": [
            {**RECORD["attachments"][0], "kind": kind, "uuid": kind} for kind in ("still", "turntable", "gif")
        ],
        "request": {"request_id": "r", "spec_hash": "1", "requested_at": "t", "spec": RECORD["spec"]},
        "history": [{"spec_hash": "1", "spec": {}, "recorded_at": "t", "attachments": RECORD["attachments"]}],
        "protect": True,
        "workspace": "w",
        "name": "Stiefel ü 靴 👟",
    },
    {"spec": {}, "spec_hash": "2", "status": "failed", "error": "boom", "updated_at": "t"},
    *LACKING_CASES,
]


MEMBER = re.compile(rb'^( +)("[^"\\]*"): .*,$')


@st.composite
def mutated_states(draw: st.DrawFn) -> bytes:
    """A valid state of one to three records, laid out as the store writes it, then changed in
    one to three ways: a value replaced, a key renamed (to a field of another level too) or
    dropped; and maybe a member given twice, the other value before or after it."""
    bases = draw(st.lists(st.sampled_from(BASES), min_size=1, max_size=3))
    data = state(*(json.loads(json.dumps(r)) for r in bases))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths_in(data)[1:]))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        how = draw(st.sampled_from(["value", "rename", "drop", "file", "gif"]))
        products = data.get("products")
        record = products.get(path[1]) if isinstance(products, dict) and len(path) > 1 else None
        if how == "file" and isinstance(record, dict) and isinstance(record.get("attachments"), list):
            files = record["attachments"]  # one dropped, or its kind changed
            if files and draw(st.booleans()):
                files.pop(draw(st.integers(0, len(files) - 1)))
            elif files and isinstance(files[0], dict):
                files[0]["kind"] = draw(st.sampled_from(["still", "turntable", "gif"]))
        elif how == "gif" and isinstance(record, dict) and isinstance(record.get("spec"), dict):
            turntable = record["spec"].setdefault("turntable", {})
            if isinstance(turntable, dict):
                turntable["includeGif"] = draw(st.booleans())
        elif how == "value":
            parent[path[-1]] = draw(json_values)
        elif how == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(FIELDS) | st.text(max_size=8))] = parent.pop(path[-1])
        elif how == "drop":
            del parent[path[-1]]
    lines = written(data, ascii=draw(st.booleans())).split(b"\n")
    members = [i for i, line in enumerate(lines) if MEMBER.match(line)]
    if members and draw(st.booleans()):
        at = draw(st.sampled_from(members))
        indent, key = MEMBER.match(lines[at]).groups()  # type: ignore[union-attr]
        other = indent + key + b": " + json.dumps(draw(json_values)).encode() + b","
        lines.insert(at + draw(st.integers(0, 1)), other)  # both end in a comma: still JSON
    return b"\n".join(lines)


@given(raw=mutated_states())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_what_msgspec_accepts_pydantic_accepts_with_the_same_index(tmp_path: Path, raw: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    os.environ["RECONCILER_CACHE_DIR"] = str(folder / "cache")  # cold; the fixture restores it
    path = folder / "renders.state.json"
    path.write_bytes(raw)
    store = FileStateStore(path)
    index_agrees(raw, store)
    # And whatever the check says, the cold plan read agrees with read().
    assert outcome(store.read_for_plan) == outcome(store.read)


# -- (d) the structs cannot drift from the models ---------------------------------------------

PAIRS: list[tuple[type[msgspec.Struct], Any]] = [
    (checked.Attachment, model.Attachment),
    (checked.RenderRequest, model.RenderRequest),
    (checked.PastRender, model.PastRender),
    (checked.ProductRecord, model.ProductRecord),
    (checked.State, model.State),
    (checked.RecordedSpec, model._RecordedSpec),
    (checked.RecordedTurntable, model._RecordedTurntable),
]


@pytest.mark.parametrize("struct, mirrored", PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_the_structs_have_the_models_fields_and_the_same_required_ones(
    struct: type[msgspec.Struct], mirrored: Any
) -> None:
    fields = msgspec.structs.fields(struct)
    if isinstance(mirrored, type) and issubclass(mirrored, BaseModel):
        assert {f.name for f in fields} == set(mirrored.model_fields)
        required = {name for name, info in mirrored.model_fields.items() if info.is_required()}
    else:  # a TypedDict, total=False
        assert {f.name for f in fields} == set(mirrored.__annotations__)
        required = set(mirrored.__required_keys__)
    assert {f.name for f in fields if f.required} == required
    assert struct.__struct_config__.forbid_unknown_fields


def test_a_past_render_without_a_spec_has_the_empty_one_as_in_the_model() -> None:
    raw = b'{"spec_hash": "1", "recorded_at": "t"}'
    assert msgspec.json.decode(raw, type=checked.PastRender).spec == checked.RecordedSpec()
    assert PastRender.model_validate_json(raw).spec == {}


@pytest.mark.parametrize("key", [A + "\n", A.upper(), A[:-1], A + "0", " " + A])
def test_a_product_key_is_the_canonical_uuid_to_the_end_as_pydantics_pattern(key: str) -> None:
    raw = json.dumps({key: 1}).encode()
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=dict[checked.ProductUuid, int])
    with pytest.raises(ValueError):  # pydantic's ValidationError
        model.RECORDS_ADAPTER.validate_python({key: RECORD})
