"""The manifest parse cache (reconciler/cache.py, loader._from_cache): every path through it.

A hit must give exactly what a parse gives; anything else (an edit the clock cannot see, a
corrupt, foreign, older or forged entry, writers racing) must be a miss that parses again."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler import yamlfast
from reconciler.cache import CACHE_VERSION, Cache, digest
from reconciler.errors import ManifestError
from reconciler.loader import load_desired
from reconciler.spec import Desired
from tests.catalogue import DEFAULTS

A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "5125135c-e9b4-5b10-a8ed-fe17af538c64"
C = "5779e683-4265-5456-90c0-3c47df181940"

MANIFEST = f"""\
{DEFAULTS}products:
  - uuid: {A}
    name: Boot
  - uuid: {B}
    protect: true
    imageWidth: 1000
"""


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache", "manifest")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the real YAML reader was asked to parse (a spy: it still parses)."""
    seen: list[str] = []
    real = yamlfast.read

    def spy(text: str) -> Any:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(yamlfast, "read", spy)
    return seen


def manifest(tmp_path: Path, text: str = MANIFEST, name: str = "m/catalogue.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def same(a: Desired, b: Desired) -> None:
    assert list(a.products) == list(b.products)
    for uuid, want in a.products.items():
        got = b.products[uuid]
        assert (got.uuid, got.name, got.spec_hash, got.source, got.protect, got.preset) == (
            want.uuid,
            want.name,
            want.spec_hash,
            want.source,
            want.protect,
            want.preset,
        )
        assert got.spec == want.spec
    assert (a.files, a.presets) == (b.files, b.presets)


def entry_of(cache: Cache, path: Path) -> Path:
    return cache.entry_path(str(path))


def test_a_hit_gives_what_a_parse_gives_without_parsing(
    tmp_path: Path, cache: Cache, parses: list[str]
) -> None:
    path = manifest(tmp_path)
    first = load_desired([path.parent], cache=cache)
    assert len(parses) == 1 and entry_of(cache, path).exists()
    second = load_desired([path.parent], cache=cache)
    assert len(parses) == 1  # not parsed again
    same(load_desired([path.parent], cache=None), second)
    same(first, second)


def test_an_edit_with_the_same_size_and_mtime_is_seen(tmp_path: Path, cache: Cache) -> None:
    path = manifest(tmp_path)
    load_desired([path], cache=cache)
    before = os.stat(path)
    edited = MANIFEST.replace("imageWidth: 1000", "imageWidth: 1600")
    assert len(edited) == len(MANIFEST)
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns and os.stat(path).st_size == before.st_size
    got = load_desired([path], cache=cache)
    assert got.products[B].spec.imageWidth == 1600


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # torn
        lambda raw: b"",  # empty
        lambda raw: b"not a cache entry at all\n",
        lambda raw: raw.replace(b'"Boot"', b'"Bott"'),  # payload changed, its hash not
        lambda raw: bytes(range(256)) * 4,  # binary garbage
    ],
    ids=["torn", "empty", "foreign-file", "bit-flip", "garbage"],
)
def test_a_corrupt_entry_is_ignored_and_replaced(
    tmp_path: Path, cache: Cache, parses: list[str], damage: Any
) -> None:
    path = manifest(tmp_path)
    want = load_desired([path], cache=None)
    load_desired([path], cache=cache)
    entry = entry_of(cache, path)
    entry.write_bytes(damage(entry.read_bytes()))
    parses.clear()
    same(want, load_desired([path], cache=cache))
    assert len(parses) == 1  # parsed again
    assert cache.get(str(path), digest(MANIFEST.encode())) is not None  # and cached again


def rewrite_header(entry: Path, **changes: Any) -> None:
    magic, header, payload = entry.read_bytes().split(b"\n", 2)
    data = {**json.loads(header), **changes}
    entry.write_bytes(b"\n".join([magic, json.dumps(data).encode(), payload]))


def test_an_entry_from_another_version_misses(tmp_path: Path, cache: Cache, parses: list[str]) -> None:
    path = manifest(tmp_path)
    load_desired([path], cache=cache)
    rewrite_header(entry_of(cache, path), version=CACHE_VERSION + 1)
    parses.clear()
    load_desired([path], cache=cache)
    assert len(parses) == 1


def test_an_entry_for_another_file_misses(tmp_path: Path, cache: Cache) -> None:
    """An entry copied over another file's (same content hash, other path) is not used: the
    products it holds would carry the other file's name as their source."""
    one = manifest(tmp_path, name="a/one.yaml")
    two = manifest(tmp_path, name="b/two.yaml")
    load_desired([one], cache=cache)
    entry_of(cache, two).parent.mkdir(parents=True, exist_ok=True)
    entry_of(cache, two).write_bytes(entry_of(cache, one).read_bytes())
    got = load_desired([two], cache=cache)
    assert got.products[A].source.file == str(two)


def forge(cache: Cache, path: Path, text: str, columns: dict[str, Any]) -> None:
    """An entry with a correct header and payload hash but contents the file would not give."""
    cache.put(str(path), digest(text.encode()), json.dumps(columns).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"uuids": A.upper() + "\n" + B + "\n"},
        {"uuids": "not-a-uuid\n" + B + "\n"},
        {"names": [1, None]},
        {"protect": [0, 1]},
        {"spec": [0, 7]},
        {"index": [0]},
        {"specs": [{"imageWidth": -5}]},
    ],
    ids=["upper-uuid", "bad-uuid", "name-type", "protect-type", "spec-range", "short-column", "invalid-spec"],
)
def test_a_forged_entry_is_not_trusted(tmp_path: Path, cache: Cache, change: dict[str, Any]) -> None:
    path = manifest(tmp_path)
    want = load_desired([path], cache=None)
    load_desired([path], cache=cache)
    _, payload = cache.get(str(path), digest(MANIFEST.encode())) or pytest.fail("no entry")
    forge(cache, path, MANIFEST, {**json.loads(payload), **change})
    same(want, load_desired([path], cache=cache))


def test_a_forged_spec_hash_cannot_hide_a_change(tmp_path: Path, cache: Cache) -> None:
    """Fingerprints are recomputed from the cached specs, never read from the entry."""
    path = manifest(tmp_path)
    load_desired([path], cache=cache)
    _, payload = cache.get(str(path), digest(MANIFEST.encode())) or pytest.fail("no entry")
    columns = json.loads(payload)
    columns["specs"][0]["imageWidth"] = 640
    forge(cache, path, MANIFEST, columns)
    got = load_desired([path], cache=cache)
    assert got.products[A].spec_hash == got.products[A].spec.fingerprint()


def test_files_with_presets_are_parsed_every_time(tmp_path: Path, cache: Cache, parses: list[str]) -> None:
    presets = manifest(tmp_path, "presets:\n  wide:\n    imageWidth: 2000\n", "m/presets.yaml")
    user = manifest(
        tmp_path, MANIFEST.replace(f"  - uuid: {A}\n", f"  - uuid: {A}\n    preset: wide\n"), "m/users.yaml"
    )
    first = load_desired([presets.parent], cache=cache)
    assert not entry_of(cache, user).exists() and not entry_of(cache, presets).exists()
    assert first.products[A].spec.imageWidth == 2000
    parses.clear()
    same(first, load_desired([presets.parent], cache=cache))
    assert len(parses) == 2


def test_a_product_declared_twice_is_still_reported_from_a_cached_file(tmp_path: Path, cache: Cache) -> None:
    one = manifest(tmp_path, name="m/a.yaml")
    load_desired([one], cache=cache)
    manifest(tmp_path, MANIFEST.replace(B, C), "m/b.yaml")  # A again, in a file parsed now
    with pytest.raises(ManifestError) as info:
        load_desired([one.parent], cache=cache)
    shown = [str(d) for d in info.value.diagnostics]
    assert any(f"product {A} is declared twice" in d and "a.yaml:12:" in d for d in shown), shown
    assert any(f"product {A} is declared twice" in d and "b.yaml:12:" in d for d in shown), shown


def test_broken_manifests_are_never_cached(tmp_path: Path, cache: Cache) -> None:
    path = manifest(tmp_path, MANIFEST.replace("imageWidth: 1000", "imageWidth: lots"))
    with pytest.raises(ManifestError):
        load_desired([path], cache=cache)
    assert not entry_of(cache, path).exists()


def test_an_unwritable_cache_costs_nothing_but_time(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    path = manifest(tmp_path)
    got = load_desired([path], cache=Cache(blocker, "manifest"))
    same(load_desired([path], cache=None), got)


def test_the_environment_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cache import cache_dir

    monkeypatch.setenv("RECONCILER_CACHE_DIR", "off")
    assert cache_dir() is None and Cache.default("manifest") is None
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


def _load_in_child(args: tuple[str, str]) -> list[tuple[str, str]]:
    folder, root = args
    desired = load_desired([Path(folder)], cache=Cache(Path(root), "manifest"))
    return [(u, p.spec_hash) for u, p in desired.products.items()]


def test_concurrent_processes_share_one_cache(tmp_path: Path, cache: Cache) -> None:
    """Processes planning at once, cold and warm mixed: each gets the parse's answer, and the
    entry left behind is whole."""
    texts = [MANIFEST.replace("imageWidth: 1000", f"imageWidth: {1000 + i}") for i in range(4)]
    path = manifest(tmp_path)
    want = {}
    for text in texts:
        path.write_text(text, encoding="utf-8")
        want[text] = [(u, p.spec_hash) for u, p in load_desired([path], cache=None).products.items()]
    path.write_text(texts[0], encoding="utf-8")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_load_in_child, [(str(path.parent), str(cache.root))] * 8)
    assert all(r == want[texts[0]] for r in results)
    assert cache.get(str(path), digest(texts[0].encode())) is not None


def test_racing_writers_never_leave_half_an_entry(tmp_path: Path, cache: Cache) -> None:
    """Writers replacing one entry while readers read it: a reader gets a whole entry (of the
    content it asks for) or a miss, never a torn one."""
    source = str(tmp_path / "x.yaml")
    payloads = {f"c{i}": (b"%d" % i) * (50_000 + i) for i in range(4)}
    stop = threading.Event()
    bad: list[object] = []

    def write(content: str) -> None:
        while not stop.is_set():
            cache.put(source, content, payloads[content])

    def read() -> None:
        for _ in range(300):
            for content, payload in payloads.items():
                hit = cache.get(source, content)
                if hit is not None and hit[1] != payload:
                    bad.append(content)

    writers = [threading.Thread(target=write, args=(c,)) for c in payloads]
    for w in writers:
        w.start()
    try:
        read()
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not bad
    leftovers = [p for p in cache.folder.iterdir() if p.suffix == ".tmp"]
    assert not leftovers


def test_the_cache_folder_ignores_itself_in_git(tmp_path: Path, cache: Cache) -> None:
    load_desired([manifest(tmp_path)], cache=cache)
    assert (cache.root / ".gitignore").read_text().splitlines()[-1] == "*"


def test_default_cache_is_used_by_load_desired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "c"))
    path = manifest(tmp_path)
    load_desired([path])
    assert Cache(tmp_path / "c", "manifest").entry_path(str(path)).exists()
