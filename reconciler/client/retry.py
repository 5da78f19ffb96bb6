"""Retry policy of the client: which failures are retried, how long to wait, when to give up.

Built on tenacity rather than a hand-rolled loop. Decisions:

* Retried: ``TransientApiError`` only (throttling: 429 or API_RATE_LIMIT_EXCEEDED under any
  status; 408, 5xx, connection trouble). Other 400/403/404/422 are ``PermanentApiError`` and
  never retried; a dead token (401, or a 403 that means one) is handled by one fresh login
  in ``session.py``, not here.
* Wait: exponential backoff with full jitter (``backoff_initial * 2**(n-1)``, capped at
  ``backoff_max``, uniformly randomised) so that parallel workers spread out. A ``Retry-After``
  from the server replaces the backoff (plus at most 10 % jitter); and nobody sleeps less than
  the shared 429 gate's remaining pause, since the next attempt would wait for it anyway.
* Stop: after ``max_attempts`` attempts OR when the next sleep would end beyond
  ``max_elapsed`` seconds since the first attempt, whichever comes first; then the last
  error is re-raised unchanged (the executor sees the same ``TransientApiError`` type).
* Not every call may be retried on every transient failure: see ``Idempotency``.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from reconciler.errors import ApiError, TransientApiError

from .errors import certainly_not_processed, is_throttle
from .limiter import ClientStats, Limiter

T = TypeVar("T")

log = logging.getLogger("reconciler.client")


class Idempotency(enum.Enum):
    """How safe it is to send the same request again after a transient failure."""

    SAFE = "safe"
    """Reads, searches, deletes, signing a URL: repeating them changes nothing. Retry any
    transient failure."""
    UNSAFE = "unsafe"
    """Requests with a paid or visible side effect (triggering renders, creating a webhook).
    Retried only when the server certainly did not process the first one (429, 503, connect
    failure); after another 5xx or a read timeout the error goes to the caller to decide."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop; ``max_attempts`` counts the first attempt too."""

    max_attempts: int = 8
    max_elapsed: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class AlreadyRetried(Exception):
    """Carries an error that an inner call (a login, a URL signing) has already retried.

    Raised inside an attempt so that the outer retry loop does not multiply the attempts
    (8 x 8); ``run_with_retries`` unwraps it and raises the inner error unchanged.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def should_retry(idempotency: Idempotency) -> Callable[[BaseException], bool]:
    """The retry predicate for one kind of request."""
    if idempotency is Idempotency.SAFE:
        return lambda exc: isinstance(exc, TransientApiError)
    return certainly_not_processed


class _Wait:
    """tenacity wait strategy: Retry-After if given, else jittered backoff; never below the gate."""

    def __init__(self, policy: RetryPolicy, limiter: Limiter | None) -> None:
        self._backoff = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)
        self._limiter = limiter

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            after = float(retry_after)
            delay = after + random.uniform(0, min(1.0, 0.1 * after))
        else:
            delay = self._backoff(state)
        if self._limiter is not None:
            delay = max(delay, self._limiter.gate_remaining())
        return delay


def run_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    idempotency: Idempotency,
    what: str,
    stats: ClientStats,
    limiter: Limiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it returns, retrying transient failures as the policy allows.

    ``what`` names the request in log lines ("GET /v1/products/…"). The last error is
    re-raised as it was; ``stats`` counts retries and the sleeps caused by 429s.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        stats.add("retries")
        if isinstance(exc, ApiError) and is_throttle(exc.status, exc.codes):
            stats.add("throttled_seconds", pause)
        reason = str(exc) if isinstance(exc, ApiError) else f"{what}: {type(exc).__name__}"
        log.info(
            "retry in %.2fs (attempt %d of %d) after %s",
            pause,
            state.attempt_number + 1,
            policy.max_attempts,
            reason,
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_elapsed),
        wait=_Wait(policy, limiter),
        retry=retry_if_exception(should_retry(idempotency)),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except AlreadyRetried as wrapped:
        raise wrapped.error from wrapped.error.__cause__
