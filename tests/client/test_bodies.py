"""The http.client body path of downloads (``client/bodies.py``) against a real HTTP server.

The far end is a small threaded HTTP/1.1 server on 127.0.0.1 that misbehaves on request (drops
the connection mid-body, redirects, gzips, closes kept-alive connections without saying so);
the client code is the real one, through ``VntanaClient.download`` with a client that built
its own httpx client, so the fast path is the one taken.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.client import RetryPolicy, VntanaClient
from reconciler.client.bodies import BodyPool
from reconciler.client.download import SignedUrlSource, download
from reconciler.errors import DownloadError
from reconciler.settings import ClientSettings

DATA = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB: read and hashed on one thread
BIG = hashlib.sha256(b"big").digest() * (10 << 15)  # 10 MiB: hashed on a second thread (OVERLAP_FROM)
FAST = RetryPolicy(max_attempts=3, max_elapsed=10, backoff_initial=0.01, backoff_max=0.02)


class Far(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FarServer

    def do_GET(self) -> None:
        far = self.server
        with far.lock:
            far.requests.append((self.path, self.headers.get("range")))
            far.connections.add(self.client_address)
        path = self.path.split("?")[0]
        rng = self.headers.get("range")
        data = BIG if path.startswith("/big") else DATA
        path = path.removeprefix("/big") or "/file"
        if path == "/redirect":
            self._head(302, {"Location": "/file", "Content-Length": "0"})
        elif path == "/gzip":
            body = gzip.compress(DATA)
            self._head(200, {"Content-Encoding": "gzip", "Content-Length": str(len(body))})
            self.wfile.write(body)
        elif path == "/drop" and rng is None:
            self._head(200, {"Content-Length": str(len(data)), "Accept-Ranges": "bytes"})
            self.wfile.write(data[: len(data) // 2 + 12_345])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path in ("/file", "/drop", "/stale"):
            start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
            headers = {"Content-Length": str(len(data) - start), "Accept-Ranges": "bytes"}
            if rng:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._head(206 if rng else 200, headers)
            self.wfile.write(data[start:])
            if path == "/stale":  # keep-alive promised, then the connection closed anyway
                self.close_connection = True
        else:
            self._head(404, {"Content-Length": "0"})

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class FarServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Far)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []
        self.connections: set[tuple[str, int]] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def far() -> Iterator[FarServer]:
    server = FarServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(far: FarServer) -> Iterator[VntanaClient]:
    settings = ClientSettings(api_url=far.base, token="pat", organization_uuid="org-1")
    with VntanaClient(settings, retry_policy=FAST) as c:
        assert isinstance(c._bodies, BodyPool)  # the client built its own httpx client
        yield c


def fetch(client: VntanaClient, url: str, sink: io.BytesIO | None = None):  # type: ignore[no-untyped-def]
    source = SignedUrlSource(lambda: url, client._session, "still.png", 3)
    return download(client._session, source, name="still.png", sink=sink, bodies=client._bodies)


def test_a_body_arrives_whole_and_hashed_and_the_connection_is_kept(
    far: FarServer, client: VntanaClient
) -> None:
    sink = io.BytesIO()
    first = fetch(client, f"{far.base}/file?signature=x", sink)
    second = fetch(client, f"{far.base}/file?signature=y")
    assert sink.getvalue() == DATA
    assert first.sha256 == second.sha256 == hashlib.sha256(DATA).hexdigest()
    assert first.size == len(DATA)
    assert len(far.connections) == 1  # kept alive and reused


def test_a_connection_dropped_mid_body_resumes_with_range(far: FarServer, client: VntanaClient) -> None:
    sink = io.BytesIO()
    result = fetch(client, f"{far.base}/drop?signature=x", sink)
    assert [r for _, r in far.requests] == [None, f"bytes={len(DATA) // 2 + 12_345}-"]
    assert sink.getvalue() == DATA and result.sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_large_body_hashed_on_a_second_thread_resumes_after_a_drop(
    far: FarServer, client: VntanaClient
) -> None:
    sink = io.BytesIO()
    result = fetch(client, f"{far.base}/big/drop?signature=x", sink)
    assert [r for _, r in far.requests] == [None, f"bytes={len(BIG) // 2 + 12_345}-"]
    assert sink.getvalue() == BIG and result.sha256 == hashlib.sha256(BIG).hexdigest()
    assert fetch(client, f"{far.base}/big/file?signature=y").size == len(BIG)


class FullDisk(io.BytesIO):
    def write(self, data: object) -> int:
        if self.tell() >= 4 << 20:
            raise OSError(28, "No space left on device")
        return super().write(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/file", "/big/file"])
def test_a_sink_that_fails_is_a_download_error_and_not_retried(
    far: FarServer, client: VntanaClient, path: str
) -> None:
    sink = FullDisk()
    sink.write(b"x" * (4 << 20))  # already full
    with pytest.raises(DownloadError, match=r"cannot write the download: .*No space left"):
        fetch(client, f"{far.base}{path}?signature=x", sink)
    assert len(far.requests) == 1


def test_a_kept_connection_the_server_closed_is_replaced_without_a_failure(
    far: FarServer, client: VntanaClient
) -> None:
    fetch(client, f"{far.base}/stale?signature=x")
    result = fetch(client, f"{far.base}/file?signature=y")
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert [p.split("?")[0] for p, _ in far.requests] == ["/stale", "/file"]
    assert client.stats.snapshot().retries == 0


def test_redirects_and_encoded_bodies_are_left_to_httpx(far: FarServer, client: VntanaClient) -> None:
    assert fetch(client, f"{far.base}/redirect?signature=x").sha256 == hashlib.sha256(DATA).hexdigest()
    assert fetch(client, f"{far.base}/gzip?signature=x").sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_server_that_is_not_there_is_a_download_error_after_retries(client: VntanaClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(DownloadError, match=r"cannot connect to 127\.0\.0\.1"):
            fetch(client, f"http://127.0.0.1:{port}/file?signature=x")


def test_a_proxy_variable_sends_the_download_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert not BodyPool.serves("http://storage.test/blob")
    monkeypatch.setenv("NO_PROXY", "storage.test")
    assert BodyPool.serves("http://storage.test/blob")
    monkeypatch.delenv("HTTP_PROXY")
    assert BodyPool.serves("https://storage.test/blob")
    assert not BodyPool.serves("ftp://storage.test/blob")
