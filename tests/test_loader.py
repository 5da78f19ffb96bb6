"""Manifest loading: the broken-manifest corpus, and how problems are collected and located.

Each ``tests/cases/manifests/<name>.yaml`` is a broken manifest; its sibling ``<name>.expected``
holds every diagnostic it must produce, one per line, as ``{file}:line:col: field: message (hint)``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler import loader, yamlfast
from reconciler.diagnostics import Diagnostic
from reconciler.errors import ManifestError
from reconciler.loader import load_desired
from reconciler.spec import RenderSpec
from tests.catalogue import DEFAULTS

CASES = Path(__file__).parent / "cases" / "manifests"
CORPUS = sorted(CASES.glob("*.yaml"))

A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "5125135c-e9b4-5b10-a8ed-fe17af538c64"
C = "5779e683-4265-5456-90c0-3c47df181940"


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def products(*uuids: str, extra: str = "") -> str:
    return "products:\n" + "".join(f"  - uuid: {u}\n{extra}" for u in uuids)


def diagnostics(*paths: Path) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_desired(list(paths))
    return info.value.diagnostics


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 12
    assert all(p.with_suffix(".expected").exists() for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_manifest_reports_file_line_column_field_and_message(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    got = [d.format().replace(str(path), "{file}") for d in diagnostics(path)]
    assert got == expected
    for d in diagnostics(path):
        assert d.location.file == str(path)
        assert d.location.line is not None and d.location.column is not None


def test_misspelt_key_is_located_and_suggests_the_closest_name() -> None:
    [d] = diagnostics(CASES / "misspelt_key.yaml")
    assert (d.location.line, d.location.column) == (2, 3)
    assert d.field == "defaults.imagewidth"
    assert d.message == "unknown field 'imagewidth'"
    assert d.hint == "did you mean 'imageWidth'?"


def test_misspelt_key_does_not_also_report_the_field_as_missing() -> None:
    messages = [d.message for d in diagnostics(CASES / "misspelt_key.yaml")]
    assert not any("missing" in m for m in messages)


def test_yaml_syntax_error_names_line_and_column() -> None:
    [d] = diagnostics(CASES / "yaml_syntax.yaml")
    assert d.message.startswith("invalid YAML: ")
    assert (d.location.line, d.location.column) == (13, 1)
    assert d.field is None


def test_merge_conflict_markers_get_a_hint_naming_their_line() -> None:
    [d] = diagnostics(CASES / "merge_conflict.yaml")
    assert d.hint is not None
    assert "git merge-conflict markers" in d.hint and "from line 12" in d.hint


def test_duplicate_uuid_across_two_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A, B))
    write(tmp_path, "sub/b.yaml", DEFAULTS + products(C, A.upper()))
    found = diagnostics(tmp_path)
    a, b = str(tmp_path / "a.yaml"), str(tmp_path / "sub" / "b.yaml")
    assert [(d.location.file, d.location.line, d.location.column, d.field) for d in found] == [
        (a, 12, 11, "products[0].uuid"),
        (b, 13, 11, "products[1].uuid"),
    ]
    assert all(d.message == f"product {A} is declared twice" for d in found)
    assert found[0].hint == f"also at {b}:13:11; keep one"
    assert found[1].hint == f"also at {a}:12:11; keep one"


def test_duplicate_is_reported_even_when_the_product_is_also_invalid(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A) + f"  - uuid: {A}\n    imageWidth: 1\n")
    messages = sorted(d.message for d in diagnostics(tmp_path))
    assert messages == [
        "expected 16..8192 (still width in pixels), got 1",
        f"product {A} is declared twice",
        f"product {A} is declared twice",
    ]


def test_all_problems_of_all_files_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A) + "    imageWidth: 0\n  - uuid: nope\n")
    write(tmp_path, "b.yaml", "defaults: [\n")
    write(tmp_path, "c/d.yaml", DEFAULTS.replace("PNG", "TIFF") + products(B))
    with pytest.raises(ManifestError) as info:
        load_desired([tmp_path])
    found = info.value.diagnostics
    assert [(Path(d.location.file).name, d.location.line) for d in found] == [
        ("a.yaml", 13),
        ("a.yaml", 14),
        ("b.yaml", 2),
        ("d.yaml", 4),
    ]
    assert str(info.value).startswith("4 errors in manifests:\n")


def test_a_defaults_problem_is_reported_once_not_per_product(tmp_path: Path) -> None:
    text = DEFAULTS.replace("imageCount: 36", "imageCount: 1") + products(A, B, C)
    text += "  - uuid: 3d9a4df7-fa1f-5a67-b01e-b8498e69f9ed\n    imageWidth: 800\n"
    write(tmp_path, "a.yaml", text)
    [d] = diagnostics(tmp_path)
    assert d.field == "defaults.turntable.imageCount"
    assert (d.location.line, d.location.column) == (7, 17)


def test_a_defaults_problem_is_reported_even_if_the_first_product_overrides_it(tmp_path: Path) -> None:
    # The first product fixes the bad default for itself; the others inherit it and must not vanish.
    text = DEFAULTS.replace("imageWidth: 1200", "imageWidth: 99999") + products(A)
    text += "    imageWidth: 800\n" + f"  - uuid: {B}\n  - uuid: {C}\n"
    write(tmp_path, "a.yaml", text)
    [d] = diagnostics(tmp_path)
    assert d.format() == (
        f"{tmp_path / 'a.yaml'}:2:15: defaults.imageWidth: "
        "expected 16..8192 (still width in pixels), got 99999"
    )


def test_same_broken_override_on_two_products_is_reported_at_each(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A, B, extra="    imageFormat: BMP\n"))
    assert [(d.location.line, d.field) for d in diagnostics(tmp_path)] == [
        (13, "products[0].imageFormat"),
        (15, "products[1].imageFormat"),
    ]


def test_missing_field_without_defaults_is_reported_on_each_product(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", products(A, B, extra="    imageWidth: 100\n"))
    found = diagnostics(tmp_path)
    assert sorted((d.field, d.message) for d in found) == sorted(
        (f"products[{i}]", f"missing field {f}")
        for i in (0, 1)
        for f in ("imageHeight", "imageFormat", "turntable")
    )
    assert {(d.location.line, d.location.column) for d in found} == {(2, 5), (4, 5)}


def test_jpg_with_transparency_in_defaults_is_blamed_on_the_defaults(tmp_path: Path) -> None:
    text = DEFAULTS.replace("PNG", "JPG") + "  transparentBackground: true\n" + products(A, B)
    text += "    imageWidth: 800\n"
    write(tmp_path, "a.yaml", text)
    [d] = diagnostics(tmp_path)
    assert d.field == "defaults"
    assert d.message.startswith("transparentBackground needs an image format with alpha")


def test_subfolders_are_loaded_and_other_files_ignored(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A))
    write(tmp_path, "deep/er/b.yml", DEFAULTS + products(B))
    write(tmp_path, "README.md", "not a manifest: [")
    desired = load_desired([tmp_path])
    assert sorted(desired.products) == sorted([A, B])
    assert desired.files == (str(tmp_path / "a.yaml"), str(tmp_path / "deep/er/b.yml"))


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "defaults:\nproducts:\n", "products: []\n"])
def test_empty_manifest_is_fine(tmp_path: Path, text: str) -> None:
    write(tmp_path, "empty.yaml", text)
    assert load_desired([tmp_path]).products == {}


def test_missing_path_is_a_manifest_error(tmp_path: Path) -> None:
    [d] = diagnostics(tmp_path / "nope")
    assert d.format() == (
        f"{tmp_path / 'nope'}: no such file or directory "
        "(pass the manifests directory, e.g. --manifests manifests/)"
    )


def test_undecodable_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"defaults: \xff\xfe\n")
    [d] = diagnostics(tmp_path)
    assert d.format() == (
        f"{tmp_path / 'bin.yaml'}:1:11: not UTF-8 text: byte 0xFF cannot start or continue a "
        "character (save it as UTF-8; it looks like Latin-1 or Windows-1252 text)"
    )


def test_a_latin1_byte_is_reported_at_its_line_and_column_in_characters(tmp_path: Path) -> None:
    text = DEFAULTS + products(A) + "    name: Caf\u00e9 \u00e0 la cr\u00e8me\n"
    data = text.encode("utf-8").replace("crème".encode(), "cr\xe8me".encode("latin-1"))
    (tmp_path / "a.yaml").write_bytes(data)
    [d] = diagnostics(tmp_path)
    # "    name: Café à la cr" is 22 characters (24 bytes): the bad byte is character 23.
    assert (d.location.line, d.location.column) == (13, 23)
    assert d.message == "not UTF-8 text: byte 0xE8 cannot start or continue a character"


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes((DEFAULTS + products(A)).encode("utf-16"))
    [d] = diagnostics(tmp_path)
    assert (d.location.line, d.location.column, d.hint) == (1, 1, "it is UTF-16 text: save it as UTF-8")


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("    name: 2024\n", "products[0].name", "expected text, got a number"),
        ("    protect: maybe\n", "products[0].protect", "expected true or false, got 'maybe'"),
    ],
)
def test_label_fields_are_checked(tmp_path: Path, extra: str, field: str, message: str) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A, extra=extra))
    [d] = diagnostics(tmp_path)
    assert (d.field, d.message) == (field, message)


def test_resolved_spec_merges_defaults_and_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        DEFAULTS
        + products(A, extra="    imageFormat: WEBP\n    turntable:\n      includeGif: true\n")
        + f"  - uuid: {B}\n",
    )
    desired = load_desired([tmp_path])
    a, b = desired.products[A].spec, desired.products[B].spec
    assert (a.imageFormat, a.turntable.includeGif, a.turntable.imageCount) == ("WEBP", True, 36)
    assert (b.imageFormat, b.turntable.includeGif) == ("PNG", False)
    assert desired.products[A].spec_hash == a.fingerprint()


def test_inherited_and_spelt_out_values_hash_the_same(tmp_path: Path) -> None:
    write(tmp_path, "a/inherit.yaml", DEFAULTS + products(A))
    spelt = (
        f"products:\n  - uuid: {A}\n    name: label only\n    turntable:\n      height: 720\n"
        "      width: 720\n      frameRate: 12\n      imageCount: 36\n      includeGif: false\n"
        "      transparentBackground: false\n    imageFormat: PNG\n    imageHeight: 1200\n    imageWidth: 1200\n"
    )
    write(tmp_path, "b/spelt.yaml", spelt)
    one = load_desired([tmp_path / "a"]).products[A]
    two = load_desired([tmp_path / "b"]).products[A]
    assert one.spec_hash == two.spec_hash
    assert (one.name, two.name) == (None, "label only")


def test_uuids_are_normalised_to_lower_case(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + products(A.upper()))
    assert list(load_desired([tmp_path]).products) == [A]


def test_the_example_catalogue_loads() -> None:
    root = Path(__file__).resolve().parents[1] / "manifests"
    desired = load_desired([root])
    assert len(desired.products) >= 30
    assert all(isinstance(p.spec, RenderSpec) for p in desired.products.values())


def test_no_foreign_exception_escapes_the_loader(tmp_path: Path) -> None:
    """ruamel and pydantic errors become ManifestError (principle 6)."""
    for i, text in enumerate(["{", "defaults: {imageWidth: !!binary x}", "\t- tab", "a: *nope"]):
        write(tmp_path / str(i), "a.yaml", text)
        with pytest.raises(ManifestError):
            load_desired([tmp_path / str(i)])


# -- the fast YAML reader must agree with ruamel's loader, or step aside ----------------------

TRICKY = [
    "",
    "# only a comment\n",
    "~\n",
    "a: 1\n",
    "a: '1'\n",
    "a: 012\n",
    "a: 0o17\n",
    "a: 0x1F\n",
    "a: 1_000\n",
    "a: -0\n",
    "a: +5\n",
    "a: 1.5\n",
    "a: .inf\n",
    "a: 1e3\n",
    "a: 2026-01-01\n",
    "a: yes\n",
    "a: True\n",
    "a: NULL\n",
    "a:\n",
    "a: !!str 5\n",
    "a: !custom x\n",
    "x: &a {b: 1}\ny: *a\n",
    "x: &a 1\ny: *a\n",
    "base: &b {w: 1}\nitem:\n  <<: *b\n  h: 2\n",
    "a: 1\na: 2\n",
    "%YAML 1.1\n---\na: yes\n",
    "--- 1\n--- 2\n",
    "[1, 2, {a: b}]\n",
    "? [1, 2]\n: x\n",
    "1: one\n2: two\n",
    "a: =\n",
    'a: "\\u00e9t\\u00e9"\nb: été\n',
    "a: |\n  two\n  lines\n",
    "a: [1, 2\n",
    "a: b: c\n",
    "\t- tab\n",
    "x: &a [*a]\n",
]


def _outcome(read: Any, text: str) -> tuple[str, str]:
    try:
        return "ok", repr(read(text))
    except yamlfast.Unsupported:
        raise
    except Exception as exc:  # the error itself is what is compared
        return type(exc).__name__, str(exc)


def _agrees(text: str) -> None:
    expected = _outcome(yamlfast.load_full, text)
    try:
        got = _outcome(yamlfast.load, text)
    except yamlfast.Unsupported:
        return  # ruamel reads it instead
    assert got == expected


@pytest.mark.parametrize("text", TRICKY)
def test_fast_yaml_reader_agrees_with_ruamel_or_steps_aside(text: str) -> None:
    _agrees(text)


@pytest.mark.parametrize("spelling", ["012", "0o17", "0x1F", "1_000", "+5", "0b11", "1_2_3"])
def test_whole_numbers_are_decimal_and_other_spellings_are_text(spelling: str) -> None:
    # ruamel reads all of these as integers; the manifest's types are strict, so both of our
    # readers keep what was written, and a number field then refuses it by name.
    assert yamlfast.load_full(f"a: {spelling}\n") == {"a": spelling}
    assert yamlfast.read(f"a: {spelling}\n") == {"a": spelling}
    assert yamlfast.read(f"a: {spelling}\nb: 1.5\n") == {"a": spelling, "b": 1.5}  # a float: via ruamel


def test_fast_yaml_reader_reads_plain_manifests_itself() -> None:
    text = (CASES / "bad_colour.yaml").read_text()
    assert yamlfast.load(text) == YAML(typ="safe", pure=False).load(text)
    assert yamlfast.load("a: 0x1F\nb: 1_000\n") == {"a": "0x1F", "b": "1_000"}
    for unusual in (
        "a: 1.5\n",
        "x: &a {b: 1}\ny: *a\n",
        "a: 1\na: 2\n",
        "a: 2026-01-01\n",
        "%YAML 1.1\n---\na: 1\n",
    ):
        with pytest.raises(yamlfast.Unsupported):
            yamlfast.load(unusual)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        ["yes", "no", "0x10", "012", "1_0", "~", "null", "<<", "2026-01-01", ".inf", "=", "-", "True", "1e3"]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(documents, st.sampled_from([None, True, False]))
@settings(max_examples=150, deadline=None)
def test_fast_yaml_reader_agrees_on_generated_documents(data: Any, flow: bool | None) -> None:
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = flow
    buffer = io.StringIO()
    dumper.dump(data, buffer)
    _agrees(buffer.getvalue())
    # The same text with scalars unquoted, as people write them.
    _agrees(buffer.getvalue().replace("'", ""))


# -- the guard in front of every parse ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_a_fifo_or_dev_zero_given_by_name_is_refused_without_reading(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "a.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    [d] = diagnostics(path)  # neither waits for a writer nor reads forever
    assert d.location.file == str(path)
    assert d.message.startswith("cannot read file: it is a ")


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", DEFAULTS + products(A))
    with path.open("ab") as fh:
        fh.truncate(loader.MAX_FILE_BYTES + 1)
    [d] = diagnostics(path)
    assert d.message == "file is 16.0 MiB, more than the 16 MiB a manifest file may be"


def test_past_the_error_cap_problems_are_counted_not_kept(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS + "products:\n" + "".join(f"  - uuid: bad{i}\n" for i in range(250)))
    with pytest.raises(ManifestError) as info:
        load_desired([tmp_path])
    assert (len(info.value.diagnostics), info.value.more) == (100, 150)
    assert str(info.value).startswith("250 errors in manifests:\n")
    assert str(info.value).endswith(
        "\n... and 150 more (the first 100 are shown: fix them and run again to see the rest)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 65 + "]" * 65 + "\n", "nested deeper than 64 levels (a manifest needs 4)"),
        ("x: &a [1, *a]\n", "alias *a refers to a collection that contains it"),
        ("a: " + "9" * 4301 + "\n", "a number of 4,301 digits is too long to read (at most 4,300)"),
    ],
)
def test_the_guard_refuses_where_it_stands(text: str, problem: str) -> None:
    with pytest.raises(yamlfast.Refused) as info:
        yamlfast.read(text)
    assert info.value.problem == problem
    assert info.value.line == 0


def test_64_levels_are_fine() -> None:
    assert yamlfast.read("[" * 64 + "]" * 64 + "\n") is not None


@st.composite
def nested(draw: st.DrawFn) -> str:
    """Documents nested around the limit, as a YAML writer lays them out: block, flow or mixed,
    any indentation, compact sequences, CRLF line ends."""
    data: Any = "x"
    for _ in range(draw(st.integers(1, 80))):
        data = [data] if draw(st.booleans()) else {draw(st.sampled_from(["k", "a b", "-x"])): data}
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = draw(st.sampled_from([False, None, True]))
    mapping = draw(st.integers(1, 4))
    sequence = draw(st.integers(2, 5))
    dumper.indent(mapping=mapping, sequence=sequence, offset=draw(st.integers(0, sequence - 2)))
    dumper.width = 4096
    buffer = io.StringIO()
    dumper.dump(data, buffer)
    text = buffer.getvalue()
    return text.replace("\n", "\r\n") if draw(st.booleans()) else text


@given(nested())
@settings(max_examples=500, deadline=None)
def test_the_cheap_bound_never_passes_a_document_that_nests_too_deep(text: str) -> None:
    """If the text scan says a document is safe, the exact scan of its events must agree.

    (This found that "[k: [...]]" nests two levels per "[": a pair inside a flow sequence.)"""
    if not yamlfast._maybe_unbounded(text):
        yamlfast._scan(text)  # Refused here would mean the C composer could be handed a deep document
