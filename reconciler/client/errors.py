"""Translate HTTP answers and httpx failures into the project's error tree.

This is the one boundary where foreign exceptions stop (STYLE principle 6): nothing from
``httpx`` leaves ``reconciler.client``; callers see only

    ApiError
    ├── TransientApiError   throttling (429, or API_RATE_LIMIT_EXCEEDED under any status),
    │                       408, 5xx, connection trouble (``retry_after`` when known)
    └── PermanentApiError   other 4xx, unusable answers
        └── AuthenticationError   a login the platform refused, or still refused after one
            └── TokenRejected     401, or a 403 that may mean an invalid/expired/revoked token

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
from .wire import error_codes

# Failures in the connect phase: the request's bytes never reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

THROTTLED = "API_RATE_LIMIT_EXCEEDED"
"""VNTANA's throttling code. It appears only in 400/403/409 schemas (Y:17637-17718, Y:26592)
and no page documents a 429, so it means "slow down" whatever the status."""

# Codes that can only be about the token itself: a fresh login is the cure. BAD_CREDENTIALS is
# what api-authentication.md says "may also appear" for a dead token; the others are the token
# codes of the logout/expire schemas (ExpireTokenAuthenticationResultResponse) and the usual
# spellings of "expired" and "revoked".
TOKEN_CODES = frozenset(
    {
        "BAD_CREDENTIALS",
        "UNAUTHORIZED",
        "MISSING_TOKEN",
        "TOKEN_NOT_FOUND",
        "INVALID_TOKEN",
        "TOKEN_EXPIRED",
        "EXPIRED_TOKEN",
        "TOKEN_REVOKED",
        "REVOKED_TOKEN",
        "INVALID_AUTH_TOKEN",
    }
)
# A 403 FORBIDDEN (or a bare 403) is what api-authentication.md and refresh-token-usage.md give
# for a revoked or expired token, but also for a missing role or scope: the session finds out
# which by asking whether the token still works (see Session).
AMBIGUOUS_403_CODES = frozenset({"FORBIDDEN"})


class TokenRejected(AuthenticationError):
    """A call was refused in a way that may mean the token is dead (401, or a 403 as above).

    ``certain`` is True for a 401 or a token code; False for a bare 403 FORBIDDEN, which
    may also mean "this user may not do that". Handled inside the client (one fresh login at
    most); it leaves the client only when a fresh token is refused as well.
    """

    def __init__(self, message: str, *, certain: bool, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.certain = certain


def envelope_codes(body: Any) -> list[str]:
    """The UPPER_SNAKE codes of an envelope's ``errors`` (strings or objects, a list, an object, or absent)."""
    if not isinstance(body, dict):
        return []
    return error_codes(body.get("errors"))


def is_throttle(status: int | None, codes: list[str]) -> bool:
    """Whether an answer says "too many requests": a 429, or VNTANA's code under any status."""
    return status == 429 or THROTTLED in codes


def token_rejection(status: int, codes: list[str]) -> bool | None:
    """For a refused call: True if the token is surely dead, False if it may be, None if not."""
    if is_throttle(status, codes):
        return None
    if status == 401 or any(c in TOKEN_CODES for c in codes):
        return True if status in (401, 403) else None
    if status == 403 and all(c in AMBIGUOUS_403_CODES for c in codes):
        return False
    return None


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
    if is_throttle(status, codes):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return TransientApiError(message, retry_after=retry_after, **where)
    certain = token_rejection(status, codes)
    if certain is not None:
        return TokenRejected(message, certain=certain, **where)
    if status == 408 or status >= 500:
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
        return PermanentApiError(f"invalid API URL: {detail}", hint="check api_url / VNTANA_API_URL", **where)
    return PermanentApiError(f"HTTP client failure: {type(exc).__name__}: {detail}", **where)


def unexpected_payload(
    problem: str, *, method: str, path: str, status: int | None = None
) -> PermanentApiError:
    """A 2xx answer the client cannot use (not JSON, wrong shape, ``success: false``)."""
    return PermanentApiError(f"unexpected answer: {problem}", status=status, method=method, path=path)


def certainly_not_processed(exc: BaseException) -> bool:
    """True when the server surely did not act on the request, so a re-send cannot double it.

    That holds for throttling (a 429 or API_RATE_LIMIT_EXCEEDED: refused before doing anything),
    a 503, and failures before any byte was sent (connect errors, connect/pool timeouts). It
    does not hold for other 5xx, read timeouts or dropped connections: the request may have
    been processed.
    """
    # 503 Service Unavailable says the server could not take the request on (RFC 9110
    # 15.6.4); gateways answer it before the application sees anything.
    if isinstance(exc, TransientApiError) and (exc.status == 503 or is_throttle(exc.status, exc.codes)):
        return True
    return isinstance(exc, TransientApiError) and isinstance(exc.__cause__, _NOT_SENT)


TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)
"""Everything httpx raises; caught at each call site and mapped by ``error_for_transport``."""
