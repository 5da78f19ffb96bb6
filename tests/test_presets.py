"""Presets: named partial specs shared by every manifest file (docs/manifests.md, "Presets").

How they merge, that moving values into them re-renders nothing, the errors of a broken
preset (each at its file, line and column), and their place in fmt, the schema and the plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from reconciler.cli import cli
from reconciler.diagnostics import Diagnostic
from reconciler.errors import ManifestError
from reconciler.formatting import format_text
from reconciler.loader import MAX_PRESET_CHAIN, load_desired
from reconciler.spec import manifest_json_schema
from tests.rendered import record_all_as_rendered

ROOT = Path(__file__).resolve().parents[1]
A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "5125135c-e9b4-5b10-a8ed-fe17af538c64"
C = "5779e683-4265-5456-90c0-3c47df181940"

HOUSE = """\
presets:
  house:
    imageWidth: 1200
    imageHeight: 1200
    imageFormat: WEBP
    turntable:
      includeGif: false
      imageCount: 36
      frameRate: 12
      width: 720
      height: 720
  hero:
    preset: house
    imageWidth: 2400
    turntable:
      includeGif: true
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(root: Path) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as info:
        load_desired([root])
    return info.value.diagnostics


def shown(root: Path) -> list[str]:
    return [d.format().replace(str(root) + "/", "") for d in problems(root)]


# -- merging ----------------------------------------------------------------------------------


def test_values_merge_from_the_defaults_preset_up_to_the_product(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    write(
        tmp_path,
        "a.yaml",
        f"""\
defaults:
  preset: house
  imageFormat: PNG            # over the defaults' preset
products:
  - uuid: {A}
  - uuid: {B}
    preset: hero              # over the defaults: 2400 wide, GIF on
  - uuid: {C}
    preset: hero
    imageWidth: 1600          # over its preset
    turntable:
      frameRate: 24           # field by field, as everywhere
""",
    )
    got = load_desired([tmp_path]).products
    a, b, c = (got[u].spec for u in (A, B, C))
    assert (a.imageWidth, a.imageFormat, a.turntable.includeGif) == (1200, "PNG", False)
    # The product's preset sits above the defaults: hero's chain (house, hero) overrides PNG again.
    assert (b.imageWidth, b.imageFormat, b.turntable.includeGif) == (2400, "WEBP", True)
    assert (c.imageWidth, c.turntable.frameRate, c.turntable.includeGif, c.turntable.imageCount) == (
        1600,
        24,
        True,
        36,
    )
    assert [got[u].preset for u in (A, B, C)] == ["house", "hero", "hero"]


def test_a_preset_inherits_from_the_one_it_names_before_its_own_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        HOUSE
        + """\
  social:
    preset: hero
    imageFormat: JPG
    imageBackground: "#ffffff"
"""
        + f"products:\n  - uuid: {A}\n    preset: social\n",
    )
    spec = load_desired([tmp_path]).products[A].spec
    assert (spec.imageWidth, spec.imageFormat, spec.imageBackground, spec.turntable.includeGif) == (
        2400,
        "JPG",
        "#FFFFFF",
        True,
    )


def test_a_preset_may_be_defined_in_a_file_that_sorts_after_its_users(tmp_path: Path) -> None:
    write(
        tmp_path, "a/footwear.yaml", f"defaults:\n  preset: hero\nproducts:\n  - uuid: {A}\n  - uuid: {B}\n"
    )
    write(tmp_path, "z/presets.yaml", HOUSE)
    desired = load_desired([tmp_path])
    assert list(desired.products) == [A, B]  # the files' order, though they waited for the presets
    assert desired.presets == ("hero", "house")
    assert desired.products[A].spec.imageWidth == 2400


def test_a_file_of_presets_alone_declares_no_products(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    desired = load_desired([tmp_path])
    assert desired.products == {} and desired.presets == ("hero", "house")


def test_products_without_presets_are_unaffected_by_presets_elsewhere(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    write(tmp_path, "b.yaml", (ROOT / "manifests" / "footwear.yaml").read_text())
    plain = load_desired([ROOT / "manifests" / "footwear.yaml"]).products
    mixed = load_desired([tmp_path]).products
    assert {u: p.spec_hash for u, p in mixed.items()} == {u: p.spec_hash for u, p in plain.items()}
    assert all(p.preset is None for p in mixed.values())


def _with_presets(source: Path, target: Path) -> None:
    """``source``'s catalogue rewritten as a team would: every file's defaults and every distinct
    set of product overrides moved into presets, in a presets file that sorts last."""
    yaml = YAML(typ="safe", pure=True)
    presets: dict[str, Any] = {}
    for path in sorted(source.rglob("*.yaml")):
        data = yaml.load(path.read_text())
        stem = path.stem
        presets[stem] = data.get("defaults") or {}
        kinds: dict[str, str] = {}
        products = []
        for entry in data["products"]:
            labels = {k: v for k, v in entry.items() if k in ("uuid", "name", "protect")}
            overrides = {k: v for k, v in entry.items() if k not in labels}
            if overrides:
                key = json.dumps(overrides, sort_keys=True)
                if key not in kinds:
                    kinds[key] = f"{stem}-{len(kinds) + 1}"
                    presets[kinds[key]] = {"preset": stem, **overrides}
                labels["preset"] = kinds[key]
            products.append(labels)
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w") as fh:
            yaml.dump({"defaults": {"preset": stem}, "products": products}, fh)
    with (target / "zz-presets.yaml").open("w") as fh:
        yaml.dump({"presets": presets}, fh)


def test_moving_the_example_catalogue_into_presets_re_renders_nothing(tmp_path: Path) -> None:
    rewritten = tmp_path / "manifests"
    _with_presets(ROOT / "manifests", rewritten)
    before, after = load_desired([ROOT / "manifests"]), load_desired([rewritten])
    assert len(after.presets) > 3  # the three files' defaults, and the overrides some products carry
    assert any(p.preset and "-" in p.preset for p in after.products.values())
    assert {u: p.spec_hash for u, p in after.products.items()} == {
        u: p.spec_hash for u, p in before.products.items()
    }

    state = tmp_path / "state.json"
    record_all_as_rendered(ROOT / "manifests", state)  # what applying the catalogue before the rewrite left
    plan = CliRunner().invoke(
        cli, ["plan", "-m", str(rewritten), "--state", str(state), "--detailed-exitcode"]
    )
    assert plan.exit_code == 0, plan.output
    assert f"No changes. {len(before.products)} products up to date." in plan.stdout


# -- errors -----------------------------------------------------------------------------------


def test_an_unknown_preset_names_the_known_ones_and_the_closest(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    write(tmp_path, "a.yaml", f"products:\n  - uuid: {A}\n    preset: heor\n")
    assert shown(tmp_path) == [
        "a.yaml:3:13: products[0].preset: unknown preset 'heor' "
        "(did you mean 'hero'? known presets: hero, house)"
    ]


def test_an_unknown_preset_in_the_defaults_is_reported_once_not_per_product(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    write(tmp_path, "a.yaml", f"defaults:\n  preset: studio\nproducts:\n  - uuid: {A}\n  - uuid: {B}\n")
    assert shown(tmp_path) == [
        "a.yaml:2:11: defaults.preset: unknown preset 'studio' (known presets: hero, house)"
    ]


def test_an_unknown_preset_when_none_is_defined_says_presets_are_shared(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", f"products:\n  - uuid: {A}\n    preset: house\n")
    [d] = problems(tmp_path)
    assert d.message == "unknown preset 'house'"
    assert (
        d.hint is not None
        and "no preset is defined" in d.hint
        and "pass the whole manifests folder" in d.hint
    )


def test_many_known_presets_are_listed_up_to_a_dozen(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", "presets:\n" + "".join(f"  p{i:02}: {{}}\n" for i in range(30)))
    write(tmp_path, "a.yaml", f"products:\n  - uuid: {A}\n    preset: nothing-like-it\n")
    [d] = problems(tmp_path)
    assert d.hint == "known presets: " + ", ".join(f"p{i:02}" for i in range(12)) + " and 18 more"


def test_presets_in_a_circle_are_one_error_at_the_first_preset_of_the_circle(tmp_path: Path) -> None:
    write(
        tmp_path,
        "presets.yaml",
        "presets:\n  a:\n    preset: b\n  b:\n    preset: c\n  c:\n    preset: a\n  me:\n    preset: me\n",
    )
    write(tmp_path, "x.yaml", f"products:\n  - uuid: {A}\n    preset: b\n  - uuid: {B}\n    preset: me\n")
    assert shown(tmp_path) == [
        "presets.yaml:3:13: presets.a.preset: presets build on each other in a circle: a → b → c → a "
        "(a preset may build on another, never on itself: remove one of these preset: lines)",
        "presets.yaml:9:13: presets.me.preset: presets build on each other in a circle: me → me "
        "(a preset may build on another, never on itself: remove one of these preset: lines)",
    ]


def test_a_chain_of_ten_thousand_presets_is_one_clean_error(tmp_path: Path) -> None:
    n = 10_000
    chain = (
        "".join(f"  p{i}:\n    preset: p{i + 1}\n" for i in range(n - 1))
        + f"  p{n - 1}:\n    imageWidth: 1\n"
    )
    write(tmp_path, "presets.yaml", "presets:\n" + chain)
    write(tmp_path, "a.yaml", f"products:\n  - uuid: {A}\n    preset: p0\n")
    [d] = problems(tmp_path)  # one problem for the chain, not one per preset above the limit
    top = n - MAX_PRESET_CHAIN - 1
    assert d.field == f"presets.p{top}.preset"
    assert d.message == (
        f"preset 'p{top}' builds on {MAX_PRESET_CHAIN} presets or more ('p{top + 1}' → "
        f"'p{top + 2}' → 'p{top + 3}' → …): a chain of presets may be at most {MAX_PRESET_CHAIN} long"
    )


def test_a_chain_of_presets_may_be_as_long_as_the_limit_and_no_longer(tmp_path: Path) -> None:
    n = MAX_PRESET_CHAIN
    house = HOUSE.split("  hero:")[0].replace("  house:", f"  p{n - 1}:")
    chain = "".join(f"  p{i}:\n    preset: p{i + 1}\n    imageHeight: {100 + i}\n" for i in range(n - 1))
    write(tmp_path, "a.yaml", house + chain + f"products:\n  - uuid: {A}\n    preset: p0\n")
    assert load_desired([tmp_path]).products[A].spec.imageHeight == 100  # p0 over p1 over … over p15
    write(tmp_path, "b.yaml", "presets:\n  q:\n    preset: p0\n")
    assert shown(tmp_path) == [
        f"b.yaml:3:13: presets.q.preset: preset 'q' builds on {n} presets or more ('p0' → "
        f"'p1' → 'p2' → …): a chain of presets may be at most {n} long (flatten the chain: "
        "copy the fields of some presets into the ones that build on them)"
    ]


def test_a_preset_defined_in_two_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HOUSE)
    write(tmp_path, "team/b.yaml", "presets:\n  hero:\n    imageWidth: 800\n")
    assert shown(tmp_path) == [
        "a.yaml:12:3: presets.hero: preset 'hero' is defined twice (also at team/b.yaml:2:3; presets are shared by "
        "every manifest file loaded together: rename one, or keep one)",
        "team/b.yaml:2:3: presets.hero: preset 'hero' is defined twice (also at a.yaml:12:3; presets are shared by "
        "every manifest file loaded together: rename one, or keep one)",
    ]


def test_a_bad_value_in_a_preset_is_blamed_on_the_preset_once(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE.replace("imageWidth: 2400", "imageWidth: 24000"))
    write(
        tmp_path, "a.yaml", "products:\n" + "".join(f"  - uuid: {u}\n    preset: hero\n" for u in (A, B, C))
    )
    assert shown(tmp_path) == [
        "presets.yaml:14:17: presets.hero.imageWidth: expected 16..8192 (still width in pixels), got 24000"
    ]


def test_a_rule_across_fields_is_blamed_on_the_highest_layer_that_sets_one(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE + "  print:\n    preset: house\n    imageFormat: JPG\n")
    write(
        tmp_path,
        "a.yaml",
        f"defaults:\n  transparentBackground: true\nproducts:\n  - uuid: {A}\n    preset: print\n",
    )
    [d] = problems(tmp_path)
    assert (Path(d.location.file).name, d.field) == ("presets.yaml", "presets.print")
    assert d.message.startswith("transparentBackground needs an image format with alpha")


def test_an_unknown_field_in_a_preset_is_reported_even_if_no_product_uses_it(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", "presets:\n  unused:\n    imagewidth: 1200\n    turntable: {}\n")
    assert shown(tmp_path) == [
        "presets.yaml:3:5: presets.unused.imagewidth: unknown field 'imagewidth' (did you mean 'imageWidth'?)"
    ]


def test_a_missing_field_names_presets_among_the_places_to_set_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        HOUSE.replace("    imageHeight: 1200\n", "", 1) + f"products:\n  - uuid: {A}\n    preset: hero\n",
    )
    assert shown(tmp_path) == [
        "a.yaml:17:5: products[0]: missing field imageHeight (set imageHeight in this "
        "file's defaults, its preset or the product)"
    ]


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        (
            "product",
            f"products:\n  - uuid: {A}\n    preset: [house]\n",
            "a.yaml:3:5: products[0].preset: expected the name of a preset, got a list",
        ),
        (
            "product null",
            f"products:\n  - uuid: {A}\n    preset:\n",
            "a.yaml:3:12: products[0].preset: expected the name of a preset, got nothing",
        ),
        (
            "defaults",
            f"defaults:\n  preset: 7\nproducts:\n  - uuid: {A}\n",
            "a.yaml:2:11: defaults.preset: expected the name of a preset, got 7",
        ),
        (
            "preset",
            "presets:\n  x:\n    preset: {a: 1}\n",
            "a.yaml:3:5: presets.x.preset: expected the name of a preset, got a mapping",
        ),
        ("name", "presets:\n  1: {}\n", "a.yaml:2:3: presets[1]: a preset name must be text, got 1"),
        (
            "body",
            "presets:\n  x: [1]\n",
            "a.yaml:2:3: presets.x: expected a mapping of render fields, got a list",
        ),
        (
            "block",
            "presets: [x]\n",
            "a.yaml:1:1: presets: expected a mapping of preset names to render fields, got a list",
        ),
    ],
)
def test_a_preset_reference_or_definition_of_the_wrong_shape_is_located(
    tmp_path: Path, where: str, text: str, expected: str
) -> None:
    write(tmp_path, "a.yaml", text)
    assert [line.split(" (")[0] for line in shown(tmp_path)] == [expected]


def test_a_product_waiting_for_a_preset_is_still_checked_for_a_duplicate_uuid(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HOUSE + f"products:\n  - uuid: {A}\n    preset: hero\n")
    write(tmp_path, "b.yaml", (ROOT / "manifests" / "footwear.yaml").read_text())  # declares A too
    assert [(Path(d.location.file).name, d.message) for d in problems(tmp_path)] == [
        ("a.yaml", f"product {A} is declared twice"),
        ("b.yaml", f"product {A} is declared twice"),
    ]


# -- fmt, schema, validate ----------------------------------------------------------------------


def test_fmt_orders_presets_like_defaults_and_keeps_their_comments() -> None:
    text = f"""\
products:
  - preset: hero   # the campaign look
    uuid: {A}
defaults:
  imageFormat: PNG
  preset: house
presets:
  hero:
    imageWidth: 2400
    # on top of the house style
    preset: house
"""
    out = format_text(text)
    assert (
        out
        == f"""\
presets:
  hero:
    # on top of the house style
    preset: house
    imageWidth: 2400
defaults:
  preset: house
  imageFormat: PNG
products:
  - uuid: {A}
    preset: hero   # the campaign look
"""
    )
    assert format_text(out) == out
    # A file of presets alone is a manifest too: formatted, not skipped.
    assert (
        format_text("presets:\n  x:\n    imageWidth: 1\n    preset: house\n")
        == "presets:\n  x:\n    preset: house\n    imageWidth: 1\n"
    )


def test_the_schema_knows_presets() -> None:
    schema = manifest_json_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    data = YAML(typ="safe").load(
        HOUSE + f"defaults:\n  preset: house\nproducts:\n  - uuid: {A}\n    preset: hero\n"
    )
    assert list(validator.iter_errors(data)) == []
    data["presets"]["hero"]["imagewidth"] = 1
    assert list(validator.iter_errors(data))
    assert list(
        validator.iter_errors({"presets": {"x": {"uuid": A}}})
    )  # labels are a product's, not a preset's


def test_validate_counts_the_products_of_a_catalogue_with_presets(tmp_path: Path) -> None:
    write(tmp_path, "presets.yaml", HOUSE)
    write(tmp_path, "a.yaml", f"defaults:\n  preset: house\nproducts:\n  - uuid: {A}\n")
    result = CliRunner().invoke(cli, ["validate", "-m", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 1 products in 2 file(s).\n"
