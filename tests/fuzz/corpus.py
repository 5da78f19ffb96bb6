"""Hostile manifests and damaged state files, and a runner that feeds them to the real CLI
in a child process under resource limits.

Each hand-written case is a function that lays its files out in an empty folder: the issue's
reproductions (nested anchors, deep nesting, huge numbers, odd keys, a FIFO, /dev/zero, ...)
and their neighbours. The tests add hypothesis-generated documents to them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.catalogue import DEFAULTS

MEMORY_CEILING = 1024 * 2**20
"""RLIMIT_AS of the child: 1 GiB of address space. Python with the CLI imported maps about
300 MiB; the unguarded billion-laughs manifest took 7.3 GB."""

CPU_SECONDS = 120
"""RLIMIT_CPU of the child, for a whole batch: SIGXCPU ends a case that would spin."""

DRIVER = Path(__file__).with_name("driver.py")

A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "393f8b64-b960-5375-b254-484ff9c12e30"

VALID = (
    DEFAULTS
    + f"products:\n  - uuid: {A}\n    name: Trail Runner\n  - uuid: {B}\n    turntable:\n      includeGif: true\n"
)

Layout = Callable[[Path], None]


def _text(text: str, name: str = "a.yaml") -> Layout:
    def lay(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return lay


def _bytes(data: bytes, name: str = "a.yaml") -> Layout:
    def lay(folder: Path) -> None:
        (folder / name).write_bytes(data)

    return lay


def _laughs(levels: int, fanout: int, where: str) -> str:
    anchors = [f"  x0: &l0 [{', '.join(['lol'] * fanout)}]"]
    anchors += [f"  x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]" for i in range(1, levels)]
    last = f"*l{levels - 1}"
    if where == "top":  # the anchors are unknown top-level keys
        return "\n".join(a.strip() for a in anchors) + "\n"
    if where == "defaults":
        return DEFAULTS + "\n".join(anchors) + f"\nproducts:\n  - uuid: {A}\n"
    if where == "override":  # the issue's case: anchors in defaults, a product override aliases the last
        return (
            DEFAULTS + "\n".join(anchors) + f"\nproducts:\n  - uuid: {A}\n    turntable: {{junk: {last}}}\n"
        )
    if where == "name":
        return DEFAULTS + "\n".join(anchors) + f"\nproducts:\n  - uuid: {A}\n    name: {last}\n"
    return DEFAULTS.replace("imageWidth: 1200", f"imageWidth: {last}") + "\n".join(anchors) + "\n"


def _deep_flow(n: int, open_: str = "[", close: str = "]") -> str:
    return DEFAULTS + f"products:\n  - uuid: {A}\n    name: " + open_ * n + close * n + "\n"


def _deep_block(n: int) -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "v\n"


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "a.yaml")


def _devzero(folder: Path) -> None:
    (folder / "a.yaml").symlink_to("/dev/zero")


def _dangling(folder: Path) -> None:
    (folder / "a.yml").symlink_to(folder / "nowhere.yaml")


def _oversize(folder: Path) -> None:
    with (folder / "a.yaml").open("wb") as fh:
        fh.write(VALID.encode())
        fh.write(b"# " + b"x" * (16 * 2**20) + b"\n")


def _dense(folder: Path) -> None:
    """A flat list of 3.5 million one-letter items in 7 MB: past the node budget, never composed."""
    with (folder / "a.yaml").open("w") as fh:
        fh.write("[" + "a," * 3_500_000 + "a]\n")


def _many_errors(folder: Path) -> None:
    (folder / "a.yaml").write_text(
        DEFAULTS + "products:\n" + "".join(f"  - uuid: nope{i}\n" for i in range(10_000))
    )


def _many_files(folder: Path) -> None:
    for i in range(30):
        (folder / f"part{i:02}.yaml").write_text(DEFAULTS + f"products:\n  - uuid: bad-{i}\n")


SPEC = DEFAULTS.removeprefix("defaults:\n")


def _preset_chain(n: int, spread: int = 1) -> Layout:
    """``n`` presets, each building on the next, the last a whole spec, over ``spread`` files;
    a product names the first."""

    def lay(folder: Path) -> None:
        per = -(-n // spread)
        for f in range(spread):
            body = "".join(
                f"  p{i}:\n    preset: p{i + 1}\n" for i in range(f * per, min(n - 1, (f + 1) * per))
            )
            if f == spread - 1:
                body += f"  p{n - 1}:\n" + "".join("  " + line + "\n" for line in SPEC.splitlines())
            (folder / f"presets{f:03}.yaml").write_text("presets:\n" + body)
        (folder / "a.yaml").write_text(f"products:\n  - uuid: {A}\n    preset: p0\n")

    return lay


def _presets_wide(n: int, depth: int) -> Layout:
    """A valid catalogue: ``n`` presets in chains of ``depth``, a product on each."""

    def lay(folder: Path) -> None:
        text = "presets:\n  base:\n" + "".join("  " + line + "\n" for line in SPEC.splitlines())
        for i in range(n):
            text += f"  p{i}:\n    preset: {'base' if i % depth == 0 else f'p{i - 1}'}\n    imageWidth: {100 + i % 5000}\n"
        (folder / "presets.yaml").write_text(text)
        uuids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n)]
        (folder / "b.yaml").write_text(
            "products:\n" + "".join(f"  - uuid: {u}\n    preset: p{i}\n" for i, u in enumerate(uuids))
        )

    return lay


def _unknown_presets(folder: Path) -> None:
    (folder / "a.yaml").write_text(
        "presets:\n"
        + "".join(f"  known{i}: {{}}\n" for i in range(1000))
        + "products:\n"
        + "".join(
            f"  - uuid: {i:08x}-0000-4000-8000-{i:012x}\n    preset: known{i}x\n" for i in range(10_000)
        )
    )


HOSTILE_MANIFESTS: dict[str, Layout] = {
    # Presets: chains are walked without recursion and capped; circles and unknown names are located.
    "preset_chain_10000": _preset_chain(10_000),
    "preset_chain_100000_in_50_files": _preset_chain(100_000, spread=50),
    "preset_circle": _text(
        DEFAULTS + "presets:\n  a:\n    preset: b\n  b:\n    preset: c\n  c:\n    preset: a\n"
        f"products:\n  - uuid: {A}\n    preset: b\n"
    ),
    "preset_self": _text(f"presets:\n  me:\n    preset: me\nproducts:\n  - uuid: {A}\n    preset: me\n"),
    "preset_circle_in_defaults": _text(
        "presets:\n  a:\n    preset: a\ndefaults:\n  preset: a\nproducts:\n"
        + "".join(f"  - uuid: {i:08x}-0000-4000-8000-{i:012x}\n" for i in range(3000))
    ),
    "preset_unknown": _text(
        DEFAULTS + f"presets:\n  hero:\n    imageWidth: 2400\nproducts:\n  - uuid: {A}\n    preset: heor\n"
    ),
    "preset_unknown_many": _unknown_presets,
    "preset_twice": lambda folder: (
        [(folder / n).write_text("presets:\n  x:\n    imageWidth: 1\n") for n in ("a.yaml", "b.yaml")]
        and None
    ),
    "preset_alias_circle": _text("presets: &p\n  a:\n    preset: *p\n"),
    "preset_laughs": _text(
        "presets:\n" + "\n".join(a.replace("  x", "  p") for a in _laughs(10, 10, "top").splitlines()) + "\n"
    ),
    "preset_laughs_ref": _text(
        "presets:\n  l0: &l0 ["
        + ", ".join(["lol"] * 10)
        + "]\n"
        + "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
        + f"products:\n  - uuid: {A}\n    preset: *l9\n"
    ),
    "preset_deep_flow": _text("presets:\n  x:\n    turntable: " + "[" * 5000 + "]" * 5000 + "\n"),
    "preset_huge_name": _text(
        "presets:\n  ? " + "p" * 1_000_000 + f"\n  : {{}}\nproducts:\n  - uuid: {A}\n"
        "    preset: " + "p" * 999_999 + "\n"
    ),
    "preset_megabyte_name_bad_field": _text("presets:\n  ? " + "p" * 1_000_000 + "\n  : {imagewidth: 1}\n"),
    "preset_many_names": _text(
        "presets:\n"
        + "".join(f"  preset-number-{i}: {{}}\n" for i in range(100_000))
        + "products:\n"
        + "".join(
            f"  - uuid: {i:08x}-0000-4000-8000-{i:012x}\n    preset: preset-numbr-{i}\n" for i in range(2000)
        )
    ),
    "preset_list_key": _text("presets:\n  ? [1, 2]\n  : {}\n"),
    "preset_ref_mapping": _text(
        f"presets:\n  x:\n    preset: {{a: 1}}\nproducts:\n  - uuid: {A}\n    preset: x\n"
    ),
    "preset_bad_value": _text(
        f"presets:\n  x:\n{SPEC.replace('imageCount: 36', 'imageCount: 9999')}".replace(
            "\n  ", "\n    "
        ).replace("presets:\n    x:", "presets:\n  x:")
        + "products:\n"
        + "".join(f"  - uuid: {i:08x}-0000-4000-8000-{i:012x}\n    preset: x\n" for i in range(5000))
    ),
    "presets_wide_fine": _presets_wide(20_000, 10),
    # Aliases: expanded wherever the data is walked.
    "laughs_override": _text(_laughs(10, 10, "override")),
    "laughs_top": _text(_laughs(10, 10, "top")),
    "laughs_defaults": _text(_laughs(9, 10, "defaults")),
    "laughs_name": _text(_laughs(8, 12, "name")),
    "laughs_value": _text(_laughs(9, 9, "value")),
    "laughs_wide": _text(
        DEFAULTS
        + "big: &b "
        + "x" * 200_000
        + "\nproducts:\n  - uuid: "
        + A
        + "\n    turntable: {junk: ["
        + ", ".join(["*b"] * 2000)
        + "]}\n"
    ),
    "merge_key_cycle": _text("base: &b\n  <<: *b\n  a: 1\n"),
    "alias_cycle": _text(DEFAULTS + "products: &p\n  - uuid: " + A + "\n    turntable: {junk: *p}\n"),
    "alias_unknown": _text(DEFAULTS + "products:\n  - uuid: *nope\n"),
    "merge_keys_fine": _text(
        "x: &d\n  imageWidth: 1200\n  imageHeight: 1200\n  imageFormat: PNG\n"
        "  turntable: {includeGif: false, imageCount: 36, frameRate: 12, width: 720, height: 720}\n"
        f"products:\n  - uuid: {A}\n    <<: *d\n"
    ),
    # Nesting: RecursionError near 1,000 levels, a segfault of the C composer near 50,000.
    "deep_flow_1000": _text(_deep_flow(1000)),
    "deep_flow_50000": _text(_deep_flow(50_000)),
    "deep_flow_maps_50000": _text(
        DEFAULTS + f"products:\n  - uuid: {A}\n    name: " + "{a: " * 50_000 + "b" + "}" * 50_000 + "\n"
    ),
    "deep_block_2000": _text(_deep_block(2000)),
    "deep_compact_2000": _text("- " * 2000 + "x\n"),
    "deep_cr_breaks": _text("".join(" " * i + f"k{i}:\r" for i in range(500)) + " " * 500 + "v\r"),
    "deep_nel_breaks": _text("".join(" " * i + f"k{i}:\u0085" for i in range(500)) + " " * 500 + "v\u0085"),
    "deep_quoted_closers": _text("a: [" + '"]]]]]]]]", [' * 3000 + "x" + "]" * 3000 + "]\n"),
    "deep_unclosed": _text("a: " + "[" * 100_000 + "\n"),
    "deep_override": _text(
        DEFAULTS
        + f"products:\n  - uuid: {A}\n    turntable:\n      includeGif: "
        + "[" * 900
        + "]" * 900
        + "\n"
    ),
    # Values.
    "huge_int": _text(
        DEFAULTS.replace("imageWidth: 1200", "imageWidth: " + "9" * 5000) + f"products:\n  - uuid: {A}\n"
    ),
    "huge_int_4000": _text(
        DEFAULTS.replace("imageWidth: 1200", "imageWidth: " + "9" * 4000) + f"products:\n  - uuid: {A}\n"
    ),
    "huge_int_via_ruamel": _text(
        DEFAULTS.replace("imageWidth: 1200", "imageWidth: " + "9" * 5000)
        + f"products:\n  - uuid: {A}\n    name: 1.5\n"
    ),
    "huge_negative_int": _text(
        DEFAULTS + f"products:\n  - uuid: {A}\n    imageHeight: -" + "1" * 9000 + "\n"
    ),
    "huge_string": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    imageFormat: " + "P" * 2_000_000 + "\n"),
    "huge_key": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    " + "k" * 1_000_000 + ": 1\n"),
    "int_key_in_override": _text(
        DEFAULTS + f"products:\n  - uuid: {A}\n    turntable: {{1: 2, includeGif: true}}\n"
    ),
    "null_key_in_override": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    turntable: {{null: 2, ~: 3}}\n"),
    "list_key": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    ? [1, 2]\n    : x\n"),
    "bool_keys_top": _text("true: 1\nfalse: 2\n1: 3\n"),
    "uuid_block_scalar": _text(DEFAULTS + f"products:\n  - uuid: |\n      {A}\n"),
    "uuid_folded_spaces": _text(DEFAULTS + f'products:\n  - uuid: "  {A} "\n'),
    "uuid_as_list": _text(DEFAULTS + f"products:\n  - uuid: [{A}]\n"),
    "underscore_int": _text(
        DEFAULTS.replace("imageWidth: 1200", "imageWidth: 1_200") + f"products:\n  - uuid: {A}\n"
    ),
    "hex_int": _text(
        DEFAULTS.replace("imageWidth: 1200", "imageWidth: 0x4B0") + f"products:\n  - uuid: {A}\n"
    ),
    "octal_int": _text(DEFAULTS.replace("frameRate: 12", "frameRate: 0o14") + f"products:\n  - uuid: {A}\n"),
    "plus_int": _text(DEFAULTS.replace("imageCount: 36", "imageCount: +36") + f"products:\n  - uuid: {A}\n"),
    "bad_timestamp": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    name: 2026-13-45\n"),
    "bad_float_tag": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    imageWidth: !!float abc\n"),
    "bad_int_tag": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    imageWidth: !!int abc\n"),
    "binary_tag": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    name: !!binary '@@@'\n"),
    "set_tag": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    turntable: !!set {{a, b}}\n"),
    "python_tag": _text("!!python/object/apply:os.system ['true']\n"),
    "nan_inf": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    imageWidth: .nan\n    imageHeight: -.inf\n"),
    "tt_too_large": _text(
        DEFAULTS.replace("imageCount: 36", "imageCount: 720")
        .replace("width: 720", "width: 4096")
        .replace("height: 720", "height: 4096")
        + f"products:\n  - uuid: {A}\n"
    ),
    "tt_too_large_override": _text(
        DEFAULTS + f"products:\n  - uuid: {A}\n    turntable: {{imageCount: 720, "
        "width: 4096, height: 4096}\n"
    ),
    # Files.
    "fifo": _fifo,
    "devzero": _devzero,
    "dangling_symlink": _dangling,
    "oversize": _oversize,
    "dense_nodes": _dense,
    "latin1": _bytes((DEFAULTS + f"products:\n  - uuid: {A}\n    name: Caf\xe9\n").encode("latin-1")),
    "utf16": _bytes(VALID.encode("utf-16")),
    "nul_bytes": _bytes(VALID.encode() + b"\x00\x00\x00"),
    "control_chars": _text(VALID + "  - uuid: \x07\x1b[31m\n"),
    "bom_then_deep": _bytes(b"\xef\xbb\xbf" + ("- " * 3000 + "x\n").encode()),
    "many_errors": _many_errors,
    "many_files": _many_files,
    "empty_dir_named_yaml": lambda folder: (folder / "dir.yaml").mkdir(),
    # Syntax.
    "merge_conflict": _text(
        VALID.replace("  - uuid: " + B, "<<<<<<< HEAD\n  - uuid: " + B + "\n=======\n>>>>>>> x")
    ),
    "tabs": _text("defaults:\n\timageWidth: 1\n"),
    "multi_document": _text(VALID + "---\n" + VALID),
    "directive_11": _text("%YAML 1.1\n---\n" + VALID.replace("false", "no")),
    "directive_bad": _text("%YAML 9.9\n---\n" + VALID),
    "only_scalar": _text("just text\n"),
    "only_list": _text("- 1\n- 2\n"),
    "products_scalar": _text(DEFAULTS + "products: 5\n"),
    "defaults_list": _text("defaults: [1, 2]\nproducts: []\n"),
    "duplicate_keys": _text(DEFAULTS + f"products:\n  - uuid: {A}\n    uuid: {B}\n"),
    "duplicate_uuid_many": _text(DEFAULTS + "products:\n" + f"  - uuid: {A}\n" * 3000),
    "unicode_names": _text(VALID.replace("Trail Runner", '"\U0001f45f \u202e\u0000"')),
    "valid": _text(VALID),
}


# -- damaged states ------------------------------------------------------------------------------

LINEAGE = "5c1b8a4e-0000-4000-8000-000000000000"
RECORD: dict[str, Any] = {
    "name": "x",
    "spec": {
        "imageWidth": 1200,
        "imageHeight": 1200,
        "imageFormat": "PNG",
        "imageBackground": None,
        "transparentBackground": False,
        "turntable": {
            "includeGif": False,
            "imageCount": 36,
            "frameRate": 12,
            "width": 720,
            "height": 720,
            "background": None,
            "transparentBackground": False,
        },
    },
    "spec_hash": "0" * 64,
    "status": "rendered",
    "attachments": [
        {
            "kind": "still",
            "uuid": "att-1",
            "name": "s.png",
            "sha256": "a" * 64,
            "size": 10,
            "content_type": "image/png",
        }
    ],
    "updated_at": "2026-01-01T00:00:00Z",
}


def state_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"format_version": 1, "serial": 3, "lineage": LINEAGE, "products": {A: RECORD}}
    data.update(changes)
    return data


def _state(data: Any, journal: str | None = None) -> Layout:
    def lay(folder: Path) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        (folder / "renders.state.json").write_bytes(raw)
        if journal is not None:
            (folder / "renders.state.json.journal").write_text(journal)

    return lay


def _record(**changes: Any) -> dict[str, Any]:
    return state_json(products={A: {**RECORD, **changes}})


def _state_fifo(folder: Path) -> None:
    os.mkfifo(folder / "renders.state.json")


def _state_devzero(folder: Path) -> None:
    (folder / "renders.state.json").symlink_to("/dev/zero")


def _journal_line(**changes: Any) -> str:
    entry = {"serial": 4, "lineage": LINEAGE, "product": A, "record": RECORD}
    entry.update(changes)
    return json.dumps(entry) + "\n"


DAMAGED_STATES: dict[str, Layout] = {
    "deep_100000": _state(b'{"products": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
    "deep_900_in_spec": _state(
        json.dumps(_record(spec={"imageWidth": 1}))
        .encode()
        .replace(b'"imageWidth": 1', b'"imageWidth": ' + b"[" * 900 + b"]" * 900)
    ),
    "deep_unclosed": _state(b"[" * 200_000),
    "key_not_uuid": _state(state_json(products={"not-a-uuid": RECORD})),
    "key_upper_case": _state(state_json(products={A.upper(): RECORD})),
    "key_with_newline": _state(state_json(products={A + "\n": RECORD})),
    "serial_negative": _state(state_json(serial=-1)),
    "serial_string": _state(state_json(serial="3")),
    "serial_bool": _state(state_json(serial=True)),
    "serial_float": _state(state_json(serial=3.0)),
    "serial_huge": _state(b'{"format_version": 1, "serial": ' + b"9" * 5000 + b', "lineage": "x"}'),
    "version_string": _state(state_json(format_version="1")),
    "version_zero": _state(state_json(format_version=0)),
    "version_newer": _state(state_json(format_version=2)),
    "version_newer_string": _state(state_json(format_version="2")),
    "top_list": _state([1, 2, 3]),
    "top_null": _state(b"null"),
    "empty_file": _state(b""),
    "truncated": _state(json.dumps(state_json()).encode()[:57]),
    "not_utf8": _state(json.dumps(state_json()).encode().replace(b'"x"', b'"\xe9"')),
    "utf16": _state(json.dumps(state_json()).encode("utf-16")),
    "nul_bytes": _state(b"\x00" * 64),
    "spec_turntable_scalar": _state(_record(spec={"turntable": 5})),
    "spec_list": _state(_record(spec=[1, 2])),
    "spec_extra_key": _state(_record(spec={"imageWidth": 1, "junk": {"a": [1]}})),
    "spec_width_text": _state(_record(spec={"imageWidth": "1200"})),
    "status_unknown": _state(_record(status="exploded")),
    "attachments_not_list": _state(_record(attachments={"a": 1})),
    "attachment_size_negative": _state(_record(attachments=[{**RECORD["attachments"][0], "size": -5}])),
    "attachment_size_text": _state(_record(attachments=[{**RECORD["attachments"][0], "size": "10"}])),
    "products_list": _state(state_json(products=[RECORD])),
    "record_null": _state(state_json(products={A: None})),
    "unknown_top_key": _state(state_json(surprise=True)),
    "nan": _state(b'{"format_version": 1, "serial": NaN, "lineage": "x", "products": {}}'),
    "duplicate_keys": _state(b'{"serial": 1, "serial": 2, "lineage": "x", "products": {}, "products": []}'),
    "fifo": _state_fifo,
    "devzero": _state_devzero,
    "journal_garbage": _state(state_json(), journal="not json\n"),
    "journal_deep": _state(state_json(), journal="[" * 50_000 + "\n"),
    "journal_other_lineage": _state(state_json(), journal=_journal_line(lineage="someone-else")),
    "journal_key_not_uuid": _state(state_json(), journal=_journal_line(product="p1")),
    "journal_gap": _state(state_json(), journal=_journal_line(serial=9)),
    "journal_serial_bool": _state(state_json(), journal=_journal_line(serial=True)),
    "journal_bad_record": _state(state_json(), journal=_journal_line(record={"status": 5})),
    "journal_spec_scalar_turntable": _state(
        state_json(), journal=_journal_line(record={**RECORD, "spec": {"turntable": "x"}})
    ),
}


def paths_in(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into nested dicts and lists (keys and indexes), the empty one first: where a
    generated damage may land."""
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            found += paths_in(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += paths_in(v, prefix + (i,))
    return found


def lay_out(cases: dict[str, Layout], root: Path) -> dict[str, Path]:
    """One folder per case under ``root``."""
    folders = {}
    for name, lay in cases.items():
        folder = root / name
        folder.mkdir(parents=True)
        lay(folder)
        folders[name] = folder
    return folders


def limited() -> None:
    """preexec_fn of a child: the memory ceiling and the CPU limit."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


@dataclass
class Batch:
    """What the child reported: each case's outcome, its exit status, stderr and peak RSS."""

    results: dict[str, dict[str, Any]]
    returncode: int
    stderr: str
    peak_mib: float

    def last_case(self) -> str:
        announced = [line for line in self.stderr.splitlines() if line.startswith("case ")]
        return announced[-1][5:] if announced else "(none)"


def run_batch(kind: str, root: Path) -> Batch:
    """Run the driver on the case folders under ``root`` in one child with the limits."""
    proc = subprocess.run(
        [sys.executable, str(DRIVER), kind, str(root)],
        capture_output=True,
        text=True,
        preexec_fn=limited,
        timeout=CPU_SECONDS * 2,
        check=False,
    )
    results: dict[str, dict[str, Any]] = {}
    peak = 0.0
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        if item.get("done"):
            peak = item["peak_kib"] / 1024
        else:
            results[item["case"]] = item
    return Batch(results, proc.returncode, proc.stderr, peak)
