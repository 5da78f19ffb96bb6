"""File GETs over the standard library's ``http.client``, read straight into reused buffers.

Why not httpx for these: httpcore reads the socket 64 KiB at a time and every byte passes
through h11's receive buffer, so a body is copied three times and parsed per 64 KiB event;
against the sandbox that cost ~0.3 s of client CPU per 256 MiB beyond hashing
(bench/download_speed.py). ``http.client.HTTPResponse.readinto`` reads a Content-Length or
chunked body from the socket into the caller's buffer (one copy, by the kernel), in 4 MiB
pieces that ``hashlib`` hashes with the GIL released; from 8 MiB on, a second thread hashes
one piece while this one reads the next (``Answer.feed``). Measured in the same runs and not
kept: urllib3 2.x (``read(amt)`` allocates and copies each piece over ``http.client``) and
pycurl (a copy into a ``bytes`` per write callback, and a C dependency); see bench/README.md.

Used only for the two download routes' GET, and only where httpx would have sent the request
the same way: the client built its own httpx client (no injected transport: tests that fake
the far end with ``httpx.MockTransport`` keep httpx end to end) and no proxy variable applies
to the URL. A redirect or an encoded body is handed back to httpx (``Fallback``), which
follows and decodes.
TLS uses ``httpx.create_ssl_context()``: the same certificates and ``SSL_CERT_*`` variables.

Connections are kept alive and reused, a few per host (a render is often a few kilobytes, and
a TLS handshake per file would cost more than its bytes). A kept connection the server closed
meanwhile fails on its first use; that request is sent once more on a new connection.
Network failures are raised as httpx's exception classes, so the caller maps them as it maps
httpx's own (``TRANSPORT_ERRORS``).
"""

from __future__ import annotations

import http.client
import queue
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

BUFFER_SIZE = 4 << 20
"""Bytes per socket read and per hash update: large enough that the per-read Python cost
vanishes, small enough to stay in the last-level cache's neighbourhood (1 MiB was ~15% slower)."""
ERROR_BODY_LIMIT = 1 << 20
"""An error answer's body is read up to this (its codes decide what happens next)."""
IDLE_PER_HOST = 8
OVERLAP_FROM = 8 << 20
"""Bodies from this size on are hashed on a second thread while the socket is read (``feed``);
smaller ones are not worth a thread."""
PIPELINE_BUFFERS = 3
"""Buffers in rotation while overlapping: one being read into, one being hashed, one spare."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
T = TypeVar("T")


class Fallback(Exception):
    """This answer needs httpx (a redirect to follow, a body to decode); nothing was consumed."""


class _Conn:
    __slots__ = ("buffers", "conn", "key")

    def __init__(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        self.key = key
        self.conn = conn
        self.buffers: list[bytearray] = []  # reused by every body read on this connection

    def buffer(self, i: int) -> bytearray:
        while len(self.buffers) <= i:
            self.buffers.append(bytearray(BUFFER_SIZE))
        return self.buffers[i]


class Answer:
    """An answer's status and headers (as an ``httpx.Response`` without a body, so the caller's
    checks read it as they read httpx's), and its body as views of the reused buffer."""

    def __init__(self, pool: BodyPool, held: _Conn, raw: http.client.HTTPResponse, url: str) -> None:
        self._pool = pool
        self._held: _Conn | None = held
        self._raw = raw
        self._url = url
        request = httpx.Request("GET", url)
        self.response = httpx.Response(raw.status, headers=raw.getheaders(), request=request)
        self.num_bytes = 0

    def read_error_body(self) -> httpx.Response:
        """The answer with its (small) body read: for status checks and error codes."""
        body = self._wrap(lambda: self._raw.read(ERROR_BODY_LIMIT))
        return httpx.Response(
            self._raw.status,
            headers=self._raw.getheaders(),
            content=body,
            request=self.response.request,
        )

    def feed(self, consume: Callable[[memoryview], None]) -> None:
        """Read the whole body, handing each piece to ``consume`` in order (a view of a reused
        buffer, valid only during the call). From ``OVERLAP_FROM`` bytes on, ``consume`` runs
        on a second thread while this one reads the next piece: hashlib and file writes release
        the GIL, so the socket keeps draining while a piece is hashed. Whatever ``consume`` or
        the socket raises is raised here, after every piece read before it was consumed."""
        held = self._held
        assert held is not None
        if (self._raw.length or 0) < OVERLAP_FROM:
            buffer = held.buffer(0)
            view = memoryview(buffer)
            while n := self._readinto(buffer):
                consume(view[:n])
            return
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        for i in range(PIPELINE_BUFFERS):
            free.put(held.buffer(i))
        failed: list[BaseException] = []

        def consumer() -> None:
            while (item := full.get()) is not None:
                buffer, n = item
                if not failed:
                    try:
                        consume(memoryview(buffer)[:n])
                    except BaseException as exc:  # raised on the reading thread below
                        failed.append(exc)
                free.put(buffer)

        worker = threading.Thread(target=consumer, name="download-hash", daemon=True)
        worker.start()
        try:
            while not failed:
                buffer = free.get()
                n = self._readinto(buffer)
                if not n:
                    break
                full.put((buffer, n))
        finally:
            full.put(None)
            worker.join()
        if failed:
            raise failed[0]

    def _readinto(self, buffer: bytearray) -> int:
        n = self._wrap(lambda: self._raw.readinto(buffer))
        if not n and self._raw.length:  # http.client ends quietly when the peer closes early
            raise httpx.ReadError(
                f"connection closed with {self._raw.length} bytes of the body still to come",
                request=self.response.request,
            )
        self.num_bytes += n
        return n

    def _wrap(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                f"timed out reading {_host(self._url)}", request=self.response.request
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(_describe(exc), request=self.response.request) from exc

    def close(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        # Reusable only when the body was read to its end and the server keeps the connection.
        if self._raw.isclosed() and not self._raw.will_close and held.conn.sock is not None:
            self._pool._release(held)
        else:
            self._raw.close()
            held.conn.close()

    def __enter__(self) -> Answer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BodyPool:
    """Kept-alive ``http.client`` connections by (scheme, host, port); thread-safe."""

    def __init__(self, *, timeout: float, connect_timeout: float) -> None:
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    @staticmethod
    def serves(url: str) -> bool:
        """Whether this URL goes the way httpx would send it without a proxy."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        proxies = urllib.request.getproxies()
        if not (proxies.get(parts.scheme) or proxies.get("all")):
            return True
        return bool(urllib.request.proxy_bypass(parts.hostname))

    def get(self, url: str, headers: dict[str, str]) -> Answer:
        """Send the GET; the answer's body is not read yet. Raises Fallback for a redirect or an
        encoded body, httpx's exceptions for network failures."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        request = httpx.Request("GET", url)
        for reused in (True, False):
            held = self._take(key) if reused else None
            if reused and held is None:
                continue
            if held is None:
                held = self._connect(key, request)
            try:
                held.conn.request("GET", target, headers=headers)
                raw = held.conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                held.conn.close()
                if reused and not isinstance(exc, TimeoutError):
                    continue  # the server closed the kept connection meanwhile: a new one
                if isinstance(exc, TimeoutError):
                    raise httpx.ReadTimeout(f"timed out waiting for {key[1]}", request=request) from exc
                raise httpx.ReadError(_describe(exc), request=request) from exc
            answer = Answer(self, held, raw, url)
            encoding = (raw.getheader("content-encoding") or "identity").strip().lower()
            if raw.status in _REDIRECTS or encoding != "identity":
                raw.close()
                held.conn.close()
                raise Fallback
            return answer
        raise AssertionError("unreachable")  # the second round always returns or raises

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for held in conns:
                held.conn.close()

    def _connect(self, key: tuple[str, str, int], request: httpx.Request) -> _Conn:
        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            with self._lock:
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()
                context = self._ssl
            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(f"timed out connecting to {host}", request=request) from exc
        except OSError as exc:
            conn.close()
            raise httpx.ConnectError(_describe(exc), request=request) from exc
        assert conn.sock is not None
        conn.sock.settimeout(self._timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(key, conn)

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        with self._lock:
            conns = self._idle.get(key)
            return conns.pop() if conns else None

    def _release(self, held: _Conn) -> None:
        with self._lock:
            conns = self._idle.setdefault(held.key, [])
            if not self._closed and len(conns) < IDLE_PER_HOST:
                conns.append(held)
                return
        held.conn.close()


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the server"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
