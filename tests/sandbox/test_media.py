"""The sandbox's media files are real: decoded here with Pillow and PyAV, never trusted by size.

Small sizes throughout keep the file fast; the renderer and encoders run the same code at any size.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections import Counter
from fractions import Fraction

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from reconciler.sandbox import media
from reconciler.sandbox.models3d import build_mesh, face_normals

UUID_A = "5a1f3c1e-0000-4000-8000-00000000000a"
UUID_B = "5a1f3c1e-0000-4000-8000-00000000000b"


def decode_still(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def decode_mp4(data: bytes) -> tuple[list[Image.Image], av.video.stream.VideoStream, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        return frames, stream, stream.codec_context.name


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    doc = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\0" and bin_len % 4 == 0
    blob = data[28 + json_len : 28 + json_len + bin_len]
    assert 28 + json_len + bin_len == len(data)
    return doc, blob


# --- models -------------------------------------------------------------------------------------


def test_shapes_and_content_types() -> None:
    assert set(media.SHAPES) == {
        "shoe",
        "chair",
        "sofa",
        "table",
        "bag",
        "bottle",
        "glasses",
        "watch",
        "cap",
        "box",
    }
    assert media.CONTENT_TYPES == {
        "PNG": "image/png",
        "JPG": "image/jpeg",
        "WEBP": "image/webp",
        "MP4": "video/mp4",
        "GIF": "image/gif",
    }


@pytest.mark.parametrize("shape", media.SHAPES)
def test_mesh_is_closed_outward_and_normalised(shape: str) -> None:
    mesh = build_mesh(shape, UUID_A)
    # Every edge once in each direction: closed solids wound consistently, so culling is safe.
    edges = Counter((f[i], f[(i + 1) % len(f)]) for f in mesh.faces for i in range(len(f)))
    assert all(n == 1 for n in edges.values())
    assert all(edges[(b, a)] == 1 for a, b in edges)
    # ...and outward: the enclosed volume of each solid is positive (flux of x through the surface).
    volume = 0.0
    for face, normal in zip(mesh.faces, face_normals(mesh), strict=True):
        a = mesh.vertices[face[0]]
        for i in range(1, len(face) - 1):
            b, c = mesh.vertices[face[i]], mesh.vertices[face[i + 1]]
            volume += (
                a[0] * (b[1] * c[2] - b[2] * c[1])
                + a[1] * (b[2] * c[0] - b[0] * c[2])
                + a[2] * (b[0] * c[1] - b[1] * c[0])
            ) / 6
        assert math.isclose(math.hypot(*normal), 1.0, abs_tol=1e-9)  # no degenerate faces
    assert volume > 0
    ys = [v[1] for v in mesh.vertices]
    assert min(ys) == pytest.approx(0.0, abs=1e-12)
    radius = max(math.sqrt(x * x + (y - max(ys) / 2) ** 2 + z * z) for x, y, z in mesh.vertices)
    assert radius == pytest.approx(1.0)
    assert 10 <= len(mesh.faces) <= 2000 and len(mesh.face_material) == len(mesh.face_bias) == len(mesh.faces)


@pytest.mark.parametrize("shape", media.SHAPES)
def test_glb_is_valid_and_product_specific(shape: str) -> None:
    data = media.model_glb(shape, UUID_A)
    assert data == media.model_glb(shape, UUID_A)
    assert data != media.model_glb(shape, UUID_B)
    assert len(data) < 200_000
    doc, blob = parse_glb(data)
    assert doc["asset"]["version"] == "2.0"
    assert doc["buffers"] == [{"byteLength": len(blob)}]
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["byteOffset"] + view["byteLength"] <= len(blob)
    (mesh,) = doc["meshes"]
    for prim in mesh["primitives"]:
        assert prim["mode"] == 4 and 0 <= prim["material"] < len(doc["materials"])
        pos, nor = (doc["accessors"][prim["attributes"][k]] for k in ("POSITION", "NORMAL"))
        assert pos["count"] == nor["count"] and pos["count"] % 3 == 0
        view = doc["bufferViews"][pos["bufferView"]]
        values = struct.unpack_from(f"<{pos['count'] * 3}f", blob, view["byteOffset"])
        for k in range(3):
            assert min(values[k::3]) == pytest.approx(pos["min"][k]) and max(values[k::3]) == pytest.approx(
                pos["max"][k]
            )
        view = doc["bufferViews"][nor["bufferView"]]
        normals = struct.unpack_from(f"<{nor['count'] * 3}f", blob, view["byteOffset"])
        assert all(abs(math.hypot(*normals[i : i + 3]) - 1) < 1e-4 for i in range(0, len(normals), 3))
    for material in doc["materials"]:
        assert all(0 <= c <= 1 for c in material["pbrMetallicRoughness"]["baseColorFactor"])


# --- stills -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "pil_format"), [("PNG", "PNG"), ("JPG", "JPEG"), ("WEBP", "WEBP"), ("png", "PNG")]
)
@pytest.mark.parametrize("transparent", [False, True])
def test_still_decodes_at_exact_size(fmt: str, pil_format: str, transparent: bool) -> None:
    data = media.render_still(
        "chair", UUID_A, width=96, height=64, fmt=fmt, transparent=transparent, background="#336699"
    )
    img = decode_still(data)
    assert img.format == pil_format and img.size == (96, 64)
    if transparent and pil_format != "JPEG":
        assert img.mode == "RGBA"
        assert img.getpixel((0, 0))[3] == 0  # corners are background, and the background is see-through
        assert img.getchannel("A").getextrema() == (0, 255)
    else:
        assert img.mode == "RGB"  # JPG has no alpha: transparent falls back to the background colour
        corner = img.getpixel((0, 0))
        assert all(abs(c - e) <= 3 for c, e in zip(corner, (0x33, 0x66, 0x99), strict=True))


@pytest.mark.parametrize(
    ("background", "expected"),
    [
        (None, (255, 255, 255)),
        ("#F4F4F4", (244, 244, 244)),
        ("f4f4f4", (244, 244, 244)),
        ("#aB1203", (171, 18, 3)),
        ("#fff", (255, 255, 255)),
    ],
)
def test_background_colour(background: str | None, expected: tuple[int, int, int]) -> None:
    img = decode_still(
        media.render_still("bottle", UUID_A, width=40, height=40, fmt="PNG", background=background)
    )
    assert img.getpixel((0, 0)) == expected
    assert media.parse_color(background) == expected


@pytest.mark.parametrize(("width", "height"), [(1, 1), (33, 17), (17, 33), (101, 3)])
def test_still_odd_and_tiny_sizes(width: int, height: int) -> None:
    for fmt in ("PNG", "JPG", "WEBP"):
        assert decode_still(media.render_still("sofa", UUID_A, width=width, height=height, fmt=fmt)).size == (
            width,
            height,
        )


def test_still_shows_the_product_and_differs_by_product_and_angle() -> None:
    def render(shape: str, uuid: str, angle: float = 30.0) -> Image.Image:
        return decode_still(media.render_still(shape, uuid, width=80, height=80, fmt="PNG", angle_deg=angle))

    a = render("shoe", UUID_A)
    # Not a blank canvas: the product covers a fair share of the frame in several colours.
    assert len(a.getcolors(10_000) or range(10_001)) > 20
    changed = ImageChops.difference(a, Image.new("RGB", a.size, (255, 255, 255))).convert("L")
    covered = sum(changed.histogram()[1:])
    assert covered > 0.15 * 80 * 80
    assert mean_diff(a, render("shoe", UUID_B)) > 2
    assert mean_diff(a, render("shoe", UUID_A, 120.0)) > 2
    assert mean_diff(a, render("shoe", UUID_A, 390.0)) == 0  # a full turn is the same picture
    shapes = {render(s, UUID_A).tobytes() for s in media.SHAPES}
    assert len(shapes) == len(media.SHAPES)


@pytest.mark.parametrize("fmt", ["PNG", "JPG", "WEBP"])
def test_still_is_deterministic(fmt: str) -> None:
    args = {"width": 64, "height": 48, "fmt": fmt, "background": "#EEEEEE", "angle_deg": 75.0}
    assert media.render_still("watch", UUID_A, **args) == media.render_still("watch", UUID_A, **args)


# --- turntables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_count", "frame_rate", "width", "height", "pix_fmt"),
    [
        (12, 24, 64, 48, "yuv420p"),
        (7, 5, 33, 21, "yuv444p"),  # odd sizes cannot be 4:2:0; the size must still be exact
        (1, 30, 16, 16, "yuv420p"),
        (30, 60, 40, 40, "yuv420p"),
    ],
)
def test_mp4_frames_rate_and_size(
    image_count: int, frame_rate: int, width: int, height: int, pix_fmt: str
) -> None:
    mp4, gif = media.render_turntable(
        "bag", UUID_A, image_count=image_count, frame_rate=frame_rate, width=width, height=height
    )
    assert gif is None
    assert mp4[4:8] == b"ftyp"
    with av.open(io.BytesIO(mp4)) as container:
        assert "mp4" in container.format.name
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
        assert len(frames) == image_count and stream.frames == image_count
        assert stream.average_rate == frame_rate
        assert float(stream.duration * stream.time_base) == pytest.approx(image_count / frame_rate)
        assert {(f.width, f.height) for f in frames} == {(width, height)}
        assert frames[0].format.name == pix_fmt
        assert [f.pts * f.time_base for f in frames] == [Fraction(i, frame_rate) for i in range(image_count)]


def test_turntable_turns_through_360_degrees() -> None:
    n, size = 8, 64
    mp4, gif = media.render_turntable(
        "shoe",
        UUID_A,
        image_count=n,
        frame_rate=8,
        width=size,
        height=size,
        include_gif=True,
        background="#F4F4F4",
    )
    frames, _, _ = decode_mp4(mp4)
    assert gif is not None
    anim = Image.open(io.BytesIO(gif))
    for i in (0, 3, 5):
        # Frame i is the still at 360*i/n degrees: near-equal after lossy H.264, very close after the GIF palette.
        still = decode_still(
            media.render_still(
                "shoe",
                UUID_A,
                width=size,
                height=size,
                fmt="PNG",
                background="#F4F4F4",
                angle_deg=360 * i / n,
            )
        )
        assert mean_diff(frames[i], still) < 4
        anim.seek(i)
        assert mean_diff(anim.convert("RGB"), still) < 1.5
    assert mean_diff(frames[0], frames[2]) > 3  # it really moves


@pytest.mark.parametrize(
    ("image_count", "frame_rate", "transparent"), [(12, 10, False), (9, 24, True), (5, 30, False)]
)
def test_gif_frames_size_timing_and_alpha(image_count: int, frame_rate: int, transparent: bool) -> None:
    _, gif = media.render_turntable(
        "cap",
        UUID_A,
        image_count=image_count,
        frame_rate=frame_rate,
        width=51,
        height=37,
        include_gif=True,
        transparent=transparent,
    )
    assert gif is not None and gif.startswith(b"GIF89a")
    anim = Image.open(io.BytesIO(gif))
    assert anim.format == "GIF" and anim.size == (51, 37) and anim.n_frames == image_count
    assert anim.info["loop"] == 0
    delays = []
    for i in range(image_count):
        anim.seek(i)
        delays.append(anim.info["duration"])
        assert abs(anim.info["duration"] - 1000 / frame_rate) <= 10  # GIF delays tick in 10 ms
        rgba = anim.convert("RGBA")
        assert (rgba.getpixel((0, 0))[3] == 0) is transparent
        assert rgba.getchannel("A").getextrema()[1] == 255  # the product itself is opaque
    assert sum(delays) == pytest.approx(1000 * image_count / frame_rate, abs=10)
    # With PyAV too: an independent decoder counts the same frames.
    with av.open(io.BytesIO(gif)) as container:
        assert sum(1 for _ in container.decode(video=0)) == image_count


def test_identical_frames_are_kept() -> None:
    # At 2x2 pixels consecutive angles look alike; each must still be its own GIF frame.
    _, gif = media.render_turntable(
        "box", UUID_A, image_count=24, frame_rate=12, width=2, height=2, include_gif=True
    )
    assert gif is not None and Image.open(io.BytesIO(gif)).n_frames == 24


def test_transparent_turntable_mp4_uses_the_background() -> None:
    mp4, gif = media.render_turntable(
        "table",
        UUID_A,
        image_count=3,
        frame_rate=3,
        width=64,
        height=64,
        transparent=True,
        background="#204080",
        include_gif=False,
    )
    frames, _, _ = decode_mp4(mp4)
    assert gif is None and len(frames) == 3
    corner = ImageStat.Stat(frames[0].crop((0, 0, 6, 6))).mean  # away from the product, so no codec ringing
    assert all(abs(c - e) <= 4 for c, e in zip(corner, (0x20, 0x40, 0x80), strict=True))


def test_turntable_is_deterministic_and_product_specific() -> None:
    args = {"image_count": 6, "frame_rate": 12, "width": 48, "height": 40, "include_gif": True}
    first = media.render_turntable("glasses", UUID_A, **args)
    assert first == media.render_turntable("glasses", UUID_A, **args)
    other = media.render_turntable("glasses", UUID_B, **args)
    assert first[0] != other[0] and first[1] != other[1]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "spaceship"}, "unknown shape"),
        ({"fmt": "BMP"}, "unknown still format"),
        ({"fmt": "MP4"}, "unknown still format"),
        ({"width": 0}, "width"),
        ({"height": -5}, "height"),
        ({"width": 8193}, "at most 8192"),
        ({"width": 2.5}, "width"),
        ({"width": True}, "width"),
        ({"background": "#12345"}, "hex colour"),
        ({"background": "#GGGGGG"}, "hex colour"),
        ({"background": "+1+2+3"}, "hex colour"),
    ],
)
def test_still_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"shape": "box", "product_uuid": UUID_A, "width": 8, "height": 8, "fmt": "PNG", **kwargs}
    with pytest.raises(ValueError, match=message):
        media.render_still(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "spaceship"}, "unknown shape"),
        ({"image_count": 0}, "image_count"),
        ({"frame_rate": 0}, "frame_rate"),
        ({"width": -1}, "width"),
        ({"height": 4097}, "at most 4096"),
        ({"background": "blue"}, "hex colour"),
    ],
)
def test_turntable_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {
        "shape": "box",
        "product_uuid": UUID_A,
        "image_count": 2,
        "frame_rate": 2,
        "width": 8,
        "height": 8,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        media.render_turntable(**args)


def test_glb_rejects_unknown_shape() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        media.model_glb("spaceship", UUID_A)
