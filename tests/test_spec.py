"""Render specs: bounds, colours, and the stability of the spec hash (property-based)."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.loader import load_desired
from reconciler.spec import (
    BOUNDS,
    IMAGE_FORMATS,
    RenderSpec,
    canonical_json,
    fingerprint,
    manifest_json_schema,
)

UUID = "58472097-fec0-516d-8326-f7a5eb192f2c"


def _int(path: str) -> st.SearchStrategy[int]:
    b = BOUNDS[path]
    return st.integers(b.low, b.high)


hex_colour = st.from_regex(r"[0-9A-Fa-f]{6}", fullmatch=True)
colours = st.one_of(st.none(), hex_colour, hex_colour.map(lambda c: "#" + c))

FIELD_BOUNDS = {path: b for path, b in BOUNDS.items() if not b.of}
PIXELS = BOUNDS["turntable.pixels"].high


@st.composite
def turntables(draw: st.DrawFn) -> dict[str, Any]:
    """Valid turntables: the frame count drawn within what the frame size leaves of the pixel cap."""
    width, height = draw(_int("turntable.width")), draw(_int("turntable.height"))
    frames = BOUNDS["turntable.imageCount"]
    tt: dict[str, Any] = {
        "includeGif": draw(st.booleans()),
        "frameRate": draw(_int("turntable.frameRate")),
        "width": width,
        "height": height,
        "imageCount": draw(st.integers(frames.low, min(frames.high, PIXELS // (width * height)))),
    }
    if draw(st.booleans()):
        tt["background"] = draw(colours)
    if draw(st.booleans()):
        tt["transparentBackground"] = draw(st.booleans())
    return tt


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid manifest-style specs, with optional fields sometimes left out."""
    fmt = draw(st.sampled_from(IMAGE_FORMATS))
    spec: dict[str, Any] = {
        "imageWidth": draw(_int("imageWidth")),
        "imageHeight": draw(_int("imageHeight")),
        "imageFormat": fmt,
        "turntable": draw(turntables()),
    }
    if draw(st.booleans()):
        spec["imageBackground"] = draw(colours)
    if draw(st.booleans()):
        spec["transparentBackground"] = False if fmt == "JPG" else draw(st.booleans())
    return spec


def spelt_out(spec: dict[str, Any]) -> dict[str, Any]:
    """The same spec with every default written explicitly."""
    out = {"imageBackground": None, "transparentBackground": False, **spec}
    out["turntable"] = {"background": None, "transparentBackground": False, **spec["turntable"]}
    return out


def shuffled(data: Any, rnd: random.Random) -> Any:
    if isinstance(data, dict):
        items = list(data.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    return data


def hash_of(spec: dict[str, Any]) -> str:
    return RenderSpec.model_validate(spec).fingerprint()


@given(specs())
@settings(deadline=None)  # CI machines are shared: time is not what is tested here
def test_inherited_and_spelt_out_values_give_the_same_hash(spec: dict[str, Any]) -> None:
    assert hash_of(spec) == hash_of(spelt_out(spec))


@given(specs(), st.randoms(use_true_random=False))
@settings(deadline=None)
def test_key_order_does_not_change_the_hash(spec: dict[str, Any], rnd: random.Random) -> None:
    assert hash_of(spec) == hash_of(shuffled(spec, rnd))


@given(hex_colour)
@settings(deadline=None)
def test_colour_spelling_is_canonical(colour: str) -> None:
    spellings = [colour.lower(), colour.upper(), "#" + colour.lower(), "#" + colour.upper()]
    base = {
        "imageWidth": 100,
        "imageHeight": 100,
        "imageFormat": "PNG",
        "turntable": {"includeGif": False, "imageCount": 8, "frameRate": 8, "width": 64, "height": 64},
    }
    hashes = {
        hash_of({**base, "imageBackground": c, "turntable": {**base["turntable"], "background": c}})
        for c in spellings
    }
    assert len(hashes) == 1
    assert (
        RenderSpec.model_validate({**base, "imageBackground": colour}).imageBackground == "#" + colour.upper()
    )


def _changed(spec: dict[str, Any], field: str, data: st.DataObject) -> dict[str, Any]:
    """``spec`` with ``field`` (dotted) set to a different valid value."""
    new = json.loads(json.dumps(spelt_out(spec)))
    parent, key = (new["turntable"], field.split(".")[1]) if field.startswith("turntable.") else (new, field)
    old = parent[key]
    if isinstance(old, str) and key.endswith("ackground"):
        old = "#" + old.lstrip("#").upper()  # compare colours in their canonical spelling
    if field in BOUNDS:
        bound = BOUNDS[field]
        high = bound.high
        if (
            field in BOUNDS["turntable.pixels"].of
        ):  # stay within the pixel cap; the other two stay as they are
            others = (
                new["turntable"]["imageCount"] * new["turntable"]["width"] * new["turntable"]["height"] // old
            )
            high = min(high, PIXELS // others)
        value = data.draw(st.integers(bound.low, high).filter(lambda v: v != old))
    elif key in ("includeGif", "transparentBackground"):
        value = not old
    elif key == "imageFormat":
        value = data.draw(st.sampled_from([f for f in IMAGE_FORMATS if f != old]))
    else:  # a colour
        value = data.draw(
            st.one_of(st.none(), hex_colour.map(lambda c: "#" + c.upper())).filter(lambda c: c != old)
        )
    parent[key] = value
    if new["imageFormat"] == "JPG":
        new["transparentBackground"] = False  # keep it valid: JPG has no alpha
    return new


RENDER_FIELDS = ["imageWidth", "imageHeight", "imageFormat", "imageBackground", "transparentBackground"] + [
    f"turntable.{k}"
    for k in (
        "includeGif",
        "imageCount",
        "frameRate",
        "width",
        "height",
        "background",
        "transparentBackground",
    )
]


def test_render_fields_cover_every_model_field() -> None:
    top = set(RenderSpec.model_fields) - {"turntable"}
    nested = {f"turntable.{k}" for k in RenderSpec.model_fields["turntable"].annotation.model_fields}  # type: ignore[union-attr]
    assert set(RENDER_FIELDS) == top | nested


@pytest.mark.parametrize("field", RENDER_FIELDS)
@given(spec=specs(), data=st.data())
@settings(max_examples=25, deadline=None)
def test_any_change_of_a_render_field_changes_the_hash(
    field: str, spec: dict[str, Any], data: st.DataObject
) -> None:
    spec = spelt_out(spec)
    if field == "transparentBackground" and spec["imageFormat"] == "JPG":
        spec["imageFormat"] = "PNG"
    assert hash_of(spec) != hash_of(_changed(spec, field, data))


@given(
    st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40), min_size=2, max_size=2)
)
@settings(max_examples=20, deadline=None)
def test_name_never_changes_the_hash(names: list[str]) -> None:
    hashes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, label in enumerate(names):
            path = Path(tmp) / f"{i}.yaml"
            path.write_text(
                "defaults:\n  imageWidth: 1200\n  imageHeight: 1200\n  imageFormat: PNG\n"
                "  turntable: {includeGif: false, imageCount: 36, frameRate: 12, width: 720, height: 720}\n"
                f"products:\n  - uuid: {UUID}\n    name: {json.dumps(label, ensure_ascii=False)}\n",
                encoding="utf-8",
            )
            product = load_desired([path]).products[UUID]
            assert product.name == label
            hashes.append(product.spec_hash)
    assert hashes[0] == hashes[1]


def test_hash_is_sha256_of_the_canonical_json() -> None:
    spec = RenderSpec.model_validate(
        {
            "imageWidth": 100,
            "imageHeight": 50,
            "imageFormat": "WEBP",
            "turntable": {"includeGif": True, "imageCount": 24, "frameRate": 12, "width": 64, "height": 64},
        }
    )
    canonical = spec.canonical()
    # Pinned: a change to the canonical form would re-render every product of every user.
    assert canonical_json(canonical) == (
        '{"imageBackground":null,"imageFormat":"WEBP","imageHeight":50,"imageWidth":100,'
        '"transparentBackground":false,"turntable":{"background":null,"frameRate":12,"height":64,'
        '"imageCount":24,"includeGif":true,"transparentBackground":false,"width":64}}'
    )
    assert spec.fingerprint() == fingerprint(canonical)
    assert spec.fingerprint() == hashlib.sha256(canonical_json(canonical).encode()).hexdigest()


@pytest.mark.parametrize("path", sorted(FIELD_BOUNDS))
def test_each_bound_is_inclusive_and_enforced(path: str) -> None:
    bound = BOUNDS[path]
    base: dict[str, Any] = {
        "imageWidth": 100,
        "imageHeight": 100,
        "imageFormat": "PNG",
        "turntable": {"includeGif": False, "imageCount": 8, "frameRate": 8, "width": 64, "height": 64},
    }

    def with_value(v: int) -> dict[str, Any]:
        spec = json.loads(json.dumps(base))
        if path.startswith("turntable."):
            spec["turntable"][path.split(".")[1]] = v
        else:
            spec[path] = v
        return spec

    RenderSpec.model_validate(with_value(bound.low))
    RenderSpec.model_validate(with_value(bound.high))
    for bad in (bound.low - 1, bound.high + 1):
        with pytest.raises(ValidationError):
            RenderSpec.model_validate(with_value(bad))


@pytest.mark.parametrize("colour", ["#FFF", "white", "#GGGGGG", "#FFFFFFF", " #FFFFFF", ""])
def test_bad_colours_are_refused(colour: str) -> None:
    with pytest.raises(ValidationError, match="expected a colour as #RRGGBB"):
        RenderSpec.model_validate(
            {
                "imageWidth": 100,
                "imageHeight": 100,
                "imageFormat": "PNG",
                "imageBackground": colour,
                "turntable": {
                    "includeGif": False,
                    "imageCount": 8,
                    "frameRate": 8,
                    "width": 64,
                    "height": 64,
                },
            }
        )


def test_spec_is_strict_about_types() -> None:
    with pytest.raises(ValidationError):
        RenderSpec.model_validate(
            {
                "imageWidth": "100",
                "imageHeight": 100,
                "imageFormat": "PNG",
                "turntable": {
                    "includeGif": "yes",
                    "imageCount": 8,
                    "frameRate": 8,
                    "width": 64,
                    "height": 64,
                },
            }
        )


def test_frames_and_seconds() -> None:
    spec = RenderSpec.model_validate(
        {
            "imageWidth": 100,
            "imageHeight": 100,
            "imageFormat": "PNG",
            "turntable": {"includeGif": False, "imageCount": 36, "frameRate": 12, "width": 64, "height": 64},
        }
    )
    assert spec.frames == 37
    assert spec.turntable.seconds == 3.0


def test_schema_documents_every_bound() -> None:
    schema = manifest_json_schema()
    props = schema["properties"]["defaults"]["properties"]
    turntable = schema["$defs"]["TurntableOverrides"]["properties"]
    for path, bound in FIELD_BOUNDS.items():
        node = turntable[path.split(".")[1]] if path.startswith("turntable.") else props[path]
        assert (node["minimum"], node["maximum"]) == (bound.low, bound.high)


def test_docs_list_every_bound() -> None:
    """docs/manifests.md is where users read the bounds: it must match BOUNDS."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "manifests.md").read_text(encoding="utf-8")
    for path, bound in BOUNDS.items():
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{path}` |"))
        assert f"{bound.low}..{bound.high}" in row, path


# -- what plan accepts, the platform renders ---------------------------------------------------


def _base(**turntable: int) -> dict[str, Any]:
    return {
        "imageWidth": 100,
        "imageHeight": 100,
        "imageFormat": "PNG",
        "turntable": {
            "includeGif": False,
            "imageCount": 8,
            "frameRate": 8,
            "width": 64,
            "height": 64,
            **turntable,
        },
    }


def test_the_pixel_cap_is_inclusive_and_enforced() -> None:
    # 119 frames of 4096x4096 are 1,996,488,704 pixels; 120 are 2,013,265,920.
    RenderSpec.model_validate(_base(imageCount=119, width=4096, height=4096))
    with pytest.raises(ValidationError) as info:
        RenderSpec.model_validate(_base(imageCount=720, width=4096, height=4096))
    [err] = info.value.errors()
    assert err["loc"] == ("turntable",)
    assert err["msg"] == (
        "Value error, a turntable of 720 frames at 4096x4096 is 12,079,595,520 pixels, more than "
        "the platform renders (2,000,000,000, frames x width x height); use at most 119 frames "
        "at this size, or smaller frames"
    )


def _sandbox_refuses(spec: dict[str, Any]) -> list[str]:
    """The error codes the sandbox's trigger answers for this render body (none: accepted)."""
    from reconciler.sandbox.config import SandboxConfig
    from reconciler.sandbox.envelope import ApiError
    from reconciler.sandbox.routes_renders import parse_specs

    try:
        parse_specs(spec, SandboxConfig())
    except ApiError as exc:
        return exc.codes
    return []


def test_spec_bounds_lie_within_the_sandboxs_limits() -> None:
    """Each bound in BOUNDS against the limit the sandbox's trigger enforces for it; the
    pixel cap, the one that binds, is the same number, so plan refuses exactly what the
    platform would. (spec.py must not import the sandbox: the numbers are compared here.)"""
    from reconciler.sandbox.config import SandboxConfig

    cfg = SandboxConfig()
    limits = {
        "imageWidth": cfg.max_image_side,
        "imageHeight": cfg.max_image_side,
        "turntable.width": cfg.max_video_side,
        "turntable.height": cfg.max_video_side,
        "turntable.imageCount": cfg.max_image_count,
        "turntable.frameRate": cfg.max_frame_rate,
        "turntable.pixels": cfg.max_turntable_pixels,
    }
    assert set(limits) == set(BOUNDS)
    for path, bound in BOUNDS.items():
        assert 1 <= bound.low <= bound.high <= limits[path], path
    assert BOUNDS["turntable.pixels"].high == cfg.max_turntable_pixels


@given(specs())
@settings(max_examples=200, deadline=None)
def test_every_spec_plan_accepts_the_sandbox_accepts(spec: dict[str, Any]) -> None:
    assert _sandbox_refuses(RenderSpec.model_validate(spec).canonical()) == []


def test_one_frame_over_the_pixel_cap_is_refused_by_both() -> None:
    assert (
        _sandbox_refuses(
            RenderSpec.model_validate(_base(imageCount=119, width=4096, height=4096)).canonical()
        )
        == []
    )
    over = _base(imageCount=120, width=4096, height=4096)
    assert _sandbox_refuses(over) == ["TURNTABLE_TOO_LARGE"]
    with pytest.raises(ValidationError, match="more than the platform renders"):
        RenderSpec.model_validate(over)
