"""The GitHub views stay pure (like views.py); the GitHub client stays apart from the VNTANA client."""

from __future__ import annotations

from pathlib import Path

from tests.test_layers import IO_LIBRARIES, PACKAGE, _imports, _offending


def test_views_github_imports_no_io_library() -> None:
    assert _offending(_imports(PACKAGE / "views" / "github.py"), IO_LIBRARIES) == []


def test_the_github_package_does_not_use_the_vntana_client_or_sandbox() -> None:
    for path in sorted(Path(PACKAGE / "github").glob("*.py")):
        banned = ("reconciler.client", "reconciler.sandbox", "reconciler.executor")
        assert _offending(_imports(path), banned) == [], path
