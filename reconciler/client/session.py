"""One authenticated request: login, limiter, retries, logging and error mapping in one place.

``Session.request`` is the only way ``api.py`` talks to the API, so every call gets the same
treatment. Login is the platform's two steps (personal access token → organization token →
workspace token when a workspace is configured), done lazily on the first call.

Invariants:
* One login at a time, under ``_auth_lock``; callers that arrive meanwhile wait and reuse its
  token. ``/v1/auth/refresh-token`` revokes the previous token, so two parallel logins would
  knock each other out.
* A 401 triggers at most one fresh login per request, and only if nobody else has logged in
  since the token that failed was handed out (the ``generation`` check); a second 401 is an
  ``AuthenticationError``.
* No thread holds a limiter slot while it waits for the login lock, so the login's own
  requests can always get a slot (no deadlock with ``max_concurrency`` workers).
* Tokens exist only as ``SecretStr`` and in the one header dict built per request.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from reconciler.errors import ApiError, AuthenticationError, ConfigError, PermanentApiError
from reconciler.settings import ClientSettings

from .errors import (
    TRANSPORT_ERRORS,
    describe_status,
    envelope_codes,
    error_for_response,
    error_for_transport,
    json_or_none,
    unexpected_payload,
)
from .limiter import ClientStats, Limiter
from .retry import AlreadyRetried, Idempotency, RetryPolicy, run_with_retries

log = logging.getLogger("reconciler.client")

# Pause for everyone after a 429 that gives no Retry-After: long enough to let a per-second
# quota refill, short enough not to matter when the 429 was a one-off.
DEFAULT_429_PAUSE = 1.0


class Session:
    """Sends API requests for ``VntanaClient``; thread-safe."""

    def __init__(
        self,
        settings: ClientSettings,
        http: httpx.Client,
        *,
        limiter: Limiter,
        stats: ClientStats,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.http = http
        self.limiter = limiter
        self.stats = stats
        self.policy = policy
        self.sleep = sleep
        self._base = settings.api_url.rstrip("/")
        self._auth_lock = threading.Lock()
        self._token: SecretStr | None = None
        self._generation = 0
        self._login_failure: Exception | None = None
        self.organization_uuid: str | None = settings.organization_uuid

    # -- public ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency: Idempotency = Idempotency.SAFE,
        pass_statuses: Collection[int] = (),
    ) -> httpx.Response:
        """Send one authenticated request, with retries; return the 2xx response or raise ApiError.

        ``endpoint`` is the route template used for counting ("GET /v1/products/{uuid}");
        answers with a status in ``pass_statuses`` are returned for the caller to read.
        """
        attempts = itertools.count(1)

        def attempt() -> httpx.Response:
            n = next(attempts)
            try:
                token, generation = self.current_token()
            except ApiError as exc:  # the login has had its own retries
                raise AlreadyRetried(exc) from None
            try:
                return self._send(method, path, endpoint, token=token, json=json, params=params, attempt=n,
                                  pass_statuses=pass_statuses)
            except AuthenticationError:
                try:
                    token, _ = self._relogin(generation)
                except ApiError as exc:
                    raise AlreadyRetried(exc) from None
            try:
                return self._send(method, path, endpoint, token=token, json=json, params=params, attempt=n,
                                  pass_statuses=pass_statuses)
            except AuthenticationError as exc:
                raise AuthenticationError(
                    "still unauthorized (HTTP 401) after a fresh login",
                    status=401, method=method, path=path,
                    hint=(
                        "the token may have been revoked: another process logging in with the same "
                        "personal access token revokes this one; use one key per process"
                    ),
                ) from exc

        return run_with_retries(
            attempt, policy=self.policy, idempotency=idempotency, what=f"{method} {path}",
            stats=self.stats, limiter=self.limiter, sleep=self.sleep,
        )

    def current_token(self) -> tuple[SecretStr, int]:
        """The token to use and its generation, logging in first if nobody has yet."""
        with self._auth_lock:
            if self._token is None:
                self._login_locked()
            assert self._token is not None
            return self._token, self._generation

    def body(self, response: httpx.Response, *, method: str, path: str, allow_failure: bool = False) -> Any:
        """The ``response`` member of a JSON envelope; ``success: false`` is an error unless allowed."""
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise unexpected_payload("not a JSON envelope", method=method, path=path, status=response.status_code)
        if data.get("success") is False and not allow_failure:
            codes = envelope_codes(data)
            raise PermanentApiError(
                "the API reported failure: " + (", ".join(codes) or "no error code"),
                status=response.status_code, codes=codes, method=method, path=path,
            )
        return data.get("response")

    # -- sending ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        token: SecretStr | None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        attempt: int = 1,
        pass_statuses: Collection[int] = (),
    ) -> httpx.Response:
        """One HTTP exchange through the limiter; non-2xx answers raise the mapped ApiError."""
        sent_headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent_headers["X-AUTH-TOKEN"] = f"Bearer {token.get_secret_value()}"
        with self.limiter.slot():
            self.stats.count_request(endpoint)
            started = time.monotonic()
            try:
                response = self.http.request(
                    method, self._base + path, json=json, params=params, headers=sent_headers,
                    follow_redirects=False,
                )
            except TRANSPORT_ERRORS as exc:
                log.debug("%s %s -> %s after %.3fs (attempt %d)", method, path, type(exc).__name__,
                          time.monotonic() - started, attempt)
                raise error_for_transport(exc, method=method, path=path) from exc
        elapsed = time.monotonic() - started
        error = None
        if not (response.is_success or response.status_code in pass_statuses):
            error = error_for_response(response, method=method, path=path)
            if response.status_code == 429:  # close the gate first, before anyone else sends
                retry_after = getattr(error, "retry_after", None)
                self.limiter.block_for(DEFAULT_429_PAUSE if retry_after is None else retry_after)
        self.stats.count_status(response.status_code)
        log.debug("%s %s -> %d in %.3fs (attempt %d)", method, path, response.status_code, elapsed, attempt)
        if error is not None:
            raise error
        return response

    def _unauthenticated(self, method: str, path: str, endpoint: str, **kw: Any) -> httpx.Response:
        """A login-phase request: retried like any safe call, with no 401 handling."""
        return run_with_retries(
            lambda: self._send(method, path, endpoint, **kw), policy=self.policy,
            idempotency=Idempotency.SAFE, what=f"{method} {path}", stats=self.stats,
            limiter=self.limiter, sleep=self.sleep,
        )

    # -- login -----------------------------------------------------------------------------

    def _relogin(self, seen_generation: int) -> tuple[SecretStr, int]:
        with self._auth_lock:
            if self._generation == seen_generation:
                self.stats.add("relogins")
                log.info("the API answered 401; logging in again")
                self._token = None
                self._login_locked()
            assert self._token is not None
            return self._token, self._generation

    def _login_locked(self) -> None:
        if self._login_failure is not None:
            # A refused key stays refused: do not hammer the login endpoint from every worker.
            raise self._login_failure
        try:
            self._token = self._login_steps()
        except (PermanentApiError, ConfigError) as exc:
            self._login_failure = exc
            raise
        self._generation += 1

    def _login_steps(self) -> SecretStr:
        s = self.settings
        pat = s.token.get_secret_value()
        step1 = self._login_call(
            "/v1/auth/login/token", token=None, json={"personal-access-token": pat},
            refused="the API refused the personal access token",
            hint="check VNTANA_API_TOKEN (personal access tokens are created in the VNTANA platform)",
        )
        org = s.organization_uuid or self._only_organization(step1)
        token = self._login_call(
            "/v1/auth/refresh-token", token=step1, headers={"organizationUuid": org},
            refused=f"cannot log in to organization {org}",
            hint="check VNTANA_ORGANIZATION_UUID / organization_uuid",
        )
        if s.client_uuid:
            token = self._login_call(
                "/v1/auth/refresh-token", token=token,
                headers={"organizationUuid": org, "clientUuid": s.client_uuid},
                refused=f"cannot log in to workspace {s.client_uuid} of organization {org}",
                hint="check VNTANA_CLIENT_UUID / client_uuid",
            )
        self.organization_uuid = org
        log.debug("logged in to organization %s%s", org, f", workspace {s.client_uuid}" if s.client_uuid else "")
        return token

    def _login_call(
        self, path: str, *, token: SecretStr | None, refused: str, hint: str,
        json: Any = None, headers: Mapping[str, str] | None = None,
    ) -> SecretStr:
        try:
            response = self._unauthenticated(
                "POST", path, f"POST {path}", token=token, json=json, headers=headers
            )
        except PermanentApiError as exc:  # 401, 403 BAD_CREDENTIALS, 404 ...
            raise AuthenticationError(
                f"{refused} ({describe_status(exc.status, exc.codes)})",
                status=exc.status, codes=exc.codes, method="POST", path=path, hint=hint,
            ) from exc
        value = response.headers.get("x-auth-token", "").strip()
        if value.lower().startswith("bearer "):
            value = value[len("bearer "):].strip()
        if not value:
            raise AuthenticationError(
                "the login answer carried no X-AUTH-TOKEN header", status=response.status_code,
                method="POST", path=path,
            )
        return SecretStr(value)

    def _only_organization(self, token: SecretStr) -> str:
        """With no organization configured: the user's only organization, else a ConfigError."""
        path = "/v1/organizations"
        response = self._unauthenticated("GET", path, f"GET {path}", token=token)
        grid = self.body(response, method="GET", path=path) or {}
        orgs = [o for o in (grid.get("grid") or []) if isinstance(o, dict) and o.get("uuid")]
        if len(orgs) == 1:
            return str(orgs[0]["uuid"])
        if not orgs:
            raise ConfigError("this personal access token belongs to no organization")
        listing = ", ".join(f"{o['uuid']} ({o.get('name') or o.get('slug') or '?'})" for o in orgs)
        raise ConfigError(
            f"the token gives access to {len(orgs)} organizations: {listing}",
            hint="choose one with --organization, VNTANA_ORGANIZATION_UUID or organization_uuid",
        )
