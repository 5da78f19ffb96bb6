"""What a product's render files reveal about the spec that produced them, read from the bytes.

``reconciler import`` adopts renders made before the reconciler existed. To record them as
in sync it must know which spec they match, and the only honest witness is the files:
the still's container and pixel size, the MP4's decoded frames, frame rate and size, and
whether a GIF exists. File names, content types and platform metadata are not trusted.

Invariants:
- A field is ``known`` only when a file measured it; everything else is ``unknown``, never
  guessed. Backgrounds are always unknown: a white pixel may be a white background or a
  white product, and a transparent still may come from ``transparentBackground`` or from a
  PNG that simply has alpha.
- Values are JSON values in the manifest's terms (``JPG``, not Pillow's ``JPEG``; whole
  frame rates as ``int``), so ``compare`` is plain equality with the canonical spec.
- Pure functions of bytes or paths: no network, state or clock.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.errors import ReconcilerError

Source = bytes | Path | str | BinaryIO

STILL_FIELDS = ("imageFormat", "imageWidth", "imageHeight")
MP4_FIELDS = ("turntable.imageCount", "turntable.frameRate", "turntable.width", "turntable.height")
GIF_FIELD = "turntable.includeGif"
UNKNOWABLE = (
    "imageBackground",
    "transparentBackground",
    "turntable.background",
    "turntable.transparentBackground",
)
"""Fields no file can settle (see the module docstring): reported, taken from the manifest."""

CONTENT_TYPES = {
    "PNG": "image/png",
    "JPG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "MP4": "video/mp4",
}
"""Media types by ``sniff`` result, for a download whose server named none."""

# Pillow's names for the still formats the platform renders, in the manifest's spelling.
_STILL_FORMATS = {"PNG": "PNG", "JPEG": "JPG", "WEBP": "WEBP"}


class InspectError(ReconcilerError):
    """A downloaded file is not the image or video it should be (truncated, or another type)."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field where the files disagree with the manifest."""

    field: str
    platform: Any
    manifest: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "platform": self.platform, "manifest": self.manifest}


@dataclass
class InferredSpec:
    """The spec fields the files revealed (``known``, dotted path → value) and those they cannot."""

    known: dict[str, Any] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def compare(self, desired: dict[str, Any]) -> list[Mismatch]:
        """Known fields whose value differs from ``desired`` (a canonical spec), in field order."""
        out = []
        for path, value in self.known.items():
            wanted = get_path(desired, path)
            if wanted != value:
                out.append(Mismatch(path, value, wanted))
        return out

    def substitute(self, desired: dict[str, Any]) -> dict[str, Any]:
        """``desired`` with every known field replaced by what the files show: the spec the
        platform's renders were made with, as far as anyone can tell."""
        out = _deep_copy(desired)
        for path, value in self.known.items():
            _set_path(out, path, value)
        return out


def sniff(head: bytes) -> str | None:
    """The container type of a file from its first bytes: PNG, JPG, WEBP, GIF, MP4 or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[4:8] == b"ftyp":  # ISO base media (MP4/MOV): a size, then the 'ftyp' box
        return "MP4"
    return None


def sniff_file(path: Path) -> str | None:
    """``sniff`` on the first bytes of a file on disk."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16))
    except OSError as exc:
        raise InspectError(f"cannot read {path}: {exc.strerror}") from exc


def inspect_still(source: Source) -> dict[str, Any]:
    """imageFormat, imageWidth and imageHeight of an encoded still.

    Only the header is read: format and size are all a still reveals, and decoding an 8K
    image just to measure it would cost hundreds of megabytes.
    """
    # Lazy: Pillow loads only when a render file is read (import, refresh), not with every command.
    from PIL import Image, UnidentifiedImageError

    try:
        with _open(source) as fh, Image.open(fh) as img:
            fmt, (width, height) = img.format, img.size
    except UnidentifiedImageError as exc:
        raise InspectError(f"{_label(source)} is not an image Pillow can read") from exc
    except (OSError, ValueError) as exc:
        raise InspectError(f"{_label(source)} is not a readable image ({exc})") from exc
    return {
        "imageFormat": _STILL_FORMATS.get(fmt or "", fmt or "unknown"),
        "imageWidth": width,
        "imageHeight": height,
    }


def inspect_mp4(source: Source) -> dict[str, Any]:
    """turntable.imageCount (frames decoded, not the header's claim), frameRate, width, height."""
    # Lazy: PyAV (FFmpeg) loads only when a turntable is read (import, refresh): start-up time.
    import av

    with _open(source) as fh:
        # FFmpeg would happily read a JPEG as a one-frame "video": insist on an MP4 container.
        start = fh.tell()
        kind = sniff(fh.read(16))
        fh.seek(start)
    if kind != "MP4":
        raise InspectError(f"{_label(source)} is not an MP4 (it looks like {kind or 'no known format'})")
    try:
        with _open(source) as fh, av.open(fh, mode="r") as container:
            if not container.streams.video:
                raise InspectError(f"{_label(source)} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: decoding is the slow part of an import
            count = sum(1 for _ in container.decode(stream))
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            width, height = stream.codec_context.width, stream.codec_context.height
    except av.FFmpegError as exc:
        raise InspectError(f"{_label(source)} is not a readable video ({exc.strerror or exc})") from exc
    if count == 0:
        raise InspectError(f"{_label(source)} holds no video frames")
    return {
        "turntable.imageCount": count,
        "turntable.frameRate": _rate(rate),
        "turntable.width": width,
        "turntable.height": height,
    }


def infer_spec(
    *, still: Source | None = None, mp4: Source | None = None, gif: bool | None = None
) -> InferredSpec:
    """Infer what the given files reveal. ``gif``: whether the platform holds a GIF (None: not
    known, e.g. nothing of the turntable was found). A file that is absent leaves its fields unknown."""
    inferred = InferredSpec()
    if still is not None:
        inferred.known.update(inspect_still(still))
    if mp4 is not None:
        inferred.known.update(inspect_mp4(mp4))
    if gif is not None:
        inferred.known[GIF_FIELD] = gif
    revealed = (*STILL_FIELDS, GIF_FIELD, *MP4_FIELDS)
    inferred.unknown = [p for p in _order(revealed) if p not in inferred.known] + list(UNKNOWABLE)
    inferred.known = {p: inferred.known[p] for p in _order(inferred.known)}
    return inferred


def get_path(spec: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a nested spec, or None if absent."""
    node: Any = spec
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _deep_copy(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in spec.items()}


_FIELD_ORDER = (*STILL_FIELDS, GIF_FIELD, *MP4_FIELDS)


def _order(paths: Iterable[str]) -> list[str]:
    """Paths in the order a person reads a spec (still first, then the turntable)."""
    rank = {p: i for i, p in enumerate(_FIELD_ORDER)}
    return sorted(paths, key=lambda p: (rank.get(p, len(rank)), p))


def _rate(rate: Fraction | None) -> int | float | None:
    """A whole frame rate as int (as a manifest spells it); 29.97 and friends as float."""
    if rate is None:
        return None
    return int(rate) if rate.denominator == 1 else round(float(rate), 3)


class _open:
    """A binary file object for any ``Source``; closes only what it opened itself."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._owned: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if isinstance(self._source, bytes):
            return io.BytesIO(self._source)
        if isinstance(self._source, (str, Path)):
            try:
                self._owned = open(self._source, "rb")
            except OSError as exc:
                raise InspectError(f"cannot read {self._source}: {exc.strerror}") from exc
            return self._owned
        return self._source

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            self._owned.close()


def _label(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return "the file"
