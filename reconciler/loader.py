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
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from reconciler import yamlfast
from reconciler._gc import gc_paused
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

TOP_KEYS = ("defaults", "products")
LABEL_KEYS = ("uuid", "name", "protect")
SPEC_KEYS = tuple(RenderSpec.model_fields)
PRODUCT_KEYS = LABEL_KEYS + SPEC_KEYS
TURNTABLE_KEYS = tuple(TurntableSpec.model_fields)
_KNOWN_KEYS = frozenset(PRODUCT_KEYS + TURNTABLE_KEYS)

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

_SHORT = 60  # characters of a value or key quoted in a message

Path_ = tuple[Any, ...]


class _Problem:
    """A problem found on the fast path: a field path in one file, located later."""

    __slots__ = ("file", "path", "message", "hint", "at_key", "related", "choices")

    def __init__(self, file: str, path: Path_, message: str, hint: str | None = None, at_key: bool = False,
                 related: tuple[str, Path_] | None = None, choices: tuple[str, ...] = ()):
        self.file, self.path, self.message, self.hint, self.at_key = file, path, message, hint, at_key
        self.related = related  # another place the message is about, named in the hint as file:line:col
        self.choices = choices  # valid keys for an unknown one: the "did you mean" hint, made when shown


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
            raise ManifestError([Diagnostic(SourceLocation(str(p)), "no such file or directory",
                                            hint="pass the manifests directory, e.g. --manifests manifests/")])
    return found


def load_desired(paths: Iterable[Path]) -> Desired:
    """Load and validate every manifest under ``paths``; raise ManifestError listing all problems."""
    files = manifest_files(paths)
    products: dict[str, ProductSpec] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    problems = _Problems()
    texts: dict[str, str] = {}  # for the second parse, which locates problems
    with gc_paused():
        for path in files:
            name = str(path)
            text = _read(name, problems)
            if text is None:
                continue
            texts[name] = text
            try:
                data = yamlfast.read(text)
            except (YAMLError, yamlfast.Refused) as exc:
                problems.append(_yaml_problem(name, text, exc))
                continue
            _load_file(name, data, products, first_seen, problems)
    if problems:
        raise ManifestError(_locate(problems.kept, texts), more=problems.more)
    return Desired(products=products, files=tuple(str(f) for f in files))


def _read(name: str, problems: _Problems) -> str | None:
    """The text of one manifest file, or None with a problem added.

    Opened without blocking and checked with fstat before a byte is read: a FIFO would wait
    for a writer forever and /dev/zero never ends; a regular file is read to its cap only."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        kind = "a broken symbolic link" if os.path.islink(name) else "gone (deleted while being read)"
        problems.append(_Problem(name, (), f"cannot read file: it is {kind}",
                                 hint="remove it, or point it at a manifest file"))
        return None
    except OSError as exc:
        problems.append(_Problem(name, (), f"cannot read file: {exc.strerror or exc}"))
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            problems.append(_Problem(name, (), f"cannot read file: it is {_file_kind(info.st_mode)}, not a regular "
                                               "file", hint="manifests must be regular files; remove it or rename it "
                                                            "so it does not end in .yaml or .yml"))
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
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "not a regular file"


def _too_big(name: str, size: int) -> _Problem:
    return _Problem(name, (), f"file is {size / 2**20:.1f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB a "
                              "manifest file may be", hint="split the catalogue into several files; any number of "
                                                          "files and subfolders is read")


def _not_utf8(name: str, data: bytes, exc: UnicodeDecodeError) -> _Problem:
    """Where the first byte that is not UTF-8 is, as line and column (in characters)."""
    at = exc.start
    line_start = data.rfind(b"\n", 0, at) + 1
    line = data.count(b"\n", 0, at)
    column = len(data[line_start:at].decode("utf-8", "replace"))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = "it is UTF-16 text: save it as UTF-8"
    else:
        hint = "save it as UTF-8" + ("; it looks like Latin-1 or Windows-1252 text" if _is_cp1252(data) else "")
    p = _Problem(name, (), f"not UTF-8 text: byte 0x{data[at]:02X} cannot start or continue a character", hint=hint)
    p.path = ("@", line, column)
    return p


def _is_cp1252(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def _load_file(name: str, data: Any, products: dict[str, ProductSpec],
               first_seen: dict[str, tuple[str, int]], problems: _Problems) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(_Problem(name, (), f"expected a mapping with {' and '.join(TOP_KEYS)}, got {_kind(data)}"))
        return
    for key in data:
        if key not in TOP_KEYS:
            problems.append(_unknown(name, (key,), key, TOP_KEYS), repeatable=True)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(_Problem(name, ("defaults",), f"expected a mapping of render fields, got {_kind(defaults)}"))
        defaults = {}
    entries = data.get("products") or []
    if not isinstance(entries, list):
        problems.append(_Problem(name, ("products",), f"expected a list of products, got {_kind(entries)}"))
        return
    location = SourceLocation(name)
    resolved: dict[str, tuple[RenderSpec, str] | None] = {}
    for index, entry in enumerate(entries):
        here: Path_ = ("products", index)
        if not isinstance(entry, dict):
            problems.append(_Problem(name, here, f"expected a product mapping with a uuid, got {_kind(entry)}"))
            continue
        overrides: dict[str, Any] = {}
        for key, value in entry.items():
            if key in SPEC_KEYS:
                overrides[key] = value
            elif key not in LABEL_KEYS:
                problems.append(_unknown(name, here + (key,), key, PRODUCT_KEYS))
        uuid = _check_labels(name, here, entry, problems)
        spec = _resolve(name, here, defaults, overrides, resolved, problems)
        if uuid is None:
            continue
        if uuid in first_seen:
            # Checked even when the spec is invalid, so one run reports every problem.
            other_file, other_index = first_seen[uuid]
            other: Path_ = ("products", other_index, "uuid")
            problems.append(_Problem(name, here + ("uuid",), f"product {uuid} is declared twice",
                                     hint="keep one", related=(other_file, other)))
            problems.append(_Problem(other_file, other, f"product {uuid} is declared twice",
                                     hint="keep one", related=(name, here + ("uuid",))), repeatable=True)
            continue
        first_seen[uuid] = (name, index)
        if spec is None:
            continue
        products[uuid] = ProductSpec(uuid=uuid, name=entry.get("name"), spec=spec[0], spec_hash=spec[1],
                                     source=location, protect=bool(entry.get("protect", False)))


def _check_labels(name: str, here: Path_, entry: dict[str, Any], problems: _Problems) -> str | None:
    uuid = entry.get("uuid")
    ok = True
    if uuid is None:
        problems.append(_Problem(name, here, "missing field uuid", hint="every product needs its VNTANA product uuid"))
        ok = False
    elif not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
        # fullmatch: "uuid: |" keeps a trailing newline, and a product key must be exactly the uuid.
        problems.append(_Problem(name, here + ("uuid",), f"expected a product UUID like "
                                 f"3f2b8c1e-0000-4000-8000-000000000000, got {_short(uuid)}",
                                 hint=_uuid_hint(uuid)))
        ok = False
    label = entry.get("name")
    if label is not None and not isinstance(label, str):
        problems.append(_Problem(name, here + ("name",), f"expected text, got {_kind(label)}",
                                 hint="quote it, e.g. name: \"2024\""))
    protect = entry.get("protect")
    if protect is not None and not isinstance(protect, bool):
        problems.append(_Problem(name, here + ("protect",), f"expected true or false, got {_short(protect)}"))
    return uuid.lower() if ok else None


def _resolve(name: str, here: Path_, defaults: dict[str, Any], overrides: dict[str, Any],
             cache: dict[str, tuple[RenderSpec, str] | None], problems: _Problems) -> tuple[RenderSpec, str] | None:
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


def _validate(name: str, here: Path_, defaults: dict[str, Any], overrides: dict[str, Any],
              problems: _Problems) -> tuple[RenderSpec, str] | None:
    """Validate defaults + overrides; every failure adds at least one problem.

    A problem that comes from the defaults is added each time it is met and reported once,
    since ``_locate`` drops repeats of the same (file, field, message)."""
    merged = dict(defaults)
    for k, v in overrides.items():
        base = merged.get(k)
        merged[k] = {**base, **v} if isinstance(base, dict) and isinstance(v, dict) else v
    try:
        spec = RenderSpec.model_validate(merged)
    except ValidationError as exc:
        found: list[tuple[_Problem, bool]] = []
        echoes: list[tuple[_Problem, bool]] = []  # "missing" only because a key is misspelt: said by its unknown-field error
        for err in exc.errors():
            loc: Path_ = tuple(err["loc"])
            if err["type"] == "invalid_key":  # a key that is not text (1:, null:): pydantic's loc has str(key)
                loc = loc[:-1] + (err["input"],)
            if err["type"] == "missing":
                from_product = not defaults  # missing from both: say so once, at the defaults
            elif err["type"] == "value_error" and loc in _RULE_FIELDS:
                # A rule across fields: blame the product only if it sets one of them.
                from_product = any(_sets(overrides, loc + (k,)) for k in _RULE_FIELDS[loc])
            else:
                from_product = _sets(overrides, loc)
            where = here if from_product else ("defaults",)
            problem = _pydantic_problem(name, where, loc, err)
            is_echo = err["type"] == "missing" and _misspelt(loc, defaults, overrides)
            (echoes if is_echo else found).append((problem, not from_product))
        # Never fail without saying why: a product must not vanish silently.
        for problem, repeatable in found or echoes:
            problems.append(problem, repeatable)
        return None
    canonical = spec.canonical()
    return spec, fingerprint(canonical)


def _misspelt(loc: Path_, *sources: dict[str, Any]) -> bool:
    """Whether a missing field is present under a near spelling (``imagewidth`` for ``imageWidth``)."""
    wanted = str(loc[-1])
    for source in sources:
        node: Any = source
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and any(
                isinstance(k, str) and k not in _KNOWN_KEYS and _closest(k, (wanted,)) for k in node):
            return True
    return False


def _sets(mapping: dict[str, Any], loc: Path_) -> bool:
    node: Any = mapping
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _pydantic_problem(name: str, where: Path_, loc: Path_, err: Any) -> _Problem:
    kind = err["type"]
    field = ".".join(str(p) for p in loc)
    if kind in ("extra_forbidden", "invalid_key"):
        parent = TURNTABLE_KEYS if loc[:1] == ("turntable",) else SPEC_KEYS
        return _unknown(name, where + loc, loc[-1], parent)
    if kind == "missing":
        return _Problem(name, where + loc[:-1], f"missing field {field}",
                        hint=f"set {field} in this file's defaults or on the product")
    if not loc:  # model-level rule (e.g. JPG with transparency)
        return _Problem(name, where, err["msg"].removeprefix("Value error, "))
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return _Problem(name, where + loc, f"expected {expected}, got {_got(value)}", hint=_number_hint(kind, value))
    bound = BOUNDS.get(field)
    if bound is not None and kind in ("greater_than_equal", "less_than_equal"):
        return _Problem(name, where + loc, f"expected {bound.low}..{bound.high} ({bound.why}), got {_short(value)}")
    if kind in ("greater_than_equal", "less_than_equal") or kind.endswith("_type") or kind == "literal_error":
        message = f"{message}, got {_short(value)}"
    return _Problem(name, where + loc, message)


_NUMBER_LIKE = re.compile(r"[-+]?(?:0[xob])?[0-9a-fA-F_]+")


def _number_hint(kind: str, value: Any) -> str | None:
    """``1_200``, ``0x4B0``, ``+5`` are read as text (whole numbers are plain decimal): say how to write it."""
    if kind not in ("int_type", "int_parsing") or not isinstance(value, str) or not _NUMBER_LIKE.fullmatch(value):
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
    return lowered.get(key.lower()) or next(iter(difflib.get_close_matches(key, valid, n=1, cutoff=0.6)), None)


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
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** _SHORT:
        digits = len(str(abs(value)))  # at most yamlfast.MAX_INT_DIGITS: cheap
        return f"a number of {digits:,} digits"
    if isinstance(value, str) and len(value) > _SHORT:
        return f"{value[:_SHORT]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= _SHORT else text[:_SHORT] + "…"


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _yaml_problem(name: str, text: str, exc: YAMLError | yamlfast.Refused) -> _Problem:
    hint = None
    marker = _CONFLICT.search(text)
    if marker:
        at = text.count("\n", 0, marker.start()) + 1
        hint = (f"the file contains git merge-conflict markers (<<<<<<<, =======, >>>>>>>) from line {at}; "
                "resolve the conflict")
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
        if p.path[:1] == ("@",):
            line, col = int(p.path[1]), int(p.path[2])
            out.append(Diagnostic(SourceLocation(p.file, line + 1, col + 1), p.message, None, p.hint))
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
            found = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and _same_key(yamlfast.key_of(k), part)]
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
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

