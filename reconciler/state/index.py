"""A state read for planning: records validated when the planner needs them, not 100,000 up front.

``plan`` reads every record only to find that almost all of them are rendered at the spec
the manifests still want. Validating a 100,000-product state into pydantic models costs 2 s
and most of a gigabyte; what the planner needs to call a product unchanged is its
``spec_hash`` and ``status``. So a plan read keeps the state's bytes, an index of where each
record's JSON starts and ends in them (byte offsets), and those two fields; a record becomes a
``ProductRecord`` (validated as ``read`` would) only when the planner asks for it.

The index is built the first time a state is planned, in the pass that checks every record
(msgspec's structs of reconciler.state.check for a state laid out as the store writes it,
else pydantic's models as ``read`` builds them), so a damaged state is reported exactly as
``read`` reports it; it is kept in the cache (reconciler/cache.py) under the state's path,
confirmed by the sha256 of the state's bytes: any write, a ``git checkout``, a hand edit
gives another hash and a fresh index. An index the cache cannot prove whole (its payload
hash) or made by another release is rebuilt. The state file's format does not change:
``format_version`` 1, as every other reader expects.
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


_BETWEEN = re.compile(rb'\n  \},\n  "')  # a record's closing brace, the comma, the next product's key
_LAST = b"\n  }\n }\n}"  # the last record's closing brace, then products' and the state's
_KEYS = re.compile(rb'(?:\n  "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}": \{)*')
_KEY_LINE = 44  # the bytes of '\n  "<uuid>": {'


def written_records(data: bytes) -> tuple[bytes, list[str], array[int]] | None:
    """A state's bytes as ``State.to_json`` lays them out, cut at the records: the head (the
    top-level keys up to the brace that opens ``products``), the products' uuids in order, and
    each record's start and end (byte offsets, two a record); None for any other layout, or a
    product key given twice.

    Every byte outside the records is the layout's own punctuation (checked: a key
    ``\n  "<uuid>": ``, a comma between records, the closing braces), so the whole text is a
    JSON object exactly when ``head + b"}}"`` decodes as one with ``products`` its last, empty,
    member and each record decodes as one JSON value; what ``json.loads`` makes of it is then
    those values (a key of the head given twice keeps the last, as json does). Found by one
    regular expression for what stands between two records and one for all the keys at once,
    not by decoding and not by a Python step per byte: 144 MB in a fifth of a second, and a few
    bytes a record beyond the text. (JSON text has no raw newline inside a string, and only
    products' keys and braces start a line two spaces in.)"""
    first = data.find(b'\n  "')
    head = data[:first]
    last = data.rfind(_LAST)
    if first < 0 or not head.endswith(b"{") or last < first or data[last + len(_LAST) :].strip(b" \t\n\r"):
        return None
    ends = array("Q", [m.start() + 4 for m in _BETWEEN.finditer(data, first, last)])
    starts = array("Q", [first])  # where each key's line begins: the first, then past each comma
    starts.extend([end + 1 for end in ends])
    ends.append(last + 4)
    keys = b"".join([data[at : at + _KEY_LINE] for at in starts])
    if _KEYS.fullmatch(keys) is None:  # each a product key, with the opening brace of its record
        return None
    text = keys.decode("ascii")
    del keys
    uuids = [text[at + 4 : at + 40] for at in range(0, len(text), _KEY_LINE)]
    if len(set(uuids)) != len(uuids):
        return None
    spans = array("Q", bytes(16 * len(uuids)))
    spans[0::2] = array("Q", [at + _KEY_LINE - 1 for at in starts])  # each record's opening brace
    spans[1::2] = ends
    return head, uuids, spans


def byte_spans(text: str, spans: dict[str, Span]) -> dict[str, Span]:
    """``spans`` into ``text`` as offsets into its UTF-8 bytes (what ``LazyRecords`` slices), in
    one pass over the text."""
    if text.isascii():
        return spans
    at, pos, where = 0, 0, {0: 0}
    for point in sorted({p for span in spans.values() for p in span}):
        pos += len(text[at:point].encode("utf-8"))
        where[point], at = pos, point
    return {key: (where[a], where[b]) for key, (a, b) in spans.items()}


class LazyRecords(Mapping[str, ProductRecord]):
    """The state's records by uuid, each validated from its JSON in the state's bytes on first use.

    Read-only: a plan never writes the state. ``unchanged`` answers "is it rendered at this
    spec" without building any record."""

    def __init__(
        self,
        data: bytes,
        uuids: list[str],
        spans: array[int],
        hashes: list[str],
        hash_of: array[int],
        statuses: list[Status],
        status_of: array[int],
    ) -> None:
        self._data, self._spans = data, spans
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
            raw = json.loads(self._data[self._spans[2 * i] : self._spans[2 * i + 1]])
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


class IndexBuilder:
    """The cache entry of a checked state, made one record at a time: the uuids and spans, then
    each record's spec hash and status, packed (a few bytes a record, whatever its size)."""

    def __init__(self, uuids: list[str], spans: array[int]) -> None:
        """``spans``: each record's start and end in the state's bytes, in the order of ``uuids``."""
        self._uuids, self._flat = uuids, spans
        self._hashes: dict[str, int] = {}
        self._hash_of, self._status_of = array("I"), array("B")
        self._status_at = {s: i for i, s in enumerate(_STATUSES)}

    def add(self, spec_hash: str, status: Status, lacking: bool) -> None:
        """The next record's spec hash, status, and whether it lacks a file its spec renders."""
        self._hash_of.append(self._hashes.setdefault(spec_hash, len(self._hashes)))
        self._status_of.append(self._status_at[status] | (_LACKING if lacking else 0))

    def payload(self) -> tuple[bytes, dict[str, Any]]:
        """The entry's payload and the facts its header carries (``from_payload`` reads both)."""
        assert len(self._status_of) == len(self._uuids), "a record without its facts"
        names = "".join(u + "\n" for u in self._uuids).encode("ascii")
        extra = {
            "count": len(self._uuids),
            "hashes": list(self._hashes),
            "statuses": [s.value for s in _STATUSES],
        }
        return names + self._flat.tobytes() + self._hash_of.tobytes() + self._status_of.tobytes(), extra

    def records(self, data: bytes) -> LazyRecords:
        """The records of ``data`` (the state's bytes) as this index finds them."""
        return LazyRecords(
            data,
            self._uuids,
            self._flat,
            list(self._hashes),
            self._hash_of,
            list(_STATUSES),
            self._status_of,
        )


def index_payload(
    products: Mapping[str, ProductRecord], spans: dict[str, Span]
) -> tuple[bytes, dict[str, Any]]:
    """The cache entry for a validated state; ``spans``: byte offsets of each record."""
    uuids = list(products)
    flat = array("Q")
    for uuid in uuids:
        flat.extend(spans[uuid])
    index = IndexBuilder(uuids, flat)
    for record in products.values():
        index.add(record.spec_hash, record.status, bool(record.missing_kinds()))
    return index.payload()


def from_payload(data: bytes, payload: bytes, header: dict[str, Any]) -> LazyRecords | None:
    """The records of a state whose index the cache holds; None if the entry does not add up.
    ``data``: the state's bytes, which the spans are offsets into."""
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
        and (not n or max(flat) <= len(data))
    ):
        return None
    return LazyRecords(data, uuids, flat, hashes, hash_of, statuses, status_of)
