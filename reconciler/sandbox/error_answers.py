"""The JSON of an error answer under the current reading, with no web framework and no context:
what the routes (through the envelope), the fault injector and the storage listener all answer.

``errors`` entries are codes (``"PRODUCT_NOT_FOUND"``) or, under the reading ``error_entries:
objects``, ``{"code", "message"}`` objects (reconciler/sandbox/readings.py)."""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.readings import Readings

# Messages for the ``objects`` reading; any other code gets one made from its name.
_MESSAGES = {
    "FORBIDDEN": "Access to this resource is forbidden",
    "UNAUTHORIZED": "Full authentication is required to access this resource",
    "BAD_CREDENTIALS": "Bad credentials",
    "NOT_FOUND": "No handler found for this path",
    "PRODUCT_NOT_FOUND": "Product not found",
    "API_RATE_LIMIT_EXCEEDED": "API rate limit exceeded, try again later",
    "MISSING_ORIGIN": "The Origin header is required",
}


def message_for(code: str) -> str:
    return _MESSAGES.get(code) or code.replace("_", " ").capitalize()


def error_entry(code: str, readings: Readings, message: str | None = None) -> Any:
    """One entry of an ``errors`` list (or map) under the current reading."""
    if readings.error_entries == "objects":
        return {"code": code, "message": message or message_for(code)}
    return code


def error_body(
    codes: list[str], readings: Readings, response: Any = None, message: str | None = None
) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [error_entry(c, readings, message) for c in codes],
        "response": response,
    }
