"""How `reconciler plan` scales, and what its caches buy: 10,000, 20,000 and 100,000 products.

    .venv/bin/python bench/plan_scale.py                      # 10k, 20k, 100k, 3 runs each (medians)
    .venv/bin/python bench/plan_scale.py --sizes 100000 --repeat 1

For each size it writes, in a temp dir, a realistic catalogue (several manifest files in
subfolders, each with defaults, names, and overrides on about one product in eight), a state
that matches it exactly (``unchanged``) and one that matches it except for 1% of the products
(an older spec, as after a manifest edit). Then, each in a fresh process so peak memories do
not mix, and each figure the median of ``--repeat`` runs:

  parse      the bare YAML parse of the same files with ruamel's C-based safe loader: the baseline
  cold       `reconciler plan` with an empty cache (reconciler/cache.py): the first plan
  warm       `reconciler plan` again, the manifests' parse cache and the state's index warm,
             against the unchanged state and against the 1% one (and --format json)
  no cache   `reconciler plan` with RECONCILER_CACHE_DIR=off: every plan parses and validates all
  before     (with --before DIR) the same plan by the code checked out in DIR, e.g. main
  phases     (largest size) the warm plan in process: load, state read, build, text, JSON

and, for the largest size, the state file's size and the `git diff --stat` of a 1% re-render
written by the real store. Targets (issue 12), printed [ok]/[MISS]: unchanged warm plan under
1.0 s and under 0.25x the C parse, 1% changed under 1.5 s, cold within 1.2x the C parse, peak
under 500 MB, cold 20k/10k time ratio under 2.3, and a state diff that stays proportional to
the change. Timings depend on what else the machine runs: compare the ratios.
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
WARM_SECONDS, WARM_RATIO, CHANGED_SECONDS, COLD_RATIO, TARGET_MB, GROWTH = 1.0, 0.25, 1.5, 1.2, 500, 2.3
DIFF_SHARE = 3 * CHANGED_SHARE  # a 1% re-render may touch at most 3% of the state's bytes

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
    for i, (uuid, want) in enumerate(sorted(desired.products.items())):
        if i % step == 0:  # the unchanged state: these too at the spec the manifests want
            spec = want.spec.canonical()
            kinds = ["still", "turntable"] + (["gif"] if spec["turntable"]["includeGif"] else [])
            record = products[uuid]
            record.update(spec=spec, spec_hash=want.spec_hash)
            record["request"]["spec_hash"] = want.spec_hash
            record["attachments"] = [a for a in record["attachments"] if a["kind"] in kinds] + [
                {**record["attachments"][0], "kind": k, "uuid": f"{k}-{i}", "name": f"{k}-{i}.bin"}
                for k in kinds
                if k not in {a["kind"] for a in record["attachments"]}
            ]
    unchanged = root / "unchanged" / "renders.state.json"
    unchanged.parent.mkdir(parents=True)
    unchanged.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
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
    """The plan in process, phase by phase, as `reconciler plan` makes it (caches as the env says)."""
    started = time.perf_counter()
    from reconciler.loader import load_desired
    from reconciler.planner import build_plan
    from reconciler.state import FileStateStore
    from reconciler.views.plan import render_json, render_text

    marks = {"import": time.perf_counter() - started}
    t = time.perf_counter()
    desired = load_desired([manifests])
    marks["load"] = time.perf_counter() - t
    t = time.perf_counter()
    store = FileStateStore(state_path)
    state = store.read_for_plan()
    marks["state_read"] = time.perf_counter() - t
    t = time.perf_counter()
    plan = build_plan(desired, state, location=store.location)
    marks["build"] = time.perf_counter() - t
    t = time.perf_counter()
    text = render_text(plan)
    marks["text"] = time.perf_counter() - t
    t = time.perf_counter()
    js = render_json(plan)
    marks["json"] = time.perf_counter() - t
    counts = plan.counts()
    return {
        "seconds": time.perf_counter() - started,
        "marks": marks,
        "counts": {k: v for k, v in counts.items() if v},
        "text_bytes": len(text),
        "json_bytes": len(js),
    }


def phase_diff(state_path: Path, work: Path) -> dict[str, Any]:
    """The state of 100,000 rendered products in git, then a 1% re-render written by the real
    store (new spec, new files, the old render pushed into history): the diff git shows."""
    from reconciler.spec import RenderSpec
    from reconciler.state import Attachment, FileStateStore, RenderRequest, Status

    work.mkdir(parents=True)
    path = work / "renders.state.json"
    shutil.copyfile(state_path, path)
    store = FileStateStore(path)
    with store.lock("bench"):  # as the store writes it (the generated file omits default fields)
        store.write(store.read())
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(work)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", path.name], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "state"], check=True)
    before = path.stat().st_size
    with store.lock("bench"):
        state = store.read()
        step = int(1 / CHANGED_SHARE)
        for i, uuid in enumerate(sorted(state.products)):
            if i % step:
                continue
            old = state.products[uuid]
            spec = RenderSpec.model_validate(
                {**old.spec, "imageWidth": old.spec["imageWidth"] + 8}
            ).canonical()
            spec_hash = RenderSpec.model_validate(spec).fingerprint()
            state.products[uuid] = old.model_copy(
                update={
                    "spec": spec,
                    "spec_hash": spec_hash,
                    "status": Status.RENDERED,
                    "request": RenderRequest(
                        request_id=f"req-new-{i // 50}",
                        spec_hash=spec_hash,
                        requested_at="2026-02-01T00:00:00Z",
                    ),
                    "attachments": [
                        Attachment(**{**a.model_dump(), "uuid": a.uuid + "-2", "sha256": f"{i + 1:064x}"})
                        for a in old.attachments
                    ],
                    "history": old.superseded(),
                    "updated_at": "2026-02-01T00:05:00Z",
                }
            )
        store.write(state)
    stat = subprocess.run([*git, "diff", "--shortstat"], check=True, capture_output=True, text=True).stdout
    diff = subprocess.run([*git, "diff"], check=True, capture_output=True).stdout
    lines = subprocess.run(
        [*git, "diff", "--numstat"], check=True, capture_output=True, text=True
    ).stdout.split()
    return {
        "before_bytes": before,
        "after_bytes": path.stat().st_size,
        "shortstat": stat.strip(),
        "added": int(lines[0]),
        "removed": int(lines[1]),
        "diff_bytes": len(diff),
        "lines": len(path.read_bytes().splitlines()),
    }


def peak_mb() -> float:
    """This process's peak RSS since its exec (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across fork+exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; it reports its own peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *argv],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def run_cli(
    manifests: Path, state_path: Path, cache: str, fmt: str = "text", code: Path | None = None
) -> dict[str, Any]:
    """`reconciler plan` as a user runs it, in its own process, with the cache directory ``cache``;
    ``code``: a checkout whose ``reconciler`` package runs instead of this one (``--before``)."""
    exe = Path(sys.executable).with_name("reconciler")
    start = [sys.executable, "-m", "reconciler"] if code else [str(exe) if exe.exists() else "reconciler"]
    cmd = [
        *start,
        "plan",
        "--manifests",
        str(manifests),
        "--state",
        str(state_path),
        "--format",
        fmt,
    ]
    env = {**os.environ, "RECONCILER_CACHE_DIR": cache, "NO_COLOR": "1"}
    if code:  # ahead of the editable install's finder, which comes after sys.path's entries
        env["PYTHONPATH"] = str(code)
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        # cwd: away from this checkout, whose reconciler/ 'python -m' would put ahead of PYTHONPATH
        # (the --before code would then be this code).
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE, env=env, cwd=manifests.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    if proc.returncode not in (0, 2):  # 2: changes planned (--detailed-exitcode style) is fine
        raise SystemExit(f"reconciler plan failed ({proc.returncode}): {err}")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time, with the largest peak of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    mid["peak_mb"] = max(r["peak_mb"] for r in runs)
    return mid


def mark(ok: bool, what: str, failed: list[str]) -> None:
    print(f"  [{'ok' if ok else 'MISS'}] {what}")
    if not ok:
        failed.append(what)


def measure(n: int, root: Path, args: argparse.Namespace, failed: list[str]) -> dict[str, Any]:
    t = time.perf_counter()
    manifests = root / "manifests"
    changed, unchanged = root / "state" / "renders.state.json", root / "unchanged" / "renders.state.json"
    if not (args.keep and unchanged.exists()):
        # Built in a child too: this process stays small, so the CLI child's ru_maxrss is its own.
        child(["build", str(root), str(n)])
    built = time.perf_counter() - t
    size = sum(p.stat().st_size for p in manifests.rglob("*.yaml")) / 2**20
    caches = root / "caches"
    shutil.rmtree(caches, ignore_errors=True)
    repeat = args.repeat

    parse = median_of([child(["parse", str(manifests)]) for _ in range(repeat)])
    cold = median_of([run_cli(manifests, unchanged, str(caches / f"cold{i}")) for i in range(repeat)])
    warm_cache = str(caches / "cold0")  # filled by the first cold run (the unchanged state's index)
    run_cli(manifests, changed, warm_cache)  # and the 1% state's index
    warm = median_of([run_cli(manifests, unchanged, warm_cache) for _ in range(repeat)])
    warm1 = median_of([run_cli(manifests, changed, warm_cache) for _ in range(repeat)])
    off = median_of([run_cli(manifests, changed, "off") for _ in range(repeat)])
    before = before_cold = before_warm = None
    if args.before:
        code = args.before
        before = median_of([run_cli(manifests, changed, "off", code=code) for _ in range(repeat)])
        before_cold = median_of(
            [run_cli(manifests, unchanged, str(caches / f"before-cold{i}"), code=code) for i in range(repeat)]
        )
        before_warm = median_of(
            [run_cli(manifests, unchanged, str(caches / "before-cold0"), code=code) for _ in range(repeat)]
        )
    p = parse["seconds"]
    print(
        f"\n{n:,} products: {FILES} manifest files ({size:.1f} MiB), state "
        f"{unchanged.stat().st_size / 2**20:.1f} MiB, built in {built:.1f} s; medians of {repeat}"
    )
    print(f"  {'':<38}   wall   /parse        cpu  peak")
    print(
        f"  {'C parse (' + parse['parser'] + '):':<38}{p:6.2f} s  {1:5.2f}x  {'':>9}  {parse['peak_mb']:4.0f} MB"
    )
    rows = (
        [
            ("--before code: no cache, 1% changed", before),
            ("--before code: cold", before_cold),
            ("--before code: warm, unchanged", before_warm),
        ]
        if before
        else []
    )
    rows += [
        ("plan, no cache, 1% changed", off),
        ("plan, cold (first run)", cold),
        ("plan, warm, unchanged", warm),
        ("plan, warm, 1% changed", warm1),
    ]
    json_warm = None
    if n == max(args.sizes):
        json_warm = median_of([run_cli(manifests, unchanged, warm_cache, "json") for _ in range(repeat)])
        if args.before:
            before_json = median_of(
                [
                    run_cli(manifests, unchanged, str(caches / "before-cold0"), "json", code=args.before)
                    for _ in range(repeat)
                ]
            )
            rows.insert(3, ("--before code: --format json, warm", before_json))
        rows.append(("plan --format json, warm", json_warm))
    for label, r in rows:
        print(
            f"  {label + ':':<38}{r['seconds']:6.2f} s  {r['seconds'] / p:5.2f}x  {r['cpu']:7.2f} s  "
            f"{r['peak_mb']:4.0f} MB"
        )
    result = {"n": n, "parse": p, "cold": cold, "warm": warm, "warm1": warm1, "off": off, "json": json_warm}
    if before:
        result["before"] = before
    if n != max(args.sizes):
        return result

    env = {"RECONCILER_CACHE_DIR": warm_cache}
    inproc = median_of([child(["plan", str(manifests), str(changed)], env) for _ in range(repeat)])
    print(
        "  warm plan in process (1% changed): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in inproc["marks"].items())
    )
    print(f"    actions: {inproc['counts']}")
    expected = {"rerender": -(-n // int(1 / CHANGED_SHARE))}
    expected["noop"] = n - expected["rerender"]
    if inproc["counts"] != expected:
        failed.append(f"{n}: planned {inproc['counts']}, expected {expected}")

    diff = child(["diff", str(unchanged), str(root / "git")])
    share = diff["diff_bytes"] / diff["before_bytes"]
    print(
        f"  state file: {diff['before_bytes'] / 2**20:.1f} MiB ({diff['before_bytes'] / n:,.0f} B a product, "
        f"{diff['lines']:,} lines); after a 1% re-render {diff['after_bytes'] / 2**20:.1f} MiB"
    )
    print(
        f"  git diff --stat of the 1% re-render: {diff['shortstat']}; "
        f"{diff['diff_bytes'] / 2**10:,.0f} KiB of diff, {share:.2%} of the file"
    )
    mark(warm["seconds"] < WARM_SECONDS, f"unchanged plan (warm) under {WARM_SECONDS:g} s", failed)
    mark(warm["seconds"] / p < WARM_RATIO, f"unchanged plan (warm) under {WARM_RATIO:g}x the C parse", failed)
    mark(warm1["seconds"] < CHANGED_SECONDS, f"1% changed plan (warm) under {CHANGED_SECONDS:g} s", failed)
    mark(cold["seconds"] / p <= COLD_RATIO, f"cold first plan within {COLD_RATIO:g}x the C parse", failed)
    peak = max(r["peak_mb"] for r in (cold, warm, warm1) + ((json_warm,) if json_warm else ()))
    mark(peak < TARGET_MB, f"peak under {TARGET_MB} MB (worst of cold and warm: {peak:.0f} MB)", failed)
    mark(share <= DIFF_SHARE, f"a 1% re-render diffs at most {DIFF_SHARE:.0%} of the state", failed)
    result["diff"] = diff
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown")
    parser.add_argument(
        "--keep", type=Path, help="build the catalogues under this folder once, keep and reuse them"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of the code to compare with (git worktree add DIR main): its `plan` is timed too",
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
        elif name == "diff":
            result = phase_diff(Path(paths[0]), Path(paths[1]))
        else:
            result = phase_plan(Path(paths[0]), Path(paths[1]))
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return

    failed: list[str] = []
    results = {}
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"plan-bench-{n}-")) if not args.keep else args.keep / str(n)
        try:
            results[n] = measure(n, root, args, failed)
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
            else:
                shutil.rmtree(root / "git", ignore_errors=True)
    if 10_000 in results and 20_000 in results:
        print("\ngrowth, 20,000 / 10,000 products:")
        keys = [("cold", "cold plan"), ("warm1", "warm plan, 1% changed"), ("off", "no cache")]
        if args.before:
            keys.append(("before", "--before code"))
        for key, label in keys:
            ratio = results[20_000][key]["seconds"] / results[10_000][key]["seconds"]
            mark(ratio < GROWTH, f"{label}: time ratio {ratio:.2f} under {GROWTH:g}", failed)
    if failed:
        sys.exit("targets missed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
