"""``plan --refresh`` costs one API request per recorded product, as the sandbox counts them,
and shows its progress on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import Readings
from tests.e2e.conftest import PRODUCTS, Project, manifest

SOME = [PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]]
LOGIN = ("POST /v1/auth/", "GET /v1/organizations")


def _not_login(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if not k.startswith(LOGIN)}


@pytest.mark.parametrize("entity_type_filter", ["ignored", "honoured"])
def test_refresh_sends_one_attachment_search_per_recorded_product(
    project: Project, entity_type_filter: str
) -> None:
    project.write_manifest(manifest(SOME))  # with GIFs: RENDER and two TURNTABLE files each
    assert project.apply().returncode == 0
    # Whether the platform filters by entityType or not, one unfiltered search serves both types.
    project.sandbox.set_readings(Readings(entity_type_filter=entity_type_filter))
    project.sandbox.context.requests.reset()
    result = project.cli("plan", "--refresh", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert all(a["kind"] == "noop" for a in json.loads(result.stdout)["actions"])
    counts = project.sandbox.request_counts()
    assert _not_login(counts) == {"POST /v1/attachments/search": len(SOME)}
    assert sum(counts.values()) - len(SOME) <= 4, counts  # the rest is the login, once


def _stderr_on_a_terminal(project: Project, *args: str) -> str:
    """Run the CLI with stderr on a pseudo-terminal; what it wrote there."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=project.root,
        env=project.env({"COLUMNS": "100"}),
        stdout=subprocess.DEVNULL,
        stderr=child,
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    return out.decode(errors="replace")


def test_refresh_progress_shows_on_a_terminal_and_nowhere_else(project: Project) -> None:
    project.write_manifest(manifest(SOME))
    assert project.apply().returncode == 0
    project.sandbox.set_faults(FaultConfig(latency_seconds=0.3))  # long enough for the bar to draw
    assert "Refreshing products" in _stderr_on_a_terminal(project, "plan", "--refresh")
    piped = project.cli("plan", "--refresh")
    assert piped.returncode == 0, piped.stderr
    assert "Refreshing" not in piped.stderr
