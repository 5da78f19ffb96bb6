"""``apply --workers`` and ``reconciler worker``: one run spread over many machines (issue 10).

    coordinator.py  the apply's side: prune and labels locally, one job per batch, follow the events
    worker.py       the worker's side: procrastinate's worker loop, heartbeats, stalled-job recovery
    job.py          one job: the local executor on the job's products, under the run's state lock
    queue.py        procrastinate on the state's database: its schema, the job's arguments
    shared.py       one VNTANA login (encrypted) and one throttle for every worker
    events.py       the run's progress events, from the workers to the apply
    run.py          the glue ``reconciler.applying`` calls

Imported only for ``--workers`` and ``worker``: procrastinate and cryptography load only then.
"""

from importlib.util import find_spec

from reconciler.errors import ConfigError

_MISSING = [name for name in ("procrastinate", "cryptography") if find_spec(name) is None]
if _MISSING:  # checked on import, so the commands say it instead of failing with a traceback
    raise ConfigError(
        f"apply --workers and 'reconciler worker' need {' and '.join(_MISSING)}, which this installation lacks",
        hint="pip install 'reconciler[workers]'",
    )
