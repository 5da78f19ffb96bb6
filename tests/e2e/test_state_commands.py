"""state list / show / rm / mv through the CLI, on a state made by real applies against the sandbox.

The state is made once per module (two applies cost seconds) and copied into each test's
project; the state commands never reach the platform, so they run in-process through
click's runner against that copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.sandbox.server import EmbeddedSandbox
from tests.e2e.conftest import (
    PRODUCTS,
    ROOT,
    UNKNOWN_PRODUCT,
    Project,
    fast_config,
    manifest,
)

TRAIL, COURT, CHAIR, TOTE = (PRODUCTS[k] for k in ("trail", "court", "chair", "tote"))
NEW_UUID = "0b1e7a55-1d2c-4e3f-8a9b-0c1d2e3f4a5b"
CATALOGUE = {"trail": TRAIL, "court": COURT, "chair": CHAIR, "dead": UNKNOWN_PRODUCT}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose state holds trail (protected), court and chair rendered, chair twice (PNG,
    then WEBP), and one failed product."""
    base = tmp_path_factory.mktemp("rendered")
    with EmbeddedSandbox(data_dir=base / "platform", config=fast_config()) as sandbox:
        project = Project(base / "project", sandbox)
        project.write_manifest(manifest(CATALOGUE, overrides={TRAIL: "protect: true"}))
        assert project.apply().returncode == 1  # the unknown product fails; the rest render
        project.write_manifest(
            manifest(CATALOGUE, overrides={TRAIL: "protect: true", CHAIR: "imageFormat: WEBP"})
        )
        assert project.apply().returncode == 1
    return project.root


@dataclass
class Work:
    root: Path

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "renders.state.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def write_manifest(self, text: str) -> None:
        (self.root / "manifests" / "catalogue.yaml").write_text(text)

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), prog_name="reconciler")


@pytest.fixture
def work(rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    root = tmp_path / "project"
    shutil.copytree(rendered, root)
    monkeypatch.chdir(root)
    for name in ("RECONCILER_STATE", "VNTANA_API_URL", "VNTANA_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield Work(root)


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:] if line.strip() and not line.endswith(".")]


def test_list_shows_every_record_and_each_filter_narrows_it(work: Work) -> None:
    state = work.state()
    listed = work.cli("state", "list")
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["UUID", "NAME", "STATUS", "SPEC", "FILES", "PROTECT"]
    rows = {r[0]: r for r in _rows(listed.stdout)}
    assert rows[TRAIL] == [
        TRAIL,
        "trail",
        "rendered",
        state["products"][TRAIL]["spec_hash"][:12],
        "still,turntable,gif",
        "yes",
    ]
    assert rows[UNKNOWN_PRODUCT][1:3] == ["dead", "failed"] and rows[UNKNOWN_PRODUCT][4:] == ["-", "no"]
    assert list(rows) == sorted(CATALOGUE.values())
    assert lines[-1] == f"4 product(s); state state/renders.state.json, serial {state['serial']}."

    failed = work.cli("state", "list", "--status", "failed")
    assert [r[0] for r in _rows(failed.stdout)] == [UNKNOWN_PRODUCT]
    assert failed.stdout.splitlines()[-1].startswith("1 of 4 product(s)")
    by_name = work.cli("state", "list", "--match", "c*")
    assert [r[1] for r in _rows(by_name.stdout)] == ["court", "chair"]
    by_uuid = work.cli("state", "list", "--match", CHAIR[:8].upper() + "*")
    assert [r[0] for r in _rows(by_uuid.stdout)] == [CHAIR]

    work.write_manifest(
        manifest(
            CATALOGUE, overrides={TRAIL: "protect: true", CHAIR: "imageFormat: WEBP", COURT: "imageWidth: 40"}
        )
    )
    planned = work.cli("state", "list", "--action", "rerender", "--action", "retry", "--format", "json")
    assert planned.exit_code == 0, planned.stderr
    data = json.loads(planned.stdout)
    assert [(p["uuid"], p["action"]) for p in data["products"]] == [
        (UNKNOWN_PRODUCT, "retry"),
        (COURT, "rerender"),
    ]
    assert data["state"]["serial"] == state["serial"]
    noop = work.cli("state", "list", "--action", "noop", "--status", "rendered")
    assert _rows(noop.stdout)[0][-1] == "noop"
    assert sorted(r[0] for r in _rows(noop.stdout)) == sorted([TRAIL, CHAIR])
    none = work.cli("state", "list", "--match", "nothing*")
    assert none.stdout == f"0 of 4 product(s); state state/renders.state.json, serial {state['serial']}.\n"


def test_show_prints_spec_files_hashes_and_history_in_text_and_json(work: Work) -> None:
    state = work.state()
    chair = state["products"][CHAIR]
    shown = work.cli("state", "show", CHAIR)
    assert shown.exit_code == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"{CHAIR}  chair\n  status:    rendered (updated ")
    assert f"  spec hash: {chair['spec_hash']}\n" in out
    assert "    imageFormat: WEBP\n" in out and "    turntable.includeGif: true\n" in out
    assert f"  request:   {chair['request']['request_id']} for spec {chair['spec_hash'][:12]}" in out
    for att in chair["attachments"]:
        assert f"sha256:{att['sha256']}  {att['size']} bytes  {att['content_type']}" in out
    (past,) = chair["history"]
    assert "  history (1 earlier render(s), newest first):\n" in out
    assert (
        f"    {past['recorded_at']}  spec {past['spec_hash'][:12]}  still PNG 32x24, turntable 4 frames @ 4 fps "
        "32x32 + GIF\n"
    ) in out
    assert all(f"sha256:{a['sha256']}" in out for a in past["attachments"])
    failed = work.cli("state", "show", UNKNOWN_PRODUCT.upper())
    assert "  error:     PRODUCT_NOT_FOUND\n" in failed.stdout

    as_json = json.loads(work.cli("state", "show", CHAIR, "--format", "json").stdout)
    assert as_json["product"] == CHAIR
    assert {k: v for k, v in as_json.items() if k not in ("product", "state")} == chair

    missing = work.cli("state", "show", TOTE)
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: not in the state state/renders.state.json: {TOTE}\n"
        "Hint: 'reconciler state list' shows the recorded products\n"
    )


def test_rm_dry_run_changes_nothing_and_rm_keeps_a_backup_and_bumps_the_serial(work: Work) -> None:
    state = work.state()
    before = work.state_path.read_text()
    dry = work.cli("state", "rm", COURT, CHAIR, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert f"would forget {COURT} court (rendered, 3 files)" in dry.stdout
    assert (
        f"Dry run: the state was not changed (state/renders.state.json, serial {state['serial']})."
        in dry.stdout
    )
    assert work.state_path.read_text() == before

    unknown = work.cli("state", "rm", COURT, TOTE, NEW_UUID)
    assert unknown.exit_code == 1
    assert f"Error: not in the state state/renders.state.json: {TOTE}, {NEW_UUID}" in unknown.stderr
    assert work.state_path.read_text() == before  # all or nothing

    removed = work.cli("state", "rm", COURT, CHAIR)
    assert removed.exit_code == 0, removed.stderr
    after = work.state()
    assert sorted(after["products"]) == sorted([TRAIL, UNKNOWN_PRODUCT])
    assert after["serial"] == state["serial"] + 1 and after["lineage"] == state["lineage"]
    backup = work.root / "state" / "renders.state.json.backup"
    assert json.loads(backup.read_text()) == state
    assert (
        f"Removed 2 product(s) from state/renders.state.json (serial {state['serial']} → {after['serial']}); "
        "the previous state is in state/renders.state.json.backup. Nothing was changed on the platform."
    ) in removed.stdout
    plan = json.loads(work.cli("plan", "--format", "json").stdout)
    assert {a["product"]: a["kind"] for a in plan["actions"]}[COURT] == "render"


def test_mv_keeps_the_record_under_the_new_uuid_and_refuses_to_overwrite(work: Work) -> None:
    state = work.state()
    moved = work.cli("state", "mv", COURT, NEW_UUID.upper())
    assert moved.exit_code == 0, moved.stderr
    assert f"Moved {COURT} court (rendered, 3 files) to {NEW_UUID}" in moved.stdout
    after = work.state()
    assert COURT not in after["products"]
    assert after["products"][NEW_UUID] == state["products"][COURT]
    assert after["serial"] == state["serial"] + 1
    assert (work.root / "state" / "renders.state.json.backup").exists()

    taken = work.cli("state", "mv", CHAIR, TRAIL)
    assert taken.exit_code == 1
    assert f"Error: {TRAIL} is already in the state state/renders.state.json; refusing" in taken.stderr
    gone = work.cli("state", "mv", COURT, TOTE)
    assert gone.exit_code == 1 and f"not in the state state/renders.state.json: {COURT}" in gone.stderr
    bad = work.cli("state", "mv", CHAIR, "chair-2")
    assert bad.exit_code == 1 and "Error: 'chair-2' is not a product uuid" in bad.stderr
    assert work.state()["serial"] == after["serial"]


HOLD_LOCK = """
import sys
from reconciler.state import FileStateStore
with FileStateStore(sys.argv[1]).lock("apply") as info:
    print(info.id, flush=True)
    sys.stdin.read()
"""


def test_writing_commands_fail_naming_the_holder_while_another_process_holds_the_lock(work: Work) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(work.state_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lock_id = holder.stdout.readline().strip()
        for args in (("rm", TRAIL), ("mv", TRAIL, NEW_UUID)):
            result = work.cli("state", *args, "--lock-timeout", "0.2")
            assert result.exit_code == 1
            assert (
                f"Error: state state/renders.state.json is locked by another process (id={lock_id}, "
                f"operation=apply, who="
            ) in result.stderr
            assert f"pid={holder.pid}" in result.stderr
            assert f"reconciler force-unlock --state state/renders.state.json {lock_id}" in result.stderr
        # readers are not blocked
        assert work.cli("state", "list").exit_code == 0
        assert work.cli("state", "rm", TRAIL, "--dry-run").exit_code == 0
    finally:
        holder.communicate("", timeout=10)
    assert TRAIL in work.state()["products"]
    assert work.cli("state", "rm", TRAIL).exit_code == 0
