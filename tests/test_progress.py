"""The apply displays: each hook turns the same events into its own output."""

from __future__ import annotations

import io
import json

from rich.console import Console

from reconciler.cli.live import LiveProgress
from reconciler.events import Downloaded, Failed, Recorded, RunFinished, RunStarted, Triggered, Waiting
from reconciler.views.progress import JsonLines, LogLines, summary_text

RUN = [
    RunStarted(triggers=2, resumes=1, batches=1),
    Triggered(batch=0, request_id="r1", accepted=["a"], rejected={"b": "PRODUCT_NOT_FOUND"}),
    Failed("b", "B", "PRODUCT_NOT_FOUND"),
    Waiting("a", "A"),
    Waiting("c", "C", resumed=True),
    Downloaded("a", "still", "a.png", 3 << 20, "ab" * 32),
    Recorded("a", "A", 1),
    Recorded("c", "C", 2),
    RunFinished(
        rendered=2,
        failed=1,
        skipped=4,
        bytes_downloaded=3 << 20,
        seconds=1.5,
        requests=9,
        retries=2,
        throttled_seconds=0.25,
        failures={"b": "PRODUCT_NOT_FOUND"},
    ),
]


def test_live_progress_counts_products_and_bytes_and_ends_with_the_summary() -> None:
    out = io.StringIO()
    live = LiveProgress(Console(file=out, force_terminal=True, width=200))
    for event in RUN[:-1]:
        live.on_event(event)
    assert live.description().startswith(
        "1 triggered · 0 rendering · 2 recorded · [red]1 failed[/red] · 3.0 MiB"
    )
    live.on_event(RUN[-1])
    text = out.getvalue()
    assert "rejected" in text and "PRODUCT_NOT_FOUND" in text
    assert "Apply finished: 2 rendered, 1 failed, 4 unchanged/skipped; 3.0 MiB downloaded in 1.5 s" in text
    assert "2 retries, 0.2 s throttled" in text or "2 retries, 0.3 s throttled" in text


def test_log_lines_are_plain_and_list_failures_with_their_reason() -> None:
    out = io.StringIO()
    hook = LogLines(out)
    for event in RUN:
        hook.on_event(event)
    text = out.getvalue()
    assert "\x1b[" not in text
    assert "batch 1: 1 accepted, 1 rejected" in text
    assert "c: resuming, waiting for the render already triggered" in text
    assert "Failed (the next plan retries them):\n  b: PRODUCT_NOT_FOUND" in text


def test_json_lines_are_one_object_per_event() -> None:
    out = io.StringIO()
    hook = JsonLines(out)
    for event in RUN:
        hook.on_event(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [type(e).__name__ for e in RUN]
    assert lines[1]["rejected"] == {"b": "PRODUCT_NOT_FOUND"}


def test_the_summary_names_the_run_that_finished() -> None:
    finished = RunFinished(
        rendered=2,
        failed=0,
        skipped=1,
        bytes_downloaded=0,
        seconds=1.0,
        requests=3,
        retries=0,
        throttled_seconds=0,
    )
    out = io.StringIO()
    LogLines(out, run="Collect").on_event(finished)
    assert out.getvalue().startswith("Collect finished: 2 rendered, 0 failed, 1 unchanged/skipped;")
    assert summary_text(finished).startswith("Apply finished: 2 rendered")
