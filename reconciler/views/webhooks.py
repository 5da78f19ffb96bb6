"""What ``reconciler webhooks list`` shows: the organization's webhooks, the reconciler's marked."""

from __future__ import annotations

import json
from typing import Any


def webhook_rows(hooks: list[Any], is_ours: Any) -> list[dict[str, Any]]:
    """One row per webhook (never its secret); ``is_ours`` tells the reconciler's own."""
    return [
        {
            "uuid": h.uuid,
            "name": h.name,
            "url": h.url,
            "disabled": bool(h.disable),
            "reconciler": is_ours(h),
            "created": h.created.isoformat() if h.created else None,
        }
        for h in hooks
    ]


def webhooks_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"webhooks": rows}, indent=2)


def webhooks_text(rows: list[dict[str, Any]], rm: str) -> str:
    """A line per webhook, then how to remove the ones a killed run left (``rm``: the command)."""
    if not rows:
        return "No webhooks in this organization."
    lines = []
    for r in rows:
        mark = "reconciler" if r["reconciler"] else "not ours  "
        lines.append(
            f"{mark}  {r['uuid']}  {r['name'] or '-'}  {r['url'] or '-'}"
            + ("  (disabled)" if r["disabled"] else "")
        )
    ours = sum(1 for r in rows if r["reconciler"])
    if ours:
        lines.append(
            f"{ours} made by the reconciler: an apply removes its own when it ends; one left by a killed run "
            f"goes with '{rm} UUID' (or --all)."
        )
    return "\n".join(lines)
