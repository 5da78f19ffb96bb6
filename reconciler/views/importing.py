"""What ``reconciler import`` found, product by product: as text or as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the report's types only: the importing module talks to the platform, views do not
    from reconciler.importing import ImportReport, ProductImport

# By outcome (reconciler.importing.Outcome, a StrEnum: its members are these strings).
OUTCOMES = ("in_sync", "mismatch", "incomplete", "no_renders", "skipped", "failed")

_SYMBOL = {
    "in_sync": "=",
    "mismatch": "~",
    "incomplete": "!",
    "no_renders": "+",
    "skipped": " ",
    "failed": "x",
}


def _counts(report: ImportReport) -> dict[str, int]:
    return {o: sum(1 for r in report.results if r.outcome == o) for o in OUTCOMES}


def import_json(report: ImportReport) -> str:
    """``--format json``: the state, every product's findings, and the counts by outcome."""
    return (
        json.dumps(
            {
                "state": {"location": report.location, "lineage": report.lineage, "serial": report.serial},
                "products": [r.to_json() for r in report.results],
                "summary": _counts(report),
            },
            indent=2,
        )
        + "\n"
    )


def import_text(report: ImportReport) -> str:
    """One line per product (a symbol for its outcome) with the reasons, then the summary."""
    counts = _counts(report)
    lines = []
    for r in report.results:
        lines.append(f"{_SYMBOL[r.outcome.value]} {r.uuid}  {r.name or ''}".rstrip())
        lines += [f"    {line}" for line in _explain(r)]
    imported = counts["in_sync"] + counts["mismatch"]
    lines.append(
        f"\nImported {imported} of {len(report.results)} product(s): {counts['in_sync']} in sync, "
        f"{counts['mismatch']} mismatched, {counts['incomplete']} incomplete, {counts['no_renders']} "
        f"without renders, {counts['skipped']} skipped, {counts['failed']} failed."
    )
    if counts["in_sync"]:
        lines.append(
            f"Files cannot reveal {', '.join(report.unknowable)}: those were taken from the manifests."
        )
    lines.append(
        f"State: {report.location} (serial {report.serial}). Run 'reconciler plan' to see what is left."
    )
    return "\n".join(lines) + "\n"


def _explain(r: ProductImport) -> list[str]:
    if r.outcome == "skipped":
        return ["already in the state; skipped (--force imports it again)"]
    if r.outcome == "failed":
        return [f"failed: {r.error}"]
    if r.outcome == "no_renders":
        return ["no renders on the platform; nothing recorded, the plan renders it"]
    assert r.inferred is not None
    files = _files_summary(r.inferred.known)
    if r.outcome == "in_sync":
        return [f"in sync, no render triggered ({files})"]
    lines = []
    if r.outcome == "incomplete":
        lines.append(
            f"incomplete: no {' and no '.join(r.missing)} on the platform; nothing recorded, "
            "the plan renders it"
        )
    else:
        lines.append("does not match the manifest; recorded as the platform has it, the plan re-renders it:")
    lines += [f"  {m.field}: platform {_v(m.platform)}, manifest {_v(m.manifest)}" for m in r.mismatches]
    lines.append("  unknown from the files (taken from the manifest): " + ", ".join(r.inferred.unknown))
    return lines


def _files_summary(known: dict[str, Any]) -> str:
    parts = []
    if "imageFormat" in known:
        parts.append(f"still {known['imageFormat']} {known['imageWidth']}x{known['imageHeight']}")
    if "turntable.imageCount" in known:
        parts.append(
            f"MP4 {known['turntable.imageCount']} frames @ {known['turntable.frameRate']} fps "
            f"{known['turntable.width']}x{known['turntable.height']}"
        )
    if known.get("turntable.includeGif"):
        parts.append("GIF")
    return ", ".join(parts)


def _v(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
