"""``reconciler fmt``: one layout, comments kept, idempotent, and never a change of meaning.

Every case is checked four ways: the exact output where it is written down, fmt of the
output changes nothing, the YAML reads back as the same data, and (for valid manifests)
the loader gives the same products, specs and spec hashes before and after.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.formatting import _plain, format_text
from reconciler.loader import load_desired

ROOT = Path(__file__).resolve().parents[1]
UUID_A = "58472097-fec0-516d-8326-f7a5eb192f2c"
UUID_B = "393f8b64-b960-5375-b254-484ff9c12e30"

CASES: dict[str, tuple[str, str | None]] = {
    "already formatted": (
        """\
defaults:
  imageWidth: 64
  imageHeight: 64
  imageFormat: PNG
  turntable:
    includeGif: false
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
products:
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    name: Trail
""",
        None,
    ),
    "comments everywhere, keys out of order": (
        """\
---
# file header

# second paragraph of the header
defaults:   # defaults eol
  # above turntable
  turntable:   # tt eol
    # above height
    height: 32   # h eol
    width: 32
    frameRate: 4
    imageCount: 4
    includeGif: false
    # end of turntable
  # above imageFormat

  imageFormat: PNG
  imageWidth: 64    # w
  imageHeight: 64
products:
  # product one
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c   # id eol
    name: |
      Multi
      # not a comment
  # product two

  - protect: true
    uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    name: 'It''s #2'
    imageFormat: "WEBP"  # webp
# the end
""",
        """\
---
# file header

# second paragraph of the header
defaults:   # defaults eol
  imageWidth: 64    # w
  imageHeight: 64
  # above imageFormat

  imageFormat: PNG
  # above turntable
  turntable:   # tt eol
    includeGif: false
    imageCount: 4
    frameRate: 4
    width: 32
    # above height
    height: 32   # h eol
    # end of turntable
products:
  # product one
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c   # id eol
    name: |
      Multi
      # not a comment
  # product two

  - uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    name: "It's #2"
    protect: true
    imageFormat: WEBP    # webp
# the end
""",
    ),
    "four-space indentation and a note closing a product": (
        """\
products:
    -   name: Court
        # the id
        uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    -   uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
        turntable:
            # the frames
            imageCount: 24
            includeGif: false
        # portrait
        imageHeight: 1400
        imageWidth: 1000
        # closing note about this product
defaults:
    imageWidth: 64
    imageHeight: 64
    imageFormat: PNG
    turntable:
        includeGif: true
        imageCount: 4
        frameRate: 4
        width: 32
        height: 32
""",
        """\
defaults:
  imageWidth: 64
  imageHeight: 64
  imageFormat: PNG
  turntable:
    includeGif: true
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
products:
  # the id
  - uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    name: Court
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    imageWidth: 1000
    # portrait
    imageHeight: 1400
    turntable:
      includeGif: false
      # the frames
      imageCount: 24
    # closing note about this product
""",
    ),
    "flow style and quoting": (
        "{defaults: {imageWidth: 64, imageHeight: 64, imageFormat: 'PNG', imageBackground: 'f4f4f4'"
        ", turntable: {includeGif: false, imageCount: 4, frameRate: 4, width: 32, height: 32}}, pro"
        'ducts: [{name: "x: y", uuid: 58472097-fec0-516d-8326-f7a5eb192f2c}, {uuid: \'393f8b64-b960-'
        '5375-b254-484ff9c12e30\', name: "yes", imageBackground: "#FFFFFF"}]}'
        "\n",
        """\
defaults:
  imageWidth: 64
  imageHeight: 64
  imageFormat: PNG
  imageBackground: f4f4f4
  turntable:
    includeGif: false
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
products:
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    name: "x: y"
  - uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    name: "yes"
    imageBackground: "#FFFFFF"
""",
    ),
    "anchors, aliases and merge keys": (
        """\
defaults: &base
  imageWidth: 64
  imageHeight: 64
  imageFormat: PNG
  turntable: &tt {imageCount: 4, includeGif: true, frameRate: 4, width: 32, height: 32}
products:
  - name: A
    uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    turntable: *tt
  - uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    <<: *base
    name: B
""",
        """\
defaults: &base
  imageWidth: 64
  imageHeight: 64
  imageFormat: PNG
  turntable: &tt
    includeGif: true
    imageCount: 4
    frameRate: 4
    width: 32
    height: 32
products:
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    name: A
    turntable: *tt
  - uuid: 393f8b64-b960-5375-b254-484ff9c12e30
    <<: *base
    name: B
""",
    ),
    "unknown keys keep their place after the known ones": (
        """\
products:
  - colour: red
    uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    zzz: 1
    name: A
""",
        """\
products:
  - uuid: 58472097-fec0-516d-8326-f7a5eb192f2c
    name: A
    colour: red
    zzz: 1
""",
    ),
    "a long name is never folded": (
        "products:\n  - name: '" + ("Very long name " * 12).strip() + "'\n    uuid: " + UUID_A + "\n",
        "products:\n  - uuid: " + UUID_A + "\n    name: " + ("Very long name " * 12).strip() + "\n",
    ),
    "empty file": ("", None),
    "only comments": ("# nothing here yet\n", None),
    "not a manifest": ("jobs:\n    build: {runs-on: x}\n", None),
}


def _check(text: str, name: str = "case.yaml") -> str:
    out = format_text(text, name)
    assert format_text(out, name) == out, "fmt of fmt output must change nothing"
    if text.strip():
        assert _plain(text.lstrip("\ufeff").replace("\r\n", "\n")) == _plain(
            out.lstrip("\ufeff").replace("\r\n", "\n")
        )
    for c in re.findall(r"(?:^|\s)(# [^\n]*)", text):  # comments ("#F4F4F4" and "#1" in names are not)
        assert c.strip() in out, f"comment lost: {c}"
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_fmt_cases(name: str) -> None:
    text, expected = CASES[name]
    assert _check(text) == (text if expected is None else expected)


def _desired(folder: Path) -> dict[str, tuple[str | None, str, dict, bool]]:
    return {
        u: (p.name, p.spec_hash, p.spec.canonical(), p.protect)
        for u, p in load_desired([folder]).products.items()
    }


@pytest.mark.parametrize(
    "name", [n for n, (t, _) in CASES.items() if "products:" in t and "colour" not in t and "defaults" in t]
)
def test_the_loaded_specs_and_hashes_are_the_same_after_fmt(name: str, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    text = CASES[name][0]
    (before / "m.yaml").write_text(text)
    (after / "m.yaml").write_text(format_text(text))
    assert _desired(before) == _desired(after)


def test_crlf_and_a_bom_are_kept(tmp_path: Path) -> None:
    text = CASES["four-space indentation and a note closing a product"][0].replace("\n", "\r\n")
    out = _check("\ufeff" + text)
    assert out.startswith("\ufeffdefaults:\r\n") and "\n" not in out.replace("\r\n", "")
    assert out == "\ufeff" + CASES["four-space indentation and a note closing a product"][1].replace(
        "\n", "\r\n"
    )


def test_the_example_manifests_are_formatted_and_keep_their_meaning(tmp_path: Path) -> None:
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        text = path.read_text()
        assert _check(text, str(path)) == text, f"{path} is not in fmt's layout"


def _scramble(text: str) -> str:
    """The examples as someone might write them: quoted strings, name before uuid, format before sizes."""
    text = re.sub(r"^(  - )uuid: (\S+)\n    name: (.+)$", r"\1name: '\3'\n    uuid: \2", text, flags=re.M)
    # Two quotes more, two spaces less before an end-of-line comment: it keeps its column.
    text = re.sub(r"^(\s+)imageFormat: (\w+)(?:  (\s*#.*))?$", r'\1imageFormat: "\2"\3', text, flags=re.M)
    return text.replace("'\"", "'").replace("\"'", "'")


def test_scrambled_examples_come_back_byte_for_byte(tmp_path: Path) -> None:
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        text = path.read_text()
        scrambled = _scramble(text)
        assert scrambled != text
        assert _check(scrambled, str(path)) == text, path


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_check_prints_a_diff_exits_1_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    messy = tmp_path / "manifests" / "messy.yaml"
    messy.write_text(CASES["unknown keys keep their place after the known ones"][0])
    tidy = tmp_path / "manifests" / "tidy.yaml"
    tidy.write_text(CASES["already formatted"][0])
    done = _cli(tmp_path, "fmt", "--check")
    assert done.returncode == 1
    assert done.stdout.startswith("--- manifests/messy.yaml\n+++ manifests/messy.yaml\n@@")
    assert "-  - colour: red\n" in done.stdout and f"+  - uuid: {UUID_A}\n" in done.stdout
    assert "1 file(s) would be reformatted, 1 unchanged." in done.stderr
    assert (
        "Error: 1 manifest file(s) are not formatted" in done.stderr
        and "Hint: run 'reconciler fmt'" in done.stderr
    )
    assert messy.read_text() == CASES["unknown keys keep their place after the known ones"][0]
    done = _cli(tmp_path, "fmt")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Formatted manifests/messy.yaml\n1 file(s) reformatted, 1 unchanged.\n"
    assert messy.read_text() == CASES["unknown keys keep their place after the known ones"][1]
    assert _cli(tmp_path, "fmt", "--check").returncode == 0


def test_a_broken_file_is_named_and_the_others_are_still_formatted(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("products:\n  - uuid: x\n    name: [unclosed\n")
    (tmp_path / "b.yaml").write_text(CASES["unknown keys keep their place after the known ones"][0])
    done = _cli(tmp_path, "fmt", "a.yaml", "b.yaml")
    assert done.returncode == 1
    assert re.search(r"Error: 1 error in manifests:\na\.yaml:\d+:\d+: invalid YAML: ", done.stderr)
    assert (tmp_path / "b.yaml").read_text() == CASES["unknown keys keep their place after the known ones"][1]
    assert (tmp_path / "a.yaml").read_text() == "products:\n  - uuid: x\n    name: [unclosed\n"


def test_a_duplicate_key_is_an_error_not_a_silent_merge(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        format_text("products:\n  - uuid: a\n    uuid: b\n", "dup.yaml")
    assert "dup.yaml:3:" in caught.value.message and "duplicate key" in caught.value.message


def test_pre_commit_hooks_run_through_try_repo(tmp_path: Path) -> None:
    """The repository's .pre-commit-hooks.yaml, installed and run by pre-commit itself."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pre_commit = Path(sys.executable).with_name("pre-commit")
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (it is in the test extras)")
    repo = tmp_path / "catalogue"
    (repo / "manifests").mkdir(parents=True)
    unformatted = CASES["four-space indentation and a note closing a product"]
    (repo / "manifests" / "a.yaml").write_text(unformatted[0])
    (repo / "manifests" / "b.yaml").write_text(
        CASES["already formatted"][0]
        .replace("name: Trail", "nmae: Trail")
        .replace(UUID_A, "6079b22e-4327-5d30-ba4c-90855571b56d")
    )
    (repo / "notes.yaml").write_text("not: [a manifest\n")  # outside manifests/: no hook looks at it
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-q", "-m", "catalogue"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)
    done = subprocess.run(
        [str(pre_commit), "try-repo", str(ROOT), "--all-files", "--color", "never"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    if "Installing environment" in out and re.search(
        r"CalledProcessError|Could not find a version|"
        r"No matching distribution",
        out,
    ):
        pytest.skip(
            "pre-commit could not install the hook environment here (no package index reachable): "
            + out[-500:]
        )
    assert done.returncode == 1, out
    assert re.search(
        r"reconciler fmt\.+Failed\n- hook id: reconciler-fmt\n- files were modified by this hook", out
    )
    assert "Formatted manifests/a.yaml\n1 file(s) reformatted, 1 unchanged." in out
    assert re.search(r"reconciler validate\.+Failed\n- hook id: reconciler-validate\n- exit code: 1", out)
    assert "manifests/b.yaml:13:5: products[0].nmae: unknown field 'nmae' (did you mean 'name'?)" in out
    assert (repo / "manifests" / "a.yaml").read_text() == unformatted[1]


_NAMES = st.sampled_from(["Trail Runner", "Boot: Tall", "It's #1", "yes", "2024", "Ünïcode ✓", "a - b", "x"])
_SPEC = {"imageWidth": "64", "imageHeight": "48", "imageFormat": "PNG", "imageBackground": '"#F4F4F4"'}
_TT = {"includeGif": "true", "imageCount": "4", "frameRate": "4", "width": "32", "height": "32"}


def _quote(name: str, style: int) -> str:
    return {0: "'" + name.replace("'", "''") + "'", 1: '"' + name.replace('"', '\\"') + '"'}.get(
        style,
        "'" + name.replace("'", "''") + "'"
        if any(c in name for c in ":#'") or name in ("yes", "2024")
        else name,
    )


@st.composite
def _manifests(draw: st.DrawFn) -> str:
    """Manifests as people write them: any key order, 2 or 4 spaces, comments above and after keys, quoting."""
    step = draw(st.sampled_from([2, 4]))
    dash_in = draw(st.booleans())  # "  - uuid" under products:, or "- uuid" at its column

    def comment(depth: int) -> list[str]:
        return (
            [" " * depth + "# " + draw(st.sampled_from(["note", "why: this", "see #12", "todo"]))]
            if draw(st.integers(0, 3)) == 0
            else []
        )

    def eol() -> str:
        return "   # " + draw(st.sampled_from(["eol", "px", "a: b"])) if draw(st.integers(0, 3)) == 0 else ""

    def block(items: dict[str, str], depth: int) -> list[str]:
        out: list[str] = []
        for key in draw(st.permutations(list(items))):
            out += comment(depth)
            value = items[key]
            if key == "turntable":
                out.append(" " * depth + "turntable:" + eol())
                out += block(_TT, depth + step)
            else:
                out.append(" " * depth + f"{key}: {value}{eol()}")
        return out

    lines = comment(0) + ["defaults:"] + block({**_SPEC, "turntable": ""}, step)
    lines += ["products:"]
    for uuid in [UUID_A, UUID_B][: draw(st.integers(1, 2))]:
        fields = {
            "uuid": uuid if draw(st.booleans()) else f'"{uuid}"',
            "name": _quote(draw(_NAMES), draw(st.integers(0, 2))),
        }
        if draw(st.booleans()):
            fields["imageWidth"] = "100"
        if draw(st.booleans()):
            fields["protect"] = "true"
        item_depth = step if dash_in else 0
        body = block(fields, item_depth + 2)
        first = next(j for j, line in enumerate(body) if not line.lstrip().startswith("#"))
        body[first] = " " * item_depth + "- " + body[first][item_depth + 2 :]
        lines += body + comment(item_depth + 2)
    return "\n".join(lines) + "\n"


@settings(max_examples=60)
@given(_manifests())
def test_any_manifest_formats_idempotently_without_changing_its_meaning(text: str) -> None:
    out = _check(text)
    assert "'" not in out.replace("It's", "")  # quoted where needed, and then with double quotes
    folder = Path(tempfile.mkdtemp())
    try:
        (folder / "before.yaml").write_text(text)
        before = _desired(folder)
        (folder / "before.yaml").write_text(out)
        assert _desired(folder) == before
    finally:
        shutil.rmtree(folder)
