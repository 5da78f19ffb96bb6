"""Refresh and import driven directly, as the executor is in test_executor_apply.py: a real client
(or a Connection, as the CLI makes one) against the real sandbox, a real file state, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.accepting import accept
from reconciler.connection import Connection
from reconciler.executor import ApplyOptions, apply
from reconciler.importing import ImportRequest, Outcome, run_import
from reconciler.loader import load_desired
from reconciler.plan import Plan
from reconciler.planner import build_plan
from reconciler.refresh import observe
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.state import State, open_store
from tests.e2e.conftest import PRODUCTS, manifest, platform_client, render_behind_our_back, tiny_spec
from tests.e2e.test_executor_apply import Recorder

TRAIL, COURT = PRODUCTS["trail"], PRODUCTS["court"]


@pytest.fixture
def rendered(tmp_path: Path, sandbox: EmbeddedSandbox) -> tuple[list[Path], Path]:
    """Trail and Court rendered by executor.apply; the manifests and the state file."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "catalogue.yaml").write_text(manifest({"Trail": TRAIL, "Court": COURT}))
    path = tmp_path / "state" / "renders.state.json"
    store = open_store(path)

    def make(state: State) -> Plan:
        return build_plan(load_desired([manifests]), state, location=store.location)

    with platform_client(sandbox) as client:
        report = apply(
            make, client=client, store=store, hooks=Recorder(), options=ApplyOptions(poll_interval=0.05)
        )
    assert sorted(report.rendered) == sorted([TRAIL, COURT])
    return [manifests], path


def test_observe_sees_what_was_recorded_and_accept_finds_no_drift(
    rendered: tuple[list[Path], Path], sandbox: EmbeddedSandbox
) -> None:
    store = open_store(rendered[1])
    with platform_client(sandbox) as client, store.lock("refresh"):  # accept writes: the caller locks
        state = store.fold()
        seen = observe(client, state)
        assert sorted(seen.products) == sorted([TRAIL, COURT])
        recorded = {a.uuid for a in state.products[TRAIL].attachments}
        assert recorded <= {a.uuid for a in seen.products[TRAIL].attachments}
        assert accept(client, store, state, seen) == ({}, {})


def test_a_render_behind_our_back_is_accepted_as_the_platform_has_it(
    rendered: tuple[list[Path], Path], sandbox: EmbeddedSandbox
) -> None:
    render_behind_our_back(sandbox, [COURT], tiny_spec(imageWidth=40))
    store = open_store(rendered[1])
    with platform_client(sandbox) as client, store.lock("refresh"):
        state = store.fold()
        accepted, failed = accept(client, store, state, observe(client, state))
    assert failed == {} and list(accepted) == [COURT]
    assert store.read().products[COURT].spec["imageWidth"] == 40  # read from the files


def test_import_adopts_what_the_platform_holds_through_the_connection_the_cli_makes(
    rendered: tuple[list[Path], Path], sandbox: EmbeddedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VNTANA_API_TOKEN", sandbox.access_token)
    connection = Connection(flags={"api_url": sandbox.url, "organization_uuid": sandbox.organization_uuid})
    notes: list[str] = []
    report = run_import(
        ImportRequest(
            products=(TRAIL,),
            all_products=False,
            manifests=rendered[0],
            state_path=rendered[1],
            force=True,
            connection=connection,
        ),
        notes.append,
    )
    (result,) = report.results
    assert result.outcome is Outcome.IN_SYNC and result.record is not None
    assert report.error() is None and notes == []  # the real API: nothing was started to note
    assert report.serial == open_store(rendered[1]).read().serial
