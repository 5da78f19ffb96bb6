"""CLI behaviour at the edges of a shell pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    products = "".join(f'  - uuid: {uuid.UUID(int=i + 1)}\n    name: "Product {i}"\n' for i in range(3000))
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "big.yaml").write_text(
        "defaults:\n  imageWidth: 64\n  imageHeight: 64\n  imageFormat: PNG\n"
        "  turntable: {includeGif: false, imageCount: 4, frameRate: 4, width: 64, height: 64}\n"
        "products:\n" + products
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "plan", "--no-color"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the plan is written, as `| head` can be
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "Internal error" not in stderr


def test_sandbox_with_an_option_that_chooses_another_platform_is_refused_not_ignored(tmp_path: Path) -> None:
    # import took --api-url with --sandbox and silently used the sandbox; every command that
    # connects now takes the same options and refuses the pair before it starts anything.
    for command in (["import", "--all"], ["doctor"], ["webhooks", "list"], ["plan", "--refresh"]):
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *command, "--sandbox", "--api-url", "https://x.invalid"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert done.stderr.splitlines()[0] == (
            "Error: --sandbox chooses the platform itself; it cannot be combined with --api-url"
        ), command
        assert not (tmp_path / ".reconciler").exists(), "the sandbox must not have been started"


def test_worker_help_does_not_offer_the_sandbox_it_refuses(tmp_path: Path) -> None:
    # A worker must reach the platform the apply and the other workers reach: --sandbox is
    # refused with that reason (tests/e2e/test_workers.py), so --help does not list it.
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "worker", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--api-url" in done.stdout and "--concurrency" in done.stdout
    assert "--sandbox" not in done.stdout
