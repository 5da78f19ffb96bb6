"""What ``reconciler doctor`` reports, as text (``--format json`` is ``DoctorReport.to_json``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report's type only: the doctor module talks to the platform, views do not
    from reconciler.doctor import DoctorReport


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


def render_text(report: DoctorReport) -> str:
    """Each check with what it found and what the client does about it, then the settings and problems."""
    lines = [f"reconciler doctor: {report.api_url} (read-only: nothing is triggered or written)", ""]
    for c in report.checks:
        lines.append(f"  {c.status.value:<5} {c.name:<12} {c.found}")
        if c.action:
            lines.append(f"  {'':<5} {'':<12} → {c.action}")
    lines.append("")
    if report.settings:
        shown = ", ".join(f"{k}: {v}" for k, v in report.settings.items())
        lines.append(
            f"Settings for this platform: {shown}" + ("" if report.saved else " (--save writes them)")
        )
    if report.saved:
        lines.append("Saved to the config file: " + ", ".join(report.saved))
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s) the client cannot work around:")
        lines += [f"  - {c.name}: {c.found}" for c in report.problems]
    else:
        lines.append("No problems found.")
    return "\n".join(lines) + "\n"
