"""Translate HTTP answers and httpx failures into the project's error tree.

This is the one boundary where foreign exceptions stop (STYLE principle 6): nothing from
``httpx`` leaves ``reconciler.client``; callers see only

    ApiError
    ├── TransientApiError   429, 408, 5xx, connection trouble (``retry_after`` when known)
    └── PermanentApiError   other 4xx, unusable answers
        └── AuthenticationError   401, or a login the platform refused

and ``DownloadError`` for the bytes of a signed URL. Each error is raised ``from`` the httpx
exception when there is one.

Whether retrying is *safe* is a separate question from whether it may *help*: a POST that was
possibly processed must not be blindly re-sent (it would pay for a second render). Only
``certainly_not_processed`` answers that, from the status or the failure's phase.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from reconciler.errors import (
    ApiError,
    AuthenticationError,
    PermanentApiError,
    TransientApiError,
)

from .redact import scrub_text

# Failures in the connect phase: the request's bytes never reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def envelope_codes(body: Any) -> list[str]:
    """The UPPER_SNAKE codes of an envelope's ``errors`` (a list, an object, or absent)."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        return [str(e) for e in errors if isinstance(e, (str, int))]
    if isinstance(errors, dict):
        return [str(v) for v in errors.values() if isinstance(v, str)]
    if isinstance(errors, str):
        return [errors]
    return []


def json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def describe_status(status: int | None, codes: list[str]) -> str:
    """``"HTTP 404 Not Found: PRODUCT_NOT_FOUND"``."""
    if status is None:
        return ", ".join(codes) or "no status"
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "unexpected status"
    text = f"HTTP {status} {reason}"
    return f"{text}: {', '.join(codes)}" if codes else text


def error_for_response(response: httpx.Response, *, method: str, path: str) -> ApiError:
    """The error for a non-2xx answer (the caller decides what a 401 triggers first)."""
    status = response.status_code
    codes = envelope_codes(json_or_none(response))
    message = describe_status(status, codes)
    where: dict[str, Any] = {"status": status, "codes": codes, "method": method, "path": path}
    if status == 401:
        return AuthenticationError(message, **where)
    if status == 429 or status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return TransientApiError(message, retry_after=retry_after, **where)
    return PermanentApiError(message, **where)


def error_for_transport(exc: Exception, *, method: str, path: str) -> ApiError:
    """The error for an httpx failure that produced no response. Raise it ``from exc``."""
    try:
        host = exc.request.url.host  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when no request is set
        host = "the API"
    detail = scrub_text(str(exc)) or type(exc).__name__
    where: dict[str, Any] = {"method": method, "path": path}
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return TransientApiError(f"cannot connect to {host}: {detail}", **where)
    if isinstance(exc, httpx.PoolTimeout):
        return TransientApiError("no free connection in the pool (too many parallel calls?)", **where)
    if isinstance(exc, httpx.TimeoutException):
        return TransientApiError(f"timed out talking to {host}: {type(exc).__name__}", **where)
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
        return TransientApiError(f"connection to {host} failed: {detail}", **where)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return PermanentApiError(
            f"invalid API URL: {detail}", hint="check api_url / VNTANA_API_URL", **where
        )
    return PermanentApiError(f"HTTP client failure: {type(exc).__name__}: {detail}", **where)


def unexpected_payload(problem: str, *, method: str, path: str, status: int | None = None) -> PermanentApiError:
    """A 2xx answer the client cannot use (not JSON, wrong shape, ``success: false``)."""
    return PermanentApiError(f"unexpected answer: {problem}", status=status, method=method, path=path)


def certainly_not_processed(exc: BaseException) -> bool:
    """True when the server surely did not act on the request, so a re-send cannot double it.

    That holds for a 429 or 503 (the platform refused it before doing anything) and for failures
    before any byte was sent (connect errors, connect/pool timeouts). It does not hold for
    other 5xx, read timeouts or dropped connections: the request may have been processed.
    """
    # 503 Service Unavailable says the server could not take the request on (RFC 9110
    # 15.6.4); gateways answer it before the application sees anything.
    if isinstance(exc, TransientApiError) and exc.status in (429, 503):
        return True
    return isinstance(exc, TransientApiError) and isinstance(exc.__cause__, _NOT_SENT)


TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)
"""Everything httpx raises; caught at each call site and mapped by ``error_for_transport``."""
