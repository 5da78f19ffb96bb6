"""Damaged state files never crash the CLI or exhaust the machine: each is refused with an
error naming the file (and the line and column where JSON gives one) and a hint, and is
left byte for byte as it was.

``reconciler state list --state FILE`` reads each case in a child process under the same
limits as the manifest corpus (tests/fuzz/corpus.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.corpus import DAMAGED_STATES, RECORD, Batch, lay_out, limited, paths_in, run_batch, state_json

# Damage that still reads as a valid state: accepted, and that is right.
ACCEPTED = {"utf16"}  # JSON may be UTF-16 (RFC 8259 only asks writers for UTF-8)


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every regular file of a case (a FIFO or a device is not read)."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not stat.S_ISREG(p.stat().st_mode):
            out[p.name] = "not a regular file"
        else:
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check(
    batch: Batch, folders: dict[str, Path], before: dict[str, dict[str, str]], accepted: set[str] = ACCEPTED
) -> dict[str, dict[str, Any]]:
    assert batch.returncode == 0, f"the child died ({batch.returncode}) in case {batch.last_case()}"
    assert set(batch.results) == set(folders), f"cases without a result after {batch.last_case()}"
    for name, result in batch.results.items():
        assert result["exception"] is None, (name, result["exception"])
        stderr = result["stderr"]
        assert "Traceback" not in stderr and "Internal error" not in stderr, (name, stderr)
        assert fingerprint(folders[name]) == before[name], f"{name}: the state was modified"
        if result["exit"] == 0:
            assert name in accepted, (name, result["stdout"])
            continue
        assert result["exit"] == 1, (name, stderr)
        state = folders[name] / "renders.state.json"
        assert stderr.startswith((f"Error: state file {state} ", f"Error: state file {state}.journal ")), (
            name,
            stderr,
        )
        assert "\nHint: " in stderr, (name, stderr)
        if "not valid JSON" in stderr:  # the state's line and column, or the journal's line
            assert " at line " in stderr or ".journal is unreadable: line " in stderr, (name, stderr)
    return batch.results


def run(cases: dict[str, Any], root: Path) -> tuple[Batch, dict[str, Path], dict[str, dict[str, str]]]:
    folders = lay_out(cases, root)
    before = {name: fingerprint(folder) for name, folder in folders.items()}
    return run_batch("state", root), folders, before


def test_every_damaged_state_is_refused_by_name_and_left_alone(tmp_path: Path) -> None:
    batch, folders, before = run(DAMAGED_STATES, tmp_path)
    results = check(batch, folders, before)
    assert len(results) == len(DAMAGED_STATES) >= 40
    print(f"{len(results)} damaged states, peak RSS {batch.peak_mib:.0f} MiB", file=sys.stderr)


def test_the_real_console_script_refuses_a_state_nested_100000_deep(tmp_path: Path) -> None:
    lay_out({"deep": DAMAGED_STATES["deep_100000"]}, tmp_path)
    state = tmp_path / "deep" / "renders.state.json"
    script = Path(sys.executable).with_name("reconciler")
    for command in (["state", "list"], ["state", "show", "58472097-fec0-516d-8326-f7a5eb192f2c"], ["plan"]):
        proc = subprocess.run(
            [str(script), *command, "--state", str(state), "-m", str(tmp_path / "none")]
            if command == ["plan"]
            else [str(script), *command, "--state", str(state)],
            capture_output=True,
            text=True,
            preexec_fn=limited,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert proc.returncode == 1, (command, proc.stderr)
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
        if command != ["plan"]:  # plan stops first at the missing manifests folder
            assert proc.stderr.startswith(
                f"Error: state file {state} is unreadable: not a state: JSON nested "
            ), (command, proc.stderr)


# -- generated damage ------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["", "58472097-fec0-516d-8326-f7a5eb192f2c", "rendered", "1", "-1"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def damaged_states(draw: st.DrawFn) -> bytes:
    """A real state with a value replaced, a key renamed, or its text cut, repeated or spliced."""
    data = state_json(
        products={
            "58472097-fec0-516d-8326-f7a5eb192f2c": RECORD,
            "393f8b64-b960-5375-b254-484ff9c12e30": {
                **RECORD,
                "history": [
                    {
                        "spec_hash": "1" * 64,
                        "spec": RECORD["spec"],
                        "recorded_at": "t",
                        "attachments": RECORD["attachments"],
                    }
                ],
            },
        }
    )
    data = json.loads(json.dumps(data))
    how = draw(st.sampled_from(["value", "key", "text"]))
    if how == "text":
        raw = json.dumps(data, indent=draw(st.sampled_from([None, 1]))).encode()
        at = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 40))
        insert = draw(
            st.binary(max_size=8) | st.sampled_from([b"[" * 2000, b"{", b"\xe9", b"9" * 5000, b"NaN"])
        )
        return raw[:at] + insert + raw[at + cut :]
    path = draw(st.sampled_from(paths_in(data)[1:]))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if how == "value":
        parent[path[-1]] = draw(json_values)
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = parent.pop(path[-1])
    return json.dumps(data).encode()


BATCHES = int(os.environ.get("RECONCILER_FUZZ_BATCHES", "0")) or None  # as in test_hostile_manifests


@given(st.lists(damaged_states(), min_size=40, max_size=40))
@settings(
    max_examples=BATCHES or 2,
    deadline=None,
    database=None,
    derandomize=BATCHES is None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_generated_damage_is_refused_or_is_harmless(
    tmp_path_factory: pytest.TempPathFactory, docs: list[bytes]
) -> None:
    """2 batches of 40 damaged states. A damage can be harmless (a name changed to other text):
    then the state reads, and the next write would keep it as it is."""
    root = tmp_path_factory.mktemp("generated")
    cases = {
        f"doc{i:03}": (lambda raw: lambda folder: (folder / "renders.state.json").write_bytes(raw))(raw)  # noqa: B023 - raw is bound by the outer lambda's call
        for i, raw in enumerate(docs)
    }
    batch, folders, before = run(cases, root)
    check(batch, folders, before, accepted=set(cases))
