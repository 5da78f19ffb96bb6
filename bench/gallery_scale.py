"""How long `reconciler gallery` takes and how big the site is, for 40 and 10,000 products.

    .venv/bin/python bench/gallery_scale.py                    # both, about 3 minutes on 2 cores
    .venv/bin/python bench/gallery_scale.py --only catalogue   # or: synthetic
    .venv/bin/python bench/gallery_scale.py --products 10000 --distinct 0 --keep DIR

Everything happens in a temp dir that is removed at the end (unless --keep); the repository's
state/, downloads/ and gallery/ are never read or written. Printed, no assertions:

1. catalogue: the example catalogue (manifests/, 40 products at their real sizes: stills up
   to 1600 px, turntables of 24-48 frames at 540-720 px, 11 GIFs) applied by the real CLI
   against the embedded sandbox (`apply --sandbox --auto-approve`, which keeps the files in
   downloads/sandbox/ and ends by writing gallery/), then `reconciler gallery --sandbox` into
   a new folder (cold: every file hashed, every thumbnail and poster made) and again into the
   same folder (warm: hashes and previews reused).
2. synthetic: N products (default 10,000) written directly as a state and a downloads folder
   (tests/gallery/synthetic.py: tiny real renders, 1% re-rendered with their previous files,
   1% failed, a few missing or altered files), every render distinct unless --distinct K.
   The same cold and warm builds.

For each: build time (the command's own figure and the process's wall time, which adds the
interpreter's start and imports), pages, and the site's size split into HTML+JS, previews
(thumbnails and posters) and media (hard links to the downloads: no extra disk on the same
file system, full size in a CI artifact). Timings depend on what else runs: run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
    return {**env, "NO_COLOR": "1"}


def _run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"reconciler {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result, wall


def _sizes(site: Path) -> dict[str, int]:
    out = {"html+js": 0, "previews": 0, "media": 0}
    for path in site.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        top = path.relative_to(site).parts[0]
        key = "media" if top == "media" else "previews" if top in ("thumbs", "posters") else "html+js"
        out[key] += path.stat().st_size
    return out


def _mib(n: int) -> str:
    return f"{n / 2**20:8.1f} MiB"


def _build(label: str, cwd: Path, args: list[str], site: Path) -> None:
    for run in ("cold", "warm"):
        result, wall = _run(["gallery", *args, "--out", str(site), "--format", "json"], cwd)
        report: dict[str, Any] = json.loads(result.stdout)
        sizes = _sizes(site)
        first = (site / "page-1.html").stat().st_size
        print(
            f"  {label:<10} {run}: {report['seconds']:6.2f} s build ({wall:6.2f} s wall), "
            f"{report['products']:>6,} products on {report['pages']:>3} pages; "
            f"hashed {report['files_hashed']:,} (reused {report['hashes_reused']:,}), "
            f"previews made {report['previews_made']:,} (reused {report['previews_reused']:,})"
        )
        print(
            f"  {'':<10}       site: HTML+JS {_mib(sizes['html+js'])} (first page {first / 1024:.0f} KiB), "
            f"previews {_mib(sizes['previews'])}, media {_mib(sizes['media'])} "
            f"(total {_mib(report['site_bytes'])})"
        )


def catalogue(tmp: Path) -> None:
    print("1. The example catalogue (40 products, real sizes), applied against the embedded sandbox")
    work = tmp / "catalogue"
    work.mkdir()
    shutil.copytree(ROOT / "manifests", work / "manifests")
    _, wall = _run(["apply", "--sandbox", "--auto-approve"], work)
    downloads = sum(p.stat().st_size for p in (work / "downloads" / "sandbox").rglob("*") if p.is_file())
    print(
        f"  apply --sandbox (render, download, then the gallery): {wall:.1f} s wall; downloads {_mib(downloads)}"
    )
    _build("40", work, ["--sandbox"], work / "site")


def synthetic(tmp: Path, products: int, distinct: int | None) -> None:
    from tests.gallery.synthetic import make_catalogue

    kind = "every render distinct" if distinct is None else f"{distinct} distinct renders shared"
    print(f"2. {products:,} synthetic products ({kind}), state and files written directly")
    started = time.perf_counter()
    cat = make_catalogue(tmp / "synthetic", products, distinct=distinct)
    downloads = sum(p.stat().st_size for p in cat.downloads.rglob("*") if p.is_file())
    print(
        f"  generated in {time.perf_counter() - started:.1f} s: {len(cat.rerendered)} re-rendered, "
        f"{len(cat.failed)} failed, downloads {_mib(downloads)}"
    )
    _build(
        f"{products:,}",
        tmp,
        ["--state", str(cat.state_path), "--download-dir", str(cat.downloads)],
        tmp / "synthetic-site",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=["catalogue", "synthetic"])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=0, help="distinct renders (0: every product its own)")
    parser.add_argument("--keep", type=Path, help="work here and keep everything")
    args = parser.parse_args()
    only = set(args.only or ["catalogue", "synthetic"])
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="gallery-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if "catalogue" in only:
            catalogue(tmp)
        if "synthetic" in only:
            synthetic(tmp, args.products, args.distinct or None)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
