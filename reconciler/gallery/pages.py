"""The gallery's HTML: the model (model.py) in, page texts out. No disk, no clock.

Jinja2 renders the templates in ``templates/`` with autoescaping on for every value, so a
product name like ``<script>`` is text on the page, in attributes too; paths are also
URL-quoted (``#``, ``?``, ``%`` and spaces in a file name stay part of the file name). The
static assets in ``static/`` are package data, copied as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reconciler.gallery.model import (
    Card,
    FileView,
    Local,
    Preview,
    PreviewKey,
    Site,
    human_time,
    search_index,
)
from reconciler.views.units import size

ASSETS = ("gallery.css", "gallery.js")

_ENV = Environment(
    loader=PackageLoader("reconciler.gallery", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_site(site: Site, previews: Mapping[PreviewKey, Preview | None]) -> dict[str, str]:
    """{site path: text} for index.html, every page-N.html and search.js."""
    helpers = _helpers(previews)
    out = {"index.html": _ENV.get_template("index.html").render(site=site, **helpers)}
    page_template = _ENV.get_template("page.html")
    for page in site.pages:
        cards = [c for c in site.cards if c.page == page.number]
        out[page.filename] = page_template.render(site=site, page=page, cards=cards, **helpers)
    # A script, not JSON: pages opened from disk may not fetch() files, but may load scripts.
    # "<", ">" and "&" as \u escapes: the data stays inert even if it is ever inlined in HTML.
    rows = json.dumps(search_index(site), ensure_ascii=True, separators=(",", ":"))
    rows = rows.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    out["search.js"] = f"window.GALLERY_INDEX = {rows};\n"
    return out


def static_assets() -> dict[str, bytes]:
    """{site path: bytes} of the stylesheet and script shipped in the package."""
    folder = resources.files("reconciler.gallery") / "static"
    return {f"assets/{name}": (folder / name).read_bytes() for name in ASSETS}


def _helpers(previews: Mapping[PreviewKey, Preview | None]) -> dict[str, Any]:
    def preview(role: str, f: FileView) -> Preview | None:
        if not f.shown or f.local_sha256 is None:
            return None
        return previews.get((role, f.local_sha256))

    return {
        "preview": preview,
        "url": url,
        "size": size,
        "human_time": human_time,
        "local_words": local_words,
        "problems": problems,
        "value": value,
    }


def url(path: str | None) -> str:
    """A relative URL for a site path: every segment percent-encoded."""
    return quote(path or "", safe="/")


def local_words(f: FileView) -> str:
    if f.local is Local.OK:
        return "matches the state"
    if f.local is Local.ALTERED:
        return f"altered: the local file's sha256 is {f.local_sha256}"
    if f.local is Local.MISSING:
        return "missing locally"
    return "not downloaded"


def problems(card: Card) -> str:
    missing = sum(f.local is Local.MISSING for f in card.files)
    altered = sum(f.local is Local.ALTERED for f in card.files)
    parts = [f"{missing} file{'s' if missing != 1 else ''} missing"] if missing else []
    if altered:
        parts.append(f"{altered} altered")
    return ", ".join(parts)


def value(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
