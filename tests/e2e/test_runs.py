"""Runs that outlive a CI job (issue 11): ``apply --no-wait``, ``collect``, ``status``, and a run
stopped by SIGTERM or SIGINT mid-wait, continued by ``collect`` without paying twice.

The real CLI as a subprocess, the real sandbox; what was paid for is read from the sandbox's own
trigger records (``Project.triggers``), never from our state.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.server import EmbeddedSandbox

from .conftest import PRODUCTS, Project, fast_config, manifest, wait_for

TWO = {"trail": PRODUCTS["trail"], "court": PRODUCTS["court"]}


def _in_flight(records: dict[str, object]) -> set[str]:
    return {u for u, r in records.items() if isinstance(r, dict) and r["status"] == "in_flight"}


def test_no_wait_triggers_records_in_flight_and_collect_records_them_paying_nothing_again(
    project: Project,
) -> None:
    project.write_manifest(manifest(TWO))
    result = project.apply("--no-wait")
    assert result.returncode == 0, result.stderr
    assert "2 product(s) in flight" in result.stdout
    assert "reconciler collect" in result.stdout
    assert "Apply finished: 0 rendered, 0 failed, 2 in flight" in result.stderr
    state = project.state()
    assert {u: r["status"] for u, r in state["products"].items()} == dict.fromkeys(TWO.values(), "in_flight")
    for record in state["products"].values():
        assert record["request"]["spec"]["imageWidth"] == 32  # the trigger's spec, for collect
        assert record["attachments"] == []

    status = project.cli("status")
    assert status.returncode == 0, status.stderr
    assert "2 product(s) in flight from 1 request(s)" in status.stdout
    assert PRODUCTS["trail"] in status.stdout and "in_flight" in status.stdout
    data = json.loads(project.cli("status", "--format", "json").stdout)
    assert data["in_flight"] == 2
    assert {p["product"] for p in data["products"]} == set(TWO.values())
    assert all(p["age_seconds"] >= 0 and p["request_id"] and p["spec"] for p in data["products"])

    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr  # in flight is a change: collect or apply finishes it
    assert "2 product(s) in flight" in plan.stdout
    markdown = project.cli("plan", "--format", "markdown").stdout
    assert "> [!NOTE]\n> 2 product(s) in flight: triggered earlier and paid for" in markdown

    collected = project.cli("collect", "--poll-interval", "0.05", "--timeout", "30")
    assert collected.returncode == 0, collected.stderr
    assert "Collecting 2 product(s) in flight" in collected.stdout
    assert "Collect finished: 2 rendered, 0 failed" in collected.stderr, collected.stderr
    state = project.state()
    for record in state["products"].values():
        assert record["status"] == "rendered"
        assert {a["kind"] for a in record["attachments"]} == {"still", "turntable", "gif"}
        assert "spec" not in record["request"]  # recorded as the record's spec now
    assert [project.triggers(u) for u in TWO.values()] == [1, 1]
    assert project.cli("plan", "--detailed-exitcode").returncode == 0
    nothing = project.cli("collect")
    assert nothing.returncode == 0 and "Nothing in flight" in nothing.stdout
    assert "Nothing in flight" in project.cli("status").stdout


def test_a_later_apply_waits_for_what_no_wait_left_in_flight(project: Project) -> None:
    project.write_manifest(manifest(TWO))
    assert project.apply("--no-wait").returncode == 0
    result = project.apply()
    assert result.returncode == 0, result.stderr
    assert "Apply finished: 2 rendered" in result.stderr
    assert [project.triggers(u) for u in TWO.values()] == [1, 1]


def test_collect_needs_no_manifests(project: Project) -> None:
    project.write_manifest(manifest(TWO))
    assert project.apply("--no-wait").returncode == 0
    for f in (project.root / "manifests").iterdir():
        f.unlink()
    (project.root / "manifests").rmdir()
    result = project.cli("collect", "--poll-interval", "0.05", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    """Renders that take a few seconds: long enough to stop apply while it waits."""
    config = fast_config()
    config.job_pending_seconds = 0.05
    config.job_processing_seconds = 2.5
    with EmbeddedSandbox(data_dir=tmp_path / "slow-platform", config=config) as sb:
        yield sb


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_wait_checkpoints_releases_the_lock_and_collect_finishes_paying_nothing_twice(
    tmp_path: Path, slow_sandbox: EmbeddedSandbox, sig: signal.Signals
) -> None:
    project = Project(tmp_path / "project", slow_sandbox)
    project.write_manifest(manifest(TWO))
    run = project.popen("apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "60")
    journal = project.root / "state" / "renders.state.json.journal"
    wait_for(lambda: journal.exists() and _in_flight(project.state_from_journal()) == set(TWO.values()))
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 3, stderr
    assert f"stopped by {sig.name}" in stderr
    assert "2 in flight" in stderr
    assert "'reconciler collect' waits for the 2 product(s) in flight" in stderr
    assert "Traceback" not in stderr
    # Checkpointed and folded: the state file itself says in flight, and no journal is left.
    assert not journal.exists()
    assert _in_flight(project.state()["products"]) == set(TWO.values())
    # The lock is free: status and collect run at once, without --lock-timeout.
    assert "2 product(s) in flight" in project.cli("status").stdout
    collected = project.cli("collect", "--poll-interval", "0.05", "--timeout", "60")
    assert collected.returncode == 0, collected.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert [project.triggers(u) for u in TWO.values()] == [1, 1]
    final = project.cli("plan", "--detailed-exitcode")
    assert final.returncode == 0, final.stdout + final.stderr


def test_collect_stopped_by_sigterm_exits_3_and_a_second_collect_finishes(
    tmp_path: Path, slow_sandbox: EmbeddedSandbox
) -> None:
    project = Project(tmp_path / "project", slow_sandbox)
    project.write_manifest(manifest(TWO))
    assert project.apply("--no-wait").returncode == 0
    run = project.popen("collect", "--poll-interval", "0.05", "--timeout", "60")
    assert run.stderr is not None
    for line in run.stderr:  # waiting has begun once it says so
        if "resuming, waiting for the render already triggered" in line:
            break
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 3, stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert project.cli("collect", "--poll-interval", "0.05", "--timeout", "60").returncode == 0
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert [project.triggers(u) for u in TWO.values()] == [1, 1]


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: its SigCgt mask), i.e. has begun."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc to know the handler is in")
def test_sigterm_before_anything_is_triggered_exits_3_with_nothing_paid(project: Project) -> None:
    """Stopped while it waits for the state lock: nothing triggered, nothing in flight, exit 3."""
    from reconciler.state import open_store

    project.write_manifest(manifest(TWO))
    with open_store(project.state_path).lock("a test holding it"):
        run = project.popen("apply", "--auto-approve", "--lock-timeout", "60")
        wait_for(lambda: _catches_sigterm(run.pid))
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    assert run.returncode == 3, stderr
    assert "Error: stopped by SIGTERM before anything was triggered" in stderr
    assert "Hint: run 'reconciler apply' again" in stderr
    assert [project.triggers(u) for u in TWO.values()] == [0, 0]
