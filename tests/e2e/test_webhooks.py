"""The webhook receiver of ``apply --webhook-listen``, over real HTTP (issue 13): replays, oversize
bodies, and the webhook a killed run leaves behind."""

from __future__ import annotations

import dataclasses
import json
import select
import signal
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.webhook_receiver import MAX_BODY_BYTES, sign
from tests.e2e.conftest import PRODUCTS, Project, fast_config, manifest, platform_client, started, wait_for
from tests.reaper import Reaper

TRAIL, COURT = PRODUCTS["trail"], PRODUCTS["court"]
HEAVY_TURNTABLE = "turntable: {imageCount: 720, frameRate: 24, width: 256, height: 256}"
EVENTS = ["renders.completed", "renders.failed", "turntable.completed", "turntable.failed"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slow(tmp_path: Path, reaper: Reaper) -> Iterator[Project]:
    """A platform that takes 2 s per job, one at a time: long enough to reach the receiver mid-render."""
    config = dataclasses.replace(fast_config(), job_processing_seconds=2.0, workers=1)
    with started(EmbeddedSandbox(data_dir=tmp_path / "platform", config=config), reaper) as sb:
        root = tmp_path / "project"
        (root / "manifests").mkdir(parents=True)
        yield Project(root, sb)


def webhooks(project: Project) -> list[Any]:
    with platform_client(project.sandbox) as client:
        return client.list_webhooks()


def listening(project: Project, url: str) -> Any:
    """The webhook apply registered at ``url``, once it is there."""
    found: list[Any] = []

    def registered() -> bool:
        found[:] = [h for h in webhooks(project) if h.url == url]
        return bool(found)

    wait_for(registered, timeout=30)
    return found[0]


def delivery(secret: str, product: str, event: str, sent: datetime) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": event,
            "organization": {"uuid": "org"},
            "product": {"uuid": product, "name": "x"},
            "client": {"uuid": "ws"},
        },
        separators=(",", ":"),
    ).encode()
    stamp = sent.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return body, {
        "X-TIMESTAMP": stamp,
        "X-VNTANA-SIGNATURE": sign(secret, stamp, body),
        "Content-Type": "application/json",
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(120)
def test_a_replayed_failure_event_neither_fails_the_render_nor_makes_the_next_apply_pay_again(
    project: Project,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    # TRAIL's turntable takes seconds to make, its still milliseconds: a window mid-render.
    project.write_manifest(manifest([TRAIL, COURT], overrides={TRAIL: HEAVY_TURNTABLE}))
    run = project.popen(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "0.2",
        "--timeout",
        "600",
    )
    try:
        hook = listening(project, url)
        secret = hook.secret.get_secret_value()
        wait_for(lambda: project.triggers(TRAIL) == 1, timeout=30)
        # A validly signed renders.failed for TRAIL, 60 s old: inside the 5-minute window, but sent
        # before this render was triggered (a replay of an earlier delivery).
        body, headers = delivery(secret, TRAIL, "renders.failed", datetime.now(UTC) - timedelta(seconds=60))
        first = httpx.post(url, content=body, headers=headers)
        again = httpx.post(url, content=body, headers=headers)
        assert (first.status_code, first.json()) == (
            200,
            {"accepted": False, "reason": "not a render we wait for"},
        )
        assert (again.status_code, again.json()) == (
            200,
            {"accepted": False, "reason": "duplicate delivery: ignored"},
        )
        # A fresh, validly signed renders.failed for TRAIL once its still is there (its turntable is
        # still rendering): not this render's failure, as its files show before anything is recorded.
        with platform_client(project.sandbox) as client:
            wait_for(
                lambda: any(a.entity_type == "RENDER" for a in client.list_attachments(TRAIL)), timeout=30
            )
        body, headers = delivery(secret, TRAIL, "renders.failed", datetime.now(UTC))
        fresh = httpx.post(url, content=body, headers=headers)
        assert (fresh.status_code, fresh.json()) == (200, {"accepted": True})
        _out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert project.triggers(TRAIL) == 1
    assert "1 repeated" in err
    rerun = project.cli("apply", "--auto-approve", "--poll-interval", "0.05")
    assert rerun.returncode == 0 and "Nothing to apply" in rerun.stdout
    assert project.triggers(TRAIL) == 1 and project.triggers(COURT) == 1
    assert webhooks(project) == [], "the run removed its webhook"


@pytest.mark.timeout(120)
def test_an_oversized_body_is_refused_before_it_is_read_and_costs_no_memory(slow: Project) -> None:
    project = slow
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    project.write_manifest(manifest([TRAIL]))
    run = project.popen(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "0.2",
        "--timeout",
        "600",
    )
    try:
        hook = listening(project, url)
        before = peak_rss_mib(run.pid)
        # Unsigned, 300 MB declared: refused from the headers.
        unsigned = _raw_post(port, {"Content-Length": str(300 << 20)}, send=1 << 20)
        assert unsigned.startswith(b"HTTP/1.1 401"), unsigned[:200]
        # Headers that pass, 300 MB declared: refused from Content-Length, body unread.
        _, headers = delivery(hook.secret.get_secret_value(), TRAIL, "renders.completed", datetime.now(UTC))
        declared = _raw_post(port, {**headers, "Content-Length": str(300 << 20)}, send=1 << 20)
        assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
        # Chunked, no length: read up to the cap, then refused.
        chunked = _raw_post(port, {**headers, "Transfer-Encoding": "chunked"}, send=300 << 20, chunked=True)
        assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
        assert f"body larger than {MAX_BODY_BYTES} bytes".encode() in chunked
        grown = peak_rss_mib(run.pid) - before
        assert grown < 50, f"the receiver's process grew by {grown:.0f} MiB"
        _out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert project.state()["products"][TRAIL]["status"] == "rendered"


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds a whole HTTP response (headers and the body its Content-Length names)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def _raw_post(port: int, headers: dict[str, str], *, send: int, chunked: bool = False) -> bytes:
    """POST up to ``send`` bytes of body on a raw socket, stopping when the server answers; its answer."""
    head = "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    block = b"x" * 65536
    piece = (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(head.encode() + b"\r\n")
        pending, sent, answer = b"", 0, b""
        while sent < send:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            if writable:
                pending = pending or piece
                try:
                    n = sock.send(pending)
                except OSError:
                    break
                pending, sent = pending[n:], sent + n
        sock.settimeout(10)
        try:
            # Until the whole answer is in: its headers, then as many body bytes as they declare
            # (one recv may hold the headers alone).
            while not _complete(answer):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
        if send > 64 << 20:
            assert sent < send // 2, f"{sent} bytes of {send} were taken before the answer"
        return answer
    finally:
        sock.close()


@pytest.mark.timeout(120)
def test_the_webhook_a_killed_apply_left_is_replaced_by_the_next_run_on_the_same_address(
    slow: Project,
) -> None:
    project = slow
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    project.write_manifest(manifest([TRAIL, COURT]))
    run = project.popen(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "0.2",
        "--timeout",
        "600",
    )
    stale = listening(project, url)
    wait_for(lambda: project.triggers(TRAIL) == 1, timeout=30)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert [h.uuid for h in webhooks(project)] == [stale.uuid], "a killed run cannot remove its webhook"

    listed = project.cli("webhooks", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"reconciler  {stale.uuid}  reconciler apply  {url}" in listed.stdout
    assert stale.secret.get_secret_value() not in listed.stdout + listed.stderr

    again = project.cli(
        "apply",
        "--auto-approve",
        "--webhook-listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "0.2",
        "--timeout",
        "600",
    )
    assert again.returncode == 0, again.stderr
    assert f"Replaced the webhook an earlier, interrupted apply left at {url} ({stale.uuid})" in again.stderr
    assert {r["status"] for r in project.state()["products"].values()} == {"rendered"}
    assert project.triggers(TRAIL) == 1 and project.triggers(COURT) == 1, "resumed, not paid again"
    assert webhooks(project) == []


def test_a_webhook_the_reconciler_did_not_make_is_never_touched(project: Project) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    with platform_client(project.sandbox) as client:
        theirs = client.create_webhook(url=url, events=EVENTS, name="ERP sync")
        ours = client.create_webhook(
            url=f"http://127.0.0.1:{free_port()}/webhook", events=EVENTS, name="reconciler apply"
        )
    project.write_manifest(manifest([TRAIL]))
    refused = project.cli("apply", "--auto-approve", "--webhook-listen", f"127.0.0.1:{port}")
    assert refused.returncode == 1
    assert (
        f"Error: a webhook the reconciler did not make is registered at {url}: {theirs.uuid} (ERP sync); "
        "it was left alone"
    ) in refused.stderr
    assert "Hint: listen on another address: --webhook-listen HOST:OTHER_PORT" in refused.stderr
    assert project.triggers(TRAIL) == 0 and not project.state_path.exists()

    rm = project.cli("webhooks", "rm", theirs.uuid)
    assert rm.returncode == 1
    assert f"nothing removed: {theirs.uuid} (ERP sync) was not made by the reconciler" in rm.stderr
    # The hint, followed: another port.
    followed = project.cli(
        "apply", "--auto-approve", "--webhook-listen", f"127.0.0.1:{free_port()}", "--poll-interval", "0.05"
    )
    assert followed.returncode == 0, followed.stderr
    removed = project.cli("webhooks", "rm", "--all")
    assert removed.returncode == 0, removed.stderr
    assert f"Removed webhook {ours.uuid}" in removed.stdout
    assert [h.uuid for h in webhooks(project)] == [theirs.uuid]
