"""The gallery's tests reuse the end-to-end fixtures: a real sandbox per test, the real CLI."""

from tests.e2e.conftest import project, sandbox  # noqa: F401 - pytest finds fixtures by name
