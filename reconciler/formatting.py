"""The manifest formatter behind ``reconciler fmt`` (reconciler.cli.fmt): one layout for every manifest, comments kept, meaning never changed.

The layout: two-space indentation with sequence dashes indented under their key, block
style throughout, keys in the API's order (``presets``, ``defaults``, ``products``; on a product
``uuid``, ``name``, ``protect``, ``preset``, then the render fields as ``reconciler/spec.py``
declares them; in a preset and in the defaults ``preset`` first, then the render fields; the
turntable's fields likewise; unknown keys after, as they were), strings plain where YAML
allows and double-quoted where it does not (or where YAML 1.1 tools would read a boolean),
the file's line endings and BOM as they were, and no line wrapping.

How, in three passes over the text, each checkable on its own:

1. ruamel's round trip re-emits the document with that indentation, style and quoting;
   comments and anchors survive it.
2. Full-line comments are re-indented to the line they describe: the next line's
   indentation, or the previous key's when they are indented deeper than what follows
   (a note at the end of a block stays with that block).
3. Keys are put in order by moving whole lines: a key carries the comment lines above it
   and everything its value spans, so a comment never drifts away from its key.

Then the result is read back and compared with the original, as plain data: if the
meaning differs in any way the file is not written (that would be a bug here).
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import RoundTripEmitter
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.representer import RoundTripRepresenter

from reconciler.diagnostics import Diagnostic, SourceLocation
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.loader import PRESET_KEYS, PRODUCT_KEYS, TOP_KEYS, TURNTABLE_KEYS, manifest_files

PRODUCT_ORDER = PRODUCT_KEYS
# Plain in YAML 1.2 (which we read) but booleans or null to YAML 1.1 tools: quote them.
_YAML11_SPECIAL = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"])
_BLOCK_SCALAR = re.compile(
    r"""^(\s*)(?:- )*(?:[^#'"\s][^#]*?:\s+|"[^"]*":\s+|'[^']*':\s+|)[|>][-+0-9]*\s*(?:#.*)?$"""
)
_DOC_START = re.compile(r"^---(\s|$)", re.M)


class _Emitter(RoundTripEmitter):
    """ruamel's choices, except that a quoted scalar is always double-quoted."""

    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


class _Representer(RoundTripRepresenter):
    def represent_str(self, data: str) -> Any:
        if data.lower() in _YAML11_SPECIAL:
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)


_Representer.add_representer(str, _Representer.represent_str)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Emitter = _Emitter
    y.Representer = _Representer
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 1 << 16  # never fold a long name over two lines
    return y


class FormatError(ReconcilerError):
    """fmt would have changed what a manifest means; nothing was written."""


@dataclass(frozen=True)
class Formatted:
    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        name = str(self.path)
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True), self.after.splitlines(keepends=True), name, name
            )
        )


def format_text(text: str, name: str = "<text>") -> str:
    """The formatted manifest; ManifestError if it is not YAML, FormatError if meaning would change."""
    bom = text.startswith("\ufeff")
    body = text[1:] if bom else text
    crlf = "\r\n" in body
    body = body.replace("\r\n", "\n")
    if not body.strip():
        return text
    data = _load_rt(body, name)
    if not _is_manifest(data):
        return text  # not a manifest: not ours to rearrange
    unordered = _out_of_order(data)  # before emitting: the tree is the same, and a parse is dear
    emitted = _emit(data, explicit_start=bool(_DOC_START.match(body.lstrip("\n"))))
    out = _reindent_comments(emitted, comment_owners(body))
    if unordered:
        out = _reorder(out)
    if out != body:
        _same_meaning(body, out, name)
    if crlf:
        out = out.replace("\n", "\r\n")
    return ("\ufeff" if bom else "") + out


def format_file(path: Path) -> Formatted:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([Diagnostic(SourceLocation(str(path)), f"cannot read file: {exc}")]) from exc
    return Formatted(path, text, format_text(text, str(path)))


def _load_rt(text: str, name: str) -> Any:
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = SourceLocation(name, mark.line + 1, mark.column + 1) if mark else SourceLocation(name)
        raise ManifestError([Diagnostic(where, f"invalid YAML: {exc.problem or exc}")]) from exc
    except YAMLError as exc:
        raise ManifestError([Diagnostic(SourceLocation(name), f"invalid YAML: {exc}")]) from exc


def _is_manifest(data: Any) -> bool:
    return isinstance(data, dict) and any(k in data for k in TOP_KEYS)


def _emit(data: Any, *, explicit_start: bool) -> str:
    for node in _collections(data, set()):
        node.fa.set_block_style()
    y = _yaml()
    y.explicit_start = explicit_start
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _collections(node: Any, seen: set[int]) -> Iterator[CommentedMap | CommentedSeq]:
    if isinstance(node, (CommentedMap, CommentedSeq)) and id(node) not in seen:
        seen.add(id(node))
        yield node
        for child in node.values() if isinstance(node, CommentedMap) else node:
            yield from _collections(child, seen)


# ---------------------------------------------------------------------------- pass 2: comments


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_column(line: str) -> int:
    """Where a line's own content starts, past any sequence dashes."""
    col = _indent(line)
    while line.startswith("- ", col) or line[col:] == "-":
        col += 2
    return col


def _block_scalar_lines(lines: list[str]) -> set[int]:
    """Indices of lines inside literal/folded block scalars: text there is content, never a comment."""
    inside: set[int] = set()
    i = 0
    while i < len(lines):
        m = _BLOCK_SCALAR.match(lines[i])
        i += 1
        if m is None:
            continue
        owner = _key_column(lines[i - 1]) if lines[i - 1].lstrip().startswith("- ") else _indent(lines[i - 1])
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > owner):
            inside.add(i)
            i += 1
    return inside


def _is_comment(line: str) -> bool:
    return line.lstrip(" ").startswith("#")


def _comment_lines(lines: list[str]) -> tuple[list[int], list[str]]:
    """Indices of full-line comments (not block-scalar text), and each line's kind: c comment, b blank, x content."""
    content = _block_scalar_lines(lines)
    kinds = [
        "c" if i not in content and _is_comment(line) else ("b" if not line.strip() else "x")
        for i, line in enumerate(lines)
    ]
    return [i for i, k in enumerate(kinds) if k == "c"], kinds


def _neighbours(kinds: list[str], i: int) -> tuple[int | None, int | None]:
    prev = next((j for j in range(i - 1, -1, -1) if kinds[j] == "x"), None)
    nxt = next((j for j in range(i + 1, len(kinds)) if kinds[j] == "x"), None)
    return prev, nxt


def comment_owners(text: str) -> list[tuple[str, int]]:
    """For each full-line comment, in order: whom it belongs to, read in the file's own columns.

    ("next", col): it describes the line below it (at or left of that line's depth);
    ("prev", col): it is indented deeper than what follows and no deeper block opens,
    so it closes the block above; ("end", col): nothing follows it."""
    lines = text.split("\n")
    comments, kinds = _comment_lines(lines)
    owners = []
    for i in comments:
        col = _indent(lines[i])
        prev, nxt = _neighbours(kinds, i)
        if nxt is None:
            owners.append(("end", col))
        elif (
            col <= _indent(lines[nxt])
            or prev is None
            or _opens_block(lines[prev])
            or _indent(lines[nxt]) > _key_column(lines[prev])
        ):
            owners.append(("next", col))
        else:
            owners.append(("prev", col))
    return owners


_OPENS = re.compile(r":\s*(?:&\S+\s*)?(?:#.*)?$")


def _opens_block(line: str) -> bool:
    """``key:`` (or ``key: &anchor``) with nothing after it: what follows is inside it."""
    return bool(_OPENS.search(line))


def _reindent_comments(text: str, owners: list[tuple[str, int]]) -> str:
    """Indent each full-line comment as its owner (from the original text) now stands."""
    lines = text.split("\n")
    comments, kinds = _comment_lines(lines)
    if len(comments) != len(owners):
        owners = comment_owners(text)  # ruamel merged or split a comment: judge by the new text
    for i, (owner, col) in zip(comments, owners, strict=True):
        prev, nxt = _neighbours(kinds, i)
        if owner == "next" and nxt is not None:
            target = _indent(lines[nxt])
        elif prev is None:
            target = 0
        elif owner == "end":  # the end of the file: as deep as it was, but no deeper than the last key
            target = min(col, _key_column(lines[prev]))
        else:
            target = _key_column(lines[prev])
        lines[i] = " " * target + lines[i].lstrip(" ")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- pass 3: key order


def _reorder(text: str) -> str:
    """Move whole lines so that the keys of every known mapping are in their canonical order."""
    data = _yaml().load(text)
    lines = text.split("\n")
    content = _block_scalar_lines(lines)
    ops = []
    seen: set[int] = set()
    for mapping, order, end in _known_mappings(data, len(lines), lines):
        if id(mapping) in seen:
            continue  # an alias of a mapping already placed
        seen.add(id(mapping))
        op = _plan_moves(mapping, order, end, lines, content, root=mapping is data)
        if op is not None:
            ops.append(op)
    # Deepest first, each built from the lines as they are by then: a move inside a key's lines
    # keeps their count, so the spans of the mappings around it stay valid.
    for move in sorted(ops, key=lambda m: -m.depth):
        lines[move.start : move.stop] = move.build(lines)
    return "\n".join(lines)


@dataclass(frozen=True)
class _Move:
    """Put the chunks ``spans`` (one per key, in file order) of one mapping in the order ``wanted``."""

    start: int
    stop: int
    depth: int
    spans: list[tuple[int, int]]
    wanted: list[int]
    dash: str | None
    """For a sequence item: what precedes its first key on the dash line (``"  - "``)."""

    def build(self, lines: list[str]) -> list[str]:
        col = self.depth
        chunks = [lines[a:b] for a, b in self.spans]
        if self.dash is not None:  # the dash stays on the first line, whichever key that is
            chunks[0] = [" " * col + chunks[0][0][col:], *chunks[0][1:]]
        block = [line for i in self.wanted for line in chunks[i]]
        if self.dash is not None:
            lead = next(i for i, line in enumerate(block) if line.strip() and not _is_comment(line))
            block[lead] = self.dash + block[lead][col:]
            # Comments above the new first key go above its dash, at the dash's depth.
            block[:lead] = [
                " " * _indent(self.dash) + line.lstrip(" ") if line.strip() else line for line in block[:lead]
            ]
        return block


def _out_of_order(data: Any) -> bool:
    """Whether any mapping fmt orders has its keys out of order."""
    for mapping, order, _ in _known_mappings(data, 0, []):
        keys = [k for k in mapping if k in mapping._ok]
        rank = {k: (order.index(k) if k in order else len(order) + i) for i, k in enumerate(keys)}
        if keys != sorted(keys, key=rank.__getitem__):
            return True
    return False


def _known_mappings(
    data: Any, total: int, lines: list[str]
) -> Iterator[tuple[CommentedMap, tuple[str, ...], int]]:
    if not isinstance(data, CommentedMap):
        return
    yield data, TOP_KEYS, total
    presets = data.get("presets")
    if isinstance(presets, CommentedMap):
        for preset in presets.values():
            if isinstance(preset, CommentedMap):
                yield preset, PRESET_KEYS, _end_of(preset, lines) if lines else 0
                yield from _turntable(preset, lines)
    defaults = data.get("defaults")
    if isinstance(defaults, CommentedMap):
        yield defaults, PRESET_KEYS, _end_of(defaults, lines) if lines else 0
        yield from _turntable(defaults, lines)
    products = data.get("products")
    if isinstance(products, CommentedSeq):
        for product in products:
            if isinstance(product, CommentedMap):
                yield product, PRODUCT_ORDER, _end_of(product, lines) if lines else 0
                yield from _turntable(product, lines)


def _turntable(parent: CommentedMap, lines: list[str]) -> Iterator[tuple[CommentedMap, tuple[str, ...], int]]:
    tt = parent.get("turntable")
    if isinstance(tt, CommentedMap):
        yield tt, TURNTABLE_KEYS, _end_of(tt, lines) if lines else 0


def _end_of(mapping: CommentedMap, lines: list[str]) -> int:
    """The line after a nested block mapping's region: the next content line indented less than its keys."""
    own = [k for k in mapping if k in mapping._ok]  # merged keys (<<) have no place of their own
    if not own:
        return len(lines)
    first, col = min(mapping.lc.key(k) for k in own)  # not lc.col: that is where an anchor starts
    for i in range(first + 1, len(lines)):
        line = lines[i]
        if line.strip() and not _is_comment(line) and _indent(line) < col:
            return i
    return len(lines)


def _plan_moves(
    mapping: CommentedMap,
    order: tuple[str, ...],
    end: int,
    lines: list[str],
    content: set[int],
    *,
    root: bool,
) -> _Move | None:
    keys = list(mapping)
    if len(keys) < 2 or getattr(mapping, "merge", None) or not all(k in mapping._ok for k in keys):
        return None
    rank = {k: (order.index(k) if k in order else len(order) + i) for i, k in enumerate(keys)}
    wanted = sorted(keys, key=rank.__getitem__)
    if wanted == keys:
        return None
    col = mapping.lc.key(keys[0])[1]  # not lc.col: that is where an anchor starts
    starts = [mapping.lc.key(k)[0] for k in keys]
    if starts != sorted(starts) or any(
        _key_column(lines[s]) != col and _indent(lines[s]) != col for s in starts
    ):
        return None  # not the plain block layout pass 1 makes: leave it alone
    # A key's lines start at the comments and blank lines just above it (those at its own depth).
    first = lines[starts[0]]
    dash = first[:col] if _key_column(first) == col and _indent(first) < col else None
    # The comments above a nested mapping's first key are that key's; above the root's first
    # key they are the file's header, and above a dash they are the whole item's: both stay.
    head = starts[0]
    if not root and dash is None:
        while (
            head - 1 >= 0
            and head - 1 not in content
            and _above(lines[head - 1], col)
            and lines[head - 1].strip()
        ):
            head -= 1
    bounds = [head]
    for s in starts[1:]:
        b = s
        while b - 1 > bounds[-1] and b - 1 not in content and _above(lines[b - 1], col):
            b -= 1
        bounds.append(b)
    stop = end
    while stop - 1 > starts[-1] and stop - 1 not in content and _above(lines[stop - 1], col):
        stop -= 1  # what trails the mapping belongs to whatever follows it
    bounds.append(stop)
    spans = [(bounds[i], bounds[i + 1]) for i in range(len(keys))]
    return _Move(bounds[0], stop, col, spans, [keys.index(k) for k in wanted], dash)


def _above(line: str, col: int) -> bool:
    """A blank line, or a comment no deeper than the mapping's keys."""
    return not line.strip() or (_is_comment(line) and _indent(line) <= col)


# ---------------------------------------------------------------------------- the safety check


def _same_meaning(before: str, after: str, name: str) -> None:
    if _plain(before) != _plain(after):
        raise FormatError(
            f"fmt would change what {name} means, so it was left untouched",
            hint="this is a bug in reconciler fmt; please report it with the file",
        )


def _plain(text: str) -> str:
    data = YAML(typ="safe", pure=False).load(text)  # ruamel's C parser where it is installed
    return json.dumps(data, sort_keys=True, default=repr, ensure_ascii=False)


# ---------------------------------------------------------------------------- many files


def format_paths(paths: Iterable[Path]) -> tuple[list[Formatted], list[Diagnostic]]:
    """Format every manifest under ``paths`` in memory; problems are collected, not raised."""
    results: list[Formatted] = []
    problems: list[Diagnostic] = []
    for path in manifest_files(paths):
        try:
            results.append(format_file(path))
        except ManifestError as exc:
            problems.extend(exc.diagnostics)
        except FormatError as exc:
            problems.append(Diagnostic(SourceLocation(str(path)), exc.message, hint=exc.hint))
    return results, problems


def write_formatted(r: Formatted) -> None:
    """Replace the file with its formatted text (through a temporary file: never half written)."""
    tmp = r.path.with_name(r.path.name + ".fmt-tmp")
    try:
        tmp.write_bytes(r.after.encode("utf-8"))
        tmp.replace(r.path)
    except OSError as exc:
        raise ReconcilerError(f"cannot write {r.path}: {exc.strerror}") from exc
