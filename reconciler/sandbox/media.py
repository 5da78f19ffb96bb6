"""Real image, video and 3D files for the sandbox's fake products.

The sandbox stands in for the VNTANA API, so clients must get media they can decode,
measure and look at, not placeholders: a .glb "uploaded model", stills in PNG/JPG/WEBP
and 360-degree turntables as MP4 (+ GIF). There is no GPU or 3D stack to lean on, so
a tiny software renderer draws the procedural mesh from ``models3d``: rotate, perspective
project, back-face cull, painter-sort and flat-shade polygons with Pillow's ImageDraw.
A few hundred polygons per frame keeps that to milliseconds, so encoding dominates.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from collections.abc import Sequence
from fractions import Fraction

import av
from av.video.reformatter import Colorspace
from PIL import GifImagePlugin, Image, ImageDraw

from .models3d import SHAPES, Mesh, Vec, build_mesh, face_normals

__all__ = ["CONTENT_TYPES", "SHAPES", "model_glb", "parse_color", "render_still", "render_turntable"]

CONTENT_TYPES = {
    "PNG": "image/png",
    "JPG": "image/jpeg",
    "WEBP": "image/webp",
    "MP4": "video/mp4",
    "GIF": "image/gif",
}
_PIL_FORMATS = {"PNG": "PNG", "JPG": "JPEG", "JPEG": "JPEG", "WEBP": "WEBP"}
_MAX_STILL, _MAX_VIDEO = 8192, 4096
_DEFAULT_BG = (255, 255, 255)
_HEX6 = re.compile(r"[0-9A-Fa-f]{6}")

_ELEVATION = math.radians(20.0)
_HALF_FOV = math.radians(16.0)
_KEY = (-0.45, 0.75, 0.5)  # world-space lights: the studio stays put while the product turns
_FILL = (0.7, 0.15, 0.35)
_LEVELS = 48  # shading steps: invisible on flat faces, and they give the GIF an exact palette
_SHADOW_ALPHA = 56
_X264_PRESET = "superfast"  # near ultrafast speed at ~70% of its size; veryfast halves it again but costs ~2x


def _unit(v: tuple[float, float, float]) -> tuple[float, float, float]:
    n = math.sqrt(sum(c * c for c in v))
    return (v[0] / n, v[1] / n, v[2] / n)


_KEY, _FILL = _unit(_KEY), _unit(_FILL)


def model_glb(shape: str, product_uuid: str) -> bytes:
    """A small, valid binary glTF 2.0 (.glb) of the product's procedural mesh."""
    return _glb(build_mesh(shape, product_uuid))


def _linear(c: int) -> float:
    """glTF colour factors are linear-light; the palette is sRGB."""
    s = c / 255
    return round(s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4, 5)


def _glb(mesh: Mesh) -> bytes:
    """Binary glTF 2.0: one non-indexed triangle primitive per material, flat normals."""
    normals = face_normals(mesh)
    blob, views, accessors, primitives = bytearray(), [], [], []
    for mat in range(len(mesh.materials)):
        pos: list[float] = []
        nor: list[float] = []
        for face, normal, fm in zip(mesh.faces, normals, mesh.face_material, strict=True):
            if fm != mat:
                continue
            for i in range(
                1, len(face) - 1
            ):  # fan: every face is convex or star-shaped from its first corner
                for vi in (face[0], face[i], face[i + 1]):
                    pos.extend(mesh.vertices[vi])
                    nor.extend(normal)
        if not pos:
            continue
        count = len(pos) // 3
        attrs = {}
        for name, data in (("POSITION", pos), ("NORMAL", nor)):
            views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": 4 * len(data), "target": 34962})
            blob += struct.pack(f"<{len(data)}f", *data)
            acc = {"bufferView": len(views) - 1, "componentType": 5126, "count": count, "type": "VEC3"}
            if name == "POSITION":  # required by the spec for POSITION
                acc["min"] = [min(pos[k::3]) for k in range(3)]
                acc["max"] = [max(pos[k::3]) for k in range(3)]
            accessors.append(acc)
            attrs[name] = len(accessors) - 1
        primitives.append({"attributes": attrs, "material": mat, "mode": 4})
    doc = {
        "asset": {"version": "2.0", "generator": "reconciler sandbox"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "product"}],
        "meshes": [{"primitives": primitives}],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorFactor": [*map(_linear, rgb), 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.7,
                }
            }
            for rgb in mesh.materials
        ],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)  # chunks must be 4-byte aligned: JSON pads with spaces, BIN with zeros
    blob += b"\0" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + struct.pack("<I4s", len(blob), b"BIN\0")
        + bytes(blob)
    )


def parse_color(value: str | None) -> tuple[int, int, int]:
    """'#F4F4F4', 'f4f4f4' or '#fff' to RGB; None gives the neutral default (white)."""
    if value is None:
        return _DEFAULT_BG
    text = value.strip().removeprefix("#") if isinstance(value, str) else ""
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if not _HEX6.fullmatch(text):
        raise ValueError(f"background must be a hex colour like '#F4F4F4', got {value!r}")
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))


def _check_positive(limit: int | None = None, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if limit is not None and value > limit:
            raise ValueError(f"{name} must be at most {limit}, got {value}")


class _Scene:
    """A product's mesh flattened for fast per-frame work, with a camera framing one output size."""

    def __init__(self, mesh: Mesh, width: int, height: int) -> None:
        self.size = (width, height)
        # Supersample 2x for antialiasing while the canvas stays modest; past ~2.5 MP the
        # pixels are small enough that jaggies matter less than 4x the memory and fill time.
        self.ss = 2 if width * height <= 2_600_000 else 1
        w, h = width * self.ss, height * self.ss
        distance = 1.08 / math.sin(_HALF_FOV)
        self.cam_y = max(v[1] for v in mesh.vertices) / 2 + distance * math.sin(_ELEVATION)
        self.cam_z = distance * math.cos(_ELEVATION)
        # Frame the product by where it actually goes while turning (every 15 degrees), not by
        # its bounding sphere, which leaves long low things like shoes tiny. One framing for
        # all angles, so a turntable never zooms and stills match its frames.
        ax = min(1.0, max(abs(v[0]) for v in mesh.vertices) * 1.1)
        az = min(1.0, max(abs(v[2]) for v in mesh.vertices) * 1.1)
        self.shadow = [
            (ax * math.cos(t), 0.0, az * math.sin(t)) for t in (2 * math.pi * i / 32 for i in range(32))
        ]
        self.focal, self.cx, self.cy = 1.0, 0.0, 0.0
        xs: list[float] = []
        ys: list[float] = []
        for step in range(24):
            t = math.radians(15 * step)
            pts = self._project(mesh.vertices + tuple(self.shadow), math.cos(t), math.sin(t))[0]
            xs.extend(p[0] for p in pts)
            ys.extend(p[1] for p in pts)
        span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
        self.focal = 0.86 * min(w / span_x, h / span_y)
        self.cx = w / 2 - self.focal * (max(xs) + min(xs)) / 2
        self.cy = h / 2 - self.focal * (max(ys) + min(ys)) / 2
        self.verts = mesh.vertices
        self.faces = [
            (face, n, mesh.materials[m], bias)
            for face, n, m, bias in zip(
                mesh.faces, face_normals(mesh), mesh.face_material, mesh.face_bias, strict=True
            )
        ]
        self.materials = mesh.materials

    def _project(
        self, points: Sequence[Vec], c: float, s: float
    ) -> tuple[list[tuple[float, float]], list[float]]:
        """Screen positions and camera depths of points after turning the product by (cos, sin)."""
        ce, se = math.cos(_ELEVATION), math.sin(_ELEVATION)
        cam_y, cam_z, f, cx, cy = self.cam_y, self.cam_z, self.focal, self.cx, self.cy
        screen, depths = [], []
        for x, y, z in points:
            xr = x * c + z * s
            py, pz = y - cam_y, -x * s + z * c - cam_z
            depth = -py * se - pz * ce
            k = f / depth
            screen.append((cx + xr * k, cy - (py * ce - pz * se) * k))
            depths.append(depth)
        return screen, depths

    def draw(self, angle_deg: float, background: tuple[int, int, int], alpha: bool) -> Image.Image:
        """The product turned by angle_deg about the vertical axis, as RGB or (alpha) RGBA."""
        theta = math.radians(angle_deg)
        c, s = math.cos(theta), math.sin(theta)
        screen, depths = self._project(self.verts, c, s)
        visible = []
        for face, (nx, ny, nz), rgb, bias in self.faces:
            pts = [screen[i] for i in face]
            # Screen y points down, so outward (counter-clockwise) faces come out clockwise:
            # a positive shoelace sum means the face looks away from the camera.
            area = 0.0
            px, py = pts[-1]
            for qx, qy in pts:
                area += px * qy - qx * py
                px, py = qx, qy
            if area >= 0:
                continue
            wx, wz = nx * c + nz * s, -nx * s + nz * c
            light = (
                0.3
                + 0.62 * max(0.0, wx * _KEY[0] + ny * _KEY[1] + wz * _KEY[2])
                + 0.2 * max(0.0, wx * _FILL[0] + ny * _FILL[1] + wz * _FILL[2])
            )
            light = round(light * _LEVELS) / _LEVELS
            fill = tuple(min(255, round(v * light)) for v in rgb)
            visible.append((sum(depths[i] for i in face) / len(face) - bias, pts, fill))
        visible.sort(key=lambda item: item[0], reverse=True)  # painter's algorithm: far to near

        w, h = self.size[0] * self.ss, self.size[1] * self.ss
        if alpha:
            img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            shadow_fill: tuple[int, ...] = (0, 0, 0, _SHADOW_ALPHA)
        else:
            img = Image.new("RGB", (w, h), background)
            shadow_fill = _shadow_colour(background)
        draw = ImageDraw.Draw(img)
        draw.polygon(self._project(self.shadow, c, s)[0], fill=shadow_fill)
        for _, pts, fill in visible:
            draw.polygon(pts, fill=fill + (255,) if alpha else fill)
        # reduce() averages RGBA premultiplied, so edges over transparency keep their colour.
        return img.reduce(self.ss) if self.ss > 1 else img

    def palette(self, background: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """Every flat colour draw() can produce: its shading levels times materials, plus the floor."""
        colours = {background, _shadow_colour(background)}
        for rgb in self.materials:
            for level in range(round(0.3 * _LEVELS), round(1.12 * _LEVELS) + 1):
                colours.add(tuple(min(255, round(v * level / _LEVELS)) for v in rgb))  # type: ignore[arg-type]
        return sorted(colours)


def _shadow_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    k = 1 - _SHADOW_ALPHA / 255  # the transparent shadow composited over the background
    return (round(background[0] * k), round(background[1] * k), round(background[2] * k))


def render_still(
    shape: str,
    product_uuid: str,
    *,
    width: int,
    height: int,
    fmt: str,
    background: str | None = None,
    transparent: bool = False,
    angle_deg: float = 30.0,
) -> bytes:
    """Encoded still image of exactly width x height in fmt ("PNG" | "JPG" | "WEBP")."""
    pil_format = _PIL_FORMATS.get(fmt.upper()) if isinstance(fmt, str) else None
    if pil_format is None:
        raise ValueError(f"unknown still format {fmt!r}; expected PNG, JPG or WEBP")
    _check_positive(_MAX_STILL, width=width, height=height)
    bg = parse_color(background)
    scene = _Scene(build_mesh(shape, product_uuid), width, height)
    img = scene.draw(angle_deg, bg, alpha=transparent and pil_format != "JPEG")  # JPEG has no alpha
    out = io.BytesIO()
    if pil_format == "PNG":
        # Flat-coloured renders compress well even at a low level; level 6+ costs far more time.
        img.save(out, "PNG", compress_level=3)
    elif pil_format == "JPEG":
        img.save(out, "JPEG", quality=90)
    else:
        img.save(out, "WEBP", quality=85, method=3)
    return out.getvalue()


class _Mp4Writer:
    """H.264 in MP4, fed one frame at a time so memory stays at one frame whatever the length."""

    def __init__(self, width: int, height: int, frame_rate: int) -> None:
        self._buf = io.BytesIO()
        self._container = av.open(self._buf, mode="w", format="mp4")
        # yuv420p is what every player decodes, but it halves chroma so sizes must be even;
        # odd sizes take yuv444p (High 4:4:4), which keeps the exact size players like VLC and
        # FFmpeg decode, though some browsers do not.
        self._pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        # A fixed thread count keeps output byte-identical run to run (x264 is deterministic
        # for a given thread count); one thread also suits a sandbox rendering many products at once.
        options = {
            "preset": _X264_PRESET,
            "crf": "23",
            "threads": "1" if width * height <= 1280 * 720 else "2",
        }
        stream = self._container.add_stream("libx264", rate=frame_rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, self._pix_fmt
        stream.codec_context.gop_size = frame_rate  # a keyframe a second: quick seeking in short clips
        # Tag BT.709 and convert with it, so players do not guess and shift colours.
        stream.codec_context.colorspace = stream.codec_context.color_primaries = (
            stream.codec_context.color_trc
        ) = 1
        stream.codec_context.color_range = 1  # limited ("TV") range, what swscale produces
        stream.time_base = Fraction(1, frame_rate)
        self._stream = stream
        self._time_base = Fraction(1, frame_rate)
        self._count = 0

    def add(self, image: Image.Image) -> None:
        frame = av.VideoFrame.from_image(image).reformat(
            format=self._pix_fmt, dst_colorspace=Colorspace.ITU709
        )
        frame.pts, frame.time_base = self._count, self._time_base
        self._count += 1
        self._container.mux(self._stream.encode(frame))

    def finish(self) -> bytes:
        self._container.mux(self._stream.encode(None))  # flush frames still in the encoder
        self._container.close()
        return self._buf.getvalue()

    def abort(self) -> None:
        self._container.close()


class _GifWriter:
    """Animated GIF written frame by frame onto one fixed palette.

    Pillow's save_all merges consecutive identical frames (a symmetric box turning 90 degrees,
    or any tiny size) into one longer frame, which would break "image_count frames"; emitting
    each frame with Pillow's GifImagePlugin.getdata keeps every one, and streams as a bonus.
    """

    _TRANSPARENT = 255  # palette slot kept free of colours, marked transparent when asked

    def __init__(
        self,
        width: int,
        height: int,
        frame_rate: int,
        colours: list[tuple[int, int, int]],
        background: tuple[int, int, int],
        transparent: bool,
    ) -> None:
        if len(colours) > 255:  # more materials than the palette holds: let median cut choose
            sheet = Image.new("RGB", (len(colours), 1))
            sheet.putdata(colours)
            reduced = sheet.quantize(255, method=Image.Quantize.MEDIANCUT).getpalette() or []
            colours = [(reduced[i], reduced[i + 1], reduced[i + 2]) for i in range(0, len(reduced) - 2, 3)][
                :255
            ]
        self._palette = Image.new("P", (1, 1))
        self._palette.putpalette(bytes(v for rgb in colours for v in rgb))
        table = [v for rgb in colours for v in rgb] + list(background) * (256 - len(colours))
        self._transparent = transparent
        self._frame_rate = frame_rate
        self._count = 0
        self._chunks = [
            b"GIF89a",
            width.to_bytes(2, "little"),
            height.to_bytes(2, "little"),
            bytes(
                (
                    0xF7,
                    self._TRANSPARENT
                    if transparent or background not in colours
                    else colours.index(background),
                    0,
                )
            ),
            bytes(table),
            b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00",  # loop forever
        ]

    def add(self, image: Image.Image) -> None:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        frame = rgb.quantize(palette=self._palette, dither=Image.Dither.NONE)
        if self._transparent:
            # GIF alpha is all or nothing: half-covered edge pixels stay, the rest (and the soft shadow) go.
            mask = image.getchannel("A").point(lambda a: 255 if a < 128 else 0, "1")
            frame.paste(self._TRANSPARENT, mask=mask)
        # Delays are in centiseconds; rounding the running total keeps the whole loop at
        # image_count / frame_rate seconds. Browsers slow anything under 2 cs to 10 cs.
        i, fps = self._count, self._frame_rate
        delay = max(2, round(100 * (i + 1) / fps) - round(100 * i / fps))
        params: dict[str, int] = {"duration": delay * 10, "disposal": 2 if self._transparent else 1}
        if self._transparent:
            params["transparency"] = self._TRANSPARENT
        self._chunks.extend(GifImagePlugin.getdata(frame, offset=(0, 0), **params))
        self._count += 1

    def finish(self) -> bytes:
        return b"".join(self._chunks) + b";"


def render_turntable(
    shape: str,
    product_uuid: str,
    *,
    image_count: int,
    frame_rate: int,
    width: int,
    height: int,
    background: str | None = None,
    transparent: bool = False,
    include_gif: bool = False,
) -> tuple[bytes, bytes | None]:
    """(mp4, gif or None): the product turning through 360 degrees over image_count frames.

    Frame i shows the product at 360*i/image_count degrees, so the clip loops seamlessly.
    The MP4 has no alpha, so a transparent request only affects the GIF.
    """
    _check_positive(image_count=image_count, frame_rate=frame_rate)
    _check_positive(_MAX_VIDEO, width=width, height=height)
    bg = parse_color(background)
    scene = _Scene(build_mesh(shape, product_uuid), width, height)
    gif = _GifWriter(width, height, frame_rate, scene.palette(bg), bg, transparent) if include_gif else None
    alpha = gif is not None and transparent
    mp4 = _Mp4Writer(width, height, frame_rate)
    try:  # an error mid-clip must still release the encoder
        for i in range(image_count):
            image = scene.draw(360.0 * i / image_count, bg, alpha)
            if gif is not None:
                gif.add(image)
            if alpha:  # one RGBA render serves both: flatten it onto the background for the MP4
                flat = Image.new("RGB", image.size, bg)
                flat.paste(image, mask=image)
                image = flat
            mp4.add(image)
        video = mp4.finish()
    except BaseException:
        mp4.abort()
        raise
    return video, gif.finish() if gif is not None else None
