"""What a GitHub Actions job tells a step through its environment, read once and checked.

Every variable is optional until a command needs it; a missing or malformed one is a
ConfigError naming the variable. The token is kept as a SecretStr from the moment it is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from reconciler.errors import ConfigError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class GitHubContext:
    repository: str | None
    api_url: str
    graphql_url: str
    server_url: str
    token: SecretStr | None = field(repr=False)
    event_name: str | None
    event: dict[str, Any]
    run_id: str | None
    run_attempt: str | None
    sha: str | None
    step_summary: Path | None
    output: Path | None
    workspace: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        token = env.get("GITHUB_TOKEN") or None
        return cls(
            repository=env.get("GITHUB_REPOSITORY") or None,
            api_url=api_url,
            graphql_url=(env.get("GITHUB_GRAPHQL_URL") or _graphql_url(api_url)).rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
            token=SecretStr(token) if token else None,
            event_name=env.get("GITHUB_EVENT_NAME") or None,
            event=_event(env.get("GITHUB_EVENT_PATH")),
            run_id=env.get("GITHUB_RUN_ID") or None,
            run_attempt=env.get("GITHUB_RUN_ATTEMPT") or None,
            sha=env.get("GITHUB_SHA") or None,
            step_summary=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            workspace=Path(env["GITHUB_WORKSPACE"]) if env.get("GITHUB_WORKSPACE") else None,
        )

    def require_repository(self) -> str:
        if self.repository is None:
            raise ConfigError(
                "GITHUB_REPOSITORY is not set",
                hint="GitHub Actions sets it to OWNER/NAME; outside Actions, export it yourself",
            )
        if not _REPOSITORY.match(self.repository):
            raise ConfigError(f"GITHUB_REPOSITORY must be OWNER/NAME, got {self.repository!r}")
        return self.repository

    def require_token(self) -> SecretStr:
        if self.token is None:
            raise ConfigError(
                "GITHUB_TOKEN is not set",
                hint="pass it to the step: env: GITHUB_TOKEN: ${{ github.token }} "
                "(with permissions pull-requests: write and issues: write)",
            )
        return self.token

    @property
    def run_url(self) -> str | None:
        """The page of this workflow run, where the job summary is shown."""
        if self.repository is None or self.run_id is None:
            return None
        attempt = f"/attempts/{self.run_attempt}" if self.run_attempt and self.run_attempt != "1" else ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}{attempt}"

    def pull_request_number(self) -> int | None:
        """The pull request this event is about, if the payload says."""
        pr = self.event.get("pull_request")
        if isinstance(pr, dict) and isinstance(pr.get("number"), int):
            return int(pr["number"])
        issue = self.event.get("issue")
        if isinstance(issue, dict) and issue.get("pull_request") and isinstance(issue.get("number"), int):
            return int(issue["number"])
        run = self.event.get("workflow_run")
        if isinstance(run, dict):
            prs = run.get("pull_requests") or []
            if prs and isinstance(prs[0], dict) and isinstance(prs[0].get("number"), int):
                return int(prs[0]["number"])
        return None

    def head_sha(self) -> str | None:
        """The commit the plan was made for: the pull request's head, else the run's commit."""
        pr = self.event.get("pull_request")
        if isinstance(pr, dict) and isinstance((pr.get("head") or {}).get("sha"), str):
            return str(pr["head"]["sha"])
        run = self.event.get("workflow_run")
        if isinstance(run, dict) and isinstance(run.get("head_sha"), str):
            return str(run["head_sha"])
        return self.sha

    def triggering_run_url(self) -> str | None:
        """For a ``workflow_run`` event: the run that made the plan (its summary and artifact)."""
        run = self.event.get("workflow_run")
        if isinstance(run, dict) and isinstance(run.get("html_url"), str):
            return str(run["html_url"])
        return None

    def repo_path(self, file: str) -> str:
        """A file as the repository names it (annotations need that), if it lies in the workspace."""
        path = Path(file)
        if self.workspace is None:
            return path.as_posix()
        try:
            return path.resolve().relative_to(self.workspace.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def _graphql_url(api_url: str) -> str:
    # github.com: https://api.github.com/graphql; GitHub Enterprise Server: https://HOST/api/graphql
    if api_url.endswith("/api/v3"):
        return api_url[: -len("/v3")] + "/graphql"
    return api_url + "/graphql"


def _event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH names {path}, which does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"the event payload {path} (GITHUB_EVENT_PATH) is not readable JSON: {exc}"
        ) from exc
    return data if isinstance(data, dict) else {}


def write_outputs(ctx: GitHubContext, values: Mapping[str, str | int]) -> None:
    """Append step outputs (``name=value`` lines) to ``$GITHUB_OUTPUT``, if Actions gave one."""
    if ctx.output is None:
        return
    text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in values.items())
    try:
        with ctx.output.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(
            f"cannot write step outputs to {ctx.output} (GITHUB_OUTPUT): {exc.strerror}"
        ) from exc
