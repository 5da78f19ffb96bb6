"""``apply --workers`` with real ``reconciler worker`` processes, a real PostgreSQL and a real sandbox.

Every product must be triggered exactly once (the sandbox's own records), recorded with its
hashes, and a last ``plan --detailed-exitcode`` must find nothing to do, however the workers die.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import PRODUCTS, Project, manifest

HEARTBEAT = "0.3"


class Workers:
    """``reconciler worker`` processes of one project, stopped (SIGKILL) at the end of the test."""

    def __init__(self, project: Project, state: str) -> None:
        self.project, self.state = project, state
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, n: int = 1, *extra: str) -> list[subprocess.Popen[str]]:
        started = [
            self.project.popen("worker", "--state", self.state, "--heartbeat", HEARTBEAT, *extra)
            for _ in range(n)
        ]
        self.procs += started
        return started

    def alive(self) -> list[subprocess.Popen[str]]:
        return [p for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.communicate(timeout=30)


@pytest.fixture
def workers(project: Project, pg_url: str) -> Iterator[Workers]:
    crew = Workers(project, pg_url)
    yield crew
    crew.stop()


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
    applied = apply_workers(project, pg_url, "--max-batch-size", "2")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply finished: 5 rendered, 0 failed" in applied.stderr, applied.stderr
    print(applied.stderr)
    assert all(project.triggers(u) == 1 for u in PRODUCTS.values())
    plan = project.cli("plan", "--state", pg_url, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
