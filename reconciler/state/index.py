"""A state read for planning: records validated when the planner needs them, not 100,000 up front.

``plan`` reads every record only to find that almost all of them are rendered at the spec
the manifests still want. Validating a 100,000-product state into pydantic models costs 2 s
and most of a gigabyte; what the planner needs to call a product unchanged is its
``spec_hash`` and ``status``. So a plan read keeps the state's text, an index of where each
record's JSON starts and ends in it, and those two fields; a record becomes a
``ProductRecord`` (validated as ``read`` would) only when the planner asks for it.

The index is built the first time a state is planned, in the same pass that validates every
record (so a damaged state is reported exactly as ``read`` reports it), and kept in the
cache (reconciler/cache.py) under the state's path, confirmed by the sha256 of the state's
bytes: any write, a ``git checkout``, a hand edit gives another hash and a fresh index. An
index the cache cannot prove whole (its payload hash) or made by this release is rebuilt.
The state file's format does not change: ``format_version`` 1, as every other reader
expects.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.state.model import RECORD_ADAPTER, ProductRecord, Status

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_STRING = json.decoder.scanstring  # type: ignore[attr-defined]  # the C scanner; not in typeshed

Span = tuple[int, int]


def _skip(text: str, at: int) -> int:
    """The index after any JSON white space at ``at``."""
    return _WS.match(text, at).end()  # type: ignore[union-attr]  # '*' matches everywhere


class NotScannable(Exception):
    """The text is not a JSON object this scanner follows; the caller reads it the usual way."""


def scan(text: str) -> tuple[dict[str, Any], dict[str, Span]]:
    """``json.loads(text)`` for a state object, plus where each product's record is in ``text``.

    Every value is decoded by json's own C decoder; this only walks the two object levels
    around them. Duplicate keys keep the last, as ``json.loads`` does."""
    try:
        return _scan(text)
    except (ValueError, IndexError) as exc:
        raise NotScannable(str(exc)) from exc


def _scan(text: str) -> tuple[dict[str, Any], dict[str, Span]]:
    at = _skip(text, 0)
    if text[at] != "{":
        raise NotScannable("not an object")
    top: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    at = _skip(text, at + 1)
    if text[at] == "}":
        return top, spans
    while True:
        if text[at] != '"':
            raise NotScannable("expected a key")
        key, at = _STRING(text, at + 1)
        at = _skip(text, at)
        if text[at] != ":":
            raise NotScannable("expected ':'")
        at = _skip(text, at + 1)
        if key == "products" and text[at] == "{":
            top[key], at = _products(text, at, spans)
        else:
            top[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text[at] == "}":
            if _skip(text, at + 1) != len(text):
                raise NotScannable("text after the object")
            return top, spans
        if text[at] != ",":
            raise NotScannable("expected ',' or '}'")
        at = _skip(text, at + 1)


def _products(text: str, at: int, spans: dict[str, Span]) -> tuple[dict[str, Any], int]:
    decode, string = _DECODER.raw_decode, _STRING
    products: dict[str, Any] = {}
    spans.clear()  # a second "products" key replaces the first, as in json.loads
    at = _skip(text, at + 1)
    if text[at] == "}":
        return products, at + 1
    while True:
        if text[at] != '"':
            raise NotScannable("expected a product key")
        key, at = string(text, at + 1)
        at = _skip(text, at)
        if text[at] != ":":
            raise NotScannable("expected ':'")
        start = _skip(text, at + 1)
        products[key], at = decode(text, start)
        spans[key] = (start, at)
        at = _skip(text, at)
        if text[at] == "}":
            return products, at + 1
        if text[at] != ",":
            raise NotScannable("expected ',' or '}'")
        at = _skip(text, at + 1)


_WRITTEN = re.compile(r'\n  "([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})": \{')
"""A product's key as ``State.to_json`` writes it (indent 1: products' keys two spaces in). JSON
text holds no raw newline inside a string, and deeper keys are indented further."""


def written_spans(text: str, keys: list[str]) -> dict[str, Span] | None:
    """Where each record is in a state laid out as the store writes it, found by one regular
    expression instead of decoding each record apart (which keeps a copy of every key string
    per record: 190 MB at 10^5). None unless the records found are exactly ``keys`` (the parsed
    state's products), in order: another layout is then ``scan``'s."""
    found = list(_WRITTEN.finditer(text))
    if len(found) != len(keys):
        return None
    nexts = [m.start() for m in found[1:]] + [len(text)] if found else []
    spans: dict[str, Span] = {}
    for m, after, key in zip(found, nexts, keys, strict=True):
        if m.group(1) != key:
            return None
        start = m.end() - 1
        end = text.rfind("\n  }", start, after)  # the record's own closing brace, two spaces in
        if end < 0:
            return None
        spans[key] = (start, end + 4)
    return spans


class LazyRecords(Mapping[str, ProductRecord]):
    """The state's records by uuid, each validated from its JSON in the state's text on first use.

    Read-only: a plan never writes the state. ``unchanged`` answers "is it rendered at this
    spec" without building any record."""

    def __init__(
        self,
        text: str | bytes,
        uuids: list[str],
        spans: array[int],
        hashes: list[str],
        hash_of: array[int],
        statuses: list[Status],
        status_of: array[int],
    ) -> None:
        self._text, self._spans = text, spans
        self._hashes, self._hash_of = hashes, hash_of
        self._statuses, self._status_of = statuses, status_of
        self._uuids = uuids
        self._at = dict(zip(uuids, range(len(uuids)), strict=True))
        self._built: dict[str, ProductRecord] = {}
        self._unchanged: dict[str, str] | None = None

    def __getitem__(self, uuid: str) -> ProductRecord:
        record = self._built.get(uuid)
        if record is None:
            i = self._at[uuid]
            # As ``read`` validates: json first, then the model (strictness differs in JSON mode).
            raw = json.loads(self._text[self._spans[2 * i] : self._spans[2 * i + 1]])
            record = RECORD_ADAPTER.validate_python(raw)
            self._built[uuid] = record
        return record

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._at

    def unchanged(self) -> dict[str, str]:
        """``spec_hash`` by uuid of the records that are rendered and record every file their
        spec renders (``not missing_kinds()``): what a plan calls unchanged when the manifests
        still want that hash. Made once, in C loops but for the records it leaves out."""
        if self._unchanged is None:
            ready = dict(zip(self._uuids, map(self._hashes.__getitem__, self._hash_of), strict=True))
            rendered = self._statuses.index(Status.RENDERED) if Status.RENDERED in self._statuses else None
            others = re.compile(
                b"[^%s]" % re.escape(bytes([rendered])) if rendered is not None else b".", re.S
            )
            for found in others.finditer(self._status_of.tobytes()):
                del ready[self._uuids[found.start()]]
            self._unchanged = ready
        return self._unchanged


class PlanState:
    """What ``build_plan`` reads of a state: its lineage, serial and records, here lazy."""

    def __init__(self, lineage: str, serial: int, products: LazyRecords) -> None:
        self.lineage, self.serial, self.products = lineage, serial, products


_STATUSES = list(Status)
_LACKING = 0x80  # in a status byte: the record lacks a file its spec renders


def index_payload(
    products: Mapping[str, ProductRecord], spans: dict[str, Span]
) -> tuple[bytes, dict[str, Any]]:
    """The cache entry for a validated state: uuids, spans, spec hashes and statuses, packed."""
    uuids = list(products)
    hashes: dict[str, int] = {}
    hash_of, status_of, flat = array("I"), array("B"), array("Q")
    status_at = {s: i for i, s in enumerate(_STATUSES)}
    for uuid, record in products.items():
        h = hashes.setdefault(record.spec_hash, len(hashes))
        hash_of.append(h)
        status_of.append(status_at[record.status] | (_LACKING if record.missing_kinds() else 0))
        flat.extend(spans[uuid])
    names = "".join(u + "\n" for u in uuids).encode("ascii")
    extra = {"count": len(uuids), "hashes": list(hashes), "statuses": [s.value for s in _STATUSES]}
    return names + flat.tobytes() + hash_of.tobytes() + status_of.tobytes(), extra


def from_payload(text: str | bytes, payload: bytes, header: dict[str, Any]) -> LazyRecords | None:
    """The records of a state whose index the cache holds; None if the entry does not add up.
    ``text``: the state's text, or its bytes when they are ASCII (the same offsets)."""
    try:
        n, hashes = header["count"], header["hashes"]
        statuses = [Status(s) for s in header["statuses"]]
        if type(n) is not int or not isinstance(hashes, list) or not all(type(h) is str for h in hashes):
            return None
        names_end = 37 * n
        flat, hash_of, status_of = array("Q"), array("I"), array("B")
        spans_end = names_end + 16 * n
        flat.frombytes(payload[names_end:spans_end])
        hash_of.frombytes(payload[spans_end : spans_end + 4 * n])
        status_of.frombytes(payload[spans_end + 4 * n :])
        uuids = payload[:names_end].decode("ascii").split("\n")[:-1]
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        return None
    if not (
        len(uuids) == n == len(hash_of) == len(status_of)
        and len(flat) == 2 * n
        and (not n or max(hash_of) < len(hashes))
        and set(status_of) <= {s | flag for s in range(len(statuses)) for flag in (0, _LACKING)}
        and (not n or max(flat) <= len(text))
    ):
        return None
    return LazyRecords(text, uuids, flat, hashes, hash_of, statuses, status_of)
