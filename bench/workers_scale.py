"""How `apply --workers` scales: 2,000 products with 1, 2 and 4 `reconciler worker` processes.

    .venv/bin/python bench/workers_scale.py                     # everything, about 6 minutes
    .venv/bin/python bench/workers_scale.py --skip-pg-state     # the workers only
    .venv/bin/python bench/workers_scale.py --products 500 --file-kib 64 --workers 1 2

Starts its own PostgreSQL (tests/pgserver.py, fsync on) or uses RECONCILER_BENCH_PG_URL, and a
sandbox in its own process (fast job timing, products created on first use, four render
threads) whose every result file is padded with random bytes to ``--file-kib`` (default 256
KiB: a still, an MP4 and a GIF per product, so about 0.75 MiB a product; a real catalogue's
files are 0.1 to 5 MB, scaled down so that four runs of 2,000 products fit a shared machine).
Then, in one run and each on products of its own (a state workspace each, so no run sees
another's files):

  * a local ``reconciler apply`` (no queue), for reference;
  * ``apply --workers`` with 1, 2 and 4 ``reconciler worker`` processes (``--concurrency 2``),
    started before the apply and stopped after it.

Printed per run: products recorded, seconds of the run (the RunFinished event), products
recorded per second, MiB/s downloaded, the speed-up over one worker, and logins the platform
saw. Then ``bench/pg_state.py`` (checkpoint cost per product at 1,000 and 100,000 products on
PostgreSQL, and plan time against 100,000 products in PostgreSQL and in a file), whose own
figures are printed as it prints them. Nothing is asserted; a run that did not record every
product is marked [MISS] and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMESPACE = uuidlib.UUID("3c7a1e0f-5b2d-4e8a-9f61-2d4b7c0e9a11")
MIB = 1 << 20

SPEC = """defaults:
  imageWidth: 32
  imageHeight: 32
  imageFormat: PNG
  turntable:
    includeGif: true
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
products:
"""

# The sandbox, in a process of its own: every result file padded to the given size.
SANDBOX = r"""
import json, os, sys
from pathlib import Path
from reconciler.sandbox import store as store_module
from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

pad = int(sys.argv[2])
filler = os.urandom(pad)
plain = store_module.Store.write_blob

def padded(self, blob_id, data):
    return plain(self, blob_id, data + filler[: max(0, pad - len(data))])

store_module.Store.write_blob = padded
config = SandboxConfig(auto_create_products=True, job_pending_seconds=0.01, job_processing_seconds=0.02, workers=4)
with EmbeddedSandbox(data_dir=Path(sys.argv[1]), config=config) as sb:
    print(json.dumps({"url": sb.url, "token": sb.access_token, "org": sb.organization_uuid}), flush=True)
    sys.stdin.read()
"""


def mark(ok: bool) -> str:
    return "[ok]  " if ok else "[MISS]"


@contextmanager
def postgres(root: Path) -> Iterator[str]:
    if os.environ.get("RECONCILER_BENCH_PG_URL"):
        yield os.environ["RECONCILER_BENCH_PG_URL"]
        return
    from tests.pgserver import PgServer

    server = PgServer.start(durable=True)
    try:
        yield server.create_database("workers_bench")
    finally:
        server.stop()


@contextmanager
def sandbox(root: Path, file_bytes: int) -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOX, str(root / "platform"), str(file_bytes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        info["data_dir"] = root / "platform"
        yield info
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def env_for(sb: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
    env.update(
        {
            "VNTANA_API_URL": sb["url"],
            "VNTANA_API_TOKEN": sb["token"],
            "VNTANA_ORGANIZATION_UUID": sb["org"],
            "NO_COLOR": "1",
        }
    )
    return env


def logins(data_dir: Path) -> int:
    db = sqlite3.connect(f"file:{data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM tokens WHERE kind = 'refresh'").fetchone()[0])
    finally:
        db.close()


def paid_twice(data_dir: Path, products: list[str]) -> int:
    """Products the platform was asked to render more than once (its own jobs table)."""
    db = sqlite3.connect(f"file:{data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT product_uuid, COUNT(DISTINCT trigger_uuid) FROM jobs GROUP BY product_uuid"
        ).fetchall()
    finally:
        db.close()
    wanted = set(products)
    return sum(1 for product, n in rows if product in wanted and n > 1)


def one_run(
    root: Path, pg: str, sb: dict[str, Any], label: str, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Apply ``args.products`` fresh products with ``workers`` worker processes (0: a local apply)."""
    project = root / label.replace(" ", "-")
    (project / "manifests").mkdir(parents=True)
    products = [str(uuidlib.uuid5(NAMESPACE, f"{label}-{i}")) for i in range(args.products)]
    text = SPEC + "".join(f"  - uuid: {u}\n" for u in products)
    (project / "manifests" / "catalogue.yaml").write_text(text)
    state = f"{pg}#{label.replace(' ', '-')}"
    env = env_for(sb)
    before = logins(sb["data_dir"])
    crew = [
        subprocess.Popen(
            [sys.executable, "-m", "reconciler", "worker", "--state", state, "--concurrency", "2"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        cmd = [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "--auto-approve",
            "--state",
            state,
            "--format",
            "json",
        ]
        cmd += ["--max-batch-size", str(args.batch_size), "--poll-interval", "0.2", "--timeout", "600"]
        if workers:
            cmd.append("--workers")
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.monotonic() - started
    finally:
        for p in crew:
            p.send_signal(signal.SIGTERM)
        for p in crew:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    finish = None
    for line in done.stdout.splitlines():
        if line.startswith("{") and '"RunFinished"' in line:
            finish = json.loads(line)
    if finish is None:
        raise SystemExit(f"{label}: apply failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return {
        "label": label,
        "workers": workers,
        "rendered": finish["rendered"],
        "failed": finish["failed"],
        "seconds": finish["seconds"],
        "wall": wall,
        "mib": finish["bytes_downloaded"] / MIB,
        "requests": finish["requests"],
        "logins": logins(sb["data_dir"]) - before,
        "twice": paid_twice(sb["data_dir"], products),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--file-kib", type=int, default=256, help="size of every result file")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--skip-local", action="store_true", help="no local apply for reference")
    parser.add_argument("--skip-pg-state", action="store_true", help="do not run bench/pg_state.py after")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="reconciler-workers-bench-"))
    missed = []
    try:
        with postgres(root) as pg, sandbox(root, args.file_kib * 1024) as sb:
            print(
                f"apply of {args.products:,} products (a still, an MP4 and a GIF each, {args.file_kib} KiB a file), "
                f"batches of {args.batch_size}; sandbox in its own process; PostgreSQL on 127.0.0.1; "
                f"{cores} CPU core(s) for everything"
            )
            runs = [] if args.skip_local else [one_run(root, pg, sb, "local apply", 0, args)]
            runs += [
                one_run(root, pg, sb, f"{n} worker{'s' if n > 1 else ''}", n, args) for n in args.workers
            ]
            base = next((r for r in runs if r["workers"] == 1), None)
            print(
                f"\n{'run':<14} {'recorded':>8} {'failed':>6} {'seconds':>8} {'products/s':>10} "
                f"{'MiB/s':>7} {'speed-up':>8} {'logins':>6} {'paid twice':>10}"
            )
            for r in runs:
                r["rate"] = r["rendered"] / r["seconds"] if r["seconds"] else 0.0
            for r in runs:
                rate = r["rate"]
                speedup = f"{rate / base['rate']:.2f}x" if base and base.get("rate") else "-"
                if r["workers"] == 0:
                    speedup = f"({rate / base['rate']:.2f}x)" if base and base.get("rate") else "-"
                ok = r["rendered"] == args.products and r["failed"] == 0 and r["twice"] == 0
                if not ok:
                    missed.append(f"{r['label']}: {r['rendered']} recorded, {r['failed']} failed")
                print(
                    f"{r['label']:<14} {r['rendered']:>8,} {r['failed']:>6} {r['seconds']:>8.1f} {rate:>10.1f} "
                    f"{r['mib'] / r['seconds'] if r['seconds'] else 0:>7.1f} {speedup:>8} {r['logins']:>6} {r['twice']:>10}  {mark(ok)}"
                )
            print(
                f"speed-up: products recorded per second over one worker's, all processes (sandbox, PostgreSQL, "
                f"apply, workers) sharing {cores} core(s); 'local apply' is one process without the queue; "
                "logins: new logins the platform saw (the workers' shared one outlives a run)"
            )
            if not args.skip_pg_state:
                print(
                    "\nbench/pg_state.py (checkpoint cost per product, plan against 100,000 products):",
                    flush=True,
                )
                code = subprocess.run(
                    [sys.executable, str(REPO / "bench" / "pg_state.py")],
                    env={**os.environ, "RECONCILER_BENCH_PG_URL": pg},
                    check=False,
                ).returncode
                if code:
                    missed.append("pg_state.py")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if missed:
        print("\nMISS: " + "; ".join(missed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
