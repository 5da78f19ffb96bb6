"""The HTML: escaped names, quoted paths, and cards that say what is missing instead of breaking."""

from __future__ import annotations

from urllib.parse import unquote

from reconciler.gallery.model import FileFacts, Focus, Preview, build_cards, layout, poster_path, thumb_path
from reconciler.gallery.pages import render_site, static_assets
from reconciler.state import Attachment, ProductRecord, Status
from tests.gallery.htmltools import cards, find, parse
from tests.gallery.test_model import spec

U1, U2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
EVIL = '<img src=x onerror="alert(1)"> & <script>alert("x")</script> \'quoted\''
WEIRD_FILE = "a #1 ?x=1 %20 <b>.png"
SHA_A, SHA_B, SHA_M = "a" * 64, "b" * 64, "d" * 64


def _site(listing: dict[str, FileFacts], previews: dict[tuple[str, str], Preview | None]) -> dict[str, str]:
    s = spec(turntable={"includeGif": True})
    records = {
        U1: ProductRecord(
            name=EVIL,
            spec=s,
            spec_hash="h",
            status=Status.RENDERED,
            updated_at="2026-12-01T08:30:00Z",
            attachments=[
                Attachment(
                    kind="still", uuid="a1", name=WEIRD_FILE, sha256=SHA_A, size=5, content_type="image/png"
                ),
                Attachment(
                    kind="turntable", uuid="a2", name="t.mp4", sha256=SHA_M, size=5, content_type="video/mp4"
                ),
                Attachment(
                    kind="gif", uuid="a3", name="t.gif", sha256=SHA_B, size=5, content_type="image/gif"
                ),
            ],
        ),
        U2: ProductRecord(
            name="Failed <one>",
            spec=s,
            spec_hash="h",
            status=Status.FAILED,
            error="RENDER_ERROR: <bad> & worse",
            updated_at="2026-12-01T08:30:00Z",
        ),
    }
    chosen = Focus(products=None, changed=frozenset(), description="all <2>")
    built = build_cards(records, chosen, listing, kept=True)
    return render_site(
        layout(
            built,
            chosen,
            title="Renders & <co>",
            source="state s",
            built_at="2026-12-01T09:00:00Z",
            kept=True,
        ),
        previews,
    )


def test_html_in_names_errors_and_file_names_is_text_never_markup() -> None:
    listing = {f"{U1}/{WEIRD_FILE}": FileFacts(5, SHA_A)}
    pages = _site(listing, {("thumb", SHA_A): Preview(32, 24, thumb_path(SHA_A))})
    page = pages["page-1.html"]
    elements = parse(page)
    assert not [e for e in elements if e.tag == "script" and "src" not in e.attrs]  # no script the names made
    assert not [e for e in elements if e.tag == "img" and e.attrs.get("src") == "x"]
    assert not [e for e in elements if e.tag == "b"]
    by_id = {c.attrs["id"]: c for c in cards(page)}
    card = by_id[f"p-{U1}"]
    assert find(card, "h2")[0].text == EVIL
    assert card.attrs["data-name"] == EVIL.lower()
    [img] = find(card, "img")
    assert img.attrs["alt"].startswith("Still of " + EVIL)
    link = find(card, "a", "full")[0].attrs["href"]
    assert "#" not in link and "?" not in link and unquote(link).endswith("/" + WEIRD_FILE)
    assert find(by_id[f"p-{U2}"], "p", "error")[0].text == "RENDER_ERROR: <bad> & worse"
    assert "Renders & <co>" in [e.text for e in parse(pages["index.html"]) if e.tag == "title"]
    assert "<script>alert" not in pages["search.js"] and "\\u003cscript" in pages["search.js"]


def test_missing_altered_and_undecodable_files_are_said_on_the_card_and_never_linked_as_media() -> None:
    # the still is missing, the MP4 altered but decodable, the GIF there but undecodable
    listing = {f"{U1}/t.mp4": FileFacts(5, "e" * 64), f"{U1}/t.gif": FileFacts(5, SHA_B)}
    previews = {("poster", "e" * 64): Preview(32, 32, poster_path("e" * 64)), ("probe", SHA_B): None}
    card = {c.attrs["id"]: c for c in cards(_site(listing, previews)["page-1.html"])}[f"p-{U1}"]
    placeholders = list(find(card, "div", "placeholder"))
    assert [d.attrs["class"] for d in placeholders] == ["placeholder missing", "placeholder broken"]
    assert WEIRD_FILE + ": missing locally" in placeholders[0].text
    assert "t.gif: the local file cannot be decoded" in placeholders[1].text
    assert find(card, "img") == []  # nothing that would fail to load
    [video] = find(card, "video")
    assert video.attrs["src"].endswith("/t.mp4") and video.attrs["poster"] == poster_path("e" * 64)
    assert "altered locally" in find(card, "figure", "turntable")[0].text
    badges = find(card, "span", "problem")
    assert badges[0].text == "1 file missing, 1 altered"
    rows = {tr.attrs["class"]: tr.text for tr in find(card, "tr") if tr.attrs.get("class")}
    assert "altered: the local file's sha256 is " + "e" * 64 in rows["local-altered"]
    assert SHA_A in rows["local-missing"]


def test_assets_are_package_data_and_load_nothing_from_elsewhere() -> None:
    assets = static_assets()
    assert set(assets) == {"assets/gallery.css", "assets/gallery.js"}
    for data in assets.values():
        text = data.decode()
        assert "http://" not in text and "https://" not in text and "@import" not in text
    assert "innerHTML" not in assets["assets/gallery.js"].decode()
    page = _site({}, {})["index.html"]
    for el in parse(page):
        for attr in ("src", "href"):
            value = el.attrs.get(attr, "")
            assert not value.startswith(("http:", "https:", "//")), value
