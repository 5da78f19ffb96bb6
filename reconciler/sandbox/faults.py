"""Fault injection for the sandbox: the failures a real platform produces now and then.

Tests of the reconciler's reliability need throttling, 5xx, slow answers, failed jobs, signed URLs
that expire early and lost or doubled webhook deliveries, on demand and reproducibly. Every
switch is off by default. ``FaultConfig`` is an immutable value; ``FaultInjector`` holds the
current one plus a seeded RNG, and can be swapped at runtime (``EmbeddedSandbox.set_faults``).

Invariants:
- API faults (throttling, 500/503, latency) apply to ``/v1/...`` routes only: health checks and
  the signed download URLs (storage, not the API) are never faulted.
- Throttling (``rate_429``) answers with the status of the reading ``throttle_status``: 429
  with ``Retry-After``, or 403/400/409 with the code ``API_RATE_LIMIT_EXCEEDED`` and no
  ``Retry-After`` (the only places VNTANA's YAML names that code, Y:17637-17718, Y:26592).
- A request answered with an injected fault has no side effect: it is refused before the
  route runs, as a gateway in front of the platform would.
- With ``seed`` set, the sequence of decisions is deterministic for a given sequence of
  rolls (one RNG behind a lock; concurrent requests may still interleave differently).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.sandbox.error_answers import error_body
from reconciler.sandbox.readings import Readings

_RATE_FIELDS = (
    "rate_429",
    "rate_500",
    "rate_503",
    "job_failure_rate",
    "webhook_drop_rate",
    "webhook_duplicate_rate",
)


@dataclasses.dataclass(frozen=True)
class FaultConfig:
    """What to break, and how often. Rates are shares in [0, 1]; all off by default."""

    rate_429: float = 0.0  # share of API requests throttled (429 with Retry-After, or per throttle_status)
    retry_after_seconds: int = 1  # the Retry-After value sent with an injected 429 or 503
    rate_500: float = 0.0  # share of API requests answered 500
    rate_503: float = 0.0  # share of API requests answered 503 (with Retry-After)
    latency_seconds: float = 0.0  # extra delay before every API request is handled
    job_failure_rate: float = 0.0  # share of render/turntable jobs that end FAILED
    fail_products: frozenset[str] = frozenset()  # these products' jobs always fail
    signed_url_ttl_override: float | None = None  # signed URLs live this long instead
    webhook_drop_rate: float = 0.0  # share of webhook deliveries silently never sent
    webhook_duplicate_rate: float = 0.0  # share of webhook deliveries sent twice
    seed: int | None = None  # RNG seed for reproducible fault sequences

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"fault {name} must be between 0 and 1, got {value!r}")
        if self.latency_seconds < 0 or self.retry_after_seconds < 0:
            raise ValueError("fault latency_seconds and retry_after_seconds must not be negative")
        if self.signed_url_ttl_override is not None and self.signed_url_ttl_override < 0:
            raise ValueError("fault signed_url_ttl_override must not be negative")
        # Accept any iterable of uuids (a list from JSON/YAML) but keep the value hashable.
        object.__setattr__(self, "fail_products", frozenset(str(p) for p in self.fail_products))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a config-file mapping; unknown keys are an error (typos must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(unknown)}")
        values = dict(data)
        if "fail_products" in values:
            values["fail_products"] = frozenset(_as_iterable(values["fail_products"]))
        return cls(**values)

    def replace(self, **changes: Any) -> FaultConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _as_iterable(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class FaultInjector:
    """The current ``FaultConfig`` and the RNG that decides each roll; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, config: FaultConfig) -> None:
        """Replace the configuration; the RNG is reseeded from the new config's seed."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``; never consumes randomness for a zero rate."""
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < rate

    def job_should_fail(self, product_uuid: str) -> bool:
        """Decide (once, at the end of a job) whether it fails by injection."""
        config = self._config
        return product_uuid in config.fail_products or self.roll(config.job_failure_rate)


class FaultMiddleware:
    """ASGI middleware that answers a share of ``/v1/`` requests with injected failures."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        readings: Callable[[], Readings] = Readings,
        *,
        counts: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.readings = readings
        self.counts = counts  # called with (method, path) for every HTTP request, faulted or not

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.counts is not None:
            self.counts(str(scope.get("method", "")), str(scope.get("path", "")))
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        config = self.injector.config
        if config.latency_seconds > 0:
            await asyncio.sleep(config.latency_seconds)
        injected: tuple[int, str, bool] | None = None
        readings = self.readings()
        if self.injector.roll(config.rate_429):
            status = readings.throttle_status
            injected = (status, "API_RATE_LIMIT_EXCEEDED", status == 429)
        elif self.injector.roll(config.rate_500):
            injected = (500, "INTERNAL_SERVER_ERROR", False)
        elif self.injector.roll(config.rate_503):
            injected = (503, "SERVICE_UNAVAILABLE", True)
        if injected is None:
            await self.app(scope, receive, send)
            return
        status, code, retry_after = injected
        body = json.dumps(error_body([code], readings)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if retry_after:
            headers.append((b"retry-after", str(int(config.retry_after_seconds)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
