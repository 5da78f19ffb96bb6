"""The storage listener: signed download URLs served with ``os.sendfile``, beside the API.

Why a listener of its own: a signed URL names the storage bucket, not the API (GCS or S3 on
the real platform), and served through uvicorn each byte of a render was read into Python,
framed by h11 and copied into asyncio's buffer: ~0.17 s of sandbox CPU per 256 MiB, as much
as the client's sha256, on a 2-core machine where both compete (bench/download_speed.py).
``socket.sendfile`` hands the file to the kernel instead (~0.03 s). The checks are the API
route's own (``routes_files.signed_download``): signature, expiry, the mandatory
``Content-Type``, a single ``Range``; the route stays in the app for sandboxes without a
listener. HTTP/1.1 with keep-alive; API fault injection never applies here, as on the route.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reconciler.sandbox.error_answers import error_body
from reconciler.sandbox.routes_files import signed_download
from reconciler.sandbox.storage import parse_range

PREFIX = "/sandbox-storage/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        ctx = self.server.ctx
        parts = urlsplit(self.path)
        ctx.requests.add(self.command, parts.path)
        if not parts.path.startswith(PREFIX):
            self._error(404, "NOT_FOUND")
            return
        query = parse_qs(parts.query)
        blob_id = unquote(parts.path[len(PREFIX) :])
        found = signed_download(
            ctx,
            blob_id,
            query.get("expires", [""])[0],
            query.get("signature", [""])[0],
            self.headers.get("content-type", ""),
        )
        if isinstance(found[0], int):
            self._error(found[0], str(found[1]))
            return
        path, row = found
        assert isinstance(path, Path) and isinstance(row, dict)
        with path.open("rb") as fh:
            size = path.stat().st_size
            span = parse_range(self.headers.get("range"), size)
            self.send_response(416 if span == "416" else 206 if isinstance(span, tuple) else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{blob_id}"')
            if span == "416":
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = span if isinstance(span, tuple) else (0, size - 1)
            if isinstance(span, tuple):
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Content-Type", row["content_type"])
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            if body and last >= first:
                self.connection.sendfile(fh, offset=first, count=last - first + 1)

    def _error(self, status: int, code: str) -> None:
        data = json.dumps(error_body([code], self.server.ctx.readings)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # no access log, as uvicorn's is off
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ctx: Any


class StorageServer:
    """Serves ``/sandbox-storage/<blobId>?expires=&signature=`` for one sandbox context."""

    def __init__(self, ctx: Any, host: str, port: int = 0) -> None:
        server = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        self._server = server((host, port), _Handler)
        self._server.ctx = ctx
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="sandbox-storage",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
