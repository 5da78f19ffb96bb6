"""Stream one attachment from one of VNTANA's two download routes, hashing while streaming.

Why here and not in the executor: the download is where expiry, throttling, dropped
connections and size checks meet, and all of those are about the wire.

The two routes (VNTANA's documents name both; which one serves renders is not settled):
* ``SignedUrlSource``: ``POST /v1/storage/download/clients/sign-url`` with the attachment's
  ``uuid`` as ``entityUuid`` and an ``Origin`` header (download-model.md; ``MISSING_ORIGIN`` is
  a documented refusal), then a GET of the signed location. That GET is bare: no
  ``X-AUTH-TOKEN`` (it would leak the token to the storage host), and
  ``Content-Type: application/octet-stream`` (the operation says it is mandatory).
* ``CommentsSource``: ``GET /v1/comments/images/{blobId}?clientUuid=`` with the token, which
  answers the bytes themselves (upload-attachments.md; VNTANA's own client downloads renders
  this way).
A source that cannot serve a file at all (the route is missing, refuses the store type, answers
JSON instead of bytes) raises ``RouteUnavailable`` before a byte is written, so the caller can
try the other route; anything later is a ``DownloadError``.

Decisions and invariants:
* ``Accept-Encoding: identity`` so that the bytes hashed are the stored bytes. The sha256 is
  computed over exactly the bytes written to the sink, in one pass, over the pieces as they
  are read. The GET goes over ``bodies.BodyPool`` (http.client, 4 MiB reads into reused
  buffers, hashing overlapped from 8 MiB on) where the client owns its transport; otherwise
  (an injected transport, a proxy, a redirect, an encoded body) over httpx, whose chunks are
  taken as the socket delivers them (``iter_raw``: re-chunking copies every byte again). Only
  a body the server encoded despite ``identity`` is decoded, in 1 MiB chunks; lengths and
  ranges are then not checked against it (they count encoded bytes).
* Measured (bench/download_speed.py, 256 MiB from the sandbox process, 2 shared cores): httpx
  spent ~0.3 s of client CPU per 256 MiB beyond hashing, http.client ~0.01-0.05 s. Hashing on
  a second thread did not pay while the sandbox served through uvicorn (the other core was
  busy serving); since it serves signed URLs with sendfile it does.
* A refused fetch is renewed and repeated at most ``max_resigns`` times: an expired signed URL
  (400/401/403 from the storage) is signed again; a dead token on the comments route gets the
  session's one fresh login. Throttling (429 or ``API_RATE_LIMIT_EXCEEDED``), 5xx and dropped
  connections are retried with the client's backoff policy. After a dropped connection the
  download resumes with ``Range`` when the server advertised ``Accept-Ranges: bytes``;
  otherwise it restarts, rewinding the sink (a sink that cannot seek cannot be restarted:
  DownloadError).
* The bytes received must equal ``Content-Length`` (and the ``Content-Range`` total), else
  DownloadError. Signed-URL queries never reach a log line or a message (``scrub_url``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from reconciler.errors import ApiError, DownloadError, PermanentApiError, TransientApiError

from .bodies import Answer, BodyPool, Fallback
from .errors import (
    TRANSPORT_ERRORS,
    TokenRejected,
    describe_status,
    envelope_codes,
    error_for_response,
    error_for_transport,
    is_throttle,
    json_or_none,
    parse_retry_after,
    token_rejection,
)
from .redact import scrub_url
from .retry import AlreadyRetried, Idempotency, run_with_retries
from .session import DEFAULT_429_PAUSE, Session
from .wire import DownloadResult

log = logging.getLogger("reconciler.client")

CHUNK_SIZE = 1 << 20  # 1 MiB, for decoded (Content-Encoding) bodies only
ENDPOINT = "GET (signed download URL)"
COMMENTS_ENDPOINT = "GET /v1/comments/images/{blobId}"
_EXPIRED = (400, 401, 403)  # GCS says 400 ExpiredToken, S3 says 403 AccessDenied
PROBE_BYTES = 16
"""What ``probe`` reads of a file: enough for its magic number, no more."""


class RouteUnavailable(Exception):
    """This route does not serve this file; nothing was written. ``reason`` says what it answered."""

    def __init__(self, route: str, reason: str) -> None:
        super().__init__(f"{route}: {reason}")
        self.route = route
        self.reason = reason


class Source(Protocol):
    """Where one file's bytes come from, and how to renew access to them."""

    route: str
    endpoint: str

    def start(self) -> None:
        """Prepare the first fetch (sign the URL); RouteUnavailable if the route refuses the file."""

    def url(self) -> str: ...

    def headers(self) -> dict[str, str]: ...

    def refused(self, status: int, codes: list[str], *, received: int) -> None:
        """A 4xx answer before any byte of it was read: renew access (return, and the fetch is
        repeated) or raise RouteUnavailable (when ``received`` is 0) / DownloadError."""


class SignedUrlSource:
    """``POST /v1/storage/download/clients/sign-url``, then a bare GET of the location."""

    route = "signed-url"
    endpoint = ENDPOINT

    def __init__(self, sign: Callable[[], str], session: Session, name: str, max_resigns: int) -> None:
        self._sign = sign
        self._session = session
        self._name = name
        self._max = max_resigns
        self._url = ""
        self.renewed = 0

    def start(self) -> None:
        try:
            self._url = self._sign()
        except PermanentApiError as exc:  # NOT_SUPPORTED_STORE_TYPE, INVALID_STORE_TYPE, MISSING_ORIGIN...
            raise RouteUnavailable(
                self.route, f"sign-url refused ({describe_status(exc.status, exc.codes)})"
            ) from exc

    def url(self) -> str:
        return self._url

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/octet-stream", "Accept-Encoding": "identity"}

    def refused(self, status: int, codes: list[str], *, received: int) -> None:
        if status not in _EXPIRED:
            raise DownloadError(f"{self._name}: {describe_status(status, [])} from {scrub_url(self._url)}")
        if self.renewed >= self._max:
            raise DownloadError(
                f"{self._name}: the signed URL was refused {self.renewed + 1} times "
                f"({describe_status(status, [])}), even freshly signed"
            )
        self.renewed += 1
        self._session.stats.add("resigned_urls")
        log.info("%s: signed URL refused (HTTP %d, expired?); signing again", self._name, status)
        try:
            self._url = self._sign()
        except ApiError as sign_error:  # signing has had its own retries
            raise AlreadyRetried(sign_error) from None


class CommentsSource:
    """``GET /v1/comments/images/{blobId}?clientUuid=`` with the session's token."""

    route = "comments"
    endpoint = COMMENTS_ENDPOINT

    def __init__(self, session: Session, blob_id: str, client_uuid: str, name: str, max_resigns: int) -> None:
        self._session = session
        self._name = name
        self._max = max_resigns
        # A blob id is "<uuid>.<ext>" (upload-attachments.md): one path segment, encoded.
        self._url = (
            f"{session.settings.api_url}/v1/comments/images/{quote(blob_id, safe='')}"
            f"?clientUuid={quote(client_uuid, safe='')}"
        )
        self._token: SecretStr | None = None
        self._generation = 0
        self.renewed = 0

    def start(self) -> None:
        try:
            self._token, self._generation = self._session.current_token()
        except ApiError as exc:
            raise AlreadyRetried(exc) from None

    def url(self) -> str:
        return self._url

    def headers(self) -> dict[str, str]:
        assert self._token is not None
        return {
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "X-AUTH-TOKEN": f"Bearer {self._token.get_secret_value()}",
        }

    def refused(self, status: int, codes: list[str], *, received: int) -> None:
        what = describe_status(status, codes)
        certain = token_rejection(status, codes)
        if certain is not None and self.renewed < self._max:
            self.renewed += 1
            rejection = TokenRejected(
                what, certain=certain, status=status, codes=codes, method="GET", path=COMMENTS_ENDPOINT
            )
            assert self._token is not None
            try:
                self._token = self._session.replace_token(
                    rejection, self._token, self._generation, method="GET", path=COMMENTS_ENDPOINT
                )
            except PermanentApiError as exc:  # the token is fine: this route refuses us
                if received:
                    raise DownloadError(f"{self._name}: {exc.message}") from exc
                raise RouteUnavailable(self.route, what) from exc
            self._generation = self._session.current_token()[1]
            return
        if received:
            raise DownloadError(f"{self._name}: {what} from the comments route after {received} bytes")
        raise RouteUnavailable(self.route, what)


class _Renew(Exception):
    """Access was renewed: fetch again at once."""


class _Progress:
    """What survives between attempts: the hash so far, the bytes written."""

    def __init__(self, sink: BinaryIO | None) -> None:
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.content_type: str | None = None
        self.ranges_ok = False
        self.start_pos = sink.tell() if sink is not None and _seekable(sink) else None

    def restart(self, name: str) -> None:
        if self.received and self.sink is not None:
            if self.start_pos is None:
                raise DownloadError(
                    f"{name}: the connection dropped and the sink cannot be rewound to restart"
                )
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
    source: SignedUrlSource | CommentsSource,
    *,
    name: str,
    sink: BinaryIO | None,
    bodies: BodyPool | None = None,
) -> DownloadResult:
    """Fetch ``source``'s file into ``sink`` (or only hash it); ``name`` labels errors and logs.
    With ``bodies``, the GET goes over its ``http.client`` connections where it can (bodies.py).

    Raises RouteUnavailable (nothing written) when the route does not serve the file, else
    DownloadError when the bytes cannot be fetched intact."""
    progress = _Progress(sink)

    def attempt() -> DownloadResult:
        try:
            return _fetch(session, source, progress, name, bodies)
        except _Renew:
            # Retry at once: fresh access is not a reason to back off.
            raise TransientApiError("access renewed", retry_after=0.0) from None

    # A long transfer must not eat the retry time budget, which is meant for waiting: downloads
    # are bounded by the attempt count (and each wait by the backoff cap / Retry-After).
    policy = dataclasses.replace(session.policy, max_elapsed=math.inf)
    try:
        source.start()
        result = run_with_retries(
            attempt,
            policy=policy,
            idempotency=Idempotency.SAFE,
            what=f"download {name}",
            stats=session.stats,
            limiter=session.limiter,
            sleep=session.sleep,
        )
    except AlreadyRetried as wrapped:
        raise DownloadError(
            f"{name}: download failed: {getattr(wrapped.error, 'message', wrapped.error)}"
        ) from wrapped.error
    except ApiError as exc:
        raise DownloadError(f"{name}: download failed: {exc.message}") from exc
    return result.model_copy(update={"resigned": source.renewed, "route": source.route})


def _fetch(
    session: Session,
    source: SignedUrlSource | CommentsSource,
    p: _Progress,
    name: str,
    bodies: BodyPool | None,
) -> DownloadResult:
    """One GET, continuing ``p``; raises TransientApiError to be retried, _Renew to repeat at once."""
    headers = source.headers()
    resuming = p.received > 0 and p.ranges_ok
    if resuming:
        headers["Range"] = f"bytes={p.received}-"
    elif p.received:
        p.restart(name)
    url = source.url()
    shown = scrub_url(url)
    if source.route == "comments":
        session.limiter.wait_gate()  # an API call: it waits for throttling like the others
    session.stats.count_request(source.endpoint)
    started = time.monotonic()
    try:
        with _get(session, bodies, url, headers) as answer:
            response = answer.response
            session.stats.count_status(response.status_code)
            log.debug("GET %s -> %d (%s)", shown, response.status_code, "resume" if resuming else "start")
            status = response.status_code
            if status == 416 and resuming and p.received == p.total:
                # Everything had arrived before the connection dropped: nothing left to fetch.
                return DownloadResult(
                    sha256=p.hasher.hexdigest(), size=p.received, content_type=p.content_type
                )
            if status not in (200, 206):
                _refused(session, source, answer.read_error_body(), p, shown, name)
            if status == 200 and source.route == "comments" and _is_json(response):
                # The YAML describes this route's 200 as a JSON comment list (Y:8791): such an
                # answer is not the file, whatever it says.
                raise RouteUnavailable(source.route, "answers JSON, not the file")
            if status == 200 and p.received:
                p.restart(name)  # the server ignored our Range: start over
            elif status == 206 and not _range_starts_at(response, p.received):
                p.restart(name)
                raise TransientApiError("unexpected Content-Range; restarting", retry_after=0.0)
            _note_headers(p, response)
            expected = _int_header(response, "content-length")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            if encoded:  # lengths and ranges count encoded bytes: neither applies to the decoded ones
                p.total, p.ranges_ok = None, False
            this_response = 0

            def consume(chunk: bytes | memoryview) -> None:
                nonlocal this_response
                p.hasher.update(chunk)
                if p.sink is not None:
                    p.sink.write(chunk)
                p.received += len(chunk)
                this_response += len(chunk)
                session.stats.add("bytes_downloaded", len(chunk))

            answer.feed(consume)
            # Content-Length counts encoded bytes; we asked for identity, but if the server
            # encoded anyway, compare what came over the wire instead of the decoded bytes.
            wire_bytes = answer.num_bytes if encoded else this_response
    except TRANSPORT_ERRORS as exc:
        log.debug(
            "GET %s -> %s after %.3fs, %d bytes so far",
            shown,
            type(exc).__name__,
            time.monotonic() - started,
            p.received,
        )
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
    return DownloadResult(sha256=p.hasher.hexdigest(), size=p.received, content_type=p.content_type)


class _HttpxAnswer:
    """An httpx answer behind the same face as ``bodies.Answer``."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def read_error_body(self) -> httpx.Response:
        self.response.read()
        return self.response

    def feed(self, consume: Callable[[bytes], None]) -> None:
        response = self.response
        encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
        # Identity bodies are read as they arrive: httpx's re-chunking to a fixed size copies
        # every byte once more (measured ~1.8x slower on loopback than raw reads).
        if encoded or response.is_stream_consumed:  # (an in-memory body: a test transport)
            chunks = response.iter_bytes(CHUNK_SIZE)
        else:
            chunks = response.iter_raw()
        for chunk in chunks:
            consume(chunk)

    @property
    def num_bytes(self) -> int:
        return self.response.num_bytes_downloaded


@contextmanager
def _get(
    session: Session, bodies: BodyPool | None, url: str, headers: dict[str, str]
) -> Iterator[Answer | _HttpxAnswer]:
    """The GET of a file: over ``bodies`` where it serves the URL, else (or for a redirect or an
    encoded body, which httpx follows and decodes) over the session's httpx client."""
    if bodies is not None and BodyPool.serves(url):
        try:
            answer = bodies.get(url, headers)
        except Fallback:
            log.debug("GET %s: redirected or encoded; sent again over httpx", scrub_url(url))
        else:
            with answer:
                yield answer
            return
    with session.http.stream("GET", url, headers=headers, follow_redirects=True) as response:
        yield _HttpxAnswer(response)


def _refused(
    session: Session,
    source: SignedUrlSource | CommentsSource,
    response: httpx.Response,
    p: _Progress,
    shown: str,
    name: str,
) -> None:
    """A non-2xx answer: raise what it calls for (retry, renew, route unavailable, failure)."""
    response.read()  # an error body is small; its codes decide
    status = response.status_code
    codes = envelope_codes(json_or_none(response)) if source.route == "comments" else []
    if is_throttle(status, codes) or status >= 500 or status == 408:
        error = error_for_response(response, method="GET", path=shown)
        if is_throttle(status, codes):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            session.limiter.block_for(DEFAULT_429_PAUSE if retry_after is None else retry_after)
        raise error
    source.refused(status, codes, received=p.received)
    raise _Renew


def probe(session: Session, source: SignedUrlSource | CommentsSource) -> tuple[int, bytes, str | None]:
    """Fetch the first ``PROBE_BYTES`` of a file with ``Range`` (the rest is never read).

    Returns (status, first bytes, content type); RouteUnavailable when the route does not serve
    the file; ApiError/DownloadError for other failures. For ``reconciler doctor``."""
    try:
        source.start()
    except AlreadyRetried as wrapped:
        raise wrapped.error from wrapped.error.__cause__
    for _ in range(2):  # one renewal (re-sign, fresh login) at most
        headers = {**source.headers(), "Range": f"bytes=0-{PROBE_BYTES - 1}"}
        session.stats.count_request(source.endpoint)
        try:
            with session.http.stream("GET", source.url(), headers=headers, follow_redirects=True) as response:
                session.stats.count_status(response.status_code)
                if response.status_code in (200, 206):
                    if source.route == "comments" and _is_json(response):
                        raise RouteUnavailable(source.route, "answers JSON, not the file")
                    head = b""
                    chunks = response.iter_bytes() if response.is_stream_consumed else response.iter_raw()
                    for chunk in chunks:
                        head += chunk
                        if len(head) >= PROBE_BYTES:
                            break
                    return response.status_code, head[:PROBE_BYTES], response.headers.get("content-type")
                response.read()
                codes = envelope_codes(json_or_none(response)) if source.route == "comments" else []
                if is_throttle(response.status_code, codes) or response.status_code >= 500:
                    raise error_for_response(response, method="GET", path=scrub_url(source.url()))
                try:
                    source.refused(response.status_code, codes, received=0)
                except DownloadError as exc:
                    raise RouteUnavailable(source.route, exc.message.split(": ", 1)[-1]) from exc
        except TRANSPORT_ERRORS as exc:
            raise error_for_transport(exc, method="GET", path=scrub_url(source.url())) from exc
        except AlreadyRetried as wrapped:
            raise wrapped.error from wrapped.error.__cause__
    raise RouteUnavailable(source.route, "refused again after renewing access")


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "application/json"


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


@dataclass(frozen=True)
class RouteChoice:
    """Which route ``download_route: auto`` settled on, and why the others were passed over."""

    route: str | None
    passed_over: dict[str, str] = dataclasses.field(default_factory=dict)
