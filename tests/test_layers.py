"""Layering is enforced, not hoped for (STYLE.md, principle 13).

The decision-making modules stay free of I/O libraries, so the planner remains a pure
function that tests can drive with data; and the client and the sandbox never import each
other, so the sandbox stays an independent reading of the API reference.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
PURE = [
    "spec.py",
    "plan.py",
    "planner.py",
    "observed.py",
    "views/plan.py",
    "views/github.py",
    "views/progress.py",
    "diagnostics.py",
    "state/model.py",
]
IO_LIBRARIES = (
    "httpx",
    "click",
    "ruamel",
    "starlette",
    "uvicorn",
    "av",
    "PIL",
    "filelock",
    "rich",
    "reconciler.client",
    "reconciler.sandbox",
    "reconciler.applying",
    "reconciler.executor",
)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _offending(imports: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imports if any(i == b or i.startswith(b + ".") for b in banned))


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_library(module: str) -> None:
    assert _offending(_imports(PACKAGE / module), IO_LIBRARIES) == []


@pytest.mark.parametrize(
    ("package", "banned"), [("client", "reconciler.sandbox"), ("sandbox", "reconciler.client")]
)
def test_client_and_sandbox_are_independent(package: str, banned: str) -> None:
    for path in sorted((PACKAGE / package).rglob("*.py")):
        assert _offending(_imports(path), (banned,)) == [], path


def test_the_checker_sees_a_banned_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import httpx.x\nfrom ruamel.yaml import YAML\nfrom reconciler.spec import RenderSpec\n"
    )
    assert _offending(_imports(sample), IO_LIBRARIES) == ["httpx.x", "ruamel.yaml"]
