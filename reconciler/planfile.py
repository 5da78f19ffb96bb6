"""Saved plans on disk: ``plan --out FILE`` writes one, ``apply FILE`` reads it back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.errors import PlanFileError
from reconciler.plan import Plan
from reconciler.views.plan import render_json


def save_plan(plan: Plan, out: Path) -> None:
    """Write the plan document (the same JSON as ``plan --format json``), atomically."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(render_json(plan), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise PlanFileError(f"cannot write plan file {out}: {exc.strerror}") from exc


def load_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFileError(f"plan file {path} is not readable JSON: {exc}") from exc
    return Plan.from_json(data, str(path))
