"""``reconciler plan``: load the manifests and the state, ask the platform when refreshing, and build
the plan. Never writes the state. ``apply`` (reconciler.applying) plans the same way.

``ApplyRequest`` is what plan, apply and refresh were asked, split by concern: what to plan
(``PlanShaping``), which platform (``Connection``), how apply runs (``Execution``) and how it is
shown (``Output``). Nothing here prints or knows click: notes go through the ``Note`` the caller gives.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.connection import Connection, Note, open_client
from reconciler.errors import PlanFileError
from reconciler.loader import load_desired
from reconciler.locations import DEFAULT_SANDBOX_DIR, DEFAULT_STATE, SANDBOX_STATE, command, same_location
from reconciler.observed import Observed
from reconciler.plan import Budget, Plan
from reconciler.planner import DEFAULT_MAX_BATCH_SIZE, Limits, PlanOptions, build_plan
from reconciler.refresh import observe
from reconciler.settings import BUDGET_KEYS, resolve_budget
from reconciler.spec import Desired
from reconciler.state import FileStateStore, State, StateStore, open_store
from reconciler.state.model import RecordedState


@dataclass(frozen=True)
class PlanShaping:
    """What to plan: forcing, targeting, pruning, batching, the breaker, the budget, refreshing."""

    replace: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    prune: str | None = None
    allow_large: bool = False
    max_rerender_share: float | None = None
    max_deletes: int = 10
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_frames: int | None = None
    max_requests: int | None = None
    max_video_seconds: float | None = None
    allow_over_budget: bool = False
    refresh: bool = False
    """Ask the platform what each product holds and plan drift as re-renders."""
    verify: bool = False
    """With ``refresh``: download and re-hash every recorded file."""

    def limits(self) -> Limits:
        """The large-change breaker's limits from ``--max-rerender-share`` and ``--max-deletes``."""
        if self.max_rerender_share is None:
            return Limits(max_deletes=self.max_deletes)
        # An explicit share is taken at its word: no floor for small catalogues.
        return Limits(rerender_share=self.max_rerender_share, rerender_floor=0, max_deletes=self.max_deletes)

    def budget(self, config_path: Path | None) -> Budget:
        """Flags over ``budget:`` in the config file (none for the sandbox: its renders are free)."""
        return resolve_budget({k: getattr(self, k) for k in BUDGET_KEYS}, config_path)

    def plan_options(self, config_path: Path | None) -> PlanOptions:
        return PlanOptions(
            replace=self.replace,
            targets=self.targets,
            excludes=self.excludes,
            prune=self.prune,
            max_batch_size=self.max_batch_size,
            limits=self.limits(),
            allow_large=self.allow_large,
            budget=self.budget(config_path),
            allow_over_budget=self.allow_over_budget,
        )


@dataclass(frozen=True)
class Execution:
    """How apply runs: a saved plan or not, the lock, confirmation, waiting, webhooks, downloads."""

    planfile: Path | None = None
    lock_timeout: float = 0.0
    auto_approve: bool = False
    refresh_only: bool = False
    """Accept what the platform holds into the state; render nothing."""
    parallelism: int = 4
    product_timeout: float = 900.0
    poll_interval: float | None = None
    webhook_listen: str | None = None
    webhook_url: str | None = None
    download_dir: Path | None = None
    workers: bool = False
    """Enqueue the batches for ``reconciler worker`` processes and follow them (reconciler.workers)."""
    wait: bool = True
    """False: ``apply --no-wait``, trigger and checkpoint, then exit; ``collect`` waits later."""


@dataclass(frozen=True)
class Output:
    """How a run is shown: ``fmt`` text, json or markdown; ``colour`` on a terminal that wants it."""

    fmt: str = "text"
    colour: bool = False


@dataclass(frozen=True)
class ApplyRequest:
    """Every option of plan / apply / refresh, typed and grouped by concern (the CLI only parses)."""

    manifests: list[Path]
    state_path: Path | str
    shaping: PlanShaping = field(default_factory=PlanShaping)
    connection: Connection = field(default_factory=Connection)
    execution: Execution = field(default_factory=Execution)
    output: Output = field(default_factory=Output)

    @property
    def sandbox_dir(self) -> Path | None:
        """The embedded sandbox's data folder, when this run uses it (what a hint names)."""
        return self.connection.sandbox_dir

    @property
    def fmt(self) -> str:
        return self.output.fmt

    def again(self, verb: str) -> str:
        """``reconciler VERB`` as this run would need it typed again (for hints)."""
        return command(self, verb)

    def note(self, note: Note) -> Note | None:
        """``note`` for text output; nothing for JSON, where stdout is for machines and stderr stays quiet."""
        return note if self.output.fmt == "text" else None


def run_plan(req: ApplyRequest, note: Note) -> Plan:
    """``reconciler plan``: offline unless ``refresh``; never writes the state."""
    desired = load_desired(req.manifests)  # manifests first: their errors are the likelier ones
    sandbox_note(req, "plan", note)
    store = open_store(req.state_path)
    if not req.shaping.refresh and isinstance(store, FileStateStore):
        # Records validated as the planner needs them, from a cached index (reconciler.state.index).
        return make_plan(req, store, store.read_for_plan(), None, desired)
    state = store.read()
    if not req.shaping.refresh:
        return make_plan(req, store, state, None, desired)
    with ExitStack() as stack:
        from reconciler.client.workspaces import WorkspaceClients

        client = WorkspaceClients(open_client(req.connection, stack, req.note(note)), {})
        client.follow(state, desired.workspaces, {u: p.workspace for u, p in desired.products.items()})
        return make_plan(req, store, state, observe_for(req, client, state, desired), desired)


def check_plan_target(plan: Plan, req: ApplyRequest, store: StateStore) -> None:
    """A saved plan is applied to the state it was made from: name the command that does, rather
    than ask for a token or call the plan stale (``plan --sandbox --out F`` then ``apply F``)."""
    made_for = plan.state.location
    if not made_for or same_location(made_for, store.location):
        return
    sandbox = same_location(made_for, str(SANDBOX_STATE))
    fixed = replace(
        req,
        state_path=Path(made_for) if not sandbox else SANDBOX_STATE,
        connection=replace(
            req.connection, sandbox_dir=(req.sandbox_dir or DEFAULT_SANDBOX_DIR) if sandbox else None
        ),
    )
    where = "the embedded sandbox's state" if sandbox else "the state"
    raise PlanFileError(
        f"{req.execution.planfile} was made from {where} {made_for}, not {store.location}",
        hint=f"run '{fixed.again('apply')} {req.execution.planfile}'",
    )


def sandbox_note(req: ApplyRequest, verb: str, note: Note) -> None:
    """After the README's first command (``apply --sandbox``), a plain ``plan`` would read the
    real platform's state, which does not exist yet, and offer to render everything: say so."""
    if (
        req.sandbox_dir is not None
        or req.state_path != DEFAULT_STATE
        or DEFAULT_STATE.exists()
        or not SANDBOX_STATE.exists()
    ):
        return
    note(
        f"Note: {DEFAULT_STATE} (the state of the real VNTANA platform) does not exist yet, so this {verb} "
        f"starts from nothing; the sandbox's renders are in {SANDBOX_STATE}: 'reconciler {verb} --sandbox' "
        "works with those."
    )


def make_plan(
    req: ApplyRequest,
    store: StateStore,
    state: RecordedState,
    observed: Observed | None,
    desired: Desired | None = None,
) -> Plan:
    """The plan for this request, from the manifests (loaded unless given) and ``state``."""
    desired = desired or load_desired(req.manifests)
    options = req.shaping.plan_options(req.connection.config_file())
    return build_plan(desired, state, options, location=store.location, observed=observed)


def observe_for(req: ApplyRequest, client: Any, state: State, desired: Desired | None = None) -> Observed:
    """What the platform holds for every rendered product in the state and, with ``desired``,
    for the products about to be rendered for the first time (renders made elsewhere?)."""
    new = (
        [u for u in desired.products if u not in state.products]
        if desired is not None and not req.execution.refresh_only
        else []
    )
    return observe(client, state, verify=req.shaping.verify, parallelism=req.execution.parallelism, also=new)
