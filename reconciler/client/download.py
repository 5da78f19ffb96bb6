"""Stream one attachment from its signed URL, hashing while streaming.

Why here and not in the executor: the download is where expiry, throttling, dropped
connections and size checks meet, and all of those are about the wire.

Decisions and invariants:
* The signed URL is fetched bare: no ``X-AUTH-TOKEN`` (it would leak the token to the storage
  host), ``Content-Type: application/octet-stream`` (the sign-url operation says it is
  mandatory) and ``Accept-Encoding: identity`` so that the bytes hashed are the stored bytes.
* The sha256 is computed over exactly the bytes written to the sink, in one pass, over the
  chunks as the socket delivers them (``iter_raw``). Re-chunking to 1 MiB looked attractive
  but httpx's chunker copies every byte again: on loopback it halved throughput. Only a body
  the server encoded despite ``identity`` is decoded, in 1 MiB chunks.
* Measured and left out (bench/apply_scale.py, 256 MiB over loopback, 2 cores): hashing in a
  second thread fed by a bounded queue. Per 64 KiB chunk it was slower; in 1 MiB batches it
  sped one lone download from a fast server by ~20% but slowed two parallel downloads by ~20%
  and the sandbox's by ~5% (the other core is busy serving, and the executor downloads in
  parallel). Socket reads of 1 MiB instead of httpcore's 64 KiB gave ~+50% from a fast server,
  but that size is no public httpx/httpcore setting, and over TLS a read yields one 16 KiB
  record anyway. Against the sandbox the server is the limit (it spends ~1.2 s of CPU per
  256 MiB), not this loop.
* An expired URL (400/401/403 from the storage) is signed again and the fetch repeated, at most
  ``max_resigns`` times. Throttling, 5xx and dropped connections are retried with the client's
  backoff policy. After a dropped connection the download resumes with ``Range`` when the
  server advertised ``Accept-Ranges: bytes``; otherwise it restarts, rewinding the sink (a
  sink that cannot seek cannot be restarted: DownloadError).
* The bytes received must equal ``Content-Length`` (and the ``Content-Range`` total), else
  DownloadError. Signed-URL queries never reach a log line or a message (``scrub_url``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import BinaryIO

import httpx

from reconciler.errors import ApiError, DownloadError, TransientApiError

from .errors import TRANSPORT_ERRORS, describe_status, error_for_response, error_for_transport
from .redact import scrub_url
from .retry import AlreadyRetried, Idempotency, run_with_retries
from .session import Session
from .wire import DownloadResult

log = logging.getLogger("reconciler.client")

CHUNK_SIZE = 1 << 20  # 1 MiB, for decoded (Content-Encoding) bodies only
ENDPOINT = "GET (signed download URL)"
_EXPIRED = (400, 401, 403)  # GCS says 400 ExpiredToken, S3 says 403 AccessDenied


class _Progress:
    """What survives between attempts: the hash so far, the bytes written, the current URL."""

    def __init__(self, url: str, sink: BinaryIO | None) -> None:
        self.url = url
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.content_type: str | None = None
        self.ranges_ok = False
        self.resigned = 0
        self.start_pos = sink.tell() if sink is not None and _seekable(sink) else None

    def restart(self, name: str) -> None:
        if self.received and self.sink is not None:
            if self.start_pos is None:
                raise DownloadError(f"{name}: the connection dropped and the sink cannot be rewound to restart")
            self.sink.seek(self.start_pos)
            self.sink.truncate()
        self.hasher = hashlib.sha256()
        self.received = 0


def _seekable(sink: BinaryIO) -> bool:
    try:
        return bool(sink.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def download(
    session: Session,
    sign: Callable[[], str],
    *,
    name: str,
    sink: BinaryIO | None,
    max_resigns: int = 3,
) -> DownloadResult:
    """Fetch ``sign()``'s URL into ``sink`` (or only hash it); ``name`` labels errors and logs."""
    progress = _Progress(sign(), sink)

    def attempt() -> DownloadResult:
        try:
            return _fetch(session, progress, name)
        except _Expired as exc:
            if progress.resigned >= max_resigns:
                raise DownloadError(
                    f"{name}: the signed URL was refused {progress.resigned + 1} times "
                    f"({describe_status(exc.status, [])}), even freshly signed"
                ) from None
            progress.resigned += 1
            session.stats.add("resigned_urls")
            log.info("%s: signed URL refused (HTTP %d, expired?); signing again", name, exc.status)
            try:
                progress.url = sign()
            except ApiError as sign_error:  # signing has had its own retries
                raise AlreadyRetried(sign_error) from None
            # Retry at once: a fresh URL is not a reason to back off.
            raise TransientApiError("signed URL expired", retry_after=0.0) from None

    # A long transfer must not eat the retry time budget, which is meant for waiting: downloads
    # are bounded by the attempt count (and each wait by the backoff cap / Retry-After).
    policy = dataclasses.replace(session.policy, max_elapsed=math.inf)
    try:
        return run_with_retries(
            attempt, policy=policy, idempotency=Idempotency.SAFE, what=f"download {name}",
            stats=session.stats, sleep=session.sleep,
        )
    except ApiError as exc:
        raise DownloadError(f"{name}: download failed: {exc.message}") from exc


class _Expired(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _fetch(session: Session, p: _Progress, name: str) -> DownloadResult:
    """One GET of the signed URL, continuing ``p``; raises TransientApiError to be retried."""
    headers = {"Content-Type": "application/octet-stream", "Accept-Encoding": "identity"}
    resuming = p.received > 0 and p.ranges_ok
    if resuming:
        headers["Range"] = f"bytes={p.received}-"
    elif p.received:
        p.restart(name)
    shown = scrub_url(p.url)
    session.stats.count_request(ENDPOINT)
    started = time.monotonic()
    try:
        with session.http.stream("GET", p.url, headers=headers, follow_redirects=True) as response:
            session.stats.count_status(response.status_code)
            log.debug("GET %s -> %d (%s)", shown, response.status_code, "resume" if resuming else "start")
            if response.status_code in _EXPIRED:
                raise _Expired(response.status_code)
            if response.status_code == 429 or response.status_code >= 500:
                response.read()
                raise error_for_response(response, method="GET", path=shown)
            if response.status_code == 416 and resuming and p.received == p.total:
                # Everything had arrived before the connection dropped: nothing left to fetch.
                return DownloadResult(sha256=p.hasher.hexdigest(), size=p.received,
                                      content_type=p.content_type, resigned=p.resigned)
            if response.status_code not in (200, 206):
                raise DownloadError(f"{name}: {describe_status(response.status_code, [])} from {shown}")
            if response.status_code == 200 and p.received:
                p.restart(name)  # the server ignored our Range: start over
            elif response.status_code == 206 and not _range_starts_at(response, p.received):
                p.restart(name)
                raise TransientApiError("unexpected Content-Range; restarting", retry_after=0.0)
            _note_headers(p, response)
            expected = _int_header(response, "content-length")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            # Identity bodies are read as they arrive: httpx's re-chunking to a fixed size
            # copies every byte once more (measured ~1.8x slower on loopback than raw reads).
            if encoded or response.is_stream_consumed:  # (an in-memory body: a test transport)
                chunks = response.iter_bytes(CHUNK_SIZE)
            else:
                chunks = response.iter_raw()
            this_response = 0
            for chunk in chunks:
                p.hasher.update(chunk)
                if p.sink is not None:
                    p.sink.write(chunk)
                p.received += len(chunk)
                this_response += len(chunk)
                session.stats.add("bytes_downloaded", len(chunk))
            # Content-Length counts encoded bytes; we asked for identity, but if the server
            # encoded anyway, compare what came over the wire instead of the decoded bytes.
            wire_bytes = response.num_bytes_downloaded if encoded else this_response
    except TRANSPORT_ERRORS as exc:
        log.debug("GET %s -> %s after %.3fs, %d bytes so far", shown, type(exc).__name__,
                  time.monotonic() - started, p.received)
        raise error_for_transport(exc, method="GET", path=shown) from exc
    except OSError as exc:  # the sink failed (disk full, closed file): not worth retrying
        raise DownloadError(f"{name}: cannot write the download: {exc}") from exc
    if expected is not None and wire_bytes != expected:
        raise DownloadError(
            f"{name}: received {wire_bytes} bytes but Content-Length said {expected} ({shown})"
        )
    if p.total is not None and p.received != p.total:
        raise DownloadError(f"{name}: received {p.received} bytes of {p.total} ({shown})")
    log.debug("GET %s: %d bytes in %.3fs", shown, p.received, time.monotonic() - started)
    return DownloadResult(
        sha256=p.hasher.hexdigest(), size=p.received, content_type=p.content_type, resigned=p.resigned
    )


def _note_headers(p: _Progress, response: httpx.Response) -> None:
    if response.status_code == 200:
        p.content_type = response.headers.get("content-type")
        p.ranges_ok = response.headers.get("accept-ranges", "").lower() == "bytes"
        p.total = _int_header(response, "content-length")
    else:  # 206: "bytes start-end/total"
        total = response.headers.get("content-range", "").rpartition("/")[2]
        p.total = int(total) if total.isdigit() else p.total
        p.content_type = p.content_type or response.headers.get("content-type")


def _range_starts_at(response: httpx.Response, offset: int) -> bool:
    unit_range = response.headers.get("content-range", "")
    try:
        start = int(unit_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return False
    return start == offset


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.strip().isdigit() else None
