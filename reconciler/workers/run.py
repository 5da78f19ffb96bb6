"""What ``apply --workers`` adds to ``reconciler.applying``'s run: checks, the shared login, the run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from reconciler.errors import ConfigError
from reconciler.events import Hooks
from reconciler.executor import ApplyOptions, ApplyReport
from reconciler.plan import Plan
from reconciler.settings import ClientSettings
from reconciler.state import State, StateStore
from reconciler.state.pgstore import PgLocation, PgStateStore, parse_location
from reconciler.workers.coordinator import apply_on_workers, finished
from reconciler.workers.shared import SharedApi
from reconciler.workers.worker import prepare, require_pg

if TYPE_CHECKING:
    from reconciler.planning import ApplyRequest


class WorkersRun:
    """One ``apply --workers``: made by ``check`` before anything runs, then the client's shared
    session (``shared``) and the executor's stand-in (``execute``, an ``executor.Execute``)."""

    def __init__(self, where: PgLocation, note: Callable[[str], None]) -> None:
        self.where = where
        self.note = note

    @classmethod
    def check(cls, req: ApplyRequest, note: Callable[[str], None]) -> WorkersRun:
        """Refuse what cannot work across machines, before anything is asked of the platform; make
        the state and queue schemas current."""
        if req.sandbox_dir is not None:
            raise ConfigError(
                "--workers cannot use the embedded sandbox: it lives inside this process, where no worker "
                "reaches it",
                hint="run 'reconciler sandbox' and point the apply and the workers at it with VNTANA_API_URL",
            )
        if req.execution.webhook_listen:
            raise ConfigError(
                "--workers cannot listen for webhooks: the workers poll for their own products",
                hint="leave out --webhook-listen",
            )
        if not req.execution.wait:
            raise ConfigError(
                "--workers cannot be combined with --no-wait: the workers write under this apply's lock, "
                "and refuse to once it has exited",
                hint="leave out --no-wait (the apply waits while the workers render), or leave out --workers "
                "and run 'reconciler collect' later",
            )
        require_pg(str(req.state_path), "apply --workers")
        where = parse_location(str(req.state_path))
        prepare(where)
        return cls(where, note)

    def shared(self, stack: ExitStack) -> Callable[[ClientSettings], SharedApi]:
        """Makes the apply's shared session (closed with ``stack``) from its client's settings."""

        def make(settings: ClientSettings) -> SharedApi:
            api = SharedApi(self.where, settings)
            stack.callback(api.close)
            return api

        return make

    def execute(
        self, plan: Plan, store: StateStore, state: State, client: Any, hooks: Hooks, options: ApplyOptions
    ) -> ApplyReport:
        """As the executor would, with the batches done by ``reconciler worker`` processes; raises
        the CredentialsError a worker stopped on."""
        assert isinstance(store, PgStateStore)
        outcome = None
        try:
            outcome = apply_on_workers(plan, store, state, client, hooks, options, self.where, self.note)
        finally:
            if outcome is not None:
                hooks.on_event(finished(outcome, client.stats.snapshot().as_dict()))
        if outcome.halted is not None:
            raise outcome.halted
        return outcome.report
