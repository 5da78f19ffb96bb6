"""Diagnostics: a problem, where it is, and what to do about it.

Loaders collect every problem before failing, so a user fixes a manifest in one pass; each
diagnostic renders as ``file:line:col: field: message`` (1-based line and column).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceLocation:
    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: SourceLocation
    message: str
    field: str | None = None
    hint: str | None = None

    def format(self) -> str:
        field = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.location}: {field}{self.message}{hint}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["location"] = asdict(self.location)
        return out
