"""The lazy state read for planning (reconciler.state.index, FileStateStore.read_for_plan).

Whatever the index says, the plan must be the one a full ``read()`` gives: for every kind of
record, after edits the clock cannot see, with a journal, with a damaged, foreign or older
index, and for a ``format_version`` 1 state written in any JSON layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.cache import CACHE_VERSION, Cache, digest
from reconciler.errors import StateCorruptError
from reconciler.loader import load_desired
from reconciler.planner import build_plan
from reconciler.state import Attachment, FileStateStore, ProductRecord, RenderRequest, State, Status
from reconciler.state.index import NotScannable, PlanState, scan, written_spans
from reconciler.views.plan import render_json
from tests.catalogue import DEFAULTS


def uuid_of(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "manifests" / "m.yaml"
    path.parent.mkdir()
    rows = "".join(f"  - uuid: {uuid_of(i)}\n    name: P{i}\n" for i in range(8))
    path.write_text(DEFAULTS + "products:\n" + rows + f"  - uuid: {uuid_of(8)}\n    imageWidth: 900\n")
    return path.parent


def record(spec: dict[str, object], spec_hash: str, status: Status, kinds: list[str]) -> ProductRecord:
    return ProductRecord(
        name="x",
        spec=spec,
        spec_hash=spec_hash,
        status=status,
        request=RenderRequest(request_id="r", spec_hash=spec_hash, requested_at="2026-01-01T00:00:00Z"),
        attachments=[
            Attachment(kind=k, uuid=f"{k}-1", name=f"{k}.bin", sha256="0" * 64, size=1, content_type="x")
            for k in kinds
        ],
        error="boom" if status is Status.FAILED else None,
        updated_at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def store(tmp_path: Path, catalogue: Path) -> FileStateStore:
    """A state with one record of every kind the planner tells apart."""
    desired = load_desired([catalogue], cache=None)
    want = {u: (p.spec.canonical(), p.spec_hash) for u, p in desired.products.items()}
    spec, h = want[uuid_of(0)]
    products = {
        uuid_of(0): record(spec, h, Status.RENDERED, ["still", "turntable"]),  # unchanged
        uuid_of(1): record(spec, h, Status.RENDERED, ["still"]),  # a file not recorded
        uuid_of(2): record(spec, h, Status.FAILED, []),  # retry
        uuid_of(3): record(spec, h, Status.IN_FLIGHT, []),  # resume
        uuid_of(4): record(spec, h, Status.REQUESTED, []),
        uuid_of(5): record({**spec, "imageWidth": 10}, "f" * 64, Status.RENDERED, ["still", "turntable"]),
        uuid_of(6): record(spec, h, Status.RENDERED, ["still", "turntable"]),
        uuid_of(8): record(*want[uuid_of(8)], Status.RENDERED, ["still", "turntable"]),
        uuid_of(99): record(spec, h, Status.RENDERED, ["still", "turntable"]),  # orphan
    }
    s = FileStateStore(tmp_path / "state" / "renders.state.json")
    with s.lock("test"):
        s.write(State(lineage="6f1c2c9e-0000-4000-8000-000000000000", products=products))
    return s


def plans_agree(store: FileStateStore, catalogue: Path) -> object:
    desired = load_desired([catalogue], cache=None)
    lazy = store.read_for_plan()
    want = render_json(build_plan(desired, store.read(), location=store.location))
    assert render_json(build_plan(desired, lazy, location=store.location)) == want
    return lazy


def test_the_first_plan_checks_and_indexes_the_state_and_the_next_reads_the_index(
    store: FileStateStore, catalogue: Path
) -> None:
    """The first plan of a state as the store writes it checks it with msgspec and makes the index
    (a lazy read, as the next plan's); the next one reads the index and leaves the entry as it is."""
    first = plans_agree(store, catalogue)
    assert isinstance(first, PlanState)
    made = index_entry(store).read_bytes()
    second = plans_agree(store, catalogue)
    assert isinstance(second, PlanState)
    assert index_entry(store).read_bytes() == made
    assert first.products.unchanged() == second.products.unchanged()  # type: ignore[attr-defined]
    kinds = {
        a["kind"] for a in json.loads(render_json(build_plan(load_desired([catalogue]), second)))["actions"]
    }
    assert {"noop", "rerender", "retry", "resume", "orphan", "render"} <= kinds


def test_only_the_products_that_change_are_built(store: FileStateStore, catalogue: Path) -> None:
    store.read_for_plan()
    lazy = store.read_for_plan()
    assert isinstance(lazy, PlanState)
    build_plan(load_desired([catalogue]), lazy)
    built = set(lazy.products._built)
    assert uuid_of(0) not in built and uuid_of(6) not in built and uuid_of(8) not in built
    assert {uuid_of(1), uuid_of(2), uuid_of(5)} <= built


def test_an_edit_with_the_same_size_and_mtime_is_seen(store: FileStateStore, catalogue: Path) -> None:
    store.read_for_plan()
    before = os.stat(store.path)
    text = store.path.read_text()
    wanted = store.read().products[uuid_of(0)].spec_hash
    edited = text.replace("f" * 64, wanted)  # product 5 recorded at the wanted spec: now unchanged
    assert len(edited) == len(text) and edited != text
    store.path.write_text(edited)
    os.utime(store.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    lazy = plans_agree(store, catalogue)
    assert lazy.products[uuid_of(5)].spec_hash == wanted  # a new hash: checked again, index made again
    assert json.loads(index_entry(store).read_bytes().split(b"\n")[1])["content"] == digest(edited.encode())


def test_a_journal_means_a_full_read(store: FileStateStore, catalogue: Path) -> None:
    store.read_for_plan()
    state = store.read()
    with store.lock("test"):
        store.checkpoint(state, uuid_of(6), None)
    lazy = plans_agree(store, catalogue)
    assert isinstance(lazy, State) and uuid_of(6) not in lazy.products


def index_entry(store: FileStateStore) -> Path:
    root = os.environ["RECONCILER_CACHE_DIR"]
    return Cache(Path(root), "state-index").entry_path(store.location)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:-3] + b"\xff\xff\xff",
        lambda raw: b"garbage",
    ],
    ids=["torn", "payload-bytes", "garbage"],
)
def test_a_damaged_index_is_ignored(store: FileStateStore, catalogue: Path, damage: object) -> None:
    store.read_for_plan()
    entry = index_entry(store)
    made = entry.read_bytes()
    entry.write_bytes(damage(made))  # type: ignore[operator]
    assert isinstance(plans_agree(store, catalogue), PlanState)
    assert entry.read_bytes() == made  # not used: made again


def test_an_index_from_another_version_or_state_is_ignored(
    store: FileStateStore, catalogue: Path, tmp_path: Path
) -> None:
    store.read_for_plan()
    entry = index_entry(store)
    made = entry.read_bytes()
    magic, header, payload = made.split(b"\n", 2)
    data = json.loads(header)
    entry.write_bytes(
        b"\n".join([magic, json.dumps({**data, "version": CACHE_VERSION + 1}).encode(), payload])
    )
    plans_agree(store, catalogue)
    assert entry.read_bytes() == made  # not used: made again
    # another state's index, copied over this one's
    other = FileStateStore(tmp_path / "other" / "renders.state.json")
    with other.lock("test"):
        other.write(State(lineage="00000000-0000-4000-8000-000000000000"))
    other.read_for_plan()
    index_entry(store).write_bytes(index_entry(other).read_bytes())
    plans_agree(store, catalogue)
    assert entry.read_bytes() == made


def test_a_forged_index_that_does_not_add_up_is_ignored(store: FileStateStore, catalogue: Path) -> None:
    """A header whose counts do not match its payload (its payload hash is right) is a miss."""
    store.read_for_plan()
    cache = Cache(Path(os.environ["RECONCILER_CACHE_DIR"]), "state-index")
    hit = cache.get(store.location, digest(store.path.read_bytes()))
    assert hit is not None
    meta, payload = hit
    content = digest(store.path.read_bytes())
    made = index_entry(store).read_bytes()
    cache.put(store.location, content, payload, **{**meta, "count": meta["count"] + 1})
    plans_agree(store, catalogue)
    assert index_entry(store).read_bytes() == made  # not used: made again
    cache.put(store.location, content, payload, **{**meta, "hashes": []})
    plans_agree(store, catalogue)
    assert index_entry(store).read_bytes() == made


def test_an_index_whose_facts_were_changed_is_ignored(store: FileStateStore, catalogue: Path) -> None:
    """The spec hashes sit in the entry's header; one digit changed there (still valid JSON)
    must not reach the plan: the seal covers the header's facts as well as the payload."""
    store.read_for_plan()
    entry = index_entry(store)
    made = entry.read_bytes()
    magic, header, payload = made.split(b"\n", 2)
    data = json.loads(header)
    first = data["meta"]["hashes"][0]
    data["meta"]["hashes"][0] = ("1" if first[0] != "1" else "2") + first[1:]
    entry.write_bytes(b"\n".join([magic, json.dumps(data).encode(), payload]))
    plans_agree(store, catalogue)
    assert entry.read_bytes() == made  # not used: made again


def test_a_damaged_state_is_reported_as_read_reports_it(store: FileStateStore) -> None:
    store.path.write_text(store.path.read_text().replace('"rendered"', '"done"', 1))
    with pytest.raises(StateCorruptError) as lazy:
        store.read_for_plan()
    with pytest.raises(StateCorruptError) as whole:
        store.read()
    assert str(lazy.value) == str(whole.value)


def test_no_cache_still_checks_in_c_and_keeps_nothing(
    store: FileStateStore, catalogue: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With the cache off, a state laid out as the store writes it is still checked by msgspec
    # and read lazily (not 10^5 pydantic models: 805 MB at 10^5); no index is kept anywhere.
    monkeypatch.setenv("RECONCILER_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    desired = load_desired([catalogue], cache=None)
    lazy = store.read_for_plan()
    assert isinstance(lazy, PlanState)
    assert render_json(build_plan(desired, lazy)) == render_json(build_plan(desired, store.read()))
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    # Damage is still reported as read() reports it.
    store.path.write_text(store.path.read_text().replace('"rendered"', '"done"', 1))
    with pytest.raises(StateCorruptError) as lazy_error:
        store.read_for_plan()
    with pytest.raises(StateCorruptError) as whole:
        store.read()
    assert str(lazy_error.value) == str(whole.value)


def test_a_format_version_1_state_in_any_layout_plans_the_same(
    store: FileStateStore, catalogue: Path
) -> None:
    """A version 1 state as another tool (or a person) might write it: no indentation, keys in
    another order, unicode unescaped: the index is made from it and the plan does not change."""
    data = json.loads(store.path.read_text())
    data["products"][uuid_of(0)]["name"] = "Stiefel ü 靴"
    shuffled = {"products": data["products"], "lineage": data["lineage"], "serial": 3, "format_version": 1}
    store.path.write_text(json.dumps(shuffled, ensure_ascii=False, separators=(",", ":")))
    assert isinstance(plans_agree(store, catalogue), State)
    lazy = plans_agree(store, catalogue)
    assert isinstance(lazy, PlanState) and lazy.products[uuid_of(0)].name == "Stiefel ü 靴"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@given(
    top=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    products=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    indent=st.sampled_from([None, 0, 1, 2, "\t"]),
)
def test_scan_reads_what_json_reads(
    top: dict[str, object], products: dict[str, object], indent: object
) -> None:
    text = json.dumps({**top, "products": products}, indent=indent, ensure_ascii=False)  # type: ignore[arg-type]
    data, spans = scan(text)
    assert data == json.loads(text)
    assert {k: json.loads(text[a:b]) for k, (a, b) in spans.items()} == products


@pytest.mark.parametrize("text", ["", "[]", '{"a" 1}', '{"a": 1,}', '{"products": {"x": 1} ', '{"a": 1} x'])
def test_scan_refuses_what_is_not_an_object(text: str) -> None:
    with pytest.raises(NotScannable):
        scan(text)


def test_the_written_layout_is_found_by_its_keys_and_agrees_with_scan(store: FileStateStore) -> None:
    text = store.path.read_text()
    data, spans = scan(text)
    assert written_spans(text, list(data["products"])) == spans
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    assert written_spans(compact, list(data["products"])) is None
    assert written_spans(text, list(reversed(data["products"]))) is None  # not the parsed order: not used


def test_a_value_only_pydantic_accepts_still_plans_the_same(store: FileStateStore, catalogue: Path) -> None:
    """``"protect": 1`` reads as true (pydantic is lax there); msgspec's check refuses it, so the
    first plan builds the models as read() does, and the index it makes serves the next."""
    text = store.path.read_text()
    assert '"protect": false' in text
    store.path.write_text(text.replace('"protect": false', '"protect": 1', 1))
    first = plans_agree(store, catalogue)
    assert isinstance(first, State)
    assert sum(r.protect for r in first.products.values()) == 1
    second = plans_agree(store, catalogue)
    assert isinstance(second, PlanState)
    assert {u: second.products[u] for u in second.products} == first.products


def test_names_beyond_ascii_read_through_the_index_by_byte_offsets(
    store: FileStateStore, catalogue: Path
) -> None:
    """Raw UTF-8 in the state (``to_json`` writes it unescaped): every record after a name of
    multi-byte characters must still be sliced whole, cold and from the cache."""
    state = store.read()
    for i, uuid in enumerate(state.products):
        state.products[uuid].name = ["Stiefel ü 靴", "👟" * 50, "Ωmega"][i % 3]
    with store.lock("test"):
        store.write(state)
    assert "👟".encode() in store.path.read_bytes()
    for _ in range(2):  # cold (msgspec), then from the index
        lazy = plans_agree(store, catalogue)
        assert isinstance(lazy, PlanState)
        assert {u: lazy.products[u] for u in lazy.products} == store.read().products
    # The same through the pydantic path (a lax value msgspec refuses): its text offsets are
    # turned into byte offsets for the index.
    store.path.write_text(store.path.read_text().replace('"protect": false', '"protect": 1', 1))
    assert isinstance(plans_agree(store, catalogue), State)
    lazy = plans_agree(store, catalogue)
    assert isinstance(lazy, PlanState)
    assert {u: lazy.products[u] for u in lazy.products} == store.read().products
