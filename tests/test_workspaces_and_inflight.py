"""Offline parts of issue 11's teams and long runs: ``workspace:`` in manifests (loader, spec hash,
batches, plan document), the state's new optional fields (old states read, unchanged shape
without them), and the plan ``collect`` runs and the rows ``status`` shows (reconciler.inflight).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.inflight import age_text, collect_plan, pending
from reconciler.loader import load_desired
from reconciler.plan import ActionKind, Plan
from reconciler.planner import build_plan
from reconciler.state import ProductRecord, RenderRequest, State, Status
from reconciler.state.model import RECORD_ADAPTER
from tests.catalogue import DEFAULTS

from .test_loader import A, B, C, products, write

WS = "a983026e-cb31-58d8-8ec4-6753670e6cfd"


def test_a_files_workspace_reaches_its_products_only_and_changes_no_spec_hash(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A))
    plain = load_desired([tmp_path]).products[A].spec_hash
    write(tmp_path, "a.yaml", "# team archive\nworkspace: archive\n" + DEFAULTS + products(A))
    write(tmp_path, "b.yaml", f"workspace: {WS.upper()}\n" + DEFAULTS + products(B))
    write(tmp_path, "c.yaml", DEFAULTS + products(C))
    desired = load_desired([tmp_path])
    assert desired.products[A].spec_hash == plain  # where a product lives is not how it is rendered
    assert [desired.products[u].workspace for u in (A, B, C)] == ["archive", WS, None]
    assert desired.workspaces == {"archive": f"{tmp_path}/a.yaml:2", WS: f"{tmp_path}/b.yaml:1"}


def test_a_workspace_with_presets_reaches_the_products_that_wait_for_them(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "presets:\n  small: {imageWidth: 64}\n")
    write(tmp_path, "a.yaml", "workspace: archive\n" + DEFAULTS + products(A, extra="    preset: small\n"))
    assert load_desired([tmp_path]).products[A].workspace == "archive"


@pytest.mark.parametrize("value", ["[archive]", "''", "'two words'", "42", "null"])
def test_a_workspace_that_is_no_uuid_or_slug_is_located(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "a.yaml", DEFAULTS + f"workspace: {value}\n" + products(A))
    with pytest.raises(ManifestError) as info:
        load_desired([path])
    (d,) = info.value.diagnostics
    assert (d.location.file, d.location.line) == (str(path), 11)
    assert "must be a workspace uuid or slug" in d.message


def test_batches_never_mix_workspaces_and_without_them_are_as_before(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A, B))
    before = build_plan(load_desired([tmp_path]), State(lineage="x"), location="s")
    assert [(b.workspace, sorted(b.products)) for b in before.batches] == [(None, sorted([A, B]))]
    assert "workspaces" not in before.to_json()
    write(tmp_path, "a.yaml", DEFAULTS + products(A))
    write(tmp_path, "b.yaml", "workspace: archive\n" + DEFAULTS + products(B))
    plan = build_plan(load_desired([tmp_path]), State(lineage="x"), location="s")
    assert sorted((b.workspace or "", b.products) for b in plan.batches) == [("", [A]), ("archive", [B])]
    assert len({b.spec_hash for b in plan.batches}) == 1
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())), "saved")
    assert [b.workspace for b in again.batches] == [b.workspace for b in plan.batches]
    assert again.workspaces == plan.workspaces == {"archive": f"{tmp_path}/b.yaml:1"}
    assert {a.product: a.workspace for a in again.actions} == {A: None, B: "archive"}


def _record(**kw: object) -> ProductRecord:
    data = {"spec": {"imageWidth": 10}, "spec_hash": "old", "status": "rendered", "updated_at": "t", **kw}
    return RECORD_ADAPTER.validate_python(data)


def test_an_old_record_reads_and_new_fields_appear_only_when_set() -> None:
    old = _record()
    assert old.workspace is None
    dumped = old.model_dump(mode="json")
    assert "workspace" not in dumped  # a state without workspaces keeps its shape (and its git diff)
    req = RenderRequest(request_id="r", spec_hash="h", requested_at="t")
    assert "spec" not in req.model_dump(mode="json")
    new = _record(
        workspace=WS, request={"request_id": "r", "spec_hash": "h", "requested_at": "t", "spec": {}}
    )
    assert RECORD_ADAPTER.validate_json(new.model_dump_json()) == new


def _in_flight(spec_hash: str, request_spec: dict[str, int] | None, at: datetime) -> ProductRecord:
    return _record(
        status=Status.IN_FLIGHT,
        request=RenderRequest(
            request_id="req-1", spec_hash=spec_hash, requested_at=at.isoformat(), spec=request_spec
        ),
    )


def test_collect_waits_for_every_product_in_flight_with_the_spec_its_trigger_asked_for() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    state = State(
        lineage="x",
        products={
            A: _in_flight("new", {"imageWidth": 20}, now - timedelta(minutes=5)),
            B: _in_flight("old", None, now - timedelta(hours=2)),  # an older reconciler's, same spec
            C: _in_flight("other", None, now),  # an older reconciler's, spec unknown
        },
    )
    plan, unknown = collect_plan(state, "s")
    assert sorted((a.product, a.kind, a.spec["imageWidth"]) for a in plan.actions) == sorted(
        [(A, ActionKind.RESUME, 20), (B, ActionKind.RESUME, 10)]
    )
    assert unknown == [C]
    assert not plan.batches  # nothing is triggered
    rows = pending(state, now)
    assert [r.product for r in rows] == [B, A, C]  # the oldest first
    assert [age_text(r.age_seconds) for r in rows] == ["2 h 0 min", "5 min", "0 s"]
    assert rows[1].to_json()["spec"] == {"imageWidth": 20}


def test_a_file_with_a_workspace_is_never_served_from_the_parse_cache_without_it(tmp_path: Path) -> None:
    from reconciler.cache import Cache

    cache = Cache(tmp_path / "cache", "manifest")
    write(tmp_path / "m", "a.yaml", "workspace: archive\n" + DEFAULTS + products(A))
    write(tmp_path / "m", "b.yaml", DEFAULTS + products(B))
    for _ in range(2):  # the second load may use the cache
        desired = load_desired([tmp_path / "m"], cache=cache)
        assert (desired.products[A].workspace, desired.products[B].workspace) == ("archive", None)
        assert desired.workspaces == {"archive": f"{tmp_path}/m/a.yaml:1"}
    assert not cache.entry_path(str(tmp_path / "m" / "a.yaml")).exists()
    assert cache.entry_path(str(tmp_path / "m" / "b.yaml")).exists()
