"""Run the sandbox: embedded in-process on a free loopback port, or as a blocking server.

``EmbeddedSandbox`` is what tests, the CLI's ``--sandbox`` and the benchmarks use::

    with EmbeddedSandbox(data_dir=tmp_path, config=SandboxConfig(...)) as sb:
        sb.url, sb.access_token, sb.organization_uuid, sb.client_uuid
        sb.set_faults(FaultConfig(rate_429=0.5)); sb.wait_idle(timeout=10)
        sb.set_readings(Readings(entity_type_filter="honoured"))
        sb.access_token_for("CLIENT_ORGANIZATION_CONTENT_MANAGER")

Port 0 (the default) lets the OS pick a free port; ``url`` is known once ``start`` returns. Stopping is clean: uvicorn exits, the job
scheduler, render workers and webhook senders are joined, the database is closed. Uvicorn
runs in a worker thread, where it installs no signal handlers.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn

from reconciler.sandbox.app import create_app
from reconciler.sandbox.config import DEFAULT_EMAIL, DEFAULT_PASSWORD, SandboxConfig, load_seed
from reconciler.sandbox.context import SandboxContext
from reconciler.sandbox.faults import FaultConfig, FaultInjector
from reconciler.sandbox.jobs import JobEngine
from reconciler.sandbox.readings import MATRIX, Readings
from reconciler.sandbox.storage_server import StorageServer
from reconciler.sandbox.store import Store
from reconciler.sandbox.users import Directory
from reconciler.sandbox.webhooks import WebhookDispatcher

__all__ = ["MATRIX", "EmbeddedSandbox", "FaultConfig", "Readings", "Sandbox", "SandboxConfig", "serve"]


class Sandbox:
    """The sandbox's moving parts without an HTTP server: store, jobs, webhooks, app."""

    def __init__(self, data_dir: Path | str, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        seed = load_seed(self.config.seed)
        self.store = Store(self.data_dir)
        try:
            self.store.apply_seed(seed)
            workspaces = {c["uuid"]: c["organization_uuid"] for c in self.store.all_clients()}
            self.users = Directory.from_seed(
                seed, self.config.resolved_access_token, DEFAULT_EMAIL, DEFAULT_PASSWORD, workspaces
            )
            self.store.adopt_tokens(self.users.default.email)
            url_secret = bytes.fromhex(self.store.meta("url_secret", lambda: secrets.token_hex(32)))
        except BaseException:
            self.store.close()
            raise
        self.faults = FaultInjector(self.config.faults)
        context: list[SandboxContext] = []  # the job engine and senders read the readings at run time
        self.webhooks = WebhookDispatcher(
            self.store,
            self.faults,
            max_attempts=self.config.webhook_max_attempts,
            backoff_seconds=self.config.webhook_backoff_seconds,
            timeout_seconds=self.config.webhook_timeout_seconds,
            disable_after=self.config.webhook_disable_after,
            readings=lambda: context[0].readings,
        )
        self.jobs = JobEngine(
            self.store,
            self.faults,
            self.webhooks.publish,
            workers=self.config.workers,
            pending_seconds=self.config.job_pending_seconds,
            processing_seconds=self.config.job_processing_seconds,
            readings=lambda: context[0].readings,
        )
        self.context = SandboxContext(
            self.config,
            self.store,
            self.jobs,
            self.webhooks,
            self.faults,
            self.users,
            url_secret,
            self.config.readings,
        )
        context.append(self.context)
        self.app = create_app(self.context)
        orgs = [
            o
            for o in self.store.organizations(member_only=False)
            if o["uuid"] in self.users.default.org_roles
        ]
        if not orgs:
            self.store.close()
            raise ValueError("the seed has no organization the demo user belongs to")
        self.organization_uuid: str = orgs[0]["uuid"]
        clients = self.store.clients(self.organization_uuid)
        self.client_uuid: str | None = clients[0]["uuid"] if clients else None
        self.user = self.context.user

    @property
    def access_token(self) -> str:
        return self.config.resolved_access_token

    def start(self) -> None:
        self.webhooks.start()
        self.jobs.start()

    def stop(self) -> None:
        self.jobs.stop()
        self.webhooks.stop()
        self.store.close()

    def set_faults(self, faults: FaultConfig) -> None:
        """Change fault injection at runtime."""
        self.faults.set(faults)

    @property
    def readings(self) -> Readings:
        """The readings in force."""
        return self.context.readings

    def set_readings(self, readings: Readings) -> None:
        """Switch readings at run time (tests); the next request sees the new ones."""
        if not isinstance(readings, Readings):
            raise TypeError("set_readings takes a Readings")
        self.context.readings = readings

    def request_counts(self) -> dict[str, int]:
        """How many requests the sandbox was sent, by ``"METHOD /path"`` (its own count)."""
        return self.context.requests.snapshot()

    def access_token_for(self, role: str) -> str:
        """The personal access token of the seed user with ``role`` (KeyError naming the roles there are)."""
        return self.users.for_role(role).access_token

    def user_for(self, role: str) -> dict[str, object]:
        """Email, password, token, role, organizations and workspaces of the seed user with ``role``."""
        return self.users.for_role(role).public()

    def wait_idle(self, timeout: float | None = 30.0) -> bool:
        """Block until no job is pending or processing and no webhook delivery is queued.

        Jobs emit webhook events as they finish, so both are checked until they agree.
        Returns False on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.jobs.wait_idle(left):
                return False
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.webhooks.wait_idle(left):
                return False
            if self.jobs.active == 0:
                return True


class EmbeddedSandbox(Sandbox):
    """A sandbox served by uvicorn in a background thread on ``host`` (a free port by default)."""

    def __init__(
        self,
        data_dir: Path | str,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(data_dir, config)
        self.host = host
        self._port = port
        self._bound_port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._storage: StorageServer | None = None

    @property
    def port(self) -> int:
        assert self._bound_port is not None, "sandbox not started"
        return self._bound_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def storage_url(self) -> str:
        """Where signed download URLs point: the storage listener (storage_server.py), or the API."""
        return f"http://{self.host}:{self._storage.port}" if self._storage is not None else self.url

    def start(self, timeout: float = 10.0) -> None:
        """Start the background parts and uvicorn; return once it accepts requests."""
        super().start()
        # uvicorn binds the port itself: handing it a pre-bound socket costs every
        # keep-alive request a 40 ms delayed-ACK stall (measured), so read the port back.
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self._port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run_http, args=(self._server,), name="sandbox-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the sandbox HTTP server did not start on {self.host}:{self._port} (is the port in use?)"
                )
            time.sleep(0.005)
        self._bound_port = int(self._server.servers[0].sockets[0].getsockname()[1])
        # Signed download URLs point at a storage listener of their own (sendfile), as the real
        # platform's point at its bucket: storage_server.py.
        if self.config.storage_listener:
            try:
                self._storage = StorageServer(self.context, self.host, self.config.storage_port)
            except OSError as exc:
                self.stop()
                raise RuntimeError(
                    f"the sandbox storage listener cannot listen on {self.host}:{self.config.storage_port} ({exc})"
                ) from exc
            self._storage.start()
            self.context.storage_port = self._storage.port

    @staticmethod
    def _run_http(server: uvicorn.Server) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind; start() reports that
            server.run()

    def stop(self) -> None:
        """Stop uvicorn and every background thread; safe to call twice."""
        if self._storage is not None:
            self.context.storage_port = None
            self._storage.stop()
            self._storage = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        super().stop()

    def __enter__(self) -> EmbeddedSandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    data_dir: Path | str,
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8040,
    on_ready: Callable[[EmbeddedSandbox], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (the ``reconciler sandbox`` command).

    ``on_ready`` is called once the port is bound (to print the URL and credentials).
    """
    stop = threading.Event()

    def _terminate(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with EmbeddedSandbox(data_dir, config, host=host, port=port) as sandbox:
            if on_ready is not None:
                on_ready(sandbox)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
