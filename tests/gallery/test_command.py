"""``apply`` keeping files and ``reconciler gallery`` through the real CLI against the sandbox.

The HTML is read with a parser here; test_browser.py drives the same pages in Chromium.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import PRODUCTS, Project, manifest
from tests.gallery.htmltools import Element, cards, find

TRAIL, COURT, CHAIR = PRODUCTS["trail"], PRODUCTS["court"], PRODUCTS["chair"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cards(root: Path) -> dict[str, Element]:
    found = {}
    for page in sorted(root.glob("page-*.html")):
        for card in cards(page.read_text()):
            found[card.attrs["data-uuid"]] = card
    return found


def _rerender_chair(project: Project) -> None:
    """A new background for the still and a new frame rate for the turntable: new bytes under the same names."""
    project.write_manifest(
        manifest(PRODUCTS, overrides={CHAIR: 'imageBackground: "#D0E4FF"\nturntable:\n  frameRate: 8'})
    )


def test_a_rerender_keeps_the_old_files_aside_and_the_gallery_shows_before_and_after(
    project: Project,
) -> None:
    project.write_manifest(manifest(PRODUCTS))
    first = project.apply("--download-dir", "downloads")
    assert first.returncode == 0, first.stderr
    assert "Renders kept in downloads/ (one folder per product uuid)." in first.stderr
    old = {a["kind"]: a for a in project.state()["products"][CHAIR]["attachments"]}

    _rerender_chair(project)
    second = project.apply("--download-dir", "downloads")
    assert second.returncode == 0, second.stderr
    downloads = project.root / "downloads"
    new = {a["kind"]: a for a in project.state()["products"][CHAIR]["attachments"]}
    for kind in ("still", "turntable", "gif"):  # same names: each new file replaced the old, kept aside
        assert new[kind]["name"] == old[kind]["name"] and new[kind]["sha256"] != old[kind]["sha256"]
        kept = downloads / CHAIR / ".previous" / old[kind]["sha256"] / old[kind]["name"]
        assert _sha(kept) == old[kind]["sha256"]
        assert _sha(downloads / CHAIR / new[kind]["name"]) == new[kind]["sha256"]
    assert not (downloads / TRAIL / ".previous").exists()  # not re-rendered: nothing kept aside
    last = json.loads((downloads / ".last-apply.json").read_text())
    assert last["rendered"] == [CHAIR] and last["failed"] == []
    assert last["lineage"] == project.state()["lineage"]

    built = project.cli("gallery", "--download-dir", "downloads", "--out", "site")
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("Gallery of 5 products on 1 page in ")
    assert built.stdout.rstrip().endswith("Open site/index.html")
    site = _cards(project.root / "site")
    assert set(site) == set(PRODUCTS.values())
    chair = site[CHAIR]
    assert "changed" in chair.attrs["data-flags"].split()
    [pair] = find(chair, "section", "beforeafter")
    assert [li.text for li in find(pair, "li")] == [
        "imageBackground: (none) → #D0E4FF",
        "turntable.frameRate: 4 → 8",
    ]
    before, after = (find(f, "img")[0].attrs["src"] for f in find(pair, "figure"))
    assert (
        before != after
        and (project.root / "site" / before).is_file()
        and (project.root / "site" / after).is_file()
    )
    assert all(not find(c, "section", "beforeafter") for u, c in site.items() if u != CHAIR)
    for card in site.values():  # every link and picture of every card exists in the site
        for el in [*find(card, "img"), *find(card, "video"), *find(card, "a")]:
            for attr in ("src", "poster", "href"):
                if attr in el.attrs:
                    assert (project.root / "site" / el.attrs[attr]).is_file(), el.attrs[attr]


def test_changed_and_since_plan_limit_the_gallery(project: Project) -> None:
    project.write_manifest(manifest(PRODUCTS))
    assert project.apply("--download-dir", "downloads").returncode == 0
    _rerender_chair(project)
    assert project.cli("plan", "--out", "plan.json").returncode == 0

    before = project.cli("gallery", "--download-dir", "downloads", "--out", "pr", "--since-plan", "plan.json")
    assert before.returncode == 0, before.stderr
    [card] = _cards(project.root / "pr").values()
    assert card.attrs["data-uuid"] == CHAIR
    [planned] = find(card, "section", "planned")
    assert "Planned: rerender" in planned.text and "turntable.frameRate: 4 → 8" in planned.text

    assert project.apply("--download-dir", "downloads", "plan.json").returncode == 0
    after = project.cli("gallery", "--download-dir", "downloads", "--out", "pr", "--since-plan", "plan.json")
    assert after.returncode == 0, after.stderr
    [card] = _cards(project.root / "pr").values()
    assert find(card, "section", "beforeafter") and not find(card, "section", "planned")

    changed = project.cli("gallery", "--download-dir", "downloads", "--out", "changed", "--changed")
    assert changed.returncode == 0, changed.stderr
    assert list(_cards(project.root / "changed")) == [CHAIR]

    nothing = project.apply("--download-dir", "downloads")  # nothing to apply: nothing changed last
    assert "Nothing to apply" in nothing.stdout
    assert json.loads((project.root / "downloads" / ".last-apply.json").read_text())["rendered"] == []
    again = project.cli("gallery", "--download-dir", "downloads", "--out", "changed", "--changed")
    assert again.returncode == 0 and _cards(project.root / "changed") == {}
    assert not list((project.root / "changed" / "media").rglob("*.png"))  # earlier build's files removed


def test_gallery_refuses_what_it_cannot_do_with_a_clear_message(project: Project) -> None:
    def error(*args: str) -> str:
        result = project.cli("gallery", *args)
        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr
        return result.stderr

    assert error() == (
        "Error: no state at state/renders.state.json: nothing has been applied yet\n"
        "Hint: run 'reconciler apply' first, or pass --state FILE\n"
    )
    project.write_manifest(manifest([TRAIL]))
    assert project.apply().returncode == 0
    assert error("--changed") == (
        "Error: --changed: no record of the last apply in the downloads folder\n"
        "Hint: apply writes it when it keeps files (--download-dir, or downloads: in reconciler.yaml); "
        "or use --since-plan PLANFILE\n"
    )
    assert error("--changed", "--since-plan", "p.json") == (
        "Error: --since-plan and --changed both choose the products: give one of them\n"
    )
    assert error("--since-plan", "nope.json") == "Error: plan file nope.json does not exist\n"
    (project.root / "notes").mkdir()
    (project.root / "notes" / "mine.txt").write_text("keep me")
    assert error("--out", "notes") == (
        "Error: notes is not empty and is not a gallery (no .reconciler-gallery in it); nothing was written\n"
        "Hint: choose a new or empty folder with --out\n"
    )
    assert (project.root / "notes" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in (project.root / "notes").iterdir()) == ["mine.txt"]


def test_a_gallery_without_downloads_lists_the_products_and_says_how_to_get_pictures(
    project: Project,
) -> None:
    project.write_manifest(manifest([TRAIL, COURT]))
    assert project.apply().returncode == 0
    result = project.cli("gallery")
    assert result.returncode == 0, result.stderr
    assert "No downloads folder: the cards have no pictures." in result.stdout
    site = _cards(project.root / "gallery")
    assert set(site) == {TRAIL, COURT}
    assert all(not find(c, "img") and not find(c, "video") for c in site.values())
    assert "files missing locally" not in (project.root / "gallery" / "index.html").read_text()


def test_downloads_setting_in_reconciler_yaml_is_where_apply_keeps_files(project: Project) -> None:
    (project.root / "reconciler.yaml").write_text("downloads: kept\n")
    project.write_manifest(manifest([TRAIL]))
    result = project.apply()
    assert result.returncode == 0, result.stderr
    record = project.state()["products"][TRAIL]
    for att in record["attachments"]:
        assert _sha(project.root / "kept" / TRAIL / att["name"]) == att["sha256"]
    built = project.cli("gallery", "--out", "site")
    assert built.returncode == 0, built.stderr
    assert "Local files" not in built.stdout  # everything found, nothing missing


def test_first_apply_with_the_sandbox_keeps_the_files_and_ends_with_open_gallery(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(manifest({"Trail <Runner>": TRAIL, "Court": COURT}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VNTANA_", "RECONCILER_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "--sandbox",
            "--auto-approve",
            "--poll-interval",
            "0.05",
        ],
        check=False,
        cwd=tmp_path,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith(
        "Renders kept in downloads/sandbox/ (one folder per product uuid).\n"
        "Gallery of 2 products written: open gallery/index.html"
    )
    state = json.loads((tmp_path / "state" / "sandbox.state.json").read_text())
    for uuid, rec in state["products"].items():
        for att in rec["attachments"]:
            assert _sha(tmp_path / "downloads" / "sandbox" / uuid / att["name"]) == att["sha256"]
    site = _cards(tmp_path / "gallery")
    assert find(site[TRAIL], "h2")[0].text == "Trail <Runner>"
    rebuilt = subprocess.run(
        [sys.executable, "-m", "reconciler", "gallery", "--sandbox"],
        check=False,
        cwd=tmp_path,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "Gallery of 2 products on 1 page" in rebuilt.stdout and "Local files" not in rebuilt.stdout
