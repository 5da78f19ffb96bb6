"""Keep secrets out of logs: auth tokens and the signatures of signed download URLs.

Why a log filter on third-party loggers: our own log lines are built from scrubbed parts, but
httpx logs every request URL at INFO (a signed URL carries its signature in the query) and
httpcore, at DEBUG, logs the raw response headers, including the ``X-AUTH-TOKEN`` header with
which the login answers. ``--verbose`` turns those loggers on, so the filter is installed on
them once, when the client package is imported. It rewrites the message, never drops it.

Invariant: every string that leaves ``reconciler.client`` for a log record or an exception
message went through ``scrub_url`` or ``scrub_text`` when it could contain a URL or headers.
"""

from __future__ import annotations

import logging
import re

import httpx

REDACTED = "[REDACTED]"

# httpcore's trace: (b'x-auth-token', b'Bearer abc...') inside a list of header tuples.
_HEADER_TUPLE = re.compile(r"(\(b'x-auth-token',\s*b')[^']*(')", re.IGNORECASE)
# Plain "X-AUTH-TOKEN: value" or "X-AUTH-TOKEN=value" renderings.
_HEADER_TEXT = re.compile(r"(x-auth-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",)]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")
# Any URL with a query string: the query is where signatures live (X-Goog-Signature, ...).
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s#'\"]*")

# Loggers of our HTTP stack that may render URLs or headers. A filter on a logger applies only
# to records created on that very logger, hence the explicit child names.
_THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def scrub_url(url: str | httpx.URL) -> str:
    """The URL with its query (where signatures live) replaced by a marker."""
    base, sep, _query = str(url).partition("?")
    return f"{base}?{REDACTED}" if sep else base


def scrub_text(text: str) -> str:
    """Remove auth headers, bearer tokens and signed-URL queries from free text."""
    text = _HEADER_TUPLE.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
    text = _HEADER_TEXT.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _URL_QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through ``scrub_text``; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's problem, not ours
            return True
        cleaned = scrub_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_log_filters() -> None:
    """Attach the redacting filter to the HTTP stack's loggers (idempotent)."""
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
