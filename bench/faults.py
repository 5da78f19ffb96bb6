"""What platform faults cost `reconciler apply`: seconds, not timeouts (issue 13).

    .venv/bin/python bench/faults.py                       # every scenario, a few minutes
    .venv/bin/python bench/faults.py --only 500s --only jobs
    .venv/bin/python bench/faults.py --timeout 300 --seed 7 --tiny

The example catalogue (``manifests/``, 40 products at their real sizes, 14 render requests) is
applied by the real CLI, in its own process, against an embedded sandbox on 127.0.0.1 with the
sandbox's default job timing, once per scenario, each in a fresh temp project and a fresh
sandbox data dir:

  clean    no faults: the baseline every other figure is divided by
  500s     20% of all API requests answered 500 (triggers included: their outcome is unknown)
  jobs     30% of the render jobs end FAILED (a product fails if its still or its turntable does)
  both     both at once

``--timeout`` (default 120 s) is deliberately long: a run bounded by it would show it. Printed
per scenario: wall time, the ratio to ``clean``, products rendered and failed in the run, the
platform's trigger count, **paid twice** (a product triggered again although an earlier trigger
of the same spec was not failed: completed, or superseded while it rendered; counted from the
sandbox's own jobs table), and whether one plain rerun with the faults off (no
``--allow-large``) converges: exit 0, then ``plan --detailed-exitcode`` exits 0.

No assertions: a scenario slower than ``--target`` times ``clean``, a double payment, or a rerun
that does not converge is marked MISS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIOS: dict[str, dict[str, float]] = {
    "clean": {},
    "500s": {"rate_500": 0.2},
    "jobs": {"job_failure_rate": 0.3},
    "both": {"rate_500": 0.2, "job_failure_rate": 0.3},
}

TINY = """defaults:
  imageWidth: 32
  imageHeight: 24
  imageFormat: PNG
  turntable: {includeGif: false, imageCount: 4, frameRate: 4, width: 32, height: 32}
"""


@dataclass
class Outcome:
    name: str
    seconds: float
    exit_code: int
    rendered: int
    failed: int
    requests: int
    triggers: int
    paid_twice: list[str]
    rerun_exit: int | None = None
    rerun_seconds: float = 0.0
    converged: bool = False
    refused_large: bool = False


def cli(project: Path, env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def paid_twice(data_dir: Path) -> tuple[int, list[str]]:
    """(triggers received, products triggered again after a trigger of the same spec that did not fail)."""
    db = sqlite3.connect(f"file:{data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT product_uuid, trigger_uuid, spec, status, seq FROM jobs ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    triggers: dict[tuple[str, str], dict[str, Any]] = {}
    for product, trigger, spec, status, seq in rows:
        entry = triggers.setdefault((product, trigger), {"seq": seq, "statuses": set(), "specs": set()})
        entry["statuses"].add(status)
        entry["specs"].add(spec)
    by_product: dict[str, list[dict[str, Any]]] = {}
    for (product, _), entry in sorted(triggers.items(), key=lambda kv: kv[1]["seq"]):
        by_product.setdefault(product, []).append(entry)
    twice = []
    for product, entries in by_product.items():
        for earlier, later in itertools.pairwise(entries):
            # The still's and the turntable's job specs differ; a trigger's pair is its spec.
            same_spec = earlier["specs"] == later["specs"]
            if same_spec and "FAILED" not in earlier["statuses"]:
                twice.append(product)
                break
    return len(triggers), twice


def run_scenario(name: str, faults: dict[str, float], root: Path, args: argparse.Namespace) -> Outcome:
    from reconciler.sandbox.faults import FaultConfig
    from reconciler.sandbox.server import EmbeddedSandbox, SandboxConfig

    project = root / name
    if args.tiny:
        (project / "manifests").mkdir(parents=True)
        from reconciler.loader import load_desired

        desired = load_desired([ROOT / "manifests"])
        body = "".join(f"  - uuid: {u}\n" for u in sorted(desired.products))
        (project / "manifests" / "tiny.yaml").write_text(TINY + "products:\n" + body)
    else:
        shutil.copytree(ROOT / "manifests", project / "manifests")
    config = SandboxConfig(faults=FaultConfig(seed=args.seed, **faults))
    with EmbeddedSandbox(data_dir=root / f"{name}-platform", config=config) as sb:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
        env.update(
            {
                "VNTANA_API_URL": sb.url,
                "VNTANA_API_TOKEN": sb.access_token,
                "VNTANA_ORGANIZATION_UUID": sb.organization_uuid,
                "NO_COLOR": "1",
            }
        )
        started = time.perf_counter()
        out = cli(
            project,
            env,
            "apply",
            "--auto-approve",
            "--format",
            "json",
            "--poll-interval",
            "0.5",
            "--timeout",
            str(args.timeout),
            timeout=args.timeout * 40,
        )
        seconds = time.perf_counter() - started
        events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"')]
        done = next((e for e in events if e.get("event") == "RunFinished"), {})
        sb.wait_idle(60)
        count, twice = paid_twice(sb.data_dir)
        outcome = Outcome(
            name,
            seconds,
            out.returncode,
            int(done.get("rendered", 0)),
            int(done.get("failed", 0)),
            int(done.get("requests", 0)),
            count,
            twice,
        )
        if out.returncode not in (0, 1) or not done:
            print(f"  {name}: apply ended {out.returncode}:\n{out.stderr[-2000:]}", flush=True)
        sb.set_faults(FaultConfig())
        started = time.perf_counter()
        rerun = cli(
            project,
            env,
            "apply",
            "--auto-approve",
            "--poll-interval",
            "0.5",
            "--timeout",
            str(args.timeout),
            timeout=args.timeout * 40,
        )
        outcome.rerun_seconds = time.perf_counter() - started
        outcome.rerun_exit = rerun.returncode
        outcome.refused_large = "refusing a large change" in rerun.stderr
        plan = cli(project, env, "plan", "--detailed-exitcode", timeout=120)
        outcome.converged = rerun.returncode == 0 and plan.returncode == 0
        sb.wait_idle(60)
        _, outcome.paid_twice = paid_twice(sb.data_dir)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="scenario (repeatable)")
    parser.add_argument("--timeout", type=float, default=120.0, help="apply --timeout (seconds)")
    parser.add_argument("--seed", type=int, default=13, help="the sandbox's fault seed")
    parser.add_argument("--target", type=float, default=3.0, help="most a faulty run may take, times clean")
    parser.add_argument("--tiny", action="store_true", help="tiny renders of the same 40 products, one spec")
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    if "clean" not in chosen:
        chosen = ["clean", *chosen]
    print(
        f"apply of the example catalogue ({'tiny renders' if args.tiny else 'real sizes'}), "
        f"--timeout {args.timeout:g} s, fault seed {args.seed}",
        flush=True,
    )
    results: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="reconciler-faults-") as tmp:
        for name in chosen:
            outcome = run_scenario(name, SCENARIOS[name], Path(tmp), args)
            results.append(outcome)
            print(f"  {name}: {outcome.seconds:.1f} s", flush=True)
    base = results[0].seconds
    print(
        f"\n{'scenario':<8} {'seconds':>8} {'x clean':>8} {'rendered':>9} {'failed':>7} {'requests':>9} "
        f"{'triggered':>9} {'paid 2x':>8} {'rerun':>14}"
    )
    for r in results:
        ratio = r.seconds / base if base else 0.0
        rerun = ("converged" if r.converged else f"exit {r.rerun_exit}") + (
            " LARGE" if r.refused_large else ""
        )
        ok = ratio <= args.target and not r.paid_twice and r.converged
        print(
            f"{r.name:<8} {r.seconds:>8.1f} {ratio:>8.2f} {r.rendered:>9} {r.failed:>7} {r.requests:>9} {r.triggers:>9} "
            f"{len(r.paid_twice):>8} {rerun:>14}  {'[ok]' if ok else '[MISS]'}"
        )
    print(
        f"\n[ok] = within {args.target:g}x the clean run, nothing paid twice, and one plain rerun "
        "(faults off, no --allow-large) converged."
    )


if __name__ == "__main__":
    main()
