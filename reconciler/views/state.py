"""What ``reconciler state`` shows: the product table, one record, the history, and the lines the
edits print. Pure functions of records and states."""

from __future__ import annotations

import json
from typing import Any

from reconciler.state.history import Version
from reconciler.state.model import ProductRecord, State

HASH_PREFIX = 12  # enough to tell specs apart at a glance; `state show` prints the whole hash


def state_token(location: str, state: State) -> dict[str, Any]:
    """Which state, and which version of it, a listing was read from."""
    return {"location": location, "lineage": state.lineage, "serial": state.serial}


def product_row(uuid: str, rec: ProductRecord, action: str | None) -> dict[str, Any]:
    """One product of ``state list`` (``action``: what the plan gives it, when asked)."""
    row = {
        "uuid": uuid,
        "name": rec.name,
        "status": rec.status.value,
        "spec_hash": rec.spec_hash,
        "attachments": [a.kind for a in rec.attachments],
        "protect": rec.protect,
    }
    if action is not None:
        row["action"] = action
    return row


def product_table(rows: list[dict[str, Any]], *, with_action: bool) -> str:
    """``state list`` as aligned columns."""
    head = ["UUID", "NAME", "STATUS", "SPEC", "FILES", "PROTECT"] + (["ACTION"] if with_action else [])
    cells = [
        [
            r["uuid"],
            r["name"] or "-",
            r["status"],
            r["spec_hash"][:HASH_PREFIX],
            ",".join(r["attachments"]) or "-",
            "yes" if r["protect"] else "no",
        ]
        + ([r["action"]] if with_action else [])
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *cells]
    )


def list_json(location: str, state: State, rows: list[dict[str, Any]]) -> str:
    return json.dumps({"state": state_token(location, state), "products": rows}, indent=2, ensure_ascii=False)


def list_footer(location: str, state: State, shown: int) -> str:
    counted = f"{shown} of {len(state.products)}" if shown != len(state.products) else str(shown)
    return f"{counted} product(s); state {location}, serial {state.serial}."


def show_json(location: str, state: State, uuid: str, changes: list[Version] | None) -> str:
    """``state show --format json``: the record, and its changes when the backend keeps them."""
    rec = state.products[uuid]
    extra = {"changes": [v.to_json() for v in changes]} if changes is not None else {}
    return json.dumps(
        {"state": state_token(location, state), "product": uuid, **rec.model_dump(mode="json"), **extra},
        indent=2,
        ensure_ascii=False,
    )


def show_text(uuid: str, rec: ProductRecord, changes: list[Version] | None) -> str:
    """``state show``: spec, status, request, files with hashes, history (and changes, if kept)."""
    lines = [
        f"{uuid}  {rec.name or ''}".rstrip(),
        f"  status:    {rec.status.value} (updated {rec.updated_at})",
    ]
    if rec.error:
        lines.append(f"  error:     {rec.error}")
    lines.append(f"  protect:   {'yes' if rec.protect else 'no'}")
    if rec.workspace:
        lines.append(f"  workspace: {rec.workspace}")
    lines.append(f"  spec hash: {rec.spec_hash}")
    lines.append("  spec:")
    lines += [f"    {path}: {_v(value)}" for path, value in _flatten(rec.spec)]
    if rec.request is None:
        lines.append("  request:   none (imported, or recorded without a trigger)")
    else:
        r = rec.request
        lines.append(
            f"  request:   {r.request_id} for spec {r.spec_hash[:HASH_PREFIX]}, requested {r.requested_at}"
            + (f", accepted {r.accepted_at}" if r.accepted_at else ", not confirmed by the platform")
        )
    lines.append(f"  files ({len(rec.attachments)}):")
    lines += [
        f"    {a.kind:<9} {a.name}  {a.uuid}  sha256:{a.sha256}  {a.size} bytes  {a.content_type}"
        for a in rec.attachments
    ]
    lines.append(f"  history ({len(rec.history)} earlier render(s), newest first):")
    for past in rec.history:
        lines.append(f"    {past.recorded_at}  spec {past.spec_hash[:HASH_PREFIX]}  {_summary(past.spec)}")
        lines += [f"      {a.kind:<9} {a.name}  sha256:{a.sha256}  {a.size} bytes" for a in past.attachments]
    if changes is not None:  # who wrote it, for a backend that keeps every serial
        lines.append("  changes (newest first; 'reconciler state history UUID' for more):")
        lines += [f"    {line}" for line in version_lines(changes)]
    return "\n".join(lines)


def _flatten(spec: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key in sorted(spec):
        value = spec[key]
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((prefix + key, value))
    return out


def _summary(spec: dict[str, Any]) -> str:
    """One line for a past spec; tolerant of records from before specs were kept in history."""
    if not spec:
        return "(spec not recorded)"
    tt = spec.get("turntable", {})
    return (
        f"still {spec.get('imageFormat')} {spec.get('imageWidth')}x{spec.get('imageHeight')}, turntable "
        f"{tt.get('imageCount')} frames @ {tt.get('frameRate')} fps {tt.get('width')}x{tt.get('height')}"
        f"{' + GIF' if tt.get('includeGif') else ''}"
    )


def _v(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def describe(uuid: str, rec: ProductRecord) -> str:
    """A record in one phrase: uuid, name, status and how many files."""
    files = len(rec.attachments)
    return f"{uuid} {rec.name or ''} ({rec.status.value}, {files} file{'s' if files != 1 else ''})".replace(
        "  ", " "
    )


def history_json(location: str, versions: list[Version]) -> str:
    return json.dumps(
        {"location": location, "versions": [v.to_json() for v in versions]}, indent=2, ensure_ascii=False
    )


def version_lines(versions: list[Version]) -> list[str]:
    """One line per serial (who, when, which operation, what changed), the saved plan under it."""
    lines = []
    for v in versions:
        by = f"{v.who}@{v.host}" + (f" (db {v.db_user})" if v.db_user and v.db_user != v.who else "")
        changed = ", ".join(f"{u} {s}" for u, s in v.changes.items())
        more = v.products - len(v.changes)
        what = (changed + (f" and {more} more" if more > 0 else "")) if v.products else "no product changed"
        lines.append(f"serial {v.serial:<6} {v.at}  {v.operation} by {by}: {what}")
        if v.plan:
            lines.append(f"             plan {v.plan}")
    return lines
