"""Fixtures for the sandbox tests: real sandboxes on 127.0.0.1, an API helper, the schemas.

Everything goes over real HTTP (httpx) to an ``EmbeddedSandbox``; nothing is mocked. Job
timing is shortened so the whole suite stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig
from tests.reaper import Reaper

from .contract import _validator, schema_name, spec
from .helpers import FAST, Api, Receiver


@pytest.fixture
def sandbox_factory(tmp_path: Path, reaper: Reaper) -> Iterator[Callable[..., EmbeddedSandbox]]:
    """Start sandboxes of one test (fast timing unless told otherwise); stopped afterwards."""
    started: list[EmbeddedSandbox] = []

    def make(
        config: SandboxConfig | None = None, data_dir: Path | None = None, **options: Any
    ) -> EmbeddedSandbox:
        cfg = config or SandboxConfig(**{**FAST, **options})
        sb = EmbeddedSandbox(data_dir or tmp_path / f"sandbox-{len(started)}", cfg)
        sb.start()
        started.append(sb)
        return sb

    yield make
    for sb in reversed(started):
        reaper.stop(sb.stop, f"the sandbox in {sb.data_dir}")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    """A sandbox shared by the tests of one module (default seed, fast job timing).

    Starting and stopping one costs ~0.2 s, so read-mostly tests share it; a test that
    changes faults or needs a clean slate takes ``fresh_sandbox`` or ``sandbox_factory``.
    """
    with EmbeddedSandbox(tmp_path_factory.mktemp("sandbox"), SandboxConfig(**FAST)) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox(sandbox_factory: Callable[..., EmbeddedSandbox]) -> EmbeddedSandbox:
    """A sandbox of this test alone."""
    return sandbox_factory()


@pytest.fixture
def api(sandbox: EmbeddedSandbox) -> Iterator[Api]:
    """An ``Api`` logged in to the shared sandbox's default organization."""
    client = Api(sandbox)
    client.login()
    yield client
    client.close()


@pytest.fixture
def fresh_api(fresh_sandbox: EmbeddedSandbox) -> Iterator[Api]:
    """An ``Api`` logged in to a sandbox of this test alone."""
    client = Api(fresh_sandbox)
    client.login()
    yield client
    client.close()


@pytest.fixture
def api_factory() -> Iterator[Callable[[EmbeddedSandbox], Api]]:
    """Make more (not yet logged in) ``Api`` clients; closed afterwards."""
    made: list[Api] = []

    def make(sb: EmbeddedSandbox) -> Api:
        made.append(Api(sb))
        return made[-1]

    yield make
    for a in made:
        a.close()


@pytest.fixture(scope="session")
def validate() -> Callable[[str, Any], None]:
    """``validate(schema_name, instance)`` against ``#/components/schemas/<name>`` of the YAML.

    Zone-less ``date-time`` values pass (the guides' examples, the default reading); an error
    answer's ``response: null`` (error-codes.md) is checked as absent.
    """

    def check(name: str, instance: Any) -> None:
        assert name in spec()["components"]["schemas"], name
        if (
            isinstance(instance, dict)
            and instance.get("success") is False
            and instance.get("response", 0) is None
        ):
            instance = {k: v for k, v in instance.items() if k != "response"}
        _validator(name, True, ()).validate(instance)

    return check


@pytest.fixture(scope="session")
def response_schema() -> Callable[[str, str, int], str]:
    """The schema name the YAML documents for (path, method, status)."""

    def find(path: str, method: str, status: int) -> str:
        name, _ = schema_name(path, method, status)
        assert name is not None, (path, method, status)
        return name

    return find


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
