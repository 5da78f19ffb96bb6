"""``apply --workers`` with real ``reconciler worker`` processes, a real PostgreSQL and a real sandbox.

Every product must be triggered exactly once (the sandbox's own records), recorded with its
hashes, and a last ``plan --detailed-exitcode`` must find nothing to do, however the workers die.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig
from reconciler.state import Status, open_store
from reconciler.workers.coordinator import NO_WORKER_NOTICE
from tests.e2e.conftest import PRODUCTS, Project, manifest, started, wait_for
from tests.reaper import Reaper

HEARTBEAT = "0.3"
KILLS = 12
"""Workers SIGKILLed at random moments in the kill test (more die by themselves at named points)."""


class Workers:
    """``reconciler worker`` processes of one project, stopped (SIGKILL) at the end of the test."""

    def __init__(self, project: Project, state: str) -> None:
        self.project, self.state = project, state
        self.procs: list[subprocess.Popen[str]] = []
        self.since: dict[int, float] = {}
        self.others: list[subprocess.Popen[str]] = []

    def start(
        self, n: int = 1, *extra: str, env: dict[str, str] | None = None
    ) -> list[subprocess.Popen[str]]:
        started = [
            self.project.popen("worker", "--state", self.state, "--heartbeat", HEARTBEAT, *extra, env=env)
            for _ in range(n)
        ]
        self.procs += started
        self.since.update({p.pid: time.monotonic() for p in started})
        return started

    def settled(self, seconds: float) -> list[subprocess.Popen[str]]:
        """Those alive that started at least ``seconds`` ago (so have had time to take a job)."""
        now = time.monotonic()
        return [p for p in self.alive() if now - self.since[p.pid] >= seconds]

    def alive(self) -> list[subprocess.Popen[str]]:
        return [p for p in self.procs if p.poll() is None]

    def watch(self, proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        """Another process of the test (an apply), killed with the workers if still running."""
        self.others.append(proc)
        return proc

    def stop(self) -> str:
        """Kill those still running; everything the workers wrote to stderr."""
        for p in self.others:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        return "".join(p.communicate(timeout=30)[1] or "" for p in self.procs)


@pytest.fixture
def workers(project: Project, pg_url: str) -> Iterator[Workers]:
    crew = Workers(project, pg_url)
    yield crew
    crew.stop()


def logins(project: Project) -> int:
    """Logins the platform saw (refresh tokens issued: each one revokes the one before)."""
    db = sqlite3.connect(f"file:{project.sandbox.data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM tokens WHERE kind = 'refresh'").fetchone()[0])
    finally:
        db.close()


def apply_workers(
    project: Project, pg_url: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return project.cli(
        "apply",
        "--workers",
        "--auto-approve",
        "--state",
        pg_url,
        "--poll-interval",
        "0.05",
        "--timeout",
        "20",
        *args,
        timeout=timeout,
    )


def test_workers_apply_a_catalogue_and_a_plan_after_finds_nothing_to_do(
    project: Project, pg_url: str, workers: Workers
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    workers.start(2)
    made = project.cli("plan", "--state", pg_url, "--max-batch-size", "2", "--out", "plan.json")
    assert made.returncode == 0, made.stderr
    applied = apply_workers(project, pg_url, "plan.json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply finished: 5 rendered, 0 failed" in applied.stderr, applied.stderr
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())
    assert logins(project) == 1  # the apply and both workers share one login
    # The workers wrote under the apply's lock, and the history names the saved plan they applied.
    written = _sql(
        pg_url,
        "SELECT DISTINCT v.operation, v.lock_id, v.plan FROM reconciler.versions v JOIN reconciler.workspaces w "
        "ON w.id = v.workspace_id WHERE w.name = %s AND v.operation LIKE 'apply%%'",
    )
    assert {op for op, _, _ in written} == {"apply", "apply (worker)"}, written
    assert len({lock for _, lock, _ in written}) == 1
    assert all(str(plan).startswith("plan.json sha256:") for _, _, plan in written), written
    plan = project.cli("plan", "--state", pg_url, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


# -- workers killed at random points -------------------------------------------------------------


@pytest.fixture
def big_sandbox(tmp_path: Path, reaper: Reaper) -> Iterator[EmbeddedSandbox]:
    """A sandbox that creates any product it is asked about, with jobs slow enough to die in."""
    config = SandboxConfig(
        auto_create_products=True, job_pending_seconds=0.05, job_processing_seconds=0.12, workers=2
    )
    with started(EmbeddedSandbox(data_dir=tmp_path / "platform-big", config=config), reaper) as sb:
        yield sb


def test_workers_killed_at_random_points_leave_every_product_triggered_once_and_recorded(
    tmp_path: Path, big_sandbox: EmbeddedSandbox, pg_url: str
) -> None:
    project = Project(tmp_path / "kill-project", big_sandbox)
    products = [str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"kill-test-{i}")) for i in range(48)]
    project.write_manifest(manifest(products))
    crew = Workers(project, pg_url)
    rng = random.Random(10)
    signalled: set[int] = set()
    named: set[int] = set()
    run = None
    try:
        crew.start(3, "--concurrency", "2")
        run = project.popen(
            "apply", "--workers", "--auto-approve", "--state", pg_url, "--poll-interval", "0.05",
            "--timeout", "20", "--max-batch-size", "2",
        )  # fmt: skip
        started = time.monotonic()
        wait_for(lambda: _queued(pg_url, "any") > 0, timeout=60)  # the kills begin with the work
        while run.poll() is None and len(signalled) < KILLS:
            time.sleep(rng.uniform(0.3, 0.8))
            alive = crew.settled(1.5) or crew.alive()  # rather one that is at work than one starting
            if run.poll() is not None or not alive:
                break
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            signalled.add(victim.pid)
            # Its replacement, now and then, dies by itself at a named point of the executor:
            # just after the platform accepted its trigger, or between two downloads.
            point = rng.choice(["after-trigger", "mid-download", None])
            replacement = crew.start(
                1, "--concurrency", "2", env={"RECONCILER_FAILPOINT": point} if point else None
            )
            if point is not None:
                named.add(replacement[0].pid)
        while len([p for p in crew.alive() if p.pid not in named]) < 2:
            crew.start(1, "--concurrency", "2")  # those with a named point die at their first job
        try:
            _, err = run.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            jobs = _sql(
                pg_url,
                "SELECT id, status::text, attempts, worker_id FROM procrastinate_jobs "
                "WHERE queue_name = 'reconciler.' || %s AND status NOT IN ('succeeded')",
            )
            pytest.fail(f"the apply did not finish; its jobs: {jobs}")
        seconds = time.monotonic() - started
        again = None
        if run.returncode != 0:
            # A kill between a write-ahead checkpoint and its trigger leaves a product that was
            # never triggered: given up as failed, it is retried by the next apply (once).
            again = apply_workers(project, pg_url, "--max-batch-size", "2")
            assert again.returncode == 0, again.stdout + again.stderr
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.communicate()
        logs = crew.stop()
    died = {p.pid for p in crew.procs if p.returncode == -signal.SIGKILL}
    self_killed = died - signalled
    assert len(signalled) + len(self_killed) >= 10, (signalled, self_killed)
    triggers = {u: project.triggers(u) for u in products}
    assert set(triggers.values()) == {1}, {u: n for u, n in triggers.items() if n != 1}
    state = open_store(pg_url).read()
    for u in products:
        record = state.products[u]
        assert record.status is Status.RENDERED, (u, record.status, record.error)
        assert len(record.attachments) == 3 and all(len(a.sha256) == 64 for a in record.attachments)
    plan = project.cli("plan", "--state", pg_url, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert logins(project) == 1, "every worker, killed or not, used the one shared login"
    print(
        f"\nkill test: {len(products)} products, {len(signalled)} workers SIGKILLed at random moments, "
        f"{len(self_killed)} at a named point ({len(named)} started with one); {logs.count('retrying job')} stalled "
        f"job(s) retried, {logs.count(' resumed, ') - logs.count(' 0 resumed, ')} job attempt(s) resumed products; "
        f"apply {seconds:.1f} s, exit {run.returncode}"
        + ("" if again is None else ", a second apply finished it")
        + f"\n{err.splitlines()[-1]}"
        + "".join(f"\n{line}" for line in err.splitlines() if line.startswith("  ") and ": " in line)
    )


# -- two runs on one database ---------------------------------------------------------------------


def test_a_second_apply_waits_for_the_first_or_fails_naming_it_and_nothing_is_lost(
    project: Project, pg_url: str, workers: Workers
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    first = workers.watch(
        project.popen(
            "apply",
            "--workers",
            "--auto-approve",
            "--state",
            pg_url,
            "--poll-interval",
            "0.05",
            "--max-batch-size",
            "2",
        )
    )  # no worker yet: it holds the lock and waits for one
    wait_for(lambda: "lock" in str(_holder(pg_url)), timeout=30)
    refused = apply_workers(project, pg_url)
    assert refused.returncode == 1
    assert "is locked by another process" in refused.stderr and _holder(pg_url)["id"] in refused.stderr
    waiting = workers.watch(
        project.popen(
            "apply",
            "--workers",
            "--auto-approve",
            "--state",
            pg_url,
            "--poll-interval",
            "0.05",
            "--lock-timeout",
            "60",
        )
    )
    workers.start(2)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert "Apply finished: 5 rendered, 0 failed" in err
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out + err
    assert "Nothing to apply." in out  # it planned after the first had recorded everything
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())
    plan = project.cli("plan", "--state", pg_url, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_the_jobs_of_an_apply_that_died_are_replaced_not_run_twice(
    project: Project, pg_url: str, workers: Workers
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    dead = workers.watch(
        project.popen("apply", "--workers", "--auto-approve", "--state", pg_url, "--max-batch-size", "2")
    )
    wait_for(lambda: _queued(pg_url) == 3, timeout=30)  # enqueued, and no worker to take them
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(dead.stderr or ()), daemon=True)
    reader.start()
    # Killed once it has said how to start a worker (after NO_WORKER_NOTICE s with none), its jobs queued.
    wait_for(
        lambda: any(line.startswith("Waiting for workers:") for line in lines), timeout=NO_WORKER_NOTICE + 60
    )
    dead.send_signal(signal.SIGKILL)
    reader.join(timeout=30)  # the pipe ends with the process
    _, rest = dead.communicate(timeout=30)
    said = "".join(lines) + rest
    assert "Waiting for workers: no worker has taken a job of this run for 10 s (3 queued); start " in said
    assert f"'reconciler worker --state {redacted(pg_url)}'" in said
    applied = workers.watch(
        project.popen(
            "apply",
            "--workers",
            "--auto-approve",
            "--state",
            pg_url,
            "--poll-interval",
            "0.05",
            "--max-batch-size",
            "2",
        )
    )
    wait_for(lambda: _cancelled(pg_url) == 3, timeout=30)  # the same products: its jobs give way
    workers.start(2)
    out, err = applied.communicate(timeout=120)
    assert applied.returncode == 0, out + err
    assert "Cancelled 1 job(s) of an earlier run" in err
    assert "Apply finished: 5 rendered, 0 failed" in err
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())


def redacted(url: str) -> str:
    password = urlsplit(url).password or ""
    return url.replace(f":{password}@", ":***@")


def _sql(pg_url: str, query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(pg_url.partition("#")[0]) as conn:
        return conn.execute(query, (pg_url.partition("#")[2],)).fetchall()


def _holder(pg_url: str) -> dict[str, object]:
    rows = _sql(
        pg_url,
        "SELECT l.id FROM reconciler.locks l JOIN reconciler.workspaces w ON w.id = l.workspace_id "
        "WHERE w.name = %s AND l.id IS NOT NULL",
    )
    return {"id": rows[0][0], "lock": True} if rows else {}


def _queued(pg_url: str, status: str = "todo") -> int:
    try:
        rows = _sql(
            pg_url,
            "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'reconciler.' || %s"
            + ("" if status == "any" else f" AND status = '{status}'"),
        )
    except Exception:  # the queue's tables are not there yet
        return 0
    return int(rows[0][0])  # type: ignore[call-overload]


def _cancelled(pg_url: str) -> int:
    rows = _sql(
        pg_url,
        "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'reconciler.' || %s AND status = 'cancelled'",
    )
    return int(rows[0][0])  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apply", "--workers", "--auto-approve"), "apply --workers needs the state in PostgreSQL"),
        (("apply", "--workers", "--auto-approve", "--sandbox", "--state", "PG"), "--workers cannot use the embedded sandbox"),
        (("apply", "--workers", "--auto-approve", "--state", "PG", "--webhook-listen", "127.0.0.1:0"), "--workers cannot listen for webhooks"),
        (("apply", "--workers", "--auto-approve", "--state", "PG", "--no-wait"), "--workers cannot be combined with --no-wait"),
        (("worker", "--state", "state/x.json"), "reconciler worker needs the state in PostgreSQL"),
        (("worker", "--state", "PG", "--sandbox"), "a worker cannot use the embedded sandbox"),
        (("worker", "--state", "BAD"), "cannot prepare the job queue in postgresql://reconciler:***@"),
        (("apply", "--workers", "--auto-approve", "--state", "BAD"), "password authentication failed"),
    ],
)  # fmt: skip
def test_what_cannot_work_across_machines_is_refused_before_anything_runs(
    project: Project, pg_url: str, args: tuple[str, ...], message: str
) -> None:
    project.write_manifest(manifest({"trail": PRODUCTS["trail"]}))
    password = urlsplit(pg_url).password or ""
    bad = pg_url.replace(f":{password}@", ":not-the-password@")
    result = project.cli(*[{"PG": pg_url, "BAD": bad}.get(a, a) for a in args], timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert project.triggers(PRODUCTS["trail"]) == 0
    assert password not in result.stderr and "not-the-password" not in result.stderr  # never shown


def test_a_worker_whose_key_may_not_render_stops_the_run_and_the_products_stay_as_they_were(
    project: Project, pg_url: str, workers: Workers
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    viewer = {
        "VNTANA_API_TOKEN": project.sandbox.access_token_for("CLIENT_ORGANIZATION_VIEWER"),
        "VNTANA_CLIENT_UUID": project.sandbox.client_uuid,
    }
    (misconfigured,) = workers.start(1, env=viewer)
    stopped = apply_workers(project, pg_url, "--max-batch-size", "2")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "Error: the run stopped: the platform refused the render request" in stopped.stderr
    assert all(project.triggers(u) == 0 for u in PRODUCTS.values())
    assert not any(r.request for r in open_store(pg_url).read().products.values())  # write-ahead taken back
    misconfigured.kill()
    workers.start(1)
    applied = apply_workers(project, pg_url, "--max-batch-size", "2")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())
