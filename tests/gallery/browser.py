"""Debian's Chromium driven by Playwright's Python package, for the gallery's browser tests.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (Debian's
package; ``RECONCILER_CHROMIUM`` points elsewhere). Without it a developer's run skips these
tests naming the install command; under CI (``CI`` set) a missing browser fails instead, so a
green CI always means the pages were really opened.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("RECONCILER_CHROMIUM", "/usr/bin/chromium"))
INSTALL = "sudo apt-get install -y chromium"
# The closed network refuses Chromium's background connections (updates, sync, field trials):
# without these flags it retries them for the whole run. Root needs --no-sandbox.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "gallery"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Playwright package is not installed: .venv/bin/pip install -e '.[test]'"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)) and shutil.which(str(CHROMIUM)) is None:
        return f"no Chromium at {CHROMIUM}: install it with '{INSTALL}' (or set RECONCILER_CHROMIUM)"
    return None


# Per module, not per session: while Playwright's sync API is open it keeps an asyncio loop
# running in the main thread, and every later asyncio.run() in the process fails (the
# workers' queue tests run after the gallery's).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {problem} (.ci/run installs it)")
        pytest.skip(f"browser tests skipped: {problem}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A page with every console error, uncaught exception and failed request it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def goto(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def visible_cards(self) -> list[str]:
        return list(
            self.page.eval_on_selector_all(".card:not([hidden])", "cs => cs.map(c => c.dataset.uuid)")
        )


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Tab(page)
    page.on(
        "console",
        lambda m: watched.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
    # Not net::ERR_ABORTED: the browser cancelling a thumbnail still loading when the page's script
    # replaces the list it was in (a filter clicked), which is no fault of the page. A missing
    # file fails as ERR_FILE_NOT_FOUND, and is still reported.
    page.on(
        "requestfailed",
        lambda r: (
            None
            if r.failure == "net::ERR_ABORTED"
            else watched.errors.append(f"request failed: {r.url} ({r.failure})")
        ),
    )
    try:
        yield watched
    finally:
        context.close()


def screenshot(tab: Tab, name: str) -> Path:
    """Keep a screenshot in test-artifacts/gallery/ (git-ignored) for people and CI to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    tab.page.screenshot(path=str(path), full_page=False)
    return path


# Loads every image and every video of the page, the way a person scrolling would: each one is
# scrolled into view (they are lazy), then an image must decode, and a video, played as a click
# on play would (the page itself loads nothing: preload="none"), must reach HAVE_FUTURE_DATA and
# present a frame (requestVideoFrameCallback) of its real size.
LOAD_ALL_MEDIA = """
async () => {
  const wait = (p, ms, what) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error("timeout: " + what)), ms))]);
  const images = [], videos = [];
  for (const img of document.querySelectorAll("img")) {
    img.scrollIntoView({block: "center"});
    try { await wait(img.decode(), 10000, img.src); images.push({src: img.getAttribute("src"), w: img.naturalWidth, h: img.naturalHeight}); }
    catch (e) { images.push({src: img.getAttribute("src"), error: String(e)}); }
  }
  for (const v of document.querySelectorAll("video")) {
    v.scrollIntoView({block: "center"});
    const src = v.getAttribute("src");
    try {
      const ready = new Promise((yes, no) => {
        v.addEventListener("canplay", () => yes(), {once: true});
        v.addEventListener("error", () => no(new Error("media error " + (v.error && v.error.code) + ": " + (v.error && v.error.message))), {once: true});
      });
      const frame = new Promise((yes) => v.requestVideoFrameCallback((now, meta) => yes(meta)));
      await wait(v.play(), 15000, "play " + src);
      await wait(ready, 15000, "canplay " + src);
      const meta = await wait(frame, 15000, "frame " + src);
      v.pause();
      videos.push({src, readyState: v.readyState, w: v.videoWidth, h: v.videoHeight, duration: v.duration,
                   frame: [meta.width, meta.height], canPlayType: v.canPlayType('video/mp4; codecs="avc1.64001E"')});
    } catch (e) { videos.push({src, error: String(e)}); }
  }
  return {images, videos};
}
"""
