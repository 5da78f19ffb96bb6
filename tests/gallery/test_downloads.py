"""The downloads folder: a re-rendered file is kept aside by its hash, bounded; the record of the
last apply; the ``downloads:`` setting."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from reconciler.downloads import (
    KEEP_FILES,
    LAST_APPLY,
    LastApply,
    bound_folder,
    keep_download,
    read_last_apply,
    write_last_apply,
)
from reconciler.errors import ConfigError
from reconciler.gallery.after_apply import SANDBOX_DOWNLOADS, resolve_download_dir
from reconciler.settings import configured_downloads, resolve_settings
from reconciler.state.model import HISTORY_LENGTH


def _download(folder: Path, name: str, data: bytes) -> Path:
    """What fetch does: bytes into NAME.part, then keep_download."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{name}.part"
    part.write_bytes(data)
    target = folder / name
    keep_download(part, target, hashlib.sha256(data).hexdigest())
    return target


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_replaced_file_moves_under_previous_by_its_own_sha256(tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    _download(folder, "still.png", b"old render")
    target = _download(folder, "still.png", b"new render")
    assert target.read_bytes() == b"new render"
    kept = folder / ".previous" / _sha(b"old render") / "still.png"
    assert kept.read_bytes() == b"old render"
    assert not list(folder.glob("*.part"))


def test_the_same_content_again_is_not_kept_twice(tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    _download(folder, "still.png", b"same")
    _download(folder, "still.png", b"same")
    assert not (folder / ".previous").exists()
    assert (folder / "still.png").read_bytes() == b"same"


def test_a_product_folder_keeps_at_most_the_current_and_history_length_renders(tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    renders = HISTORY_LENGTH + 4
    for i in range(renders):
        for j, name in enumerate(("still.png", "turn.mp4", "turn.gif")):
            path = _download(folder, name, f"render {i} file {name}".encode())
            os.utime(path, ns=(10**18 + (i * 3 + j) * 10**9,) * 2)  # distinct, increasing download times
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == KEEP_FILES == 3 * (HISTORY_LENGTH + 1)
    kept = {p.read_bytes() for p in files}
    newest = {
        f"render {i} file {n}".encode()
        for i in range(renders - HISTORY_LENGTH - 1, renders)
        for n in ("still.png", "turn.mp4", "turn.gif")
    }
    assert kept == newest
    assert all(any(d.iterdir()) for d in (folder / ".previous").iterdir())  # emptied hash folders removed


def test_bounding_never_removes_the_newest_files(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}").write_bytes(b"x")
        os.utime(folder / f"f{i}", ns=(10**18 + i * 10**9,) * 2)
    removed = bound_folder(folder, keep=2)
    assert sorted(p.name for p in removed) == ["f0", "f1", "f2"]
    assert sorted(p.name for p in folder.iterdir()) == ["f3", "f4"]


def test_the_last_apply_record_round_trips_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    assert read_last_apply(tmp_path) is None
    record = LastApply(lineage="L", finished_at="2026-12-01T08:00:00Z", rendered=["b", "a"], failed=["c"])
    write_last_apply(tmp_path, record)
    back = read_last_apply(tmp_path)
    assert back == LastApply(
        lineage="L", finished_at="2026-12-01T08:00:00Z", rendered=["a", "b"], failed=["c"]
    )
    (tmp_path / LAST_APPLY).write_text("{not json")
    with pytest.raises(ConfigError, match=r"\.last-apply\.json is unreadable"):
        read_last_apply(tmp_path)
    (tmp_path / LAST_APPLY).write_text('{"lineage": "L"}')
    with pytest.raises(ConfigError, match="is not a record of an apply"):
        read_last_apply(tmp_path)


def test_downloads_setting_is_relative_to_the_config_file_and_not_a_client_setting(tmp_path: Path) -> None:
    config = tmp_path / "project" / "reconciler.yaml"
    config.parent.mkdir()
    config.write_text("api_url: https://example.test\ndownloads: renders\n")
    assert configured_downloads(config) == tmp_path / "project" / "renders"
    settings = resolve_settings({}, {"VNTANA_API_TOKEN": "t"}, config)
    assert settings.api_url == "https://example.test"


def test_downloads_setting_absent_or_invalid(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("api_url: https://example.test\n")
    assert configured_downloads(config) is None
    assert configured_downloads(None) is None
    config.write_text("api_url: https://example.test\ndownloads: 5\n")
    with pytest.raises(ConfigError) as err:
        configured_downloads(config)
    assert err.value.message == f"{config}:2: downloads must be a folder path, e.g. 'downloads'"
    config.write_text("download: x\n")
    with pytest.raises(ConfigError) as err:
        resolve_settings({}, {"VNTANA_API_TOKEN": "t"}, config)
    assert err.value.hint == "did you mean 'downloads'?"


def test_download_dir_precedence(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("downloads: kept\n")
    assert resolve_download_dir(Path("flag"), sandbox=True, config_path=config) == Path("flag")
    assert resolve_download_dir(None, sandbox=True, config_path=None) == SANDBOX_DOWNLOADS
    assert resolve_download_dir(None, sandbox=False, config_path=config) == tmp_path / "kept"
    assert resolve_download_dir(None, sandbox=False, config_path=None) is None
