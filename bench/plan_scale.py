"""How `reconciler plan` scales: 10,000 and 100,000 products with 1% of them changed.

    .venv/bin/python bench/plan_scale.py            # both sizes
    .venv/bin/python bench/plan_scale.py --sizes 100000 --repeat 3

For each size it writes, in a temp dir, a realistic catalogue (several manifest files in
subfolders, each with defaults, names, and overrides on about one product in eight) and a
state that matches it except for 1% of the products (an older spec, as after a manifest
edit). Then, each phase in a fresh child process so peak memories do not mix:

  parse   the bare YAML parse of the same files with ruamel's C-based safe loader
  plan    load_desired + FileStateStore.read + build_plan + render_text + render_json
  cli     (largest size only) the real `reconciler plan --format json` console script

and prints the times, the ratio plan/parse, and each phase's peak RSS (ru_maxrss).
Targets (issue 2): 100,000 products planned in under 3 s, within 3x of the C parse,
under 1 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILES = 20  # manifest files per catalogue, spread over subfolders
CHANGED_SHARE = 0.01
TARGET_SECONDS, TARGET_RATIO, TARGET_MB = 3.0, 3.0, 1024

DEFAULTS = [
    # (defaults block, the overrides some products carry)
    (
        """defaults:
  imageWidth: 1200
  imageHeight: 1200
  imageFormat: WEBP            # the PDP format
  imageBackground: "#F4F4F4"
  turntable:
    includeGif: false
    imageCount: 36             # one frame every 10 degrees
    frameRate: 12
    width: 720
    height: 720
""",
        [
            "    turntable:\n      includeGif: true\n",
            "    imageWidth: 1000\n    imageHeight: 1400\n",
            '    imageFormat: JPG\n    imageBackground: "#FFFFFF"\n',
        ],
    ),
    (
        """defaults:
  imageWidth: 1600
  imageHeight: 1200
  imageFormat: PNG
  transparentBackground: true  # cut-outs for the configurator
  turntable:
    includeGif: true
    imageCount: 48
    frameRate: 16
    width: 800
    height: 600
    transparentBackground: true
""",
        ["    turntable:\n      includeGif: false\n", "    imageWidth: 2400\n    imageHeight: 1000\n"],
    ),
]


def uuid_of(i: int) -> str:
    return f"{i:08x}-{i % 65536:04x}-4{i % 4096:03x}-8000-{i * 2654435761 % 16**12:012x}"


def build(root: Path, n: int) -> tuple[Path, Path]:
    """Write the manifests and a matching state (1% changed) under ``root``."""
    if root.exists():
        shutil.rmtree(root)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from reconciler.loader import load_desired
    from reconciler.spec import RenderSpec

    manifests = root / "manifests"
    per_file = -(-n // FILES)
    for f in range(FILES):
        defaults, overrides = DEFAULTS[f % len(DEFAULTS)]
        lines = [f"# catalogue part {f}: generated for the plan benchmark\n", defaults, "products:\n"]
        for i in range(f * per_file, min(n, (f + 1) * per_file)):
            lines.append(f'  - uuid: {uuid_of(i)}\n    name: "Product {i}, size {i % 7}"\n')
            if i % 8 == 0:
                lines.append(overrides[i % len(overrides)])
        path = manifests / f"group{f % 4}" / f"part{f:02d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")

    desired = load_desired([manifests])
    assert len(desired.products) == n, (len(desired.products), n)
    products: dict[str, Any] = {}
    older: dict[str, tuple[dict[str, Any], str]] = {}
    step = int(1 / CHANGED_SHARE)
    for i, (uuid, want) in enumerate(sorted(desired.products.items())):
        spec, spec_hash = want.spec.canonical(), want.spec_hash
        if i % step == 0:  # 1%: recorded at an older spec (a narrower still)
            if spec_hash not in older:
                old = RenderSpec.model_validate({**spec, "imageWidth": spec["imageWidth"] - 200})
                older[spec_hash] = (old.canonical(), old.fingerprint())
            spec, spec_hash = older[spec_hash]
        kinds = ["still", "turntable"] + (["gif"] if spec["turntable"]["includeGif"] else [])
        products[uuid] = {
            "name": want.name,
            "spec": spec,
            "spec_hash": spec_hash,
            "status": "rendered",
            "request": {
                "request_id": f"req-{i // 50}",
                "spec_hash": spec_hash,
                "requested_at": "2026-01-01T00:00:00Z",
                "accepted_at": "2026-01-01T00:00:01Z",
            },
            "attachments": [
                {
                    "kind": k,
                    "uuid": f"{k}-{i}",
                    "name": f"{k}-{i}.bin",
                    "sha256": f"{i:064x}",
                    "size": 100_000 + i,
                    "content_type": "application/octet-stream",
                }
                for k in kinds
            ],
            "updated_at": "2026-01-01T00:05:00Z",
        }
    state = root / "state" / "renders.state.json"
    state.parent.mkdir(parents=True)
    data = {
        "format_version": 1,
        "serial": 42,
        "lineage": "6f1c2c9e-0000-4000-8000-000000000000",
        "products": products,
    }
    state.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return manifests, state


# -- phases (each runs in its own child process) ----------------------------------------------


def phase_parse(manifests: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.cyaml import CParser

    files = sorted(p for p in manifests.rglob("*.yaml"))
    started = time.perf_counter()
    yaml = YAML(typ="safe", pure=False)
    if yaml.Parser is not CParser:
        raise SystemExit("ruamel.yaml.clib is not installed: the parse would not be the C one")
    count = 0
    for path in files:
        count += len(yaml.load(path.read_text(encoding="utf-8"))["products"])
    return {"seconds": time.perf_counter() - started, "products": count, "parser": yaml.Parser.__name__}


def phase_plan(manifests: Path, state_path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    from reconciler.loader import load_desired
    from reconciler.planner import build_plan
    from reconciler.state import FileStateStore
    from reconciler.views.plan import render_json, render_text

    marks = {"import": time.perf_counter() - started}
    t = time.perf_counter()
    desired = load_desired([manifests])
    marks["load_desired"] = time.perf_counter() - t
    t = time.perf_counter()
    store = FileStateStore(state_path)
    state = store.read()
    marks["state_read"] = time.perf_counter() - t
    t = time.perf_counter()
    plan = build_plan(desired, state, location=store.location)
    marks["build_plan"] = time.perf_counter() - t
    t = time.perf_counter()
    text = render_text(plan)
    marks["render_text"] = time.perf_counter() - t
    t = time.perf_counter()
    js = render_json(plan)
    marks["render_json"] = time.perf_counter() - t
    counts = plan.counts()
    return {
        "seconds": time.perf_counter() - started,
        "marks": marks,
        "counts": {k: v for k, v in counts.items() if v},
        "text_bytes": len(text),
        "json_bytes": len(js),
    }


def peak_mb() -> float:
    """This process's peak RSS since its exec (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across fork+exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(argv: list[str]) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; it reports its own peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *argv], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def run_cli(manifests: Path, state_path: Path) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("reconciler")
    cmd = [
        str(exe) if exe.exists() else "reconciler",
        "plan",
        "--manifests",
        str(manifests),
        "--state",
        str(state_path),
        "--format",
        "json",
    ]
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"reconciler plan failed ({proc.returncode}): {err}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs per phase; the best time is kept")
    parser.add_argument(
        "--keep", type=Path, help="build the catalogues under this folder once, keep and reuse them"
    )
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        name, *paths = args.phase
        if name == "build":
            build(Path(paths[0]), int(paths[1]))
            result: dict[str, Any] = {}
        elif name == "parse":
            result = phase_parse(Path(paths[0]))
        else:
            result = phase_plan(Path(paths[0]), Path(paths[1]))
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return

    failed = []
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"plan-bench-{n}-")) if not args.keep else args.keep / str(n)
        try:
            t = time.perf_counter()
            manifests, state = root / "manifests", root / "state" / "renders.state.json"
            if not (args.keep and state.exists()):
                # Built in a child too: this process stays small, so the CLI child's ru_maxrss is its own.
                child(["build", str(root), str(n)])
            built = time.perf_counter() - t
            size = sum(p.stat().st_size for p in manifests.rglob("*.yaml")) / 2**20
            parse = min(
                (child(["parse", str(manifests)]) for _ in range(args.repeat)), key=lambda r: r["seconds"]
            )
            plan = min(
                (child(["plan", str(manifests), str(state)]) for _ in range(args.repeat)),
                key=lambda r: r["seconds"],
            )
            ratio = plan["seconds"] / parse["seconds"]
            print(
                f"\n{n:,} products: {FILES} manifest files ({size:.1f} MiB), state "
                f"{state.stat().st_size / 2**20:.1f} MiB, built in {built:.1f} s"
            )
            print(
                f"  YAML parse ({parse['parser']}): {parse['seconds']:.2f} s, peak {parse['peak_mb']:.0f} MB"
            )
            print(
                f"  plan in-process:       {plan['seconds']:.2f} s, peak {plan['peak_mb']:.0f} MB   "
                f"ratio plan/parse {ratio:.2f}"
            )
            print("    " + ", ".join(f"{k} {v:.2f} s" for k, v in plan["marks"].items()))
            print(f"    actions: {plan['counts']}")
            expected = {"rerender": -(-n // int(1 / CHANGED_SHARE))}
            expected["noop"] = n - expected["rerender"]
            if plan["counts"] != expected:
                failed.append(f"{n}: planned {plan['counts']}, expected {expected}")
            if n == max(args.sizes):
                cli = min((run_cli(manifests, state) for _ in range(args.repeat)), key=lambda r: r["seconds"])
                print(f"  reconciler plan (CLI): {cli['seconds']:.2f} s, peak {cli['peak_mb']:.0f} MB")
            if n >= 100_000:
                for ok, what in (
                    (plan["seconds"] < TARGET_SECONDS, f"plan under {TARGET_SECONDS:g} s"),
                    (ratio <= TARGET_RATIO, f"plan within {TARGET_RATIO:g}x of the C parse"),
                    (plan["peak_mb"] < TARGET_MB, f"peak under {TARGET_MB} MB"),
                ):
                    print(f"  [{'ok' if ok else 'MISS'}] {what}")
                    if not ok:
                        failed.append(f"{n}: {what}")
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    if failed:
        sys.exit("targets missed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
