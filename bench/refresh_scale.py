"""``reconciler plan --refresh`` over 10,000 recorded products against a sandbox with 20 ms latency.

    .venv/bin/python bench/refresh_scale.py                       # 10,000 products, 20 ms, 1 run
    .venv/bin/python bench/refresh_scale.py --products 2000 --runs 3
    .venv/bin/python bench/refresh_scale.py --before-tree /tmp/base   # also the CLI of another checkout

The catalogue and the state are ``plan_scale.py``'s (1% of the products recorded at an older
spec); every recorded file is registered on an embedded sandbox as a RENDER or TURNTABLE
attachment of its product, and the sandbox waits ``--latency`` before answering every API
request (its ``latency_seconds`` fault). The real CLI, in its own process, runs ``plan --refresh
--format json``. Printed per run: the requests the sandbox was sent (its own counters, not the
client's), the attachment searches among them, requests per product, wall time, and the ratio
of wall time to ``requests x latency / parallelism`` (the time the latency alone costs at the
refresh's parallelism). Targets (issue 12): one request per product, ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plan_scale import build

ROOT = Path(__file__).resolve().parent.parent
PARALLELISM = 4
"""The refresh's worker count for ``plan`` (ApplyRequest.parallelism; the limiter allows 8)."""
PLAN = [sys.executable, "-m", "reconciler", "plan", "--refresh", "--format", "json"]
KIND_TYPES = {"still": "RENDER", "turntable": "TURNTABLE", "gif": "TURNTABLE"}


def mark(ok: bool) -> str:
    return "[ok]  " if ok else "[MISS]"


def register(sb: object, state_path: Path) -> int:
    """Every product of the state, with its recorded files, on the sandbox. Products registered."""
    store = sb.store  # type: ignore[attr-defined]
    org, client = sb.organization_uuid, sb.client_uuid  # type: ignore[attr-defined]
    products = json.loads(state_path.read_text())["products"]
    now = time.time()
    with store.tx() as db:  # what completed render jobs leave behind, minus the rendering
        for pos, (uuid, rec) in enumerate(products.items()):
            store._insert_product(db, org, client, {"uuid": uuid, "name": rec["name"]}, pos, now)
            for att in rec["attachments"]:
                db.execute(
                    "INSERT INTO attachments VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        att["uuid"],
                        uuid,
                        KIND_TYPES[att["kind"]],
                        att["uuid"],
                        f"bench/{uuid}/{att['name']}",
                        att["name"],
                        att["content_type"],
                        att["size"],
                        now,
                        now,
                    ),
                )
    return len(products)


def run_plan(
    sb: object, manifests: Path, state: Path, pythonpath: str | None, *, refresh: bool = True
) -> tuple[float, dict[str, int], dict[str, object]]:
    """``reconciler plan [--refresh] --format json``: (wall seconds, sandbox request counts, plan)."""
    env = {
        **os.environ,
        "VNTANA_API_URL": sb.url,  # type: ignore[attr-defined]
        "VNTANA_API_TOKEN": sb.access_token,  # type: ignore[attr-defined]
        "VNTANA_ORGANIZATION_UUID": sb.organization_uuid,  # type: ignore[attr-defined]
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    sb.context.requests.reset()  # type: ignore[attr-defined]
    command = PLAN if refresh else [a for a in PLAN if a != "--refresh"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--manifests", str(manifests), "--state", str(state)],
        capture_output=True,
        text=True,
        env=env,
        cwd=state.parent,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"reconciler plan --refresh failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, sb.request_counts(), json.loads(done.stdout)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument(
        "--latency", type=float, default=0.02, help="seconds the sandbox waits per API request"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per CLI; medians are printed")
    parser.add_argument(
        "--before-tree", help="also run the CLI of this checkout (PYTHONPATH), for a before figure"
    )
    args = parser.parse_args()

    from reconciler.sandbox.server import EmbeddedSandbox, FaultConfig, SandboxConfig

    root = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    failed = False
    try:
        manifests, state = build(root / "catalogue", args.products)
        print(
            f"plan --refresh of {args.products:,} recorded products, {args.latency * 1000:.0f} ms latency per API "
            f"request, parallelism {PARALLELISM}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})"
        )
        with EmbeddedSandbox(root / "platform", SandboxConfig()) as sb:
            n = register(sb, state)
            sb.set_faults(FaultConfig(latency_seconds=args.latency))
            clis = {"now": None}
            if args.before_tree:
                clis = {f"before ({args.before_tree})": args.before_tree, **clis}
            offline = statistics.median(
                run_plan(sb, manifests, state, None, refresh=False)[0] for _ in range(args.runs)
            )
            print(f"  {'plan without --refresh':<30} wall {offline:.1f} s (load, state, plan: no request)")
            for label, tree in clis.items():
                walls, totals, searches = [], [], []
                for _ in range(args.runs):
                    wall, counts, _plan = run_plan(sb, manifests, state, tree)
                    walls.append(wall)
                    totals.append(sum(counts.values()))
                    searches.append(counts.get("POST /v1/attachments/search", 0))
                wall, total, search = (
                    statistics.median(walls),
                    statistics.median(totals),
                    statistics.median(searches),
                )
                floor = total * args.latency / PARALLELISM
                ratio = wall / floor
                print(
                    f"  {label:<30} requests {total:,.0f} ({search:,.0f} attachment searches, "
                    f"{total / n:.3f} per product), wall {wall:.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)}), "
                    f"requests x latency / parallelism {floor:.1f} s, ratio {ratio:.2f} "
                    f"(the refresh's own share, wall minus the plan without it: {(wall - offline) / floor:.2f})"
                )
                if label == "now":
                    one = search == n and total - search <= 10
                    print(
                        f"  {mark(one)} one request per product ({search:,.0f} searches for {n:,} products; "
                        f"{total - search:.0f} others: the login)"
                    )
                    print(
                        f"  {mark(ratio <= 1.3)} wall / (requests x latency / parallelism) = {ratio:.2f} (target <= 1.3)"
                    )
                    failed = not one or ratio > 1.3
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
