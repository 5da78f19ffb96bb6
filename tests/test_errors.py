"""The error tree drawn in ``reconciler/errors.py`` is the tree the code has.

Every ``ReconcilerError`` subclass anywhere in the package must be drawn, under its real parent,
and exit with the code the drawing gives; a class added without being drawn fails here.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import re

import pytest

import reconciler
from reconciler import errors
from reconciler.errors import ConfigError, PlanOptionsError, ReconcilerError, StateError, StateWriteError


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _drawn() -> dict[str, str | None]:
    """name → parent name, from the box drawing in the module docstring."""
    return {name: parent for name, (parent, _) in _drawing().items()}


def _drawing() -> dict[str, tuple[str | None, str]]:
    """name → (parent name, module it is drawn in), from the box drawing in the module docstring."""
    doc = errors.__doc__ or ""
    lines = doc.split("    ReconcilerError", 1)[1].split("\n\n", 1)[0].splitlines()
    drawn: dict[str, tuple[str | None, str]] = {"ReconcilerError": (None, "reconciler.errors")}
    stack = ["ReconcilerError"]
    for line in lines[1:]:
        body = line[4:]  # the docstring's own indent
        match = re.match(r"^((?:│   |    )*)[├└]── ([A-Z][A-Za-z]+)\b(?:\s+([a-z_/]+)\.py:)?", body)
        if not match:
            continue  # a description wrapped onto the next line
        depth = len(match[1]) // 4 + 1
        del stack[depth:]
        module = "reconciler." + match[3].replace("/", ".") if match[3] else "reconciler.errors"
        drawn[match[2]] = (stack[-1], module)
        stack.append(match[2])
    return drawn


@pytest.fixture(scope="module")
def classes() -> set[type]:
    for module in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return _all_subclasses(ReconcilerError)


def test_every_error_is_drawn_under_its_parent(classes: set[type]) -> None:
    drawn = _drawn()
    real = {
        cls.__name__: next(b.__name__ for b in cls.__bases__ if issubclass(b, ReconcilerError))
        for cls in classes
    }
    missing = sorted(set(real) - set(drawn))
    assert not missing, f"draw these in errors.py's docstring: {missing}"
    assert {name: drawn[name] for name in real} == real
    assert set(drawn) - {"ReconcilerError"} == set(real), "drawn but gone from the code"


def test_every_error_is_drawn_with_the_module_that_defines_it(classes: set[type]) -> None:
    drawn = _drawing()
    assert {c.__name__: c.__module__ for c in classes} == {c.__name__: drawn[c.__name__][1] for c in classes}


EXIT_CODES = {"RunInterruptedError": 3}
"""The one class that does not exit 1: a run stopped by a signal, checkpointed (errors.py)."""


def test_every_error_exits_1_but_the_stopped_run_as_drawn(classes: set[type]) -> None:
    assert {cls.__name__: cls.exit_code for cls in classes} == {
        cls.__name__: EXIT_CODES.get(cls.__name__, 1) for cls in classes
    }


def test_plan_options_error_is_in_the_tree_and_still_a_value_error() -> None:
    exc = PlanOptionsError("max batch size must be at least 1")
    assert isinstance(exc, ConfigError) and isinstance(exc, ValueError)


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"), (errno.EACCES, "permissions")],
)
def test_a_refused_write_names_the_file_the_cause_and_a_fix(code: int, words: str) -> None:
    exc = StateWriteError("state/x.json", "write", OSError(code, os.strerror(code)))
    assert isinstance(exc, StateError)
    assert exc.message == f"cannot write state/x.json: {os.strerror(code)} ({errno.errorcode[code]})"
    assert exc.hint and words in exc.hint
