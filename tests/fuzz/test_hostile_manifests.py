"""Hostile manifests never crash the CLI, hang it or exhaust the machine; every error names
its file, and its line and column wherever the YAML has one.

The real CLI (``validate --format json``) reads each case in a child process limited to
corpus.MEMORY_CEILING of address space and corpus.CPU_SECONDS of CPU: a traceback, a
segfault, MemoryError or SIGXCPU fails the test and names the case.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tests.fuzz.corpus import (
    DEFAULTS,
    HOSTILE_MANIFESTS,
    VALID,
    A,
    B,
    Batch,
    _deep_flow,
    _laughs,
    lay_out,
    limited,
    run_batch,
)

# Problems about a file as a whole, where no line exists: it could not be read, or it is
# refused before parsing.
FILE_LEVEL = ("cannot read file:", "file is ", "more than 3,000,000 YAML nodes")

# The issue's reproductions: what each must say.
EXPECTED = {
    "laughs_override": 'a "billion laughs"',
    "laughs_top": 'a "billion laughs"',
    "deep_flow_1000": "nested deeper than 64 levels",
    "deep_flow_50000": "nested deeper than 64 levels",
    "huge_int": "a number of 5,000 digits is too long to read (at most 4,300)",
    "int_key_in_override": "unknown field 1",
    "uuid_block_scalar": "expected a product UUID like",
    "underscore_int": "expected a whole number, got text '1_200'",
    "tt_too_large": "more than the platform renders",
    "fifo": "it is a FIFO (named pipe), not a regular file",
    "devzero": "it is a character device, not a regular file",
    "oversize": "more than the 16 MiB a manifest file may be",
    "latin1": "not UTF-8 text: byte 0xE9",
    "many_errors": "expected a product UUID like",
}


# Presets: what each case must say (each case is a catalogue of its own).
PRESET_EXPECTED = {
    "preset_chain_10000": "a chain of presets may be at most 16 long",
    "preset_chain_100000_in_50_files": "a chain of presets may be at most 16 long",
    "preset_circle": "presets build on each other in a circle: a → b → c → a",
    "preset_self": "presets build on each other in a circle: me → me",
    "preset_circle_in_defaults": "presets build on each other in a circle: a → a",
    "preset_unknown": "unknown preset 'heor'",
    "preset_unknown_many": "unknown preset 'known",
    "preset_twice": "preset 'x' is defined twice",
    "preset_alias_circle": "alias *p refers to a collection that contains it",
    "preset_laughs": 'a "billion laughs"',
    "preset_laughs_ref": 'a "billion laughs"',
    "preset_deep_flow": "nested deeper than 64 levels",
    "preset_ref_mapping": "expected the name of a preset, got a mapping",
    "preset_bad_value": "expected 2..720 (frames in one 360° turn), got 9999",
    "preset_huge_name": "unknown preset 'pppp",
    "preset_many_names": "unknown preset 'preset-numbr-",
    "preset_megabyte_name_bad_field": "unknown field 'imagewidth'",
}


def check(batch: Batch, folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every case ran to a clean answer; returns each case's JSON output."""
    assert batch.returncode == 0, f"the child died ({batch.returncode}) in case {batch.last_case()}"
    assert set(batch.results) == set(folders), f"cases without a result after {batch.last_case()}"
    outputs = {}
    for name, result in batch.results.items():
        assert result["exception"] is None, (name, result["exception"])
        assert "Traceback" not in result["stderr"] and "Internal error" not in result["stderr"], (
            name,
            result["stderr"],
        )
        out = json.loads(result["stdout"])  # JSON, never a traceback
        assert result["exit"] == (0 if out["valid"] else 1), name
        for d in out.get("diagnostics", []):
            location = d["location"]
            assert Path(location["file"]).is_relative_to(folders[name]), (name, d)
            if not d["message"].startswith(FILE_LEVEL):
                assert location["line"] is not None and location["column"] is not None, (name, d)
        outputs[name] = out
    return outputs


@pytest.fixture(scope="module")
def hand_written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], Batch]:
    root = tmp_path_factory.mktemp("hostile")
    folders = lay_out(HOSTILE_MANIFESTS, root)
    batch = run_batch("manifests", root)
    return check(batch, folders), batch


def test_every_hostile_manifest_gets_a_clean_json_answer(hand_written: tuple[dict[str, Any], Batch]) -> None:
    outputs, batch = hand_written
    assert len(outputs) == len(HOSTILE_MANIFESTS) >= 70
    valid = sorted(n for n, out in outputs.items() if out["valid"])
    assert valid == ["empty_dir_named_yaml", "presets_wide_fine", "valid"]
    print(f"{len(outputs)} hostile manifests, peak RSS {batch.peak_mib:.0f} MiB", file=sys.stderr)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_issues_cases_say_what_is_wrong(hand_written: tuple[dict[str, Any], Batch], name: str) -> None:
    outputs, _ = hand_written
    messages = [d["message"] for d in outputs[name]["diagnostics"]]
    assert any(EXPECTED[name] in m for m in messages), messages


@pytest.mark.parametrize("name", sorted(PRESET_EXPECTED))
def test_broken_presets_say_what_is_wrong_where(
    hand_written: tuple[dict[str, Any], Batch], name: str
) -> None:
    outputs, _ = hand_written
    found = [d for d in outputs[name]["diagnostics"] if PRESET_EXPECTED[name] in d["message"]]
    assert found, [d["message"] for d in outputs[name]["diagnostics"]]
    assert all(d["location"]["line"] for d in found)


def test_no_diagnostic_quotes_a_megabyte(hand_written: tuple[dict[str, Any], Batch]) -> None:
    outputs, _ = hand_written
    for name, out in outputs.items():
        for d in out.get("diagnostics", []):
            assert len(json.dumps(d)) < 2_000, (name, json.dumps(d)[:300])


def test_a_broken_preset_chain_or_circle_is_one_error_not_one_per_preset(
    hand_written: tuple[dict[str, Any], Batch],
) -> None:
    outputs, _ = hand_written
    for name in (
        "preset_chain_10000",
        "preset_chain_100000_in_50_files",
        "preset_circle",
        "preset_circle_in_defaults",
    ):
        assert len(outputs[name]["diagnostics"]) == 1 and outputs[name]["more"] == 0, (name, outputs[name])
    many = outputs["preset_unknown_many"]
    assert (len(many["diagnostics"]), many["more"]) == (100, 9900)
    assert "did you mean 'known0'?" in many["diagnostics"][0]["hint"]
    assert len(outputs["preset_bad_value"]["diagnostics"]) == 1  # at the preset, once for its 5,000 products


def test_ten_thousand_errors_show_the_first_hundred_and_count_the_rest(
    hand_written: tuple[dict[str, Any], Batch],
) -> None:
    outputs, _ = hand_written
    out = outputs["many_errors"]
    assert (len(out["diagnostics"]), out["more"]) == (100, 9900)
    assert [d["location"]["line"] for d in out["diagnostics"]] == list(range(12, 112))


def test_the_real_console_script_prints_json_for_every_case_at_once(tmp_path: Path) -> None:
    """The installed ``reconciler`` in its own process, all the issue's cases in one run."""
    folders = lay_out({n: HOSTILE_MANIFESTS[n] for n in EXPECTED}, tmp_path)  # many_errors comes last
    script = Path(sys.executable).with_name("reconciler")
    argv = [
        str(script),
        "validate",
        "--format",
        "json",
        *[a for f in folders.values() for a in ("-m", str(f))],
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limited, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert out["valid"] is False
    # Each case's errors (and, across them, uuid A declared in several), then many_errors' first
    # ones up to the 100 shown; the rest are counted.
    assert {Path(d["location"]["file"]).parent.name for d in out["diagnostics"]} == set(EXPECTED)
    assert len(out["diagnostics"]) == 100 and out["more"] > 9_900


# -- generated documents -------------------------------------------------------------------------

FIELDS = [
    "imageWidth",
    "imageHeight",
    "imageFormat",
    "imageBackground",
    "transparentBackground",
    "turntable",
    "includeGif",
    "imageCount",
    "frameRate",
    "width",
    "height",
    "background",
    "uuid",
    "name",
    "protect",
    "defaults",
    "products",
    "<<",
    "preset",
    "presets",
]
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(-3, 3), st.none(), st.booleans())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            A,
            B,
            A.upper(),
            A + "\n",
            "1_200",
            "0x4B0",
            "+5",
            "012",
            "#F4F4F4",
            "F4F4F4",
            "PNG",
            "JPG",
            "WEBP",
            "yes",
            "~",
            "*",
            "&a",
            "!!int",
            "<<",
            "9" * 5000,
            "2026-13-45",
            "-.inf",
        ]
    ),
    st.integers(0, 9000),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
PRESET_NAMES = ["a", "b", "c", "A", "a "]
preset_ref = st.one_of(st.sampled_from(PRESET_NAMES), values)
spec_like = st.dictionaries(
    st.sampled_from(FIELDS[:12] + ["preset"]), st.one_of(values, preset_ref), max_size=7
)
product_like = st.fixed_dictionaries(
    {},
    optional={
        "uuid": st.one_of(st.sampled_from([A, B]), values),
        "name": values,
        "protect": values,
        "turntable": spec_like,
        "imageWidth": values,
        "imageFormat": values,
        "preset": preset_ref,
    },
)
presets_like = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(PRESET_NAMES), keys), st.one_of(spec_like, values), max_size=4),
    values,
)
manifests = st.fixed_dictionaries(
    {"products": st.one_of(st.lists(product_like, min_size=1, max_size=5), values)},
    optional={"defaults": st.one_of(spec_like, values), "presets": presets_like},
)


def dumped(data: Any, flow: bool | None) -> str:
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = flow
    buffer = io.StringIO()
    dumper.dump(data, buffer)
    return buffer.getvalue()


# Characters that mean something to YAML, and some that break readers.
ALPHABET = "[]{}:,-?&*!|>'\"#%@`~ \t\n\r\x00\x85\u2028\ufeff0123456789abcxyz_.+é\U0001f45f"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A real manifest after a few random edits: inserts, cuts, and repeats of a piece."""
    text = draw(st.sampled_from([VALID, DEFAULTS, dumped(json.loads(json.dumps({"x": 1})), True) + VALID]))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "cut", "repeat"]))
        if edit == "insert":
            text = text[:at] + draw(st.text(ALPHABET, min_size=1, max_size=6)) + text[at:]
        elif edit == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 30)) :]
        else:
            piece = text[at : at + draw(st.integers(1, 12))]
            text = text[:at] + piece * draw(st.integers(2, 400)) + text[at:]
    return text


@st.composite
def deep_flow(draw: st.DrawFn) -> str:
    opening, closing = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("[{a: ", "}]"), ("[ ", " ]")]))
    return _deep_flow(draw(st.integers(1, 3000)), opening, closing)


templates = st.one_of(
    st.builds(
        _laughs,
        st.integers(2, 12),
        st.integers(2, 12),
        st.sampled_from(["top", "defaults", "override", "name", "value"]),
    ),
    deep_flow(),
    st.integers(1, 300).map(lambda n: "- " * n + "x\n"),
    st.integers(1, 200).map(lambda n: "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "v\n"),
)

documents = st.one_of(
    st.builds(dumped, manifests, st.sampled_from([None, True, False])),
    st.builds(dumped, values, st.sampled_from([None, True, False])),
    mutated(),
    templates,
)


# CI runs 2 fixed batches; RECONCILER_FUZZ_BATCHES=50 runs 50 random ones, to hunt.
BATCHES = int(os.environ.get("RECONCILER_FUZZ_BATCHES", "0")) or None


@given(st.lists(documents, min_size=60, max_size=60))
@settings(
    max_examples=BATCHES or 2,
    deadline=None,
    database=None,
    derandomize=BATCHES is None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
def test_generated_manifests_never_crash_and_always_name_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, docs: list[str]
) -> None:
    # 2 batches of 60 generated documents, each batch in one child under the limits.
    root = tmp_path_factory.mktemp("generated")
    folders = {}
    for i, text in enumerate(docs):
        folder = root / f"doc{i:03}"
        folder.mkdir()
        (folder / "a.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        folders[folder.name] = folder
    check(run_batch("manifests", root), folders)
