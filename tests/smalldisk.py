"""A real file system that refuses writes, for the full-disk tests: a tmpfs of a few pages.

Mounting needs root (CI and the developers' machines run as root); elsewhere the tests that
need one are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs hands out space a page at a time


class SmallDisk:
    """A mounted tmpfs; ``fill`` leaves it exactly ``leave_pages`` pages free, ``free`` undoes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / ".filler"

    def fill(self, *, leave_pages: int = 0) -> None:
        self._filler.mkdir(exist_ok=True)
        count = 0
        while True:
            try:
                (self._filler / str(count)).write_bytes(b"\0" * PAGE)
            except OSError:
                break
            count += 1
        for i in range(leave_pages):
            (self._filler / str(i)).unlink()

    def free(self) -> None:
        shutil.rmtree(self._filler)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.root)], check=True)


@contextmanager
def small_disk(root: Path, size: str = "256k") -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` on ``root`` for the block (skips the test if it cannot)."""
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8): the full-disk tests cannot make a full disk")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not let the test mount a tmpfs ({mounted.stderr.strip()})")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
