"""Build the gallery: the I/O around the pure model (model.py) and pages (pages.py).

Reads the state, the record of the last apply or a saved plan, and the downloads folder;
hashes the files the cards name; makes thumbnails (Pillow) and poster frames (PyAV) once per
content; links or copies the media into the site; writes the pages. Derived files are
content-addressed (``thumbs/ab/<sha256>.webp``), so a rebuild only makes what is new, and a
small cache (``.gallery-cache.json``) keeps the hashes of unchanged files (size, mtime and inode
must all match, as DVC does; not ctime, which the site's own hard links change) and what each
preview came out as.

The output folder is the gallery's own: a folder that is not empty and holds no
``.reconciler-gallery`` marker is refused rather than written into, and files of earlier
builds that no page uses any more are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from PIL import Image

from reconciler.downloads import read_last_apply, sha256_file
from reconciler.gallery import model
from reconciler.gallery.model import FileFacts, GalleryError, Preview, PreviewKey
from reconciler.gallery.pages import render_site, static_assets
from reconciler.planfile import load_plan
from reconciler.state import open_store, utcnow

MARKER = ".reconciler-gallery"
CACHE = ".gallery-cache.json"
# Longest edge of thumbnails and posters: cards show them at up to ~270 CSS px, so this is
# sharp on most screens and a few KiB each.
THUMB_EDGE = 320
_DERIVED = ("media", "thumbs", "posters")
# Hashing and previews are part C (released GIL), part Python: more threads than cores only contend.
DEFAULT_PARALLELISM = min(4, os.cpu_count() or 1)
_LOCAL = threading.local()
_MADE: set[str] = set()  # folders made (or found) during this build; cleared when a build starts


@dataclass
class GalleryRequest:
    """Every option of ``reconciler gallery``, typed (the CLI only parses)."""

    state_path: Path
    out: Path
    download_dir: Path | None
    since_plan: Path | None = None
    changed: bool = False
    title: str = "Renders"
    page_size: int = model.PAGE_SIZE
    parallelism: int = DEFAULT_PARALLELISM


@dataclass
class GalleryReport:
    out: Path
    products: int
    pages: int
    files_missing: int
    files_altered: int
    undecodable: int
    previews_made: int
    previews_reused: int
    files_hashed: int
    hashes_reused: int
    site_bytes: int
    media_bytes: int
    seconds: float
    downloads_missing: bool

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def build_gallery(req: GalleryRequest, *, built_at: str | None = None) -> GalleryReport:
    """Write the gallery for ``req`` and say what it holds. Raises GalleryError (and the
    state's own errors) for what the user can fix; a broken media file only marks its card."""
    started = time.perf_counter()
    if not req.state_path.exists() and req.since_plan is None:
        sandbox = req.state_path.with_name(
            "sandbox.state.json"
        )  # `apply --sandbox`'s, beside the default one
        hint = (
            f"the sandbox's renders are recorded in {sandbox}: 'reconciler gallery --sandbox' shows them"
            if req.state_path.name == "renders.state.json" and sandbox.exists()
            else "run 'reconciler apply' first, or pass --state FILE"
        )
        raise GalleryError(f"no state at {req.state_path}: nothing has been applied yet", hint=hint)
    state = open_store(req.state_path).read()
    kept = req.download_dir is not None
    downloads = req.download_dir or Path()
    downloads_missing = kept and not downloads.is_dir()
    last_apply = read_last_apply(downloads) if kept and not downloads_missing else None
    plan = load_plan(req.since_plan) if req.since_plan is not None else None
    chosen = model.focus(
        state.products,
        lineage=state.lineage,
        last_apply=last_apply,
        plan=plan,
        changed_only=req.changed,
        plan_name=f"plan {req.since_plan}",
    )

    out = _prepare(req.out)
    _MADE.clear()
    cache = _load_cache(out)
    wanted = model.wanted_paths(
        state.products, chosen.products if chosen.products is not None else state.products
    )
    listing, reused_hashes = _hash(downloads, wanted, cache, req.parallelism) if kept else ({}, 0)
    cards = model.build_cards(state.products, chosen, listing, kept=kept)
    previews, made, reused = _previews(out, downloads, model.previews_needed(cards), cache, req.parallelism)
    media = model.media_needed(cards)
    media_bytes = _link_media(out, downloads, media)

    source = f"state {req.state_path}" + (
        f", files in {req.download_dir}" if kept else ", no downloads folder"
    )
    site = model.layout(
        cards,
        chosen,
        title=req.title,
        source=source,
        built_at=built_at or utcnow(),
        kept=kept,
        page_size=req.page_size,
    )
    texts = render_site(site, previews)
    assets = static_assets()
    for path, data in [*assets.items(), *((p, t.encode()) for p, t in texts.items())]:
        _write(out / path, data)
    try:
        site_bytes = _remove_stale(
            out, keep={*texts, *assets, *media, *(p.path for p in previews.values() if p and p.path)}
        )
    except OSError as exc:
        raise GalleryError(f"cannot tidy the gallery in {out}: {exc.strerror}") from exc
    _save_cache(out, cache)
    return GalleryReport(
        out=out,
        products=len(cards),
        pages=len(site.pages),
        files_missing=site.counts.missing,
        files_altered=site.counts.altered,
        undecodable=sum(1 for p in previews.values() if p is None),
        previews_made=made,
        previews_reused=reused,
        files_hashed=len(listing) - reused_hashes,
        hashes_reused=reused_hashes,
        site_bytes=site_bytes,
        media_bytes=media_bytes,
        seconds=time.perf_counter() - started,
        downloads_missing=downloads_missing,
    )


# -- the output folder -----------------------------------------------------------------------
def _prepare(out: Path) -> Path:
    try:
        if out.exists() and not out.is_dir():
            raise GalleryError(f"{out} is a file, not a folder for the gallery")
        if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
            raise GalleryError(
                f"{out} is not empty and is not a gallery (no {MARKER} in it); nothing was written",
                hint="choose a new or empty folder with --out",
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(
            "Written by 'reconciler gallery'; everything here is rebuilt from the state.\n"
        )
    except OSError as exc:
        raise GalleryError(f"cannot write the gallery to {out}: {exc.strerror}") from exc
    return out


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"cannot write {path}: {exc.strerror}") from exc


def _remove_stale(out: Path, keep: set[str]) -> int:
    """Remove pages and derived files of earlier builds that this build does not use; the bytes
    of what remains (os.walk: pathlib's rglob costs seconds at 10,000 products)."""
    total = 0
    for entry in os.scandir(out):
        if entry.is_file(follow_symlinks=False):
            if entry.name.startswith("page-") and entry.name.endswith(".html") and entry.name not in keep:
                os.unlink(entry.path)
            elif not entry.name.startswith("."):
                total += entry.stat().st_size
    for top in ("assets", *_DERIVED):
        for folder, _dirs, files in os.walk(out / top, topdown=False):
            rel = Path(folder).relative_to(out).as_posix()
            for name in files:
                path = os.path.join(folder, name)
                if top != "assets" and f"{rel}/{name}" not in keep:
                    os.unlink(path)
                else:
                    total += os.stat(path).st_size
            if top != "assets" and folder != str(out / top) and not os.listdir(folder):
                os.rmdir(folder)
    return total


# -- hashing ---------------------------------------------------------------------------------
def _hash(
    root: Path, paths: Iterable[str], cache: dict[str, Any], parallelism: int
) -> tuple[dict[str, FileFacts], int]:
    """{relative path: FileFacts} for the wanted paths that are regular files under ``root``."""
    known: dict[str, list[Any]] = cache.setdefault("hashes", {})
    fresh: dict[str, list[Any]] = {}
    listing: dict[str, FileFacts] = {}
    todo: list[tuple[str, list[int]]] = []
    for rel in sorted(paths):
        try:
            st = (root / rel).stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            continue  # unreadable: shown as missing
        if not stat.S_ISREG(st.st_mode):
            continue
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = known.get(rel)
        if entry and entry[:3] == stamp:
            listing[rel] = FileFacts(st.st_size, entry[3])
            fresh[rel] = entry
        else:
            todo.append((rel, stamp))
    reused = len(listing)

    def one(item: tuple[str, list[int]]) -> tuple[str, list[int], str | None]:
        rel, stamp = item
        try:
            return rel, stamp, sha256_file(root / rel)
        except OSError:
            return rel, stamp, None

    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="gallery-hash") as pool:
        for rel, stamp, digest in pool.map(one, todo):
            if digest is not None:
                listing[rel] = FileFacts(stamp[0], digest)
                fresh[rel] = [*stamp, digest]
    cache["hashes"] = fresh
    return listing, reused


# -- previews --------------------------------------------------------------------------------
def _previews(
    out: Path, root: Path, needed: dict[PreviewKey, tuple[str, str]], cache: dict[str, Any], parallelism: int
) -> tuple[dict[PreviewKey, Preview | None], int, int]:
    """Make every thumbnail, poster and GIF probe not already made; None = cannot be decoded."""
    known: dict[str, Any] = cache.setdefault("previews", {})
    done: dict[PreviewKey, Preview | None] = {}
    todo: list[tuple[PreviewKey, str]] = []
    for key, (_, source) in needed.items():
        role, sha = key
        entry = known.get(f"{role}:{sha}", False)
        target = _target(role, sha)
        if entry is None:
            done[key] = None  # failed before: same bytes, same outcome
        elif entry is not False and (target is None or (out / target).is_file()):
            done[key] = Preview(int(entry[0]), int(entry[1]), target)
        else:
            todo.append((key, source))
    reused = len(done)

    def one(item: tuple[PreviewKey, str]) -> tuple[PreviewKey, Preview | None]:
        (role, sha), source = item
        return (role, sha), _make(role, root / source, out, _target(role, sha))

    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="gallery-thumb") as pool:
        done.update(pool.map(one, todo))
    cache["previews"] = {
        f"{r}:{s}": (None if p is None else [p.width, p.height]) for (r, s), p in done.items()
    }
    return done, len(todo), reused


def _target(role: str, sha: str) -> str | None:
    return {"thumb": model.thumb_path, "poster": model.poster_path}.get(role, lambda _: None)(sha)


def _make(role: str, source: Path, out: Path, target: str | None) -> Preview | None:
    try:
        if role == "thumb":
            with Image.open(source) as im:
                im.draft("RGB", (THUMB_EDGE, THUMB_EDGE))  # JPEG: decode at a fraction of the size
                image = _small(im)
        elif role == "poster":
            frame = _first_frame(source)
            if frame is None:
                return None
            image = frame
        else:  # a GIF is shown as it is: only check that its first frame decodes
            with Image.open(source) as im:
                im.seek(0)
                im.load()
                return Preview(im.width, im.height)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, av.FFmpegError):
        return None
    assert target is not None
    path = out / target
    tmp = path.with_name(path.name + ".tmp")
    try:
        _folder(path.parent)
        image.save(tmp, "WEBP", quality=80, method=4)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"cannot write {path}: {exc.strerror}") from exc
    return Preview(image.width, image.height, target)


def _folder(path: Path) -> None:
    """mkdir -p, once per folder and build: thousands of files share a few hundred folders."""
    key = str(path)
    if key not in _MADE:
        path.mkdir(parents=True, exist_ok=True)
        _MADE.add(key)


def _small(im: Image.Image) -> Image.Image:
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    image = im.convert("RGBA" if alpha else "RGB")
    image.thumbnail((THUMB_EDGE, THUMB_EDGE))
    return image


def _first_frame(source: Path) -> Image.Image | None:
    with av.open(str(source)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one frame: starting decoder threads costs more than it saves
        for frame in container.decode(stream):
            # scaled and converted by swscale in one step, with a reformatter kept per thread
            # (a fresh one per frame, as VideoFrame.to_image makes, costs more than the decode)
            scale = min(1.0, THUMB_EDGE / max(frame.width, frame.height, 1))
            width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
            rgb = _reformatter().reformat(frame, format="rgb24", width=width, height=height)
            return rgb.to_image()  # type: ignore[no-any-return]  # PyAV ships no annotations
    return None


def _reformatter() -> VideoReformatter:
    made = getattr(_LOCAL, "reformatter", None)
    if made is None:
        made = _LOCAL.reformatter = VideoReformatter()
    return made


# -- media -----------------------------------------------------------------------------------
def _link_media(out: Path, root: Path, media: dict[str, str]) -> int:
    """Hard-link (or copy, across file systems) each shown file into the site; bytes in all."""
    total = 0
    for site_path, source in media.items():
        target = out / site_path
        src = root / source
        try:
            size = src.stat().st_size
            total += size
            try:
                if target.stat().st_size == size:
                    continue  # named by its content: already there
                target.unlink()
            except FileNotFoundError:
                pass
            _folder(target.parent)
            try:
                os.link(src, target)  # atomic: the name appears complete or not at all
            except OSError:
                tmp = target.with_name(target.name + ".tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
        except FileNotFoundError:
            continue  # went away since it was hashed: its card links a file the site lacks
        except OSError as exc:
            raise GalleryError(f"cannot copy {src} into the gallery: {exc.strerror}") from exc
    return total


# -- cache -----------------------------------------------------------------------------------
def _load_cache(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == 1 else {}


def _save_cache(out: Path, cache: dict[str, Any]) -> None:
    cache["version"] = 1
    _write(out / CACHE, json.dumps(cache, separators=(",", ":")).encode())
