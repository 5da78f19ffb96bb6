"""Procedural low-poly 3D models of sandbox products: the geometry behind their files.

The sandbox has no real 3D assets, yet it must hand out an "uploaded model" and renders
that visibly belong to one product. So each shape is assembled from a few closed solids
(lofts of rings: boxes, cylinders, tubes) whose proportions and colours come from a RNG
seeded by the shape and product uuid: every product looks different, and the same
product always looks the same. Geometry only: ``media`` renders it and writes the .glb.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SHAPES", "Mesh", "build_mesh", "face_normals"]

Vec = tuple[float, float, float]
RGB = tuple[int, int, int]

NEUTRALS: dict[str, RGB] = {
    "white": (236, 236, 231),
    "black": (40, 40, 44),
    "grey": (128, 131, 138),
    "metal": (188, 190, 196),
    "wood": (136, 92, 56),
    "oak": (190, 150, 100),
    "gum": (170, 116, 66),
    "tan": (200, 166, 118),
}


@dataclass(frozen=True)
class Mesh:
    """Polygons wound counter-clockwise seen from outside; y is up, the front faces +z.

    Normalised so the footprint is centred on the y axis, the base rests on y=0 and every
    vertex lies within distance 1 of (0, height/2, 0): a camera can frame any shape alike.
    """

    vertices: tuple[Vec, ...]
    faces: tuple[tuple[int, ...], ...]
    face_material: tuple[int, ...]
    materials: tuple[RGB, ...]  # sRGB
    face_bias: tuple[float, ...]  # how much nearer to sort a face: decals must beat the surface under them


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Vec) -> Vec:
    n = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]) or 1.0
    return (a[0] / n, a[1] / n, a[2] / n)


def _ring(c: Vec, u: Vec, v: Vec, n: int, phase: float = 0.0) -> list[Vec]:
    """n points on the ellipse c + cos(t)u + sin(t)v (n=4, phase=pi/4 gives a rectangle)."""
    pts = []
    for i in range(n):
        t = phase + 2 * math.pi * i / n
        ct, st = math.cos(t), math.sin(t)
        pts.append((c[0] + ct * u[0] + st * v[0], c[1] + ct * u[1] + st * v[1], c[2] + ct * u[2] + st * v[2]))
    return pts


def _rect_y(x0: float, x1: float, z0: float, z1: float, y: float) -> list[Vec]:
    return [(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)]


def _signed_volume(verts: list[Vec], faces: list[tuple[int, ...]]) -> float:
    vol = 0.0
    for f in faces:
        a = verts[f[0]]
        for i in range(1, len(f) - 1):
            b, c = verts[f[i]], verts[f[i + 1]]
            vol += (
                a[0] * (b[1] * c[2] - b[2] * c[1])
                + a[1] * (b[2] * c[0] - b[0] * c[2])
                + a[2] * (b[0] * c[1] - b[1] * c[0])
            )
    return vol / 6.0


class _Builder:
    """Accumulates closed solids; each keeps its own vertices so parts never share edges."""

    def __init__(self) -> None:
        self.verts: list[Vec] = []
        self.faces: list[tuple[int, ...]] = []
        self.fmat: list[int] = []
        self.mats: list[RGB] = []
        self.bias: list[float] = []

    def material(self, rgb: RGB) -> int:
        self.mats.append(rgb)
        return len(self.mats) - 1

    def loft(
        self,
        rings: list[list[Vec]],
        mat: int,
        *,
        loop: bool = False,
        end_mat: int | None = None,
        end_bias: float = 0.0,
    ) -> None:
        """Skin rings of equal size into a solid, capping both ends unless a loop.

        The end cap may take its own material, and a sort bias for decals: a hand on a dial
        must draw after the dial however their centres happen to sort.
        """
        n, count, base = len(rings[0]), len(rings), len(self.verts)
        verts = [p for ring in rings for p in ring]
        faces: list[tuple[int, ...]] = []
        for k in range(count if loop else count - 1):
            a, b = base + k * n, base + (k + 1) % count * n
            faces.extend((a + i, a + (i + 1) % n, b + (i + 1) % n, b + i) for i in range(n))
        self.verts.extend(verts)
        if not loop:
            for k, ring in ((0, rings[0]), (count - 1, rings[-1])):
                first = base + k * n
                if n <= 4:
                    cap = tuple(first + i for i in range(n))
                    faces.append(cap[::-1] if k == 0 else cap)
                    continue
                # Wide caps become fans about their centre: the painter's sort works per face,
                # and one big cap sorted by its centre would paint over nearer neighbours.
                centre = len(self.verts)
                self.verts.append(tuple(sum(p[a] for p in ring) / n for a in range(3)))  # type: ignore[arg-type]
                for i in range(n):
                    tri = (first + i, first + (i + 1) % n, centre)
                    faces.append(tri[::-1] if k == 0 else tri)
        # Generators need not care which way their rings run: a negative enclosed volume means
        # the faces point inward, and flipping them all makes culling and lighting right.
        if _signed_volume(self.verts, faces) < 0:
            faces = [f[::-1] for f in faces]
        self.faces.extend(faces)
        self.fmat.extend([mat] * len(faces))
        self.bias.extend([0.0] * len(faces))
        if not loop:
            capped = 1 if n <= 4 else n
            self.fmat[-capped:] = [mat if end_mat is None else end_mat] * capped
            self.bias[-capped:] = [end_bias] * capped

    def box(self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, mat: int) -> None:
        self.loft([_rect_y(x0, x1, z0, z1, y0), _rect_y(x0, x1, z0, z1, y1)], mat)

    def cylinder(self, a: Vec, b: Vec, r: float, mat: int, n: int = 12, phase: float = 0.0) -> None:
        t = _unit(_sub(b, a))
        u = _unit(_cross(t, (0.0, 1.0, 0.0) if abs(t[1]) < 0.9 else (1.0, 0.0, 0.0)))
        v = _cross(t, u)
        ru, rv = (u[0] * r, u[1] * r, u[2] * r), (v[0] * r, v[1] * r, v[2] * r)
        self.loft([_ring(a, ru, rv, n, phase), _ring(b, ru, rv, n, phase)], mat)

    def tube(
        self, path: list[Vec], ref: Vec, ru: float, rv: float, mat: int, *, n: int = 6, loop: bool = False
    ) -> None:
        """A tube along a path in the plane normal to ref: ru across the plane, rv along ref."""
        rings = []
        m = len(path)
        for i, p in enumerate(path):
            prev = path[(i - 1) % m] if loop or i else p
            nxt = path[(i + 1) % m] if loop or i < m - 1 else p
            t = _unit(_sub(nxt, prev))
            u = _unit(_cross(t, ref))
            v = _cross(u, t)
            rings.append(
                _ring(p, (u[0] * ru, u[1] * ru, u[2] * ru), (v[0] * rv, v[1] * rv, v[2] * rv), n, math.pi / n)
            )
        self.loft(rings, mat, loop=loop)

    def finish(self) -> Mesh:
        xs, ys, zs = zip(*self.verts, strict=True)
        cx, cz, y0 = (min(xs) + max(xs)) / 2, (min(zs) + max(zs)) / 2, min(ys)
        half = (max(ys) - y0) / 2
        moved = [(x - cx, y - y0, z - cz) for x, y, z in self.verts]
        scale = 1.0 / max(math.sqrt(x * x + (y - half) ** 2 + z * z) for x, y, z in moved)
        verts = tuple((x * scale, y * scale, z * scale) for x, y, z in moved)
        return Mesh(
            verts, tuple(self.faces), tuple(self.fmat), tuple(self.mats), tuple(b * scale for b in self.bias)
        )


def _hue(
    rng: random.Random, s: tuple[float, float] = (0.35, 0.85), v: tuple[float, float] = (0.45, 0.9)
) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return (round(r * 255), round(g * 255), round(b * 255))


def _shade(rgb: RGB, k: float) -> RGB:
    return tuple(max(0, min(255, round(c * k))) for c in rgb)  # type: ignore[return-value]


def _neutral(rng: random.Random, *names: str) -> RGB:
    return NEUTRALS[rng.choice(names)]


# --- Shapes: rough real-world proportions in metres-ish units (finish() rescales anyway). ---


def _shoe(b: _Builder, rng: random.Random) -> None:
    length, width = 1.0, rng.uniform(0.34, 0.42)
    sole_h, ankle_h, toe_h = rng.uniform(0.04, 0.09), rng.uniform(0.26, 0.4), rng.uniform(0.09, 0.13)
    upper = b.material(_hue(rng))
    sole = b.material(_neutral(rng, "white", "black", "gum"))
    accent = b.material(_shade(b.mats[upper], 0.55) if rng.random() < 0.5 else _hue(rng))

    def half_width(c: float) -> float:  # c = cos of the outline angle: +1 at the toe, -1 at the heel
        return width / 2 * math.sqrt(max(0.0, 1 - c * c)) * (0.8 + 0.2 * c)

    outline = [
        (length / 2 * math.cos(t), half_width(math.cos(t)) * (1 if math.sin(t) >= 0 else -1))
        for t in (2 * math.pi * i / 18 for i in range(18))
    ]
    b.loft([[(x, y, z) for x, z in outline] for y in (0.0, sole_h)], sole)
    rings = []
    for i in range(8):
        u = 0.04 + 0.92 * i / 7  # heel to toe
        x = (u - 0.5) * length
        w = half_width(2 * x / length) * 0.92
        fall = min(1.0, max(0.0, (u - 0.3) / 0.6))
        h = toe_h + (ankle_h - toe_h) * (1 - fall * fall * (3 - 2 * fall))
        rings.append(
            [
                (x, sole_h + h * max(0.0, math.sin(a)), w * math.cos(a))
                for a in (2 * math.pi * k / 12 for k in range(12))
            ]
        )
    b.loft(rings, upper)
    b.box(
        -0.5 * length, -0.44 * length, sole_h + ankle_h * 0.55, sole_h + ankle_h * 1.05, -0.05, 0.05, accent
    )  # heel tab


def _chair(b: _Builder, rng: random.Random) -> None:
    sw, sh, st = rng.uniform(0.42, 0.55), rng.uniform(0.42, 0.5), rng.uniform(0.04, 0.08)
    sd, lt, bh, tilt = (
        sw * rng.uniform(0.9, 1.1),
        rng.uniform(0.018, 0.03),
        rng.uniform(0.35, 0.5),
        rng.uniform(0.0, 0.1),
    )
    frame, seat = b.material(_neutral(rng, "wood", "oak", "black", "metal")), b.material(_hue(rng))
    round_legs = rng.random() < 0.5
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (sw / 2 - lt * 1.5), sz * (sd / 2 - lt * 1.5)
            if round_legs:
                b.cylinder((x, 0.0, z), (x, sh - st, z), lt, frame, n=6)
            else:
                b.box(x - lt, x + lt, 0.0, sh - st, z - lt, z + lt, frame)
    b.box(-sw / 2, sw / 2, sh - st, sh, -sd / 2, sd / 2, seat)
    bt, z0 = rng.uniform(0.03, 0.06), -sd / 2
    b.loft(
        [
            _rect_y(-sw / 2, sw / 2, z0, z0 + bt, sh),
            _rect_y(-sw / 2 * 0.95, sw / 2 * 0.95, z0 - tilt, z0 + bt - tilt, sh + bh),
        ],
        seat if rng.random() < 0.6 else frame,
    )


def _sofa(b: _Builder, rng: random.Random) -> None:
    w, d, leg = rng.uniform(1.6, 2.3), rng.uniform(0.8, 0.95), rng.uniform(0.05, 0.12)
    seat_y, back_h = leg + rng.uniform(0.2, 0.28), rng.uniform(0.35, 0.55)
    arm_w, arm_h = rng.uniform(0.1, 0.22), rng.uniform(0.15, 0.3)
    fabric = _hue(rng, s=(0.2, 0.6))
    body, cushion = b.material(fabric), b.material(_shade(fabric, 1.15))
    legs = b.material(_neutral(rng, "wood", "black", "metal"))
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (w / 2 - 0.06), sz * (d / 2 - 0.06)
            b.box(x - 0.03, x + 0.03, 0.0, leg, z - 0.03, z + 0.03, legs)
    b.box(-w / 2 + arm_w, w / 2 - arm_w, leg, seat_y, -d / 2, d / 2, body)
    b.box(-w / 2 + arm_w, w / 2 - arm_w, leg, seat_y + back_h, -d / 2, -d / 2 + 0.2, body)
    for sx in (-1, 1):
        x0, x1 = sorted((sx * w / 2, sx * (w / 2 - arm_w)))
        b.box(x0, x1, leg, seat_y + arm_h, -d / 2, d / 2, body)
    count = rng.choice((2, 3))
    inner = w - 2 * arm_w
    for i in range(count):
        x0 = -w / 2 + arm_w + inner * i / count
        b.box(
            x0 + 0.01, x0 + inner / count - 0.01, seat_y, seat_y + 0.12, -d / 2 + 0.2, d / 2 - 0.02, cushion
        )


def _table(b: _Builder, rng: random.Random) -> None:
    h, t = rng.uniform(0.7, 0.78), rng.uniform(0.03, 0.06)
    top = b.material(_neutral(rng, "wood", "oak", "white", "black"))
    base = b.material(_neutral(rng, "black", "metal", "wood"))
    if rng.random() < 0.45:
        r = rng.uniform(0.45, 0.65)
        b.cylinder((0.0, h - t, 0.0), (0.0, h, 0.0), r, top, n=20)
        b.cylinder((0.0, 0.03, 0.0), (0.0, h - t, 0.0), rng.uniform(0.03, 0.06), base, n=8)
        b.cylinder((0.0, 0.0, 0.0), (0.0, 0.03, 0.0), r * 0.5, base, n=12)
        return
    w = rng.uniform(1.0, 1.8)
    d, lt = w * rng.uniform(0.45, 0.7), rng.uniform(0.025, 0.045)
    b.box(-w / 2, w / 2, h - t, h, -d / 2, d / 2, top)
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (w / 2 - 0.08), sz * (d / 2 - 0.08)
            b.box(x - lt, x + lt, 0.0, h - t, z - lt, z + lt, base)


def _bag(b: _Builder, rng: random.Random) -> None:
    w, h, d, taper = (
        rng.uniform(0.8, 1.0),
        rng.uniform(0.55, 0.75),
        rng.uniform(0.25, 0.35),
        rng.uniform(0.75, 0.95),
    )
    leather = _hue(rng) if rng.random() < 0.6 else _neutral(rng, "tan", "black", "wood")
    body, trim = b.material(leather), b.material(_shade(leather, 0.6))
    b.loft(
        [
            _rect_y(-w / 2, w / 2, -d / 2, d / 2, 0.0),
            _rect_y(-w / 2 * taper, w / 2 * taper, -d * 0.4, d * 0.4, h),
        ],
        body,
    )

    def front(y: float, out: float) -> list[Vec]:
        hw, zf = (w / 2) * (1 - (1 - taper) * y / h) * 0.85, d / 2 - 0.1 * d * y / h
        return [(-hw, y, zf - 0.01), (hw, y, zf - 0.01), (hw, y, zf + out), (-hw, y, zf + out)]

    b.loft([front(h * rng.uniform(0.4, 0.6), 0.025), front(h, 0.025)], trim)
    rh = w * taper * rng.uniform(0.22, 0.32)
    for z in (-d * 0.25, d * 0.25):
        arc = [
            (rh * math.cos(math.pi * i / 8), h - 0.02 + rh * 1.1 * math.sin(math.pi * i / 8), z)
            for i in range(9)
        ]
        b.tube(arc, (0.0, 0.0, 1.0), 0.02, 0.02, trim)


def _bottle(b: _Builder, rng: random.Random) -> None:
    r, h = rng.uniform(0.16, 0.24), rng.uniform(0.75, 1.0)
    neck, shoulder = r * rng.uniform(0.3, 0.45), h * rng.uniform(0.55, 0.68)
    glass = b.material(_hue(rng, s=(0.3, 0.8), v=(0.35, 0.75)))
    label, cap = b.material(_neutral(rng, "white", "tan", "black")), b.material(_hue(rng))
    lo, hi = h * rng.uniform(0.15, 0.25), shoulder * rng.uniform(0.75, 0.9)
    profile = [
        (r * 0.92, 0.0),
        (r, 0.03 * h),
        (r, lo),
        (r, hi),
        (r, shoulder),
        (r * 0.75, shoulder + 0.08 * h),
        (neck * 1.1, shoulder + 0.17 * h),
        (neck, shoulder + 0.2 * h),
        (neck, 0.92 * h),
    ]
    b.loft([_ring((0.0, y, 0.0), (rad, 0.0, 0.0), (0.0, 0.0, rad), 14) for rad, y in profile], glass)
    # The label band shares the body's ring heights so its faces sit squarely over the glass.
    b.loft([_ring((0.0, y, 0.0), (r * 1.02, 0.0, 0.0), (0.0, 0.0, r * 1.02), 14) for y in (lo, hi)], label)
    b.cylinder((0.0, 0.88 * h, 0.0), (0.0, h, 0.0), neck * 1.25, cap, n=14)


def _glasses(b: _Builder, rng: random.Random) -> None:
    a, gap = rng.uniform(0.22, 0.28), rng.uniform(0.07, 0.11)
    hb, yc, arm = a * rng.uniform(0.6, 0.85), 0.3, rng.uniform(0.7, 0.9)
    frame = b.material(_hue(rng) if rng.random() < 0.4 else _neutral(rng, "black", "wood", "metal"))
    lens = b.material(_hue(rng, s=(0.2, 0.5), v=(0.2, 0.4)))
    for sx in (-1, 1):
        cx = sx * (gap / 2 + a)
        rim = [
            (cx + a * math.cos(t), yc + hb * math.sin(t), 0.0)
            for t in (2 * math.pi * i / 14 for i in range(14))
        ]
        b.tube(rim, (0.0, 0.0, 1.0), 0.02, 0.02, frame, n=5, loop=True)
        b.loft(
            [_ring((cx, yc, z), (a * 0.97, 0.0, 0.0), (0.0, hb * 0.97, 0.0), 14) for z in (-0.006, 0.006)],
            lens,
        )
        x = sx * (gap / 2 + 2 * a)
        y = yc + hb * 0.3
        temple = [(x, y, 0.0), (x + sx * 0.02, y, -arm), (x + sx * 0.02, y - 0.12, -arm - 0.1)]
        b.tube(temple, (1.0, 0.0, 0.0), 0.012, 0.02, frame, n=4)
    bridge = [
        (gap / 2 * math.cos(math.pi * i / 4) * 1.1, yc + hb * 0.45 + 0.03 * math.sin(math.pi * i / 4), 0.0)
        for i in range(5)
    ]
    b.tube(bridge, (0.0, 0.0, 1.0), 0.015, 0.015, frame, n=5)


def _watch(b: _Builder, rng: random.Random) -> None:
    rc, tc, ry, rz = (
        rng.uniform(0.17, 0.23),
        rng.uniform(0.06, 0.1),
        rng.uniform(0.26, 0.32),
        rng.uniform(0.22, 0.3),
    )
    case = b.material(_neutral(rng, "metal", "black", "tan"))
    strap = b.material(_hue(rng) if rng.random() < 0.5 else _neutral(rng, "black", "wood", "metal"))
    dial, hands = b.material(_hue(rng, v=(0.2, 0.95))), b.material(_neutral(rng, "white", "black"))
    loop = [(0.0, ry * math.sin(t), rz * math.cos(t)) for t in (2 * math.pi * i / 18 for i in range(18))]
    b.tube(loop, (1.0, 0.0, 0.0), 0.015, rc * 0.55, strap, n=4, loop=True)
    n, phase = (16, 0.0) if rng.random() < 0.6 else (4, math.pi / 4)
    # The dial is the case's own recessed front cap: a separate disc would fight it in the painter's sort.
    b.loft(
        [
            _ring((0.0, 0.0, z), (r, 0.0, 0.0), (0.0, r, 0.0), n, phase)
            for z, r in ((rz, rc), (rz + tc, rc), (rz + tc - 0.004, rc * 0.85))
        ],
        case,
        end_mat=dial,
    )
    b.cylinder((rc * 0.95, 0.0, rz + tc / 2), (rc * 1.15, 0.0, rz + tc / 2), 0.025, case, n=6)
    for angle, length in ((rng.uniform(0, 2 * math.pi), rc * 0.5), (rng.uniform(0, 2 * math.pi), rc * 0.72)):
        u = (math.cos(angle) * length / 2, math.sin(angle) * length / 2, 0.0)
        v = (-math.sin(angle) * 0.012, math.cos(angle) * 0.012, 0.0)
        corners = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # from the dial's centre outwards along u
        b.loft(
            [
                [(u[0] * i + v[0] * j + u[0], u[1] * i + v[1] * j + u[1], z) for i, j in corners]
                for z in (rz + tc - 0.004, rz + tc + 0.004)
            ],
            hands,
            end_bias=0.1,
        )


def _cap(b: _Builder, rng: random.Random) -> None:
    r, hd, brim = 0.5, rng.uniform(0.4, 0.52), rng.uniform(0.3, 0.45)
    crown = b.material(_hue(rng))
    peak, button = b.material(b.mats[crown] if rng.random() < 0.5 else _hue(rng)), b.material(_hue(rng))
    b.loft(
        [
            _ring((0.0, hd * math.sin(p), 0.0), (r * math.cos(p), 0.0, 0.0), (0.0, 0.0, r * math.cos(p)), 16)
            for p in (math.pi / 2 * 0.94 * k / 6 for k in range(7))
        ],
        crown,
    )
    outline = [
        (r * 1.02 * math.cos(math.pi * i / 10), r * 0.1 + brim * math.sin(math.pi * i / 10) * 1.6)
        for i in range(11)
    ]
    b.loft([[(x, y, z) for x, z in outline] for y in (0.0, 0.025)], peak)
    b.cylinder((0.0, hd * 0.98, 0.0), (0.0, hd + 0.03, 0.0), 0.05, button, n=8)


def _box(b: _Builder, rng: random.Random) -> None:
    w, h, d = rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.8), rng.uniform(0.4, 0.9)
    card = _hue(rng) if rng.random() < 0.5 else NEUTRALS["tan"]
    body, extra = b.material(card), b.material(_hue(rng) if rng.random() < 0.5 else _shade(card, 0.7))
    b.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, body)
    if rng.random() < 0.5:  # shoebox-style lid
        b.box(-w / 2 - 0.01, w / 2 + 0.01, h * 0.8, h + 0.01, -d / 2 - 0.01, d / 2 + 0.01, extra)
    else:  # shipping box with a tape strip over the top
        b.box(-w / 2 - 0.003, w / 2 + 0.003, h * 0.85, h + 0.004, -0.04, 0.04, extra)


_GENERATORS: dict[str, Callable[[_Builder, random.Random], None]] = {
    "shoe": _shoe,
    "chair": _chair,
    "sofa": _sofa,
    "table": _table,
    "bag": _bag,
    "bottle": _bottle,
    "glasses": _glasses,
    "watch": _watch,
    "cap": _cap,
    "box": _box,
}
SHAPES: tuple[str, ...] = tuple(_GENERATORS)


def build_mesh(shape: str, product_uuid: str) -> Mesh:
    """The product's mesh: proportions and colours seeded by (shape, uuid), so stable across runs."""
    try:
        generate = _GENERATORS[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}") from None
    seed = hashlib.sha256(f"{shape}\0{product_uuid}".encode()).digest()
    builder = _Builder()
    generate(builder, random.Random(int.from_bytes(seed[:8], "big")))
    return builder.finish()


def face_normals(mesh: Mesh) -> list[Vec]:
    """Unit outward normals by Newell's method, robust for the slightly non-planar loft quads."""
    out = []
    verts = mesh.vertices
    for face in mesh.faces:
        nx = ny = nz = 0.0
        for i, vi in enumerate(face):
            x0, y0, z0 = verts[vi]
            x1, y1, z1 = verts[face[(i + 1) % len(face)]]
            nx += (y0 - y1) * (z0 + z1)
            ny += (z0 - z1) * (x0 + x1)
            nz += (x0 - x1) * (y0 + y1)
        out.append(_unit((nx, ny, nz)))
    return out
