"""End-to-end fixtures: the real CLI, as a subprocess, against a real sandbox on 127.0.0.1.

Each test gets its own sandbox (fast job timing) and its own project directory holding
manifests of tiny renders of products the sandbox's default seed knows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.server import EmbeddedSandbox, Readings, SandboxConfig
from tests.reaper import Reaper

ROOT = Path(__file__).resolve().parents[2]

# Products of the example catalogue, all in the sandbox's default seed.
PRODUCTS = {
    "trail": "58472097-fec0-516d-8326-f7a5eb192f2c",
    "court": "393f8b64-b960-5375-b254-484ff9c12e30",
    "loafer": "e608088c-ebbd-5912-8ced-bbf3187d41a9",
    "chair": "6079b22e-4327-5d30-ba4c-90855571b56d",
    "tote": "4fbd7c2c-09fe-565f-b3df-8deb6abfbd24",
}
UNKNOWN_PRODUCT = "00000000-0000-4000-8000-00000000dead"

TINY_DEFAULTS = """defaults:
  imageWidth: 32
  imageHeight: 24
  imageFormat: PNG
  turntable:
    includeGif: {gif}
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
"""


def manifest(
    products: dict[str, str] | list[str], *, gif: bool = True, overrides: dict[str, str] | None = None
) -> str:
    """A manifest of tiny renders; ``overrides`` maps a uuid to extra YAML lines for it."""
    text = TINY_DEFAULTS.format(gif="true" if gif else "false") + "products:\n"
    names = (
        {u: n for n, u in products.items()} if isinstance(products, dict) else {u: u[:8] for u in products}
    )
    for uuid, name in names.items():
        text += f'  - uuid: {uuid}\n    name: "{name}"\n'
        for line in (overrides or {}).get(uuid, "").splitlines():
            text += f"    {line}\n"
    return text


@dataclass
class Project:
    """A user's working directory with manifests/ and state/, and the CLI to run in it.

    ``settings`` are extra environment variables for every command (a workspace, a role's key)."""

    root: Path
    sandbox: EmbeddedSandbox
    settings: dict[str, str] | None = None

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "renders.state.json"

    def write_manifest(self, text: str, name: str = "catalogue.yaml") -> None:
        path = self.root / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
        env.update(
            {
                "VNTANA_API_URL": self.sandbox.url,
                "VNTANA_API_TOKEN": self.sandbox.access_token,
                "VNTANA_ORGANIZATION_UUID": self.sandbox.organization_uuid,
                "NO_COLOR": "1",
            }
        )
        env.update(self.settings or {})
        env.update(extra or {})
        return env

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def apply(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "apply", "--auto-approve", "--poll-interval", "0.05", "--timeout", "30", *args, env=env
        )

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def state_from_journal(self) -> dict[str, Any]:
        """Products as the journal left them (the last record per product wins)."""
        journal = self.root / "state" / "renders.state.json.journal"
        records: dict[str, Any] = {}
        for line in journal.read_text().splitlines():
            entry = json.loads(line)
            records[entry["product"]] = entry["record"]
        return records

    def triggers(self, product: str) -> int:
        """How many render triggers the platform received for a product (its own records)."""
        db = sqlite3.connect(f"file:{self.sandbox.data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
        try:
            (count,) = db.execute(
                "SELECT COUNT(DISTINCT trigger_uuid) FROM jobs WHERE product_uuid = ?", (product,)
            ).fetchone()
        finally:
            db.close()
        return int(count)


def fast_config(readings: Readings | None = None, **faults: Any) -> SandboxConfig:
    return SandboxConfig(
        job_pending_seconds=0.02,
        job_processing_seconds=0.05,
        workers=2,
        faults=FaultConfig(**faults),
        webhook_backoff_seconds=0.05,
        readings=readings or Readings(),
    )


@pytest.fixture
def sandbox(tmp_path: Path, reaper: Reaper) -> Iterator[EmbeddedSandbox]:
    with started(EmbeddedSandbox(data_dir=tmp_path / "platform", config=fast_config()), reaper) as sb:
        yield sb


@contextmanager
def started(sb: EmbeddedSandbox, reaper: Reaper) -> Iterator[EmbeddedSandbox]:
    """``sb`` started for a test, then stopped in the background once it is done (tests/reaper.py)."""
    sb.start()
    try:
        yield sb
    finally:
        reaper.stop(sb.stop, f"the sandbox in {sb.data_dir}")


@pytest.fixture
def project(tmp_path: Path, sandbox: EmbeddedSandbox) -> Project:
    root = tmp_path / "project"
    (root / "manifests").mkdir(parents=True)
    return Project(root, sandbox)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """The canonical spec ``manifest()`` gives every product (GIF on), with ``overrides`` merged in;
    ``turntable`` overrides merge into the turntable."""
    from reconciler.spec import RenderSpec

    turntable = {
        "includeGif": True,
        "imageCount": 4,
        "frameRate": 4,
        "width": 32,
        "height": 32,
        **overrides.pop("turntable", {}),
    }
    data = {"imageWidth": 32, "imageHeight": 24, "imageFormat": "PNG", "turntable": turntable, **overrides}
    return RenderSpec.model_validate(data).canonical()


def platform_client(sandbox: EmbeddedSandbox) -> Any:
    """A client of the sandbox for a test's own look at the platform (the Owner's key)."""
    from reconciler.client import VntanaClient
    from reconciler.settings import ClientSettings

    return VntanaClient(
        ClientSettings(
            api_url=sandbox.url, token=sandbox.access_token, organization_uuid=sandbox.organization_uuid
        )
    )


def render_behind_our_back(sandbox: EmbeddedSandbox, products: list[str], spec: dict[str, Any]) -> None:
    """Render products straight through the platform's API, as a person or an older script would,
    and wait until the files are there. The reconciler's state knows nothing of it."""
    with platform_client(sandbox) as client:
        result = client.trigger_renders(products, spec)
    assert sorted(result.accepted) == sorted(products), result.errors
    assert sandbox.wait_idle(30)
