"""What ``apply --refresh-only`` and ``refresh`` report: products checked, updated, and why."""

from __future__ import annotations

import json


def refresh_text(checked: int, accepted: dict[str, str]) -> str:
    """The summary line, then one line per product updated from the platform."""
    return (
        f"Refresh: {checked} product(s) checked, {len(accepted)} updated from the platform."
        + "".join(f"\n  {u}: {why}" for u, why in sorted(accepted.items()))
        + "\n"
    )


def refresh_progress_text(done: int, total: int) -> str:
    """The progress line of a refresh on a terminal (redrawn in place)."""
    return f"Refreshing products: {done:,}/{total:,} ({done * 100 // max(total, 1)}%)"


def refresh_json(checked: int, accepted: dict[str, str], failed: dict[str, str]) -> str:
    """``--format json``: one object with what was checked, updated and failed."""
    return json.dumps({"checked": checked, "updated": accepted, "failed": failed}, indent=2) + "\n"
