"""The gallery's decisions stay pure (STYLE.md, principle 13): model.py and pages.py import no I/O
library, and neither the downloads layout nor the model imports the build edge or the CLI."""

from __future__ import annotations

import pytest

from tests.test_layers import IO_LIBRARIES, PACKAGE, _imports, _offending

EDGE = (
    "reconciler.gallery.build",
    "reconciler.gallery.after_apply",
    "reconciler.cli",
    "reconciler.applying",
    "reconciler.settings",
    "jinja2",
)


@pytest.mark.parametrize("module", ["gallery/model.py", "gallery/pages.py"])
def test_the_gallery_model_and_pages_import_no_io_library(module: str) -> None:
    assert _offending(_imports(PACKAGE / module), IO_LIBRARIES) == []


@pytest.mark.parametrize("module", ["gallery/model.py", "downloads.py"])
def test_the_model_and_the_downloads_layout_import_no_edge(module: str) -> None:
    assert _offending(_imports(PACKAGE / module), EDGE) == []
