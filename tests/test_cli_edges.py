"""CLI behaviour at the edges of a shell pipeline."""

from __future__ import annotations

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
