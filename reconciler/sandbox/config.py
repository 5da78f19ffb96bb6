"""Configuration of a sandbox: timing, limits, the demo credentials, the seed, faults and readings.

``SandboxConfig`` is a plain dataclass with a sane default for every field, so
``SandboxConfig()`` is a working sandbox. ``from_mapping`` reads the same fields from a
config file (YAML or JSON; ``faults:`` and ``readings:`` are nested mappings) and refuses
unknown keys, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from reconciler.sandbox.faults import FaultConfig
from reconciler.sandbox.readings import Readings

# The documented demo personal access token (docs/sandbox.md). Not a secret: the sandbox
# holds only demo data and listens on loopback by default.
DEFAULT_ACCESS_TOKEN = "vntana-sandbox-demo-token"
DEFAULT_EMAIL = "demo@sandbox.local"
DEFAULT_PASSWORD = "sandbox-demo-password"


@dataclasses.dataclass
class SandboxConfig:
    """Everything that shapes a sandbox's behaviour; every field is optional."""

    access_token: str | None = None  # the personal access token; None = DEFAULT_ACCESS_TOKEN
    seed: str | Path | dict[str, Any] | None = None  # None = the packaged seed.json
    job_pending_seconds: float = 0.2
    job_processing_seconds: float = 0.5
    workers: int = 2  # render worker threads
    token_ttl_seconds: float = 30 * 24 * 3600  # refresh tokens live 30 days on the platform
    signed_url_ttl_seconds: float = 300
    faults: FaultConfig = dataclasses.field(default_factory=FaultConfig)
    readings: Readings = dataclasses.field(default_factory=Readings)  # documented contradictions
    auto_create_products: bool = False  # unknown product uuids are created in the first workspace
    # Signed download URLs point at a listener of their own (sendfile, storage_server.py) on this
    # port (0 = any free one); off, they point at the API's own port (one port to publish).
    storage_listener: bool = True
    storage_port: int = 0
    webhook_max_attempts: int = 5  # sends per delivery, the first one included
    webhook_backoff_seconds: float = 1.0  # first retry delay; doubles with every attempt
    webhook_timeout_seconds: float = 5.0
    webhook_disable_after: int = 3  # deliveries given up in a row before a webhook is disabled (0 = never)
    upload_url_ttl_seconds: float = 24 * 3600  # signed upload URLs (a resumable upload may take long)
    max_upload_bytes: int = 3 * 1024**3  # upload-attachments.md: "up to 3 GB"
    max_image_side: int = 8192  # sanity limits, so a typo cannot hang the sandbox
    max_video_side: int = 4096  # turntable frames (the media layer's own limit)
    max_image_count: int = 3600
    max_frame_rate: int = 120
    max_turntable_pixels: int = 2_000_000_000  # imageCount * width * height

    @property
    def resolved_access_token(self) -> str:
        return self.access_token or DEFAULT_ACCESS_TOKEN

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], **overrides: Any) -> SandboxConfig:
        """Build from a config-file mapping (``faults`` is a nested mapping)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sandbox option(s): {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("faults"), Mapping):
            values["faults"] = FaultConfig.from_mapping(values["faults"])
        if isinstance(values.get("readings"), Mapping):
            values["readings"] = Readings.from_mapping(values["readings"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict (JSON is YAML, but keep errors precise)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        from ruamel.yaml import YAML  # only config files need it

        data = YAML(typ="safe").load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_seed(seed: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """The seed as a dict: the given one, a file, or the packaged default ``seed.json``."""
    if isinstance(seed, dict):
        return seed
    if seed is None:
        text = resources.files("reconciler.sandbox").joinpath("seed.json").read_text(encoding="utf-8")
        seeded: dict[str, Any] = json.loads(text)
        return seeded
    return load_mapping(seed)
