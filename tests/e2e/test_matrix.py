"""The main flows, end to end, under every reading of VNTANA's documents the sandbox offers.

One scenario per entry of the sandbox's ``MATRIX`` (the defaults, each other value of one
switch, and the hostile profile with every switch away from its default), each on its own
sandbox, through the real CLI in subprocesses. The scenario is the same for every reading and
must pass unchanged: the client copes with each reading, nothing here adapts to it.

The scenario, as an Owner with a workspace configured (so the workspace step is skipped and
webhooks name a workspace):
  1. apply, killed right after the first of two batches is triggered;
  2. apply again: the killed batch is resumed (not paid again), the second triggered and
     waited for with webhooks (the run reports the deliveries it accepted);
  3. behind the reconciler's back: a recorded GIF is deleted, a product to be pruned gets a
     PDF, a QR code and a still uploaded by hand to its Renders tab, a new product is rendered,
     and a hand-made still is uploaded to a product that will be re-rendered on purpose;
  4. plan --refresh --prune=delete: drift by cause; the new product's renders made elsewhere
     block it; the prune deletes only the reconciler's files and lists the rest as left alone;
  5. import adopts the product rendered elsewhere;
  6. apply --refresh --prune=delete --replace: re-renders the drifted product, renders over
     the hand-made still because it was asked to, prunes; nobody's file is lost;
  7. plan --refresh --detailed-exitcode: nothing left to do.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.server import MATRIX, EmbeddedSandbox, Readings
from tests.e2e.conftest import (
    PRODUCTS,
    Project,
    fast_config,
    manifest,
    platform_client,
    render_behind_our_back,
    started,
    tiny_spec,
)
from tests.e2e.uploads import PDF, PNG, upload
from tests.reaper import Reaper

TRAIL, COURT, CHAIR, LOAFER = (PRODUCTS[k] for k in ("trail", "court", "chair", "loafer"))
# CHAIR renders without a GIF: a second spec, so the first apply has two batches.
NO_GIF = {CHAIR: "turntable:\n  includeGif: false"}


def _actions(result: Any) -> dict[str, dict[str, Any]]:
    return {a["product"]: a for a in json.loads(result.stdout)["actions"]}


def _files(sandbox: EmbeddedSandbox, product: str) -> dict[str, str]:
    with platform_client(sandbox) as client:
        return {a.uuid: (a.entity_type or "") for a in client.list_attachments(product)}


@pytest.fixture(params=MATRIX, ids=[r.label for r in MATRIX])
def world(request: pytest.FixtureRequest, tmp_path: Path, reaper: Reaper) -> Any:
    readings: Readings = request.param
    platform = EmbeddedSandbox(data_dir=tmp_path / "platform", config=fast_config(readings))
    with started(platform, reaper) as sandbox:
        root = tmp_path / "project"
        (root / "manifests").mkdir(parents=True)
        yield Project(root, sandbox, settings={"VNTANA_CLIENT_UUID": sandbox.client_uuid})


def test_the_main_flows_pass_unchanged_under_every_reading(world: Project) -> None:
    project, sandbox = world, world.sandbox
    project.write_manifest(manifest([TRAIL, COURT, CHAIR], overrides=NO_GIF))

    # 1-2. A crash after the first trigger, then a resumed run that waits with webhooks.
    killed = project.apply(env={"RECONCILER_FAILPOINT": "after-trigger"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = project.cli(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        "127.0.0.1:0",
        "--poll-interval",
        "2",
        "--timeout",
        "30",
    )
    assert resumed.returncode == 0, resumed.stderr
    deliveries = next(line for line in resumed.stderr.splitlines() if line.startswith("Webhook deliveries:"))
    assert not deliveries.startswith("Webhook deliveries: 0 accepted"), deliveries
    records = project.state()["products"]
    assert {u: r["status"] for u, r in records.items()} == dict.fromkeys((TRAIL, COURT, CHAIR), "rendered")
    assert sorted(a["kind"] for a in records[COURT]["attachments"]) == ["gif", "still", "turntable"]
    assert all(project.triggers(u) == 1 for u in (TRAIL, COURT, CHAIR)), "a resumed product was paid twice"

    # 3. Behind the reconciler's back.
    gif = next(a["uuid"] for a in records[COURT]["attachments"] if a["kind"] == "gif")
    with platform_client(sandbox) as client:
        client.delete_attachment(COURT, gif)
    foreign = {
        upload(sandbox, CHAIR, "spec-sheet.pdf", PDF)["uuid"]: "PRODUCT",
        upload(sandbox, CHAIR, f"qrCode_{CHAIR}.png", PNG)["uuid"]: "PRODUCT",
        upload(sandbox, CHAIR, "hand-made.png", PNG, store_type="RENDER")["uuid"]: "RENDER",
    }
    hand_on_trail = upload(sandbox, TRAIL, "hand-made.png", PNG, store_type="RENDER")["uuid"]
    render_behind_our_back(sandbox, [LOAFER], tiny_spec())
    project.write_manifest(manifest([TRAIL, COURT, LOAFER]))  # CHAIR leaves the manifests

    # 4. The plan sees every cause, and what it would leave alone.
    planned = project.cli("plan", "--refresh", "--prune=delete", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    actions = _actions(planned)
    assert (actions[COURT]["kind"], actions[COURT]["reason"]) == ("rerender", "remote_missing")
    assert (actions[TRAIL]["kind"], actions[TRAIL]["reason"]) == ("noop", "foreign_files")
    assert (actions[LOAFER]["kind"], actions[LOAFER]["reason"]) == ("blocked", "new")
    assert actions[CHAIR]["kind"] == "delete"
    assert sorted(actions[CHAIR]["keeps"]) == sorted(
        ["spec-sheet.pdf (PRODUCT)", f"qrCode_{CHAIR}.png (PRODUCT)", "hand-made.png (RENDER)"]
    )
    assert len(actions[CHAIR]["deletes"]) == 2  # its still and its MP4: no GIF

    # 5. Import adopts what was rendered elsewhere, without a render.
    imported = project.cli("import", LOAFER)
    assert imported.returncode == 0, imported.stderr
    assert project.state()["products"][LOAFER]["status"] == "rendered"

    # 6. Converge: re-render the drifted product, render over a hand-made still on request, prune.
    converged = project.apply("--refresh", "--prune=delete", "--replace", TRAIL)
    assert converged.returncode == 0, converged.stderr
    assert "left alone" in converged.stderr
    assert _files(sandbox, CHAIR) == foreign, "prune touched a file the reconciler did not make"
    assert CHAIR not in project.state()["products"]
    trail_files = _files(sandbox, TRAIL)
    assert (hand_on_trail in trail_files) is (not sandbox.readings.manual_renders_replaced)
    assert [project.triggers(u) for u in (TRAIL, COURT, CHAIR, LOAFER)] == [2, 2, 1, 1]

    # 7. Idempotent: nothing left to do, on the platform's own evidence.
    final = project.cli("plan", "--refresh", "--detailed-exitcode")
    assert final.returncode == 0, final.stdout + final.stderr
