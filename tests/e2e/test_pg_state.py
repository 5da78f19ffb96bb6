"""The real CLI against the sandbox with its state in a real PostgreSQL (``--state postgresql://…``).

Every command here gets the URL with the password in it; no output, error, saved plan or
history row may show that password.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import PRODUCTS, ROOT, Project, manifest

TRAIL, COURT = PRODUCTS["trail"], PRODUCTS["court"]


class Seen:
    """Every piece of text the CLI gave back, to look for the password in at the end."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.texts: list[str] = []

    def __call__(self, result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.texts += [result.stdout, result.stderr]
        return result

    def check(self) -> None:
        assert self.password and all(self.password not in text for text in self.texts)


@pytest.fixture
def seen(pg_url: str) -> Seen:
    return Seen(urlsplit(pg_url).password or "")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@")


def test_apply_plan_and_the_state_commands_work_on_a_postgresql_state(
    project: Project, pg_url: str, seen: Seen
) -> None:
    project.write_manifest(manifest({"trail": TRAIL, "court": COURT}))
    applied = seen(project.apply("--state", pg_url))
    assert applied.returncode == 0, applied.stderr
    plan = seen(project.cli("plan", "--state", pg_url, "--detailed-exitcode"))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes" in plan.stdout
    listed = seen(
        project.cli("state", "list", env={"RECONCILER_STATE": pg_url})
    )  # the variable selects it too
    assert listed.returncode == 0, listed.stderr
    assert TRAIL in listed.stdout and COURT in listed.stdout
    assert f"2 product(s); state {redacted(pg_url)}, serial " in listed.stdout
    shown = seen(project.cli("state", "show", TRAIL, "--state", pg_url))
    assert shown.returncode == 0, shown.stderr
    assert "changes (newest first" in shown.stdout
    assert "apply by " in shown.stdout and f"{TRAIL} rendered" in shown.stdout
    assert not project.state_path.exists()  # nothing went to the default file
    seen.check()


def test_a_saved_plan_is_on_record_and_a_stale_one_is_refused_across_runs(
    project: Project, pg_url: str, seen: Seen
) -> None:
    project.write_manifest(manifest({"trail": TRAIL}))
    made = seen(project.cli("plan", "--state", pg_url, "--out", "plan.json"))
    assert made.returncode == 0, made.stderr
    saved = (project.root / "plan.json").read_text()
    assert json.loads(saved)["state"]["location"] == redacted(pg_url)
    seen.texts.append(saved)
    applied = seen(project.apply("plan.json", "--state", pg_url))
    assert applied.returncode == 0, applied.stderr
    history = seen(project.cli("state", "history", "--state", pg_url, "--format", "json", "--limit", "100"))
    versions = json.loads(history.stdout)["versions"]
    digest = hashlib.sha256(saved.encode()).hexdigest()
    assert versions and {v["plan"] for v in versions} == {f"plan.json sha256:{digest}"}
    assert {v["operation"] for v in versions} == {"apply"}

    project.write_manifest(manifest({"trail": TRAIL, "court": COURT}))
    assert seen(project.cli("plan", "--state", pg_url, "--out", "later.json")).returncode == 0
    assert seen(project.cli("state", "rm", TRAIL, "--state", pg_url)).returncode == 0  # the state moves on
    stale = seen(project.apply("later.json", "--state", pg_url))
    assert stale.returncode == 1
    assert "saved plan is stale: the state's serial moved from" in stale.stderr
    seen.check()


def test_state_migrate_from_the_file_to_postgresql_and_back(
    project: Project, pg_url: str, seen: Seen
) -> None:
    project.write_manifest(manifest({"trail": TRAIL, "court": COURT}))
    assert project.apply().returncode == 0
    file_state = project.state()
    moved = seen(project.cli("state", "migrate", "state/renders.state.json", pg_url))
    assert moved.returncode == 0, moved.stderr
    assert (
        f"Copied 2 product(s) from state/renders.state.json to {redacted(pg_url)} (lineage "
        f"{file_state['lineage']}, serial {file_state['serial']})."
    ) in moved.stdout
    plan = seen(project.cli("plan", "--state", pg_url, "--detailed-exitcode"))
    assert plan.returncode == 0 and "No changes" in plan.stdout
    pulled = seen(project.cli("state", "pull", "--state", pg_url))
    assert pulled.stdout == project.state_path.read_text()  # byte for byte what the file store writes

    # The file moves on; copying it again would replace the database's state: only with --force.
    assert seen(project.cli("state", "rm", COURT)).returncode == 0
    refused = seen(project.cli("state", "migrate", "state/renders.state.json", pg_url))
    assert refused.returncode == 1
    assert (
        f"Error: {redacted(pg_url)} already holds a state (lineage {file_state['lineage']}, serial "
        f"{file_state['serial']}, 2 products); refusing to replace it" in refused.stderr
    )
    assert "--force" in refused.stderr
    forced = seen(project.cli("state", "migrate", "state/renders.state.json", pg_url, "--force"))
    assert forced.returncode == 0, forced.stderr
    assert "replaced: lineage" in forced.stdout

    back = seen(project.cli("state", "migrate", pg_url, "state/back.state.json"))
    assert back.returncode == 0, back.stderr
    assert (project.root / "state" / "back.state.json").read_text() == project.state_path.read_text()
    seen.check()


HOLDER = """
import sys
from reconciler.state import open_store
with open_store(sys.argv[1]).lock("apply") as info:
    print(info.id, flush=True)
    sys.stdin.read()
"""


def test_a_locked_postgresql_state_names_its_holder_and_force_unlock_frees_it(
    project: Project, pg_url: str, seen: Seen
) -> None:
    project.write_manifest(manifest({"trail": TRAIL}))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lock_id = holder.stdout.readline().strip()
        locked = seen(project.apply("--state", pg_url, "--lock-timeout", "0.3"))
        assert locked.returncode == 1
        assert (
            f"Error: state {redacted(pg_url)} is locked by another process (id={lock_id}, operation=apply, "
            "who="
        ) in locked.stderr
        assert f"pid={holder.pid}" in locked.stderr
        assert f"reconciler force-unlock --state {redacted(pg_url)} {lock_id}" in locked.stderr
        unlocked = seen(project.cli("force-unlock", "--state", pg_url, lock_id))
        assert unlocked.returncode == 0, unlocked.stderr
        assert unlocked.stdout.startswith(f"Released lock {lock_id} (apply by ")
        applied = seen(project.apply("--state", pg_url))  # while the old holder still lives
        assert applied.returncode == 0, applied.stderr
    finally:
        holder.communicate("", timeout=20)
    history = seen(project.cli("state", "history", "--state", pg_url))
    assert f"force-unlock {lock_id} by " in history.stdout
    seen.check()


def test_a_wrong_password_is_a_clear_error_without_the_password(project: Project, pg_url: str) -> None:
    parts = urlsplit(pg_url)
    wrong = pg_url.replace(f":{parts.password}@", ":not-the-Pa55word@")
    project.write_manifest(manifest({"trail": TRAIL}))
    result = project.cli("plan", "--state", wrong)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot read the state from {redacted(wrong)}: ")
    assert "password authentication failed" in result.stderr
    assert "not-the-Pa55word" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_the_new_state_commands_refuse_what_they_cannot_do(project: Project, pg_url: str, seen: Seen) -> None:
    project.write_manifest(manifest({"trail": TRAIL}))
    cases = [
        (
            ("state", "history"),
            "Error: state/renders.state.json is a JSON file: it keeps no history of its own",
        ),
        (("state", "pull", "--serial", "1"), "Error: state/renders.state.json is a JSON file"),
        (
            ("state", "pull", "--state", pg_url, "--serial", "7"),
            f"Error: serial 7 is not in the history of {redacted(pg_url)}",
        ),
        (
            ("state", "migrate", pg_url, "state/copy.json"),
            f"Error: {redacted(pg_url)} holds no state yet; nothing to copy",
        ),
        (("state", "migrate", pg_url, pg_url), f"Error: FROM and TO are the same state ({redacted(pg_url)})"),
        (
            ("plan", "--state", "s3://bucket/renders.json"),
            "Error: state location s3://…: no state backend for 's3'",
        ),
    ]
    for args, expected in cases:
        result = seen(project.cli(*args))
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith(expected), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert seen(project.apply("--state", pg_url)).returncode == 0
    unknown = seen(project.cli("state", "pull", "--state", pg_url, "--serial", "999"))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(f"Error: serial 999 is not in the history of {redacted(pg_url)}")
    assert not (project.root / "state" / "copy.json").exists()
    seen.check()
