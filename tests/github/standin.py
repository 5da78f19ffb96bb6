"""A local stand-in for the GitHub REST endpoints (and the GraphQL ``minimizeComment``) the kit uses.

Written from GitHub's REST documentation, not from our client: it checks what GitHub checks
(the bearer token, a User-Agent, the 65,536-character body limit, the 50-annotation batch
limit, label existence) and paginates as GitHub does, with ``Link`` headers whose URLs use
the ``/repositories/{id}/…`` form that GitHub returns, so a client that rebuilds page URLs
itself instead of following them fails here. Every request is recorded for the tests.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BODY_LIMIT = 65_536
CLASSIFIERS = {"SPAM", "ABUSE", "OFF_TOPIC", "OUTDATED", "DUPLICATE", "RESOLVED"}


@dataclass
class Recorded:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Issue:
    comments: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    head_sha: str = "0" * 40
    merge_commit_sha: str | None = None
    merged_at: str | None = None


@dataclass
class GitHubState:
    """The repository as the stand-in holds it; tests seed and inspect it directly."""

    owner: str = "octo"
    name: str = "catalogue"
    repo_id: int = 4242
    token: str = "ghs_standin_token"
    read_only: bool = False
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    minimized: set[str] = field(default_factory=set)
    unresolvable: set[str] = field(default_factory=set)
    """Node ids GraphQL cannot resolve (a comment deleted meanwhile)."""
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    """(method, status, headers) answered instead of the next matching request, in order."""
    ids: itertools.count = field(default_factory=lambda: itertools.count(1_000_001))

    def issue(self, number: int) -> Issue:
        return self.issues.setdefault(number, Issue())

    def add_comment(
        self, number: int, body: str, *, login: str = "github-actions[bot]", type_: str = "Bot"
    ) -> dict:
        cid = next(self.ids)
        comment = {
            "id": cid,
            "node_id": "IC_" + base64.b64encode(f"comment{cid}".encode()).decode(),
            "body": body,
            "user": {"login": login, "type": type_},
            "html_url": f"https://github.com/{self.owner}/{self.name}/pull/{number}#issuecomment-{cid}",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        self.issue(number).comments.append(comment)
        return comment

    def comments(self, number: int) -> list[dict[str, Any]]:
        return self.issue(number).comments

    def find_comment(self, cid: int) -> tuple[int, dict[str, Any]] | None:
        for number, issue in self.issues.items():
            for c in issue.comments:
                if c["id"] == cid:
                    return number, c
        return None

    def calls(self, method: str | None = None, prefix: str = "") -> list[Recorded]:
        return [
            r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)
        ]


def _error(
    status: int, message: str, errors: list[dict[str, Any]] | None = None, headers: dict | None = None
):
    body: dict[str, Any] = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(state: GitHubState) -> Starlette:
    repo_prefix = f"/repos/{state.owner}/{state.name}"

    def page(request: Request, items: list[Any], path: str) -> Response:
        per_page = min(int(request.query_params.get("per_page", 30)), 100)
        number = max(int(request.query_params.get("page", 1)), 1)
        start = (number - 1) * per_page
        chunk = items[start : start + per_page]
        last = max((len(items) + per_page - 1) // per_page, 1)
        base = f"{request.url.scheme}://{request.url.netloc}{path}"
        links = []
        if number < last:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": number + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"')
        if number > 1:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": number - 1})}>; rel="prev"')
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": 1})}>; rel="first"')
        return JSONResponse(chunk, headers={"Link": ", ".join(links)} if links else None)

    async def guard(request: Request) -> Response | None:
        try:
            body = await request.json() if (await request.body()) else None
        except json.JSONDecodeError:
            return _error(400, "Problems parsing JSON")
        state.requests.append(
            Recorded(
                request.method,
                request.url.path,
                request.scope["raw_path"].decode(),
                dict(request.query_params),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        request.state.body = body
        for i, (method, status, headers) in enumerate(state.faults):
            if method in ("*", request.method):
                del state.faults[i]
                return _error(status, "injected fault", headers=headers)
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return _error(401, "Bad credentials")
        if not request.headers.get("user-agent"):
            return _error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a "
                "User-Agent header",
            )
        if state.read_only and request.method != "GET":
            return _error(403, "Resource not accessible by integration")
        return None

    def body_ok(body: Any) -> Response | None:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return _error(
                422,
                "Validation Failed",
                [{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
            )
        if len(body["body"]) > BODY_LIMIT:
            return _error(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ],
            )
        return None

    async def list_comments(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        number = int(request.path_params["number"])
        if number not in state.issues:
            return _error(404, "Not Found")
        return page(
            request, state.comments(number), f"/repositories/{state.repo_id}/issues/{number}/comments"
        )

    async def create_comment(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        number = int(request.path_params["number"])
        if number not in state.issues:
            return _error(404, "Not Found")
        if (bad := body_ok(request.state.body)) is not None:
            return bad
        return JSONResponse(state.add_comment(number, request.state.body["body"]), status_code=201)

    async def comment(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        found = state.find_comment(int(request.path_params["cid"]))
        if found is None:
            return _error(404, "Not Found")
        if (bad := body_ok(request.state.body)) is not None:
            return bad
        found[1]["body"] = request.state.body["body"]
        found[1]["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return JSONResponse(found[1])

    async def issue_labels(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        number = int(request.path_params["number"])
        if number not in state.issues:
            return _error(404, "Not Found")
        issue = state.issue(number)
        if request.method == "POST":
            names = (request.state.body or {}).get("labels")
            if not isinstance(names, list) or not names:
                return _error(
                    422, "Validation Failed", [{"resource": "Label", "code": "invalid", "field": "labels"}]
                )
            for n in names:
                state.labels.setdefault(n, {"name": n, "color": "ededed", "description": ""})
                if n not in issue.labels:
                    issue.labels.append(n)
        return page(
            request,
            [state.labels[n] for n in issue.labels],
            f"/repositories/{state.repo_id}/issues/{number}/labels",
        )

    async def remove_label(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        issue = state.issue(int(request.path_params["number"]))
        name = unquote(request.path_params["name"])
        if name not in issue.labels:
            return _error(404, "Label does not exist")
        issue.labels.remove(name)
        return JSONResponse([state.labels[n] for n in issue.labels])

    async def create_label(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        body = request.state.body or {}
        name = body.get("name")
        if name in state.labels:
            return _error(
                422, "Validation Failed", [{"resource": "Label", "code": "already_exists", "field": "name"}]
            )
        state.labels[name] = {
            "name": name,
            "color": body.get("color", "ededed"),
            "description": body.get("description", ""),
        }
        return JSONResponse(state.labels[name], status_code=201)

    async def pulls_for_commit(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        sha = request.path_params["sha"]
        found = [
            {
                "number": n,
                "merge_commit_sha": i.merge_commit_sha,
                "merged_at": i.merged_at,
                "head": {"sha": i.head_sha},
            }
            for n, i in state.issues.items()
            if sha in (i.merge_commit_sha, i.head_sha)
        ]
        return page(request, found, f"/repositories/{state.repo_id}/commits/{sha}/pulls")

    async def pull(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        number = int(request.path_params["number"])
        if number not in state.issues:
            return _error(404, "Not Found")
        i = state.issue(number)
        return JSONResponse(
            {"number": number, "head": {"sha": i.head_sha}, "merge_commit_sha": i.merge_commit_sha}
        )

    async def check_runs(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        body = request.state.body or {}
        annotations = ((body.get("output") or {}).get("annotations")) or []
        if len(annotations) > 50:
            return _error(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "CheckRun",
                        "code": "custom",
                        "message": "Only 50 annotations are allowed per request",
                    }
                ],
            )
        if "run_id" in request.path_params:
            run = state.check_runs.get(int(request.path_params["run_id"]))
            if run is None:
                return _error(404, "Not Found")
            run["output"]["annotations"].extend(annotations)
            return JSONResponse(run)
        for required in ("name", "head_sha"):
            if not body.get(required):
                return _error(
                    422,
                    "Validation Failed",
                    [{"resource": "CheckRun", "code": "missing_field", "field": required}],
                )
        rid = next(state.ids)
        run = {
            "id": rid,
            "name": body["name"],
            "head_sha": body["head_sha"],
            "status": body.get("status"),
            "conclusion": body.get("conclusion"),
            "html_url": f"https://github.com/runs/{rid}",
            "output": {**(body.get("output") or {}), "annotations": list(annotations)},
        }
        state.check_runs[rid] = run
        return JSONResponse(run, status_code=201)

    async def graphql(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        body = request.state.body or {}
        query, variables = str(body.get("query", "")), body.get("variables") or {}
        if "minimizeComment" not in query:
            return JSONResponse({"errors": [{"message": "the stand-in knows only minimizeComment"}]})
        if variables.get("classifier") not in CLASSIFIERS:
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": f"Variable $classifier of type ReportedContentClassifiers! "
                            f"was provided invalid value {variables.get('classifier')}"
                        }
                    ]
                }
            )
        node = variables.get("id")
        if node in state.unresolvable or not any(
            c["node_id"] == node for i in state.issues.values() for c in i.comments
        ):
            return JSONResponse(
                {
                    "data": {"minimizeComment": None},
                    "errors": [
                        {
                            "type": "NOT_FOUND",
                            "message": f"Could not resolve to a node with the global id of '{node}'",
                        }
                    ],
                }
            )
        state.minimized.add(node)
        return JSONResponse({"data": {"minimizeComment": {"minimizedComment": {"isMinimized": True}}}})

    routes = [
        Route(repo_prefix + "/issues/{number:int}/comments", list_comments, methods=["GET"]),
        Route(
            f"/repositories/{state.repo_id}/issues/{{number:int}}/comments", list_comments, methods=["GET"]
        ),
        Route(repo_prefix + "/issues/{number:int}/comments", create_comment, methods=["POST"]),
        Route(repo_prefix + "/issues/comments/{cid:int}", comment, methods=["PATCH"]),
        Route(repo_prefix + "/issues/{number:int}/labels", issue_labels, methods=["GET", "POST"]),
        Route(f"/repositories/{state.repo_id}/issues/{{number:int}}/labels", issue_labels, methods=["GET"]),
        Route(repo_prefix + "/issues/{number:int}/labels/{name:path}", remove_label, methods=["DELETE"]),
        Route(repo_prefix + "/labels", create_label, methods=["POST"]),
        Route(repo_prefix + "/commits/{sha}/pulls", pulls_for_commit, methods=["GET"]),
        Route(f"/repositories/{state.repo_id}/commits/{{sha}}/pulls", pulls_for_commit, methods=["GET"]),
        Route(repo_prefix + "/pulls/{number:int}", pull, methods=["GET"]),
        Route(repo_prefix + "/check-runs", check_runs, methods=["POST"]),
        Route(repo_prefix + "/check-runs/{run_id:int}", check_runs, methods=["PATCH"]),
        Route("/graphql", graphql, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class GitHubStandIn:
    """The app served by uvicorn on 127.0.0.1 in a thread; ``url`` once started."""

    def __init__(self, state: GitHubState | None = None) -> None:
        self.state = state or GitHubState()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GitHubStandIn:
        config = uvicorn.Config(
            create_app(self.state),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="github-standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the GitHub stand-in did not start")
            time.sleep(0.005)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
