"""Every hint, followed, works (issue 13): the hints of commands that need no platform.

Each test makes the mistake, checks the exact hint the real CLI gives (a ``Hint:`` line, or the
``(...)`` of a manifest diagnostic), does what the hint says, and checks that the command then
succeeds. The hints that need the platform are in test_hints.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import PRODUCTS, TINY_DEFAULTS, manifest

TRAIL, COURT = PRODUCTS["trail"], PRODUCTS["court"]


class Offline:
    """A project directory and the real CLI, with no platform at all (no VNTANA_* settings)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "manifests").mkdir(parents=True)

    def write(self, text: str | bytes, name: str = "catalogue.yaml") -> Path:
        path = self.root / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
        clean.update({"NO_COLOR": "1", **(env or {})})
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def offline(tmp_path: Path) -> Offline:
    return Offline(tmp_path / "project")


def hint(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.removeprefix("Hint: ") for line in result.stderr.splitlines() if line.startswith("Hint: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def valid(offline: Offline) -> None:
    ok(offline.cli("validate"))


# -- manifests (loader) --------------------------------------------------------------------------


def product(uuid: str, extra: str = "") -> str:
    return f'  - uuid: {uuid}\n    name: "x"\n' + "".join(f"    {line}\n" for line in extra.splitlines())


def with_products(*entries: str, defaults: str = TINY_DEFAULTS.format(gif="false")) -> str:
    return defaults + "products:\n" + "".join(entries)


@pytest.mark.parametrize(
    ("broken", "diagnostic", "fixed"),
    [
        pytest.param(
            with_products(product(TRAIL, "imageWidht: 64")),
            "products[0].imageWidht: unknown field 'imageWidht' (did you mean 'imageWidth'?)",
            with_products(product(TRAIL, "imageWidth: 64")),
            id="did-you-mean",
        ),
        pytest.param(
            with_products(product(TRAIL, 'imageWidth: "64"')),
            "products[0].imageWidth: expected a whole number, got text '64' (write it without quotes: 64)",
            with_products(product(TRAIL, "imageWidth: 64")),
            id="quoted-number",
        ),
        pytest.param(
            with_products(product(TRAIL, "imageWidth: 1_200")),
            "(write whole numbers in plain decimal digits, e.g. 1200, without _, 0x, 0o or +)",
            with_products(product(TRAIL, "imageWidth: 1200")),
            id="underscored-number",
        ),
        pytest.param(
            with_products(f"  - uuid: |\n      {TRAIL}\n    name: x\n"),
            "(remove the spaces or line break around it; a block scalar such as 'uuid: |' keeps a newline)",
            with_products(product(TRAIL)),
            id="uuid-block-scalar",
        ),
        pytest.param(
            with_products("  - name: x\n"),
            "missing field uuid (every product needs its VNTANA product uuid)",
            with_products(product(TRAIL)),
            id="missing-uuid",
        ),
        pytest.param(
            with_products(f"  - uuid: {TRAIL}\n    name: 2024\n"),
            '(quote it, e.g. name: "2024")',
            with_products(f'  - uuid: {TRAIL}\n    name: "2024"\n'),
            id="numeric-name",
        ),
        pytest.param(
            "defaults:\n  imageWidth: 32\n  imageHeight: 24\n  imageFormat: PNG\nproducts:\n"
            + product(TRAIL),
            "missing field turntable (set turntable in this file's defaults or on the product)",
            with_products(product(TRAIL)),
            id="missing-field",
        ),
        pytest.param(
            with_products(product(TRAIL)) + "<<<<<<< HEAD\n" + product(COURT) + "=======\n>>>>>>> other\n",
            "the file contains git merge-conflict markers (<<<<<<<, =======, >>>>>>>) from line",
            with_products(product(TRAIL), product(COURT)),
            id="merge-conflict",
        ),
    ],
)
def test_a_manifest_hint_followed_validates(
    offline: Offline, broken: str, diagnostic: str, fixed: str
) -> None:
    offline.write(broken)
    result = offline.cli("validate")
    assert result.returncode == 1
    assert diagnostic in result.stderr, result.stderr
    offline.write(fixed)
    valid(offline)


def test_a_product_declared_twice_keep_one(offline: Offline) -> None:
    offline.write(with_products(product(TRAIL)), "a.yaml")
    offline.write(with_products(product(TRAIL)), "b.yaml")
    result = offline.cli("validate")
    assert f"product {TRAIL} is declared twice (also at manifests/b.yaml" in result.stderr
    assert "; keep one)" in result.stderr
    (offline.root / "manifests" / "b.yaml").unlink()
    valid(offline)


def test_a_manifests_path_that_does_not_exist_pass_the_directory(offline: Offline) -> None:
    offline.write(with_products(product(TRAIL)))
    result = offline.cli("validate", "--manifests", "manifest")
    assert (
        "manifest: no such file or directory (pass the manifests directory, e.g. --manifests manifests/)"
        in result.stderr
    )
    ok(offline.cli("validate", "--manifests", "manifests/"))


def test_a_broken_symlink_remove_it(offline: Offline) -> None:
    offline.write(with_products(product(TRAIL)))
    (offline.root / "manifests" / "gone.yaml").symlink_to(offline.root / "nowhere.yaml")
    result = offline.cli("validate")
    assert (
        "cannot read file: it is a broken symbolic link (remove it, or point it at a manifest file)"
        in result.stderr
    )
    (offline.root / "manifests" / "gone.yaml").unlink()
    valid(offline)


def test_a_fifo_named_yaml_rename_it(offline: Offline) -> None:
    offline.write(with_products(product(TRAIL)))
    fifo = offline.root / "manifests" / "pipe.yaml"
    os.mkfifo(fifo)
    result = offline.cli("validate")
    assert (
        "manifests must be regular files; remove it or rename it so it does not end in .yaml or .yml"
        in result.stderr
    )
    fifo.rename(fifo.with_name("pipe.fifo"))
    valid(offline)


def test_a_file_too_large_split_it(offline: Offline) -> None:
    padding = ("# " + "x" * 1022 + "\n") * (9 * 1024)  # 9 MiB of comment: two of them pass the 16 MiB cap
    offline.write(with_products(product(TRAIL)) + padding + padding)
    result = offline.cli("validate")
    assert (
        "(split the catalogue into several files; any number of files and subfolders is read)"
        in result.stderr
    )
    offline.write(with_products(product(TRAIL)) + padding)
    offline.write(with_products(product(COURT)) + padding, "more/court.yaml")
    ok(offline.cli("validate"))


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        pytest.param(lambda t: t.encode("utf-16"), "(it is UTF-16 text: save it as UTF-8)", id="utf-16"),
        pytest.param(
            lambda t: t.replace('name: "x"', 'name: "Caf\u00e9"').encode("latin-1"),
            "(save it as UTF-8; it looks like Latin-1 or Windows-1252 text)",
            id="latin-1",
        ),
    ],
)
def test_a_file_not_in_utf8_save_it_as_utf8(offline: Offline, encoded, expected: str) -> None:  # type: ignore[no-untyped-def]
    text = with_products(product(TRAIL))
    offline.write(encoded(text))
    result = offline.cli("validate")
    assert expected in result.stderr, result.stderr
    offline.write(text.encode("utf-8"))
    valid(offline)


# -- fmt ------------------------------------------------------------------------------------------


def test_fmt_check_names_the_command_that_formats_the_same_files(offline: Offline) -> None:
    path = offline.write(
        with_products(product(TRAIL)).replace("imageWidth: 32", "imageWidth:    32"), "sub/a.yaml"
    )
    result = offline.cli("fmt", "--check", "manifests/sub")
    assert result.returncode == 1 and hint(result) == "run 'reconciler fmt manifests/sub' to rewrite them"
    ok(offline.cli("fmt", "manifests/sub"))
    ok(offline.cli("fmt", "--check", "manifests/sub"))
    assert "imageWidth: 32" in path.read_text()


# -- settings -------------------------------------------------------------------------------------


def test_no_token_export_it_or_use_the_sandbox(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("plan", "--refresh")
    assert result.returncode == 1
    assert hint(result) == (
        "export VNTANA_API_TOKEN=<your Authentication Key> (the personal access token made in the "
        "VNTANA platform; never put it in a file), or add --sandbox to work against the embedded "
        "sandbox"
    )
    ok(
        offline.cli("plan", "--refresh", "--sandbox")
    )  # the second way; the first is followed in test_hints.py


# -- plan options ---------------------------------------------------------------------------------


def test_an_unknown_exit_code_category_choose_from(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("plan", "--detailed-exitcode", "--exit-code-on", "specs")
    assert hint(result) == "choose from new, spec, failed, in_flight, forced, drift, orphan"
    assert (
        offline.cli("plan", "--detailed-exitcode", "--exit-code-on", "spec").returncode == 0
    )  # a new product only


def test_a_target_that_matches_nothing_is_an_error_with_the_close_names(offline: Offline) -> None:
    offline.write(manifest({"Court Classic": COURT, "Trail Runner": TRAIL}))
    result = offline.cli("plan", "--target", "nosuch*", "--target", "Cort*", "--detailed-exitcode")
    assert result.returncode == 1, "never 0 'No changes' while changes wait"
    assert (
        "Error: the selection --target 'Cort*', --target 'nosuch*': patterns match no product in the manifests "
        "or the state"
    ) in result.stderr
    assert hint(result).startswith("for 'Cort*' did you mean 'Court Classic'?; ")
    followed = offline.cli("plan", "--target", "Court Classic", "--detailed-exitcode")
    assert followed.returncode == 2 and "1 other change(s) wait (not targeted)" in followed.stdout


def test_a_saved_plan_with_shaping_options_pass_them_to_plan(offline: Offline) -> None:
    offline.write(manifest([TRAIL, COURT]))
    ok(offline.cli("plan", "--sandbox", "--out", "all.plan"))
    result = offline.cli("apply", "all.plan", "--sandbox", "--target", TRAIL)
    assert hint(result) == (
        "pass them to 'reconciler plan --sandbox --out FILE' instead, then 'reconciler apply --sandbox FILE'"
    )
    ok(offline.cli("plan", "--sandbox", "--target", TRAIL, "--out", "one.plan"))
    ok(offline.cli("apply", "--sandbox", "one.plan", "--poll-interval", "0.05"))


def test_a_plan_of_another_format_version_make_it_again(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("plan", "--sandbox", "--out", "p.plan"))
    data = json.loads((offline.root / "p.plan").read_text())
    data["format_version"] = 99
    (offline.root / "p.plan").write_text(json.dumps(data))
    result = offline.cli("apply", "--sandbox", "p.plan")
    assert hint(result) == "make the plan again with this version"
    ok(offline.cli("plan", "--sandbox", "--out", "p.plan"))
    ok(offline.cli("apply", "--sandbox", "p.plan", "--poll-interval", "0.05"))


# -- state ----------------------------------------------------------------------------------------


def test_a_state_path_that_is_a_directory_pass_the_file(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    (offline.root / "state").mkdir()
    result = offline.cli("plan", "--state", "state")
    assert hint(result) == "pass the state file itself, e.g. --state state/renders.state.json"
    ok(offline.cli("plan", "--state", "state/renders.state.json"))


def test_a_state_url_of_an_unknown_scheme_use_a_file_or_postgresql(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("plan", "--state", "s3://bucket/state.json")
    assert hint(result) == "use a JSON file path, or a postgresql:// URL"
    ok(offline.cli("plan", "--state", "state/renders.state.json"))


def test_a_state_from_a_newer_reconciler_is_left_as_it_was(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    (offline.root / "state").mkdir()
    state = offline.root / "state" / "renders.state.json"
    state.write_text(json.dumps({"format_version": 99, "serial": 1, "lineage": "l", "products": {}}))
    before = state.read_bytes()
    result = offline.cli("apply", "--auto-approve", "--sandbox", "--state", "state/renders.state.json")
    assert hint(result) == "upgrade reconciler; the state was not modified"
    assert state.read_bytes() == before  # what the hint says (upgrading is not a step a test can take)


def test_an_unknown_product_in_state_commands_names_the_listing_that_works(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    result = offline.cli("state", "rm", "--sandbox", COURT)
    assert hint(result) == "'reconciler state list --sandbox' shows the recorded products"
    listed = offline.cli("state", "list", "--sandbox")
    ok(listed)
    assert TRAIL in listed.stdout


def test_state_mv_onto_a_recorded_uuid_rm_it_first(offline: Offline) -> None:
    offline.write(manifest([TRAIL, COURT]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    result = offline.cli("state", "mv", "--sandbox", TRAIL, COURT)
    assert hint(result) == f"run 'reconciler state rm --sandbox {COURT}' first if that record is obsolete"
    ok(offline.cli("state", "rm", "--sandbox", COURT))
    ok(offline.cli("state", "mv", "--sandbox", TRAIL, COURT))


def test_state_mv_to_something_that_is_not_a_uuid_shows_the_form(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    result = offline.cli("state", "mv", "--sandbox", TRAIL, "trail-runner")
    assert hint(result) == "expected the form 3f2b8c1e-0000-4000-8000-000000000000"
    ok(offline.cli("state", "mv", "--sandbox", TRAIL, "3f2b8c1e-0000-4000-8000-000000000000"))


def test_state_migrate_onto_a_state_that_holds_something_pass_force(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    ok(
        offline.cli(
            "apply",
            "--sandbox",
            "--auto-approve",
            "--state",
            "state/other.state.json",
            "--sandbox-dir",
            "other-platform",
            "--poll-interval",
            "0.05",
        )
    )
    result = offline.cli("state", "migrate", "state/sandbox.state.json", "state/other.state.json")
    assert hint(result).startswith("pass --force to replace it")
    ok(offline.cli("state", "migrate", "state/sandbox.state.json", "state/other.state.json", "--force"))


def test_state_migrate_from_nothing_check_from(offline: Offline) -> None:
    result = offline.cli("state", "migrate", "state/nothing.state.json", "state/copy.state.json")
    assert hint(result) == "check FROM: it is the state to copy, TO is where it goes"
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    ok(offline.cli("state", "migrate", "state/sandbox.state.json", "state/copy.state.json"))


# -- import and gallery ---------------------------------------------------------------------------


def test_import_of_a_product_not_in_the_manifests_declare_it_first(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("import", "--sandbox", COURT)
    assert hint(result) == (
        "import compares the platform's renders with the manifests' spec: declare the products "
        "first, then import them"
    )
    offline.write(manifest([TRAIL, COURT]))
    followed = offline.cli("import", "--sandbox", COURT)
    ok(followed)


def test_import_with_nothing_named_shows_both_forms_for_the_same_platform(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("import", "--sandbox")
    assert hint(result) == "reconciler import --sandbox UUID... | reconciler import --sandbox --all"
    ok(offline.cli("import", "--sandbox", "--all"))


def test_a_gallery_before_any_apply_is_pointed_at_the_sandbox_state(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("gallery")
    assert hint(result) == "run 'reconciler apply' first, or pass --state FILE"
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    after = offline.cli("gallery")
    assert hint(after) == (
        "the sandbox's renders are recorded in state/sandbox.state.json: 'reconciler gallery "
        "--sandbox' shows them"
    )
    ok(offline.cli("gallery", "--sandbox"))


def test_a_gallery_into_a_folder_it_did_not_make_choose_another(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    (offline.root / "site").mkdir()
    (offline.root / "site" / "mine.txt").write_text("not the gallery's")
    result = offline.cli("gallery", "--sandbox", "--out", "site")
    assert hint(result) == "choose a new or empty folder with --out"
    ok(offline.cli("gallery", "--sandbox", "--out", "site2"))


def test_doctor_save_with_the_sandbox_run_it_with_credentials(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    result = offline.cli("doctor", "--sandbox", "--save")
    assert hint(result) == "run doctor without --sandbox (with your credentials) to save settings"
    # Followed in test_hints.py, against a running sandbox with its credentials.


def test_a_damaged_record_of_the_last_apply_delete_it(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    record = offline.root / "downloads" / "sandbox" / ".last-apply.json"
    record.write_text("{not json")
    result = offline.cli("gallery", "--sandbox")
    assert hint(result) == "delete it; the next apply writes it again"
    record.unlink()
    ok(offline.cli("gallery", "--sandbox"))
    ok(offline.cli("apply", "--sandbox", "--auto-approve"))
    assert record.exists()
    ok(offline.cli("gallery", "--sandbox", "--changed"))


def test_gallery_changed_without_a_record_keep_the_files_or_use_a_plan(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    empty = offline.root / "elsewhere"
    empty.mkdir()
    result = offline.cli("gallery", "--sandbox", "--download-dir", "elsewhere", "--changed")
    assert hint(result) == (
        "apply writes it when it keeps files (--download-dir, or downloads: in reconciler.yaml); "
        "or use --since-plan PLANFILE"
    )
    ok(offline.cli("plan", "--sandbox", "--out", "p.plan"))
    ok(offline.cli("gallery", "--sandbox", "--download-dir", "elsewhere", "--since-plan", "p.plan"))


def test_gallery_changed_with_another_projects_record_point_both_at_one_project(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    ok(offline.cli("apply", "--sandbox", "--auto-approve", "--poll-interval", "0.05"))
    ok(
        offline.cli(
            "apply",
            "--sandbox",
            "--sandbox-dir",
            "other-platform",
            "--state",
            "state/other.state.json",
            "--download-dir",
            "other-downloads",
            "--auto-approve",
            "--poll-interval",
            "0.05",
        )
    )
    result = offline.cli("gallery", "--sandbox", "--download-dir", "other-downloads", "--changed")
    assert hint(result) == "point --state and --download-dir at the same project"
    ok(
        offline.cli(
            "gallery", "--state", "state/other.state.json", "--download-dir", "other-downloads", "--changed"
        )
    )


def test_a_sandbox_data_dir_that_is_not_one_point_elsewhere_or_delete_it(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    junk = offline.root / "junk"
    junk.mkdir()
    (junk / "sandbox.sqlite3").write_text("not a database")
    result = offline.cli("apply", "--sandbox", "--sandbox-dir", "junk", "--auto-approve")
    assert (
        hint(result)
        == "point --data-dir (or --sandbox-dir) at another directory, or delete junk to start over"
    )
    ok(
        offline.cli(
            "apply", "--sandbox", "--sandbox-dir", "fresh", "--auto-approve", "--poll-interval", "0.05"
        )
    )
    shutil.rmtree(junk)
    ok(
        offline.cli(
            "apply",
            "--sandbox",
            "--sandbox-dir",
            "junk",
            "--auto-approve",
            "--poll-interval",
            "0.05",
            "--state",
            "state/junk.state.json",
        )
    )


# -- presets and budgets --------------------------------------------------------------------------


def test_an_unknown_preset_did_you_mean(offline: Offline) -> None:
    offline.write(
        "presets:\n  tiny:\n"
        + "".join("  " + line + "\n" for line in TINY_DEFAULTS.format(gif="false").splitlines()[1:]),
        "presets.yaml",
    )
    offline.write(f"products:\n  - uuid: {TRAIL}\n    preset: tiyn\n")
    result = offline.cli("validate")
    assert result.returncode == 1 and "did you mean 'tiny'?" in result.stderr, result.stderr
    offline.write(f"products:\n  - uuid: {TRAIL}\n    preset: tiny\n")
    valid(offline)


def test_a_plan_over_budget_narrow_it_raise_it_or_allow_it(offline: Offline) -> None:
    offline.write(manifest([TRAIL, COURT]))
    result = offline.cli("plan", "--sandbox", "--max-requests", "0", "--out", "p.plan")
    assert result.returncode == 1
    assert hint(result).startswith("check the plan; narrow it (--target), raise the budget")
    ok(offline.cli("plan", "--sandbox", "--max-requests", "1", "--out", "p.plan"))  # raised
    ok(
        offline.cli("plan", "--sandbox", "--max-requests", "0", "--allow-over-budget", "--out", "q.plan")
    )  # allowed
    ok(offline.cli("apply", "--sandbox", "q.plan", "--poll-interval", "0.05"))


def test_a_budget_setting_typo_did_you_mean(offline: Offline) -> None:
    offline.write(manifest([TRAIL]))
    (offline.root / "reconciler.yaml").write_text("budget:\n  max_frame: 100\n")
    result = offline.cli("plan")
    assert result.returncode == 1 and hint(result) == "did you mean 'max_frames'?", result.stderr
    (offline.root / "reconciler.yaml").write_text("budget:\n  max_frames: 100\n")
    ok(offline.cli("plan"))


def _preset(name: str, body: str) -> str:
    return f"  {name}:\n" + "".join(f"    {line}\n" for line in body.splitlines())


TINY_PRESET = "\n".join(line[2:] for line in TINY_DEFAULTS.format(gif="false").splitlines()[1:])


def test_a_preset_that_is_not_a_name_write_preset_name(offline: Offline) -> None:
    offline.write("presets:\n" + _preset("tiny", TINY_PRESET), "presets.yaml")
    offline.write(f"products:\n  - uuid: {TRAIL}\n    preset: [tiny]\n")
    result = offline.cli("validate")
    assert "(write preset: NAME, where NAME is a key under presets: in any manifest file)" in result.stderr
    offline.write(f"products:\n  - uuid: {TRAIL}\n    preset: tiny\n")
    valid(offline)


def test_a_preset_defined_twice_rename_one(offline: Offline) -> None:
    offline.write("presets:\n" + _preset("tiny", TINY_PRESET), "a.yaml")
    offline.write(
        "presets:\n" + _preset("tiny", TINY_PRESET) + f"products:\n  - uuid: {TRAIL}\n    preset: tiny\n",
        "b.yaml",
    )
    result = offline.cli("validate")
    assert (
        "presets are shared by every manifest file loaded together: rename one, or keep one" in result.stderr
    )
    offline.write(
        "presets:\n" + _preset("tiny2", TINY_PRESET) + f"products:\n  - uuid: {TRAIL}\n    preset: tiny\n",
        "b.yaml",
    )
    valid(offline)


def test_presets_in_a_circle_remove_one_link(offline: Offline) -> None:
    offline.write(
        "presets:\n"
        + _preset("a", TINY_PRESET + "\npreset: b")
        + _preset("b", "imageWidth: 40\npreset: a")
        + f"products:\n  - uuid: {TRAIL}\n    preset: b\n"
    )
    result = offline.cli("validate")
    assert "a preset may build on another, never on itself: remove one of" in result.stderr, result.stderr
    offline.write(
        "presets:\n"
        + _preset("a", TINY_PRESET)
        + _preset("b", "imageWidth: 40\npreset: a")
        + f"products:\n  - uuid: {TRAIL}\n    preset: b\n"
    )
    valid(offline)
