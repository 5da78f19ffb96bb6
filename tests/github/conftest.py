"""Fixtures for the GitHub side: the stand-in on 127.0.0.1 and the real CLI in a subprocess,
with the environment GitHub Actions gives a step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import manifest
from tests.github.standin import GitHubStandIn
from tests.reaper import Reaper

PR = 7
HEAD = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


def uuids(n: int, salt: str = "p") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}{i}")) for i in range(n)]


def pr_event(number: int = PR, head: str = HEAD) -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {"number": number, "head": {"sha": head}},
    }


@dataclass
class Step:
    """One step of a job: a working directory, the stand-in, and the CLI to run there."""

    root: Path
    gh: GitHubStandIn
    run_id: int = 1001

    @property
    def summary(self) -> Path:
        return self.root / "step-summary.md"

    @property
    def outputs(self) -> Path:
        return self.root / "github-output.txt"

    def env(
        self, event: dict[str, Any] | None, event_name: str, extra: dict[str, str] | None
    ) -> dict[str, str]:
        event_path = self.root / f"event-{self.run_id}.json"
        event_path.write_text(json.dumps(event or {}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "VNTANA_", "RECONCILER_"))}
        env.update(
            {
                "GITHUB_ACTIONS": "true",
                "CI": "true",
                "NO_COLOR": "1",
                "GITHUB_TOKEN": self.gh.state.token,
                "GITHUB_REPOSITORY": f"{self.gh.state.owner}/{self.gh.state.name}",
                "GITHUB_API_URL": self.gh.url,
                "GITHUB_GRAPHQL_URL": self.gh.url + "/graphql",
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_EVENT_NAME": event_name,
                "GITHUB_EVENT_PATH": str(event_path),
                "GITHUB_RUN_ID": str(self.run_id),
                "GITHUB_RUN_ATTEMPT": "1",
                "GITHUB_SHA": HEAD,
                "GITHUB_STEP_SUMMARY": str(self.summary),
                "GITHUB_OUTPUT": str(self.outputs),
                "GITHUB_WORKSPACE": str(self.root),
            }
        )
        env.update(extra or {})
        return env

    def cli(
        self,
        *args: str,
        event: dict[str, Any] | None = None,
        event_name: str = "pull_request",
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``reconciler ARGS`` as a step would run it; a new run id each time, like a new push."""
        self.run_id += 1
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=self.env(pr_event() if event is None else event, event_name, env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def plan(self, products: dict[str, str] | list[str], *, name: str = "plan.json", **kw: Any) -> Path:
        """Manifests of ``products`` and a saved plan of them against an empty state (offline)."""
        folder = self.root / "manifests"
        folder.mkdir(exist_ok=True)
        (folder / "catalogue.yaml").write_text(manifest(products, **kw))
        out = self.root / name
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "plan",
                "--out",
                str(out),
                "--state",
                str(self.root / "state" / "renders.state.json"),
                "--format",
                "json",
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert done.returncode == 0, done.stderr
        return out


@pytest.fixture
def github(reaper: Reaper) -> Iterator[GitHubStandIn]:
    gh = GitHubStandIn().__enter__()
    try:
        gh.state.issue(PR).head_sha = HEAD
        yield gh
    finally:
        reaper.stop(lambda: gh.__exit__(None, None, None), "the GitHub stand-in")


@pytest.fixture
def step(tmp_path: Path, github: GitHubStandIn) -> Step:
    root = tmp_path / "work"
    root.mkdir()
    return Step(root, github)
