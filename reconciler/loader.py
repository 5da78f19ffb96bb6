"""Manifests on disk → ``Desired``: every product's resolved, validated render spec.

Two parses, by design. The fast path reads every file with ruamel's C parser (through
``yamlfast``, or ruamel's safe loader for anything unusual) and validates each distinct
(defaults, overrides) combination once, so a 100,000-product catalogue costs little more
than its YAML parse. Only when something is wrong does a file
get a second parse, into nodes by the same C composer, whose positions turn each problem's
field path into ``file:line:col``. All problems of all files are reported together.

Hostile input is bounded at the edges, so no manifest can hang the loader, crash it or
exhaust memory: only regular files are read (a FIFO or a device named ``*.yaml`` is an
error, never opened for a blocking read), at most ``MAX_FILE_BYTES`` of each; every parse
goes through ``yamlfast``'s guard (depth, aliases, size); at most ``MAX_DIAGNOSTICS``
problems are kept and located, the rest counted.

Presets (``presets:`` in any file, ``preset: NAME`` on a product, in ``defaults`` or in another
preset) are shared by every file loaded together. A product that touches a preset waits until
every file has been read, so a preset may be defined in a file that sorts after its users;
the products of a catalogue without presets never wait, and pay nothing for them. Preset chains
are followed iteratively and at most ``MAX_PRESET_CHAIN`` deep, so a chain of any length or a
cycle is a located error, never a RecursionError. A product's resolved spec is, lowest first:
the defaults' preset chain, the defaults, the product's preset chain, the product's own fields
(docs/manifests.md, "Presets").
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import islice, repeat
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from reconciler import yamlfast
from reconciler._gc import gc_paused
from reconciler.cache import Cache, digest
from reconciler.diagnostics import Diagnostic, SourceLocation
from reconciler.errors import ManifestError
from reconciler.spec import (
    BOUNDS,
    IMAGE_FORMATS,
    Desired,
    ProductSpec,
    RenderSpec,
    TurntableSpec,
    fingerprint,
)

TOP_KEYS = ("workspace", "presets", "defaults", "products")
WORKSPACE_KEY = "workspace"
"""A file's workspace (uuid or slug) for all of its products: see ``_file_workspace``."""
LABEL_KEYS = ("uuid", "name", "protect")
PRESET_KEY = "preset"
SPEC_KEYS = tuple(RenderSpec.model_fields)
PRESET_KEYS = (PRESET_KEY,) + SPEC_KEYS
"""The keys of ``defaults`` and of a preset: the preset they build on, and the render fields."""
PRODUCT_KEYS = LABEL_KEYS + PRESET_KEYS
TURNTABLE_KEYS = tuple(TurntableSpec.model_fields)
_KNOWN_KEYS = frozenset(PRODUCT_KEYS + TURNTABLE_KEYS)
_SPEC_KEYS = frozenset(SPEC_KEYS)
_LABEL_KEYS = frozenset(LABEL_KEYS)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Cross-field rules, by the location pydantic reports them at: the fields each rule reads.
# A rule's error is blamed on the product only if the product sets one of them.
_RULE_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("imageFormat", "transparentBackground"),  # JPG cannot be transparent
    ("turntable",): ("imageCount", "width", "height"),  # turntable pixels
}
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.M)

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest manifest file read: twice a 100,000-product catalogue in one file (8 MiB). Any
number of files may be used, so a larger catalogue is split, never refused."""

MAX_DIAGNOSTICS = 100
"""Problems kept, located and shown; the rest are counted ("and 9,900 more")."""

MAX_PRESET_CHAIN = 16
"""Presets in one chain (``preset:`` inside a preset), the last one included. A team needs
three or four (house style, brand, channel); a longer chain is a mistake or an attack."""

_NAMES_SHOWN = 12  # preset names listed in an "unknown preset" hint
_NEAR_NAMES = 100  # preset names of about the same length compared for "did you mean"

_SHORT = 60  # characters of a value or key quoted in a message

Path_ = tuple[Any, ...]


class _Problem:
    """A problem found on the fast path: a field path in one file, located later."""

    __slots__ = ("at_key", "choices", "file", "hint", "later", "message", "path", "related")

    def __init__(
        self,
        file: str,
        path: Path_,
        message: str,
        hint: str | None = None,
        at_key: bool = False,
        related: tuple[str, Path_] | None = None,
        choices: tuple[str, ...] = (),
    ):
        self.file, self.path, self.message, self.hint, self.at_key = file, path, message, hint, at_key
        self.related = related  # another place the message is about, named in the hint as file:line:col
        self.choices = choices  # valid keys for an unknown one: the "did you mean" hint, made when shown
        self.later: Callable[[], str] | None = None  # any other hint that is dear to make: made when shown


class _Problems:
    """Every problem once; the first MAX_DIAGNOSTICS kept, the others only counted.

    ``repeatable`` problems (one that comes from a file's defaults and is met again at every
    product inheriting it; the other side of a duplicate uuid) are counted once; all others
    name a place of their own product and cannot repeat."""

    def __init__(self) -> None:
        self.kept: list[_Problem] = []
        self.more = 0
        self._seen: set[tuple[str, Path_, str]] = set()

    def append(self, problem: _Problem, repeatable: bool = False) -> None:
        if repeatable:
            ident = (problem.file, problem.path, problem.message)
            if ident in self._seen:
                return
            self._seen.add(ident)
        if len(self.kept) < MAX_DIAGNOSTICS:
            self.kept.append(problem)
        else:
            self.more += 1

    def extend(self, problems: Iterable[_Problem], repeatable: bool = False) -> None:
        for p in problems:
            self.append(p, repeatable)

    def __bool__(self) -> bool:
        return bool(self.kept)


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files under ``paths`` (files or directories), sorted for stable output.

    A path that is not a directory is returned as it is, to be read (and refused if it is
    not a regular file); so is any ``*.yaml``/``*.yml`` entry of a directory that is not a
    directory itself: a FIFO, a device or a broken symlink is reported, never skipped."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and not q.is_dir()))
        elif p.exists() or p.is_symlink():
            found.append(p)
        else:
            raise ManifestError(
                [
                    Diagnostic(
                        SourceLocation(str(p)),
                        "no such file or directory",
                        hint="pass the manifests directory, e.g. --manifests manifests/",
                    )
                ]
            )
    return found


_DEFAULT_CACHE: Any = object()


def load_desired(paths: Iterable[Path], cache: Cache | None = _DEFAULT_CACHE) -> Desired:
    """Load and validate every manifest under ``paths``; raise ManifestError listing all problems.

    ``cache``: where validated files are kept between runs (default: ``reconciler.cache``'s
    directory; None: parse everything). A file whose bytes hash as they did when it was cached
    is not parsed again; only a file that stands alone is cached (no presets, no product or
    defaults naming one), so a hit never depends on another file."""
    if cache is _DEFAULT_CACHE:
        cache = Cache.default("manifest")
    files = manifest_files(paths)
    catalogue = _Catalogue()
    problems = catalogue.problems
    texts: dict[str, str] = {}  # for the second parse, which locates problems
    fresh: list[tuple[str, str, list[str]]] = []  # files to cache once all is well: name, hash, uuids
    with gc_paused():
        for path in files:
            name = str(path)
            text = _read(name, problems)
            if text is None:
                continue
            texts[name] = text
            content = digest(text.encode()) if cache is not None else ""
            if cache is not None and _from_cache(name, cache.get(name, content), catalogue):
                continue
            try:
                data = yamlfast.read(text)
            except (YAMLError, yamlfast.Refused) as exc:
                problems.append(_yaml_problem(name, text, exc))
                continue
            before, waiting, seen = len(catalogue.products), len(catalogue.waiting), _seen(problems)
            _load_file(name, data, catalogue)
            # A file with presets, or with a workspace (the cache does not keep one), is not cached.
            alone = (
                not (isinstance(data, dict) and ("presets" in data or WORKSPACE_KEY in data))
                and len(catalogue.waiting) == waiting
            )
            if cache is not None and alone and _seen(problems) == seen:
                added = len(catalogue.products) - before
                fresh.append((name, content, list(islice(reversed(catalogue.products), added))[::-1]))
        if catalogue.presets or catalogue.waiting:
            catalogue.finish()
    if problems:
        raise ManifestError(_locate(problems.kept, texts), more=problems.more)
    if cache is not None:
        for name, content, uuids in fresh:
            cache.put(name, content, _cache_payload(uuids, catalogue))
    products, workspaces = catalogue.products, dict[str, str]()
    if catalogue.workspaces:
        products, workspaces = _with_workspaces(products, catalogue.workspaces, texts)
    return Desired(
        products=products,
        files=tuple(str(f) for f in files),
        presets=tuple(sorted(catalogue.presets)),
        workspaces=workspaces,
    )


def _with_workspaces(
    products: dict[str, ProductSpec], by_file: dict[str, str], texts: dict[str, str]
) -> tuple[dict[str, ProductSpec], dict[str, str]]:
    """Every product of a file that names a workspace, with it; and each workspace named, with
    where it is first named (``file:line``), for the error if the platform knows no such one."""
    where: dict[str, str] = {}
    for file, value in by_file.items():
        match = _WORKSPACE_LINE.search(texts.get(file, ""))
        line = texts[file].count("\n", 0, match.start()) + 1 if match else 1
        where.setdefault(value, f"{file}:{line}")
    out = {
        uuid: replace(p, workspace=by_file[p.source.file]) if p.source.file in by_file else p
        for uuid, p in products.items()
    }
    return out, where


_WORKSPACE_LINE = re.compile(r"^workspace\s*:", re.M)
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _file_workspace(name: str, value: Any, problems: _Problems) -> str | None:
    """A file's ``workspace:``: a workspace uuid (lower-cased, as the API spells them) or slug."""
    if isinstance(value, str) and _UUID.fullmatch(value.strip()):
        return value.strip().lower()
    if isinstance(value, str) and _SLUG.fullmatch(value.strip()):
        return value.strip()
    problems.append(
        _Problem(
            name,
            (WORKSPACE_KEY,),
            f"must be a workspace uuid or slug, got {_short(value)}",
            hint="for example workspace: catalogue (its slug) or its uuid; "
            "'reconciler doctor' lists the organization's workspaces",
        )
    )
    return None


def _seen(problems: _Problems) -> int:
    return len(problems.kept) + problems.more


def _cache_payload(uuids: list[str], catalogue: _Catalogue) -> bytes:
    """One file's products as the cache keeps them: its distinct specs once, then a column per
    field (uuids as one text, checked by one regular expression when read back)."""
    specs: dict[str, int] = {}
    canon: list[dict[str, Any]] = []
    names, protects, indexes, uses = [], [], [], []
    for uuid in uuids:
        p = catalogue.products[uuid]
        at = specs.get(p.spec_hash)
        if at is None:
            at = specs[p.spec_hash] = len(canon)
            canon.append(p.spec.canonical())
        names.append(p.name)
        protects.append(p.protect)
        indexes.append(catalogue.first_seen[uuid][1])
        uses.append(at)
    columns = {
        "specs": canon,
        "uuids": "".join(u + "\n" for u in uuids),
        "names": names,
        "protect": protects,
        "index": indexes,
        "spec": uses,
    }
    return json.dumps(columns, separators=(",", ":"), ensure_ascii=False).encode()


_UUID_LINES = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n)*")
_NONE = type(None)


def _from_cache(name: str, hit: tuple[dict[str, Any], bytes] | None, catalogue: _Catalogue) -> bool:
    """Add one file's products from its cache entry; False (nothing added) if it is not usable.

    The entry's payload hash already proves it whole; its specs are validated again and their
    fingerprints recomputed, and every column's types checked, so not even an entry written by
    someone else can put into the plan what the file would not have."""
    if hit is None:
        return False
    try:
        data = json.loads(hit[1])
        specs = [RenderSpec.model_validate(c) for c in data["specs"]]
        hashes = [s.fingerprint() for s in specs]
        text, names, protects, indexes, uses = (
            data[k] for k in ("uuids", "names", "protect", "index", "spec")
        )
        if not (type(text) is str and _UUID_LINES.fullmatch(text)):
            return False
        uuids = text.split("\n")[:-1]
        columns = (names, protects, indexes, uses)
        if not all(type(c) is list and len(c) == len(uuids) for c in columns):
            return False
        if not (
            set(map(type, names)) <= {str, _NONE}
            and set(map(type, protects)) <= {bool}
            and set(map(type, indexes)) <= {int}
            and set(map(type, uses)) <= {int}
            and (not uses or (min(uses) >= 0 and max(uses) < len(specs)))
        ):
            return False
    except (ValueError, KeyError, TypeError, ValidationError):
        return False
    problems, products, first_seen = catalogue.problems, catalogue.products, catalogue.first_seen
    location = SourceLocation(name)
    if first_seen.keys().isdisjoint(uuids):  # the usual case: no product declared twice
        first_seen.update(zip(uuids, zip(repeat(name), indexes, strict=False), strict=True))
        made = map(
            ProductSpec,
            uuids,
            names,
            map(specs.__getitem__, uses),
            map(hashes.__getitem__, uses),
            repeat(location),
            protects,
        )
        products.update(zip(uuids, made, strict=True))
        return True
    for uuid, label, protect, index, at in zip(uuids, names, protects, indexes, uses, strict=True):
        here: Path_ = ("products", index, "uuid")
        if uuid in first_seen:  # as _load_file says it
            _declared_twice(problems, uuid, name, here, first_seen[uuid])
            continue
        first_seen[uuid] = (name, index)
        products[uuid] = ProductSpec(uuid, label, specs[at], hashes[at], location, protect)
    return True


def _read(name: str, problems: _Problems) -> str | None:
    """The text of one manifest file, or None with a problem added.

    Opened without blocking and checked with fstat before a byte is read: a FIFO would wait
    for a writer forever and /dev/zero never ends; a regular file is read to its cap only."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        kind = "a broken symbolic link" if os.path.islink(name) else "gone (deleted while being read)"
        problems.append(
            _Problem(
                name, (), f"cannot read file: it is {kind}", hint="remove it, or point it at a manifest file"
            )
        )
        return None
    except OSError as exc:
        problems.append(_Problem(name, (), f"cannot read file: {exc.strerror or exc}"))
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            problems.append(
                _Problem(
                    name,
                    (),
                    f"cannot read file: it is {_file_kind(info.st_mode)}, not a regular file",
                    hint="manifests must be regular files; remove it or rename it "
                    "so it does not end in .yaml or .yml",
                )
            )
            return None
        if info.st_size > MAX_FILE_BYTES:
            problems.append(_too_big(name, info.st_size))
            return None
        chunks: list[bytes] = []
        left = MAX_FILE_BYTES + 1  # one byte more than allowed tells a file that grew meanwhile
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        problems.append(_Problem(name, (), f"cannot read file: {exc.strerror or exc}"))
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        problems.append(_too_big(name, len(data)))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(_not_utf8(name, data, exc))
        return None


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _too_big(name: str, size: int) -> _Problem:
    return _Problem(
        name,
        (),
        f"file is {size / 2**20:.1f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB a manifest file may be",
        hint="split the catalogue into several files; any number of files and subfolders is read",
    )


def _not_utf8(name: str, data: bytes, exc: UnicodeDecodeError) -> _Problem:
    """Where the first byte that is not UTF-8 is, as line and column (in characters)."""
    at = exc.start
    line_start = data.rfind(b"\n", 0, at) + 1
    line = data.count(b"\n", 0, at)
    column = len(data[line_start:at].decode("utf-8", "replace"))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = "it is UTF-16 text: save it as UTF-8"
    else:
        hint = "save it as UTF-8" + (
            "; it looks like Latin-1 or Windows-1252 text" if _is_cp1252(data) else ""
        )
    p = _Problem(
        name, (), f"not UTF-8 text: byte 0x{data[at]:02X} cannot start or continue a character", hint=hint
    )
    p.path = ("@", line, column)
    return p


def _is_cp1252(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


class _Layer:
    """One source of a product's render fields: a preset, a file's defaults, the product itself.

    ``fields`` are the render fields it sets, ``raw`` the mapping as written (to tell a missing
    field from a misspelt one), ``path`` where it is in ``file``."""

    __slots__ = ("fields", "file", "path", "raw")

    def __init__(
        self, file: str, path: Path_, fields: dict[str, Any], raw: dict[str, Any] | None = None
    ) -> None:
        self.file, self.path, self.fields = file, path, fields
        self.raw = fields if raw is None else raw


_BROKEN: Any = object()
"""The ``preset:`` of a preset, a product or defaults that is not a name (reported where it is)."""


class _Preset:
    __slots__ = ("file", "layer", "name", "ref")

    def __init__(self, file: str, name: str, ref: Any, layer: _Layer) -> None:
        self.file, self.name, self.ref, self.layer = file, name, ref, layer


class _FileDefaults:
    """The defaults of a file whose products wait for presets, and those products' resolved specs."""

    __slots__ = ("cache", "fields", "layers", "name", "raw", "ref", "resolved")

    def __init__(self, name: str, raw: dict[str, Any], ref: Any = None) -> None:
        self.name, self.raw, self.ref = name, raw, ref
        self.fields = {k: v for k, v in raw.items() if k != PRESET_KEY} if PRESET_KEY in raw else raw
        self.cache: dict[tuple[str | None, str], tuple[RenderSpec, str] | None] = {}  # by (preset, overrides)
        self.layers: tuple[_Layer, ...] | None = None  # its preset chain, then itself; None if broken
        self.resolved = False


class _Waiting:
    """A product that names a preset, or whose file's defaults do: resolved once every file is read."""

    __slots__ = ("defaults", "here", "label", "overrides", "protect", "ref", "uuid")

    def __init__(
        self,
        defaults: _FileDefaults,
        here: Path_,
        overrides: dict[str, Any],
        ref: Any,
        label: Any,
        protect: bool,
    ) -> None:
        self.defaults, self.here, self.overrides, self.ref = defaults, here, overrides, ref
        self.uuid: str | None = None  # set once its uuid is known to be valid and the first of its kind
        self.label, self.protect = label, protect


def _declared_twice(problems: _Problems, uuid: str, name: str, here: Path_, first: tuple[str, int]) -> None:
    """A product declared at ``here`` of ``name`` and before at ``first``: both places, each naming
    the other (the earlier one once, however many times it is repeated)."""
    other_file, other_index = first
    other: Path_ = ("products", other_index, "uuid")
    message = f"product {uuid} is declared twice"
    problems.append(_Problem(name, here, message, hint="keep one", related=(other_file, other)))
    problems.append(
        _Problem(other_file, other, message, hint="keep one", related=(name, here)), repeatable=True
    )


def _bad_ref(file: str, path: Path_, value: Any) -> _Problem:
    return _Problem(
        file,
        path,
        f"expected the name of a preset, got {_got(value)}",
        hint="write preset: NAME, where NAME is a key under presets: in any manifest file",
    )


class _Catalogue:
    """What reading the files builds: products, presets, and the products waiting for presets."""

    def __init__(self) -> None:
        self.products: dict[str, ProductSpec] = {}
        self.first_seen: dict[str, tuple[str, int]] = {}
        self.problems = _Problems()
        self.presets: dict[str, _Preset] = {}
        self.workspaces: dict[str, str] = {}  # file -> its workspace: (uuid or slug)
        self.waiting: list[_Waiting] = []
        self._chains: dict[str, tuple[_Layer, ...] | None] = {}
        self._names: list[str] | None = None  # for hints, once every file is read
        self._lengths: dict[int, list[str]] | None = None

    def add_presets(self, file: str, block: Any) -> None:
        """Register the ``presets:`` of one file; each name may be defined once in the catalogue."""
        if block is None:
            return
        if not isinstance(block, dict):
            self.problems.append(
                _Problem(
                    file,
                    ("presets",),
                    f"expected a mapping of preset names to render fields, got {_kind(block)}",
                )
            )
            return
        for name, body in block.items():
            here: Path_ = ("presets", name)
            if not isinstance(name, str) or not name:
                self.problems.append(
                    _Problem(file, here, f"a preset name must be text, got {_short(name)}", at_key=True)
                )
                continue
            if body is None:
                body = {}
            if not isinstance(body, dict):
                self.problems.append(
                    _Problem(file, here, f"expected a mapping of render fields, got {_kind(body)}")
                )
                continue
            fields: dict[str, Any] = {}
            for key, value in body.items():
                if key in _SPEC_KEYS:
                    fields[key] = value
                elif key != PRESET_KEY:  # said once here, used or not; left out of every merge
                    self.problems.append(_unknown(file, here + (key,), key, PRESET_KEYS))
            ref = body.get(PRESET_KEY)
            if PRESET_KEY in body and not isinstance(ref, str):
                self.problems.append(_bad_ref(file, here + (PRESET_KEY,), ref))
                ref = _BROKEN
            other = self.presets.get(name)
            if other is not None:
                hint = "presets are shared by every manifest file loaded together: rename one, or keep one"
                self.problems.append(
                    _Problem(
                        file,
                        here,
                        f"preset {name!r} is defined twice",
                        hint=hint,
                        at_key=True,
                        related=(other.file, other.layer.path),
                    )
                )
                self.problems.append(
                    _Problem(
                        other.file,
                        other.layer.path,
                        f"preset {name!r} is defined twice",
                        hint=hint,
                        at_key=True,
                        related=(file, here),
                    ),
                    repeatable=True,
                )
                self._chains[name] = None  # neither is used
                continue
            self.presets[name] = _Preset(file, name, ref, _Layer(file, here, fields, body))

    def chain(self, name: str) -> tuple[_Layer, ...] | None:
        """The layers of defined preset ``name``, the one it builds on first; None if it is
        broken (reported where it breaks: an unknown name, a circle, a chain too long).
        Iterative, and each preset is walked once: a chain of any length costs no stack."""
        known = self._chains
        if name in known:
            return known[name]
        path: list[_Preset] = []
        on_path: dict[str, int] = {}
        base: tuple[_Layer, ...] | None = ()
        current: Any = name
        while current is not None:
            if current is _BROKEN:  # a preset: that is not a name (reported)
                base = None
                break
            if current in known:
                base = known[current]
                break
            preset = self.presets.get(current)
            if preset is None:  # a name defined nowhere: said where it is named
                if path:
                    referrer = path[-1]
                    self.problems.append(
                        self._unknown(referrer.file, referrer.layer.path + (PRESET_KEY,), current)
                    )
                base = None
                break
            if current in on_path:
                first = path[on_path[current]]
                circle = " → ".join([p.name for p in path[on_path[current] :]] + [current])
                self.problems.append(
                    _Problem(
                        first.file,
                        first.layer.path + (PRESET_KEY,),
                        f"presets build on each other in a circle: {circle}",
                        hint="a preset may build on another, never on itself: remove one of "
                        "these preset: lines",
                    )
                )
                base = None
                break
            on_path[current] = len(path)
            path.append(preset)
            current = preset.ref
        for at in range(len(path) - 1, -1, -1):
            preset = path[at]
            if base is not None and len(base) >= MAX_PRESET_CHAIN:
                below = " → ".join(
                    repr(layer.path[1]) for layer in base[:-4:-1]
                )  # what it builds on, nearest first
                self.problems.append(
                    _Problem(
                        preset.file,
                        preset.layer.path + (PRESET_KEY,),
                        f"preset {preset.name!r} builds on {MAX_PRESET_CHAIN} presets or more ({below} → …): a chain "
                        f"of presets may be at most {MAX_PRESET_CHAIN} long",
                        hint="flatten the chain: copy the fields of some presets into the ones that build on them",
                    )
                )
                base = None  # one problem per chain: the presets that build on this one fail with it
            elif base is not None:
                base = base + (preset.layer,)
            known[preset.name] = base
        return known[name]

    def _unknown(self, file: str, path: Path_, name: Any) -> _Problem:
        problem = _Problem(file, path, f"unknown preset {_short(name)}")
        problem.later = lambda: self._unknown_hint(name)  # a catalogue may have many names, and many such
        return problem

    def _unknown_hint(self, name: Any) -> str:
        names = self._sorted_names()
        if not names:
            return (
                "no preset is defined: define it under presets: in any manifest file (the presets of every file "
                "loaded together are shared: pass the whole manifests folder)"
            )
        close = None
        if isinstance(name, str) and len(name) <= _SHORT:
            # Names of about the same length only, at most a few hundred: difflib is slow on many or long ones.
            near: list[str] = []
            for d in (0, -1, 1, -2, 2):
                near += self._by_length().get(len(name) + d, [])[: _NEAR_NAMES - len(near)]
            close = _closest(name, tuple(near))
        shown = ", ".join(n if len(n) <= _SHORT else n[:_SHORT] + "…" for n in names[:_NAMES_SHOWN])
        if len(names) > _NAMES_SHOWN:
            shown += f" and {len(names) - _NAMES_SHOWN:,} more"
        return (f"did you mean {close!r}? " if close else "") + f"known presets: {shown}"

    def _sorted_names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(self.presets)
        return self._names

    def _by_length(self) -> dict[int, list[str]]:
        if self._lengths is None:
            self._lengths = {}
            for n in self._sorted_names():
                self._lengths.setdefault(len(n), []).append(n)
        return self._lengths

    def _named(
        self, file: str, path: Path_, name: str, *, repeatable: bool = False
    ) -> tuple[_Layer, ...] | None:
        if name not in self.presets and name not in self._chains:
            self.problems.append(self._unknown(file, path, name), repeatable)
            return None
        return self.chain(name)

    def finish(self) -> None:
        """Check every preset, used or not, then resolve the products that waited for them."""
        for name in self.presets:
            self.chain(name)
        for w in self.waiting:
            spec = self._resolve(w)
            if spec is None or w.uuid is None:
                continue
            self.products[w.uuid] = ProductSpec(
                uuid=w.uuid,
                name=w.label,
                spec=spec[0],
                spec_hash=spec[1],
                source=SourceLocation(w.defaults.name),
                protect=w.protect,
                preset=w.ref or w.defaults.ref,
            )
        if self.waiting:  # the files' order of products, as without presets
            self.products = {u: self.products[u] for u in self.first_seen if u in self.products}

    def _defaults_layers(self, d: _FileDefaults) -> tuple[_Layer, ...] | None:
        if not d.resolved:
            d.resolved = True
            own = _Layer(d.name, ("defaults",), d.fields, d.raw)
            if d.ref is None:
                d.layers = (own,)
            elif d.ref is not _BROKEN:
                chain = self._named(d.name, ("defaults", PRESET_KEY), d.ref, repeatable=True)
                d.layers = None if chain is None else chain + (own,)
        return d.layers

    def _resolve(self, w: _Waiting) -> tuple[RenderSpec, str] | None:
        """As ``_resolve`` for a file without presets: validated once per distinct (preset, overrides)."""
        d, ref = w.defaults, w.ref
        base = self._defaults_layers(d)
        if ref is _BROKEN:
            return None
        chain = () if ref is None else self._named(d.name, w.here + (PRESET_KEY,), ref)
        if base is None or chain is None:
            return None
        key: tuple[str | None, str] | None = (ref, "")  # most products name a preset and override nothing
        if w.overrides:
            try:
                key = (ref, json.dumps(w.overrides, sort_keys=True, default=repr))
            except (TypeError, ValueError):  # keys json cannot sort: invalid anyway, not cached
                key = None
        if key is not None and key in d.cache:
            hit = d.cache[key]
            if (
                hit is None and w.overrides
            ):  # same broken overrides as an earlier product: report this one too
                self._validate(w, base, chain)
            return hit
        result = self._validate(w, base, chain)
        if key is not None:
            d.cache[key] = result
        return result

    def _validate(
        self, w: _Waiting, base: tuple[_Layer, ...], chain: tuple[_Layer, ...]
    ) -> tuple[RenderSpec, str] | None:
        layers = base + chain + (_Layer(w.defaults.name, w.here, w.overrides),)
        return _validate_layers(layers, bool(w.defaults.raw), self.problems)


def _load_file(name: str, data: Any, catalogue: _Catalogue) -> None:
    problems, products, first_seen = catalogue.problems, catalogue.products, catalogue.first_seen
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(
            _Problem(name, (), f"expected a mapping with defaults and products, got {_kind(data)}")
        )
        return
    for key in data:
        if key not in TOP_KEYS:
            problems.append(_unknown(name, (key,), key, TOP_KEYS), repeatable=True)
    if "presets" in data:
        catalogue.add_presets(name, data["presets"])
    if WORKSPACE_KEY in data:
        workspace = _file_workspace(name, data[WORKSPACE_KEY], problems)
        if workspace is not None:
            catalogue.workspaces[name] = workspace
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(
            _Problem(name, ("defaults",), f"expected a mapping of render fields, got {_kind(defaults)}")
        )
        defaults = {}
    entries = data.get("products") or []
    if not isinstance(entries, list):
        problems.append(_Problem(name, ("products",), f"expected a list of products, got {_kind(entries)}"))
        return
    waiting: _FileDefaults | None = None  # set once a product of this file waits for presets
    if PRESET_KEY in defaults:
        ref = defaults[PRESET_KEY]
        if not isinstance(ref, str):
            problems.append(_bad_ref(name, ("defaults", PRESET_KEY), ref))
            ref = _BROKEN
        waiting = _FileDefaults(name, defaults, ref)
    location = SourceLocation(name)
    resolved: dict[str, tuple[RenderSpec, str] | None] = {}
    for index, entry in enumerate(entries):
        here: Path_ = ("products", index)
        if not isinstance(entry, dict):
            problems.append(
                _Problem(name, here, f"expected a product mapping with a uuid, got {_kind(entry)}")
            )
            continue
        overrides: dict[str, Any] = {}
        waits = waiting is not None
        for key, value in entry.items():  # sets, not tuples: this runs for every key of every product
            if key in _SPEC_KEYS:
                overrides[key] = value
            elif key in _LABEL_KEYS:
                pass
            elif key == PRESET_KEY:
                waits = True
            else:
                problems.append(_unknown(name, here + (key,), key, PRODUCT_KEYS))
        uuid = _check_labels(name, here, entry, problems)
        spec = None
        if waits:
            # Resolved once every file's presets are known; its uuid is checked now, in file order.
            if waiting is None:
                waiting = _FileDefaults(name, defaults)
            ref = entry.get(PRESET_KEY)
            if PRESET_KEY in entry and not isinstance(ref, str):
                problems.append(_bad_ref(name, here + (PRESET_KEY,), ref))
                ref = _BROKEN
            catalogue.waiting.append(
                _Waiting(waiting, here, overrides, ref, entry.get("name"), bool(entry.get("protect", False)))
            )
        else:
            spec = _resolve(name, here, defaults, overrides, resolved, problems)
        if uuid is None:
            continue
        if uuid in first_seen:
            # Checked even when the spec is invalid, so one run reports every problem.
            _declared_twice(problems, uuid, name, here + ("uuid",), first_seen[uuid])
            continue
        first_seen[uuid] = (name, index)
        if waits:
            catalogue.waiting[-1].uuid = uuid
        elif spec is not None:
            products[uuid] = ProductSpec(
                uuid=uuid,
                name=entry.get("name"),
                spec=spec[0],
                spec_hash=spec[1],
                source=location,
                protect=bool(entry.get("protect", False)),
            )


def _check_labels(name: str, here: Path_, entry: dict[str, Any], problems: _Problems) -> str | None:
    uuid = entry.get("uuid")
    ok = True
    if uuid is None:
        problems.append(
            _Problem(name, here, "missing field uuid", hint="every product needs its VNTANA product uuid")
        )
        ok = False
    elif not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
        # fullmatch: "uuid: |" keeps a trailing newline, and a product key must be exactly the uuid.
        problems.append(
            _Problem(
                name,
                here + ("uuid",),
                f"expected a product UUID like 3f2b8c1e-0000-4000-8000-000000000000, got {_short(uuid)}",
                hint=_uuid_hint(uuid),
            )
        )
        ok = False
    label = entry.get("name")
    if label is not None and not isinstance(label, str):
        problems.append(
            _Problem(
                name,
                here + ("name",),
                f"expected text, got {_kind(label)}",
                hint='quote it, e.g. name: "2024"',
            )
        )
    protect = entry.get("protect")
    if protect is not None and not isinstance(protect, bool):
        problems.append(_Problem(name, here + ("protect",), f"expected true or false, got {_short(protect)}"))
    return uuid.lower() if ok and isinstance(uuid, str) else None


def _resolve(
    name: str,
    here: Path_,
    defaults: dict[str, Any],
    overrides: dict[str, Any],
    cache: dict[str, tuple[RenderSpec, str] | None],
    problems: _Problems,
) -> tuple[RenderSpec, str] | None:
    """Merge and validate, once per distinct overrides; errors land on whichever side set the value."""
    try:
        key = json.dumps(overrides, sort_keys=True, default=repr) if overrides else ""
    except (TypeError, ValueError):  # keys json cannot sort (1 and "includeGif"): invalid anyway, not cached
        return _validate(name, here, defaults, overrides, problems)
    if key in cache:
        hit = cache[key]
        if hit is None and overrides:
            # Same broken overrides as an earlier product: report this one too, at its own place.
            _validate(name, here, defaults, overrides, problems)
        return hit
    result = _validate(name, here, defaults, overrides, problems)
    cache[key] = result
    return result


def _validate(
    name: str, here: Path_, defaults: dict[str, Any], overrides: dict[str, Any], problems: _Problems
) -> tuple[RenderSpec, str] | None:
    """Validate defaults + overrides (no preset involved); see ``_validate_layers``."""
    return _validate_layers(
        (_Layer(name, ("defaults",), defaults), _Layer(name, here, overrides)), bool(defaults), problems
    )


def _validate_layers(
    layers: tuple[_Layer, ...], has_defaults: bool, problems: _Problems
) -> tuple[RenderSpec, str] | None:
    """Merge the layers, lowest first, and validate; every failure adds at least one problem.

    A problem is blamed on the highest layer that sets the field it is about (the product, its
    preset chain, the defaults, theirs); a field missing from all of them on the defaults if
    the file has any, else on the product. A problem blamed anywhere but on the product is
    added each time it is met and reported once, since ``_Problems`` drops repeats."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.fields.items():
            base = merged.get(k)
            merged[k] = {**base, **v} if isinstance(base, dict) and isinstance(v, dict) else v
    try:
        spec = RenderSpec.model_validate(merged)
    except ValidationError as exc:
        product = layers[-1]
        defaults = next(layer for layer in layers if layer.path == ("defaults",))
        presets = any(layer.path[:1] == ("presets",) for layer in layers)
        found: list[tuple[_Problem, bool]] = []
        echoes: list[
            tuple[_Problem, bool]
        ] = []  # "missing" only because a key is misspelt: said by its unknown-field error
        for err in exc.errors():
            loc: Path_ = tuple(err["loc"])
            if (
                err["type"] == "invalid_key"
            ):  # a key that is not text (1:, null:): pydantic's loc has str(key)
                loc = loc[:-1] + (err["input"],)
            if err["type"] == "missing":
                blamed = (
                    defaults if has_defaults else product
                )  # missing from all: say so once, at the defaults
            elif err["type"] == "value_error" and loc in _RULE_FIELDS:
                # A rule across fields: blame the highest layer that sets one of them.
                blamed = _setter(layers, [loc + (k,) for k in _RULE_FIELDS[loc]]) or defaults
            else:
                blamed = _setter(layers, [loc]) or defaults
            problem = _pydantic_problem(blamed.file, blamed.path, loc, err, presets)
            is_echo = err["type"] == "missing" and _misspelt(loc, *(layer.raw for layer in layers))
            (echoes if is_echo else found).append((problem, blamed is not product))
        # Never fail without saying why: a product must not vanish silently.
        for problem, repeatable in found or echoes:
            problems.append(problem, repeatable)
        return None
    canonical = spec.canonical()
    return spec, fingerprint(canonical)


def _setter(layers: tuple[_Layer, ...], locs: list[Path_]) -> _Layer | None:
    """The highest layer that sets any of ``locs``."""
    for layer in reversed(layers):
        if any(_sets(layer.fields, loc) for loc in locs):
            return layer
    return None


def _misspelt(loc: Path_, *sources: dict[str, Any]) -> bool:
    """Whether a missing field is present under a near spelling (``imagewidth`` for ``imageWidth``)."""
    wanted = str(loc[-1])
    for source in sources:
        node: Any = source
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and any(
            isinstance(k, str) and k not in _KNOWN_KEYS and _closest(k, (wanted,)) for k in node
        ):
            return True
    return False


def _sets(mapping: dict[str, Any], loc: Path_) -> bool:
    node: Any = mapping
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _pydantic_problem(name: str, where: Path_, loc: Path_, err: Any, presets: bool = False) -> _Problem:
    kind = err["type"]
    field = ".".join(str(p) for p in loc)
    if kind in ("extra_forbidden", "invalid_key"):
        parent = TURNTABLE_KEYS if loc[:1] == ("turntable",) else SPEC_KEYS
        return _unknown(name, where + loc, loc[-1], parent)
    if kind == "missing":
        places = (
            "this file's defaults, its preset or the product"
            if presets
            else "this file's defaults or on the product"
        )
        return _Problem(name, where + loc[:-1], f"missing field {field}", hint=f"set {field} in {places}")
    if not loc:  # model-level rule (e.g. JPG with transparency)
        return _Problem(name, where, err["msg"].removeprefix("Value error, "))
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return _Problem(
            name, where + loc, f"expected {expected}, got {_got(value)}", hint=_number_hint(kind, value)
        )
    bound = BOUNDS.get(field)
    if bound is not None and kind in ("greater_than_equal", "less_than_equal"):
        return _Problem(
            name, where + loc, f"expected {bound.low}..{bound.high} ({bound.why}), got {_short(value)}"
        )
    if kind in ("greater_than_equal", "less_than_equal") or kind.endswith("_type") or kind == "literal_error":
        message = f"{message}, got {_short(value)}"
    return _Problem(name, where + loc, message)


_NUMBER_LIKE = re.compile(r"[-+]?(?:0[xob])?[0-9a-fA-F_]+")


def _number_hint(kind: str, value: Any) -> str | None:
    """``1_200``, ``0x4B0``, ``+5`` are read as text (whole numbers are plain decimal): say how to write it."""
    if (
        kind not in ("int_type", "int_parsing")
        or not isinstance(value, str)
        or not _NUMBER_LIKE.fullmatch(value)
    ):
        return None
    if value.isdigit():
        return f"write it without quotes: {value}"
    if any(c.isdigit() for c in value):
        return "write whole numbers in plain decimal digits, e.g. 1200, without _, 0x, 0o or +"
    return None


def _uuid_hint(value: Any) -> str | None:
    if isinstance(value, str) and _UUID.fullmatch(value.strip()):
        return "remove the spaces or line break around it; a block scalar such as 'uuid: |' keeps a newline"
    return None


# pydantic's words for a wrong type, in the manifest's terms.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
    "dict_type": "a mapping of fields",
    "literal_error": "one of " + ", ".join(IMAGE_FORMATS),
}


def _unknown(name: str, path: Path_, key: Any, valid: tuple[str, ...]) -> _Problem:
    # The hint is made only for problems that are shown: difflib is slow on many long keys.
    return _Problem(name, path, f"unknown field {_short(key)}", at_key=True, choices=valid)


def _closest(key: str, valid: tuple[str, ...]) -> str | None:
    lowered = {v.lower(): v for v in valid}
    return lowered.get(key.lower()) or next(
        iter(difflib.get_close_matches(key, valid, n=1, cutoff=0.6)), None
    )


def _suggest(key: str, valid: tuple[str, ...]) -> str:
    match = _closest(key, valid)
    if match:
        return f"did you mean {match!r}?"
    return "expected one of: " + ", ".join(valid)


def _got(value: Any) -> str:
    if isinstance(value, str):
        return f"text {_short(value)}"
    if isinstance(value, (dict, list)) or value is None:
        return _kind(value)
    return _short(value)


def _short(value: Any) -> str:
    """``repr(value)``, cut to a readable length: a message never quotes a megabyte."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**_SHORT:
        digits = len(str(abs(value)))  # at most yamlfast.MAX_INT_DIGITS: cheap
        return f"a number of {digits:,} digits"
    if isinstance(value, str) and len(value) > _SHORT:
        return f"{value[:_SHORT]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= _SHORT else text[:_SHORT] + "…"


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _yaml_problem(name: str, text: str, exc: YAMLError | yamlfast.Refused) -> _Problem:
    hint = None
    marker = _CONFLICT.search(text)
    if marker:
        at = text.count("\n", 0, marker.start()) + 1
        hint = (
            f"the file contains git merge-conflict markers (<<<<<<<, =======, >>>>>>>) from line {at}; "
            "resolve the conflict"
        )
    if isinstance(exc, yamlfast.Refused):  # readable, but beyond a bound
        p = _Problem(name, (), exc.problem, hint=exc.hint or hint)
        if exc.line is not None:
            p.path = ("@", exc.line, exc.column or 0)
        return p
    mark = getattr(exc, "problem_mark", None) if isinstance(exc, MarkedYAMLError) else None
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    p = _Problem(name, (), f"invalid YAML: {problem}", hint=hint)
    if mark is not None:
        p.path = ("@", mark.line, mark.column)  # already a position, not a field path
    elif isinstance(getattr(exc, "position", None), int):  # a reader error: a bad character
        at = exc.position  # type: ignore[attr-defined]
        p.path = ("@", text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1))
    return p


def _locate(problems: list[_Problem], texts: dict[str, str]) -> list[Diagnostic]:
    """Turn field paths into line:column with one parse into nodes per affected file."""
    trees: dict[str, Any] = {}
    out: list[Diagnostic] = []
    for p in problems:
        if p.choices:
            p.hint = _suggest(str(p.path[-1]), p.choices)
        if p.later is not None:
            p.hint = p.later()
        if p.path[:1] == ("@",):
            at_line, at_col = int(p.path[1]), int(p.path[2])
            out.append(Diagnostic(SourceLocation(p.file, at_line + 1, at_col + 1), p.message, None, p.hint))
            continue
        line, col = _position(_tree(trees, texts, p.file), p.path, p.at_key)
        field = _field_name(p.path)
        hint = p.hint
        if p.related is not None:
            other_file, other_path = p.related
            ln, cl = _position(_tree(trees, texts, other_file), other_path, False)
            where = str(SourceLocation(other_file, ln, cl))
            hint = f"also at {where}" + (f"; {hint}" if hint else "")
        out.append(Diagnostic(SourceLocation(p.file, line, col), p.message, field, hint))
    out.sort(key=lambda d: (d.location.file, d.location.line or 0, d.location.column or 0))
    return out


def _tree(trees: dict[str, Any], texts: dict[str, str], file: str) -> Any:
    if file not in trees:
        # The text read the first time, never the file again: it may have changed, or be a FIFO.
        text = texts.get(file)
        trees[file] = None if text is None else yamlfast.compose(text)
    return trees[file]


def _position(tree: Any, path: Path_, at_key: bool) -> tuple[int | None, int | None]:
    """1-based line and column of ``path`` in a node tree: the deepest node that exists."""
    if tree is None:
        return None, None
    node, mark = tree, tree.start_mark
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, SequenceNode):
            if not (isinstance(part, int) and 0 <= part < len(node.value)):
                break
            node = node.value[part]
            mark = node.start_mark
        elif isinstance(node, MappingNode):
            found = [
                (k, v)
                for k, v in node.value
                if isinstance(k, ScalarNode) and _same_key(yamlfast.key_of(k), part)
            ]
            if not found:
                break
            key, node = found[-1]
            mark = node.start_mark if last and not at_key and isinstance(node, ScalarNode) else key.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def _same_key(key: Any, part: Any) -> bool:
    return type(key) is type(part) and key == part  # 1 and True are different keys here


def _field_name(path: Path_) -> str | None:
    if not path:
        return None
    text = ""
    for part in path:
        if not isinstance(part, int):
            part = str(part)
            part = (
                part if len(part) <= _SHORT else part[:_SHORT] + "…"
            )  # a key of a megabyte is not shown whole
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
