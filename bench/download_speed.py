"""Download + sha256 of one large render against the sandbox process, against what bounds it.

    .venv/bin/python bench/download_speed.py                  # 256 MiB, 9 rounds
    .venv/bin/python bench/download_speed.py --candidates     # also the body paths that lost

One blob of random bytes is registered as a RENDER attachment in a sandbox data dir, and
``reconciler sandbox`` serves it from its own process (2 cores: one serves, one downloads).
Each round times, in turn: ``hashlib.sha256`` over the same bytes in memory; a bare socket
reader of the signed URL (no HTTP parsing, no hashing: what the server can deliver);
``curl -s URL | sha256sum`` on the same signed URL (what a user would script); the client's
download as it was before this benchmark's change (``download.py`` loaded from git, ``--before``)
and as it is now, by the signed URL and by the comments route. Figures are medians over the
rounds; ratios are taken against the in-memory sha256 of the same round, then the median.
Then one more download is split into server and client CPU, and a child process downloads into
a file and reports its peak RSS (the download must stream). Targets (issue 12): now >= 0.8 x
sha256, and >= ``curl | sha256sum``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apply_scale import MIB, cpu_seconds, in_parallel, register_blobs, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "f9342e3"
"""The last commit before the http.client body path: its download.py is the 'before'."""
STORAGE_HEADERS = {"Content-Type": "application/octet-stream", "Accept-Encoding": "identity"}


def mark(ok: bool) -> str:
    return "[ok]  " if ok else "[MISS]"


def load_before(rev: str) -> ModuleType | None:
    """``reconciler/client/download.py`` as it was at ``rev``, importable beside today's package."""
    try:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:reconciler/client/download.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp(prefix="download-before-")) / "download_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("reconciler.client._download_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bare_socket(url: str) -> int:
    """GET ``url`` on a raw socket into a reused 4 MiB buffer; no parsing, no hashing. Bytes read."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode()
        )
        buf = bytearray(4 * MIB)
        total = 0
        while k := sock.recv_into(buf):
            total += k
        return total


def curl_sha(url: str) -> str:
    """``curl -s URL | sha256sum``, with the header the signed URL demands."""
    out = subprocess.run(
        f"curl -s -H 'Content-Type: application/octet-stream' '{url}' | sha256sum",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[0]


# -- candidates that lost (--candidates): the same GET, other body paths ----------------------------


def http_client_serial(url: str, size: int = 4 * MIB) -> str:
    """http.client readinto into one reused buffer, hashed on the reading thread."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    conn.request("GET", f"{parts.path}?{parts.query}", headers=STORAGE_HEADERS)
    response = conn.getresponse()
    hasher = hashlib.sha256()
    buf = bytearray(size)
    view = memoryview(buf)
    while n := response.readinto(buf):
        hasher.update(view[:n])
    conn.close()
    return hasher.hexdigest()


def candidates(url: str) -> dict[str, Callable[[], str]]:
    found: dict[str, Callable[[], str]] = {
        "http.client, hashed on the reading thread": lambda: http_client_serial(url)
    }
    try:
        import urllib3

        pool = urllib3.PoolManager()

        def with_urllib3() -> str:
            r = pool.request("GET", url, headers=STORAGE_HEADERS, preload_content=False, decode_content=False)
            hasher = hashlib.sha256()
            while data := r.read(4 * MIB, decode_content=False):
                hasher.update(data)
            r.release_conn()
            return hasher.hexdigest()

        found[f"urllib3 {urllib3.__version__} read(4 MiB)"] = with_urllib3
    except ImportError:
        print("  (urllib3 not installed: not measured)")
    try:
        import pycurl

        curl = pycurl.Curl()

        def with_pycurl() -> str:
            hasher = hashlib.sha256()
            curl.setopt(pycurl.URL, url)
            curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in STORAGE_HEADERS.items()])
            curl.setopt(pycurl.BUFFERSIZE, 4 * MIB)
            curl.setopt(pycurl.WRITEFUNCTION, hasher.update)
            curl.perform()
            return hasher.hexdigest()

        found["pycurl write callback"] = with_pycurl
    except ImportError:
        print("  (pycurl not installed: not measured)")
    return found


# -- peak memory of one download, in a child process -----------------------------------------------

CHILD = r"""
import json, sys
from reconciler.client import VntanaClient
from reconciler.settings import ClientSettings
def hwm():  # peak RSS of this process (VmHWM: reset at exec, unlike ru_maxrss), KiB
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
url, token, org, product, out = sys.argv[1:6]
with VntanaClient(ClientSettings(api_url=url, token=token, organization_uuid=org, download_route="signed-url")) as c:
    att = c.search_attachments(product, "RENDER")[0]
    before = hwm()
    with open(out, "wb") as sink:
        result = c.download(att, "RENDER", sink)
    after = hwm()
print(json.dumps({"before_kib": before, "peak_kib": after, "size": result.size}))
"""


def peak_rss(url: str, token: str, org: str, product: str, out: Path) -> dict[str, int]:
    import json

    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, token, org, product, str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    out.unlink(missing_ok=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="size of the render (MiB)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds; every figure is a median over them")
    parser.add_argument("--before", default=BEFORE, help="git revision whose download.py is the 'before'")
    parser.add_argument("--candidates", action="store_true", help="also time the body paths that lost")
    args = parser.parse_args()

    from reconciler.client import VntanaClient
    from reconciler.sandbox.config import DEFAULT_ACCESS_TOKEN
    from reconciler.settings import ClientSettings

    size = args.mib * MIB
    root = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        blobs = [os.urandom(size), os.urandom(size)]
        digests = [hashlib.sha256(b).hexdigest() for b in blobs]
        products = register_blobs(root / "platform", blobs)
        before = load_before(args.before)
        print(
            f"download + sha256 of a {args.mib} MiB render, {args.rounds} rounds (medians), "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"
        )
        rates: dict[str, list[float]] = defaultdict(list)
        ratios: dict[str, list[float]] = defaultdict(list)
        with sandbox_process(root / "platform") as (url, org, pid):
            settings = ClientSettings(api_url=url, token=DEFAULT_ACCESS_TOKEN, organization_uuid=org)
            with (
                VntanaClient(settings.model_copy(update={"download_route": "signed-url"})) as signed,
                VntanaClient(settings.model_copy(update={"download_route": "comments"})) as comments,
            ):
                atts = [signed.search_attachments(p, "RENDER")[0] for p in products]
                location = signed.sign_download_url(atts[0].uuid, "RENDER")

                def ours(client: VntanaClient, i: int = 0) -> Callable[[], str]:
                    return lambda: client.download(atts[i], "RENDER", None).sha256

                def in_memory() -> str:
                    return hashlib.sha256(blobs[0]).hexdigest()

                steps: dict[str, Callable[[], str | int]] = {
                    "sha256 in memory": in_memory,
                    "bare socket reader (no HTTP, no hash)": lambda: bare_socket(location),
                }
                if shutil.which("curl") and shutil.which("sha256sum"):
                    steps["curl -s URL | sha256sum"] = lambda: curl_sha(location)
                if before is not None:
                    old_session = signed._session

                    def old() -> str:
                        source = before.SignedUrlSource(
                            lambda: signed.sign_download_url(atts[0].uuid, "RENDER"), old_session, "before", 3
                        )
                        result: Any = before.download(old_session, source, name="before", sink=None)
                        return str(result.sha256)

                    steps[f"before ({args.before}): httpx iter_raw, signed URL"] = old
                else:
                    print(f"  (git revision {args.before} unavailable: no 'before' figure)")
                steps["now: VntanaClient.download, signed URL"] = ours(signed)
                steps["now: VntanaClient.download, comments route"] = ours(comments)
                if "/sandbox-storage/" in location and not location.startswith(url):
                    # The same signed URL on the API host: served by uvicorn, as before the listener.
                    from reconciler.client.download import SignedUrlSource, download

                    def via_uvicorn() -> str:
                        fresh = signed.sign_download_url(atts[0].uuid, "RENDER")
                        moved = url + "/sandbox-storage/" + fresh.split("/sandbox-storage/", 1)[1]
                        source = SignedUrlSource(lambda: moved, signed._session, "uvicorn", 3)
                        result = download(
                            signed._session, source, name="uvicorn", sink=None, bodies=signed._bodies
                        )
                        return result.sha256

                    steps["now: same client, signed URL served by uvicorn"] = via_uvicorn

                def both() -> int:
                    def one(i: int) -> Callable[[], int]:
                        def fetch() -> int:
                            result = signed.download(atts[i], "RENDER", None)
                            if result.sha256 != digests[i]:
                                raise SystemExit(f"parallel download {i}: wrong sha256")
                            return result.size

                        return fetch

                    return in_parallel([one(0), one(1)])

                steps["now: 2 parallel downloads (aggregate)"] = both
                if args.candidates:
                    steps.update({f"candidate: {k}": v for k, v in candidates(location).items()})
                for fn in steps.values():  # warm: connections, logins, page cache
                    fn()
                hash_cpus: list[float] = []
                for _ in range(args.rounds):
                    sha_rate = 0.0
                    for label, fn in steps.items():
                        started, cpu = time.perf_counter(), time.process_time()
                        got = fn()
                        secs = time.perf_counter() - started
                        if label == "sha256 in memory":
                            hash_cpus.append(time.process_time() - cpu)
                        moved = 2 * size if "parallel" in label else size
                        if isinstance(got, str) and got != digests[0]:
                            raise SystemExit(f"{label}: wrong sha256 {got}")
                        if isinstance(got, int) and got < size:
                            raise SystemExit(f"{label}: only {got} bytes")
                        rate = moved / secs / MIB
                        if label == "sha256 in memory":
                            sha_rate = rate
                        rates[label].append(rate)
                        ratios[label].append(rate / sha_rate)

                # One more download, its wall time split into server and client CPU.
                splits = {}
                for label in (
                    "now: VntanaClient.download, signed URL",
                    f"before ({args.before}): httpx iter_raw, signed URL",
                ):
                    if label in steps:
                        server, client, wall = cpu_seconds(pid), time.process_time(), time.perf_counter()
                        steps[label]()
                        splits[label] = (
                            time.perf_counter() - wall,
                            cpu_seconds(pid) - server,
                            time.process_time() - client,
                        )
                rss = peak_rss(url, DEFAULT_ACCESS_TOKEN, org, products[0], root / "sink.bin")

        print(f"  {'':<58} {'MiB/s':>7}  {'x sha256':>8}  (min-max MiB/s)")
        print("  (x sha256: each round against the same round's in-memory sha256, then the median)")
        for label in steps:
            r = rates[label]
            print(
                f"  {label:<58} {statistics.median(r):7.0f}  {statistics.median(ratios[label]):8.2f}  "
                f"({min(r):.0f}-{max(r):.0f})"
            )
        print("  one more download each, wall / server CPU / client CPU:")
        hash_cpu = statistics.median(hash_cpus)  # CPU seconds of sha256 over the render, in memory
        for label, (wall, server, client) in splits.items():
            print(
                f"    {label:<56} {wall:.2f} s / {server:.2f} s / {client:.2f} s "
                f"(client minus sha256's ~{hash_cpu:.2f} s: {max(0.0, client - hash_cpu):.2f} s)"
            )
        delta = (rss["peak_kib"] - rss["before_kib"]) / 1024
        print(
            f"  peak RSS of a process downloading the {args.mib} MiB render into a file: "
            f"{rss['peak_kib'] / 1024:.0f} MiB ({delta:+.0f} MiB over the same process before the download)"
        )
        now = "now: VntanaClient.download, signed URL"
        ratio = statistics.median(ratios[now])
        misses = []
        print(f"  {mark(ratio >= 0.8)} download+sha256 {ratio:.3f} x in-memory sha256 (target >= 0.8)")
        if ratio < 0.8:
            misses.append("ratio")
        curl = "curl -s URL | sha256sum"
        if curl in rates:
            vs = statistics.median(a / b for a, b in zip(rates[now], rates[curl], strict=True))
            print(f"  {mark(vs >= 1.0)} download+sha256 {vs:.3f} x curl -s URL | sha256sum (target >= 1)")
            if vs < 1.0:
                misses.append("curl")
        print(f"  {mark(delta < 64)} streaming: the download adds {delta:.0f} MiB of RSS (target < 64 MiB)")
        if misses:
            sys.exit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
