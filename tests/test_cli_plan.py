"""`reconciler plan`, `validate`, `schema` and `force-unlock` on real files, through click's runner
and, for the console script itself, a real subprocess (and a real terminal for colour)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from reconciler.cli import cli
from reconciler.plan import Plan
from reconciler.state import FileStateStore
from tests.rendered import record_all_as_rendered as write_rendered_state

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
A = "58472097-fec0-516d-8326-f7a5eb192f2c"
B = "5125135c-e9b4-5b10-a8ed-fe17af538c64"

CATALOGUE = f"""\
defaults:
  imageWidth: 1200
  imageHeight: 1200
  imageFormat: PNG
  turntable:
    includeGif: true
    imageCount: 36
    frameRate: 12
    width: 720
    height: 720
products:
  - uuid: {A}
    name: Trail Runner
  - uuid: {B}
    name: City Sneaker
"""


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self.state = root / "state" / "renders.state.json"
        self.manifests.mkdir()
        self.write(CATALOGUE)

    def write(self, text: str, name: str = "catalogue.yaml") -> Path:
        path = self.manifests / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def record_all_as_rendered(self) -> None:
        """A state that matches the manifests: what a successful apply leaves."""
        write_rendered_state(self.manifests, self.state)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), env=env, color=True, catch_exceptions=False)

    def plan(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.run(
            "plan", "--manifests", str(self.manifests), "--state", str(self.state), *args, env=env
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def assert_user_error(result: Result, *message: str) -> None:
    """Exit 1, a message naming the problem, and never a traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "Internal error" not in result.output
    for part in message:
        assert part in result.stderr, result.stderr


# -- plan -------------------------------------------------------------------------------------


def test_plan_text_lists_new_products_and_the_cost(project: Project) -> None:
    result = project.plan()
    assert result.exit_code == 0, result.output
    assert f"+ render   {A}  Trail Runner" in result.stdout
    assert (
        "Cost: 1 API request for 2 products: 74 frames (2 stills + 72 turntable frames), 6 s of video, 2 GIFs."
        in result.stdout
    )
    assert "Plan: 2 to render, 0 to re-render, 0 to retry, 0 to resume; 0 unchanged." in result.stdout
    assert not project.state.exists()  # plan never writes the state


def test_plan_without_a_terminal_has_no_colour_codes(project: Project) -> None:
    # color=True in the runner: click would keep codes if we sent them; we must not send any.
    result = project.plan()
    assert not ANSI.search(result.output)


def test_plan_json_is_the_plan_document(project: Project) -> None:
    result = project.plan("--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "reconciler-plan" and data["format_version"] == 1
    assert data["summary"]["render"] == 2 and data["summary"]["changes"] is True
    assert [a["product"] for a in data["actions"]] == sorted([A, B])
    assert data["state"] == {"lineage": "", "serial": 0, "location": str(project.state)}


def test_plan_markdown_is_a_pull_request_comment(project: Project) -> None:
    result = project.plan("--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout.startswith("### reconciler plan\n")
    assert "<details><summary>New products (2)</summary>" in result.stdout


def test_plan_markdown_of_a_big_catalogue_fits_a_github_comment(project: Project) -> None:
    products = "".join(
        f"  - uuid: {i:08x}-0000-4000-8000-{i:012x}\n    name: Product {i}\n" for i in range(5000)
    )
    project.write(CATALOGUE.split("products:")[0] + "products:\n" + products)
    result = project.plan("--format", "markdown")
    assert result.exit_code == 0, result.output
    assert len(result.stdout) < 65_536
    shown = len(re.findall(r"^\| `", result.stdout, re.M))
    assert result.stdout.rstrip().endswith(f"_{5000 - shown} more not shown._")


@pytest.mark.parametrize(("setup", "code"), [("new", 2), ("in_sync", 0), ("broken", 1)])
def test_detailed_exitcode(project: Project, setup: str, code: int) -> None:
    if setup == "in_sync":
        project.record_all_as_rendered()
    if setup == "broken":
        project.write("defaults: [\n", "broken.yaml")
    result = project.plan("--detailed-exitcode")
    assert result.exit_code == code, result.output
    if setup == "in_sync":
        assert "No changes. 2 products up to date." in result.stdout


def test_plan_without_detailed_exitcode_exits_0_with_changes(project: Project) -> None:
    assert project.plan().exit_code == 0


def test_plan_sees_a_changed_spec_as_a_rerender_with_its_effect(project: Project) -> None:
    project.record_all_as_rendered()
    project.write(CATALOGUE + "    imageFormat: WEBP\n    turntable:\n      includeGif: false\n")
    result = project.plan("--detailed-exitcode")
    assert result.exit_code == 2
    assert f"~ rerender {B}  City Sneaker" in result.stdout
    assert "replaces still PNG→WEBP and the MP4 turntable; deletes the GIF" in result.stdout


def test_plan_out_saves_a_plan_that_loads_back(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "plans" / "next.plan.json"
    result = project.plan("--format", "json", "--out", str(out))
    assert result.exit_code == 0
    saved = Plan.from_json(json.loads(out.read_text()), str(out))
    assert saved.to_json() == json.loads(result.stdout)
    text = project.plan("--out", str(out))
    assert f"Saved the plan to {out}" in text.stdout


def test_plan_replace_forces_a_rerender(project: Project) -> None:
    project.record_all_as_rendered()
    result = project.plan("--replace", A, "--format", "json")
    kinds = {a["product"]: (a["kind"], a["reason"]) for a in json.loads(result.stdout)["actions"]}
    assert kinds == {A: ("rerender", "forced"), B: ("noop", "unchanged")}


def test_plan_replace_of_an_unknown_product_is_a_user_error(project: Project) -> None:
    result = project.plan("--replace", "00000000-0000-4000-8000-000000000000")
    assert_user_error(
        result,
        "Error: --replace names products that are not in the manifests: 00000000-0000-4000-8000-000000000000",
    )


def test_plan_uses_manifests_and_state_in_the_working_directory_by_default(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("RECONCILER_STATE", raising=False)
    project.record_all_as_rendered()
    result = project.run("plan")
    assert result.exit_code == 0
    assert "No changes. 2 products up to date." in result.stdout


# -- user mistakes: exit 1, a message, no traceback ------------------------------------------


def test_bad_yaml_is_a_user_error(project: Project) -> None:
    path = project.write("defaults:\n  imageWidth: [1200\n", "bad.yaml")
    assert_user_error(project.plan(), "Error: 1 error in manifests:", f"{path}:3:1: invalid YAML: ")


def test_unknown_field_is_a_user_error_with_a_suggestion(project: Project) -> None:
    project.write(CATALOGUE + "    imagewidth: 800\n")
    result = project.plan()
    assert_user_error(
        result,
        f"{project.manifests / 'catalogue.yaml'}:16:5: products[1].imagewidth: unknown field "
        "'imagewidth' (did you mean 'imageWidth'?)",
    )


def test_missing_manifests_directory_is_a_user_error(project: Project) -> None:
    result = project.run("plan", "--manifests", str(project.root / "nope"), "--state", str(project.state))
    assert_user_error(result, f"{project.root / 'nope'}: no such file or directory")


def test_corrupt_state_is_a_user_error_and_is_left_alone(project: Project) -> None:
    project.state.parent.mkdir()
    project.state.write_bytes(b'{"format_version": 1, "serial": ')
    result = project.plan()
    # No backup exists and state/ is not in git: the hint offers only what is true.
    assert_user_error(
        result,
        f"Error: state file {project.state} is unreadable: not valid JSON at line 1, column 33",
        f"Hint: the file was left untouched. To recover, move it aside (mv {project.state} "
        f"{project.state}.damaged)",
    )
    assert project.state.read_bytes() == b'{"format_version": 1, "serial": '


def test_state_from_a_newer_reconciler_is_a_user_error(project: Project) -> None:
    project.state.parent.mkdir()
    project.state.write_text('{"format_version": 99, "serial": 1, "lineage": "x", "products": {}}')
    assert_user_error(project.plan(), "has format_version 99, newer than this reconciler understands")


HOLDER = textwrap.dedent("""
    import sys
    from reconciler.state import FileStateStore
    with FileStateStore(sys.argv[1]).lock("apply") as info:
        print(info.id, flush=True)
        sys.stdin.readline()
""")


@pytest.fixture
def held_lock(project: Project) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    lock_id = proc.stdout.readline().strip()
    try:
        yield lock_id
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_a_writing_command_on_a_corrupt_state_leaves_it_byte_for_byte(project: Project) -> None:
    project.state.parent.mkdir()
    project.state.write_bytes(b'{"format_version": 1, "serial": 3, "lineage": "x", "products": {"a": 1}}')
    result = project.run("state", "rm", "--state", str(project.state), A)
    assert_user_error(result, f"Error: state file {project.state} is unreadable: products.a: ")
    assert (
        project.state.read_bytes()
        == b'{"format_version": 1, "serial": 3, "lineage": "x", "products": {"a": 1}}'
    )
    left = sorted(p.name for p in project.state.parent.iterdir())
    assert left in (
        ["renders.state.json"],
        ["renders.state.json", "renders.state.json.lock"],
    )  # no backup, temp, journal


def test_a_writing_command_on_a_locked_state_names_the_holder(project: Project, held_lock: str) -> None:
    result = project.run("state", "rm", "--state", str(project.state), A)
    assert_user_error(
        result,
        f"Error: state {project.state} is locked by another process (id={held_lock}, operation=apply, ",
        f"reconciler force-unlock --state {project.state} {held_lock}",
    )


def test_force_unlock_with_a_wrong_id_is_a_user_error(project: Project, held_lock: str) -> None:
    result = project.run("force-unlock", "--state", str(project.state), "wrong-id")
    assert_user_error(
        result, f"no lock with id wrong-id on {project.state}: the current holder is {held_lock}"
    )


def test_force_unlock_with_the_holders_id_releases_it(project: Project, held_lock: str) -> None:
    result = project.run("force-unlock", "--state", str(project.state), held_lock)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Released lock {held_lock} (apply by ")
    assert not FileStateStore(project.state).info_path.exists()


def test_plan_reads_a_locked_state_without_waiting(project: Project, held_lock: str) -> None:
    """plan never writes, so another process's lock does not stop it."""
    assert project.plan().exit_code == 0


# -- validate and schema ----------------------------------------------------------------------


def test_validate_json_reports_ok(project: Project) -> None:
    result = project.run("validate", "--manifests", str(project.manifests), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "products": 2,
        "files": [str(project.manifests / "catalogue.yaml")],
        "diagnostics": [],
    }


def test_validate_json_reports_every_diagnostic(project: Project) -> None:
    path = project.write(CATALOGUE + "    imageWidth: 99999\n  - uuid: nope\n")
    result = project.run("validate", "--manifests", str(project.manifests), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["diagnostics"] == [
        {
            "location": {"file": str(path), "line": 16, "column": 17},
            "field": "products[1].imageWidth",
            "message": "expected 16..8192 (still width in pixels), got 99999",
            "hint": None,
        },
        {
            "location": {"file": str(path), "line": 17, "column": 11},
            "field": "products[2].uuid",
            "message": "expected a product UUID like 3f2b8c1e-0000-4000-8000-000000000000, got 'nope'",
            "hint": None,
        },
    ]


def test_validate_text(project: Project) -> None:
    result = project.run("validate", "--manifests", str(project.manifests))
    assert (result.exit_code, result.stdout) == (0, "OK: 2 products in 1 file(s).\n")


def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml"))


def test_schema_is_a_json_schema_that_accepts_the_example_catalogue() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    files = _yaml_files(ROOT / "manifests")
    assert files
    for path in files:
        errors = list(validator.iter_errors(YAML(typ="safe").load(path.read_text(encoding="utf-8"))))
        assert errors == [], (path, [e.message for e in errors])


@pytest.mark.parametrize(
    "name",
    [
        "misspelt_key",
        "unknown_nested_key",
        "unknown_product_key",
        "bad_format",
        "bound_image_width_high",
        "bound_frame_rate",
        "wrong_type",
        "top_level_list",
    ],
)
def test_schema_rejects_what_the_loader_rejects(name: str) -> None:
    schema = json.loads(CliRunner().invoke(cli, ["schema"]).stdout)
    data = YAML(typ="safe").load((ROOT / "tests" / "cases" / "manifests" / f"{name}.yaml").read_text())
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(data))


# -- the console script itself ------------------------------------------------------------------


def _console_script() -> str:
    exe = Path(sys.executable).with_name("reconciler")
    found = str(exe) if exe.exists() else shutil.which("reconciler")
    assert found, "the reconciler console script is not installed"
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "NO_COLOR"))}
    env.update(extra)
    return env


def test_console_script_plans_in_a_real_process(project: Project) -> None:
    proc = subprocess.run(
        [_console_script(), "plan", "--format", "json", "--detailed-exitcode"],
        cwd=project.root,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["summary"]["render"] == 2


def test_console_script_reports_a_user_error_without_a_traceback(project: Project) -> None:
    project.write("defaults: {imageWidth: 1}\nproducts: 7\n", "bad.yaml")
    proc = subprocess.run(
        [_console_script(), "plan"], cwd=project.root, capture_output=True, text=True, env=_env(), timeout=60
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: ")
    assert "bad.yaml:2:11: products: expected a list of products, got a number" in proc.stderr


def test_console_script_usage_errors_exit_1_not_2(project: Project) -> None:
    """2 means "changes present" with --detailed-exitcode: a usage error must not look like it."""
    proc = subprocess.run(
        [_console_script(), "plan", "--detailed-exitcode", "--max-batch-size", "0"],
        cwd=project.root,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Invalid value for '--max-batch-size'" in proc.stderr


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str], *, stderr_too: bool = False) -> str:
    """Run the console script with its stdout (and stderr) on a pseudo-terminal; return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=follower,
        stderr=follower if stderr_too else subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        proc.wait(timeout=30)
    return b"".join(chunks).decode()


def test_console_script_colours_a_terminal_unless_no_color(project: Project) -> None:
    coloured = _on_a_terminal([_console_script(), "plan"], project.root, _env())
    assert ANSI.search(coloured), coloured
    plain = _on_a_terminal([_console_script(), "plan"], project.root, _env(NO_COLOR="1"))
    assert "Plan: 2 to render" in plain
    assert not ANSI.search(plain)
    flag = _on_a_terminal([_console_script(), "plan", "--no-color"], project.root, _env())
    assert not ANSI.search(flag)


def test_error_messages_respect_no_color_on_a_terminal(project: Project) -> None:
    project.write("defaults: [\n", "bad.yaml")
    out = _on_a_terminal([_console_script(), "plan"], project.root, _env(NO_COLOR="1"), stderr_too=True)
    assert "Error: 1 error in manifests" in out
    assert not ANSI.search(out)
