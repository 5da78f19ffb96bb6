"""Manifests on disk → ``Desired``: every product's resolved, validated render spec.

Two parses, by design. The fast path reads every file with ruamel's C parser (through
``yamlfast``, or ruamel's safe loader for anything unusual) and validates each distinct
(defaults, overrides) combination once, so a 100,000-product catalogue costs little more
than its YAML parse. Only when something is wrong does a file
get a second, round-trip parse, whose node positions turn each problem's field path into
``file:line:col``. All problems of all files are reported together.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

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

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The fields of RenderSpec's cross-field rule (JPG cannot be transparent).
_RULE_FIELDS = ("imageFormat", "transparentBackground")
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.M)

Path_ = tuple[str | int, ...]


class _Problem:
    """A problem found on the fast path: a field path in one file, located later."""

    __slots__ = ("file", "path", "message", "hint", "at_key", "related")

    def __init__(self, file: str, path: Path_, message: str, hint: str | None = None, at_key: bool = False,
                 related: tuple[str, Path_] | None = None):
        self.file, self.path, self.message, self.hint, self.at_key = file, path, message, hint, at_key
        self.related = related  # another place the message is about, named in the hint as file:line:col


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files under ``paths`` (files or directories), sorted for stable output."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file()))
        elif p.is_file():
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
    problems: list[_Problem] = []
    fast = YAML(typ="safe", pure=False)
    with gc_paused():
        for path in files:
            name = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(_Problem(name, (), f"cannot read file: {exc}"))
                continue
            try:
                try:
                    data = yamlfast.load(text)
                except yamlfast.Unsupported:
                    data = fast.load(text)
            except YAMLError as exc:
                problems.append(_yaml_problem(name, text, exc))
                continue
            _load_file(name, data, products, first_seen, problems)
    if problems:
        raise ManifestError(_locate(problems))
    return Desired(products=products, files=tuple(str(f) for f in files))


def _load_file(name: str, data: Any, products: dict[str, ProductSpec],
               first_seen: dict[str, tuple[str, int]], problems: list[_Problem]) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(_Problem(name, (), f"expected a mapping with {' and '.join(TOP_KEYS)}, got {_kind(data)}"))
        return
    for key in data:
        if key not in TOP_KEYS:
            problems.append(_unknown(name, (key,), key, TOP_KEYS))
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
                                     hint="keep one", related=(name, here + ("uuid",))))
            continue
        first_seen[uuid] = (name, index)
        if spec is None:
            continue
        products[uuid] = ProductSpec(uuid=uuid, name=entry.get("name"), spec=spec[0], spec_hash=spec[1],
                                     source=location, protect=bool(entry.get("protect", False)))


def _check_labels(name: str, here: Path_, entry: dict[str, Any], problems: list[_Problem]) -> str | None:
    uuid = entry.get("uuid")
    ok = True
    if uuid is None:
        problems.append(_Problem(name, here, "missing field uuid", hint="every product needs its VNTANA product uuid"))
        ok = False
    elif not isinstance(uuid, str) or not _UUID.match(uuid):
        problems.append(_Problem(name, here + ("uuid",), f"expected a product UUID like "
                                 f"3f2b8c1e-0000-4000-8000-000000000000, got {uuid!r}"))
        ok = False
    label = entry.get("name")
    if label is not None and not isinstance(label, str):
        problems.append(_Problem(name, here + ("name",), f"expected text, got {_kind(label)}",
                                 hint="quote it, e.g. name: \"2024\""))
    protect = entry.get("protect")
    if protect is not None and not isinstance(protect, bool):
        problems.append(_Problem(name, here + ("protect",), f"expected true or false, got {protect!r}"))
    return uuid.lower() if ok else None


def _resolve(name: str, here: Path_, defaults: dict[str, Any], overrides: dict[str, Any],
             cache: dict[str, tuple[RenderSpec, str] | None], problems: list[_Problem]) -> tuple[RenderSpec, str] | None:
    """Merge and validate, once per distinct overrides; errors land on whichever side set the value."""
    key = json.dumps(overrides, sort_keys=True, default=repr) if overrides else ""
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
              problems: list[_Problem]) -> tuple[RenderSpec, str] | None:
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
        found: list[_Problem] = []
        echoes: list[_Problem] = []  # "missing" only because a key is misspelt: said by its unknown-field error
        for err in exc.errors():
            loc: Path_ = tuple(err["loc"])
            if err["type"] == "missing":
                from_product = not defaults  # missing from both: say so once, at the defaults
            elif not loc:
                # A rule across fields: blame the product only if it sets one of them.
                from_product = any(k in overrides for k in _RULE_FIELDS)
            else:
                from_product = _sets(overrides, loc)
            where = here if from_product else ("defaults",)
            problem = _pydantic_problem(name, where, loc, err)
            is_echo = err["type"] == "missing" and _misspelt(loc, defaults, overrides)
            (echoes if is_echo else found).append(problem)
        # Never fail without saying why: a product must not vanish silently.
        problems.extend(found or echoes)
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
    if kind == "extra_forbidden":
        parent = TURNTABLE_KEYS if loc[:1] == ("turntable",) else SPEC_KEYS
        return _unknown(name, where + loc, str(loc[-1]), parent)
    if kind == "missing":
        return _Problem(name, where + loc[:-1], f"missing field {field}",
                        hint=f"set {field} in this file's defaults or on the product")
    if not loc:  # model-level rule (e.g. JPG with transparency)
        return _Problem(name, where, err["msg"].removeprefix("Value error, "))
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return _Problem(name, where + loc, f"expected {expected}, got {_got(value)}")
    bound = BOUNDS.get(field)
    if bound is not None and kind in ("greater_than_equal", "less_than_equal"):
        return _Problem(name, where + loc, f"expected {bound.low}..{bound.high} ({bound.why}), got {value!r}")
    if kind in ("greater_than_equal", "less_than_equal") or kind.endswith("_type") or kind == "literal_error":
        message = f"{message}, got {value!r}"
    return _Problem(name, where + loc, message)


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
    return _Problem(name, path, f"unknown field {key!r}", hint=_suggest(str(key), valid), at_key=True)


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
        return f"text {value!r}"
    if isinstance(value, (dict, list)) or value is None:
        return _kind(value)
    return repr(value)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _yaml_problem(name: str, text: str, exc: YAMLError) -> _Problem:
    hint = None
    marker = _CONFLICT.search(text)
    if marker:
        at = text.count("\n", 0, marker.start()) + 1
        hint = (f"the file contains git merge-conflict markers (<<<<<<<, =======, >>>>>>>) from line {at}; "
                "resolve the conflict")
    mark = getattr(exc, "problem_mark", None) if isinstance(exc, MarkedYAMLError) else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    p = _Problem(name, (), f"invalid YAML: {problem}", hint=hint)
    if mark is not None:
        p.path = ("@", mark.line, mark.column)  # already a position, not a field path
    elif isinstance(getattr(exc, "position", None), int):  # a reader error: a bad character
        at = exc.position  # type: ignore[attr-defined]
        p.path = ("@", text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1))
    return p


def _locate(problems: list[_Problem]) -> list[Diagnostic]:
    """Turn field paths into line:column with one round-trip parse per affected file."""
    trees: dict[str, Any] = {}
    out: list[Diagnostic] = []
    seen: set[tuple[str, Path_, str]] = set()
    for p in problems:
        ident = (p.file, p.path, p.message)
        if ident in seen:
            continue
        seen.add(ident)
        if p.path[:1] == ("@",):
            line, col = int(p.path[1]), int(p.path[2])
            out.append(Diagnostic(SourceLocation(p.file, line + 1, col + 1), p.message, None, p.hint))
            continue
        line, col = _position(_tree(trees, p.file), p.path, p.at_key)
        field = _field_name(p.path)
        hint = p.hint
        if p.related is not None:
            other_file, other_path = p.related
            ln, cl = _position(_tree(trees, other_file), other_path, False)
            where = str(SourceLocation(other_file, ln, cl))
            hint = f"also at {where}" + (f"; {hint}" if hint else "")
        out.append(Diagnostic(SourceLocation(p.file, line, col), p.message, field, hint))
    out.sort(key=lambda d: (d.location.file, d.location.line or 0, d.location.column or 0))
    return out


def _tree(trees: dict[str, Any], file: str) -> Any:
    if file not in trees:
        trees[file] = _round_trip(file)
    return trees[file]


def _round_trip(file: str) -> Any:
    try:
        return YAML(typ="rt").load(Path(file).read_text(encoding="utf-8"))
    except (OSError, YAMLError, UnicodeDecodeError):
        return None


def _position(tree: Any, path: Path_, at_key: bool) -> tuple[int | None, int | None]:
    """1-based line and column of ``path`` in a round-trip tree: the deepest node that exists."""
    node, line, col = tree, None, None
    if tree is not None and hasattr(tree, "lc"):
        line, col = tree.lc.line + 1, tree.lc.col + 1
    for i, part in enumerate(path):
        last = i == len(path) - 1
        try:
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                ln, cl = node.lc.item(part)
            elif isinstance(node, dict) and part in node:
                use_value = last and not at_key and not _is_container(node[part])
                ln, cl = node.lc.value(part) if use_value else node.lc.key(part)
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
        line, col = ln + 1, cl + 1
        node = node[part]
    return line, col


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))


def _field_name(path: Path_) -> str | None:
    if not path:
        return None
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

