"""The cold plan's state read (issue 12): this checkout against another, in the same run.

    .venv/bin/python bench/plan_scale.py --sizes 100000 --repeat 1 --keep /tmp/pb   # once: the catalogue
    .venv/bin/python bench/state_read.py /tmp/pb/100000 --before /work/main

For this code and the ``--before`` checkout's, each run in a fresh interpreter with an empty
cache (reconciler/cache.py), alternating between the two so a busy machine weighs on both
alike, medians of ``--repeat``:

  parse       the bare YAML parse of the manifests with ruamel's C loader: the baseline
  state read  ``FileStateStore.read_for_plan()`` of the unchanged state, in process, and its peak
  phases      the whole cold plan in process: load, state read, build
  cli         ``reconciler plan`` cold, as a user runs it: wall, CPU, peak RSS

Target (issue 12): the cold plan within 1.2x the C parse, peak under 500 MB. Timings depend on
what else the machine runs: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plan_scale import COLD_RATIO, TARGET_MB, peak_mb, phase_parse, phase_plan, run_cli


def phase_read(state_path: Path) -> dict[str, Any]:
    from reconciler.state import FileStateStore

    started = time.perf_counter()
    state = FileStateStore(state_path).read_for_plan()
    return {"seconds": time.perf_counter() - started, "kind": type(state).__name__}


def child(phase: str, paths: list[Path], code: Path | None, caches: Path) -> dict[str, Any]:
    env = {**os.environ, "RECONCILER_CACHE_DIR": tempfile.mkdtemp(dir=caches)}
    if code:
        env["PYTHONPATH"] = str(code)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--phase", phase, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time, with the largest peak of all runs."""
    mid = dict(sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2])
    mid["peak_mb"] = max(r["peak_mb"] for r in runs)
    return mid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, nargs="?", help="a size's folder kept by plan_scale.py --keep")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with (e.g. main)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *paths = args.phase
        result = {"read": phase_read, "plan": phase_plan, "parse": phase_parse}[name](*map(Path, paths))
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return
    if args.root is None:
        parser.error("the catalogue's folder is needed")
    root = args.root.resolve()
    manifests, state = root / "manifests", root / "unchanged" / "renders.state.json"
    before = args.before.resolve() if args.before else None
    codes: dict[str, Path | None] = {"this": None} | ({"before": before} if before else {})
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    parses = []
    with tempfile.TemporaryDirectory(prefix="state-read-caches-") as tmp:
        caches = Path(tmp)
        # Not in a checkout: `python -m reconciler` puts the working directory ahead of PYTHONPATH,
        # so run from a checkout's root it would run that checkout's code, not --before's.
        os.chdir(caches)
        for _ in range(args.repeat):
            parses.append(child("parse", [manifests], None, caches))
            for label, code in codes.items():
                runs.setdefault((label, "read"), []).append(child("read", [state], code, caches))
                runs.setdefault((label, "plan"), []).append(child("plan", [manifests, state], code, caches))
                cli_cache = tempfile.mkdtemp(dir=caches)
                runs.setdefault((label, "cli"), []).append(run_cli(manifests, state, cli_cache, code=code))
    p = statistics.median(r["seconds"] for r in parses)
    print(f"{root}: state {state.stat().st_size / 2**20:.1f} MiB; medians of {args.repeat}")
    print(f"  C parse of the manifests: {p:.2f} s")
    failed = []
    for label in codes:
        read, plan, cli = (median(runs[label, k]) for k in ("read", "plan", "cli"))
        marks = plan["marks"]
        print(
            f"  {label:>6}: cold state read {read['seconds']:.2f} s ({read['kind']}, peak {read['peak_mb']:.0f} MB);"
            f" in process load {marks['load']:.2f} s, state read {marks['state_read']:.2f} s,"
            f" build {marks['build']:.2f} s;"
            f" cold CLI plan {cli['seconds']:.2f} s = {cli['seconds'] / p:.2f}x the parse,"
            f" cpu {cli['cpu']:.2f} s, peak {cli['peak_mb']:.0f} MB"
        )
        if label == "this":
            ok = cli["seconds"] / p <= COLD_RATIO
            print(f"  [{'ok' if ok else 'MISS'}] cold plan within {COLD_RATIO:g}x the C parse")
            ok_mb = max(cli["peak_mb"], plan["peak_mb"]) < TARGET_MB
            print(f"  [{'ok' if ok_mb else 'MISS'}] cold plan's peak under {TARGET_MB} MB")
            failed += [] if ok and ok_mb else ["cold plan"]
    if "before" in codes:
        this, before = median(runs["this", "read"]), median(runs["before", "read"])
        cli_this, cli_before = median(runs["this", "cli"]), median(runs["before", "cli"])
        print(
            f"  this / before: state read {this['seconds'] / before['seconds']:.2f}x,"
            f" CLI plan {cli_this['seconds'] / cli_before['seconds']:.2f}x,"
            f" CLI peak {cli_this['peak_mb'] / cli_before['peak_mb']:.2f}x"
        )
    if failed:
        sys.exit("targets missed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
