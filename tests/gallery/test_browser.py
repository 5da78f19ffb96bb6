"""The gallery in a real headless Chromium: a catalogue applied against the sandbox through the
CLI, three products re-rendered with a new spec, local files broken on purpose, one name full
of HTML; then every page opened from disk (file://) as a person would open it.

Also a gallery of 10,000 products (state and files written directly: tests/gallery/synthetic.py)
whose first page must load. Screenshots go to test-artifacts/gallery/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reconciler.loader import load_desired
from reconciler.sandbox.server import EmbeddedSandbox
from tests.e2e.conftest import ROOT, Project, fast_config
from tests.gallery.browser import LOAD_ALL_MEDIA, Tab, screenshot
from tests.gallery.synthetic import make_catalogue

EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & "Quoted" Boot'
PAGE_SIZE = 12  # 40 products on 4 pages: paging and the index's search across pages get exercised


@dataclass
class Scenario:
    root: Path
    site: Path
    state: dict[str, Any]
    rerendered: list[str]
    evil: str
    missing_still: str
    broken_mp4: str
    altered_still: str
    odd_size: str


def _catalogue_yaml(products: dict[str, str], *, recoloured: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """Tiny renders of the example catalogue's products in all three formats, GIF on every other,
    one turntable of odd size (the sandbox encodes it as H.264 High 4:4:4)."""
    lines = []
    for i, (uuid, name) in enumerate(products.items()):
        fmt = ("PNG", "JPG", "WEBP")[i % 3]
        width, height = (33, 31) if i == 5 else (32, 32)
        background = "#D0E4FF" if uuid in recoloured else "#F4F4F4"
        lines.append(
            f"  - uuid: {uuid}\n    name: {json.dumps(name)}\n    imageFormat: {fmt}\n"
            f'    imageBackground: "{background}"\n    turntable:\n      includeGif: {str(i % 2 == 0).lower()}\n'
            f"      width: {width}\n      height: {height}\n"
        )
    return (
        "defaults:\n  imageWidth: 32\n  imageHeight: 24\n  imageFormat: PNG\n  turntable:\n"
        "    includeGif: false\n    imageCount: 4\n    frameRate: 4\n    width: 32\n    height: 32\n"
        "products:\n" + "".join(lines)
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("gallery-e2e")
    names = {u: p.name or u for u, p in load_desired([ROOT / "manifests"]).products.items()}
    uuids = sorted(names)
    evil = uuids[7]
    names[evil] = EVIL
    rerendered = uuids[1:4]
    with EmbeddedSandbox(data_dir=base / "platform", config=fast_config()) as sb:
        project = Project(base / "project", sb)
        project.write_manifest(_catalogue_yaml(names))
        first = project.apply("--download-dir", "downloads")
        assert first.returncode == 0, first.stderr
        project.write_manifest(_catalogue_yaml(names, recoloured=set(rerendered)))
        second = project.apply("--download-dir", "downloads")
        assert second.returncode == 0, second.stderr
    state = project.state()
    downloads = project.root / "downloads"

    def file_of(uuid: str, kind: str) -> Path:
        [att] = [a for a in state["products"][uuid]["attachments"] if a["kind"] == kind]
        return downloads / uuid / str(att["name"])

    missing_still, broken_mp4, altered_still = uuids[10], uuids[11], uuids[12]
    file_of(missing_still, "still").unlink()
    mp4 = file_of(broken_mp4, "turntable")
    mp4.write_bytes(mp4.read_bytes()[:200])  # truncated: altered, and no browser could play it
    still = file_of(altered_still, "still")
    with Image.open(still) as im:  # altered but still a picture: shown, with a warning
        im.convert("RGB").rotate(90).save(still, format=im.format)
    built = project.cli(
        "gallery", "--download-dir", "downloads", "--out", "site", "--page-size", str(PAGE_SIZE)
    )
    assert built.returncode == 0, built.stderr
    assert "Local files 1 missing, 2 altered, 1 undecodable: their cards say so." in built.stdout
    yield Scenario(
        project.root,
        project.root / "site",
        state,
        rerendered,
        evil,
        missing_still,
        broken_mp4,
        altered_still,
        uuids[5],
    )


def _pages(site: Path) -> list[Path]:
    return sorted(site.glob("page-*.html"), key=lambda p: int(p.stem.split("-")[1]))


def test_every_image_loads_every_video_plays_and_no_page_logs_an_error(scenario: Scenario, tab: Tab) -> None:
    pages = _pages(scenario.site)
    assert len(pages) == 4
    seen_videos: dict[str, dict[str, Any]] = {}
    images = 0
    for page in pages:
        tab.goto(page)
        media = tab.page.evaluate(LOAD_ALL_MEDIA)
        broken = [m for m in [*media["images"], *media["videos"]] if "error" in m]
        assert broken == []
        assert all(m["w"] > 0 and m["h"] > 0 for m in media["images"])
        images += len(media["images"])
        for v in media["videos"]:
            seen_videos[v["src"]] = v
        if page.name == "page-1.html":
            tab.page.evaluate("window.scrollTo(0, 0)")
            screenshot(tab, "page-1.png")
    assert tab.errors == []
    products = scenario.state["products"]
    # every product's MP4 plays at its real size, but the one truncated on purpose (it is not on the page)
    assert len(seen_videos) == len(products) - 1
    for v in seen_videos.values():
        assert v["readyState"] >= 3 and v["canPlayType"] == "probably"
        assert v["frame"] == [v["w"], v["h"]]
    sizes = {(v["w"], v["h"]) for v in seen_videos.values()}
    assert sizes == {(32, 32), (33, 31)}  # the odd size is H.264 4:4:4, and plays too
    stills = len(products) - 1  # one deleted
    gifs = sum(1 for r in products.values() for a in r["attachments"] if a["kind"] == "gif")
    assert images == stills + gifs + 2 * len(scenario.rerendered)  # before/after: the old and new still again


def test_rerendered_products_show_before_and_after_with_the_field_change(
    scenario: Scenario, tab: Tab
) -> None:
    tab.goto(scenario.site / "page-1.html")
    pairs = tab.page.eval_on_selector_all(
        ".beforeafter",
        """els => els.map(s => ({
        uuid: s.closest(".card").dataset.uuid,
        imgs: Array.from(s.querySelectorAll("img")).map(i => i.getAttribute("src")),
        alts: Array.from(s.querySelectorAll("img")).map(i => i.alt),
        changes: Array.from(s.querySelectorAll(".changes li")).map(li => li.textContent)}))""",
    )
    assert sorted(p["uuid"] for p in pairs) == sorted(scenario.rerendered)  # changed ones come first: page 1
    for p in pairs:
        before, after = p["imgs"]
        assert before != after
        assert p["alts"][0].startswith("Previous still of ") and p["alts"][1].startswith("New still of ")
        assert p["changes"] == ["imageBackground: #F4F4F4 → #D0E4FF"]
    media = tab.page.evaluate(LOAD_ALL_MEDIA)
    assert not [m for m in media["images"] if "error" in m]
    assert tab.errors == []


def test_the_filter_narrows_the_cards_and_travels_with_the_pager(scenario: Scenario, tab: Tab) -> None:
    tab.goto(scenario.site / "page-1.html")
    everyone = tab.visible_cards()
    assert len(everyone) == PAGE_SIZE
    tab.page.check("input[value=changed]")
    assert sorted(tab.visible_cards()) == sorted(scenario.rerendered)
    assert tab.page.text_content("#shown") == f"3 of {PAGE_SIZE} on this page"
    tab.page.uncheck("input[value=changed]")
    name = scenario.state["products"][everyone[5]]["name"]
    tab.page.fill("input[name=q]", name.upper())
    assert tab.visible_cards() == [everyone[5]]
    tab.page.fill("input[name=q]", "")
    tab.page.select_option("select[name=format]", "JPG")
    jpg = tab.visible_cards()
    assert 0 < len(jpg) < PAGE_SIZE
    assert all(scenario.state["products"][u]["spec"]["imageFormat"] == "JPG" for u in jpg)
    assert tab.page.get_attribute("a[rel=next]", "href") == "page-2.html#format=JPG"
    tab.page.click("a[rel=next] >> nth=0")
    tab.page.wait_for_url("**/page-2.html#format=JPG")
    assert tab.page.input_value("select[name=format]") == "JPG"
    assert all(scenario.state["products"][u]["spec"]["imageFormat"] == "JPG" for u in tab.visible_cards())
    assert tab.errors == []


def test_the_index_counts_and_finds_a_product_on_any_page(scenario: Scenario, tab: Tab) -> None:
    tab.goto(scenario.site / "index.html")
    counts = dict(
        tab.page.eval_on_selector_all(
            ".counts dl div",
            "ds => ds.map(d => [d.querySelector('dt').textContent, d.querySelector('dd').textContent])",
        )
    )
    assert counts["rendered"] == "40" and counts["changed in the last apply"] == "3"
    assert counts["files missing locally"] == "1" and counts["files altered locally"] == "2"
    assert counts["drifted"] == "3"
    last_page = tab.page.eval_on_selector_all(".pages li a", "as => as.map(a => a.getAttribute('href'))")
    assert last_page == ["page-1.html", "page-2.html", "page-3.html", "page-4.html"]
    # find the last card of the last page by a piece of its uuid
    html = (scenario.site / "page-4.html").read_text()
    target = html.rsplit('data-uuid="', 1)[1].split('"', 1)[0]
    tab.page.fill("input[name=q]", target[:13])
    links = tab.page.eval_on_selector_all("#results a", "as => as.map(a => a.getAttribute('href'))")
    assert links == [f"page-4.html#p-{target}"]
    tab.page.click("#results a")
    tab.page.wait_for_url(f"**/page-4.html#p-{target}")
    assert tab.page.evaluate("document.activeElement.dataset.uuid") == target
    tab.goto(scenario.site / "index.html")
    tab.page.click("text=drifted >> nth=0")  # the count links set the same filter
    assert tab.page.is_checked("input[value=drifted]")
    assert tab.page.eval_on_selector_all("#results li", "l => l.length") == 3
    assert tab.errors == []


def test_missing_and_altered_files_show_on_their_cards_and_break_nothing(
    scenario: Scenario, tab: Tab
) -> None:
    for page in _pages(scenario.site):
        tab.goto(page)
        for uuid, expect in (
            (scenario.missing_still, "1 file missing"),
            (scenario.broken_mp4, "1 altered"),
            (scenario.altered_still, "1 altered"),
        ):
            card = tab.page.query_selector(f"#p-{uuid}")
            if card is None:
                continue
            assert card.query_selector(".badge.problem").text_content() == expect
            assert "drifted" in card.get_attribute("data-flags").split()
            if uuid == scenario.missing_still:
                assert "missing locally" in card.query_selector(".still .placeholder").text_content()
            if uuid == scenario.broken_mp4:
                assert card.query_selector("video") is None
                assert "cannot be played" in card.query_selector(".turntable .placeholder").text_content()
            if uuid == scenario.altered_still:
                assert card.query_selector(".still img") is not None
                assert "altered locally" in card.query_selector(".still figcaption").text_content()
    assert tab.errors == []


def test_html_in_a_name_is_shown_as_text_and_never_runs(scenario: Scenario, tab: Tab) -> None:
    page = next(p for p in _pages(scenario.site) if f'id="p-{scenario.evil}"' in p.read_text())
    tab.goto(page)
    assert tab.page.text_content(f"#t-{scenario.evil}") == EVIL
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.page.query_selector_all("img[src=x]") == []
    tab.page.fill("input[name=q]", "<script>")
    assert tab.visible_cards() == [scenario.evil]
    tab.goto(scenario.site / "index.html")
    tab.page.fill("input[name=q]", "onerror")
    assert tab.page.text_content("#results a") == EVIL
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.errors == []


def test_keyboard_alone_finds_filters_and_opens_a_render(scenario: Scenario, tab: Tab) -> None:
    tab.goto(scenario.site / "page-2.html")
    keys = tab.page.keyboard
    keys.press("Tab")  # the skip link comes first
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.page.focus(".card")
    first, second = tab.visible_cards()[:2]
    keys.press("ArrowRight")
    assert tab.page.evaluate("document.activeElement.dataset.uuid") == second
    keys.press("k")
    assert tab.page.evaluate("document.activeElement.dataset.uuid") == first
    keys.press("ArrowDown")
    below = tab.page.evaluate("document.activeElement.dataset.uuid")
    assert below != first and tab.page.evaluate(
        f"document.getElementById('p-{below}').offsetTop > document.getElementById('p-{first}').offsetTop"
    )
    keys.press("/")
    assert tab.page.evaluate("document.activeElement.name") == "q"
    keys.type(scenario.state["products"][first]["name"])
    assert tab.visible_cards() == [first]
    keys.press("Escape")
    assert len(tab.visible_cards()) == PAGE_SIZE
    tab.page.focus(f"#p-{first}")
    keys.press("Enter")
    [still] = [a for a in scenario.state["products"][first]["attachments"] if a["kind"] == "still"]
    tab.page.wait_for_url(f"**/{still['name']}")
    assert tab.errors == []


@pytest.fixture(scope="module")
def big_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gallery-10k")
    catalogue = make_catalogue(base, 10_000, distinct=40)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "gallery",
            "--state",
            str(catalogue.state_path),
            "--download-dir",
            str(catalogue.downloads),
            "--out",
            str(base / "site"),
            "--format",
            "json",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert (report["products"], report["pages"]) == (10_000, 50)
    return Path(report["index"]).parent


def test_a_gallery_of_10000_products_opens_its_first_page(big_gallery: Path, tab: Tab) -> None:
    tab.goto(big_gallery / "index.html")
    assert tab.page.text_content("#counts-h") == "10,000 products"
    tab.page.fill("input[name=q]", "product 09999")
    assert tab.page.eval_on_selector_all("#results a", "as => as.map(a => a.textContent)") == [
        "Product 09999 Box"
    ]
    tab.goto(big_gallery / "page-1.html")
    assert len(tab.visible_cards()) == 200
    # what is on screen loads; the rest waits for scrolling (lazy)
    loaded = tab.page.evaluate("""async () => {
        const shown = Array.from(document.querySelectorAll("img")).filter(i => i.getBoundingClientRect().top < innerHeight);
        await Promise.all(shown.map(i => i.decode()));
        return shown.map(i => i.naturalWidth);
    }""")
    assert loaded and all(w > 0 for w in loaded)
    screenshot(tab, "page-1-of-10000.png")
    tab.goto(big_gallery / "page-50.html")
    assert len(tab.visible_cards()) == 200
    assert tab.errors == []


def test_the_media_check_fails_for_a_video_or_image_the_browser_cannot_decode(
    scenario: Scenario, tab: Tab
) -> None:
    """The loader the tests above rely on reports what does not play: it is not a check that passes anyway."""
    broken = next(
        p for p in (scenario.site / "media").rglob("*.mp4") if p.stat().st_size == 200
    )  # the truncated one
    tab.goto(scenario.site / "index.html")
    tab.page.evaluate(
        """src => {
        const v = document.createElement("video"); v.setAttribute("src", src); document.body.appendChild(v);
        const i = document.createElement("img"); i.setAttribute("src", "assets/gallery.css"); document.body.appendChild(i);
    }""",
        broken.relative_to(scenario.site).as_posix(),
    )
    media = tab.page.evaluate(LOAD_ALL_MEDIA)
    assert [("error" in m) for m in media["videos"]] == [True]
    assert [("error" in m) for m in media["images"]] == [True]


def test_the_tab_still_reports_a_file_that_is_missing(tab: Tab, tmp_path: Path) -> None:
    # The tab ignores only requests the browser itself cancelled (net::ERR_ABORTED, a thumbnail
    # whose list a filter replaced): a page that names a file that is not there is still an error.
    page = tmp_path / "page.html"
    page.write_text('<!doctype html><img src="missing.webp" alt="">', encoding="utf-8")
    tab.page.goto(page.as_uri())
    tab.page.wait_for_load_state("load")
    assert [e for e in tab.errors if "request failed" in e and "missing.webp" in e], tab.errors
