"""A small client for the GitHub REST endpoints (and the one GraphQL mutation) the kit uses.

Plain httpx rather than githubkit (see the commit that added it): nine endpoints, and httpx
already parses ``Link`` headers (``response.links``), which is all GitHub's pagination needs.
Pages are followed by the ``next`` URL GitHub gives, verbatim, never rebuilt from page numbers.

Retries (tenacity): throttling (429, or 403 with ``Retry-After`` or an exhausted rate limit)
is retried for every request, since GitHub did not act on it; 5xx and connection failures are
retried only for requests that are safe to repeat (GET, PATCH, DELETE, the idempotent
minimise), so a comment is never posted twice.

    GitHubError            any refusal or failure; names method and path, never the token
    └── GitHubPermissionError   401/403: the token is missing, bad, or read-only
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from reconciler import __version__
from reconciler.errors import ReconcilerError

log = logging.getLogger("reconciler.github")

API_VERSION = "2022-11-28"
PER_PAGE = 100  # GitHub's maximum page size: fewest requests for a long conversation
MAX_WAIT = 60.0  # longest we sleep for a rate limit before giving up and saying so
_SAFE = frozenset({"GET", "PATCH", "PUT", "DELETE"})

MINIMIZE = (
    "mutation($id: ID!, $classifier: ReportedContentClassifiers!) { "
    "minimizeComment(input: {subjectId: $id, classifier: $classifier}) { "
    "minimizedComment { isMinimized } } }"
)


class GitHubError(ReconcilerError):
    """GitHub refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"GitHub {method} {path}: " if method and path else "GitHub: "
        super().__init__(where + message, hint=hint)
        self.status = status


class GitHubPermissionError(GitHubError):
    """401 or 403 that is not a rate limit: retrying with the same token will not help."""


class _Retry(Exception):
    def __init__(self, error: GitHubError, wait: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class GitHubApi:
    """GitHub's REST API at ``api_url``, authenticated with ``token``; use as a context manager."""

    def __init__(
        self,
        api_url: str,
        graphql_url: str,
        token: SecretStr,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._token = token
        self.graphql_url = graphql_url
        self.attempts = attempts
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + "/",
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"reconciler/{__version__}",
            },
        )
        self.requests = 0

    def __enter__(self) -> GitHubApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
        safe: bool | None = None,
    ) -> httpx.Response:
        """One call, retried as the module docstring says; GitHubError unless the status is in ``ok``.

        ``safe``: whether the request may be repeated after a 5xx (default: by its method)."""
        repeatable = method in _SAFE if safe is None else safe
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=_wait,
            reraise=True,
            retry=retry_if_exception_type(_Retry),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, url, json=json, params=params, ok=ok, safe=repeatable)
        except _Retry as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        params: dict[str, Any] | None,
        ok: tuple[int, ...],
        safe: bool,
    ) -> httpx.Response:
        path = _path(url)
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        self.requests += 1
        try:
            response = self._http.request(method, url, json=json, params=params, headers=headers)
        except httpx.TransportError as exc:
            error = GitHubError(
                f"could not reach GitHub: {type(exc).__name__}",
                method=method,
                path=path,
                hint="check GITHUB_API_URL and the runner's network",
            )
            if safe or isinstance(exc, httpx.ConnectError):
                raise _Retry(error, -1.0) from None
            raise error from None
        log.debug("%s %s -> %s", method, path, response.status_code)
        if response.status_code in ok:
            return response
        error = _error(response, method, path)
        throttled = _throttle_wait(response)
        if throttled is not None:
            if throttled > MAX_WAIT:
                raise GitHubError(
                    f"rate limited for another {throttled:.0f} s",
                    status=response.status_code,
                    method=method,
                    path=path,
                    hint="run again later, or use a token with a larger rate limit",
                )
            raise _Retry(error, throttled)
        if response.status_code >= 500 and safe:
            raise _Retry(error, -1.0)
        raise error

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, page by page, following GitHub's ``Link: rel="next"``."""
        url: str | None = path
        query: dict[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        while url is not None:
            response = self.request("GET", url, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError("expected a list", method="GET", path=path)
            yield from items
            url = response.links.get("next", {}).get("url")
            query = None  # the next URL carries its own query

    # ------------------------------------------------------------------ endpoints

    def issue_comments(self, repo: str, number: int) -> Iterator[dict[str, Any]]:
        return self.paginate(f"repos/{repo}/issues/{number}/comments")

    def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        return self._json("POST", f"repos/{repo}/issues/{number}/comments", {"body": body}, ok=(201,))

    def update_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        return self._json("PATCH", f"repos/{repo}/issues/comments/{comment_id}", {"body": body})

    def minimize_comment(self, node_id: str, classifier: str = "OUTDATED") -> None:
        """Hide a comment as outdated (GraphQL ``minimizeComment``; REST has no equivalent)."""
        data = self._json(
            "POST",
            self.graphql_url,
            {"query": MINIMIZE, "variables": {"id": node_id, "classifier": classifier}},
            ok=(200,),
            safe=True,
        )
        if data.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in data["errors"] if isinstance(e, dict))
            raise GitHubError(
                f"minimizeComment failed: {messages or data['errors']}",
                method="POST",
                path=_path(self.graphql_url),
            )

    def issue_labels(self, repo: str, number: int) -> list[str]:
        return [str(label["name"]) for label in self.paginate(f"repos/{repo}/issues/{number}/labels")]

    def add_labels(self, repo: str, number: int, names: list[str]) -> None:
        self.request("POST", f"repos/{repo}/issues/{number}/labels", json={"labels": names}, ok=(200,))

    def remove_label(self, repo: str, number: int, name: str) -> None:
        # 404: someone removed it meanwhile, which is what we wanted.
        self.request(
            "DELETE", f"repos/{repo}/issues/{number}/labels/{quote(name, safe='')}", ok=(200, 204, 404)
        )

    def create_label(self, repo: str, name: str, colour: str, description: str) -> bool:
        """Create a repository label; False if it exists already (422 ``already_exists``)."""
        response = self.request(
            "POST",
            f"repos/{repo}/labels",
            json={"name": name, "color": colour, "description": description},
            ok=(201, 422),
        )
        return response.status_code == 201

    def pulls_for_commit(self, repo: str, sha: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"repos/{repo}/commits/{sha}/pulls"))

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        return self._json("GET", f"repos/{repo}/pulls/{number}", None)

    def create_check_run(self, repo: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"repos/{repo}/check-runs", payload, ok=(201,))

    def update_check_run(self, repo: str, run_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", f"repos/{repo}/check-runs/{run_id}", payload)

    def _json(
        self, method: str, url: str, body: Any, *, ok: tuple[int, ...] = (200,), safe: bool | None = None
    ) -> dict[str, Any]:
        """The JSON object GitHub answered with."""
        response = self.request(method, url, json=body, ok=ok, safe=safe)
        try:
            data = response.json()
        except ValueError as exc:
            raise GitHubError(
                "answered with something that is not JSON", method=method, path=_path(url)
            ) from exc
        if not isinstance(data, dict):
            raise GitHubError("answered with JSON that is not an object", method=method, path=_path(url))
        return data


def _path(url: str) -> str:
    """A request's path for messages: never the host's query string, never a token."""
    return httpx.URL(url).path if url.startswith(("http://", "https://")) else "/" + url.lstrip("/")


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry) and exc.wait >= 0:
        return float(exc.wait)
    return min(0.5 * 2.0 ** (state.attempt_number - 1), 8.0)


def _throttle_wait(response: httpx.Response) -> float | None:
    """Seconds to wait if GitHub throttled this request (primary or secondary rate limit), else None."""
    status = response.status_code
    if status not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return 60.0
    if response.headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(float(response.headers.get("x-ratelimit-reset", "0")) - time.time(), 0.0) + 1.0
        except ValueError:
            return 60.0
    return 60.0 if status == 429 else None


def _error(response: httpx.Response, method: str, path: str) -> GitHubError:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = {}
    message = (
        str(data.get("message") or response.reason_phrase or "error") if isinstance(data, dict) else "error"
    )
    details = (
        [
            str(e.get("message") or e.get("code"))
            for e in (data.get("errors") or [])
            if isinstance(data, dict) and isinstance(e, dict)
        ]
        if isinstance(data, dict)
        else []
    )
    text = f"{status} {message}" + (f" ({'; '.join(details)})" if details else "")
    hint: str | None
    if status in (401, 403):
        hint = (
            "the token is missing or expired: pass GITHUB_TOKEN to the step"
            if status == 401
            else "the token may not do this: give the job 'permissions: pull-requests: write, issues: write' "
            "(and 'checks: write' for --check-run). A pull request from a fork gets a read-only token: "
            "use the two-workflow pattern in docs/gitops.md"
        )
        return GitHubPermissionError(text, status=status, method=method, path=path, hint=hint)
    hint = "check GITHUB_REPOSITORY and the pull request number" if status == 404 else None
    return GitHubError(text, status=status, method=method, path=path, hint=hint)
