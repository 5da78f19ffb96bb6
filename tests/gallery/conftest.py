"""The gallery's tests reuse the end-to-end fixtures (a real sandbox per test, the real CLI) and
add a real Chromium (browser.py)."""

from tests.e2e.conftest import project, sandbox  # noqa: F401 - pytest finds fixtures by name
from tests.gallery.browser import browser, tab  # noqa: F401
