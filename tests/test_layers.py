"""Layering is enforced, not hoped for (STYLE.md, principle 13).

The contracts live in pyproject.toml ([tool.importlinter]) and are checked on the whole import
graph, indirect imports included: the layers from the CLI down to the errors, the pure core
that imports no I/O library (so the planner stays a function tests drive with data), only the
CLI knowing click, and the client and the sandbox never importing each other (so the sandbox
stays an independent reading of the API). This runs them, and checks what a contract cannot
say: that no module is left out of the layers (a module in no layer is held to nothing).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconciler"
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")]


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_module_is_in_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    unplaced = sorted(modules - {"__init__", "__main__"} - set(_layers()))
    assert unplaced == [], f"add these to the layers in pyproject.toml: {unplaced}"


def test_the_layers_name_only_modules_that_exist() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert sorted(set(_layers()) - modules) == []
