"""``executor.apply`` driven directly: a real client against the real sandbox over HTTP, a real
file state, and a hook that records the events (nothing of ours is mocked). It owns the run:
the lock, the stale-plan check, the plan made under the lock, the breaker, labels, the finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import LargeChangeError, StalePlanError
from reconciler.events import Event, RunFinished, RunStarted
from reconciler.executor import ApplyOptions, apply
from reconciler.loader import load_desired
from reconciler.plan import Plan
from reconciler.planner import Limits, PlanOptions, build_plan
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.state import State, open_store
from tests.e2e.conftest import PRODUCTS, manifest, platform_client


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[type]:
        return [type(e) for e in self.events]


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "catalogue.yaml").write_text(
        manifest({"Trail": PRODUCTS["trail"], "Court": PRODUCTS["court"]})
    )
    return {"manifests": [manifests], "store": open_store(tmp_path / "state" / "renders.state.json")}


def _plan_from(world: dict[str, Any], options: PlanOptions | None = None) -> Any:
    def make(state: State) -> Plan:
        return build_plan(load_desired(world["manifests"]), state, options, location=world["store"].location)

    return make


FAST = {"poll_interval": 0.05, "product_timeout": 30.0}


def test_a_plan_made_under_the_lock_is_shown_applied_and_finished(
    world: dict[str, Any], sandbox: EmbeddedSandbox
) -> None:
    shown: list[Plan] = []
    hooks = Recorder()
    with platform_client(sandbox) as client:
        report = apply(
            _plan_from(world),
            client=client,
            store=world["store"],
            hooks=hooks,
            options=ApplyOptions(show=shown.append, **FAST),
        )
    assert sorted(report.rendered) == sorted([PRODUCTS["trail"], PRODUCTS["court"]]) and not report.failed
    assert [len(p.batches) for p in shown] == [1]
    assert hooks.kinds()[0] is RunStarted and hooks.kinds()[-1] is RunFinished
    state = world["store"].read()
    assert report.lineage == state.lineage and len(state.products) == 2


def test_nothing_to_apply_changes_no_render_and_emits_no_run(
    world: dict[str, Any], sandbox: EmbeddedSandbox
) -> None:
    with platform_client(sandbox) as client:
        apply(
            _plan_from(world),
            client=client,
            store=world["store"],
            hooks=Recorder(),
            options=ApplyOptions(**FAST),
        )
        hooks = Recorder()
        report = apply(
            _plan_from(world), client=client, store=world["store"], hooks=hooks, options=ApplyOptions(**FAST)
        )
    assert report.changes is False and report.rendered == []
    assert hooks.events == []


def test_a_saved_plan_is_refused_once_the_state_moved(
    world: dict[str, Any], sandbox: EmbeddedSandbox
) -> None:
    store = world["store"]
    saved = build_plan(load_desired(world["manifests"]), store.read(), location=store.location)
    with platform_client(sandbox) as client:
        apply(_plan_from(world), client=client, store=store, hooks=Recorder(), options=ApplyOptions(**FAST))
        hooks = Recorder()
        with pytest.raises(StalePlanError):
            apply(saved, client=client, store=store, hooks=hooks, options=ApplyOptions(**FAST))
    assert hooks.events == []  # refused before anything ran


def test_the_breaker_refuses_after_the_plan_is_shown_and_before_any_change(
    world: dict[str, Any], sandbox: EmbeddedSandbox
) -> None:
    tight = PlanOptions(limits=Limits(rerender_share=0.1, rerender_floor=0))
    with platform_client(sandbox) as client:
        apply(
            _plan_from(world),
            client=client,
            store=world["store"],
            hooks=Recorder(),
            options=ApplyOptions(**FAST),
        )
        before = world["store"].read()
        (world["manifests"][0] / "catalogue.yaml").write_text(
            manifest({"Trail": PRODUCTS["trail"], "Court": PRODUCTS["court"]}, gif=False)
        )
        shown: list[Plan] = []
        hooks = Recorder()
        with pytest.raises(LargeChangeError):
            apply(
                _plan_from(world, tight),
                client=client,
                store=world["store"],
                hooks=hooks,
                options=ApplyOptions(show=shown.append, **FAST),
            )
        # Accepted at apply time, the same plan runs.
        report = apply(
            _plan_from(world, tight),
            client=client,
            store=world["store"],
            hooks=Recorder(),
            options=ApplyOptions(allow_large=True, **FAST),
        )
    assert len(shown) == 1 and shown[0].limits_tripped and hooks.events == []
    assert world["store"].read().serial > before.serial and len(report.rendered) == 2
