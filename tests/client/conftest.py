"""One embedded sandbox for the client tests, on 127.0.0.1, with fast render jobs.

Faults and readings are reset after every test. Each test makes its own client: a login
revokes the previous token of the same scope, so clients of earlier tests are never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from reconciler.client import RetryPolicy, VntanaClient
from reconciler.settings import ClientSettings

if TYPE_CHECKING:
    from reconciler.sandbox.server import EmbeddedSandbox

# Short backoff so that retried tests stay fast; the bounds are the real defaults' shape.
FAST_RETRIES = RetryPolicy(max_attempts=6, max_elapsed=20.0, backoff_initial=0.02, backoff_max=0.2)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    # Imported here so that the tests that need no sandbox run without its dependencies.
    from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

    config = SandboxConfig(job_pending_seconds=0.02, job_processing_seconds=0.02)
    with EmbeddedSandbox(data_dir=tmp_path_factory.mktemp("sandbox"), config=config) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        from reconciler.sandbox.server import FaultConfig, Readings

        sandbox = request.getfixturevalue("sandbox")
        sandbox.set_faults(FaultConfig())
        sandbox.set_readings(Readings())


@pytest.fixture
def reading(sandbox: EmbeddedSandbox) -> Callable[..., None]:
    """Switch the sandbox to a reading of VNTANA's documents for this test: ``reading(download="comments")``."""
    from reconciler.sandbox.server import Readings

    def use(**values: object) -> None:
        sandbox.set_readings(Readings(**values))  # type: ignore[arg-type]

    return use


MakeClient = Callable[..., VntanaClient]


@pytest.fixture
def make_client(sandbox: EmbeddedSandbox) -> Iterator[MakeClient]:
    """Build clients of the sandbox; ``settings`` overrides go in as keywords."""
    made: list[VntanaClient] = []

    def make(
        *, retry_policy: RetryPolicy = FAST_RETRIES, role: str | None = None, **overrides: object
    ) -> VntanaClient:
        token = sandbox.access_token_for(role) if role else sandbox.access_token
        values: dict[str, object] = {"api_url": sandbox.url, "token": token}
        values.update(overrides)
        client = VntanaClient(ClientSettings(**values), retry_policy=retry_policy)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
