"""``reconciler worker``: a process that takes the batches of ``apply --workers`` runs (reconciler.workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import connection_from, platform_options
from reconciler.connection import verbose_logging
from reconciler.errors import ConfigError


@click.command("worker")
@click.option(
    "--state",
    "state_url",
    required=True,
    metavar="URL",
    envvar="RECONCILER_STATE",
    help="The state's postgresql:// URL (with #workspace if not the default); its database holds the queue.",
)
# Hidden: --sandbox is refused with a reason (every process must reach one platform), not listed.
@click.option("--sandbox", is_flag=True, hidden=True)
@platform_options
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Jobs (render batches) worked on at once; each polls and downloads with the apply's --parallelism.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between heartbeats; a worker silent for 3 heartbeats is taken for dead and its jobs "
    "are retried by the others. Use the same value on every worker.",
)
@click.option(
    "--download-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the files this worker downloads, by product (the hashes go to the state either way).",
)
@click.option("--once", is_flag=True, help="Exit when the queue is empty instead of waiting for more runs.")
def worker_command(**kw: Any) -> None:
    """Work on the render batches that 'reconciler apply --workers' enqueues, on this machine."""
    from reconciler.workers.worker import WorkerRequest, run_worker

    if kw.get("sandbox"):
        raise ConfigError(
            "a worker cannot use the embedded sandbox: the apply and the other workers would not reach it",
            hint="run 'reconciler sandbox' and give every process its URL (VNTANA_API_URL)",
        )
    connection = connection_from(kw)
    if connection.verbose:
        verbose_logging()
    request = WorkerRequest(
        state_url=kw["state_url"],
        flags=dict(connection.flags),
        config_path=connection.config_file(),
        concurrency=kw["concurrency"],
        heartbeat=kw["heartbeat"],
        download_dir=kw["download_dir"],
        once=kw["once"],
    )
    run_worker(request, lambda text: click.echo(text, err=True))
