"""A faster read of plain YAML documents, on ruamel's own C parser.

``YAML(typ="safe", pure=False).load`` spends most of its time in Python, not in C: for every
scalar its versioned resolver looks up the YAML version of the document being read (about
5 µs each, 700,000 times for a 100,000-product catalogue), and its constructor walks each
node through several generic layers. Here the same C parser (``CParser``: libyaml reader,
scanner, parser and composer) is driven with a resolver that uses YAML 1.2's table directly
and a constructor that only knows what manifests contain: mappings, sequences, strings,
integers, booleans and nulls.

Anything else (a ``%YAML`` directive, an explicit tag, a float, a timestamp, a merge key,
an alias to a collection, a duplicate key, a non-decimal integer) makes ``load`` return
``None`` through ``Unsupported`` and the caller reads the file with ruamel's full loader,
so results and errors are ruamel's own. Syntax errors are raised by the shared C parser
and so are the same exceptions either way.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.nodes import ScalarNode, SequenceNode
from ruamel.yaml.resolver import Resolver
from ruamel.yaml.tag import Tag

try:
    from ruamel.yaml.cyaml import CParser
except ImportError:  # pragma: no cover - ruamel.yaml.clib missing (e.g. PyPy): no fast path
    CParser = None

_YAML = "tag:yaml.org,2002:"
_TAGS = {name: Tag(suffix=_YAML + name) for name in ("str", "int", "bool", "null", "seq", "map")}
_STR, _INT, _BOOL, _NULL, _SEQ, _MAP = (_TAGS[n] for n in ("str", "int", "bool", "null", "seq", "map"))


def _compiled(rx: Any) -> re.Pattern[str]:
    """ruamel wraps its patterns in a lazy proxy whose every attribute access costs a call."""
    lazy = getattr(rx, "lazy_self", None)
    return lazy() if lazy is not None else rx  # type: ignore[no-any-return]


def _resolver_tables() -> tuple[dict[str, list[tuple[Tag, re.Pattern[str]]]], list[tuple[Tag, re.Pattern[str]]]]:
    """YAML 1.2's implicit resolvers, in ruamel's order, keyed by first character (ruamel adds
    those registered for any character, key None, after them). Our own tags are shared Tag
    objects, so the constructor recognises them by identity."""
    table = Resolver.yaml_implicit_resolvers
    anywhere = table.get(None, [])
    by_first = {key: [(_TAGS.get(tag.removeprefix(_YAML)) or Tag(suffix=tag), _compiled(rx))
                      for tag, rx in [*entries, *anywhere]]
                for key, entries in table.items() if key is not None}
    return by_first, [(Tag(suffix=tag), _compiled(rx)) for tag, rx in anywhere]


try:
    _RESOLVERS, _PLAIN_STR = _resolver_tables()
except (AttributeError, TypeError, ValueError):  # pragma: no cover - ruamel's internals moved
    _RESOLVERS, _PLAIN_STR, CParser = {}, [], None  # every file goes to ruamel's own loader

_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_BOOLS = {"true": True, "false": False}
_DIRECTIVE = re.compile(r"^%YAML", re.M)

AVAILABLE = CParser is not None


class Unsupported(Exception):
    """The document uses something this reader leaves to ruamel's full loader."""


if CParser is not None:

    class _Parser(CParser):  # type: ignore[misc, valid-type]
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
    """The document in ``text`` as plain data; ``Unsupported`` if ruamel must read it instead."""
    if CParser is None or _DIRECTIVE.search(text):
        raise Unsupported
    parser = _Parser(text)
    try:
        node = parser.get_single_node()
    finally:
        parser.dispose()
    try:
        return None if node is None else _build(node, set())
    except RecursionError:  # absurdly deep nesting: ruamel's loader does not recurse per level
        raise Unsupported from None


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
        if _DECIMAL.fullmatch(node.value):
            return int(node.value)
        raise Unsupported
    if tag is _BOOL:
        return _BOOLS[node.value.lower()]
    if tag is _NULL:
        return None
    raise Unsupported
