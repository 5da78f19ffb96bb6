"""What a product's renders should be: the desired state, as validated data.

Field names are the VNTANA API's own (``imageWidth``, ``turntable.includeGif``, ...), so a
manifest reads like the request it becomes. Every bound is written once, in ``BOUNDS``, and
documented in docs/manifests.md: a bad value fails at plan time, before a paid API call.

The fingerprint of a spec is the sha256 of its canonical JSON (sorted keys, no whitespace,
every field present after defaults are applied), so inheriting a value and spelling it out
give the same hash, and labels such as ``name`` never take part.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from reconciler.diagnostics import SourceLocation


@dataclass(frozen=True)
class Bound:
    low: int
    high: int
    why: str
    of: tuple[str, ...] = ()
    """For a bound on a product of fields rather than on one field: those fields."""


# VNTANA documents no limits. These keep a typo (an extra zero) from becoming an expensive
# render, and stay within what the platform refuses at trigger time (the sandbox's
# SandboxConfig limits: sides of 8192 and 4096, 3600 frames, 120 fps, and
# TURNTABLE_TOO_LARGE beyond 2,000,000,000 turntable pixels), so whatever `plan` accepts
# the platform renders; tests/test_spec.py checks the two agree. Raise them here, and only
# here, if your renders need more.
BOUNDS: dict[str, Bound] = {
    "imageWidth": Bound(16, 8192, "still width in pixels"),
    "imageHeight": Bound(16, 8192, "still height in pixels"),
    "turntable.width": Bound(16, 4096, "turntable frame width in pixels"),
    "turntable.height": Bound(16, 4096, "turntable frame height in pixels"),
    "turntable.imageCount": Bound(2, 720, "frames in one 360° turn"),
    "turntable.frameRate": Bound(1, 60, "frames per second of the MP4/GIF"),
    "turntable.pixels": Bound(
        1,
        2_000_000_000,
        "pixels of all turntable frames together",
        of=("turntable.imageCount", "turntable.width", "turntable.height"),
    ),
}

IMAGE_FORMATS = ("PNG", "JPG", "WEBP")
_COLOUR = re.compile(r"^#?[0-9A-Fa-f]{6}$")


def _bounded(path: str) -> Any:
    b = BOUNDS[path]
    return Field(ge=b.low, le=b.high, description=f"{b.why}, {b.low}..{b.high}")


def _colour(value: str | None) -> str | None:
    """Accept ``#RRGGBB`` or ``RRGGBB``; store one canonical spelling so the hash is stable."""
    if value is None:
        return None
    if not _COLOUR.match(value):
        raise ValueError('expected a colour as #RRGGBB, e.g. "#FFFFFF"')
    return "#" + value.lstrip("#").upper()


Colour = Annotated[str | None, AfterValidator(_colour)]

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class TurntableSpec(BaseModel):
    """The 360° turntable: always an MP4, optionally a GIF of the same frames."""

    model_config = _STRICT

    includeGif: bool = Field(description="also produce a GIF; turning it off deletes an existing GIF")
    imageCount: int = _bounded("turntable.imageCount")
    frameRate: int = _bounded("turntable.frameRate")
    width: int = _bounded("turntable.width")
    height: int = _bounded("turntable.height")
    background: Colour = Field(default=None, description="background colour #RRGGBB")
    transparentBackground: bool = False

    @model_validator(mode="after")
    def _not_too_large(self) -> TurntableSpec:
        pixels = self.imageCount * self.width * self.height
        cap = BOUNDS["turntable.pixels"].high
        if pixels > cap:
            fit = max(cap // (self.width * self.height), 1)
            raise ValueError(
                f"a turntable of {self.imageCount} frames at {self.width}x{self.height} is {pixels:,} pixels, "
                f"more than the platform renders ({cap:,}, frames x width x height); use at most "
                f"{fit} frames at this size, or smaller frames"
            )
        return self

    @property
    def seconds(self) -> float:
        """Video length: frames / frame rate."""
        return self.imageCount / self.frameRate


class RenderSpec(BaseModel):
    """One product's resolved render request (defaults merged with its overrides)."""

    model_config = _STRICT

    imageWidth: int = _bounded("imageWidth")
    imageHeight: int = _bounded("imageHeight")
    imageFormat: Literal["PNG", "JPG", "WEBP"] = Field(description="still image format")
    imageBackground: Colour = Field(default=None, description="background colour #RRGGBB")
    transparentBackground: bool = False
    turntable: TurntableSpec

    @model_validator(mode="after")
    def _jpg_has_no_alpha(self) -> RenderSpec:
        if self.transparentBackground and self.imageFormat == "JPG":
            raise ValueError(
                "transparentBackground needs an image format with alpha: use PNG or WEBP, "
                "or set transparentBackground: false"
            )
        return self

    def canonical(self) -> dict[str, Any]:
        """Every field, defaults applied: the exact API body minus productUuids."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        return fingerprint(self.canonical())

    @property
    def frames(self) -> int:
        """Frames the platform renders for this spec: the still plus the turntable frames."""
        return 1 + self.turntable.imageCount


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(canonical: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved spec."""
    return hashlib.sha256(canonical_json(canonical).encode()).hexdigest()


@dataclass(slots=True)  # not frozen: see below
class ProductSpec:
    """A product as the manifests want it: uuid, label, resolved spec and where it was declared.

    Treat as immutable (the loader derives changed copies with ``dataclasses.replace``). Not a
    frozen dataclass because its ``__init__`` costs five times as much (``object.__setattr__`` per
    field): 0.1 s of the 0.3 s a warm 100,000-product plan spends loading its manifests. Nothing
    hashed one: its ``RenderSpec`` never was hashable."""

    uuid: str
    name: str | None
    spec: RenderSpec
    spec_hash: str
    source: SourceLocation
    protect: bool = False
    preset: str | None = None
    """The preset the product names, else the one its file's defaults name: what the plan's
    cost is counted by. Never hashed: the spec is resolved (docs/manifests.md, "Presets")."""
    workspace: str | None = None
    """Its file's ``workspace:`` (a uuid or a slug, as written), else None: the configured one.
    Never hashed: it says where the product lives, not how it is rendered."""


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything the manifests declare, keyed by product uuid."""

    products: dict[str, ProductSpec]
    files: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    """The names of the presets the manifests define, sorted."""
    workspaces: dict[str, str] = field(default_factory=dict)
    """Each ``workspace:`` value the files name → where it is first named (``file:line``)."""


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema of one manifest file, for editors (every spec field optional on products)."""
    spec = RenderSpec.model_json_schema()
    defs = spec.pop("$defs", {})

    def partial(schema: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in schema.items() if k != "required"}
        out["additionalProperties"] = False
        return out

    defs["TurntableOverrides"] = partial(defs.pop("TurntableSpec"))
    preset = {
        "type": "string",
        "minLength": 1,
        "description": "the name of a preset (under presets: in any manifest file) whose fields this builds on",
    }
    props = {"preset": preset, **spec["properties"]}
    props["turntable"] = {"$ref": "#/$defs/TurntableOverrides"}
    overrides = {"type": "object", "properties": props, "additionalProperties": False}
    product = {
        "type": "object",
        "required": ["uuid"],
        "additionalProperties": False,
        "properties": {
            "uuid": {"type": "string", "format": "uuid", "description": "the VNTANA product uuid"},
            "name": {"type": "string", "description": "a label for people; never sent, never hashed"},
            "protect": {"type": "boolean", "description": "refuse to re-render or prune this product"},
            **props,
        },
    }
    presets = {
        "type": "object",
        "description": "named partial render specs, shared by every manifest file",
        "propertyNames": {"minLength": 1},
        "additionalProperties": {"anyOf": [{"$ref": "#/properties/defaults"}, {"type": "null"}]},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reconciler manifest",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "workspace": {
                "type": "string",
                "minLength": 1,
                "description": "the workspace (uuid or slug) of every product of this file; "
                "default: the configured one (VNTANA_CLIENT_UUID)",
            },
            "presets": presets,
            "defaults": overrides,
            "products": {"type": "array", "items": product},
        },
        "$defs": defs,
    }
