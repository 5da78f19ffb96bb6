"""A state and a downloads folder written directly, for galleries of 10,000 products.

Rendering 10,000 products through the sandbox would take most of an hour; the gallery only
needs what apply leaves behind: state records with sha256s, and the files in the downloads
layout (downloads.py). The files are real tiny renders from the sandbox's own media module
(PNG/JPG/WEBP stills, H.264 MP4s, GIFs), so thumbnails, posters and the browser decode them
as they would the sandbox's. ``distinct`` bounds how many different renders are made: every
product gets its own folder and files, but shares content with others (hard links), which
keeps a test's setup to seconds; the benchmark makes every render distinct.

Besides plain renders, the catalogue has the cases a gallery must show: about 1% re-rendered
in the last apply (with their previous files under .previous and a .last-apply.json), 1%
failed, and a few products whose local files are missing or altered.
"""

from __future__ import annotations

import hashlib
import os
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from reconciler.downloads import LastApply, write_last_apply
from reconciler.sandbox.media import SHAPES, render_still, render_turntable
from reconciler.spec import RenderSpec
from reconciler.state import (
    Attachment,
    FileStateStore,
    PastRender,
    ProductRecord,
    RenderRequest,
    State,
    Status,
)

_NS = uuidlib.UUID("0b8a3c59-2f44-4c2e-b0c1-6a1f0c9e4d21")
FORMATS = ("PNG", "JPG", "WEBP")
CONTENT = {"PNG": "image/png", "JPG": "image/jpeg", "WEBP": "image/webp"}
EXT = {"PNG": "png", "JPG": "jpg", "WEBP": "webp"}


@dataclass(frozen=True)
class Catalogue:
    state_path: Path
    downloads: Path
    products: int
    rerendered: list[str]
    failed: list[str]
    missing: list[str]
    altered: list[str]


def spec_for(index: int, *, background: str = "#FFFFFF") -> dict[str, object]:
    fmt = FORMATS[index % 3]
    return RenderSpec.model_validate(
        {
            "imageWidth": 32,
            "imageHeight": 24,
            "imageFormat": fmt,
            "imageBackground": background,
            "turntable": {
                "includeGif": index % 4 == 0,
                "imageCount": 4,
                "frameRate": 4,
                "width": 32,
                "height": 32,
            },
        }
    ).canonical()


def make_catalogue(root: Path, count: int, *, distinct: int | None = None) -> Catalogue:
    """Write ``root/state.json`` and ``root/downloads/`` for ``count`` products."""
    downloads = root / "downloads"
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    records: dict[str, ProductRecord] = {}
    step = max(1, count // 100)
    rerendered: list[str] = []
    failed: list[str] = []
    missing: list[str] = []
    altered: list[str] = []
    for i in range(count):
        uuid = str(uuidlib.uuid5(_NS, str(i)))
        name = f"Product {i:05d} {SHAPES[i % len(SHAPES)].title()}"
        variant = i if distinct is None else i % distinct
        when = "2026-11-30T10:00:00Z"
        history: list[PastRender] = []
        if i % step == 1:  # re-rendered in the last apply: a new background, the old files kept aside
            old_spec = spec_for(i)
            old = _files(pool, downloads, uuid, variant, old_spec, tag="old")
            for att in old:
                _move_aside(downloads, uuid, att)
            history = [
                PastRender(
                    spec_hash=_hash(old_spec),
                    spec=old_spec,
                    recorded_at="2026-11-29T09:00:00Z",
                    attachments=old,
                )
            ]
            spec = spec_for(i, background="#D0E4FF")
            rerendered.append(uuid)
            when = "2026-12-01T08:00:00Z"
        else:
            spec = spec_for(i)
        if i % step == 2:  # failed: no files
            failed.append(uuid)
            records[uuid] = ProductRecord(
                name=name,
                spec=spec,
                spec_hash=_hash(spec),
                status=Status.FAILED,
                error="RENDER_ERROR: the platform gave up",
                updated_at=when,
            )
            continue
        atts = _files(pool, downloads, uuid, variant, spec, tag="new" if history else "")
        if i % step == 3 and len(missing) < 5:
            (downloads / uuid / atts[0].name).unlink()
            missing.append(uuid)
        elif i % step == 4 and len(altered) < 5:
            path = downloads / uuid / atts[-1].name
            data = path.read_bytes()
            path.unlink()  # break the hard link: alter this copy only
            path.write_bytes(data[: len(data) // 2])
            altered.append(uuid)
        request = RenderRequest(
            request_id=str(uuidlib.uuid5(_NS, f"r{i}")),
            spec_hash=_hash(spec),
            requested_at=when,
            accepted_at=when,
        )
        records[uuid] = ProductRecord(
            name=name,
            spec=spec,
            spec_hash=_hash(spec),
            status=Status.RENDERED,
            request=request,
            attachments=atts,
            updated_at=when,
            history=history,
        )
    state = State(lineage=str(uuidlib.uuid5(_NS, "lineage")), products=records)
    store = FileStateStore(root / "state.json")
    with store.lock("synthetic catalogue"):
        store.write(state)
    write_last_apply(
        downloads,
        LastApply(
            lineage=state.lineage, finished_at="2026-12-01T08:05:00Z", rendered=rerendered, failed=failed
        ),
    )
    return Catalogue(root / "state.json", downloads, count, rerendered, failed, missing, altered)


def _files(
    pool: Path, downloads: Path, uuid: str, variant: int, spec: dict[str, object], tag: str
) -> list[Attachment]:
    fmt = str(spec["imageFormat"])
    gif = bool(spec["turntable"]["includeGif"])  # type: ignore[index]
    key = f"{variant}-{_hash(spec)[:12]}"
    shape = SHAPES[variant % len(SHAPES)]
    seed = str(uuidlib.uuid5(_NS, f"v{variant}"))
    made = {
        "still": (
            pool / f"{key}.{EXT[fmt]}",
            lambda: render_still(
                shape, seed, width=32, height=24, fmt=fmt, background=str(spec["imageBackground"])
            ),
        ),
    }
    still_path = made["still"][0]
    if not still_path.exists():
        still_path.write_bytes(made["still"][1]())
    mp4_path, gif_path = pool / f"{key}.mp4", pool / f"{key}.gif"
    if not mp4_path.exists():
        mp4, gif_bytes = render_turntable(
            shape,
            seed,
            image_count=4,
            frame_rate=4,
            width=32,
            height=32,
            background=str(spec["imageBackground"]),
            include_gif=True,
        )
        mp4_path.write_bytes(mp4)
        gif_path.write_bytes(gif_bytes or b"")
    suffix = f"-{tag}" if tag else ""
    wanted = [
        ("still", still_path, f"render{suffix}.{EXT[fmt]}", CONTENT[fmt]),
        ("turntable", mp4_path, f"turntable{suffix}.mp4", "video/mp4"),
    ]
    if gif:
        wanted.append(("gif", gif_path, f"turntable{suffix}.gif", "image/gif"))
    folder = downloads / uuid
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, source, name, content_type in wanted:
        target = folder / name
        if not target.exists():
            os.link(source, target)
        data = source.read_bytes()
        out.append(
            Attachment(
                kind=kind,
                uuid=str(uuidlib.uuid5(_NS, f"{uuid}/{name}")),
                name=name,  # type: ignore[arg-type]
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_type=content_type,
            )
        )
    return out


def _move_aside(downloads: Path, uuid: str, att: Attachment) -> None:
    """Where apply's keep_download puts a replaced file."""
    kept = downloads / uuid / ".previous" / att.sha256 / att.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(downloads / uuid / att.name, kept)


def _hash(spec: dict[str, object]) -> str:
    from reconciler.spec import fingerprint

    return fingerprint(spec)
