"""Serving and signing files: byte ranges, streaming from disk, signed URLs, file types.

Shared by the signed download URL (the stand-in for the storage bucket), the comments route,
the model download and thumbnails, and the signed upload URLs.

Signed URLs carry ``expires`` (unix ms) and ``signature``: hex HMAC-SHA256, keyed with the
sandbox's persisted URL secret, over a purpose tag and the fields the URL grants, one per line.
Persisting the secret keeps URLs valid across a restart.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

# Content types by file extension: the platform names files by their original name.
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "svg": "image/svg+xml",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "pdf": "application/pdf",
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "usdz": "model/vnd.usdz+zip",
    "fbx": "application/octet-stream",
    "obj": "text/plain",
    "zip": "application/zip",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
}
# sign-url ``format`` values that name each stored content type (JPEG and JPG are one format).
FORMATS_BY_TYPE = {
    "image/png": {"PNG"},
    "image/jpeg": {"JPG", "JPEG"},
    "image/webp": {"WEBP"},
    "image/gif": {"GIF"},
    "image/bmp": {"BMP"},
    "image/tiff": {"TIFF", "TIF"},
    "image/svg+xml": {"SVG"},
    "video/mp4": {"MP4", "VIDEO"},
    "video/quicktime": {"MOV", "VIDEO"},
    "video/x-msvideo": {"AVI", "VIDEO"},
    "application/pdf": {"PDF"},
    "model/gltf-binary": {"GLB"},
}
_CHUNK = 1 << 20


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def content_type_for(name: str, given: str | None = None) -> str:
    """The content type to serve a file with: from its extension, else what the uploader said."""
    return (
        CONTENT_TYPES.get(extension(name))
        or (given if given and given != "application/octet-stream" else None)
        or "application/octet-stream"
    )


def signature(secret: bytes, *fields: str) -> str:
    return hmac.new(secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single byte range, None to send everything, "416" if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_s, _, last_s = header[len("bytes=") :].strip().partition("-")
    try:
        if first_s == "":  # suffix range: the last N bytes
            n = int(last_s)
            if n <= 0:
                return "416"
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None  # malformed: ignore the header, as RFC 9110 permits
    if first >= size:
        return "416"
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def serve_file(
    request: Request, path: Path, media_type: str, etag: str, extra_headers: dict[str, str] | None = None
) -> Response:
    """The file (or the single byte range asked for), streamed from disk in 1 MiB chunks."""
    size = path.stat().st_size
    # Blobs never change once written, so their id is a strong ETag; streaming from disk keeps
    # the first byte prompt and memory flat for large files.
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{etag}"', **(extra_headers or {})}
    span = parse_range(request.headers.get("range"), size)
    if span == "416":
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", status_code=416, headers=headers)
    first, last, status = 0, size - 1, 200
    if isinstance(span, tuple):
        first, last = span
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        _read_span(path, first, last), status_code=status, headers=headers, media_type=media_type
    )


def _read_span(path: Path, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last of a file, in 1 MiB chunks (starlette runs a sync iterator in a thread)."""
    with path.open("rb") as fh:
        fh.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
