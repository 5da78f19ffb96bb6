"""Reading manifest YAML: bounded before anything is built, then fast.

**Bounds first.** ``read`` and ``compose`` call ``check`` before any parser builds a node,
so every way a manifest is read shares one guard. It refuses, with the line and column:

- nesting deeper than ``MAX_DEPTH`` collections: ruamel's C composer recurses once per
  level and crashes the process near 50,000 levels, and Python code meets RecursionError
  near 1,000; a manifest needs 4;
- aliases that expand the document past ``EXPANSION`` times its own size (the "billion
  laughs": ten nested anchors in 1 KB become 10^10 values wherever the data is walked),
  and an alias inside the collection it names (a cycle);
- more than ``MAX_EVENTS`` parser events (about one per key, value, list and mapping): a
  composed node costs some 250 bytes, so this caps memory at about 1 GB per file.

The exact check is one pass over the C parser's events, about half the cost of a parse.
Plain manifests never pay it: cheap text bounds prove them safe first. In flow style a
``{`` opens one level and a ``[`` at most two (the sequence, and a single-pair mapping in it:
``[k: [...]]``); in block style each two levels need at least one more column of
indentation or ``- ``/``? ``/``: `` (libyaml starts no block collection after an anchor, a
tag or ``---`` on the same line). So with S ``[`` and M ``{`` in the file, and no line
starting with n such characters, the depth is at most 2n + 1 + 2S + M. A document without
``*`` has no aliases, and one of n characters has fewer than 3n events. A property test
holds these bounds against the exact scan.

**Fast path.** ``YAML(typ="safe", pure=False).load`` spends most of its time in Python, not
in C: for every scalar its versioned resolver looks up the YAML version of the document
being read (about 5 µs each, 700,000 times for a 100,000-product catalogue), and its
constructor walks each node through several generic layers. ``load`` drives the same C
parser (``CParser``: libyaml reader, scanner, parser and composer) with a resolver that uses
YAML 1.2's table directly and a constructor that only knows what manifests contain:
mappings, sequences, strings, integers, booleans and nulls. Anything else (a ``%YAML``
directive, an explicit tag, a float, a timestamp, a merge key, an alias to a collection, a
duplicate key) raises ``Unsupported`` and ``read`` uses ruamel's full safe loader, with the
same integer rule; syntax errors come from the shared C parser either way.

**Whole numbers are decimal.** An integer is ``-?(0|[1-9][0-9]*)``. Other spellings that
ruamel would read as numbers (``1_200``, ``0x4B0``, ``0o17``, ``+5``, ``012``) are read as the
text they are, so a strictly typed field refuses them and shows what was written. More
than ``MAX_INT_DIGITS`` digits is refused where it stands: Python refuses to convert them
(converting is quadratic in the length).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode, SequenceNode
from ruamel.yaml.resolver import Resolver
from ruamel.yaml.tag import Tag

try:
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]  # not in ruamel's type hints
except ImportError:  # pragma: no cover - ruamel.yaml.clib missing (e.g. PyPy): no fast path
    CParser = None

MAX_DEPTH = 64
"""Nested collections a document may have. A manifest needs 4 (file, products, product,
turntable); 64 keeps every reader of the data (pydantic, json, ruamel's pure-Python
composer) far from Python's recursion limit."""

MAX_EVENTS = 3_000_000
"""Parser events per file: a 100,000-product file has about 1,300,000."""

EXPANSION, EXPANSION_FLOOR = 10, 1_000_000
"""Aliases may make a document at most 10 times its own size (in characters), plus 1 MB:
merge keys (``<<: *defaults``) on every product of a large file stay well inside."""

MAX_INT_DIGITS = 4300
"""Python's own default limit for ``int(text)`` (sys.get_int_max_str_digits)."""

_YAML = "tag:yaml.org,2002:"
_TAGS = {name: Tag(suffix=_YAML + name) for name in ("str", "int", "bool", "null", "seq", "map")}
_STR, _INT, _BOOL, _NULL, _SEQ, _MAP = (_TAGS[n] for n in ("str", "int", "bool", "null", "seq", "map"))


class Refused(Exception):
    """The document is beyond a bound; ``line`` and ``column`` are 0-based, as ruamel's marks."""

    def __init__(self, problem: str, mark: Any = None, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.hint = problem, hint
        self.line: int | None = getattr(mark, "line", None)
        self.column: int | None = getattr(mark, "column", None)


class Unsupported(Exception):
    """The document uses something this reader leaves to ruamel's full loader."""


# -- the guard ---------------------------------------------------------------------------


def check(text: str) -> None:
    """Raise ``Refused`` if reading ``text`` would nest too deep, expand aliases too far, or
    build too many nodes; syntax errors are left to the parser that reads it next."""
    if _maybe_unbounded(text):
        _scan(text)
    elif len(text) * 3 > MAX_EVENTS:
        _count(text)


def _maybe_unbounded(text: str) -> bool:
    """False only if the text provably has no alias and nests at most MAX_DEPTH deep."""
    # Single characters first: ``in`` finds one with memchr, a pair takes ten times longer.
    if "*" in text and (text.lstrip("\ufeff").startswith("*") or any(s in text for s in _ALIAS_STARTS)):
        return True
    if any(b in text for b in _ODD_BREAKS):  # line breaks the prefix bound below does not see
        return True
    # A "[" opens up to two levels: the sequence, and a single-pair mapping in it ("[k: [...]]").
    room = (MAX_DEPTH - 1 - 2 * text.count("[") - text.count("{")) // 2
    if room < 1:
        return True
    first, later = _prefixes(room)
    return (
        first.match(text, 1 if text.startswith("\ufeff") else 0) is not None or later.search(text) is not None
    )


# An alias is ``*name`` after a separator. libyaml also breaks lines at a lone CR, NEL, LS
# and PS; a CRLF is a line break the "\n" search does see.
_ALIAS_STARTS = (" *", "\t*", "\n*", "[*", "{*", ",*", ":*")
_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


@lru_cache(maxsize=MAX_DEPTH)
def _prefixes(n: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Patterns for a line that starts with at least ``n`` indentation or indicator characters."""
    chars = rf"[ \t\-?:]{{{n}}}"
    return re.compile(chars), re.compile("\n" + chars)


def _scan(text: str) -> None:
    """The exact check: one pass over the parser's events, nothing composed."""
    budget = EXPANSION * len(text) + EXPANSION_FLOOR
    stack: list[list[Any]] = []  # open collections: [anchor, expanded size so far]
    sizes: dict[str, int] = {}  # anchor -> expanded size of the node it names
    opened: dict[str, int] = {}  # anchors of open collections (an alias to one is a cycle)
    count = 0
    try:
        for event in _events(text):
            count += 1
            if count > MAX_EVENTS:
                raise Refused(f"more than {MAX_EVENTS:,} YAML nodes in one file", event.start_mark, _SPLIT)
            kind = type(event)
            if kind is ScalarEvent:
                size = len(event.value) + 1
                if event.anchor is not None:
                    sizes[event.anchor] = size
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise Refused(
                        f"nested deeper than {MAX_DEPTH} levels (a manifest needs 4)", event.start_mark
                    )
                stack.append([event.anchor, 1])
                if event.anchor is not None:
                    opened[event.anchor] = opened.get(event.anchor, 0) + 1
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                anchor, size = stack.pop()
                if anchor is not None:
                    sizes[anchor] = size
                    opened[anchor] -= 1
            elif kind is AliasEvent:
                if opened.get(event.anchor):
                    raise Refused(
                        f"alias *{event.anchor} refers to a collection that contains it", event.start_mark
                    )
                size = sizes.get(event.anchor, 1)  # an unknown anchor: the parser reports it
            else:
                continue
            if stack:
                stack[-1][1] += size
                if stack[-1][1] > budget:
                    raise Refused(
                        f"aliases expand this document past {budget:,} characters, {EXPANSION} times "
                        f'its size plus {EXPANSION_FLOOR:,}: nested anchors, a "billion laughs"',
                        event.start_mark,
                        "write the values out, or refer to an anchor fewer times",
                    )
    except YAMLError:
        return  # a syntax error: the parser proper reports it, with its place


_SPLIT = "split the catalogue into several files; any number of files and subfolders is read"


def _count(text: str) -> None:
    if CParser is None:  # pragma: no cover - no C parser
        _scan(text)
        return
    parser = CParser(text)
    try:
        events = parser.raw_parse()  # counts in C, builds nothing
    except YAMLError:
        return
    finally:
        parser.dispose()
    if events > MAX_EVENTS:
        raise Refused(f"more than {MAX_EVENTS:,} YAML nodes in one file", hint=_SPLIT)


def _events(text: str) -> Iterator[Any]:
    if CParser is None:  # pragma: no cover - no C parser
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = CParser(text)
    try:
        while True:
            event = parser.get_event()
            if event is None:
                return
            yield event
    finally:
        parser.dispose()


# -- reading -----------------------------------------------------------------------------


def read(text: str) -> Any:
    """The document in ``text`` as plain data. Raises ``Refused`` beyond a bound, or ruamel's
    ``YAMLError`` (with a mark) for invalid YAML, including values its constructors refuse."""
    check(text)
    try:
        return load(text)
    except Unsupported:
        return load_full(text)


def load_full(text: str) -> Any:
    """ruamel's safe loader with the decimal rule: what ``load`` steps aside for.

    Only for text that ``check`` accepted, as ``load``."""
    yaml = YAML(typ="safe", pure=False)
    yaml.Constructor = _Constructor
    return yaml.load(text)


def compose(text: str) -> Any:
    """The node tree of ``text`` (every node keeps its line and column), or None if unreadable.

    Nodes, not data: they locate a problem in any document that parses, whatever its values
    (a timestamp that is not a date, ``!!int abc``), and the C composer builds them ten times
    faster than ruamel's round-trip loader, which matters on the error path of a large file."""
    try:
        check(text)
        if CParser is None:  # pragma: no cover - no C parser
            return YAML(typ="safe", pure=True).compose(text)
        parser = _Parser(text)
        try:
            return parser.get_single_node()
        finally:
            parser.dispose()
    except (Refused, YAMLError):
        return None


def key_of(node: Any) -> Any:
    """The value a scalar key node stands for, as the readers build it (for matching a path)."""
    try:
        return _build(node, set())
    except (Unsupported, Refused):
        return node.value


def _whole_number(value: str, mark: Any) -> int | str:
    """The integer a decimal spelling means; any other spelling is kept as text."""
    if not _DECIMAL.fullmatch(value):
        return value
    if len(value) > MAX_INT_DIGITS:
        raise Refused(
            f"a number of {len(value.lstrip('-')):,} digits is too long to read (at most {MAX_INT_DIGITS:,})",
            mark,
        )
    return int(value)


class _Constructor(SafeConstructor):
    """ruamel's safe constructor, with the decimal rule, and a value it cannot build (a
    timestamp's month 13, ``!!float x``) reported at its place instead of a bare ValueError."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except Refused as exc:
            raise ConstructorError(None, None, exc.problem, node.start_mark) from None
        except (ValueError, TypeError, OverflowError) as exc:
            what = str(tag or node.tag).removeprefix(_YAML)
            raise ConstructorError(
                None, None, f"cannot read {node.value!r} as {what}: {exc}", node.start_mark
            ) from exc

    def construct_decimal(self, node: Any) -> int | str:
        return _whole_number(self.construct_scalar(node), node.start_mark)


_Constructor.add_constructor(_YAML + "int", _Constructor.construct_decimal)


# -- the fast reader ---------------------------------------------------------------------


def _compiled(rx: Any) -> re.Pattern[str]:
    """ruamel wraps its patterns in a lazy proxy whose every attribute access costs a call."""
    lazy = getattr(rx, "lazy_self", None)
    return lazy() if lazy is not None else rx  # type: ignore[no-any-return]


def _resolver_tables() -> tuple[
    dict[str, list[tuple[Tag, re.Pattern[str]]]], list[tuple[Tag, re.Pattern[str]]]
]:
    """YAML 1.2's implicit resolvers, in ruamel's order, keyed by first character (ruamel adds
    those registered for any character, key None, after them). Our own tags are shared Tag
    objects, so the constructor recognises them by identity."""
    table = Resolver.yaml_implicit_resolvers
    anywhere = table.get(None, [])
    by_first = {
        key: [
            (_TAGS.get(tag.removeprefix(_YAML)) or Tag(suffix=tag), _compiled(rx))
            for tag, rx in [*entries, *anywhere]
        ]
        for key, entries in table.items()
        if key is not None
    }
    return by_first, [(Tag(suffix=tag), _compiled(rx)) for tag, rx in anywhere]


try:
    _RESOLVERS, _PLAIN_STR = _resolver_tables()
except (AttributeError, TypeError, ValueError):  # pragma: no cover - ruamel's internals moved
    _RESOLVERS, _PLAIN_STR, CParser = {}, [], None  # every file goes to ruamel's own loader

_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_BOOLS = {"true": True, "false": False}
_DIRECTIVE = re.compile(r"^%YAML", re.M)

AVAILABLE = CParser is not None


if CParser is not None:

    class _Parser(CParser):  # type: ignore[misc]
        """ruamel's C parser and composer, with a YAML 1.2 resolver that needs no lookups."""

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Tag:
            if kind is ScalarNode:
                if implicit[0]:  # a plain scalar: its type comes from its spelling
                    for tag, regexp in _RESOLVERS.get(value[:1], _PLAIN_STR):
                        if regexp.match(value):
                            return tag
                return _STR
            return _SEQ if kind is SequenceNode else _MAP


def load(text: str) -> Any:
    """The document in ``text`` as plain data; ``Unsupported`` if ruamel must read it instead.

    Only for text that ``check`` accepted: the C composer below recurses per nesting level."""
    if CParser is None or _DIRECTIVE.search(text):
        raise Unsupported
    parser = _Parser(text)
    try:
        node = parser.get_single_node()
    finally:
        parser.dispose()
    return None if node is None else _build(node, set())


def _build(node: Any, seen: set[int]) -> Any:
    tag = node.ctag
    if tag is _STR:
        return node.value
    if tag is _MAP or tag is _SEQ:
        if id(node) in seen:  # an alias: ruamel shares the object, and may loop; leave it to ruamel
            raise Unsupported
        seen.add(id(node))
        if tag is _SEQ:
            return [_build(item, seen) for item in node.value]
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, seen)
            try:
                if key in out:  # ruamel reports duplicate keys: let it
                    raise Unsupported
            except TypeError:  # an unhashable key (a mapping or list)
                raise Unsupported from None
            out[key] = _build(value_node, seen)
        return out
    if tag is _INT:
        return _whole_number(node.value, node.start_mark)
    if tag is _BOOL:
        return _BOOLS[node.value.lower()]
    if tag is _NULL:
        return None
    raise Unsupported
