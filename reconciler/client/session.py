"""One authenticated request: login, limiter, retries, logging and error mapping in one place.

``Session.request`` is the only way ``api.py`` talks to the API, so every call gets the same
treatment. Login is the platform's steps, done lazily on the first call:
personal access token → ``GET /v1/organizations`` (the organizations, and the user's role in
each) → organization token → workspace token, only when a workspace is configured and the
role is not organization-wide (Owners and Admins get ``BAD_CREDENTIALS`` asking for one,
refresh-token-usage.md; they use the organization token for everything). If the workspace step
is refused with ``BAD_CREDENTIALS`` anyway, the organization token is kept.

Invariants:
* One login at a time, under ``_auth_lock``; callers that arrive meanwhile wait and reuse its
  token. ``/v1/auth/refresh-token`` revokes the previous token of the same scope, so two
  parallel logins would knock each other out.
* A dead token is replaced by at most one fresh login per request, and only if nobody else has
  logged in since the token that failed was handed out (the ``generation`` check). "Dead"
  means a 401, a 403 with a token code, or a 403 FORBIDDEN after which the token fails a
  cheap check (``GET /v1/organizations``): VNTANA's guides answer a revoked or expired token
  with 403 FORBIDDEN as often as with 401, and FORBIDDEN also means "not allowed", which no
  fresh login cures. A refusal that survives the fresh login is an ``AuthenticationError``.
* Throttling (429, or ``API_RATE_LIMIT_EXCEEDED`` under any status) closes the shared gate
  for every thread.
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
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from reconciler.errors import ApiError, AuthenticationError, ConfigError, PermanentApiError
from reconciler.settings import ClientSettings

from .errors import (
    TRANSPORT_ERRORS,
    TokenRejected,
    describe_status,
    envelope_codes,
    error_for_response,
    error_for_transport,
    is_throttle,
    json_or_none,
    unexpected_payload,
)
from .limiter import ClientStats, Limiter
from .retry import AlreadyRetried, Idempotency, RetryPolicy, run_with_retries

log = logging.getLogger("reconciler.client")

# Pause for everyone after throttling that gives no Retry-After (VNTANA's code never comes with
# one): long enough to let a per-second quota refill, short enough not to matter when it was a
# one-off.
DEFAULT_429_PAUSE = 1.0

ORGANIZATION_ROLES = frozenset({"ORGANIZATION_OWNER", "ORGANIZATION_ADMIN", "OWNER", "ADMIN"})
"""Roles that work with the organization token alone and are refused a workspace token."""

REVOKED_HINT = (
    "another login with the same personal access token for the same organization or workspace "
    "revokes the previous token (a user has one key, and a new key invalidates the old one): run "
    "one process per key at a time, or share one login between workers as VNTANA advises"
)


class LoginInfo:
    """What the last login found out, for ``reconciler doctor`` and messages (no secrets)."""

    def __init__(self) -> None:
        self.organizations: list[dict[str, Any]] = []
        self.role: str | None = None
        self.workspace_step: str = "not configured"
        """``not configured``, ``used``, ``skipped`` (organization-wide role) or
        ``refused`` (BAD_CREDENTIALS: the organization token is used)."""


@dataclass(frozen=True)
class SharedLogin:
    """A login that other processes share (``SharedSession``): the token and what the login found."""

    token: SecretStr
    organization_uuid: str | None
    role: str | None
    workspace_step: str
    generation: int = 0


class SharedSession(Protocol):
    """One login and one throttle for many processes (reconciler.workers.shared implements it).

    ``login(fresh, stale)``: the shared login, made with ``fresh()`` by one process at a time
    when there is none yet or when it is still generation ``stale`` (the one that was refused).
    ``pause()``: seconds until the API may be called again, by anyone's throttle;
    ``throttled(seconds)`` tells the others about ours."""

    def login(self, fresh: Callable[[], SharedLogin], stale: int | None) -> SharedLogin: ...
    def pause(self) -> float: ...
    def throttled(self, seconds: float) -> None: ...


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
        shared: SharedSession | None = None,
        parent: Session | None = None,
    ) -> None:
        """``parent``: the session of the organization's login, whose organization token this one
        takes for its workspace step instead of logging in with the personal access token again
        (``VntanaClient.for_workspace``)."""
        self.settings = settings
        self.shared = shared
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
        self.login_info = LoginInfo()
        self._parent = parent
        self._org_token: SecretStr | None = None  # step 2's token (the workspace step's input)
        self._derived_from: int | None = None  # the parent's generation this login was made from

    # -- public ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency: Idempotency = Idempotency.SAFE,
        pass_statuses: Collection[int] = (),
    ) -> httpx.Response:
        """Send one authenticated request, with retries; return the 2xx response or raise ApiError.

        ``endpoint`` is the route template used for counting ("GET /v1/products/{uuid}");
        answers with a status in ``pass_statuses`` are returned for the caller to read.
        """
        attempts = itertools.count(1)

        def send(token: SecretStr, n: int) -> httpx.Response:
            return self._send(
                method,
                path,
                endpoint,
                token=token,
                json=json,
                params=params,
                headers=headers,
                attempt=n,
                pass_statuses=pass_statuses,
            )

        def attempt() -> httpx.Response:
            n = next(attempts)
            try:
                token, generation = self.current_token()
            except ApiError as exc:  # the login has had its own retries
                raise AlreadyRetried(exc) from None
            try:
                return send(token, n)
            except TokenRejected as exc:
                try:
                    token = self.replace_token(exc, token, generation, method=method, path=path)
                except ApiError as error:
                    raise AlreadyRetried(error) from None
            try:
                return send(token, n)
            except TokenRejected as exc:
                raise self.refused_again(exc, method=method, path=path) from exc

        return run_with_retries(
            attempt,
            policy=self.policy,
            idempotency=idempotency,
            what=f"{method} {path}",
            stats=self.stats,
            limiter=self.limiter,
            sleep=self.sleep,
        )

    def current_token(self) -> tuple[SecretStr, int]:
        """The token to use and its generation, logging in first if nobody has yet."""
        with self._auth_lock:
            if self._token is None:
                self._login_locked()
            assert self._token is not None
            return self._token, self._generation

    def replace_token(
        self, exc: TokenRejected, token: SecretStr, generation: int, *, method: str, path: str
    ) -> SecretStr:
        """The token to try again with after ``exc``; raises when the token was not the problem.

        A 401 or a token code: log in again (once; whoever comes first). A bare 403 FORBIDDEN:
        first check whether ``token`` still works; if it does, the refusal means "not allowed"
        and is raised as a PermanentApiError, with no login.
        """
        if not exc.certain and generation == self._generation and self._token_works(token):
            raise PermanentApiError(
                exc.message.removeprefix(f"{method} {path}: "),
                status=exc.status,
                codes=exc.codes,
                method=method,
                path=path,
                hint=(
                    f"the token is valid, so this is a refusal: the user's role ({self.login_info.role or 'unknown'}) "
                    "or scope may not do this"
                ),
            ) from exc
        fresh, _ = self._relogin(generation, exc.status)
        return fresh

    def refused_again(self, exc: TokenRejected, *, method: str, path: str) -> ApiError:
        """The error for a refusal that a fresh token did not cure."""
        if exc.certain:
            return AuthenticationError(
                f"still refused ({describe_status(exc.status, exc.codes)}) after a fresh login",
                status=exc.status,
                codes=exc.codes,
                method=method,
                path=path,
                hint=REVOKED_HINT,
            )
        return PermanentApiError(
            exc.message.removeprefix(f"{method} {path}: ") + " (also with a fresh token)",
            status=exc.status,
            codes=exc.codes,
            method=method,
            path=path,
            hint=f"the user's role ({self.login_info.role or 'unknown'}) or scope may not do this",
        )

    def _token_works(self, token: SecretStr) -> bool:
        """Whether ``token`` is still accepted: ``GET /v1/organizations`` takes any valid token."""
        path = "/v1/organizations"
        try:
            self._send("GET", path, f"GET {path}", token=token)
        except TokenRejected:
            return False
        except ApiError:  # cannot tell (throttled, down): a fresh login is the safer guess
            return False
        return True

    def body(self, response: httpx.Response, *, method: str, path: str, allow_failure: bool = False) -> Any:
        """The ``response`` member of a JSON envelope; ``success: false`` is an error unless allowed."""
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise unexpected_payload(
                "not a JSON envelope", method=method, path=path, status=response.status_code
            )
        if data.get("success") is False and not allow_failure:
            codes = envelope_codes(data)
            raise PermanentApiError(
                "the API reported failure: " + (", ".join(codes) or "no error code"),
                status=response.status_code,
                codes=codes,
                method=method,
                path=path,
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
        if self.shared is not None and (pause := self.shared.pause()) > 0:
            self.limiter.block_for(pause)  # another process was throttled: wait as it does
        if token is not None:
            sent_headers["X-AUTH-TOKEN"] = f"Bearer {token.get_secret_value()}"
        with self.limiter.slot():
            self.stats.count_request(endpoint)
            started = time.monotonic()
            try:
                response = self.http.request(
                    method,
                    self._base + path,
                    json=json,
                    params=params,
                    headers=sent_headers,
                    follow_redirects=False,
                )
            except TRANSPORT_ERRORS as exc:
                log.debug(
                    "%s %s -> %s after %.3fs (attempt %d)",
                    method,
                    path,
                    type(exc).__name__,
                    time.monotonic() - started,
                    attempt,
                )
                raise error_for_transport(exc, method=method, path=path) from exc
        elapsed = time.monotonic() - started
        error = None
        if not (response.is_success or response.status_code in pass_statuses):
            error = error_for_response(response, method=method, path=path)
            if is_throttle(error.status, error.codes):  # close the gate first, before anyone else sends
                retry_after = getattr(error, "retry_after", None)
                pause = DEFAULT_429_PAUSE if retry_after is None else retry_after
                self.limiter.block_for(pause)
                if self.shared is not None:
                    self.shared.throttled(pause)
        self.stats.count_status(response.status_code)
        log.debug("%s %s -> %d in %.3fs (attempt %d)", method, path, response.status_code, elapsed, attempt)
        if error is not None:
            raise error
        return response

    def _unauthenticated(self, method: str, path: str, endpoint: str, **kw: Any) -> httpx.Response:
        """A login-phase request: retried like any safe call, with no token handling."""
        return run_with_retries(
            lambda: self._send(method, path, endpoint, **kw),
            policy=self.policy,
            idempotency=Idempotency.SAFE,
            what=f"{method} {path}",
            stats=self.stats,
            limiter=self.limiter,
            sleep=self.sleep,
        )

    # -- login -----------------------------------------------------------------------------

    def _relogin(self, seen_generation: int, status: int | None = 401) -> tuple[SecretStr, int]:
        with self._auth_lock:
            if self._generation == seen_generation:
                self.stats.add("relogins")
                log.info("the API refused the token (HTTP %s): logging in again", status)
                self._token = None
                self._login_locked(stale=seen_generation)
            assert self._token is not None
            return self._token, self._generation

    def _login_locked(self, stale: int | None = None) -> None:
        if self._login_failure is not None:
            # A refused key stays refused: do not hammer the login endpoint from every worker.
            raise self._login_failure
        try:
            if self.shared is not None:
                self._adopt(self.shared.login(self._shared_login, stale))
                return
            self._token = self._login_steps()
        except (PermanentApiError, ConfigError) as exc:
            self._login_failure = exc
            raise
        self._generation += 1

    def organization_login(self, stale: int | None = None) -> tuple[SecretStr, int, LoginInfo, str]:
        """(the organization token, its generation, the login's info, the organization), logging in
        if nobody has yet, or again if ``stale`` is the generation in use (a derived token died).

        What a workspace session derives its token from: one login with the personal access
        token serves every workspace, so no login revokes another's token."""
        with self._auth_lock:
            if self._token is None or (stale is not None and stale == self._generation):
                self._token = None
                self._login_locked()
            # A login adopted from another process (``shared``) brings its final token only.
            org_token = self._org_token or self._token
            assert org_token is not None and self.organization_uuid is not None
            return org_token, self._generation, self.login_info, self.organization_uuid

    def _derived_login(self, parent: Session) -> SecretStr:
        """A workspace's token from the parent's organization token: the workspace step only
        (skipped for Owners and Admins, whose organization token serves every workspace)."""
        org_token, generation, found, org = parent.organization_login(self._derived_from)
        self._derived_from = generation
        info = LoginInfo()
        info.organizations, info.role = found.organizations, found.role
        token = org_token
        if self.settings.client_uuid:
            token = self._workspace_step(org_token, org, self.settings.client_uuid, info)
        self._org_token = org_token
        self.organization_uuid = org
        self.login_info = info
        return token

    def _shared_login(self) -> SharedLogin:
        token = self._login_steps()
        info = self.login_info
        return SharedLogin(token, self.organization_uuid, info.role, info.workspace_step)

    def _adopt(self, shared: SharedLogin) -> None:
        """Use a login made by this or another process (``SharedSession``)."""
        self._token, self._generation = shared.token, shared.generation
        self.organization_uuid = shared.organization_uuid or self.organization_uuid
        self.login_info.role, self.login_info.workspace_step = shared.role, shared.workspace_step

    def _login_steps(self) -> SecretStr:
        if self._parent is not None:
            return self._derived_login(self._parent)
        s = self.settings
        pat = s.token.get_secret_value()
        step1 = self._login_call(
            "/v1/auth/login/token",
            token=None,
            json={"personal-access-token": pat},
            refused="the API refused the personal access token",
            hint="check VNTANA_API_TOKEN (personal access tokens are created in the VNTANA platform)",
        )
        info = LoginInfo()
        info.organizations = self._organizations(step1, required=s.organization_uuid is None)
        org = s.organization_uuid or self._only_organization(info.organizations)
        info.role = next(
            (str(o.get("role")) for o in info.organizations if o.get("uuid") == org and o.get("role")), None
        )
        token = self._login_call(
            "/v1/auth/refresh-token",
            token=step1,
            headers={"organizationUuid": org},
            refused=f"cannot log in to organization {org}",
            hint="check VNTANA_ORGANIZATION_UUID / organization_uuid",
        )
        self._org_token = token
        if s.client_uuid:
            token = self._workspace_step(token, org, s.client_uuid, info)
        self.organization_uuid = org
        self.login_info = info
        log.debug(
            "logged in to organization %s as %s; workspace step: %s",
            org,
            info.role or "?",
            info.workspace_step,
        )
        return token

    def _workspace_step(self, org_token: SecretStr, org: str, workspace: str, info: LoginInfo) -> SecretStr:
        if (info.role or "").upper() in ORGANIZATION_ROLES:
            info.workspace_step = (
                "skipped"  # refresh-token-usage.md: Owners and Admins stop at the organization
            )
            return org_token
        try:
            token = self._login_call(
                "/v1/auth/refresh-token",
                token=org_token,
                headers={"organizationUuid": org, "clientUuid": workspace},
                refused=f"cannot log in to workspace {workspace} of organization {org}",
                hint="check VNTANA_CLIENT_UUID / client_uuid",
            )
        except AuthenticationError as exc:
            if "BAD_CREDENTIALS" not in exc.codes:
                raise
            # The answer an Owner or Admin gets (refresh-token-usage.md) when the role was not
            # in the organization list: the organization token serves every workspace.
            log.info("workspace token refused with BAD_CREDENTIALS; using the organization token")
            info.workspace_step = "refused"
            return org_token
        info.workspace_step = "used"
        return token

    def _login_call(
        self,
        path: str,
        *,
        token: SecretStr | None,
        refused: str,
        hint: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> SecretStr:
        try:
            response = self._unauthenticated(
                "POST", path, f"POST {path}", token=token, json=json, headers=headers
            )
        except PermanentApiError as exc:  # 401, 403 BAD_CREDENTIALS, 404 ...
            raise AuthenticationError(
                f"{refused} ({describe_status(exc.status, exc.codes)})",
                status=exc.status,
                codes=exc.codes,
                method="POST",
                path=path,
                hint=hint,
            ) from exc
        value = response.headers.get("x-auth-token", "").strip()
        if value.lower().startswith("bearer "):
            value = value[len("bearer ") :].strip()
        if not value:
            raise AuthenticationError(
                "the login answer carried no X-AUTH-TOKEN header",
                status=response.status_code,
                method="POST",
                path=path,
            )
        return SecretStr(value)

    def _organizations(self, token: SecretStr, *, required: bool) -> list[dict[str, Any]]:
        """``GET /v1/organizations`` with the login token: the user's organizations and roles.

        When an organization is configured, a failure here only loses the role (the workspace
        step is then tried, with its BAD_CREDENTIALS fallback)."""
        path = "/v1/organizations"
        try:
            response = self._unauthenticated("GET", path, f"GET {path}", token=token)
            grid = self.body(response, method="GET", path=path) or {}
        except ApiError:
            if required:
                raise
            log.info("could not list the organizations; the role is unknown")
            return []
        return [o for o in (grid.get("grid") or []) if isinstance(o, dict) and o.get("uuid")]

    @staticmethod
    def _only_organization(orgs: list[dict[str, Any]]) -> str:
        """With no organization configured: the user's only organization, else a ConfigError."""
        if len(orgs) == 1:
            return str(orgs[0]["uuid"])
        if not orgs:
            raise ConfigError("this personal access token belongs to no organization")
        listing = ", ".join(f"{o['uuid']} ({o.get('name') or o.get('slug') or '?'})" for o in orgs)
        raise ConfigError(
            f"the token gives access to {len(orgs)} organizations: {listing}",
            hint="choose one with --organization, VNTANA_ORGANIZATION_UUID or organization_uuid",
        )
