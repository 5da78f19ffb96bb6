"""The PostgreSQL state backend at scale: checkpoint cost per product, and plan against 100,000 products.

    .venv/bin/python bench/pg_state.py                      # 1,000 and 100,000 products
    .venv/bin/python bench/pg_state.py --sizes 1000 10000 --checkpoints 600

Starts its own PostgreSQL (tests/pgserver.py: initdb + pg_ctl in a temp dir on a free port of
127.0.0.1, fsync ON, so a checkpoint pays for its commit as it would in production), or uses
RECONCILER_BENCH_PG_URL. For each size it builds plan_scale.py's catalogue (manifests and a
matching state with 1% of the products at an older spec), copies the state file into its
own workspace with ``state migrate``'s code path, then:

  1. checkpoint  under the lock, ``checkpoint`` N times with the executor's three records
                 (requested, in flight, rendered), on PostgreSQL and, for contrast, on the
                 JSON file's journal. Printed: ms per checkpoint and the ratio of the largest
                 size to the smallest (target: flat, i.e. about 1).
  2. plan        (largest size) load_desired + state read + build_plan + text and JSON views,
                 in a fresh process per run, with the state in PostgreSQL and the same state
                 as a file; then the real ``reconciler plan --format json`` CLI both ways.
                 Printed: the times, the state-read phase, and the ratio PostgreSQL / file.

Nothing is asserted: a missed target prints [MISS] and the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

FLAT_RATIO = 1.5  # checkpoint cost at the largest size over the smallest: "flat" allows noise, not growth


def mark(ok: bool) -> str:
    return "[ok]  " if ok else "[MISS]"


def records_for(state: Any, k: int) -> list[tuple[str, Any]]:
    """The executor's three checkpoints of a product (requested, in flight, rendered), for k products."""
    from reconciler.state import RenderRequest, Status, utcnow

    uuids = sorted(state.products)[:: max(1, len(state.products) // k)][:k]
    out = []
    for j, u in enumerate(uuids):
        rec = state.products[u]
        req = RenderRequest(request_id=str(uuidlib.uuid4()), spec_hash=rec.spec_hash, requested_at=utcnow())
        phase = j % 3
        if phase == 0:
            out.append(
                (
                    u,
                    rec.model_copy(
                        update={"status": Status.REQUESTED, "request": req, "updated_at": utcnow()}
                    ),
                )
            )
        elif phase == 1:
            out.append(
                (
                    u,
                    rec.model_copy(
                        update={
                            "status": Status.IN_FLIGHT,
                            "updated_at": utcnow(),
                            "request": req.model_copy(update={"accepted_at": utcnow()}),
                        }
                    ),
                )
            )
        else:
            out.append(
                (
                    u,
                    rec.model_copy(
                        update={
                            "status": Status.RENDERED,
                            "updated_at": utcnow(),
                            "history": rec.superseded(),
                        }
                    ),
                )
            )
    return out


def time_checkpoints(stores: dict[int, Any], k: int, rounds: int = 5) -> dict[int, float]:
    """Seconds per checkpoint for each store (median over rounds of k), all under their locks.

    Rounds take turns between the sizes, so whatever else the machine does (autovacuum after a
    bulk load, the server's own checkpoints) lands on every size alike instead of on one."""
    times: dict[int, list[float]] = {n: [] for n in stores}
    with ExitStack() as stack:
        states = {}
        for n, store in stores.items():
            stack.enter_context(store.lock("bench"))
            states[n] = store.fold()
        for _ in range(rounds):
            for n, store in stores.items():
                records = records_for(states[n], k)
                started = time.perf_counter()
                for u, rec in records:
                    store.checkpoint(states[n], u, rec)
                times[n].append((time.perf_counter() - started) / len(records))
    return {n: statistics.median(t) for n, t in times.items()}


def load(file_state: Path, url: str) -> float:
    """Copy the state file into the workspace at ``url`` (state migrate's path); seconds to write it."""
    from reconciler.state import open_store

    state = open_store(file_state).read()
    target = open_store(url)
    started = time.perf_counter()
    with target.lock("state migrate"):
        target.write(state, bump=False)
    return time.perf_counter() - started


def settle(url: str) -> None:
    """Let the server finish with a bulk load before timing: statistics, visibility map, dirty
    buffers flushed. Otherwise the first checkpoints after 100,000 rows share the disk with the
    checkpointer's flush and autovacuum, and measure those instead."""
    import psycopg

    with psycopg.connect(url.partition("#")[0], autocommit=True) as conn:
        conn.execute(
            "VACUUM ANALYZE reconciler.products, reconciler.changes, reconciler.versions, "
            "reconciler.workspaces"
        )
        with contextlib.suppress(psycopg.Error):  # superusers (or pg_checkpoint members) only; fine to skip
            conn.execute("CHECKPOINT")


# -- the plan phase, in a child process --------------------------------------------------------


def phase_plan(manifests: Path, location: str) -> dict[str, Any]:
    started = time.perf_counter()
    from reconciler.loader import load_desired
    from reconciler.planner import build_plan
    from reconciler.state import open_store
    from reconciler.views.plan import render_json, render_text

    marks = {"import": time.perf_counter() - started}
    t = time.perf_counter()
    desired = load_desired([manifests])
    marks["load_desired"] = time.perf_counter() - t
    t = time.perf_counter()
    store = open_store(location)
    state = store.read()
    marks["state_read"] = time.perf_counter() - t
    t = time.perf_counter()
    plan = build_plan(desired, state, location=store.location)
    marks["build_plan"] = time.perf_counter() - t
    t = time.perf_counter()
    render_text(plan)
    render_json(plan)
    marks["views"] = time.perf_counter() - t
    return {
        "seconds": time.perf_counter() - started,
        "marks": marks,
        "counts": {k: v for k, v in plan.counts().items() if v},
    }


def child_plan(manifests: Path, location: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", str(manifests), location],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def cli_plan(manifests: Path, location: str) -> float:
    exe = Path(sys.executable).with_name("reconciler")
    cmd = [
        str(exe) if exe.exists() else "reconciler",
        "plan",
        "--manifests",
        str(manifests),
        "--state",
        location,
        "--format",
        "json",
    ]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--checkpoints", type=int, default=300, help="checkpoints per round (three rounds)")
    parser.add_argument("--repeat", type=int, default=2, help="plan runs per store; the best is kept")
    parser.add_argument("--phase", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase_plan(Path(args.phase[0]), args.phase[1])))
        return

    import plan_scale

    from reconciler.state import open_store
    from tests.pgserver import PgServer

    server = None
    base = os.environ.get("RECONCILER_BENCH_PG_URL")
    if base is None:
        server = PgServer.start(durable=True)
        base = server.create_database("reconciler_bench")
    root = Path(tempfile.mkdtemp(prefix="pg-state-bench-"))
    failed: list[str] = []
    try:
        print(f"PostgreSQL: {open_store(base).location} ({'started here, fsync on' if server else 'given'})")
        built: dict[int, tuple[Path, Path, str]] = {}
        pg_stores, file_stores, loads = {}, {}, {}
        print(
            "\n== 1. checkpoint cost per product (under the lock; median of 5 rounds of "
            f"{args.checkpoints}, taking turns between the sizes; the executor's requested / in flight / "
            "rendered records)"
        )
        for n in args.sizes:
            manifests, state_file = plan_scale.build(root / str(n), n)
            tag = uuidlib.uuid4().hex[:8]
            url, plan_url = f"{base}#checkpoints-{n}-{tag}", f"{base}#plan-{n}-{tag}"
            loads[n] = load(state_file, url)
            if n == max(args.sizes):
                load(state_file, plan_url)  # a copy the checkpoints below do not touch
            built[n] = (manifests, state_file, plan_url)
            pg_stores[n] = open_store(url)
            scratch = root / f"file-{n}" / "renders.state.json"
            scratch.parent.mkdir(parents=True)
            shutil.copy(state_file, scratch)
            file_stores[n] = open_store(scratch)
        settle(base)
        pg, file = (
            time_checkpoints(pg_stores, args.checkpoints),
            time_checkpoints(file_stores, args.checkpoints),
        )
        per_size = {n: (pg[n], file[n]) for n in args.sizes}
        for n in args.sizes:
            print(
                f"  {n:>7,} products: PostgreSQL {pg[n] * 1000:6.2f} ms/checkpoint   JSON journal "
                f"{file[n] * 1000:6.2f} ms/checkpoint   (state migrate of the file into PostgreSQL: "
                f"{loads[n]:.1f} s)"
            )
        small, large = min(args.sizes), max(args.sizes)
        if small != large:
            ratio = per_size[large][0] / per_size[small][0]
            ok = ratio <= FLAT_RATIO
            print(
                f"  {mark(ok)} PostgreSQL checkpoint at {large:,} / at {small:,}: {ratio:.2f} (flat: "
                f"<= {FLAT_RATIO})"
            )
            if not ok:
                failed.append(f"checkpoint cost grew {ratio:.2f}x")

        manifests, state_file, url = built[large]
        print(
            f"\n== 2. plan against {large:,} products (1% changed): the state in PostgreSQL vs the same state "
            "as a file"
        )
        runs = {}
        for name, location in (("file", str(state_file)), ("postgresql", url)):
            best = min(
                (child_plan(manifests, location) for _ in range(args.repeat)), key=lambda r: r["seconds"]
            )
            runs[name] = best
            print(
                f"  {name:<10} in-process {best['seconds']:.2f} s   "
                + ", ".join(f"{k} {v:.2f} s" for k, v in best["marks"].items())
            )
        if runs["file"]["counts"] != runs["postgresql"]["counts"]:
            failed.append(f"the plans differ: {runs['file']['counts']} vs {runs['postgresql']['counts']}")
        ratio = runs["postgresql"]["seconds"] / runs["file"]["seconds"]
        read_ratio = runs["postgresql"]["marks"]["state_read"] / runs["file"]["marks"]["state_read"]
        print(
            f"  ratio PostgreSQL / file: plan {ratio:.2f}, state read {read_ratio:.2f}   "
            f"(actions {runs['postgresql']['counts']})"
        )
        cli = {
            name: min(cli_plan(manifests, loc) for _ in range(args.repeat))
            for name, loc in (("file", str(state_file)), ("postgresql", url))
        }
        print(
            f"  reconciler plan (CLI): file {cli['file']:.2f} s, PostgreSQL {cli['postgresql']:.2f} s, "
            f"ratio {cli['postgresql'] / cli['file']:.2f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if server is not None:
            server.stop()
    if failed:
        sys.exit("targets missed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
